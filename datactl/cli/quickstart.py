"""A small sample dataset with two versions, to see datactl work in seconds."""

from __future__ import annotations

import os
import random


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_sample_files(root: str, seed: int = 7) -> None:
    """Write a small image-classification-like dataset: CSV labels and binary 'images'."""
    rng = random.Random(seed)
    rows = ["id,label,split"] + [f"{i},{rng.choice(['cat', 'dog', 'bird'])},{'train' if i % 5 else 'test'}" for i in range(20_000)]
    _write(os.path.join(root, "labels.csv"), ("\n".join(rows) + "\n").encode())
    for split, count in (("train", 40), ("test", 10)):
        for i in range(count):
            _write(os.path.join(root, "images", split, f"img_{i:04d}.bin"), rng.randbytes(rng.randint(20_000, 120_000)))
    _write(os.path.join(root, "README.txt"), "Sample dataset made by `datactl quickstart`.\n".encode())


def edit_sample_files(root: str, seed: int = 8) -> None:
    """A second version: a label fixed mid-file, an image added, one deleted, one renamed."""
    rng = random.Random(seed)
    labels = os.path.join(root, "labels.csv")
    with open(labels, "rb") as f:
        data = f.read()
    mid = data.index(b"\n", len(data) // 2) + 1
    _write(labels, data[:mid] + b"99999,fox,train\n" + data[mid:])
    _write(os.path.join(root, "images", "train", "img_9000.bin"), rng.randbytes(50_000))
    os.unlink(os.path.join(root, "images", "test", "img_0003.bin"))
    os.rename(os.path.join(root, "images", "train", "img_0001.bin"), os.path.join(root, "images", "train", "img_0001_renamed.bin"))
