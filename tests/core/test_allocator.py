"""datactl's own processes cap glibc's malloc arenas (datactl.core.allocator): threads that allocate do not each
get an arena that keeps what they freed; and they collect cyclic garbage less often, a library user's process as
its user set it."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arena setting is glibc's")
def test_a_capped_process_keeps_two_arenas_however_many_threads_allocate() -> None:
    assert _arenas("free") > 2, "without the cap, glibc gives the threads arenas of their own (the premise)"
    assert _arenas("capped") <= 2


# A command's process and a library user's: the collector's thresholds as the process ends.
CLI = """
import atexit, gc, sys
atexit.register(lambda: print(gc.get_threshold(), file=sys.stderr))
sys.argv = ["datactl", "status"]
from datactl.cli.entry import run
run()
"""
LIBRARY = """
import gc
import datactl.api
from datactl.workspace.workspace import Workspace
print(gc.get_threshold())
"""


def test_a_command_collects_cyclic_garbage_less_often_and_a_library_user_keeps_his_setting(tmp_path) -> None:
    from datactl.core.allocator import GC_THRESHOLDS

    done = subprocess.run([sys.executable, "-c", CLI], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0 and "error:" in done.stderr  # no workspace here: the command ran, and failed cleanly
    assert done.stderr.strip().splitlines()[-1] == str(GC_THRESHOLDS)
    done = subprocess.run([sys.executable, "-c", LIBRARY], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
    assert done.stdout.strip() == "(700, 10, 10)"
