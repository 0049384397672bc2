"""Holding a command (in another process) at one of its named points, so a test acts at exactly that moment.

    pause = PausePoint(tmp_path, "before-ref-update")
    proc = subprocess.Popen([...], env={**os.environ, **pause.env})
    pause.wait(proc)     # returns once the command has arrived there (and stays there)
    ...                  # another writer acts
    pause.release()      # the command goes on

See ``datactl.core.crashpoints``: the command opens a named pipe at the point
and reads one byte from it. Nothing here depends on timing; the deadline only
guards against a command that never arrives.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
from pathlib import Path

from datactl.core.crashpoints import PAUSE_ENV, PAUSE_FIFO_ENV


class PausePoint:
    def __init__(self, tmp_path: Path, point: str) -> None:
        self.point = point
        self.fifo = str(tmp_path / f"pause-{uuid.uuid4().hex[:8]}.fifo")
        os.mkfifo(self.fifo)
        self.env = {PAUSE_ENV: point, PAUSE_FIFO_ENV: self.fifo}
        self._fd: int | None = None

    def wait(self, proc: subprocess.Popen, deadline: float = 120.0) -> None:
        """Block until ``proc`` is held at the point (fail if it exits first)."""
        give_up = time.monotonic() + deadline
        while True:
            try:
                self._fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until the command opened it
                return
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            if proc.poll() is not None:
                out = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"the command exited ({proc.returncode}) before reaching {self.point}: {out}")
            if time.monotonic() > give_up:
                raise AssertionError(f"the command never reached {self.point}")
            time.sleep(0.01)

    def release(self) -> None:
        """Let the held command go on."""
        assert self._fd is not None, "wait() first"
        os.write(self._fd, b"x")
        os.close(self._fd)
        self._fd = None
