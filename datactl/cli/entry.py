"""The console script's entry point: ``datactl --version`` answers before the command tree is imported.

Importing the command tree (typer, rich, the library) is most of a command's
start-up; a version query needs none of it.
"""

from __future__ import annotations

import sys


def run() -> None:
    """Console-script entry point (``datactl``, ``python -m datactl``)."""
    if sys.argv[1:] == ["--version"]:
        from datactl import __version__

        sys.stdout.write(f"datactl {__version__}\n")
        sys.exit(0)
    from datactl.core.allocator import limit_arenas

    limit_arenas()  # before any thread: this process is datactl's own
    from datactl.cli.app import main

    sys.exit(main())
