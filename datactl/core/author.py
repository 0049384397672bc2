"""Who makes a version: ``DATACTL_AUTHOR``, else user@host."""

from __future__ import annotations

import getpass
import os
import socket


def default_author() -> str:
    env = os.environ.get("DATACTL_AUTHOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry, e.g. in containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
