"""A store served read-only by a static web server (nginx, honouring Range): clone, pull, read, check; never write.

The store is pushed once per module to a folder that nginx serves; every test
reads it over HTTP the way a user would, and compares bytes with what was pushed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pytest

from conftest import Cli, snapshot, write
from datactl.api.dataset import Dataset
from datactl.format.layout import LISTED_PREFIXES, LISTING_KEY
from datactl.format.listing import decode_listing
from datactl.remote.locate import add_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from servers import WebServer
from storage_backends import LocalBackend


@dataclass(frozen=True)
class Served:
    url: str  # the store over HTTP
    folder: Path  # the same store as the folder behind the server
    src: Path  # the workspace that pushed it (its files are the latest version)
    v1: dict  # snapshot of the files at tag v1


def make_files(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(12):
        write(root / f"part{i % 3}" / f"f{i:02d}.bin", rng.randbytes(rng.randint(100, 30_000)))
    write(root / "labels.csv", "path,label\n" + "".join(f"part0/f{i:02d}.bin,{i % 2}\n" for i in range(0, 12, 3)))
    write(root / "big.bin", rng.randbytes(3_000_000))


def publish(http_server: WebServer, root: Path, versions: int = 2) -> Served:
    """A workspace at ``root`` pushing ``versions`` versions (v1 tagged) to a folder under the server's root."""
    folder = http_server.root / f"store-{uuid.uuid4().hex[:8]}"
    ws = Workspace.init(str(root), name="ds")
    add_remote(ws.root, "origin", str(folder), {})
    make_files(root, 1)
    ws.add([ws.root])
    ws.commit("v1")
    ws.create_tag("v1")
    v1 = snapshot(root)
    for n in range(2, versions + 1):
        make_files(root, n)
        ws.add([ws.root])
        ws.commit(f"v{n}")
    sync.push(ws, tags=True)
    ws.close()
    return Served(f"{http_server.url}/{folder.name}", folder, root, v1)


@pytest.fixture(scope="module")
def served(http_server: WebServer, tmp_path_factory: pytest.TempPathFactory) -> Served:
    env = pytest.MonkeyPatch()
    env.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    try:
        return publish(http_server, tmp_path_factory.mktemp("src"))
    finally:
        env.undo()


def contents(root: Path) -> dict[str, str]:
    """path -> sha256 (a local copy from the cache is read-only, so modes differ)."""
    return {path: entry[-1] for path, entry in snapshot(root).items()}


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_clone_and_checkout_of_a_tag_over_http(cli: Cli, served: Served, tmp_path: Path) -> None:
    cli("clone", served.url, "ds", str(tmp_path / "c"))
    assert snapshot(tmp_path / "c") == snapshot(served.src)
    cli("checkout", "v1", cwd=tmp_path / "c")
    assert snapshot(tmp_path / "c") == served.v1
    listed = cli("datasets", served.url).out
    assert "ds" in listed
    history = cli("lineage", "ds", "--remote", served.url, "--json", cwd=tmp_path).out
    assert [(n["message"], n["tags"]) for n in json.loads(history)["nodes"]] == [("v2", []), ("v1", ["v1"])]


def test_pull_over_http_brings_a_version_pushed_behind_the_server(cli: Cli, http_server: WebServer, tmp_path: Path) -> None:
    store = publish(http_server, tmp_path / "src", versions=1)
    cli("clone", store.url, "ds", str(tmp_path / "c"))
    ws = Workspace.open(str(store.src))
    write(store.src / "new.txt", "pushed to the folder behind the server\n")
    ws.add([ws.root])
    ws.commit("v2")
    sync.push(ws)
    ws.close()

    cli("pull", cwd=tmp_path / "c")

    assert snapshot(tmp_path / "c") == snapshot(store.src)


def test_dataset_get_open_and_datactl_urls_read_over_http(served: Served) -> None:
    ds = Dataset.get("ds", remote=served.url)
    big = (served.src / "big.bin").read_bytes()
    with ds.open("big.bin") as f:
        f.seek(1_234_567)
        assert f.read(100_000) == big[1_234_567 : 1_334_567]
    assert contents(Path(ds.get_local_copy())) == contents(served.src)
    old = Dataset.get("ds", version="v1", remote=served.url)
    assert contents(Path(old.get_local_copy())) == {path: entry[-1] for path, entry in served.v1.items()}
    with fsspec.open("datactl://ds/labels.csv", "rb", remote=served.url) as f:
        assert f.read() == (served.src / "labels.csv").read_bytes()


def test_verify_and_validate_read_the_store_over_http(cli: Cli, served: Served, tmp_path: Path) -> None:
    cli("verify", "ds", "--remote", served.url)
    cli("verify", "ds", "--remote", served.url, "--deep")
    rules = tmp_path / "rules.toml"
    rules.write_text('[[validate.rules]]\ntype = "count"\nglob = "part0/**"\nmin = 4\n\n[[validate.rules]]\ntype = "count"\nmin = 100\n')
    failed = cli("validate", "ds", "--remote", served.url, "--rules", str(rules), ok=False)
    assert failed.code == 1, "the second rule (100 files) must fail: the rules were really checked"
    rules.write_text('[[validate.rules]]\ntype = "count"\nglob = "part0/**"\nmin = 4\n')
    cli("validate", "ds", "--remote", served.url, "--rules", str(rules))


def test_verify_over_http_finds_a_pack_missing_behind_the_server(cli: Cli, http_server: WebServer, tmp_path: Path) -> None:
    store = publish(http_server, tmp_path / "src", versions=1)
    pack = next(p for p in (store.folder / "packs").rglob("*") if p.is_file())
    pack.unlink()
    result = cli("verify", "ds", "--remote", store.url, ok=False)
    assert result.code == 1 and pack.name in result.out + result.err


def test_push_to_an_http_store_is_refused_in_one_line(cli: Cli, served: Served, tmp_path: Path) -> None:
    cli("clone", served.url, "ds", str(tmp_path / "c"))
    write(tmp_path / "c" / "mine.txt", "new\n")
    cli("add", ".", cwd=tmp_path / "c")
    cli("commit", "-m", "mine", cwd=tmp_path / "c")
    before = snapshot(served.folder)

    result = cli("push", ok=False, cwd=tmp_path / "c")

    assert result.code == 2
    lines = error_lines(result.err)
    assert lines[0].startswith("error: ") and "read-only" in lines[0] and served.url in lines[0], result.err
    assert len(lines) == 2 and lines[1].startswith("hint: ") and "push to the store behind it" in lines[1], result.err
    assert snapshot(served.folder) == before


def test_the_listing_names_what_a_listing_of_the_folder_shows(served: Served) -> None:
    folder = LocalBackend(str(served.folder))
    listed = decode_listing(folder.get(LISTING_KEY), served.url)
    real = {info.key: info.size for prefix in LISTED_PREFIXES for info in folder.list(prefix)}
    assert listed == real and any(k.startswith("index/") for k in listed) and "refs/tags/ds/v1" in listed


def test_a_store_without_a_listing_says_how_to_get_one(cli: Cli, served: Served, http_server: WebServer, tmp_path: Path) -> None:
    # A store written before the listing existed: every other file is there.
    old = http_server.root / f"old-{uuid.uuid4().hex[:8]}"
    shutil.copytree(served.folder, old)
    os.remove(old / LISTING_KEY)
    url = f"{http_server.url}/{old.name}"

    result = cli("clone", url, "ds", str(tmp_path / "c"), ok=False)

    assert result.code == 3
    lines = error_lines(result.err)
    assert "has no listing" in lines[0] and lines[1].startswith("hint: ") and len(lines) == 2, result.err
    ws = sync.clone(str(old), "ds", str(tmp_path / "w"))
    write(tmp_path / "w" / "more.txt", "more\n")
    ws.add([ws.root])
    ws.commit("more")
    sync.push(ws)  # the next push to the folder writes the whole listing
    ws.close()
    cli("clone", url, "ds", str(tmp_path / "c"))
    assert snapshot(tmp_path / "c") == snapshot(tmp_path / "w")
