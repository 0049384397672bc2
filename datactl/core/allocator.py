"""How datactl's own processes (the command line and its workers) manage memory, never a library user's.

glibc gives each thread that allocates its own arena, up to eight per core,
and keeps in each what was freed there. A clone of a million files reads,
decodes and writes on a dozen threads: the arenas held about 100 MB of freed
memory (peak anonymous memory 248 MB; 148 MB with two arenas, no slower).
Two arenas keep the threads from waiting on one lock, and the memory a
command needs from growing with its threads.

Python's cyclic garbage collector runs every 700 new containers by default,
and a full collection once enough of them have outlived two: a command that
parses trees (a dict per entry) or lists folders (a tuple per file) makes
millions, none of them in a cycle, and the collector went through the whole
heap again and again (17% of a checkout of a million files, 20% of a diff).
Every 10,000 it costs next to nothing, and what it is there for (garbage in
cycles) is still freed.
"""

from __future__ import annotations

import gc
import sys

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)
ARENAS = 2
GC_THRESHOLDS = (10_000, 10, 10)  # new containers between young collections, and the older generations' ratios


def set_up_own_process() -> None:
    """The memory settings of a process that is datactl's own, made before any thread starts."""
    limit_arenas()
    gc.set_threshold(*GC_THRESHOLDS)


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process; False where there is no such setting (not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only here: 1.5 ms, and only for a command that runs

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))  # musl has mallopt as a stub that answers 0
