"""The datactl command line: thin commands over the library (``datactl.cli.app`` is the entry point)."""
