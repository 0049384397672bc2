"""Reading a store's objects through a local cache of the same format.

Training code reads versions without a workspace: objects come from a remote
store, are verified, kept in a local cache store, and read from there next
time. With no remote (offline, or a workspace's own store), only what is
already cached can be read.
"""

from __future__ import annotations

import collections
from typing import Iterable, Iterator, Mapping, Sequence

from datactl.core.errors import ObjectMissing
from datactl.format.objects import Commit, Tree, TreeEntry, decode_commit, decode_tree
from datactl.remote.remotestore import RemoteStore
from datactl.remote.transfer import DEFAULT_JOBS, Downloader
from datactl.store.filedata import chunk_ids_of
from datactl.store.repository import Repository
from datactl.store.walk import walk_trees

RECENT_BYTES = 64 * 1024 * 1024


class ReadThroughStore:
    """Objects from ``cache`` (a local Repository), downloading misses from ``remote``."""

    def __init__(self, cache: Repository, remote: RemoteStore | None, jobs: int = DEFAULT_JOBS) -> None:
        self.cache = cache
        self.remote = remote
        self._downloader = Downloader(remote, cache, jobs) if remote is not None else None
        # Just-downloaded objects, so a read does not have to seal the cache's open pack to see them.
        self._recent: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._recent_bytes = 0

    @property
    def bytes_downloaded(self) -> int:
        """Bytes fetched from the remote so far (stored, i.e. compressed, sizes)."""
        return self._downloader.bytes_downloaded if self._downloader else 0

    @property
    def requests(self) -> int:
        return self._downloader.requests if self._downloader else 0

    def ensure(self, oids: Iterable[str]) -> None:
        """Make every id local (one batched, parallel download for the misses)."""
        missing = [o for o in dict.fromkeys(oids) if not self.cache.has(o)]
        if not missing:
            return
        if self._downloader is None:
            raise ObjectMissing(
                f"object {missing[0]} is not cached and no remote is reachable",
                "connect to the remote (or set DATACTL_REMOTE) and try again",
            )
        for oid, raw in self._downloader.download(missing, keep=lambda e: True, flush=False).items():
            self._remember(oid, raw)

    def _remember(self, oid: str, raw: bytes) -> None:
        self._recent[oid] = raw
        self._recent_bytes += len(raw)
        while self._recent_bytes > RECENT_BYTES and len(self._recent) > 1:
            _, old = self._recent.popitem(last=False)
            self._recent_bytes -= len(old)

    def read(self, oid: str) -> bytes:
        raw = self._recent.get(oid)
        if raw is not None:
            return raw
        self.ensure([oid])
        raw = self._recent.get(oid)
        return raw if raw is not None else self.cache.read(oid)

    def read_many(self, oids: list[str]) -> Iterator[bytes]:
        self.ensure(oids)
        for oid in oids:
            yield self.read(oid)

    def read_batch(self, oids: Iterable[str], max_gap: int = 0) -> dict[str, bytes]:
        """Every id's bytes (a BatchReader for walks): misses downloaded in one batch."""
        wanted = list(dict.fromkeys(oids))
        self.ensure(wanted)
        return {oid: self.read(oid) for oid in wanted}

    def has(self, oid: str) -> bool:
        return self.cache.has(oid) or (self.remote is not None and self.remote.index.has(oid))

    def read_commit(self, oid: str) -> Commit:
        return decode_commit(oid, self.read(oid))

    def read_tree(self, oid: str) -> Tree:
        return decode_tree(oid, self.read(oid))

    # -- ChunkSource, for Dataset.open -----------------------------------------------

    def chunk_ids(self, entry: TreeEntry) -> Sequence[str]:
        return chunk_ids_of(self, entry)  # type: ignore[arg-type]

    def cached(self, oid: str) -> bytes | None:
        return self._recent.get(oid)

    def fetch(self, oids: Sequence[str]) -> Mapping[str, bytes]:
        """Download the misses among ``oids`` in one batch; return the first one's bytes."""
        self.ensure(oids)
        return {oids[0]: self.read(oids[0])}

    def raw_size(self, oid: str) -> int:
        """An object's size without downloading it."""
        loc = self.cache.index.lookup(oid)
        if loc is None and self.remote is not None:
            loc = self.remote.index.lookup(oid)
        if loc is None:
            raise ObjectMissing(f"object {oid} is neither cached nor on the remote")
        return loc.entry.raw_len

    def flush(self) -> None:
        """Make everything downloaded so far durable in the cache."""
        self.cache.flush()

    def close(self) -> None:
        self.cache.flush()
        self.cache.close()
        if self._downloader is not None:
            self._downloader.close()
        if self.remote is not None:
            self.remote.close()


def prefetch_trees(store: ReadThroughStore, root_tree: str) -> None:
    """Download every tree below ``root_tree`` in one batch per level (not one request per folder)."""
    for _ in walk_trees(store.read_batch, [(root_tree, None)]):
        pass
