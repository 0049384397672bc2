"""Worker processes: Python work of one command shared between cores.

A worker is ``python -m <module>`` of this package, never a fork of a process
that may hold threads, and never a re-run of the caller's ``__main__``. It and
its caller talk in pickled frames over its stdin and stdout: both ends are
this package's code in processes one command started, so a frame is trusted
as the process's own memory is. A worker's stderr is discarded: it reports
through its stream, and nothing of it reaches the terminal.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from typing import IO, Any, Callable, Iterator

from datactl.core.allocator import set_up_own_process
from datactl.core.errors import DatactlError


def usable_cpus() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def spawn_module(module: str) -> subprocess.Popen | None:
    """``python -P -m module`` with pipes to its stdin and stdout; None if no interpreter can be started (an
    embedded Python), for the caller to do the work itself.

    ``-P``: without it, Python puts the current folder (the workspace) first on the import path, and a file such
    as ``logging.py`` among the user's data, or one a checkout from a store wrote there, would run as code.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
    try:
        return subprocess.Popen([sys.executable, "-P", "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return None


def run_as_worker(serve: Callable[[IO[bytes], IO[bytes]], None]) -> None:
    """A worker module's ``__main__``: ``serve`` its stdin and stdout; interrupted, or abandoned by its caller, it
    exits at once."""
    set_up_own_process()
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (KeyboardInterrupt, BrokenPipeError):
        os._exit(1)


def send_frame(stream: IO[bytes], frame: Any) -> None:
    """Write one frame and flush it, so the other end sees it now."""
    pickle.dump(frame, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def read_frames(stream: IO[bytes]) -> Iterator[Any]:
    """Frames until the other end closes its stream (or dies: a frame cut short ends the stream too)."""
    while True:
        try:
            yield pickle.load(stream)
        except (EOFError, pickle.UnpicklingError, OSError, ValueError):  # ValueError: a stream closed meanwhile
            return


def portable_error(exc: BaseException, doing: str) -> BaseException:
    """``exc`` if it survives pickling whole; else a DatactlError saying that ``doing`` failed, and why."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception at all may come here; it must still reach the caller
        return DatactlError(f"{doing} failed: {exc}")


def stop(proc: subprocess.Popen | None) -> None:
    """End ``proc`` (killed if still running) and close its pipes."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:  # a pipe whose reader died
                pass
