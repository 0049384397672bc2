"""Reading a store's objects through a local cache of the same format.

Training code reads versions without a workspace: objects come from a remote
store, are verified, kept in a local cache store, and read from there next
time. With no remote (offline, or a workspace's own store), only what is
already cached can be read.

What was downloaded becomes durable in the cache without anyone calling
``close``: the first download is flushed when the call that made it returns,
later ones at most every ``FLUSH_INTERVAL`` seconds (a flush writes and fsyncs
a pack and an index file: doing it per small read would cost more than the
read), and the rest when the store is closed, garbage-collected, or the
process exits, worker processes of ``multiprocessing`` included.
"""

from __future__ import annotations

import collections
import multiprocessing.util
import os
import time
from typing import Iterable, Iterator, Mapping, Sequence

from datactl.core.errors import ObjectMissing, StorageError
from datactl.format.objects import Commit, Tree, TreeEntry, decode_commit
from datactl.remote.remotestore import RemoteStore
from datactl.remote.transfer import DEFAULT_JOBS, Downloader
from datactl.store.filedata import chunk_ids_of
from datactl.store.repository import Repository
from datactl.store.trees import DecodedTrees
from datactl.store.walk import walk_trees

RECENT_BYTES = 64 * 1024 * 1024
# Decoded tree entries kept for path lookups: reading file after file of a version looks up the same folders.
TREE_CACHE_ENTRIES = 200_000
# Seconds between flushes of what was downloaded (see the module doc; benchmarks/bench_api.py measures it).
FLUSH_INTERVAL = 2.0
# multiprocessing runs finalizers at exit in order of decreasing priority; any value will do, none depends on another.
EXIT_PRIORITY = 10


def _finish(cache: Repository, downloader: Downloader | None, remote: RemoteStore | None, pid: int) -> None:
    """Make the cache durable and release everything (run once: by close, garbage collection, or at exit)."""
    if os.getpid() != pid:
        return  # a forked child inherited the open packs; only their owner may seal them
    try:
        cache.flush()
    finally:
        cache.close()
        if downloader is not None:
            downloader.close()
        if remote is not None:
            remote.close()


class ReadThroughStore:
    """Objects from ``cache`` (a local Repository), downloading misses from ``remote``."""

    def __init__(self, cache: Repository, remote: RemoteStore | None, jobs: int = DEFAULT_JOBS, unavailable: StorageError | None = None) -> None:
        """``unavailable``: why there is no remote to read from (unreachable, access refused, no store there), if that is the case."""
        self.cache = cache
        self.remote = remote
        self.sources = cache.sources
        self.unavailable = unavailable
        self._downloader = Downloader(remote, cache, jobs) if remote is not None else None
        # Just-downloaded objects, so a read does not have to seal the cache's open pack to see them.
        self._recent: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._recent_bytes = 0
        self._last_flush = float("-inf")
        self._trees = DecodedTrees(TREE_CACHE_ENTRIES)
        # multiprocessing's Finalize, not weakref.finalize: it also runs when a worker process exits (atexit does not).
        self._finish = multiprocessing.util.Finalize(self, _finish, (cache, self._downloader, remote, os.getpid()), exitpriority=EXIT_PRIORITY)

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
            raise self._not_cached(missing[0])
        for oid, raw in self._downloader.download(missing, keep=lambda e: True, flush=False).items():
            self._remember(oid, raw)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            self.flush()

    def _not_cached(self, oid: str) -> Exception:
        """The error for an object the cache lacks when there is no remote to fetch it from: why there is none."""
        why = self.unavailable
        if why is not None:
            error = type(why)(f"{why.message}; and object {oid} was never fetched on this machine", why.hint)
            error.__cause__ = why
            return error
        return ObjectMissing(f"object {oid} is not cached and no remote is reachable", "connect to the remote (or set DATACTL_REMOTE) and try again")

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
        """A decoded tree; recently read ones are kept decoded (a folder of 2,000 files took 20 ms to decode per file read)."""
        return self._trees.get(oid, self.read)

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
        if loc is None and self.remote is None:
            raise self._not_cached(oid)
        if loc is None:
            raise ObjectMissing(f"object {oid} is neither cached nor on the remote")
        return loc.entry.raw_len

    def flush(self) -> None:
        """Make everything downloaded so far durable in the cache."""
        self.cache.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self._finish()


def prefetch_trees(store: ReadThroughStore, root_tree: str) -> None:
    """Download every tree below ``root_tree`` in one batch per level (not one request per folder)."""
    for _ in walk_trees(store.read_batch, [(root_tree, None)]):
        pass
