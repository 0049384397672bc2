"""A really full disk for tests: a small tmpfs mounted for the test (needs root, else the test is skipped)."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    """A file system of ``size`` (tmpfs syntax: "3m") mounted at ``where`` for the duration."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> int:
    """Fill ``disk`` to the last byte with a file named ``filler``; return the bytes written."""
    n = 0
    with open(disk / "filler", "wb", buffering=0) as f:
        block = b"\0" * 65536
        while True:
            try:
                n += f.write(block)
            except OSError:
                break
        while True:
            try:
                n += f.write(b"\0")
            except OSError:
                return n
