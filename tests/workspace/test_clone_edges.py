"""Clones that users widen, pull and restore from (issue 11, clones)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import Cli, run_datactl, snapshot, write
from datactl.core.crashpoints import STEP_DELAY_ENV
from datactl.workspace.workspace import Workspace


def _published(cli: Cli, ws_dir: Path, store: str) -> None:
    """v1: features/ (3 files), labels.csv, README.md; v2 rewrites one file, deletes two; both pushed, with tags."""
    for i in range(3):
        write(ws_dir / "features" / f"f{i}.csv", f"feature {i}\n")
    write(ws_dir / "labels.csv", "id,label\n1,cat\n")
    write(ws_dir / "README.md", "read me\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    cli("push", store, "--tags")
    write(ws_dir / "labels.csv", "id,label\n1,dog\n")
    os.unlink(ws_dir / "features" / "f0.csv")
    os.unlink(ws_dir / "README.md")
    cli("add", ".")
    cli("commit", "-m", "v2", "--tag", "v2")
    cli("push", store, "--tags")


def test_pull_of_a_path_widens_a_partial_clone(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    _published(cli, ws_dir, store)
    clone = tmp_path / "clone"
    cli("clone", store, "ds", str(clone), "--path", "features", cwd=tmp_path)
    assert sorted(snapshot(clone)) == ["features/f1.csv", "features/f2.csv"]
    assert "nothing to commit, workspace clean" in cli("status", cwd=clone).out  # labels.csv is not "deleted"

    r = cli("pull", "origin", "labels.csv", cwd=clone)
    assert "now also holds labels.csv" in r.out and "1 file(s) written" in r.out
    assert (clone / "labels.csv").read_text() == "id,label\n1,dog\n"
    assert "nothing to commit, workspace clean" in cli("status", cwd=clone).out
    assert not (clone / "README.md").exists()  # still outside the selection
    with Workspace.open(str(clone)) as ws:
        assert ws.sparse == ["features", "labels.csv"]


def test_pull_after_cloning_an_older_version_says_what_it_did(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    _published(cli, ws_dir, store)
    clone = tmp_path / "clone"
    cli("clone", store, "ds@v1", str(clone), cwd=tmp_path)
    v1 = cli("log", "v1", "-n", "1", cwd=clone).out.split()[1]
    v2 = cli("log", "v2", "-n", "1", cwd=clone).out.split()[1]

    r = cli("pull", cwd=clone)
    assert f"HEAD {v1[:12]} -> {v2[:12]}" in r.out
    assert re.search(r"\b1 file\(s\) written, 2 deleted", r.out), r.out
    assert "already" not in r.out
    assert snapshot(clone) == snapshot(ws_dir)
    r = cli("pull", cwd=clone)
    assert f"already up to date at {v2[:12]}" in r.out and "0 file(s) written, 0 deleted" in r.out


def test_checkout_ref_paths_restores_some_files_and_keeps_head(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    _published(cli, ws_dir, store)
    head = cli("log", "-n", "1").out.split()[1]
    write(ws_dir / "features" / "f1.csv", "edited, not committed\n")
    write(ws_dir / "features" / "f2.csv", "kept as edited\n")

    r = cli("checkout", "v1", "--", "labels.csv", "features/f0.csv", "features/f1.csv")
    assert "restored 3 file(s)" in r.out and f"HEAD stays at {head[:12]}" in r.out
    assert (ws_dir / "labels.csv").read_text() == "id,label\n1,cat\n"
    assert (ws_dir / "features" / "f0.csv").read_text() == "feature 0\n"
    assert (ws_dir / "features" / "f1.csv").read_text() == "feature 1\n"
    assert (ws_dir / "features" / "f2.csv").read_text() == "kept as edited\n"
    assert not (ws_dir / "README.md").exists()
    st = cli("status").out
    staged, _, unstaged = st.partition("Changes not staged")
    assert "labels.csv" in staged and "features/f0.csv" in staged and "features/f2.csv" in unstaged
    assert cli("log", "-n", "1").out.split()[1] == head

    r = cli("checkout", "v1", "--", "no/such.csv", ok=False)
    assert r.code == 1 and "no/such.csv is not in version" in r.err


def test_a_first_checkout_into_a_folder_with_files_refuses_to_overwrite_them(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    """A new clone's folder holds nothing in the way and is not looked at file by file; a folder with files is."""
    store = str(tmp_path / "store")
    _published(cli, ws_dir, store)
    other = tmp_path / "other"
    write(other / "labels.csv", "mine\n")  # where the version has a file, other bytes
    write(other / "features" / "f1.csv", "feature 1\n")  # the version's own bytes: not a conflict
    write(other / "notes.txt", "not in the version\n")
    cli("init", "--name", "ds", cwd=other)
    cli("remote", "add", "origin", store, cwd=other)
    r = cli("pull", cwd=other, ok=False)
    assert r.code != 0 and "would overwrite untracked files: labels.csv" in r.err, r.err
    assert (other / "labels.csv").read_text() == "mine\n"
    assert not (other / "features" / "f2.csv").exists()  # refused before anything was written
    os.unlink(other / "labels.csv")
    cli("pull", cwd=other)
    assert snapshot(other) == {**snapshot(ws_dir), "notes.txt": snapshot(other)["notes.txt"]}


def test_status_after_a_clone_or_checkout_reads_no_file_datactl_wrote(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    # A file's stat is judged racy against the moment its row is saved, as git judges against its index file's
    # time; judged against its own write, every file a checkout writes was racy, and the first status re-hashed
    # them all (125 s after a clone of a million files). The step delay spaces the writes past the racy window.
    files = 6
    for i in range(files):
        write(ws_dir / f"f{i}.bin", os.urandom(1 << 20))
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1")
    for i in range(files):
        write(ws_dir / f"f{i}.bin", os.urandom(1 << 20))
    cli("add", ".")
    cli("commit", "-m", "v2")
    store, clone = tmp_path / "store", tmp_path / "clone"
    cli("push", str(store))
    slow = {STEP_DELAY_ENV: "0.15"}
    assert run_datactl(["clone", str(store), "ds", str(clone)], tmp_path, env=slow).returncode == 0
    assert snapshot(clone) == snapshot(ws_dir)
    # Only the file written last, just before its row was saved, is still racy and read again (and the stage).
    assert status_reads(cli, clone) < 1.5 * (1 << 20)

    assert run_datactl(["checkout", "HEAD~1"], clone, env=slow).returncode == 0  # writes every file again
    assert status_reads(cli, clone) < 1.5 * (1 << 20)


def status_reads(cli: Cli, root: Path) -> int:
    """Bytes a clean `datactl status` in ``root`` reads (the stat cache answering, not file contents)."""
    def rchar() -> int:
        with open("/proc/self/io") as f:
            return int(next(line for line in f if line.startswith("rchar:")).split()[1])

    before = rchar()
    assert "nothing to commit" in cli("status", cwd=root).out
    return rchar() - before
