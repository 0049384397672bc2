"""A commit killed at any moment leaves the previous version intact and the next command working."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_datactl, snapshot, write


@pytest.mark.heavy
def test_killed_add_and_commit_lose_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    rng = random.Random(99)
    for i in range(20):
        write(ws / "v1" / f"{i}.bin", rng.randbytes(50_000))
    assert run_datactl(["init", "--name", "ds"], ws).returncode == 0
    assert run_datactl(["add", "."], ws).returncode == 0
    assert run_datactl(["commit", "-m", "v1", "--tag", "v1"], ws).returncode == 0
    v1 = snapshot(ws)

    for i in range(300):
        write(ws / "v2" / f"{i // 30}" / f"{i}.bin", rng.randbytes(rng.randint(10_000, 200_000)))
    write(ws / "v2" / "big.bin", rng.randbytes(24 * 1024 * 1024))
    v2 = snapshot(ws)

    env = {**os.environ, "DATACTL_AUTHOR": "Test <t@example.com>"}
    script = f"{sys.executable} -m datactl add . && {sys.executable} -m datactl commit -m v2 --tag v2"
    delays = [0.05 + 0.12 * k for k in range(14)]
    random.Random(7).shuffle(delays)
    landed = False
    for delay in delays:
        proc = subprocess.Popen(["sh", "-c", script], cwd=ws, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

        # The store and workspace still work, and whatever HEAD is, it is whole.
        verify = run_datactl(["verify", "--deep"], ws)
        assert verify.returncode == 0, verify.stderr + verify.stdout
        status = run_datactl(["status"], ws)
        assert status.returncode == 0, status.stderr
        log = run_datactl(["log", "--oneline"], ws)
        assert log.returncode == 0 and "v1" in log.stdout
        landed = landed or "v2" in log.stdout
        assert snapshot(ws) == v2, "a killed command never changes the user's files"

    r = run_datactl(["add", "."], ws)
    assert r.returncode == 0, r.stderr
    if not landed:
        r = run_datactl(["commit", "-m", "v2", "--tag", "v2"], ws)
        assert r.returncode == 0, r.stderr
    assert run_datactl(["verify", "--deep", "v2"], ws).returncode == 0
    assert run_datactl(["checkout", "v1"], ws).returncode == 0
    assert snapshot(ws) == v1
    assert run_datactl(["checkout", "v2"], ws).returncode == 0
    assert snapshot(ws) == v2
