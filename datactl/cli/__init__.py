"""The datactl command line (a thin layer over the library)."""

from datactl.cli.app import app, main

__all__ = ["app", "main"]
