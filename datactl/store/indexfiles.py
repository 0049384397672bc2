"""The ``index/`` files of a store: listing, reading and writing them."""

from __future__ import annotations

from typing import Iterable, Iterator

from datactl.core.errors import CorruptObject
from datactl.core.ids import object_id
from datactl.core.parallel import parallel_map
from datactl.format.indexfile import PackListing, decode_index_file, encode_index_file
from datactl.format.layout import INDEX_PREFIX, index_file_key, key_name
from storage_backends import Backend, KeyNotFound, ObjectInfo


def list_index_files(backend: Backend) -> dict[str, ObjectInfo]:
    """Every index file of the store, by id."""
    return {key_name(info.key): info for info in backend.list(INDEX_PREFIX)}


def fetch_index_file(backend: Backend, index_id: str) -> bytes:
    """One index file's bytes, checked against its name (the hash of its bytes); KeyNotFound if it is gone."""
    data = backend.get(index_file_key(index_id))
    if object_id(data) != index_id:  # a flipped byte can still decompress to a well-formed, wrong listing
        raise CorruptObject(f"index file {index_id} is unreadable: its bytes do not hash to its name", "run `datactl fsck --repair`")
    return data


def read_index_file(backend: Backend, index_id: str) -> PackListing:
    """One index file, checked and decoded (KeyNotFound if it is gone)."""
    return decode_index_file(index_id, fetch_index_file(backend, index_id))


def read_index_files(backend: Backend, ids: Iterable[str], jobs: int) -> Iterator[tuple[str, PackListing | None, CorruptObject | None]]:
    """(id, listing, None) for each index file in order; (id, None, None) for one gone since it was listed, and
    (id, None, problem) for one damaged. Fetched ``jobs`` at a time but decoded one at a time, as consumed: a
    decoded listing is several times its bytes (an index file of a pack of 50,000 tiny objects decodes to ~25 MB),
    and decoding is Python work that threads would not speed up."""

    def fetch(index_id: str) -> tuple[str, bytes | None, CorruptObject | None]:
        try:
            return index_id, fetch_index_file(backend, index_id), None
        except KeyNotFound:
            return index_id, None, None
        except CorruptObject as exc:
            return index_id, None, exc

    for index_id, data, problem in parallel_map(fetch, ids, jobs, "datactl-index"):
        if data is None:
            yield index_id, None, problem
            continue
        try:
            listing = decode_index_file(index_id, data)
        except CorruptObject as exc:
            yield index_id, None, exc
            continue
        del data
        yield index_id, listing, None


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
