"""Memory stays bounded: a 4 GiB file goes in and out in constant memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import run_datactl

GiB = 1024**3
LIMIT_BYTES = 300 * 1024 * 1024


# Linux carries a parent's peak RSS into a forked child's ru_maxrss, and pytest
# (with in-process servers) is large; a small launcher process forks datactl
# so the figure is datactl's own.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "datactl", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss * 1024)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss(args: list[str], cwd: Path) -> int:
    """Run datactl and return its own peak resident memory in bytes."""
    env = {**os.environ, "DATACTL_AUTHOR": "Test <t@example.com>"}
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


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
