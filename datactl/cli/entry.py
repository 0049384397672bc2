"""The console script's entry point: ``datactl --version`` answers before the command tree is imported.

Importing the command tree (typer, rich, the library) is most of a command's
start-up; a version query needs none of it.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def run() -> None:
    """Console-script entry point (``datactl``, ``python -m datactl``)."""
    if sys.argv[1:] == ["--version"]:
        from datactl import __version__

        sys.stdout.write(f"datactl {__version__}\n")
        sys.exit(0)
    from datactl.core.allocator import set_up_own_process

    set_up_own_process()  # before any thread: this process is datactl's own
    from datactl.cli.app import main

    exit_at_once(main())


def exit_at_once(code: int) -> NoReturn:
    """End the process with ``code``, skipping the interpreter's teardown when nothing else runs in it.

    A command is done when ``main`` returns: every file, database and worker it opened is closed. The teardown
    would free its modules and objects one by one (20-50 ms after an `add` of 20,000 files), which the operating
    system does at once. The exit handlers still run (caches' and temporary folders' finalizers) and the output is
    flushed. With another thread alive, output that cannot be flushed (a closed pipe), or a profiler or tracer
    watching (cProfile, coverage, a debugger: they write what they recorded after the program ends), the
    interpreter exits the usual way.
    """
    if threading.active_count() == 1 and sys.getprofile() is None and sys.gettrace() is None:
        atexit._run_exitfuncs()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # ValueError: a stream the command closed
            sys.exit(code)
        os._exit(code)
    sys.exit(code)
