"""Walking the object graph: the one place that does it.

Commits name parents (and inputs) and a root tree; trees name sub-trees and
files; a file names its chunks inline or through a chunk list. Every walk of
that graph goes through here, reading objects in batches so that a remote
store costs a few ranged reads per level rather than one request per object,
and iterating rather than recursing, so no depth of history or of folders
overflows the stack:

* ``walk_commits``: commits level by level from some starting points;
* ``walk_trees``: trees level by level, each once;
* ``walk_files``: the files and symlinks below a tree, in byte order of path.

The walkers read through a ``ReadBatch`` function: given ids, it returns the
verified bytes of those the store holds (ids it lacks are left out, so a caller
decides whether an absence is damage or, in a partial clone, expected).
"""

from __future__ import annotations

from itertools import compress
from operator import ne
from typing import Callable, Container, Generic, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar

from datactl.core.errors import DatactlError
from datactl.format.objects import DIR, Commit, Tree, TreeEntry, decode_commit, decode_tree, decode_tree_entry, tree_entry_dicts

ReadBatch = Callable[[Sequence[str]], Mapping[str, bytes]]
ReadCommits = Callable[[Sequence[str]], Mapping[str, "bytes | Commit"]]
OnDamaged = Callable[[str, DatactlError], None]
T = TypeVar("T")

# Objects read together per level step; bounds memory on wide graphs.
BATCH = 2_000
# Trees are read in batches of about this many bytes (and at most BATCH): a level of a thousand folders of a
# thousand files each is 140 MB of trees. The first batch is small; later ones are sized by what came before.
TREE_BATCH_BYTES = 16 << 20
FIRST_TREE_BATCH = 32
# Sub-trees read together when a path-ordered walk first reaches one of them.
TREE_BATCH = 256


class BatchReader(Protocol):
    """Anything that reads verified objects by id in batches (ObjectReader, Repository, ReadThroughStore)."""

    def read_batch(self, oids: Iterable[str], max_gap: int = ...) -> Mapping[str, bytes]: ...

    def has(self, oid: str) -> bool: ...


def present(reader: BatchReader) -> ReadBatch:
    """A ReadBatch over ``reader`` that leaves out ids the store does not hold."""
    return lambda ids: reader.read_batch([i for i in ids if reader.has(i)])


def walk_commits(
    read: ReadBatch | ReadCommits,
    starts: Iterable[str],
    *,
    inputs: bool = False,
    stop: Container[str] = frozenset(),
    cut: Container[str] = frozenset(),
    on_absent: Callable[[str], None] | None = None,
    on_damaged: OnDamaged | None = None,
) -> Iterator[tuple[str, Commit]]:
    """Every commit reachable from ``starts`` through parents (and ``inputs``), each once, level by level.

    Commits in ``stop`` are neither yielded nor followed; those in ``cut`` are
    yielded but their parents are not followed (where a shallow history ends). An id the store does
    not hold is passed to ``on_absent`` (and not followed). A commit that does
    not decode raises, or with ``on_damaged`` is reported there and not followed.
    ``read`` may return decoded commits instead of bytes.
    """
    stopped = stop
    seen: set[str] = set()
    level = [c for c in dict.fromkeys(starts) if c and c not in stopped]
    seen.update(level)
    while level:
        nxt: list[str] = []
        for i in range(0, len(level), BATCH):
            batch = level[i : i + BATCH]
            got = read(batch)
            for cid in batch:
                raw = got.get(cid)
                if raw is None:
                    if on_absent is not None:
                        on_absent(cid)
                    continue
                try:
                    commit = raw if isinstance(raw, Commit) else decode_commit(cid, raw)
                except DatactlError as exc:
                    if on_damaged is None:
                        raise
                    on_damaged(cid, exc)
                    continue
                yield cid, commit
                for p in (*(commit.parents if cid not in cut else ()), *(commit.inputs if inputs else ())):
                    if p not in seen and p not in stopped:
                        seen.add(p)
                        nxt.append(p)
        level = nxt


class TreeVisit(Generic[T]):
    """A tree reached by ``walk_trees``: its id, the tree (None when the store lacks it), the root's tag,
    and the folder's path below the root ('' for the root, else ending in '/')."""

    __slots__ = ("id", "tree", "tag", "path")

    def __init__(self, tree_id: str, tree: Tree | None, tag: T, path: str) -> None:
        self.id = tree_id
        self.tree = tree
        self.tag = tag
        self.path = path


def walk_trees(
    read: ReadBatch, roots: Iterable[tuple[str, T]], seen: set[str] | None = None, on_damaged: OnDamaged | None = None
) -> Iterator[TreeVisit[T]]:
    """Every tree below the ``roots`` (tree id, tag), each once, level by level; a sub-tree carries its root's tag.

    ``seen`` (updated in place) lets several walks share their visited trees.
    A tree the store lacks is visited with ``tree`` None; one that does not
    decode raises, or with ``on_damaged`` is reported there and skipped.
    """
    seen = set() if seen is None else seen
    level: list[tuple[str, T, str]] = []
    for tid, tag in roots:
        if tid not in seen:
            seen.add(tid)
            level.append((tid, tag, ""))
    batch_size = FIRST_TREE_BATCH
    while level:
        nxt: list[tuple[str, T, str]] = []
        i = 0
        while i < len(level):
            batch = level[i : i + batch_size]
            i += len(batch)
            got = dict(read([t for t, _, _ in batch]))
            if got:
                average = sum(len(raw) for raw in got.values()) // len(got) + 1
                batch_size = max(FIRST_TREE_BATCH, min(BATCH, TREE_BATCH_BYTES // average))
            for tid, tag, path in batch:
                raw = got.pop(tid, None)  # let go of each tree's bytes once it is decoded
                try:
                    tree = decode_tree(tid, raw) if raw is not None else None
                except DatactlError as exc:
                    if on_damaged is None:
                        raise
                    on_damaged(tid, exc)
                    continue
                yield TreeVisit(tid, tree, tag, path)
                if tree is None:
                    continue
                for e in tree.entries:
                    if e.kind == DIR and e.digest not in seen:
                        seen.add(e.digest)
                        nxt.append((e.digest, tag, f"{path}{e.name}/"))
        level = nxt


def path_order(entry: TreeEntry) -> str:
    """The sort key that lists a folder's entries in byte order of their full paths (a folder sorts as 'name/')."""
    return entry.name + "/" if entry.kind == DIR else entry.name


def walk_files(reader: BatchReader, tree_id: str, prefix: str = "", max_gap: int = 0) -> Iterator[tuple[str, TreeEntry]]:
    """(path, entry) for every file and symlink below ``tree_id``, in byte order of path.

    Only the folders along the current path are held, plus sub-trees read
    ahead in batches of ``TREE_BATCH`` (one coalesced read per batch, so a
    version with thousands of folders costs a handful of requests).
    """
    # Read ahead as bytes, decoded only when walked into: a decoded entry takes several times its bytes, and a batch
    # of big folders (256 x 1,000 files) held decoded took 150 MB.
    loaded: dict[str, bytes] = {}

    def load(ids: Sequence[str]) -> None:
        want = [i for i in dict.fromkeys(ids) if i not in loaded]
        loaded.update(reader.read_batch(want, max_gap))

    def entries_of(tid: str) -> tuple[list[TreeEntry], list[str]]:
        if tid not in loaded:
            load([tid])
        entries = sorted(decode_tree(tid, loaded.pop(tid)).entries, key=path_order)
        return entries, [e.digest for e in entries if e.kind == DIR]

    # One frame per open folder: its sorted entries, its sub-tree ids in order, its path prefix, and
    # [next entry, next sub-tree] positions.
    entries, dirs = entries_of(tree_id)
    stack: list[tuple[list[TreeEntry], list[str], str, list[int]]] = [(entries, dirs, prefix, [0, 0])]
    while stack:
        entries, dirs, pre, pos = stack[-1]
        if pos[0] >= len(entries):
            stack.pop()
            continue
        entry = entries[pos[0]]
        pos[0] += 1
        path = pre + entry.name
        if entry.kind != DIR:
            yield path, entry
            continue
        if entry.digest not in loaded:
            load(dirs[pos[1] : pos[1] + TREE_BATCH])
        pos[1] += 1
        sub_entries, sub_dirs = entries_of(entry.digest)
        stack.append((sub_entries, sub_dirs, path + "/", [0, 0]))


class TreeReader(Protocol):
    def read(self, oid: str) -> bytes: ...


Change = tuple[str, "TreeEntry | None", "TreeEntry | None"]


def _differing(reader: TreeReader, ta: str | None, tb: str | None) -> Iterator[tuple[str, dict | None, dict | None]]:
    """(name, entry in ``ta``, entry in ``tb``) as stored, for the names whose entries are not stored alike, in order."""
    names_a, raw_a = tree_entry_dicts(ta, reader.read(ta)) if ta else ([], [])
    names_b, raw_b = tree_entry_dicts(tb, reader.read(tb)) if tb else ([], [])
    if names_a == names_b:  # the usual case, files changed in place: entries compared in pairs, in C
        for i in compress(range(len(raw_a)), map(ne, raw_a, raw_b)):
            yield names_a[i], raw_a[i], raw_b[i]
        return
    i = j = 0
    while i < len(names_a) or j < len(names_b):
        if j >= len(names_b) or (i < len(names_a) and names_a[i] < names_b[j]):
            yield names_a[i], raw_a[i], None
            i += 1
        elif i >= len(names_a) or names_b[j] < names_a[i]:
            yield names_b[j], None, raw_b[j]
            j += 1
        else:
            if raw_a[i] != raw_b[j]:
                yield names_a[i], raw_a[i], raw_b[j]
            i, j = i + 1, j + 1


def walk_changes(reader: TreeReader, a: str | None, b: str | None, prefix: str = "") -> Iterator[Change]:
    """(path, entry in ``a``, entry in ``b``) for every file or symlink that differs between two trees.

    Sub-trees equal on both sides are skipped without being read, and in the trees that are read, entries stored
    alike are skipped without being decoded: the cost follows the change, not the size of the trees. A folder on one
    side and a file on the other give the folder's files and the file. Folders are visited depth first, each
    folder's names in sorted order.
    """
    # Work items: ("dir", a, b, prefix) to expand, or ("leaf", path, x, y) to yield.
    stack: list[tuple] = [("dir", a, b, prefix)] if a != b else []
    while stack:
        item = stack.pop()
        if item[0] == "leaf":
            yield item[1], item[2], item[3]
            continue
        _, ta, tb, pre = item
        todo: list[tuple] = []
        for name, da, db in _differing(reader, ta, tb):
            x = decode_tree_entry(ta, da) if da is not None else None
            y = decode_tree_entry(tb, db) if db is not None else None
            if x is not None and y is not None and (x.kind, x.mode, x.digest) == (y.kind, y.mode, y.digest):
                continue
            path = pre + name
            x_dir, y_dir = x is not None and x.kind == DIR, y is not None and y.kind == DIR
            if x_dir or y_dir:
                if y is not None and not y_dir:
                    todo += [("dir", x.digest, None, path + "/"), ("leaf", path, None, y)]  # type: ignore[union-attr]
                elif x is not None and not x_dir:
                    todo += [("leaf", path, x, None), ("dir", None, y.digest, path + "/")]  # type: ignore[union-attr]
                else:
                    todo.append(("dir", x.digest if x_dir else None, y.digest if y_dir else None, path + "/"))  # type: ignore[union-attr]
            else:
                todo.append(("leaf", path, x, y))
        stack.extend(reversed(todo))
