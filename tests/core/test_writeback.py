"""A big file a checkout wrote starts its way to the disk and stays in the page cache (datactl.core.writeback)."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

import pytest

from datactl.core.writeback import start_write_back

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the page cache is asked through mincore")

MiB = 1 << 20


def cached_share(path: Path) -> float:
    """The share of the file's pages in the page cache: mincore over a private mapping of it, never touched."""
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    vec = ctypes.create_string_buffer(pages)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        start = ctypes.c_char.from_buffer(mapped)  # the mapping's address; a copy-on-write mapping lends it
        failed = libc.mincore(ctypes.addressof(start), size, vec)
        del start  # the mapping closes only once nothing holds its buffer
    assert failed == 0, os.strerror(ctypes.get_errno())
    return sum(b & 1 for b in vec.raw) / pages


def test_a_file_already_on_the_disk_stays_cached(tmp_path: Path) -> None:
    # Written and synced, its pages are clean: posix_fadvise(DONTNEED), the old way to start the write-back, drops
    # every one of them, and whoever reads the file next (the user, the next checkout building on it) waits for the disk.
    path = tmp_path / "big.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, os.urandom(16 * MiB))
        os.fsync(fd)
        assert cached_share(path) > 0.9
        start_write_back(fd)
    finally:
        os.close(fd)
    assert cached_share(path) > 0.9


def test_a_descriptor_that_is_no_file_is_left_alone() -> None:
    read, write = os.pipe()
    try:
        start_write_back(write)  # advice only: a pipe has nothing to write back, and no error is raised
    finally:
        os.close(read)
        os.close(write)
