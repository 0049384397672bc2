"""Named points where tests make a command die like a killed process, or hold it still.

``DATACTL_TEST_CRASH_AT=name`` (or ``name#N``, the Nth time) exits abruptly at
that point; ``DATACTL_TEST_STEP_DELAY=seconds`` pauses at every point, so a test
can kill a command at random moments. ``DATACTL_TEST_PAUSE_AT=name`` (or
``name#N``) with ``DATACTL_TEST_PAUSE_FIFO=path`` stops there until the test
writes a byte to that named pipe: opening the pipe for writing tells the test the
command has arrived, so another writer can act at exactly that moment, without
sleeps. Unset, a point costs three environment reads.
"""

from __future__ import annotations

import collections
import os
import time

CRASH_ENV = "DATACTL_TEST_CRASH_AT"
STEP_DELAY_ENV = "DATACTL_TEST_STEP_DELAY"
PAUSE_ENV = "DATACTL_TEST_PAUSE_AT"
PAUSE_FIFO_ENV = "DATACTL_TEST_PAUSE_FIFO"

# Per process: how often each point was reached (a process runs one command).
_hits: collections.Counter = collections.Counter()


def _reached(want: str, name: str, counter: str) -> bool:
    """Whether ``want`` (``name`` or ``name#N``) names this visit of point ``name``."""
    target, _, nth = want.partition("#")
    if target != name:
        return False
    _hits[counter, name] += 1
    return _hits[counter, name] == int(nth or 1) if counter == "pause" else _hits[counter, name] >= int(nth or 1)


def crash_point(name: str) -> None:
    """Die here when ``DATACTL_TEST_CRASH_AT`` names this point; pause when a step delay or a pause names it."""
    delay = os.environ.get(STEP_DELAY_ENV)
    if delay:
        time.sleep(float(delay))
    pause = os.environ.get(PAUSE_ENV)
    if pause and _reached(pause, name, "pause"):
        with open(os.environ[PAUSE_FIFO_ENV], "rb") as fifo:  # blocks until the test opens it to write
            fifo.read(1)  # blocks until the test lets the command go on
    want = os.environ.get(CRASH_ENV)
    if want and _reached(want, name, "crash"):
        os._exit(137)
