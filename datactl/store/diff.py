"""Differences between two versions: added, removed, modified and renamed files.

Tree against tree skips every sub-tree whose id is equal on both sides, so a
diff costs what changed. Renames are found by content: a removed and an added
file with the same digest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

from datactl.core.sortedmerge import merge_by_path
from datactl.format.objects import TreeEntry
from datactl.store.walk import BatchReader, TreeReader, walk_changes, walk_files

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


def _change(path: str, old: TreeEntry | None, new: TreeEntry | None) -> Change | None:
    """The change of one path, or None when both sides hold the same content."""
    if old is None:
        return Change(ADDED, path, None, 0, new.size, None, new.digest)  # type: ignore[union-attr]
    if new is None:
        return Change(REMOVED, path, None, old.size, 0, old.digest, None)
    if (old.kind, old.mode, old.digest) == (new.kind, new.mode, new.digest):
        return None
    return Change(MODIFIED, path, None, old.size, new.size, old.digest, new.digest)


def _flat_changes(old: Iterable[tuple[str, TreeEntry]], new: Iterable[tuple[str, TreeEntry]]) -> Iterator[Change]:
    for path, o, n in merge_by_path(old, new, lambda x: x[0], lambda x: x[0]):
        change = _change(path, o[1] if o else None, n[1] if n else None)
        if change is not None:
            yield change


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


def diff_trees(repo: TreeReader, old_tree: str | None, new_tree: str | None) -> DiffResult:
    """Changes from ``old_tree`` to ``new_tree`` (either may be None for empty)."""
    changes = (_change(path, o, n) for path, o, n in walk_changes(repo, old_tree, new_tree))
    return detect_renames(c for c in changes if c is not None)


def diff_tree_and_entries(repo: BatchReader, old_tree: str | None, new: Iterable[tuple[str, TreeEntry]]) -> DiffResult:
    """Changes from a stored tree to a path-sorted listing (e.g. the files on disk)."""
    old = walk_files(repo, old_tree) if old_tree else iter(())
    return detect_renames(_flat_changes(old, new))

