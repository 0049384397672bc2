"""Reading and editing ``datactl.toml``, the workspace's user-owned settings.

Edits go through tomlkit so the user's comments and layout survive.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

import tomlkit

from datactl.core.errors import NotAWorkspace, UsageError
from datactl.core.safepath import TEMP_SUFFIX

CONFIG_FILE = "datactl.toml"


def settings_path(root: str) -> str:
    return os.path.join(root, CONFIG_FILE)


def read_settings(root: str) -> dict[str, Any]:
    path = settings_path(root)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise NotAWorkspace(f"{path} is missing", "run `datactl init` again to recreate it") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None


def edit_settings(root: str, change) -> None:
    """Apply ``change(document)`` to datactl.toml, keeping comments; written atomically."""
    path = settings_path(root)
    with open(path, encoding="utf-8") as f:
        doc = tomlkit.parse(f.read())
    change(doc)
    tmp = path + TEMP_SUFFIX
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(tomlkit.dumps(doc))
    os.replace(tmp, path)
