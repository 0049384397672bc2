"""The Python API for training code and CI: Dataset, readers, the fsspec filesystem."""
