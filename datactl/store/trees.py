"""Building trees from a flat, sorted list of paths, and finding one path in a tree.

Walking every path of a tree is ``datactl.store.walk.walk_files``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from datactl.core.errors import UsageError
from datactl.core.ids import object_id
from datactl.format.objects import DIR, Tree, TreeEntry, decode_tree, encode_tree_dicts, tree_entry_dicts
from datactl.format.pack import ObjectType
from datactl.store.repository import Repository
from datactl.store.walk import TREE_BATCH

# Trees stored together by ``TreeBatch``: at most this many, or about this many bytes.
PUT_BATCH_BYTES = 8 << 20


class TreeBatch:
    """Trees stored a batch at a time: a tree's id is known from its bytes at once, and one index query and one
    claim serve a batch (a commit of 160 changed folders spent 40 ms asking for them one by one). Nothing is
    stored until ``flush``, which a writer calls before it names the trees anywhere."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._pending: list[tuple[str, bytes]] = []
        self._bytes = 0

    def put(self, data: bytes) -> str:
        oid = object_id(data)
        self._pending.append((oid, data))
        self._bytes += len(data)
        if len(self._pending) >= TREE_BATCH or self._bytes >= PUT_BATCH_BYTES:
            self.flush()
        return oid

    def flush(self) -> None:
        if self._pending:
            self._repo.put_many(ObjectType.TREE, self._pending)
            self._pending, self._bytes = [], 0


def write_tree(repo: Repository, entries: list[TreeEntry]) -> TreeEntry:
    """Store one directory's tree; return the entry that names it (name left empty)."""
    folder: dict[str, dict] = {}
    for entry in entries:
        _add_entry(folder, entry.to_dict())
    trees = TreeBatch(repo)
    tree = _write_stored(trees, folder)
    trees.flush()
    return tree


def _add_entry(folder: dict[str, dict], entry: dict) -> None:
    """Add a stored entry to a folder's entries by name; a name already there is refused."""
    if entry["name"] in folder:
        raise _twice(entry["name"])
    folder[entry["name"]] = entry


def _twice(name: str) -> UsageError:
    """A name met twice in one folder: a path that is both a file and a folder is the user's to resolve."""
    return UsageError(f"{name!r} is both a file and a folder (or listed twice) in the same folder", "rename one of them")


def _tree_entry(tree_id: str, size: int) -> TreeEntry:
    """The entry that names a stored tree (name left empty), ``size`` the sum of its entries' sizes."""
    return TreeEntry(name="", kind=DIR, size=size, digest=tree_id)


def build_tree(repo: Repository, files: Iterable[tuple[str, TreeEntry]]) -> str:
    """Store the trees for ``files`` and return the root tree id.

    ``files`` yields (path, entry) in byte order of path, so each folder's
    contents arrive together; only the open folders along the current path
    are held in memory.
    """
    return build_tree_from_dicts(repo, ((path, entry.to_dict()) for path, entry in files))


def build_tree_from_dicts(repo: Repository, files: Iterable[tuple[str, dict]]) -> str:
    """``build_tree`` of entries as a tree stores them (``TreeEntry.to_dict``; their names are set from the paths)."""
    stack: list[tuple[list[str], dict[str, dict]]] = [([], {})]
    trees = TreeBatch(repo)

    def close_top() -> None:
        parts, entries = stack.pop()
        _add_entry(stack[-1][1], replace(_write_stored(trees, entries), name=parts[-1]).to_dict())

    open_folder = ""  # the folder of the last entry, the one on top of the stack: most entries share it
    for path, entry in files:
        cut = path.rfind("/")
        folder_path = path[:cut] if cut >= 0 else ""
        if folder_path != open_folder:
            folder = folder_path.split("/") if folder_path else []
            while stack[-1][0] != folder[: len(stack[-1][0])]:
                close_top()
            while len(stack[-1][0]) < len(folder):
                stack.append((folder[: len(stack[-1][0]) + 1], {}))
            open_folder = folder_path
        entry["name"] = path[cut + 1 :]
        _add_entry(stack[-1][1], entry)
    while len(stack) > 1:
        close_top()
    root = _write_stored(trees, stack[0][1]).digest
    trees.flush()
    return root


@dataclass
class _Folder:
    """The changes under one folder: files changed in it (None: deleted) and its changed sub-folders."""

    files: dict[str, TreeEntry | None] = field(default_factory=dict)
    folders: dict[str, "_Folder"] = field(default_factory=dict)


def _write_stored(trees: TreeBatch, entries: dict[str, dict]) -> TreeEntry:
    """``write_tree`` of entries as stored (name -> entry dict)."""
    ordered = [entries[name] for name in sorted(entries)]  # code-point order: byte order of UTF-8 names
    return _tree_entry(trees.put(encode_tree_dicts(ordered)), sum(d["size"] for d in ordered))


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
    # Base trees read ahead as bytes, a batch of the folders next to be opened (the top of the stack) at a time.
    loaded: dict[str, bytes] = {}
    trees = TreeBatch(repo)

    def entries_of(tree_id: str | None) -> dict[str, dict]:
        if tree_id is None:
            return {}
        if tree_id not in loaded:
            upcoming = []
            for _, item in reversed(stack):
                if isinstance(item, dict) or len(upcoming) >= TREE_BATCH:
                    break
                if item is not None:
                    upcoming.append(item)
            loaded.update(repo.read_batch(dict.fromkeys([tree_id, *upcoming])))
        names, raw = tree_entry_dicts(tree_id, loaded.pop(tree_id))
        return dict(zip(names, raw))

    while stack:
        node, base = stack.pop()
        if not isinstance(base, dict):
            current = entries_of(base)
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
                    raise _twice(name)
                current[name] = replace(entry, name=name).to_dict()
        if node is root:
            root_id = _write_stored(trees, current).digest
            trees.flush()
            return root_id
        written[id(node)] = _write_stored(trees, current) if current else None
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
