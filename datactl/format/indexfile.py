"""Index files (``index/<id>``): which objects each pack holds, and where.

An index file is zstd-compressed JSON::

    {"format": 1, "packs": {"<pack id>": {"size": N, "objects": [[id, type, codec, offset, stored_len, raw_len], ...]}}}

Its id is the xxh3-128 of its bytes, so writing the same listing twice is
harmless. The facts are also in the packs' footers: index files only save
reading every footer, and ``fsck --repair`` can always rewrite them.
"""

from __future__ import annotations

import json

import zstandard

from datactl.core.compression import decompress_bounded
from datactl.core.errors import CorruptObject
from datactl.core.ids import is_object_id
from datactl.format.jsontext import parse_json
from datactl.format.pack import MAX_OBJECT_BYTES, PackEntry, checked_entry

FORMAT = 1
# An index file never decompresses to more than this (gc writes files of 100,000 objects, about 12 MB).
MAX_INDEX_FILE_BYTES = 1 << 30

PackListing = dict[str, tuple[int, list[PackEntry]]]  # pack id -> (pack size, its objects)


def encode_index_file(packs: PackListing) -> bytes:
    doc = {
        "format": FORMAT,
        "packs": {
            pid: {
                "size": size,
                "objects": [[e.id, int(e.type), e.codec, e.offset, e.stored_len, e.raw_len] for e in entries],
            }
            for pid, (size, entries) in sorted(packs.items())
        },
    }
    return zstandard.ZstdCompressor(level=3).compress(json.dumps(doc, separators=(",", ":")).encode())


def decode_index_file(index_id: str, data: bytes) -> PackListing:
    """Decode and check an index file; anything malformed raises CorruptObject."""
    where = f"index file {index_id}"
    try:
        doc = parse_json(decompress_bounded(data, MAX_INDEX_FILE_BYTES))
    except ValueError as exc:
        raise CorruptObject(f"{where} is unreadable: {exc}", "run `datactl fsck --repair`") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("packs"), dict):
        raise CorruptObject(f"{where} is not an index file of format {FORMAT}", "run `datactl fsck --repair`")
    out: PackListing = {}
    for pid, p in doc["packs"].items():
        if not is_object_id(pid) or not isinstance(p, dict):
            raise CorruptObject(f"{where} names a malformed pack {str(pid)[:40]!r}", "run `datactl fsck --repair`")
        size, rows = p.get("size"), p.get("objects")
        if type(size) is not int or not 0 <= size <= 64 * MAX_OBJECT_BYTES or not isinstance(rows, list):
            raise CorruptObject(f"{where} lists pack {pid} with a malformed size or object list", "run `datactl fsck --repair`")
        entries = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 6:
                raise CorruptObject(f"{where} lists a malformed object in pack {pid}", "run `datactl fsck --repair`")
            entry = checked_entry(f"{where} (pack {pid})", *row)
            if entry.offset + entry.stored_len > size:
                raise CorruptObject(f"{where} places object {entry.id} beyond the end of pack {pid}", "run `datactl fsck --repair`")
            entries.append(entry)
        out[pid] = (size, entries)
    return out
