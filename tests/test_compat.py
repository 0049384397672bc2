"""A workspace and a folder store written by the first release (0.1.0, git c8d7e1e) work with this code.

The fixture in tests/data/release-0.1 (how it was made: its README.md) is a
workspace of dataset ``corpus`` with three versions (tags ``v1`` and
``stable``; a file deleted, one renamed, an empty file, an executable, nested
folders), pushed with its tags to the folder store ``remote``.
``manifest.json`` records every version's files (sha256, size, mode), hashed
by the build script, not by datactl.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import Cli, snapshot, write

FIXTURE = Path(__file__).parent / "data" / "release-0.1"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())
VERSIONS = MANIFEST["versions"]  # oldest first
NAME = MANIFEST["dataset"]


def expected_files(version: dict) -> dict[str, tuple]:
    """The version's files as ``conftest.snapshot`` pictures them: path -> ("file", mode, sha256)."""
    return {path: ("file", int(f["mode"], 8), f["sha256"]) for path, f in version["files"].items()}


@pytest.fixture
def old(tmp_path: Path, ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture in tmp_path, as a user's disk would hold it: tmp_path / "ws" (the cli fixture's folder) and / "remote"."""
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DATACTL_REMOTE", raising=False)
    ws = ws_dir
    shutil.copytree(FIXTURE / "workspace", ws, symlinks=True, dirs_exist_ok=True)
    shutil.copytree(FIXTURE / "remote", tmp_path / "remote", symlinks=True)
    for folder in MANIFEST["empty_dirs"]:  # git keeps no empty folder; the release left these
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    # datactl.toml names the folder remote by the absolute path it was built at: the user moved both folders.
    settings = ws / "datactl.toml"
    built_remote = f'"{MANIFEST["built_in"]}/remote"'
    assert built_remote in settings.read_text()
    settings.write_text(settings.read_text().replace(built_remote, json.dumps(str(tmp_path / "remote"))))
    # A git checkout keeps only the executable bit: give the files the modes the release wrote.
    for path, f in VERSIONS[-1]["files"].items():
        os.chmod(ws / path, int(f["mode"], 8))
    return tmp_path


def test_fixture_is_what_the_manifest_says() -> None:
    ws = FIXTURE / "workspace"
    assert set(snapshot(ws)) == set(VERSIONS[-1]["files"])
    for path, f in VERSIONS[-1]["files"].items():
        assert snapshot(ws)[path][2] == f["sha256"], path
    total = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert total < 200_000, f"the fixture holds {total} bytes"
    for db in ("index.db", "stage.db"):
        assert (ws / ".datactl" / db).is_file(), db


def test_status_is_clean_and_log_and_tags_show_the_three_versions(old: Path, cli: Cli) -> None:
    status = json.loads(cli("status", "--json").out)
    assert status["clean"] and not status["untracked"] and not status["staged"] and not status["unstaged"], status
    assert status["head"] == VERSIONS[-1]["id"]
    assert status["latest"] is None
    assert "nothing to commit, workspace clean" in cli("status").out

    log = json.loads(cli("log", "--json").out)
    assert [entry["id"] for entry in log] == [v["id"] for v in reversed(VERSIONS)]
    assert [entry["message"] for entry in log] == [v["message"] for v in reversed(VERSIONS)]
    assert len(cli("log", "--oneline").out.strip().splitlines()) == 3
    assert json.loads(cli("tag", "--json").out) == MANIFEST["tags"]


@pytest.mark.parametrize("how", ["id", "tag"])
def test_checkout_of_each_version_restores_the_exact_bytes(old: Path, cli: Cli, how: str) -> None:
    ws = old / "ws"
    names = {v: t for t, v in MANIFEST["tags"].items()}
    for version in VERSIONS + VERSIONS[::-1]:  # forwards, then back again
        ref = version["id"] if how == "id" else names.get(version["id"], NAME)  # NAME: the latest
        cli("checkout", ref)
        assert snapshot(ws) == expected_files(version), f"version {version['n']} ({ref})"
        assert json.loads(cli("status", "--json").out)["clean"]


def test_verify_deep_passes(old: Path, cli: Cli) -> None:
    r = cli("verify", "--deep")
    assert r.out.strip().splitlines()[-1].startswith("ok: 3 version(s)"), r.out
    for version in VERSIONS:
        cli("verify", "--deep", version["id"])


def test_add_commit_push_and_clone_with_the_current_code(old: Path, cli: Cli, tmp_path: Path) -> None:
    ws, remote = old / "ws", old / "remote"
    write(ws / "data" / "train.csv", "id,text,label\n1,hello,0\n")
    write(ws / "data" / "new" / "fresh.bin", os.urandom(4_000))
    (ws / "README.txt").unlink()
    cli("add", ".")
    cli("commit", "-m", "fourth version, by the current code", "--tag", "v4")
    status = json.loads(cli("status", "--json").out)
    assert status["clean"]
    log = json.loads(cli("log", "--json").out)
    assert [e["id"] for e in log[1:]] == [v["id"] for v in reversed(VERSIONS)]
    new_head = log[0]["id"]
    cli("verify", "--deep")
    current = snapshot(ws)

    assert json.loads(cli("remote", "list", "--json").out) == [{"name": "origin", "url": str(remote)}]
    pushed = json.loads(cli("push", "--tags", "--json").out)
    assert pushed["new"] == new_head and pushed["old"] == VERSIONS[-1]["id"], pushed
    assert pushed["tags_pushed"] == ["v4"]
    listing = json.loads(cli("datasets", "origin", "--json").out)
    assert [(d["name"], d["head"]) for d in listing] == [(NAME, new_head)]
    cli("fsck", str(remote))

    clone = tmp_path / "clone"
    cli("clone", str(remote), NAME, str(clone), cwd=tmp_path)
    assert snapshot(clone) == current
    assert [e["id"] for e in json.loads(cli("log", "--json", cwd=clone).out)] == [e["id"] for e in log]
    for version in VERSIONS:  # older versions: their files come from the remote the old release wrote
        cli("checkout", version["id"], cwd=clone)
        assert snapshot(clone) == expected_files(version), f"version {version['n']} in the clone"
    cli("checkout", NAME, cwd=clone)
    assert snapshot(clone) == current
    # A clone holds only the file data of what it checked out; now that is every version, so all of it.
    cli("verify", "--deep", cwd=clone)

    old_clone = tmp_path / "clone-v1"
    cli("clone", str(remote), f"{NAME}@v1", str(old_clone), cwd=tmp_path)
    assert snapshot(old_clone) == expected_files(VERSIONS[0])


def test_clone_from_the_untouched_old_store(old: Path, cli: Cli, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    cli("clone", str(old / "remote"), NAME, str(clone), cwd=tmp_path)
    assert snapshot(clone) == expected_files(VERSIONS[-1])
    assert json.loads(cli("tag", "--json", cwd=clone).out) == MANIFEST["tags"]
    for version in VERSIONS:
        cli("checkout", version["id"], cwd=clone)
        assert snapshot(clone) == expected_files(version), f"version {version['n']} in the clone"
    cli("verify", "--deep", cwd=clone)  # every version's files were downloaded by the checkouts
