"""A seekable, verified stream over one file of a version, reading only the chunks it touches.

Every reader of file bytes by offset uses it: ``Dataset.open`` (through the
read-through cache) and validation and deep verification (straight from a
store's packs). What differs between them is where chunks come from, which a
``ChunkSource`` says.
"""

from __future__ import annotations

import bisect
import io
from typing import Any, Mapping, Protocol, Sequence

from datactl.core.errors import CorruptObject, ObjectMissing
from datactl.core.ids import new_hasher
from datactl.format.objects import TreeEntry
from datactl.store.sourceread import SourceBackends, SourceChunks

# Sequential reads fetch ahead up to this many chunks (growing from 1).
MAX_READAHEAD = 16


class ChunkSource(Protocol):
    """Where a ChunkedFile gets its chunks."""

    def chunk_ids(self, entry: TreeEntry) -> Sequence[str]:
        """The ids of a file's chunks, in order."""

    def raw_size(self, oid: str) -> int:
        """An object's uncompressed size, without reading it."""

    def cached(self, oid: str) -> bytes | None:
        """An object's bytes if they are at hand, else None."""

    def fetch(self, oids: Sequence[str]) -> Mapping[str, bytes]:
        """Read ``oids`` (verified), returning at least the first; the rest may only be made ready."""


class ChunkedFile(io.RawIOBase):
    """A seekable, read-only view of one file's bytes, fetching only the chunks a read touches.

    Every chunk is hashed against its id when fetched; a file read straight
    through from its start is also checked against its whole-file digest, and
    a mismatch raises CorruptObject before the last bytes are returned.
    """

    def __init__(self, reader: ChunkSource, entry: TreeEntry, where: str) -> None:
        super().__init__()
        self._reader = reader
        self._entry = entry
        self._where = where
        self._ids: list[str] | None = None
        self._starts: list[int] = []
        self._pos = 0
        self._readahead = 1
        self._last_chunk = -1
        self._hasher = new_hasher()
        self._hashed_to = 0  # bytes hashed in order from the start

    def _layout(self) -> None:
        if self._ids is not None:
            return
        try:
            ids = list(self._reader.chunk_ids(self._entry))
            starts = []
            offset = 0
            for cid in ids:
                starts.append(offset)
                offset += self._reader.raw_size(cid)
        except (ObjectMissing, CorruptObject) as exc:
            raise type(exc)(f"{self._where}: {exc.message}", exc.hint) from None
        if offset != self._entry.size:
            raise CorruptObject(f"{self._where}: its chunks hold {offset} bytes, the tree records {self._entry.size}")
        self._ids, self._starts = ids, starts

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._entry.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _chunk(self, i: int) -> bytes:
        assert self._ids is not None
        cid = self._ids[i]
        raw = self._reader.cached(cid)
        if raw is not None:
            return raw
        # Sequential reading fetches a growing window ahead; a jump starts over at one chunk.
        self._readahead = min(self._readahead * 2, MAX_READAHEAD) if i == self._last_chunk + 1 else 1
        window = self._ids[i : i + self._readahead]
        try:
            got = self._reader.fetch(window)
        except (ObjectMissing, CorruptObject) as exc:
            raise type(exc)(f"{self._where}: {exc.message}", exc.hint) from None
        return got[cid]

    def readinto(self, buffer: Any) -> int:
        if self._entry.size == 0 or self._pos >= self._entry.size:
            self._check_digest()
            return 0
        self._layout()
        assert self._ids is not None
        i = bisect.bisect_right(self._starts, self._pos) - 1
        raw = self._chunk(i)
        self._last_chunk = i
        start = self._starts[i]
        if start == self._hashed_to:
            self._hasher.update(raw)
            self._hashed_to = start + len(raw)
        skip = self._pos - start
        n = min(len(buffer), len(raw) - skip)
        buffer[:n] = raw[skip : skip + n]
        self._pos += n
        if self._pos >= self._entry.size:
            self._check_digest()
        return n

    def _check_digest(self) -> None:
        if self._hashed_to != self._entry.size:
            return
        self._hashed_to = -1  # checked once
        if self._hasher.hexdigest() != self._entry.digest:
            raise CorruptObject(
                f"{self._where}: its bytes do not match the recorded digest {self._entry.digest}",
                "run `datactl verify --deep` on this version",
            )


def open_chunked(chunks: ChunkSource, entry: TreeEntry, where: str, sources: SourceBackends, path: str | None = None) -> ChunkedFile:
    """A seekable verified view of ``entry``: from ``chunks``, or, for an external file, by ranged reads of its source.

    ``where`` names the file in errors; ``path``, when ``where`` is more than the file's path (``PATH in v1 (...)``),
    is what the hint of a changed source tells ``datactl update``.
    """
    return ChunkedFile(SourceChunks(sources, entry, where, path) if entry.is_external else chunks, entry, where)
