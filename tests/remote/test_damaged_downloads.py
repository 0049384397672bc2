"""A remote pack with a flipped byte: every download fails naming the pack and the object, and no byte of it is kept.

docs/remotes.md: "Every downloaded object is decompressed and hashed against its
id before it is stored or used; a damaged pack is named in the error, and no bad
byte reaches the workspace." Checked for pull, clone and ``Dataset.get`` on a
folder store and on S3, by reading the footers of every pack the local store and
the shared cache hold afterwards (not their indexes, which a bug could skip).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import Cli, write
from datactl import Dataset
from datactl.core.errors import CorruptObject
from datactl.format.layout import key_name
from datactl.format.pack import ObjectType
from datactl.remote.locate import RemoteSpec, add_remote
from datactl.store.packread import PackReader, read_footer
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from servers import new_store
from storage_backends import LocalBackend, open_backend


def stored_ids(store_dir: Path) -> set[str]:
    """Every object id in the packs under ``store_dir``, read from their footers, each object read and hash-checked."""
    if not (store_dir / "packs").is_dir():
        return set()
    backend = LocalBackend(str(store_dir))
    located = [(key_name(info.key), e) for info in backend.list("packs/") for e in read_footer(backend, key_name(info.key), info.size)]
    with PackReader(backend) as reader:
        return {obj.entry.id for obj in reader.read_located(located)}  # CorruptObject if a stored object is bad


def damage_a_data_pack(url: str, options: dict, pushed_before: set[str]) -> tuple[str, str, set[str]]:
    """Flip one byte inside one object of the data pack pushed last; return (pack id, that object, every id in the pack)."""
    backend = open_backend(url, options)
    new = [info for info in backend.list("packs/") if info.key not in pushed_before]
    for info in new:
        entries = read_footer(backend, key_name(info.key), info.size)
        if entries and all(e.type == ObjectType.CHUNK for e in entries):
            victim = entries[len(entries) // 2]
            data = bytearray(backend.get(info.key))
            data[victim.offset + victim.stored_len // 2] ^= 0x01
            backend.put_bytes(info.key, bytes(data))
            return key_name(info.key), victim.id, {e.id for e in entries}
    raise AssertionError("the push wrote no data pack")


@pytest.fixture(params=["local", "s3"])
def damaged(request: pytest.FixtureRequest, tmp_path: Path, cli: Cli) -> dict:
    """v1 pushed and cloned; v2 pushed with one flipped byte in its data pack."""
    url, options = new_store(request.param, request, tmp_path)
    src = tmp_path / "src"
    rng = random.Random(3)
    write(src / "small.txt", "v1\n")
    ws = Workspace.init(str(src), name="ds")
    add_remote(ws.root, "origin", url, options)
    ws.add([str(src)])
    ws.commit("v1", tags=["v1"])
    sync.push(ws, tags=True)
    sync.clone(url, "ds", str(tmp_path / "at-v1"), options=options).close()
    pushed_before = {info.key for info in open_backend(url, options).list("packs/")}
    write(src / "data.bin", rng.randbytes(700_000))
    ws.add([str(src)])
    ws.commit("v2")
    sync.push(ws)
    ws.close()
    pack, victim, in_pack = damage_a_data_pack(url, options, pushed_before)
    return {"url": url, "options": options, "pack": pack, "victim": victim, "in_pack": in_pack}


def assert_named(message: str, d: dict) -> None:
    assert d["pack"] in message and d["victim"] in message and "corrupt" in message, message


def cached_ids(cache: Path) -> set[str]:
    return set().union(*(stored_ids(store) for store in (cache / "stores").iterdir()))


def test_downloads_of_a_damaged_pack_fail_naming_it_and_keep_nothing_of_it(damaged: dict, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # pull, in a workspace at v1: one error line and a hint; the workspace and its store stay whole.
    ws_dir = tmp_path / "at-v1"
    r = cli("pull", ok=False, cwd=ws_dir)
    lines = r.err.strip().splitlines()
    assert r.code == 1 and lines[0].startswith("error: ") and lines[1].startswith("hint: ") and len(lines) == 2, r.err
    assert_named(lines[0], damaged)
    assert not stored_ids(ws_dir / ".datactl" / "store") & damaged["in_pack"], "no object of the damaged range was stored"
    assert not (ws_dir / "data.bin").exists()
    assert cli("verify", "--deep", cwd=ws_dir).code == 0, "the local store is whole"

    # clone
    target = tmp_path / "clone"
    with pytest.raises(CorruptObject) as info:
        sync.clone(damaged["url"], "ds", str(target), options=damaged["options"])
    assert_named(info.value.message, damaged)
    assert not stored_ids(target / ".datactl" / "store") & damaged["in_pack"]
    assert not (target / "data.bin").exists()

    # Dataset.get, through the shared cache
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)
    remote = RemoteSpec(None, damaged["url"], damaged["options"])
    with Dataset.get("ds", remote=remote, cache_dir=str(cache)) as ds:
        digest = next(f.digest for f in ds.files() if f.path == "data.bin")
        with pytest.raises(CorruptObject) as info:
            ds.get_local_copy()  # every chunk of the file in one batch: the damaged pack is one range
        assert_named(info.value.message, damaged)
    kept = cached_ids(cache)
    assert kept and not kept & damaged["in_pack"], "the cache store holds no object of the damaged range"
    assert not (cache / "files" / digest[:2] / digest).exists(), "no content was cached for the damaged file"
    assert not [p for p in (cache / "copies").iterdir() if p.is_dir()], "no copy (finished or half-built) was left"

    with Dataset.get("ds", remote=remote, cache_dir=str(cache)) as ds:
        with pytest.raises(CorruptObject) as info:
            ds.read_bytes("data.bin")  # a stream reads a few chunks at a time: other ranges are good and kept
        assert_named(info.value.message, damaged)
        assert ds.read_bytes("small.txt") == b"v1\n"
    assert damaged["victim"] not in cached_ids(cache)
