"""Reading and editing ``datactl.toml``, the workspace's user-owned settings.

Edits go through tomlkit so the user's comments and layout survive. The
workspace's own configuration (``datactl.toml``, ``.datactlignore`` at its
root) is never data: no version may carry it (docs/security.md).
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from datactl.core.errors import NotAWorkspace, UnsafePath, UsageError
from datactl.core.safepath import TEMP_SUFFIX

CONFIG_FILE = "datactl.toml"
IGNORE_FILE = ".datactlignore"
# Files at a workspace's root that configure it; a version holding one is refused.
WORKSPACE_FILES = (CONFIG_FILE, IGNORE_FILE)


def settings_path(root: str) -> str:
    return os.path.join(root, CONFIG_FILE)


def check_not_workspace_file(path: str, where: str) -> None:
    """Refuse ``path`` (a version's '/' path) when it names a workspace's own configuration file."""
    if path in WORKSPACE_FILES:
        raise UnsafePath(
            f"{where} holds {path} at its root: a version never carries a workspace's own configuration",
            "it was written by an old or hostile tool; nothing was written. Restore its other files with "
            "`datactl checkout REF -- PATH...`",
        )


def read_text(path: str) -> str:
    """A settings file's text; one that is not UTF-8 is a UsageError naming it and the line."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path}: line {line} is not valid UTF-8", "save the file as UTF-8") from None


def load_toml(path: str) -> dict[str, Any]:
    """Parse the TOML file at ``path``; a file that is not UTF-8 or not TOML is a UsageError naming it and the line."""
    text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}", "fix the line it names (TOML syntax: https://toml.io)") from None


def read_settings(root: str) -> dict[str, Any]:
    path = settings_path(root)
    try:
        return load_toml(path)
    except FileNotFoundError:
        raise NotAWorkspace(f"{path} is missing", "run `datactl init` again to recreate it") from None


def edit_settings(root: str, change) -> None:
    """Apply ``change(document)`` to datactl.toml, keeping comments; written atomically."""
    path = settings_path(root)
    read_settings(root)  # a damaged file is reported, not half-parsed
    import tomlkit  # edits only: reading is tomllib's, and most commands only read

    doc = tomlkit.parse(read_text(path))
    change(doc)
    tmp = path + TEMP_SUFFIX
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(tomlkit.dumps(doc))
    os.replace(tmp, path)


def table_keys(settings: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """``[tables."PATH"] key = ["COL", ...]``: the columns that identify a row of each table (row diffs and merges)."""
    section = settings.get("tables", {})
    if not isinstance(section, dict):
        raise UsageError("[tables] in datactl.toml must be a table of paths", 'write it as [tables."labels.csv"] key = ["id"]')
    keys: dict[str, tuple[str, ...]] = {}
    for path, table in section.items():
        key = table.get("key") if isinstance(table, dict) else None
        if isinstance(key, str):
            key = [key]
        if not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
            raise UsageError(f'[tables."{path}"] in datactl.toml needs key = ["COLUMN", ...]', f'for example: [tables."{path}"] key = ["id"]')
        keys[path.strip("/")] = tuple(key)
    return keys
