"""Memory stays bounded: a 4 GiB file goes in and out in constant memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_datactl
from peakrss import LIMIT_BYTES, peak_rss

GiB = 1024**3


@pytest.mark.heavy
def test_4_gib_file_add_and_checkout_in_bounded_memory(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    big = ws / "huge.bin"
    with open(big, "wb") as f:  # sparse: 4 GiB of holes, plus real data at a few places
        for k in range(4):
            f.seek(k * GiB + 12345)
            f.write(os.urandom(3 * 1024 * 1024))
        f.truncate(4 * GiB)
    assert run_datactl(["init"], ws).returncode == 0

    rss_add = peak_rss(["add", "huge.bin"], ws)
    assert rss_add < LIMIT_BYTES, f"add peaked at {rss_add / 2**20:.0f} MiB"
    assert run_datactl(["commit", "-m", "huge"], ws).returncode == 0

    big.unlink()
    rss_checkout = peak_rss(["checkout", "HEAD", "--force"], ws)
    assert rss_checkout < LIMIT_BYTES, f"checkout peaked at {rss_checkout / 2**20:.0f} MiB"
    assert big.stat().st_size == 4 * GiB
    with open(big, "rb") as f:
        f.seek(2 * GiB + 12345 - 10)
        head = f.read(10)
    assert head == b"\0" * 10
    big.unlink()
