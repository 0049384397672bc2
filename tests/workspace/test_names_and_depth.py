"""Names up to the file system's limit and deep folders round-trip; deeper hostile trees are refused clearly
(issue 12 items 4 and 5)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Cli, snapshot, write
from datactl import Dataset
from datactl.core.dirs import remove_tree
from datactl.core.errors import UnsafePath
from datactl.core.safepath import MAX_DEPTH
from hostile import plant_version

LONG_NAMES = [
    "a" * 255,
    "a" * 254 + "b",  # the same first 243 bytes as the one above: their temporary names must differ
    "b" * 243,
    "é" * 127,  # 254 bytes of two-byte characters
]


def test_names_of_243_to_255_bytes_are_restored(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    for i, name in enumerate(LONG_NAMES):
        write(ws_dir / "d" / name, f"file {i}\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    want = snapshot(ws_dir)
    for name in LONG_NAMES:
        os.unlink(ws_dir / "d" / name)
    write(ws_dir / "other.txt", "other\n")
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("checkout", "v1")
    assert snapshot(ws_dir) == want
    cli("push", str(tmp_path / "store"), "--tags")
    cli("clone", str(tmp_path / "store"), "ds@v1", str(tmp_path / "copy"), cwd=tmp_path)
    assert snapshot(tmp_path / "copy") == want
    assert not [p for p in os.listdir(ws_dir / "d") if p.endswith(".datactl-tmp")]


@pytest.fixture
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, emptied afterwards without recursion (pytest's own clean-up of old runs recurses per level)."""
    yield tmp_path
    for child in tmp_path.iterdir():
        remove_tree(str(child))


def _nest(root: Path, depth: int) -> Path:
    """``depth`` folders one inside the other below ``root`` (made level by level: no path grows too long to pass)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("leaf\n")
    finally:
        os.close(fd)
    return root.joinpath(*["d"] * depth, "leaf.txt")


def test_1100_nested_folders_are_added_cloned_pulled_and_read(cli: Cli, ws_dir: Path, deep_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = deep_tmp
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    leaf = _nest(ws_dir, 1100)
    cli("init", "--name", "deep")
    cli("add", ".")
    cli("commit", "-m", "v1")
    store = str(tmp_path / "store")
    cli("push", store)
    cli("clone", store, "deep", str(tmp_path / "copy"), cwd=tmp_path)
    copy_leaf = tmp_path / "copy" / leaf.relative_to(ws_dir)
    assert copy_leaf.read_text() == "leaf\n"
    assert cli("verify", "--deep", cwd=tmp_path / "copy").code == 0  # a clone is a pull into a new workspace
    with Dataset.get("deep", remote=store) as ds:
        local = Path(ds.get_local_copy())
        assert (local / leaf.relative_to(ws_dir)).read_text() == "leaf\n"


def test_a_hostile_tree_deeper_than_the_limit_is_refused(cli: Cli, ws_dir: Path, deep_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = deep_tmp
    write(ws_dir / "a.txt", "alpha\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1")
    deep = "/".join(["d"] * (MAX_DEPTH + 1)) + "/leaf.txt"
    plant_version(ws_dir, {"a.txt": b"alpha\n", deep: b"leaf\n"}, "deep", latest=True)
    before = snapshot(ws_dir)
    r = cli("checkout", "deep", ok=False)
    assert r.code == 1 and f"nested {MAX_DEPTH + 1} folders deep" in r.err and f"at most {MAX_DEPTH}" in r.err
    assert snapshot(ws_dir) == before
    store = str(tmp_path / "store")
    cli("push", store)
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UnsafePath) as exc:
        with Dataset.get("ds", remote=store) as ds:
            ds.get_local_copy()
    assert "folders deep" in str(exc.value)
