"""Differences between two versions: added, removed, modified and renamed files.

Tree against tree skips every sub-tree whose id is equal on both sides, so a
diff costs what changed. Renames are found by content: a removed and an added
file with the same digest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

from datactl.format.objects import DIR, TreeEntry
from datactl.store.repository import Repository
from datactl.core.sortedmerge import merge_by_path
from datactl.store.trees import walk_tree

ADDED, REMOVED, MODIFIED, RENAMED = "added", "removed", "modified", "renamed"


@dataclass(frozen=True)
class Change:
    status: str
    path: str
    old_path: str | None = None
    old_size: int = 0
    new_size: int = 0
    old_digest: str | None = None
    new_digest: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DiffResult:
    changes: list[Change] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for c in self.changes if c.status == status)

    @property
    def bytes_added(self) -> int:
        return sum(c.new_size for c in self.changes if c.status == ADDED)

    @property
    def bytes_removed(self) -> int:
        return sum(c.old_size for c in self.changes if c.status == REMOVED)

    @property
    def bytes_modified(self) -> int:
        return sum(c.new_size for c in self.changes if c.status == MODIFIED)

    def summary(self) -> dict:
        return {
            "added": self.count(ADDED),
            "removed": self.count(REMOVED),
            "modified": self.count(MODIFIED),
            "renamed": self.count(RENAMED),
            "bytes_added": self.bytes_added,
            "bytes_removed": self.bytes_removed,
            "bytes_modified": self.bytes_modified,
        }

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "changes": [c.to_dict() for c in self.changes]}


def _same(a: TreeEntry, b: TreeEntry) -> bool:
    return (a.kind, a.mode, a.digest) == (b.kind, b.mode, b.digest)


def _raw_tree_changes(repo: Repository, a: str | None, b: str | None, prefix: str = "") -> Iterator[Change]:
    if a == b:
        return
    old = {e.name: e for e in repo.read_tree(a).entries} if a else {}
    new = {e.name: e for e in repo.read_tree(b).entries} if b else {}
    for name in sorted(old.keys() | new.keys()):
        oe, ne = old.get(name), new.get(name)
        path = prefix + name
        if oe is not None and ne is not None and _same(oe, ne):
            continue
        o_dir = oe is not None and oe.kind == DIR
        n_dir = ne is not None and ne.kind == DIR
        if o_dir or n_dir:
            yield from _raw_tree_changes(repo, oe.digest if o_dir else None, ne.digest if n_dir else None, path + "/")  # type: ignore[union-attr]
            if o_dir and ne is not None and not n_dir:
                yield _added(path, ne)
            if n_dir and oe is not None and not o_dir:
                yield _removed(path, oe)
        elif oe is None:
            yield _added(path, ne)  # type: ignore[arg-type]
        elif ne is None:
            yield _removed(path, oe)
        else:
            yield Change(MODIFIED, path, None, oe.size, ne.size, oe.digest, ne.digest)


def _added(path: str, e: TreeEntry) -> Change:
    return Change(ADDED, path, None, 0, e.size, None, e.digest)


def _removed(path: str, e: TreeEntry) -> Change:
    return Change(REMOVED, path, None, e.size, 0, e.digest, None)


def _raw_flat_changes(old: Iterable[tuple[str, TreeEntry]], new: Iterable[tuple[str, TreeEntry]]) -> Iterator[Change]:
    for path, o, n in merge_by_path(old, new, lambda x: x[0], lambda x: x[0]):
        if o is None:
            yield _added(path, n[1])  # type: ignore[index]
        elif n is None:
            yield _removed(path, o[1])
        elif not _same(o[1], n[1]):
            yield Change(MODIFIED, path, None, o[1].size, n[1].size, o[1].digest, n[1].digest)


def detect_renames(changes: Iterable[Change]) -> DiffResult:
    """Pair each removed file with an added file of the same (non-empty) content."""
    changes = list(changes)
    removed_by_digest: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(changes):
        if c.status == REMOVED and c.old_size > 0 and c.old_digest:
            removed_by_digest[c.old_digest].append(i)
    renamed_from: dict[int, int] = {}  # index of added -> index of removed
    for i, c in enumerate(changes):
        candidates = removed_by_digest.get(c.new_digest or "") if c.status == ADDED and c.new_size > 0 else None
        if candidates:
            renamed_from[i] = candidates.pop(0)
    consumed = set(renamed_from.values())
    out: list[Change] = []
    for i, c in enumerate(changes):
        if i in consumed:
            continue
        if i in renamed_from:
            r = changes[renamed_from[i]]
            c = Change(RENAMED, c.path, r.path, r.old_size, c.new_size, r.old_digest, c.new_digest)
        out.append(c)
    return DiffResult(sorted(out, key=lambda c: c.path))


def diff_trees(repo: Repository, old_tree: str | None, new_tree: str | None) -> DiffResult:
    """Changes from ``old_tree`` to ``new_tree`` (either may be None for empty)."""
    return detect_renames(_raw_tree_changes(repo, old_tree, new_tree))


def diff_tree_and_entries(repo: Repository, old_tree: str | None, new: Iterable[tuple[str, TreeEntry]]) -> DiffResult:
    """Changes from a stored tree to a path-sorted listing (e.g. the files on disk)."""
    old = walk_tree(repo, old_tree) if old_tree else iter(())
    return detect_renames(_raw_flat_changes(old, new))

