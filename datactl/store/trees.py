"""Building trees from a flat, sorted list of paths, and finding one path in a tree.

Walking every path of a tree is ``datactl.store.walk.walk_files``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from datactl.core.errors import UsageError
from datactl.format.objects import DIR, Tree, TreeEntry, decode_tree, encode_tree_dicts, tree_entry_dicts
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
    return _stored_tree(repo, Tree(tuple(entries)).encode(), sum(e.size for e in entries))


def _stored_tree(repo: Repository, data: bytes, size: int) -> TreeEntry:
    """Store a tree's bytes; the entry that names it (name left empty), ``size`` the sum of its entries' sizes."""
    return TreeEntry(name="", kind=DIR, size=size, digest=repo.put(ObjectType.TREE, data))


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
        stack[-1][1].append(entry if entry.name == parts[-1] else replace(entry, name=parts[-1]))
    while len(stack) > 1:
        close_top()
    return write_tree(repo, stack[0][1]).digest


@dataclass
class _Folder:
    """The changes under one folder: files changed in it (None: deleted) and its changed sub-folders."""

    files: dict[str, TreeEntry | None] = field(default_factory=dict)
    folders: dict[str, "_Folder"] = field(default_factory=dict)


def _stored_entries(repo: Repository, tree_id: str | None) -> dict[str, dict]:
    if tree_id is None:
        return {}
    names, raw = tree_entry_dicts(tree_id, repo.read(tree_id))
    return dict(zip(names, raw))


def _write_stored(repo: Repository, entries: dict[str, dict]) -> TreeEntry:
    """``write_tree`` of entries as stored (name -> entry dict)."""
    ordered = [entries[name] for name in sorted(entries)]  # code-point order: byte order of UTF-8 names
    return _stored_tree(repo, encode_tree_dicts(ordered), sum(d["size"] for d in ordered))


def patch_tree(repo: Repository, base_tree: str, changes: Iterable[tuple[str, TreeEntry | None]]) -> str:
    """The root tree id of ``base_tree`` with ``changes`` applied: (path, new entry, or None for a deletion).

    Only the folders along changed paths are read and written again, so a
    small change to a big tree costs what changed. The result equals
    ``build_tree`` of the changed listing. A folder left empty disappears.

    The entries that stay are carried over as stored, not decoded again: the
    trees of this store were checked when they were fetched (or written
    here), and a folder of a thousand files changed in one costs a parse and
    a write, not a thousand entries checked and encoded.
    """
    root = _Folder()
    for path, entry in changes:
        parts = path.split("/")
        node = root
        for part in parts[:-1]:
            node = node.folders.setdefault(part, _Folder())
        node.files[parts[-1]] = entry
    # Post-order without recursion: a folder is written once all its changed sub-folders are.
    written: dict[int, TreeEntry | None] = {}
    # Items: (folder, its base tree id) to open, or (folder, its base entries) to write; only the open
    # folders along one path hold their entries, so memory follows the depth, not the width, of the change.
    stack: list[tuple[_Folder, str | None | dict[str, dict]]] = [(root, base_tree)]
    while stack:
        node, base = stack.pop()
        if not isinstance(base, dict):
            current = _stored_entries(repo, base)
            stack.append((node, current))
            for name, sub in node.folders.items():
                was = current.get(name)
                stack.append((sub, was["digest"] if was is not None and was["kind"] == DIR else None))
            continue
        current = base
        for name, entry in node.files.items():
            if entry is None and name in current and current[name]["kind"] != DIR:
                del current[name]
        for name, sub in node.folders.items():
            result = written.pop(id(sub))
            if result is not None:
                current[name] = replace(result, name=name).to_dict()
            elif name in current and current[name]["kind"] == DIR:
                del current[name]
        for name, entry in node.files.items():
            if entry is not None:
                if name in current and current[name]["kind"] == DIR:
                    raise UsageError(f"{name!r} is both a file and a folder (or listed twice) in the same folder", "rename one of them")
                current[name] = replace(entry, name=name).to_dict()
        if node is root:
            return _write_stored(repo, current).digest
        written[id(node)] = _write_stored(repo, current) if current else None
    raise AssertionError("unreachable: the root is always written last")


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


class DecodedTrees:
    """Trees decoded and checked, the most recently used kept up to ``max_entries`` entries in all: a tree never
    changes, and decoding a folder of many files costs far more than reading its bytes again. Not thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self._trees: OrderedDict[str, Tree] = OrderedDict()
        self._entries = 0
        self._max_entries = max_entries

    def get(self, oid: str, read: Callable[[str], bytes]) -> Tree:
        """The tree ``oid``, decoded from ``read(oid)`` unless it is kept."""
        tree = self._trees.get(oid)
        if tree is not None:
            self._trees.move_to_end(oid)
            return tree
        tree = decode_tree(oid, read(oid))
        self._trees[oid] = tree
        self._entries += len(tree.entries)
        while self._entries > self._max_entries and len(self._trees) > 1:
            self._entries -= len(self._trees.popitem(last=False)[1].entries)
        return tree
