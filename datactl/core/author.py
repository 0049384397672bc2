"""Who makes a version: ``DATACTL_AUTHOR``, else user@host."""

from __future__ import annotations

import getpass
import os


def default_author() -> str:
    env = os.environ.get("DATACTL_AUTHOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry, e.g. in containers
        user = "unknown"
    import socket  # only a commit asks: kept out of every command's start-up

    return f"{user}@{socket.gethostname()}"
