"""The C allocator's settings for datactl's own processes (the command line and its workers), never a library user's.

glibc gives each thread that allocates its own arena, up to eight per core,
and keeps in each what was freed there. A clone of a million files reads,
decodes and writes on a dozen threads: the arenas held about 100 MB of freed
memory (peak anonymous memory 248 MB; 148 MB with two arenas, no slower).
Two arenas keep the threads from waiting on one lock, and the memory a
command needs from growing with its threads.
"""

from __future__ import annotations

import sys

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)
ARENAS = 2


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
