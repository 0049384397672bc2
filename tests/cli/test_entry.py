"""The console script ends a command without the interpreter's teardown: nothing of what it printed, or of what
its exit handlers do, may be lost on the way, and its exit code stays the command's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import run_datactl, write


def _ended_by_exit_at_once(body: str) -> subprocess.CompletedProcess:
    script = f"import atexit, sys, threading, time\nfrom datactl.cli.entry import exit_at_once\n{body}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output buffered, as a user's is
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)


def test_a_long_listing_reaches_the_pipe_whole_with_the_exit_code(ws_dir: Path) -> None:
    assert run_datactl(["init", ".", "--name", "ds"], ws_dir).returncode == 0
    for k in range(1500):
        write(ws_dir / f"d{k % 7}" / f"file-{k:05d}.txt", f"{k}\n")
    assert run_datactl(["add", "."], ws_dir).returncode == 0
    assert run_datactl(["commit", "-m", "one"], ws_dir).returncode == 0
    listed = run_datactl(["ls", "-r", "--json"], ws_dir)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 1500  # 100 KB and more of JSON, none of it left in a buffer
    refused = run_datactl(["log", "no-such-ref"], ws_dir)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: unknown ref 'no-such-ref'"), refused.stderr


def test_buffered_output_and_exit_handlers_survive() -> None:
    done = _ended_by_exit_at_once(
        "atexit.register(lambda: print('handler ran'))\n"
        "sys.stdout.write('x' * 100_000)\n"
        "sys.stderr.write('to stderr')\n"
        "exit_at_once(3)\n"
    )
    assert done.returncode == 3
    assert done.stdout == "x" * 100_000 + "handler ran\n"
    assert done.stderr == "to stderr"


def test_a_thread_still_running_is_waited_for() -> None:
    done = _ended_by_exit_at_once(
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished'))).start()\nexit_at_once(0)\n"
    )
    assert done.returncode == 0
    assert done.stdout == "thread finished\n"
