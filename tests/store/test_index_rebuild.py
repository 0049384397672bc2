"""What finds objects is derived from the packs: docs/format.md says so of the object index and of index files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from conftest import Cli, write
from datactl.core.errors import CorruptObject
from datactl.format.layout import WorkspaceLayout, key_name
from datactl.format.pack import ObjectType, PackEntry
from datactl.store.index import ObjectIndex
from datactl.store.indexfiles import list_index_files, read_index_file, write_index_file
from datactl.store.packread import read_footer
from datactl.store.repository import Repository, read_store_config
from storage_backends import LocalBackend


def footer_ids(backend: LocalBackend) -> set[str]:
    return {e.id for info in backend.list("packs/") for e in read_footer(backend, key_name(info.key), info.size)}


def test_rebuild_index_after_index_db_is_deleted_finds_every_object(cli: Cli, ws_dir: Path) -> None:
    rng = random.Random(5)
    cli("init", "--name", "ds")
    for v in range(3):
        for i in range(10):
            write(ws_dir / f"v{v}" / f"{i}.bin", rng.randbytes(rng.randint(100, 200_000)))
        cli("add", ".")
        cli("commit", "-m", f"v{v}")
    layout = WorkspaceLayout(str(ws_dir))
    backend = LocalBackend(layout.store_dir)
    with ObjectIndex(layout.index_db) as before:
        indexed = set(before.iter_ids())
    os.unlink(layout.index_db)

    repo = Repository(backend, ObjectIndex(layout.index_db), read_store_config(backend), layout.tmp_dir)
    try:
        rebuilt = repo.rebuild_index()
        assert rebuilt.packs == len(list(backend.list("packs/"))) and rebuilt.objects == len(indexed) and not rebuilt.damaged
        assert set(repo.index.iter_ids()) == indexed == footer_ids(backend)
        for oid in sorted(indexed):
            repo.read(oid)  # found through the rebuilt index, and hashed against its id
    finally:
        repo.close()
    assert cli("verify", "--deep").code == 0 and "v2" in cli("log", "--oneline").out


def test_an_index_file_with_any_byte_changed_is_refused(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "store"))
    rng = random.Random(2)
    listing = {}
    for _ in range(3):
        entries, offset = [], 16
        for _ in range(5):
            n = rng.randint(10, 1000)
            entries.append(PackEntry(f"{rng.getrandbits(128):032x}", ObjectType.CHUNK, 1, offset, n, n * 2))
            offset += n
        listing[f"{rng.getrandbits(128):032x}"] = (offset + 100, entries)
    index_id = write_index_file(backend, listing)
    assert read_index_file(backend, index_id) == listing
    key = f"index/{index_id}"
    good = backend.get(key)
    for i in range(len(good)):  # every single-byte change: a quarter of them still decompress to a well-formed listing
        bad = bytearray(good)
        bad[i] ^= 0x20
        backend.put_bytes(key, bytes(bad))
        with pytest.raises(CorruptObject, match=f"index file {index_id}"):
            read_index_file(backend, index_id)
    assert list(list_index_files(backend)) == [index_id]
