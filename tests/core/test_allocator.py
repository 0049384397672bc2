"""datactl's own processes cap glibc's malloc arenas (datactl.core.allocator): threads that allocate do not each
get an arena that keeps what they freed."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arena setting is glibc's")

# Eight threads allocate at once (64 KiB blocks come from a thread's arena, not from mmap), then glibc describes its
# heaps: one <heap> element per arena.
SCRIPT = """
import ctypes, sys, tempfile, threading
if sys.argv[1] == "capped":
    from datactl.core.allocator import limit_arenas
    assert limit_arenas()
together = threading.Barrier(8)
def work():
    together.wait()
    blocks = [bytearray(64 * 1024) for _ in range(20)]
    together.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    f = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
    print(open(out.name).read().count("<heap nr="))
"""


def _arenas(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout.strip())


def test_a_capped_process_keeps_two_arenas_however_many_threads_allocate() -> None:
    assert _arenas("free") > 2, "without the cap, glibc gives the threads arenas of their own (the premise)"
    assert _arenas("capped") <= 2
