"""A repository: objects in packs on a backend, found through the index.

Writes are content-addressed and deduplicated: ``put`` of an object the store
already has costs a lookup. New objects are compressed in a thread pool and
appended, in order, to one of two open packs (file data, or metadata: trees,
commits, chunk lists, kept apart so history can be read without data packs).
``flush`` seals the open packs, stores them durably, records them in the index
and writes an ``index/`` file; only after that may a ref point at them.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator

import zstandard

from datactl.core import compression
from datactl.core.errors import CorruptObject, ObjectMissing
from datactl.core.ids import object_id
from datactl.store.index import ObjectIndex, ObjectLocation
from datactl.format.objects import Commit, Tree, decode_commit, decode_tree
from datactl.format.pack import ObjectType, PackEntry, PackWriter, pack_key, parse_footer, parse_trailer, TRAILER_SIZE
from datactl.store.refs import RefStore
from datactl.format.storeconfig import StoreConfig
from storage_backends import Backend, BackendError, KeyNotFound

DATA_TYPES = (ObjectType.CHUNK,)


def index_file_key(index_id: str) -> str:
    return f"index/{index_id}"


def encode_index_file(packs: dict[str, tuple[int, list[PackEntry]]]) -> bytes:
    """An index file: for each pack, its size and every object's place in it (zstd JSON)."""
    doc = {
        "format": 1,
        "packs": {
            pid: {
                "size": size,
                "objects": [[e.id, int(e.type), e.codec, e.offset, e.stored_len, e.raw_len] for e in entries],
            }
            for pid, (size, entries) in sorted(packs.items())
        },
    }
    return zstandard.ZstdCompressor(level=3).compress(json.dumps(doc, separators=(",", ":")).encode())


def decode_index_file(index_id: str, data: bytes) -> dict[str, tuple[int, list[PackEntry]]]:
    try:
        doc = json.loads(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31))
        return {
            pid: (int(p["size"]), [PackEntry(r[0], ObjectType(r[1]), r[2], r[3], r[4], r[5]) for r in p["objects"]])
            for pid, p in doc["packs"].items()
        }
    except (ValueError, KeyError, TypeError, IndexError, zstandard.ZstdError) as exc:
        raise CorruptObject(f"index file {index_id} is unreadable: {exc}", "run `datactl fsck --repair`") from None


def write_index_file(backend: Backend, packs: dict[str, tuple[int, list[PackEntry]]]) -> str:
    """Store an index file for ``packs`` (content-addressed, so writing it twice is harmless)."""
    data = encode_index_file(packs)
    index_id = object_id(data)
    backend.put_if_absent(index_file_key(index_id), data)
    return index_id


def read_footer(backend: Backend, pack_id: str, size: int) -> list[PackEntry]:
    """A pack's object list, read from its footer with two ranged reads."""
    key = pack_key(pack_id)
    if size < TRAILER_SIZE:
        raise CorruptObject(f"pack {pack_id} is truncated ({size} bytes)")
    trailer = backend.get_range(key, size - TRAILER_SIZE, TRAILER_SIZE)
    footer_offset, count, footer_hash = parse_trailer(pack_id, trailer, size)
    footer = backend.get_range(key, footer_offset, size - TRAILER_SIZE - footer_offset)
    return parse_footer(pack_id, footer, count, footer_hash)


def verify_stored(oid: str, entry: PackEntry, stored: bytes, pack: str) -> bytes:
    """Decode an object's stored bytes and check they hash to its id; return the raw bytes."""
    try:
        raw = compression.decompress(entry.codec, stored, entry.raw_len)
    except ValueError as exc:
        raise CorruptObject(f"object {oid} in pack {pack} is corrupt: {exc}") from None
    if len(raw) != entry.raw_len or object_id(raw) != oid:
        raise CorruptObject(
            f"object {oid} in pack {pack} is corrupt (its bytes do not hash to its id)",
            "restore the pack from another copy of the store, or run `datactl fsck --repair`",
        )
    return raw


class Repository:
    """Objects, packs and refs of one store."""

    def __init__(
        self,
        backend: Backend,
        index: ObjectIndex,
        config: StoreConfig,
        tmp_dir: str,
        workers: int | None = None,
    ) -> None:
        self.backend = backend
        self.index = index
        self.config = config
        self.refs = RefStore(backend)
        self._tmp_dir = tmp_dir
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="datactl")
        self._max_inflight = 4 * (workers or os.cpu_count() or 2)
        self._inflight: collections.deque[tuple[str, ObjectType, int, Future]] = collections.deque()
        self._pending: set[str] = set()
        self._writers: dict[bool, PackWriter] = {}
        self._sealed: dict[str, tuple[int, list[PackEntry]]] = {}
        self.bytes_sealed = 0

    # -- writing -------------------------------------------------------------

    def has(self, oid: str) -> bool:
        return oid in self._pending or self.index.has(oid)

    def put_stored(self, oid: str, obj_type: ObjectType, codec: int, stored: bytes, raw_len: int) -> None:
        """Store an object already in stored form (verified by the caller), e.g. one just downloaded."""
        if oid in self._pending or self.index.has(oid):
            return
        self._pending.add(oid)
        fut: Future = Future()
        fut.set_result((codec, stored))
        self._inflight.append((oid, obj_type, raw_len, fut))
        while len(self._inflight) > self._max_inflight:
            self._write_next()

    def put(self, obj_type: ObjectType, raw: bytes, oid: str | None = None) -> str:
        """Store ``raw`` unless present; return its id. Durable only after ``flush``."""
        oid = oid or object_id(raw)
        if oid in self._pending or self.index.has(oid):
            return oid
        self._pending.add(oid)
        fut = self._pool.submit(compression.compress, raw, self.config.compression_level)
        self._inflight.append((oid, obj_type, len(raw), fut))
        while len(self._inflight) > self._max_inflight:
            self._write_next()
        return oid

    def _write_next(self) -> None:
        oid, obj_type, raw_len, fut = self._inflight.popleft()
        codec, stored = fut.result()
        is_data = obj_type in DATA_TYPES
        writer = self._writers.get(is_data)
        if writer is None:
            writer = self._writers[is_data] = PackWriter(self._tmp_dir)
        writer.add(oid, obj_type, codec, stored, raw_len)
        if writer.size >= self.config.pack_size:
            self._seal(is_data)

    def _seal(self, is_data: bool) -> None:
        writer = self._writers.pop(is_data)
        pack_id, path, entries = writer.finish()
        size = os.path.getsize(path)
        try:
            mover = getattr(self.backend, "move_file_in", None)
            if mover is not None:
                mover(pack_key(pack_id), path)
            else:
                self.backend.put_file(pack_key(pack_id), path)
        finally:
            if os.path.exists(path):
                os.unlink(path)
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
        if self._sealed:
            self.index.mark_index_file(write_index_file(self.backend, self._sealed))
            self._sealed = {}

    def abort(self) -> None:
        """Drop unsealed work (the objects simply never become visible)."""
        for _, _, _, fut in self._inflight:
            fut.cancel()
        self._inflight.clear()
        for w in self._writers.values():
            w.abort()
        self._writers.clear()
        self._pending.clear()

    def close(self) -> None:
        self.abort()
        self._pool.shutdown(wait=True)
        self.index.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------

    def locate(self, oid: str) -> ObjectLocation:
        if oid in self._pending:
            self.flush()
        loc = self.index.lookup(oid)
        if loc is None:
            raise ObjectMissing(
                f"object {oid} is not in the store {self.backend.url}",
                "run `datactl verify` to see what else is missing",
            )
        return loc

    def _get_stored(self, oid: str, loc: ObjectLocation) -> bytes:
        try:
            return self.backend.get_range(pack_key(loc.pack), loc.entry.offset, loc.entry.stored_len)
        except KeyNotFound:
            raise ObjectMissing(
                f"pack {loc.pack} holding object {oid} is missing from {self.backend.url}",
                "run `datactl fsck` to check the store",
            ) from None
        except BackendError as exc:
            raise CorruptObject(f"object {oid} in pack {loc.pack} cannot be read: {exc}") from None

    def _fetch(self, oid: str, loc: ObjectLocation) -> bytes:
        return verify_stored(oid, loc.entry, self._get_stored(oid, loc), loc.pack)

    def read_stored(self, oid: str) -> tuple[PackEntry, bytes]:
        """An object's entry and stored (compressed) bytes, after checking they decode to its id."""
        loc = self.locate(oid)
        stored = self._get_stored(oid, loc)
        verify_stored(oid, loc.entry, stored, loc.pack)
        return loc.entry, stored

    def read(self, oid: str) -> bytes:
        """The verified bytes of one object."""
        return self._fetch(oid, self.locate(oid))

    def read_many(self, oids: Iterable[str], prefetch: int = 16) -> Iterator[bytes]:
        """Verified bytes of each id, in order, fetched and decompressed ahead in threads."""
        it = iter(oids)
        first, second = next(it, None), next(it, None)
        if first is None:
            return
        if second is None:  # one object (most small files): a thread hop costs more than it saves
            yield self._fetch(first, self.locate(first))
            return
        window: collections.deque[Future] = collections.deque()
        for oid in itertools.chain((first, second), it):
            window.append(self._pool.submit(self._fetch, oid, self.locate(oid)))
            if len(window) >= prefetch:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()

    def read_tree(self, oid: str) -> Tree:
        return decode_tree(oid, self.read(oid))

    def read_commit(self, oid: str) -> Commit:
        return decode_commit(oid, self.read(oid))

    def object_type(self, oid: str) -> ObjectType | None:
        loc = self.index.lookup(oid)
        return None if loc is None else loc.entry.type

    # -- index upkeep --------------------------------------------------------

    def read_pack_footer(self, pack_id: str, size: int) -> list[PackEntry]:
        return read_footer(self.backend, pack_id, size)

    def rebuild_index(self) -> int:
        """Recreate the index from the packs' footers; return the number of packs read."""
        self.index.clear()
        n = 0
        for info in self.backend.list("packs/"):
            pack_id = info.key.rsplit("/", 1)[-1]
            self.index.add_pack(pack_id, info.size, self.read_pack_footer(pack_id, info.size))
            n += 1
        return n
