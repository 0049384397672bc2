"""Named points where tests make a command die like a killed process.

``DATACTL_TEST_CRASH_AT=name`` (or ``name#N``, the Nth time) exits abruptly at
that point; ``DATACTL_TEST_STEP_DELAY=seconds`` pauses at every point, so a test
can kill a command at random moments. Unset, a point costs two environment reads.
"""

from __future__ import annotations

import collections
import os
import time

CRASH_ENV = "DATACTL_TEST_CRASH_AT"
STEP_DELAY_ENV = "DATACTL_TEST_STEP_DELAY"

# Per process: how often each point was reached (a process runs one command).
_hits: collections.Counter = collections.Counter()


def crash_point(name: str) -> None:
    """Die here when ``DATACTL_TEST_CRASH_AT`` names this point; pause when a step delay is set."""
    delay = os.environ.get(STEP_DELAY_ENV)
    if delay:
        time.sleep(float(delay))
    want = os.environ.get(CRASH_ENV)
    if not want:
        return
    target, _, nth = want.partition("#")
    if target == name:
        _hits[name] += 1
        if _hits[name] >= int(nth or 1):
            os._exit(137)
