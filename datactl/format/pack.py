"""Pack files: many objects concatenated, with a self-describing footer.

Layout::

    header   b"DCTLPACK" u8 version, 7 random bytes                  (16 bytes)
    objects  each object's stored bytes, back to back
    footer   one 44-byte entry per object:
             id (16) | type u8 | codec u8 | reserved u16 | offset u64 |
             stored_len u64 | raw_len u64
    trailer  footer_offset u64 | entry_count u64 | xxh3-128 of footer (16) |
             b"DCTLFOOT"                                             (40 bytes)

All integers are little-endian. A pack's id is the xxh3-128 of its whole
content, so a pack is verified by re-hashing it and an index can always be
rebuilt from the footers alone. The random header bytes make every pack's id
new: a key under ``packs/`` is written once, so gc deleting a condemned pack
can never remove a pack a writer has just uploaded under the same name.
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass
from typing import Sequence

from datactl.core import compression
from datactl.core.errors import CorruptObject
from datactl.core.ids import is_object_id, new_hasher, object_id

PACK_MAGIC = b"DCTLPACK"
FOOTER_MAGIC = b"DCTLFOOT"
PACK_VERSION = 1
HEADER = PACK_MAGIC + bytes([PACK_VERSION]) + bytes(7)
_ENTRY = struct.Struct("<16sBBHQQQ")
_TRAILER = struct.Struct("<QQ16s8s")
TRAILER_SIZE = _TRAILER.size
ENTRY_SIZE = _ENTRY.size
# No object is larger: the biggest are trees of folders with millions of entries.
MAX_OBJECT_BYTES = 1 << 31
# A pack also ends at this many objects, whatever its size: its writer holds every entry until the footer is
# written, and so do an upload in flight and a reader of the footer. Packs of tiny files (a million of 20 bytes
# would fill one 32 MiB pack) cost no more memory than packs of big chunks. Packs written before this, with more
# entries, are still read.
MAX_PACK_OBJECTS = 16_384


class ObjectType(enum.IntEnum):
    CHUNK = 1
    TREE = 2
    COMMIT = 3
    CHUNKLIST = 4


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one object lives inside a pack."""

    id: str
    type: ObjectType
    codec: int
    offset: int
    stored_len: int
    raw_len: int


def checked_entry(where: str, oid: object, typ: object, codec: object, offset: object, stored_len: object, raw_len: object) -> PackEntry:
    """A PackEntry from fields read off a store, each checked (``where`` names the pack or index file)."""
    if not isinstance(oid, str) or not is_object_id(oid):
        raise CorruptObject(f"{where} lists a malformed object id {str(oid)[:40]!r}", "run `datactl fsck --repair`")
    ints = (typ, codec, offset, stored_len, raw_len)
    if not all(type(v) is int for v in ints):
        raise CorruptObject(f"{where} lists object {oid} with non-integer fields", "run `datactl fsck --repair`")
    try:
        obj_type = ObjectType(typ)
    except ValueError:
        raise CorruptObject(f"{where} lists object {oid} of unknown type {typ}", "run `datactl fsck --repair`") from None
    if codec not in compression.CODECS:
        raise CorruptObject(f"{where} lists object {oid} with unknown codec {codec}", "run `datactl fsck --repair`")
    if (
        offset < len(HEADER)  # type: ignore[operator]
        or not 0 <= stored_len <= MAX_OBJECT_BYTES  # type: ignore[operator]
        or not 0 <= raw_len <= MAX_OBJECT_BYTES  # type: ignore[operator]
        or (codec == compression.RAW and stored_len != raw_len)
    ):
        raise CorruptObject(f"{where} lists object {oid} at an impossible place or size", "run `datactl fsck --repair`")
    return PackEntry(oid, obj_type, codec, offset, stored_len, raw_len)  # type: ignore[arg-type]


WRITE_BUFFER = 1 << 20


class PackWriter:
    """Appends stored objects to a temp file; ``finish`` seals it and names it by its hash."""

    def __init__(self, tmp_dir: str) -> None:
        os.makedirs(tmp_dir, exist_ok=True)
        self.path = os.path.join(tmp_dir, f"pack-{os.getpid()}-{os.urandom(6).hex()}.tmp")
        # A large buffer: one write call per MiB, not per object, so the writer rarely gives up the GIL.
        self._file = open(self.path, "wb", buffering=WRITE_BUFFER)
        self._hasher = new_hasher()
        self._offset = 0
        self.entries: list[PackEntry] = []
        self._write(PACK_MAGIC + bytes([PACK_VERSION]) + os.urandom(7))

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._hasher.update(data)
        self._offset += len(data)

    @property
    def size(self) -> int:
        return self._offset

    def __len__(self) -> int:
        return len(self.entries)

    def full(self, pack_size: int) -> bool:
        """Whether the pack reached the target size, or the most objects a pack holds: time to seal it."""
        return self._offset >= pack_size or len(self.entries) >= MAX_PACK_OBJECTS

    def add(self, object_id_hex: str, obj_type: ObjectType, codec: int, stored: bytes, raw_len: int) -> PackEntry:
        entry = PackEntry(object_id_hex, obj_type, codec, self._offset, len(stored), raw_len)
        self._write(stored)
        self.entries.append(entry)
        return entry

    def fill(self, obj_type: ObjectType, objects: Sequence[tuple[str, int, int, bytes | memoryview]], start: int, pack_size: int) -> int:
        """Append ``objects[start:]`` ((id, raw length, codec, stored bytes) each) until the pack is ``full``; return
        the index of the first one left out. One write for the run: a call per object cost more than a tiny object."""
        offset, entries, end = self._offset, self.entries, start
        while end < len(objects) and offset < pack_size and len(entries) < MAX_PACK_OBJECTS:
            oid, raw_len, codec, stored = objects[end]
            entries.append(PackEntry(oid, obj_type, codec, offset, len(stored), raw_len))
            offset += len(stored)
            end += 1
        self._write(b"".join(stored for _, _, _, stored in objects[start:end]))
        return end

    def finish(self) -> tuple[str, str, list[PackEntry]]:
        """Write footer and trailer, fsync; return (pack id, temp path, entries)."""
        footer_offset = self._offset
        footer = b"".join(
            _ENTRY.pack(bytes.fromhex(e.id), int(e.type), e.codec, 0, e.offset, e.stored_len, e.raw_len)
            for e in self.entries
        )
        self._write(footer)
        self._write(
            _TRAILER.pack(footer_offset, len(self.entries), bytes.fromhex(object_id(footer)), FOOTER_MAGIC)
        )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._hasher.hexdigest(), self.path, self.entries

    def abort(self) -> None:
        """Discard the pack; never raises (a full disk may refuse the buffered bytes, which are discarded anyway)."""
        try:
            self._file.close()
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass


def parse_trailer(pack_id: str, trailer: bytes, pack_size: int) -> tuple[int, int, str]:
    """Return (footer_offset, entry_count, footer_hash) or raise CorruptObject."""
    if len(trailer) != TRAILER_SIZE:
        raise CorruptObject(f"pack {pack_id} is truncated (no trailer)", "run `datactl fsck --repair`")
    footer_offset, count, footer_hash, magic = _TRAILER.unpack(trailer)
    if magic != FOOTER_MAGIC or footer_offset < len(HEADER) or footer_offset + count * ENTRY_SIZE + TRAILER_SIZE != pack_size:
        raise CorruptObject(f"pack {pack_id} has a damaged footer", "run `datactl fsck --repair`")
    return footer_offset, count, footer_hash.hex()


def parse_footer(pack_id: str, footer: bytes, count: int, footer_hash: str) -> list[PackEntry]:
    """Decode and verify a footer's entries."""
    if object_id(footer) != footer_hash or len(footer) != count * ENTRY_SIZE:
        raise CorruptObject(f"pack {pack_id} has a corrupt footer", "run `datactl fsck --repair`")
    entries = []
    where = f"pack {pack_id}"
    for raw_id, typ, codec, _reserved, offset, stored_len, raw_len in _ENTRY.iter_unpack(footer):
        entry = checked_entry(where, raw_id.hex(), typ, codec, offset, stored_len, raw_len)
        entries.append(entry)
    return entries

