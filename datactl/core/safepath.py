"""Names that come from a manifest are hostile until checked.

A tree entry name is one path component. Anything that could climb out of the
workspace or mean something else on another OS is refused before a byte is
written (DESIGN invariant 5).
"""

from __future__ import annotations

import os
import re
import stat

from datactl.core.errors import UnsafePath

METADATA_DIR = ".datactl"
TEMP_SUFFIX = ".datactl-tmp"  # our own temp files; a manifest naming one is hostile
_DRIVE = re.compile(r"^[A-Za-z]:")


def check_entry_name(name: str) -> str:
    """Return ``name`` if it is a safe single path component, else raise UnsafePath."""
    if not isinstance(name, str) or name in ("", ".", "..") or name == METADATA_DIR:
        raise UnsafePath(f"unsafe file name {name!r} in a manifest", "the version was written by a faulty or hostile tool; nothing was written")
    if "/" in name or "\\" in name or "\0" in name or _DRIVE.match(name) or name.endswith(TEMP_SUFFIX):
        raise UnsafePath(f"unsafe file name {name!r} in a manifest", "the version was written by a faulty or hostile tool; nothing was written")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath(f"file name {name!r} in a manifest is not valid UTF-8", "the version was written by a faulty or hostile tool; nothing was written") from None
    return name


def check_rel_path(path: str) -> str:
    """Check a '/'-separated workspace-relative path component by component."""
    if path.startswith("/"):
        raise UnsafePath(f"absolute path {path!r} where a workspace-relative one is expected")
    for part in path.split("/"):
        check_entry_name(part)
    return path


def safe_join(root: str, rel_path: str) -> str:
    """Join a checked relative path to ``root``, refusing to pass through symlinks.

    Parent folders that exist must be real folders (not links), so a link
    planted in the workspace cannot redirect a write outside it.
    """
    check_rel_path(rel_path)
    parts = rel_path.split("/")
    current = root
    for part in parts[:-1]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(
                f"{os.path.relpath(current, root)} is a {'symlink' if stat.S_ISLNK(st.st_mode) else 'file'}, not a folder",
                "move it away, then run the command again",
            )
    return os.path.join(root, *parts)
