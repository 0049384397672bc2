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
from datactl.core.ids import object_id

METADATA_DIR = ".datactl"
TEMP_SUFFIX = ".datactl-tmp"  # our own temp files; a manifest naming one is hostile
_DRIVE = re.compile(r"^[A-Za-z]:")
# The longest file name, in bytes, that the file systems datactl writes to accept (ext4, XFS, btrfs, APFS).
NAME_MAX = 255
# How deep folders may nest in a version: a file sits at most this many folders down. A 4,096-byte path (Linux's
# PATH_MAX) holds at most 2,048 one-letter folders, so deeper data cannot be written anyway: it is refused with a
# clear error rather than walked (docs/security.md).
MAX_DEPTH = 2048
_HOSTILE = "the version was written by a faulty or hostile tool; nothing was written"


# Names of these characters, not starting with a dot, pass every check below but the temporary suffix's: one regex
# for the names most trees hold, instead of eight tests each.
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def check_entry_name(name: str) -> str:
    """Return ``name`` if it is a safe single path component, else raise UnsafePath."""
    if type(name) is str and _PLAIN.fullmatch(name) is not None and not name.endswith(TEMP_SUFFIX):
        return name
    return check_any_entry_name(name)


def check_any_entry_name(name: str) -> str:
    """``check_entry_name`` without its shortcut for plain names."""
    if not isinstance(name, str) or name in ("", ".", "..") or name == METADATA_DIR:
        raise UnsafePath(f"unsafe file name {name!r} in a manifest", _HOSTILE)
    if "/" in name or "\\" in name or "\0" in name or _DRIVE.match(name) or name.endswith(TEMP_SUFFIX):
        raise UnsafePath(f"unsafe file name {name!r} in a manifest", _HOSTILE)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath(f"file name {name!r} in a manifest is not valid UTF-8", _HOSTILE) from None
    return name


def check_rel_path(path: str) -> str:
    """Check a '/'-separated workspace-relative path component by component, its names' lengths and its depth."""
    if path.startswith("/"):
        raise UnsafePath(f"absolute path {path!r} where a workspace-relative one is expected")
    parts = path.split("/")
    check_depth(path, len(parts) - 1)
    for part in parts:
        check_entry_name(part)
        if len(part.encode("utf-8")) > NAME_MAX:
            raise UnsafePath(
                f"{shorten(path)}: the name {shorten(part)} is {len(part.encode('utf-8'))} bytes; file systems hold at most {NAME_MAX}",
                "rename it in a version that can be written",
            )
    return path


def check_depth(path: str, depth: int) -> None:
    """Refuse a path ``depth`` folders down when that is deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise UnsafePath(
            f"{shorten(path)} is nested {depth} folders deep; datactl handles at most {MAX_DEPTH}",
            "flatten the folders (or list the deep folder in .datactlignore)",
        )


def shorten(text: str, keep: int = 60) -> str:
    """``text`` cut to about ``keep`` characters for a message, its start and end kept."""
    return text if len(text) <= keep else f"{text[: keep // 2]}...{text[-keep // 2 :]}"


def temp_name(name: str, tag: str = "") -> str:
    """The hidden name a file called ``name`` is written under before it is renamed into place.

    ``.NAME.datactl-tmp``, except that it always fits NAME_MAX bytes: a long
    name is cut on a character boundary, and a hash of the whole name keeps
    the temporary names of different files apart. ``tag`` makes it unique to
    a writer.
    """
    full = f".{name}{tag}{TEMP_SUFFIX}"
    raw = name.encode("utf-8", "surrogateescape")
    if len(full.encode("utf-8", "surrogateescape")) <= NAME_MAX:
        return full
    mark = f"~{object_id(raw)[:16]}{tag}{TEMP_SUFFIX}"
    room = NAME_MAX - 1 - len(mark.encode("utf-8", "surrogateescape"))
    return f".{raw[:room].decode('utf-8', 'ignore')}{mark}"


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
