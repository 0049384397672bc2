"""push / fetch / pull / clone against every backend: bytes identical, nothing lost, only deltas moved."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Cli, snapshot, write
from datactl.core.crashpoints import CRASH_ENV
from datactl.core.errors import LocalChanges, RefConflict
from datactl.format.layout import LISTED_PREFIXES, LISTING_KEY
from datactl.format.listing import decode_listing
from datactl.format.storeconfig import StoreConfig
from datactl.remote.locate import RemoteSpec
from datactl.remote.remotestore import list_datasets
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from servers import WRITABLE_KINDS, new_store
from storage_backends import open_backend


def remote_add_args(url: str, options: dict) -> list[str]:
    args = ["remote", "add", "origin", url]
    if options.get("endpoint_url"):
        args += ["--endpoint-url", options["endpoint_url"]]
    return args


def make_files(root: Path, n: int = 60, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(n):
        write(root / f"part{i % 4}" / f"f{i:03d}.bin", rng.randbytes(rng.randint(1_000, 40_000)))
    write(root / "big.bin", rng.randbytes(2_000_000))


def new_workspace(path: Path, url: str, options: dict, name: str = "ds", pack_size: int | None = None) -> Workspace:
    config = StoreConfig(pack_size=pack_size) if pack_size else None
    ws = Workspace.init(str(path), name=name, store_config=config)
    from datactl.remote.locate import add_remote

    add_remote(ws.root, "origin", url, options)
    return ws


def test_push_clone_pull_round_trip(cli: Cli, ws_dir: Path, tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    make_files(ws_dir)
    cli("init", "--name", "ds")
    cli(*remote_add_args(url, options))
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    first = json.loads(cli("push", "--tags", "--json").out)
    assert first["objects"] > 0 and first["tags_pushed"] == ["v1"]
    again = json.loads(cli("push", "--json").out)
    assert again["up_to_date"] and again["bytes_uploaded"] == 0
    v1 = snapshot(ws_dir)

    clone_dir = tmp_path / "clone"
    clone_args = ["clone", url, "ds", str(clone_dir)] + (["--endpoint-url", options["endpoint_url"]] if options.get("endpoint_url") else [])
    cli(*clone_args, cwd=tmp_path)
    assert snapshot(clone_dir) == v1
    assert "v1" in cli("tag", cwd=clone_dir).out

    write(ws_dir / "part0" / "f000.bin", b"edited")
    (ws_dir / "part1" / "f001.bin").unlink()
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("push")
    v2 = snapshot(ws_dir)
    cli("pull", cwd=clone_dir)
    assert snapshot(clone_dir) == v2
    cli("verify", "--deep", cwd=clone_dir)
    listing = json.loads(cli("datasets", "origin", "--json").out)
    assert [(d["name"], d["kind"]) for d in listing] == [("ds", "dataset")]


def test_a_push_sends_each_object_once_whatever_batch_names_it(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    """A push asks the remote about a few thousand ids at a time and reads them together: a chunk named again in
    a later batch, while the pack holding it is still being filled or sent, is not sent twice."""
    for i in range(5_000):  # three contents shared across every batch, and a few files of their own
        write(ws_dir / f"d{i % 3}" / f"f{i:05d}.txt", f"content {i % 3}\n" if i >= 10 else f"unique {i}\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1")
    remote = tmp_path / "remote"
    pushed = json.loads(cli("push", str(remote), "--json").out)
    assert pushed["objects"] == 3 + 10 + 4 + 1  # chunks (one per content), trees (root and three folders), the commit
    again = json.loads(cli("push", str(remote), "--json").out)
    assert again["up_to_date"] and again["bytes_uploaded"] == 0
    cli("clone", str(remote), "ds", str(tmp_path / "clone"), cwd=tmp_path)
    assert snapshot(tmp_path / "clone") == snapshot(ws_dir)
    cli("verify", "--deep", cwd=tmp_path / "clone")


def test_second_push_after_editing_one_percent_uploads_about_one_percent(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    root = tmp_path / "w"
    rng = random.Random(3)
    for i in range(400):
        write(root / f"d{i % 10}" / f"{i}.bin", rng.randbytes(20_000))
    ws = new_workspace(root, url, options)
    ws.add([str(root)])
    ws.commit("v1")
    first = sync.push(ws)
    for i in range(0, 400, 100):  # 4 of 400 files = 1%
        write(root / f"d{i % 10}" / f"{i}.bin", rng.randbytes(20_000))
    ws.add([str(root)])
    ws.commit("v2")
    second = sync.push(ws)
    ws.close()
    ratio = second.bytes_uploaded / first.bytes_uploaded
    assert ratio < 0.03, f"editing 1% of files uploaded {ratio:.1%} of the first push"


def test_push_refused_when_remote_moved_on_and_nothing_is_lost(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    a = new_workspace(tmp_path / "a", url, options)
    write(tmp_path / "a" / "x.txt", "x\n")
    a.add([str(tmp_path / "a")])
    a.commit("base")
    sync.push(a)

    b = sync.clone(url, "ds", str(tmp_path / "b"), options=options)
    write(tmp_path / "b" / "from_b.txt", "b\n")
    b.add([str(tmp_path / "b")])
    b_commit = b.commit("b's version")
    sync.push(b)

    write(tmp_path / "a" / "from_a.txt", "a\n")
    a.add([str(tmp_path / "a")])
    a.commit("a's version")
    with pytest.raises(RefConflict) as info:
        sync.push(a)
    assert "pull" in str(info.value)
    with pytest.raises(RefConflict):
        sync.pull(a)  # diverged: told to merge, nothing changed
    assert (tmp_path / "a" / "from_a.txt").exists()
    head = list_datasets(RemoteSpec(None, url, options))[0].head
    assert head == b_commit, "b's pushed version is still the remote head"
    a.close()
    b.close()


def test_pull_refuses_to_overwrite_local_changes(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    a = new_workspace(tmp_path / "a", url, options)
    write(tmp_path / "a" / "x.txt", "x\n")
    a.add([str(tmp_path / "a")])
    a.commit("base")
    sync.push(a)
    b = sync.clone(url, "ds", str(tmp_path / "b"), options=options)
    write(tmp_path / "a" / "x.txt", "x2\n")
    a.add([str(tmp_path / "a")])
    a.commit("v2")
    sync.push(a)
    write(tmp_path / "b" / "x.txt", "local edit\n")
    with pytest.raises(LocalChanges):
        sync.pull(b)
    assert (tmp_path / "b" / "x.txt").read_text() == "local edit\n"
    a.close()
    b.close()


def test_partial_pull_downloads_only_what_the_paths_need(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    src = tmp_path / "src"
    rng = random.Random(9)
    for part in ("train", "test"):
        for i in range(20):
            write(src / part / f"{i}.bin", rng.randbytes(50_000))
    a = new_workspace(src, url, options)
    a.add([str(src)])
    a.commit("v1")
    sync.push(a)
    a.close()

    ws = sync.clone(url, "ds", str(tmp_path / "part"), options=options, paths=["test"])
    pulled = sum(ws.repo.index.packs().values())
    assert sorted(os.listdir(tmp_path / "part" / "test")) == sorted(f"{i}.bin" for i in range(20))
    assert not (tmp_path / "part" / "train").exists()
    assert pulled < 20 * 50_000 * 1.3, f"partial pull stored {pulled} bytes for 1 MB of files"
    assert ws.status().clean
    ws.close()


def test_clone_and_checkout_of_an_older_version_download_just_its_files(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    src = tmp_path / "src"
    rng = random.Random(5)
    write(src / "common.bin", rng.randbytes(200_000))
    write(src / "old_only.bin", rng.randbytes(300_000))
    a = new_workspace(src, url, options)
    a.add([str(src)])
    a.commit("v1", tags=["v1"])
    v1 = snapshot(src)
    (src / "old_only.bin").unlink()
    write(src / "new_only.bin", rng.randbytes(400_000))
    a.add([str(src)])
    a.commit("v2")
    v2 = snapshot(src)
    sync.push(a, tags=True)
    a.close()

    ws = sync.clone(url, "ds@v1", str(tmp_path / "old"), options=options)
    assert snapshot(tmp_path / "old") == v1, "the version asked for, with a file its successor deleted"
    stored = sum(ws.repo.index.packs().values())
    assert stored < 500_000 * 1.2 + 100_000, f"cloning v1 stored {stored} bytes: the head's files came too"
    ws.close()

    ws = sync.clone(url, "ds", str(tmp_path / "latest"), options=options)
    assert snapshot(tmp_path / "latest") == v2
    sync.checkout(ws, "v1")  # old_only.bin was never downloaded here
    assert snapshot(tmp_path / "latest") == v1
    ws.close()


def test_corrupted_remote_pack_is_named_on_pull(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    src = tmp_path / "src"
    write(src / "data.bin", random.Random(4).randbytes(500_000))
    a = new_workspace(src, url, options)
    a.add([str(src)])
    a.commit("v1")
    sync.push(a)
    a.close()
    backend = open_backend(url, options)
    packs = [info for info in backend.list("packs/")]
    biggest = max(packs, key=lambda i: i.size)
    data = bytearray(backend.get(biggest.key))
    data[5000] ^= 0xFF
    backend.put_bytes(biggest.key, bytes(data))
    pack_id = biggest.key.rsplit("/", 1)[-1]
    from datactl.core.errors import CorruptObject

    with pytest.raises(CorruptObject) as info:
        sync.clone(url, "ds", str(tmp_path / "c"), options=options)
    assert pack_id in str(info.value)
    assert not (tmp_path / "c" / "data.bin").exists()


PUSH_SCRIPT = """
import sys
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
ws = Workspace.open(sys.argv[1])
r = sync.push(ws)
print(r.bytes_uploaded)
"""


def test_killed_push_resumes_sending_only_what_is_missing(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    src = tmp_path / "src"
    rng = random.Random(11)
    for i in range(40):
        write(src / f"{i}.bin", rng.randbytes(1_000_000))
    ws = new_workspace(src, url, options, pack_size=1 << 20)
    ws.add([str(src)])
    ws.commit("v1")
    ws.close()
    env = {**os.environ, "DATACTL_AUTHOR": "t"}
    backend = open_backend(url, options)
    # Killed right after its third pack is up (a named crash point, not a race against the clock).
    killed = subprocess.run([sys.executable, "-c", PUSH_SCRIPT, str(src)], env={**env, CRASH_ENV: "after-pack-upload#3"}, capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    assert not backend.exists("refs/datasets/ds"), "the killed push published nothing"
    uploaded_by_killed = sum(i.size for i in backend.list("packs/"))
    assert uploaded_by_killed > 0
    done = subprocess.run([sys.executable, "-c", PUSH_SCRIPT, str(src)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed_bytes = int(done.stdout.strip())
    total = sum(i.size for i in open_backend(url, options).list("packs/"))
    assert resumed_bytes <= total - uploaded_by_killed + 2_000_000, "the resumed push re-sent packs already there"
    clone = sync.clone(url, "ds", str(tmp_path / "c"), options=options)
    assert snapshot(tmp_path / "c") == snapshot(src)
    clone.close()


@pytest.fixture(params=WRITABLE_KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    """A fresh store on every writable backend, Azure included (for the concurrent-writer tests only, to keep the suite short)."""
    return new_store(request.param, request, tmp_path)


def test_concurrent_pushes_each_land_or_are_told(tmp_path: Path, any_store: tuple[str, dict]) -> None:
    url, options = any_store
    base = new_workspace(tmp_path / "base", url, options)
    write(tmp_path / "base" / "shared.txt", "shared\n")
    base.add([str(tmp_path / "base")])
    base.commit("base")
    sync.push(base)
    base.close()
    writers = 4
    for i in range(writers):
        w = sync.clone(url, "ds", str(tmp_path / f"w{i}"), options=options)
        write(tmp_path / f"w{i}" / f"mine_{i}.bin", os.urandom(200_000))
        w.add([str(tmp_path / f"w{i}")])
        w.commit(f"writer {i}")
        w.close()
    env = {**os.environ, "DATACTL_AUTHOR": "t"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "datactl", "push"], cwd=tmp_path / f"w{i}", env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(writers)
    ]
    results = [(p.wait(), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
    losers = [i for i, (code, _, _) in enumerate(results) if code != 0]
    assert len(winners) == 1, results
    for i in losers:
        code, _, err = results[i]
        assert code == 1 and ("moved on" in err or "not in your history" in err) and "pull" in err
    head = list_datasets(RemoteSpec(None, url, options))[0].head
    ws = Workspace.open(str(tmp_path / f"w{winners[0]}"))
    assert ws.head == head
    ws.close()
    # The listing (what HTTP readers go by) names exactly what the store holds, whoever swapped it last.
    backend = open_backend(url, options)
    real = {info.key: info.size for prefix in LISTED_PREFIXES for info in backend.list(prefix)}
    assert decode_listing(backend.get(LISTING_KEY), url) == real


def test_a_store_emptied_and_recreated_gets_every_object_on_the_next_push(tmp_path: Path, cli: Cli) -> None:
    """The local cache of a remote's index must not vouch for objects whose index files the store lost."""
    ws = tmp_path / "w"
    remote = tmp_path / "remote"
    ws.mkdir()
    cli("init", "--name", "d", cwd=ws)
    (ws / "a.txt").write_text("hello\n")
    cli("add", ".", cwd=ws)
    cli("commit", "-m", "v1", cwd=ws)
    cli("remote", "add", "origin", str(remote), cwd=ws)
    cli("push", cwd=ws)
    shutil.rmtree(remote)  # the store is gone: a new, empty one is made at the same place
    out = cli("push", cwd=ws).out
    assert "0 objects" not in out
    cli("clone", str(remote), "d", str(tmp_path / "copy"), cwd=tmp_path)
    assert (tmp_path / "copy" / "a.txt").read_text() == "hello\n"
