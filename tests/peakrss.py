"""Peak resident memory of one datactl process, measured apart from the test process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# The most resident memory any command or API call may take, at any scale (docs/architecture.md).
LIMIT_BYTES = 300 * 1024 * 1024

# Linux carries a parent's peak RSS into a forked child's ru_maxrss, and pytest
# (with in-process servers) is large; a small launcher process forks the
# command so the figure is datactl's own. The figure and the wall time go to
# stderr, last, so the command's stdout can go to a file untouched. Given a
# bound, the launcher stops the command once its peak passes it: the answer is
# known, and a command whose memory grows with the data need not run to the end.
_LAUNCHER = """
import os, signal, sys, time
bound = int(sys.argv[1])
start = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
stopped = 0
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG if bound else 0)
    if done:
        break
    try:
        with open(f"/proc/{pid}/status") as f:
            hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        hwm = 0
    if hwm > bound and not stopped:
        os.kill(pid, signal.SIGKILL)
        stopped = 1
    time.sleep(0.05)
sys.stderr.write(f"\\npeak-rss {usage.ru_maxrss * 1024} {time.monotonic() - start:.3f} {stopped}\\n")
sys.exit(0 if stopped else os.waitstatus_to_exitcode(status))
"""


@dataclass
class Measured:
    peak_rss: int  # bytes
    seconds: float  # wall time of the measured process
    stdout: str  # empty when stdout went to a file
    stopped: bool  # stopped once its peak passed the bound, before it finished

    @property
    def mib(self) -> float:
        return self.peak_rss / 2**20


def measure(
    python_args: list[str], cwd: Path, stdout: IO | None = None, env: dict[str, str] | None = None, stop_above: int | None = None
) -> Measured:
    """Run ``python PYTHON_ARGS`` (e.g. ``-m datactl ...`` or ``-c CODE``) in ``cwd`` and measure it; it must succeed,
    unless stopped because its peak RSS passed ``stop_above`` bytes."""
    env = {**os.environ, "DATACTL_AUTHOR": "Test <t@example.com>", **(env or {})}
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(stop_above or 0), *python_args], cwd=cwd, env=env,
                          stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr
    _, rss, seconds, stopped = proc.stderr.strip().splitlines()[-1].split()
    return Measured(int(rss), float(seconds), proc.stdout or "", stopped == "1")


def peak_rss(args: list[str], cwd: Path) -> int:
    """Run ``datactl ARGS`` and return its own peak resident memory in bytes."""
    return measure(["-m", "datactl", *args], cwd).peak_rss


def bounded(what: str, python_args: list[str], cwd: Path, stdout: IO | None = None, env: dict[str, str] | None = None) -> Measured:
    """Run and measure one process; its peak RSS must stay under ``LIMIT_BYTES`` (past it, the process is stopped there)."""
    m = measure(python_args, cwd, stdout=stdout, env=env, stop_above=LIMIT_BYTES)
    print(f"{what}: peak RSS {m.mib:.0f} MiB, {m.seconds:.1f} s{' (stopped at the bound)' if m.stopped else ''}")
    assert not m.stopped and m.peak_rss < LIMIT_BYTES, f"{what} peaked at {m.mib:.0f} MiB{' and was stopped there' if m.stopped else ''}"
    return m
