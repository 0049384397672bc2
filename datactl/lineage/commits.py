"""Where a lineage index reads commits from (only to catch up with refs, or to rebuild)."""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, Sequence

from datactl.format.objects import Commit, decode_commit
from datactl.format.pack import ObjectType
from datactl.store.packread import META_GAP
from datactl.store.reader import ObjectReader


class CommitSource(Protocol):
    """Reads commit objects of one store (only needed to catch up or rebuild the index)."""

    commits_read: int

    def has(self, cid: str) -> bool: ...

    def read_commits(self, ids: Sequence[str]) -> dict[str, Commit]:
        """The commits among ``ids`` that the store holds, read in as few requests as it can."""

    def all_commit_ids(self) -> Iterable[str]: ...


class StoreCommits:
    """The commits of a store, read through its object reader (a workspace's store, a cache, a remote).

    ``refresh`` brings the reader's index up to date (a remote syncs its index
    files): once before the first use, and again when an id is not found.
    """

    def __init__(self, objects: ObjectReader, refresh: Callable[[], object] | None = None) -> None:
        self.objects = objects
        self.commits_read = 0
        self._refresh = refresh
        self._fresh = refresh is None

    def _ensure_fresh(self, force: bool = False) -> None:
        if self._refresh is not None and (force or not self._fresh):
            self._refresh()
            self._fresh = True

    def has(self, cid: str) -> bool:
        self._ensure_fresh()
        return self.objects.has(cid)

    def read_commits(self, ids: Sequence[str]) -> dict[str, Commit]:
        self._ensure_fresh()
        ids = list(dict.fromkeys(ids))
        if self._refresh is not None and not all(self.objects.has(c) for c in ids):
            self._ensure_fresh(force=True)  # written since we last looked
        held = [c for c in ids if self.objects.has(c)]
        out = {cid: decode_commit(cid, raw) for cid, raw in self.objects.read_batch(held, META_GAP).items()}
        self.commits_read += len(out)
        return out

    def all_commit_ids(self) -> Iterable[str]:
        self._ensure_fresh(force=True)
        with self.objects.index_lock:
            return list(self.objects.index.iter_ids(ObjectType.COMMIT))


class Prefetched:
    """Every commit of a store, read in one batch on first use (for walking a whole unindexed history)."""

    def __init__(self, inner: CommitSource) -> None:
        self.inner = inner
        self._all: dict[str, Commit] | None = None
        self.commits_read = 0

    def has(self, cid: str) -> bool:
        return self.inner.has(cid)

    def read_commits(self, ids: Sequence[str]) -> dict[str, Commit]:
        if self._all is None:
            self._all = self.inner.read_commits(list(self.inner.all_commit_ids()))
            self.commits_read = len(self._all)
        return {c: self._all[c] for c in ids if c in self._all}

    def all_commit_ids(self) -> Iterable[str]:
        return self.inner.all_commit_ids()
