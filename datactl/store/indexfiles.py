"""The ``index/`` files of a store: listing, reading and writing them."""

from __future__ import annotations

from typing import Iterator

from datactl.core.ids import object_id
from datactl.format.indexfile import PackListing, decode_index_file, encode_index_file
from datactl.format.layout import INDEX_PREFIX, index_file_key, key_name
from storage_backends import Backend, ObjectInfo


def list_index_files(backend: Backend) -> dict[str, ObjectInfo]:
    """Every index file of the store, by id."""
    return {key_name(info.key): info for info in backend.list(INDEX_PREFIX)}


def read_index_file(backend: Backend, index_id: str) -> PackListing:
    """One index file, decoded and checked (KeyNotFound if it is gone)."""
    return decode_index_file(index_id, backend.get(index_file_key(index_id)))


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
