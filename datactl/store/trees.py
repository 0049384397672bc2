"""Building trees from a flat, sorted list of paths, and finding one path in a tree.

Walking every path of a tree is ``datactl.store.walk.walk_files``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from datactl.core.errors import UsageError
from datactl.format.objects import DIR, Tree, TreeEntry
from datactl.format.pack import ObjectType
from datactl.store.repository import Repository


def _name_key(entry: TreeEntry) -> bytes:
    return entry.name.encode("utf-8")


def write_tree(repo: Repository, entries: list[TreeEntry]) -> TreeEntry:
    """Store one directory's tree; return the entry that names it (name left empty)."""
    entries.sort(key=_name_key)
    for a, b in zip(entries, entries[1:]):
        if a.name == b.name:
            raise UsageError(f"{a.name!r} is both a file and a folder (or listed twice) in the same folder", "rename one of them")
    tree = Tree(tuple(entries))
    tree_id = repo.put(ObjectType.TREE, tree.encode())
    return TreeEntry(name="", kind=DIR, size=sum(e.size for e in entries), digest=tree_id)


def build_tree(repo: Repository, files: Iterable[tuple[str, TreeEntry]]) -> str:
    """Store the trees for ``files`` and return the root tree id.

    ``files`` yields (path, entry) in byte order of path, so each folder's
    contents arrive together; only the open folders along the current path
    are held in memory.
    """
    stack: list[tuple[list[str], list[TreeEntry]]] = [([], [])]

    def close_top() -> None:
        parts, entries = stack.pop()
        dir_entry = replace(write_tree(repo, entries), name=parts[-1])
        stack[-1][1].append(dir_entry)

    for path, entry in files:
        parts = path.split("/")
        folder = parts[:-1]
        while stack[-1][0] != folder[: len(stack[-1][0])]:
            close_top()
        while len(stack[-1][0]) < len(folder):
            stack.append((folder[: len(stack[-1][0]) + 1], []))
        stack[-1][1].append(replace(entry, name=parts[-1]))
    while len(stack) > 1:
        close_top()
    return write_tree(repo, stack[0][1]).digest


def lookup_path(repo: Repository, tree_id: str, path: str) -> TreeEntry | None:
    """The entry at ``path`` ('' is the root itself), or None."""
    if path in ("", "."):
        return TreeEntry(name="", kind=DIR, digest=tree_id)
    current = TreeEntry(name="", kind=DIR, digest=tree_id)
    for part in path.strip("/").split("/"):
        if current.kind != DIR:
            return None
        found = repo.read_tree(current.digest).get(part)
        if found is None:
            return None
        current = found
    return current
