"""A checkout (and so a pull) that fails half-way leaves the workspace, HEAD and the dataset's ref as they were
(issue 12 item 3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Cli, run_datactl, snapshot, write
from datactl.format.layout import pack_key
from datactl.workspace.workspace import Workspace


def _heads(ws_dir: Path) -> tuple[str | None, str | None]:
    """(HEAD, the dataset's ref) of the workspace at ``ws_dir``."""
    with Workspace.open(str(ws_dir)) as ws:
        return ws.head, ws.repo.refs.get(ws.head_ref)


def _first_version_pushed(cli: Cli, ws_dir: Path, store: str, files: int, text: str) -> None:
    """A workspace at ``ws_dir`` of ``files`` files (f0.txt, ... holding ``text`` and their number), committed as v1
    and pushed to ``store``."""
    for i in range(files):
        write(ws_dir / f"f{i}.txt", f"{text} {i}\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1")
    cli("push", store)


def test_a_pull_whose_checkout_fails_changes_nothing_and_the_next_pull_finishes(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    _first_version_pushed(cli, ws_dir, store, 5, "v1")
    clone = tmp_path / "clone"
    cli("clone", store, "ds", str(clone), cwd=tmp_path)
    for i in range(5):
        write(ws_dir / f"f{i}.txt", f"v2 {i}\n")
    os.unlink(ws_dir / "f0.txt")
    write(ws_dir / "zz" / "new.txt", "new\n")  # sorts after every other file: written last
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("push", store)

    write(clone / "zz", "an untracked file where v2 has a folder\n")
    before, heads = snapshot(clone), _heads(clone)
    r = cli("pull", ok=False, cwd=clone)
    assert r.code == 1 and "zz is a file, not a folder" in r.err and "Traceback" not in r.err
    assert snapshot(clone) == before, "no file of v1 deleted, none of v2 written"
    assert _heads(clone) == heads, "HEAD and the dataset's ref did not move"
    st = cli("status", cwd=clone).out
    assert "Changes" not in st and "Untracked files:\n  zz\n" in st  # only the untracked file

    os.unlink(clone / "zz")
    r = cli("pull", cwd=clone)
    assert "diverged" not in r.out
    assert snapshot(clone) == snapshot(ws_dir)
    assert _heads(clone) == _heads(ws_dir)


def test_a_checkout_that_meets_damaged_data_changes_nothing(cli: Cli, ws_dir: Path) -> None:
    for i in range(4):
        write(ws_dir / f"f{i}.txt", f"v1 {i}\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    for i in range(4):
        write(ws_dir / f"f{i}.txt", f"v2 {i}\n")
    write(ws_dir / "zz.bin", os.urandom(200_000))  # its chunk is damaged below; written last
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("checkout", "v1")
    with Workspace.open(str(ws_dir)) as ws:
        data_pack = max(ws.repo.index.packs().items(), key=lambda kv: kv[1])[0]
    path = ws_dir / ".datactl" / "store" / pack_key(data_pack)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))

    before, heads = snapshot(ws_dir), _heads(ws_dir)
    r = cli("checkout", "ds", ok=False)
    assert r.code == 1 and "corrupt" in r.err
    assert snapshot(ws_dir) == before, "v1's files are all there, none of v2's"
    assert [p for p in os.listdir(ws_dir) if "tmp" in p] == []
    assert _heads(ws_dir) == heads
    assert "nothing to commit, workspace clean" in cli("status").out


def test_a_pull_killed_while_placing_files_is_described_by_status_and_finished_by_checkout(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    _first_version_pushed(cli, ws_dir, store, 6, "v1")
    clone = tmp_path / "clone"
    cli("clone", store, "ds", str(clone), cwd=tmp_path)
    for i in range(6):
        write(ws_dir / f"f{i}.txt", f"v2 {i}\n")
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("push", store)
    v1, v2 = _heads(clone)[0], _heads(ws_dir)[0]
    assert v1 and v2

    with pytest.MonkeyPatch.context() as mp:  # only the child process dies
        mp.setenv("DATACTL_TEST_CRASH_AT", "checkout-placing#3")
        killed = run_datactl(["pull"], clone)
    assert killed.returncode == 137, killed.stderr
    st = cli("status", cwd=clone).out
    assert f"the checkout of {v2[:12]} was cut short" in st and f"datactl checkout {v2[:12]}" in st
    assert "nothing to commit" not in st
    r = cli("commit", "-m", "mix", "--allow-empty", ok=False, cwd=clone)
    assert r.code == 1 and "cut short" in r.err

    cli("checkout", v2[:12], cwd=clone)
    assert snapshot(clone) == snapshot(ws_dir)
    assert _heads(clone) == (v2, v2), "HEAD, and then the ref the pull was moving"
    assert "nothing to commit, workspace clean" in cli("status", cwd=clone).out
    assert "already up to date" in cli("pull", cwd=clone).out


def test_a_clone_killed_while_writing_a_file_is_finished_by_checkout_over_the_half_written_file(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    _first_version_pushed(cli, ws_dir, store, 6, "version one, file")
    v1 = _heads(ws_dir)[0]
    clone = tmp_path / "clone"
    killed = run_datactl(["clone", store, "ds", str(clone)], tmp_path, env={"DATACTL_TEST_CRASH_AT": "checkout-placing#3"})
    assert killed.returncode == 137, killed.stderr
    assert sorted(p.name for p in clone.glob("f*.txt")) == ["f0.txt", "f1.txt"]
    # A clone writes each file at its own name: a kill in the middle of the third leaves part of it there.
    write(clone / "f2.txt", b"version o")
    write(clone / "mine.txt", b"not the version's\n")
    assert f"the checkout of {v1[:12]} was cut short" in cli("status", cwd=clone).out

    cli("checkout", v1[:12], cwd=clone)
    assert snapshot(clone) == {**snapshot(ws_dir), "mine.txt": snapshot(clone)["mine.txt"]}
    assert (clone / "mine.txt").read_bytes() == b"not the version's\n", "a file at no path of the version is left alone"
    assert "mine.txt" in cli("status", cwd=clone).out
