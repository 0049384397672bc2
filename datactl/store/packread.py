"""Reading objects out of packs: the one place that does it.

Every reader of a store (a workspace reading its own packs, a push reading
what to send, a download, gc and fsck, verify, validation, lineage queries)
goes through ``PackReader``: the wanted objects are grouped by pack, runs of
objects closer than ``max_gap`` bytes become one ranged read of at most
``MAX_SPAN`` bytes, the ranges are read in parallel, and every object is
decoded and hashed against its id before anyone sees it. A pack's footer is
read here too (two ranged reads: trailer, then footer).
"""

from __future__ import annotations

import collections
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from datactl.core import compression
from datactl.core.closing import Closing
from datactl.core.errors import CorruptObject, ObjectMissing
from datactl.core.ids import object_id
from datactl.format.layout import pack_key
from datactl.format.pack import TRAILER_SIZE, ObjectType, PackEntry, parse_footer, parse_trailer
from storage_backends import Backend, KeyNotFound, ShortRead

# Objects closer than this in a pack are read in one request (what lies between is read and dropped) ...
META_GAP = 256 * 1024
# ... as long as the request stays below this.
MAX_SPAN = 8 * 1024 * 1024
DEFAULT_JOBS = 8
# Bytes of ranges read ahead and not yet consumed: a range's blob, its objects' stored and raw copies all live
# until the consumer takes them, so a window counted in ranges alone (2 x jobs of up to MAX_SPAN) held hundreds of MB.
READ_AHEAD_BYTES = 32 * 1024 * 1024

Location = tuple[str, PackEntry]  # (pack id, the object's entry in it)


@dataclass(frozen=True)
class PackRange:
    """One ranged read: bytes [start, end) of a pack, holding ``entries``."""

    pack: str
    start: int
    end: int
    entries: tuple[PackEntry, ...]


@dataclass(frozen=True)
class ReadObject:
    """An object read and verified: its entry, its stored (compressed) bytes and its raw bytes."""

    entry: PackEntry
    stored: bytes
    raw: bytes


def coalesce(locations: Iterable[Location], max_gap: int = 0, max_span: int = MAX_SPAN) -> list[PackRange]:
    """Group object locations into ranges worth one read each, in pack and offset order."""
    by_pack: dict[str, dict[str, PackEntry]] = collections.defaultdict(dict)
    for pack, entry in locations:
        by_pack[pack][entry.id] = entry
    ranges: list[PackRange] = []
    for pack in sorted(by_pack):
        group: list[PackEntry] = []
        end = 0  # where the group's furthest object ends, kept as the group grows (a max over it each time was quadratic)
        for e in sorted(by_pack[pack].values(), key=lambda e: e.offset):
            if group and (e.offset - end > max_gap or max(end, e.offset + e.stored_len) - group[0].offset > max_span):
                ranges.append(PackRange(pack, group[0].offset, end, tuple(group)))
                group = []
            end = max(end, e.offset + e.stored_len) if group else e.offset + e.stored_len
            group.append(e)
        if group:
            ranges.append(PackRange(pack, group[0].offset, end, tuple(group)))
    return ranges


def decode_stored(entry: PackEntry, stored: bytes, where: str) -> bytes:
    """An object's raw bytes from its stored bytes, checked to hash to its id (``where`` names its pack)."""
    try:
        raw = compression.decompress(entry.codec, stored, entry.raw_len)
    except ValueError as exc:
        raise CorruptObject(f"object {entry.id} in {where} is corrupt: {exc}", "run `datactl fsck --read-data` on the store") from None
    if len(raw) != entry.raw_len or object_id(raw) != entry.id:
        raise CorruptObject(
            f"object {entry.id} in {where} is corrupt (its bytes do not hash to its id)",
            "restore the pack from another copy of the store, or run `datactl fsck --repair`",
        )
    return raw


@dataclass
class ReadStats:
    """What a reader has read from its store (stored, i.e. compressed, bytes)."""

    requests: int = 0
    bytes_read: int = 0
    metadata_bytes: int = 0
    data_bytes: int = 0
    objects: int = 0
    files_opened: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def count(self, blob_len: int, entries: Sequence[PackEntry]) -> None:
        """Count one request; bytes read between wanted objects count with the objects' kind."""
        data = sum(e.stored_len for e in entries if e.type == ObjectType.CHUNK)
        meta = sum(e.stored_len for e in entries if e.type != ObjectType.CHUNK)
        gap = blob_len - meta - data
        self.requests += 1
        self.bytes_read += blob_len
        self.objects += len(entries)
        if data:
            self.data_bytes += data + gap
            self.metadata_bytes += meta
        else:
            self.metadata_bytes += meta + gap


class PackReader(Closing):
    """Reads verified objects from the packs of one store, by coalesced ranged reads in parallel. Thread-safe."""

    def __init__(self, backend: Backend, label: str | None = None, jobs: int = DEFAULT_JOBS) -> None:
        self.backend = backend
        self.label = label or backend.url
        self.jobs = jobs
        self.stats = ReadStats()
        self.stats_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


    def where(self, pack: str) -> str:
        return f"pack {pack} on {self.label}"

    def read_range(self, rng: PackRange) -> list[ReadObject]:
        """One ranged read; every object in it decoded and verified.

        Bytes that fail their check are read once more before they count as
        damage: a ranged read carries no checksum of the transport's (S3 checks
        only whole objects), so a body damaged on the way is first seen here.
        """
        try:
            return self._read_range(rng)
        except CorruptObject:
            return self._read_range(rng)

    def _read_range(self, rng: PackRange) -> list[ReadObject]:
        where = self.where(rng.pack)
        try:
            blob = self.backend.get_range(pack_key(rng.pack), rng.start, rng.end - rng.start)
        except KeyNotFound:
            raise ObjectMissing(
                f"object {rng.entries[0].id} is missing: {where} does not exist",
                "the store lost data; run `datactl verify` against it to list every affected file",
            ) from None
        except ShortRead as exc:
            raise CorruptObject(f"object {rng.entries[0].id} cannot be read: {where} is truncated ({exc})", "run `datactl fsck` on the store") from None
        with self.stats_lock:
            self.stats.count(len(blob), rng.entries)
        out = []
        for e in rng.entries:
            stored = blob[e.offset - rng.start : e.offset - rng.start + e.stored_len]
            out.append(ReadObject(e, stored, decode_stored(e, stored, where)))
        return out

    def _executor(self) -> ThreadPoolExecutor:
        with self.stats_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="datactl-read")
            return self._pool

    def read_ranges(self, ranges: Iterable[PackRange]) -> Iterator[list[ReadObject]]:
        """Each range's objects, in the order given, read ahead in parallel (at most 2 x jobs ranges in memory)."""
        it = iter(ranges)
        first = next(it, None)
        if first is None:
            return
        second = next(it, None)
        if second is None:  # one read: a thread hop costs more than it saves
            yield self.read_range(first)
            return
        pool = self._executor()
        window: collections.deque[tuple[int, Future]] = collections.deque()
        ahead = 0  # bytes of the ranges in the window
        try:
            for rng in itertools.chain((first, second), it):
                window.append((rng.end - rng.start, pool.submit(self.read_range, rng)))
                ahead += rng.end - rng.start
                while len(window) > 2 * self.jobs or (ahead > READ_AHEAD_BYTES and len(window) > 1):
                    size, fut = window.popleft()
                    ahead -= size
                    yield fut.result()
            while window:
                yield window.popleft()[1].result()
        finally:
            for _, fut in window:
                fut.cancel()

    def read_located(self, locations: Iterable[Location], max_gap: int = 0) -> Iterator[ReadObject]:
        """The objects at ``locations`` (each once), in pack order."""
        for objects in self.read_ranges(coalesce(locations, max_gap)):
            yield from objects

    def read_footer(self, pack_id: str, size: int) -> list[PackEntry]:
        """A pack's object list, read from its footer with two ranged reads (KeyNotFound if the pack is gone).

        Like objects, a trailer or footer that fails its check is read once more before it counts as damage.
        """
        try:
            return self._read_footer(pack_id, size)
        except CorruptObject:
            return self._read_footer(pack_id, size)

    def _read_footer(self, pack_id: str, size: int) -> list[PackEntry]:
        key = pack_key(pack_id)
        if size < TRAILER_SIZE:
            raise CorruptObject(f"pack {pack_id} is truncated ({size} bytes)", "run `datactl fsck --repair`")
        try:
            trailer = self.backend.get_range(key, size - TRAILER_SIZE, TRAILER_SIZE)
            footer_offset, count, footer_hash = parse_trailer(pack_id, trailer, size)
            footer = self.backend.get_range(key, footer_offset, size - TRAILER_SIZE - footer_offset)
        except ShortRead:
            raise CorruptObject(f"pack {pack_id} is truncated", "run `datactl fsck --repair`") from None
        with self.stats_lock:
            self.stats.requests += 2
            self.stats.bytes_read += TRAILER_SIZE + len(footer)
            self.stats.metadata_bytes += TRAILER_SIZE + len(footer)
        return parse_footer(pack_id, footer, count, footer_hash)


def read_footer(backend: Backend, pack_id: str, size: int) -> list[PackEntry]:
    """A pack's object list (for callers that read one footer and keep no reader)."""
    return PackReader(backend).read_footer(pack_id, size)
