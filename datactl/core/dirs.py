"""Folder operations that follow folder depth without recursion.

Python's ``os.makedirs``, ``os.walk`` and ``shutil.rmtree`` recurse once per
folder level, so a deep enough tree (about a thousand levels) raises
RecursionError. These iterate with an explicit stack instead; no symlink is
followed.
"""

from __future__ import annotations

import os
import stat
from typing import Iterator


def make_dirs(path: str) -> list[str]:
    """Create folder ``path`` and any missing parents; return the folders created, outermost first."""
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created: list[str] = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            continue
        created.append(folder)
    return created


def walk_folder(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(folder, sub-folder names, other names) for ``top`` and every folder below it, like ``os.walk``.

    Symlinks to folders are listed as other names, never entered; a folder
    that cannot be listed is skipped.
    """
    stack = [top]
    while stack:
        folder = stack.pop()
        dirs: list[str] = []
        others: list[str] = []
        try:
            with os.scandir(folder) as it:
                for de in it:
                    (dirs if de.is_dir(follow_symlinks=False) else others).append(de.name)
        except OSError:
            continue
        dirs.sort()
        others.sort()
        yield folder, dirs, others
        stack.extend(os.path.join(folder, d) for d in reversed(dirs))


def remove_tree(top: str) -> None:
    """Delete ``top`` and everything below it (a symlink is removed, not followed); missing is fine."""
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(top)
        return
    # Folders are removed after their contents: a stack of (folder, listed yet).
    stack: list[tuple[str, bool]] = [(top, False)]
    while stack:
        folder, listed = stack.pop()
        if listed:
            os.rmdir(folder)
            continue
        stack.append((folder, True))
        with os.scandir(folder) as it:
            for de in it:
                if de.is_dir(follow_symlinks=False):
                    stack.append((de.path, False))
                else:
                    os.unlink(de.path)

