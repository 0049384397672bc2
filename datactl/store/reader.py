"""Objects by id: an index lookup, then the pack reader.

``ObjectReader`` is how everything reads a store's objects by id (a
workspace's store, a remote read in place, the shared cache): it finds each
object's pack through an ``ObjectIndex`` and reads it with the one
``PackReader``. ``on_miss`` lets the owner react once when an id is not in the
index (a remote syncs its index files; a repository seals its open packs).
An optional cache keeps recently decoded chunks for readers that seek back.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from datactl.core.errors import ObjectMissing
from datactl.format.objects import Commit, Tree, TreeEntry, decode_chunklist, decode_commit, decode_tree
from datactl.format.pack import ObjectType
from datactl.store.index import ObjectIndex, ObjectLocation
from datactl.store.packread import DEFAULT_JOBS, META_GAP, Location, PackRange, PackReader, ReadObject, ReadStats, coalesce
from storage_backends import Backend

# Ids read together by ``read_many``: they are coalesced into ranged reads, and read ahead.
READ_MANY_GROUP = 32


class ObjectReader:
    """Verified objects by id from one store. Thread-safe.

    ``on_miss(oid)`` is called when ``oid`` is not in the index; when it
    returns True the index is asked again (a remote syncs its index files at
    most once per reader; a repository seals the open pack holding ``oid``).
    """

    def __init__(
        self,
        backend: Backend,
        index: ObjectIndex,
        label: str | None = None,
        *,
        jobs: int = DEFAULT_JOBS,
        on_miss: Callable[[str], bool] | None = None,
        cache_bytes: int = 0,
    ) -> None:
        self.backend = backend
        self.index = index
        self.packs = PackReader(backend, label, jobs)
        self.label = self.packs.label
        self._on_miss = on_miss
        self.index_lock = threading.RLock()  # one SQLite connection serves every thread
        self._cache: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        self._cache_lock = threading.Lock()

    @property
    def stats(self) -> ReadStats:
        return self.packs.stats

    def close(self) -> None:
        self.packs.close()

    # -- where objects are -------------------------------------------------------

    def lookup(self, oid: str) -> ObjectLocation | None:
        """The index entry of ``oid``, or None (without ``on_miss``)."""
        with self.index_lock:
            return self.index.lookup(oid)

    def locate(self, oid: str) -> ObjectLocation:
        with self.index_lock:
            loc = self.index.lookup(oid)
            if loc is None and self._on_miss is not None and self._on_miss(oid):
                loc = self.index.lookup(oid)
        if loc is None:
            raise ObjectMissing(f"object {oid} is not in any pack of {self.label}", "run `datactl verify` to see what else is missing")
        return loc

    def has(self, oid: str) -> bool:
        return self.lookup(oid) is not None

    def object_type(self, oid: str) -> ObjectType | None:
        loc = self.lookup(oid)
        return None if loc is None else loc.entry.type

    def raw_size(self, oid: str) -> int:
        return self.locate(oid).entry.raw_len

    def raw_sizes(self, oids: Sequence[str]) -> list[int]:
        """The uncompressed size of each id, looked up together (a file's chunk layout without one query per chunk)."""
        with self.index_lock:
            found = self.index.raw_lens(oids)
        return [found[oid] if oid in found else self.raw_size(oid) for oid in oids]

    def _locations(self, oids: Iterable[str]) -> list[Location]:
        """Where each id is, looked up together; an id the index lacks goes through ``locate`` (which may raise)."""
        wanted = list(oids)
        with self.index_lock:
            found = self.index.lookup_many(wanted)
        out = []
        for oid in wanted:
            loc = found.get(oid) or self.locate(oid)
            out.append((loc.pack, loc.entry))
        return out

    # -- cache ---------------------------------------------------------------------

    def cached(self, oid: str) -> bytes | None:
        if not self._cache_limit:
            return None
        with self._cache_lock:
            raw = self._cache.get(oid)
            if raw is not None:
                self._cache.move_to_end(oid)
            return raw

    def _remember(self, oid: str, raw: bytes) -> None:
        with self._cache_lock:
            if oid in self._cache:
                return
            self._cache[oid] = raw
            self._cache_bytes += len(raw)
            while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= len(old)

    # -- reading -------------------------------------------------------------------

    def read_object(self, oid: str) -> ReadObject:
        """One object with its stored bytes (a push copies those as they are)."""
        loc = self.locate(oid)
        try:
            return self._read_at(loc)
        except ObjectMissing:
            moved = self._moved([(loc.pack, loc.entry)])
            if not moved:
                raise
            return self._read_at(self.locate(oid))

    def read_objects(self, oids: Iterable[str], max_gap: int = META_GAP) -> Iterator[ReadObject]:
        """Each of ``oids`` once with its stored bytes (a push copies those as they are), verified, in pack order:
        looked up together, neighbours in a pack (at most ``max_gap`` apart) read in one request, requests in
        parallel. Those a compaction moved meanwhile are looked up again and read from their new pack."""
        wanted = list(dict.fromkeys(oids))
        locations = self._locations(wanted)
        done: set[str] = set()
        try:
            for obj in self.packs.read_located(locations, max_gap):
                done.add(obj.entry.id)
                yield obj
        except ObjectMissing:
            if not self._moved(locations):
                raise
            yield from self.packs.read_located(self._locations([oid for oid in wanted if oid not in done]), max_gap)

    def _read_at(self, loc: ObjectLocation) -> ReadObject:
        e = loc.entry
        return self.packs.read_range(PackRange(loc.pack, e.offset, e.offset + e.stored_len, (e,)))[0]

    def _moved(self, locations: Sequence[Location]) -> bool:
        """Whether any of ``locations`` is no longer where the index says: its pack was merged into another
        (``datactl.upkeep.consolidate``) after the lookup and then deleted, so a second look finds it."""
        with self.index_lock:
            return any((loc := self.index.lookup(e.id)) is not None and loc.pack != pack for pack, e in locations)

    def read(self, oid: str) -> bytes:
        raw = self.cached(oid)
        return raw if raw is not None else self.read_object(oid).raw

    def read_batch(self, oids: Iterable[str], max_gap: int = META_GAP, remember: bool = False) -> dict[str, bytes]:
        """Raw bytes of every id (each once), read in as few ranged reads as ``max_gap`` allows."""
        out: dict[str, bytes] = {}
        wanted = []
        for oid in dict.fromkeys(oids):
            raw = self.cached(oid)
            if raw is not None:
                out[oid] = raw
            else:
                wanted.append(oid)
        for obj in self.read_objects(wanted, max_gap):
            out[obj.entry.id] = obj.raw
            if remember and self._cache_limit:
                self._remember(obj.entry.id, obj.raw)
        return out

    def read_many(self, oids: Iterable[str]) -> Iterator[bytes]:
        """Raw bytes of each id in the order given (repeats included), read ahead in parallel."""
        groups: collections.deque[list[str]] = collections.deque()
        remaining: collections.deque[int] = collections.deque()
        it = iter(oids)

        def ranges() -> Iterator[PackRange]:
            while True:
                group = [oid for _, oid in zip(range(READ_MANY_GROUP), it)]
                if not group:
                    return
                groups.append(group)  # before the lookup, which may raise: the fallback below reads every queued id
                rngs = coalesce(self._locations(dict.fromkeys(group)))
                remaining.append(len(rngs))
                yield from rngs

        got: dict[str, bytes] = {}
        try:
            for objects in self.packs.read_ranges(ranges()):
                for obj in objects:
                    got[obj.entry.id] = obj.raw
                remaining[0] -= 1
                while remaining and remaining[0] == 0:
                    remaining.popleft()
                    done = groups.popleft()
                    for oid in done:
                        yield got[oid]
                    later = {oid for g in groups for oid in g}
                    for oid in done:
                        if oid not in later:
                            got.pop(oid, None)
        except ObjectMissing:
            # A pack merged away (``datactl.upkeep.consolidate``) under the read-ahead: the rest is read one
            # object at a time, each looked up again; an object that is really missing still raises.
            for oid in [o for g in groups for o in g]:
                yield self.read(oid)
            for oid in it:
                yield self.read(oid)

    def read_commit(self, oid: str) -> Commit:
        return decode_commit(oid, self.read(oid))

    def read_tree(self, oid: str) -> Tree:
        return decode_tree(oid, self.read(oid))

    # -- ChunkSource (datactl.store.chunkedfile) ------------------------------------

    def chunk_ids(self, entry: TreeEntry) -> Sequence[str]:
        if entry.chunklist is not None:
            return decode_chunklist(entry.chunklist, self.read(entry.chunklist))
        return entry.chunks

    def fetch(self, oids: Sequence[str]) -> Mapping[str, bytes]:
        """Chunks a file reader is about to need, read together and kept in the cache."""
        return self.read_batch(oids, max_gap=META_GAP, remember=True)
