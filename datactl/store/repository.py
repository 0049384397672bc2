"""A repository: objects in packs on a backend, found through the index.

Writes are content-addressed and deduplicated: ``put`` of an object the store
already has costs a lookup. New objects are compressed in a thread pool (or, in
a process that is one of several sharing the cores, in the calling thread) and
appended, in order, to one of two open packs (file data, or metadata: trees,
commits, chunk lists, kept apart so history can be read without data packs).
``flush`` seals the open packs, stores them durably, records them in the index
and writes an ``index/`` file; only after that may a ref point at them.
"""

from __future__ import annotations

import collections
import errno
import os
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol, Sequence

from datactl.core import compression
from datactl.core.closing import Closing
from datactl.core.errors import CorruptObject, DiskFull, StoreNotFound
from datactl.core.ids import object_id
from datactl.format.indexfile import PackListing
from datactl.format.layout import CONFIG_KEY, PACKS_PREFIX, key_name, pack_key
from datactl.format.objects import Commit, Tree
from datactl.format.pack import ObjectType, PackEntry, PackWriter
from datactl.format.storeconfig import StoreConfig
from datactl.store.index import ObjectIndex, ObjectLocation
from datactl.store.indexfiles import write_index_file
from datactl.store.packread import ReadObject
from datactl.store.reader import ObjectReader
from datactl.store.refs import RefStore
from datactl.store.revparse import StoreRefs
from datactl.store.sourceread import SourceBackends
from storage_backends import Backend, KeyNotFound

DATA_TYPES = (ObjectType.CHUNK,)
# Bytes put but not yet appended to a pack: bounds memory whatever the size of the objects or batches.
MAX_INFLIGHT_BYTES = 16 << 20


@dataclass
class _Queued:
    """Objects put together, waiting for their compression to finish before they are appended to a pack, in order."""

    obj_type: ObjectType
    objects: list[tuple[str, int]]  # (id, raw length)
    stored: Future  # -> [(codec, stored bytes)], one per object

    @property
    def raw_bytes(self) -> int:
        return sum(raw_len for _, raw_len in self.objects)


class ObjectClaims(Protocol):
    """Writers putting objects into one store at once, each claiming the new objects it is to store: an object
    another writer claimed is left to that writer (and counts as durable only once the store indexes it)."""

    def claim(self, oids: list[str]) -> set[str]:
        """Those of ``oids`` this writer now holds (claimed just now or earlier by it); another writer holds the rest."""
        ...


@dataclass
class IndexRebuild:
    """What rebuilding an index from the packs' footers found: packs and objects indexed, packs whose footer is damaged."""

    packs: int = 0
    objects: int = 0
    damaged: dict[str, str] = field(default_factory=dict)


class Repository(Closing):
    """Objects, packs and refs of one store."""

    def __init__(
        self,
        backend: Backend,
        index: ObjectIndex,
        config: StoreConfig,
        tmp_dir: str,
        workers: int | None = None,
        claims: ObjectClaims | None = None,
        compress_here: bool = False,
    ) -> None:
        """``compress_here``: compress in the calling thread, for a process that is one of several, one per core (an
        add's workers): a pool's threads would only take turns with the caller for the GIL, at every tiny object."""
        self.backend = backend
        self._compress_here = compress_here
        self.claims = claims
        self.index = index
        self.config = config
        self.refs = RefStore(backend)
        self.tmp_dir = tmp_dir
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="datactl")
        self._max_inflight = 4 * (workers or os.cpu_count() or 2)
        self._inflight: collections.deque[_Queued] = collections.deque()
        self._inflight_bytes = 0
        self._sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datactl-seal")
        self._sealing: collections.deque[Future] = collections.deque()
        self._pending: set[str] = set()
        self._foreign: set[str] = set()  # new objects another writer claimed (see ObjectClaims)
        self._writers: dict[bool, PackWriter] = {}
        self._sealed: PackListing = {}
        self.bytes_sealed = 0
        self.objects = ObjectReader(backend, index, backend.url, on_miss=self._seal_pending)
        self.sources = SourceBackends()  # where this store's versions' external files are read from

    # -- writing -------------------------------------------------------------

    def has(self, oid: str) -> bool:
        return oid in self._pending or oid in self._foreign or self.index.has(oid)

    def missing(self, oids: Sequence[str]) -> list[str]:
        """Those of ``oids`` the store lacks, in order: one index query per few hundred ids, not one each."""
        present = self.index.present([o for o in oids if o not in self._pending])
        return [o for o in oids if o not in present and o not in self._pending and o not in self._foreign]

    def _mine(self, oids: list[str]) -> set[str]:
        """Which of the new objects ``oids`` this writer stores: all, unless other writers claim some."""
        if self.claims is None:
            return set(oids)
        mine = self.claims.claim(oids)
        self._foreign.update(oid for oid in oids if oid not in mine)
        return mine

    def put_stored_many(self, objects: Sequence[ReadObject]) -> None:
        """Store objects already in stored form (verified by the caller) that the caller found missing (``missing``:
        not asked again, a query each was 1.6 s of a 12 s clone of 100,000 files), e.g. those of one ranged read
        of a download: queued together, since a Future and a queue entry each were a third of a clone's download."""
        by_type: dict[ObjectType, list[tuple[str, int, int, bytes]]] = {}
        for obj in objects:
            e = obj.entry
            if e.id not in self._pending:
                by_type.setdefault(e.type, []).append((e.id, e.raw_len, e.codec, obj.stored))
        for obj_type, stored in by_type.items():
            self._queue_stored(obj_type, stored)

    def _queue_stored(self, obj_type: ObjectType, objects: list[tuple[str, int, int, bytes]]) -> None:
        """Queue objects in stored form, (id, raw length, codec, stored bytes) each, for the open pack of their kind."""
        self._pending.update(oid for oid, _, _, _ in objects)
        fut: Future = Future()
        fut.set_result([(codec, stored) for _, _, codec, stored in objects])
        self._queue(_Queued(obj_type, [(oid, raw_len) for oid, raw_len, _, _ in objects], fut))
        # Nothing to wait for: appended to the open pack now (after what was queued before), so what a download
        # brings is on disk, where a cache's size counts it, and never held in memory by the batch.
        while self._inflight:
            self._write_next()

    def put(self, obj_type: ObjectType, raw: bytes | memoryview, oid: str | None = None) -> str:
        """Store ``raw`` unless present; return its id. Durable only after ``flush``."""
        oid = oid or object_id(raw)
        if self.has(oid) or not self._mine([oid]):
            return oid
        self._pending.add(oid)
        self._queue(_Queued(obj_type, [(oid, len(raw))], self._compress([raw])))
        return oid

    def _compress(self, raws: list[bytes | memoryview]) -> Future:
        """``raws`` compressed (-> [(codec, stored bytes)]): in the pool, or at once with ``compress_here``."""
        if not self._compress_here:
            return self._pool.submit(compression.compress_many, raws, self.config.compression_level)
        done: Future = Future()
        done.set_result(compression.compress_many(raws, self.config.compression_level))
        return done

    @contextmanager
    def _writing_pack(self) -> Iterator[None]:
        """A full disk (or a size limit) while a pack is written is a DiskFull error saying where, and that nothing was lost."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            what = "the disk is full" if exc.errno != errno.EFBIG else "the file size limit was reached"
            raise DiskFull(
                f"{what} while writing a pack in {self.tmp_dir} ({exc.strerror})",
                "free some space and run the command again; nothing was lost: the store keeps only whole packs, "
                "and nothing names the one cut short",
            ) from exc

    def put_many(self, obj_type: ObjectType, objects: Sequence[tuple[str, bytes | memoryview]]) -> None:
        """Store every (id, raw bytes) not yet present, ids already computed: one index query and one compression task for all."""
        present = self.index.present([oid for oid, _ in objects if oid not in self._pending])
        new: dict[str, bytes | memoryview] = {}
        for oid, raw in objects:
            if oid not in self._pending and oid not in self._foreign and oid not in present:
                new[oid] = raw
        if new and self.claims is not None:
            mine = self._mine(list(new))
            new = {oid: raw for oid, raw in new.items() if oid in mine}
        self._pending.update(new)
        if new:
            self._queue(_Queued(obj_type, [(oid, len(raw)) for oid, raw in new.items()], self._compress(list(new.values()))))

    def _queue(self, item: "_Queued") -> None:
        self._inflight.append(item)
        self._inflight_bytes += item.raw_bytes
        while len(self._inflight) > self._max_inflight or self._inflight_bytes > MAX_INFLIGHT_BYTES:
            self._write_next()

    def _write_next(self) -> None:
        item = self._inflight.popleft()
        self._inflight_bytes -= item.raw_bytes
        is_data = item.obj_type in DATA_TYPES
        objects = [(oid, raw_len, codec, stored) for (oid, raw_len), (codec, stored) in zip(item.objects, item.stored.result())]
        done = 0
        while done < len(objects):
            with self._writing_pack():
                writer = self._writers.get(is_data)
                if writer is None:
                    writer = self._writers[is_data] = PackWriter(self.tmp_dir)
                done = writer.fill(item.obj_type, objects, done, self.config.pack_size)
            if writer.full(self.config.pack_size):
                self._seal(is_data)

    def _seal(self, is_data: bool) -> None:
        """Seal the open pack and store it in the background; the next pack fills meanwhile."""
        writer = self._writers.pop(is_data)
        try:
            fut = self._sealer.submit(self._store_pack, writer)
        except RuntimeError:  # interpreter exit has stopped the thread pools (a finalizer flushing a cache): seal here
            fut = Future()
            fut.set_result(self._store_pack(writer))
        self._sealing.append(fut)
        while len(self._sealing) > 1:  # at most one pack being stored while another fills
            self._record_sealed(self._sealing.popleft())

    def _store_pack(self, writer: PackWriter) -> tuple[str, int, list[PackEntry]]:
        try:
            with self._writing_pack():
                pack_id, path, entries = writer.finish()
        except BaseException:
            writer.abort()
            raise
        size = os.path.getsize(path)
        try:
            self.backend.move_file_in(pack_key(pack_id), path)
        finally:
            if os.path.exists(path):
                os.unlink(path)
        return pack_id, size, entries

    def _record_sealed(self, fut: Future) -> None:
        pack_id, size, entries = fut.result()
        self.index.add_pack(pack_id, size, entries)
        for e in entries:
            self._pending.discard(e.id)
        self._sealed[pack_id] = (size, entries)
        self.bytes_sealed += size

    def flush(self) -> None:
        """Make every object put so far durable and indexed."""
        while self._inflight:
            self._write_next()
        for is_data in list(self._writers):
            self._seal(is_data)
        self.settle()

    def settle(self) -> None:
        """Append every object put so far to the open packs, and make the packs that filled durable and indexed:
        unlike ``flush``, no pack is cut short (a store written in many small flushes holds as many small packs)."""
        while self._inflight:
            self._write_next()
        while self._sealing:
            self._record_sealed(self._sealing.popleft())
        if self._sealed:
            self.index.mark_index_file(write_index_file(self.backend, self._sealed))
            self._sealed = {}

    def undurable(self) -> list[str]:
        """The objects put here that no other process can see yet (not in the index)."""
        return list(self._pending)

    def durable(self, oid: str) -> bool:
        """Whether an object put is in a pack already settled (or flushed); one never put counts as durable, one
        another writer claimed does not (``ObjectClaims``: it is that writer's to make durable)."""
        return oid not in self._pending and oid not in self._foreign

    def abort(self) -> None:
        """Drop unsealed work (the objects simply never become visible)."""
        for item in self._inflight:
            item.stored.cancel()
        self._inflight.clear()
        self._inflight_bytes = 0
        while self._sealing:  # a pack already on its way into the store is recorded, as if sealed before the abort
            try:
                self._record_sealed(self._sealing.popleft())
            except Exception:
                pass  # what failed is unreferenced; gc removes it
        for w in self._writers.values():
            w.abort()
        self._writers.clear()
        self._pending.clear()
        self._foreign.clear()

    def close(self) -> None:
        self.abort()
        self._pool.shutdown(wait=True)
        self._sealer.shutdown(wait=True)
        self.objects.close()
        self.sources.close()
        self.index.close()


    # -- reading -------------------------------------------------------------

    def _seal_pending(self, oid: str) -> bool:
        """An object put but not yet sealed becomes readable once the open packs are sealed."""
        if oid in self._pending:
            self.flush()
            return True
        return False

    def locate(self, oid: str) -> ObjectLocation:
        return self.objects.locate(oid)

    def object_type(self, oid: str) -> ObjectType | None:
        return self.objects.object_type(oid)

    def read(self, oid: str) -> bytes:
        """The verified bytes of one object."""
        return self.objects.read(oid)

    def read_stored_many(self, oids: Sequence[str]) -> Iterator[ReadObject]:
        """Each id (once) with its stored (compressed) bytes, verified: read together, in the order of the packs."""
        return self.objects.read_objects(oids)

    def read_batch(self, oids: Iterable[str], max_gap: int = 0) -> dict[str, bytes]:
        """Verified bytes of every id, read together."""
        return self.objects.read_batch(oids, max_gap)

    def raw_sizes(self, oids: Sequence[str]) -> list[int]:
        """The uncompressed size of each id (a file's chunk layout), looked up together."""
        return self.objects.raw_sizes(oids)

    def read_many(self, oids: Iterable[str]) -> Iterator[bytes]:
        """Verified bytes of each id, in order, read ahead in parallel."""
        return self.objects.read_many(oids)

    def read_tree(self, oid: str) -> Tree:
        return self.objects.read_tree(oid)

    def read_commit(self, oid: str) -> Commit:
        return self.objects.read_commit(oid)

    def ref_lookup(self) -> StoreRefs:
        """This store's refs and commits, for resolving what a user types (``datactl.store.revparse``)."""
        return StoreRefs(self.refs, self.objects)

    # -- index upkeep --------------------------------------------------------

    def rebuild_index(self) -> IndexRebuild:
        """Recreate the index from the packs' footers; a pack whose footer cannot be read is left out and named."""
        self.index.clear()
        result = IndexRebuild()

        def readable_packs() -> Iterator[tuple[str, int, list[PackEntry]]]:
            for info in self.backend.list(PACKS_PREFIX):
                pack_id = key_name(info.key)
                try:
                    entries = self.objects.packs.read_footer(pack_id, info.size)
                except CorruptObject as exc:
                    result.damaged[pack_id] = exc.message
                    continue
                result.objects += len(entries)
                yield pack_id, info.size, entries

        result.packs = self.index.add_packs(readable_packs())
        return result

    def index_disagreements(self) -> int:
        """How many objects the index places where no pack's footer has them, or misses though a pack holds them."""
        bad = 0
        listed = {key_name(info.key): info.size for info in self.backend.list(PACKS_PREFIX)}
        indexed = self.index.packs()
        for pack_id in set(indexed) - set(listed):
            bad += max(1, len(self.index.entries_of_pack(pack_id)))
        for pack_id, size in listed.items():
            try:
                entries = {e.id: e for e in self.objects.packs.read_footer(pack_id, size)}
            except CorruptObject:
                continue  # a damaged pack is fsck's to report, not the index's fault
            if pack_id in indexed and indexed[pack_id] != size:
                bad += 1
            for e in self.index.entries_of_pack(pack_id):
                if entries.get(e.id) != e:
                    bad += 1
            bad += sum(1 for oid in entries if self.index.lookup(oid) is None)
        return bad


def read_store_config(backend: Backend) -> StoreConfig:
    """The config of the store at ``backend``: StoreNotFound if there is none, StoreFormatError if it is unreadable.

    Every store has a config, so its absence means there is no store there
    (a mistyped path or prefix): reading fails, a push creates the store.
    """
    try:
        return StoreConfig.decode(backend.get(CONFIG_KEY), backend.url)
    except KeyNotFound:
        raise StoreNotFound(
            f"there is no datactl store at {backend.url}",
            "check the path or URL (bucket and prefix); `datactl push` to it creates a store",
        ) from None


def write_store_config(backend: Backend, config: StoreConfig) -> StoreConfig:
    """Create the store's config unless one exists; return the config in force."""
    if not backend.put_if_absent(CONFIG_KEY, config.encode()):
        return read_store_config(backend)
    return config
