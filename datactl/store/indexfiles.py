"""The ``index/`` files of a store: listing, reading and writing them."""

from __future__ import annotations

from typing import Iterator

from datactl.core.errors import CorruptObject
from datactl.core.ids import object_id
from datactl.format.indexfile import PackListing, decode_index_file, encode_index_file
from datactl.format.layout import INDEX_PREFIX, index_file_key, key_name
from storage_backends import Backend, ObjectInfo


def list_index_files(backend: Backend) -> dict[str, ObjectInfo]:
    """Every index file of the store, by id."""
    return {key_name(info.key): info for info in backend.list(INDEX_PREFIX)}


def read_index_file(backend: Backend, index_id: str) -> PackListing:
    """One index file, checked against its name (the hash of its bytes) and decoded (KeyNotFound if it is gone)."""
    data = backend.get(index_file_key(index_id))
    if object_id(data) != index_id:  # a flipped byte can still decompress to a well-formed, wrong listing
        raise CorruptObject(f"index file {index_id} is unreadable: its bytes do not hash to its name", "run `datactl fsck --repair`")
    return decode_index_file(index_id, data)


def write_index_file(backend: Backend, packs: PackListing) -> str:
    """Store an index file for ``packs``; return its id (content-addressed, so writing it twice is harmless)."""
    data = encode_index_file(packs)
    index_id = object_id(data)
    backend.put_if_absent(index_file_key(index_id), data)
    return index_id


def delete_index_file(backend: Backend, index_id: str) -> None:
    backend.delete(index_file_key(index_id))


def split_listing(packs: PackListing, per_file: int) -> Iterator[PackListing]:
    """``packs`` in pieces of about ``per_file`` objects, one index file each."""
    chunk: PackListing = {}
    n = 0
    for pid in sorted(packs):
        size, entries = packs[pid]
        if chunk and n + len(entries) > per_file:
            yield chunk
            chunk, n = {}, 0
        chunk[pid] = (size, entries)
        n += len(entries)
    if chunk:
        yield chunk
