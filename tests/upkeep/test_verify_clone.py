"""verify in a clone: data never fetched is reported as such, not as damage; real damage still fails (issue 11)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import Cli, write
from datactl.format.layout import pack_key
from datactl.workspace.workspace import Workspace


def _published(cli: Cli, ws_dir: Path, store: str) -> None:
    """v1 and v2 of a dataset with features/ and labels/; v2 replaces half the files (v1's are not in a clone)."""
    for i in range(4):
        write(ws_dir / "features" / f"f{i}.bin", os.urandom(20_000))
        write(ws_dir / "labels" / f"l{i}.csv", f"v1 label {i}\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1")
    for i in range(2):
        write(ws_dir / "features" / f"f{i}.bin", os.urandom(20_000))
        write(ws_dir / "labels" / f"l{i}.csv", f"v2 label {i}\n")
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("push", store)


@pytest.mark.parametrize("paths", [[], ["--path", "features"]], ids=["full", "partial"])
def test_verify_passes_in_a_healthy_clone_and_names_what_was_not_fetched(cli: Cli, ws_dir: Path, tmp_path: Path, paths: list[str]) -> None:
    store = str(tmp_path / "store")
    _published(cli, ws_dir, store)
    clone = tmp_path / "clone"
    cli("clone", store, "ds", str(clone), *paths, cwd=tmp_path)
    for deep in ([], ["--deep"]):
        r = cli("verify", *deep, cwd=clone)
        assert "\nok: 2 version(s)" in r.out and "FAIL" not in r.out
        assert "\nnot fetched: " in r.out and "they are on origin" in r.out
    report = json.loads(cli("verify", "--deep", "--json", cwd=clone).out)
    assert report["ok"] and report["not_fetched"] > 0
    junit = cli("verify", "--format", "junit", cwd=clone).out
    assert f'name="not_fetched" value="{report["not_fetched"]}"' in junit and "<failure" not in junit
    # The remote holds everything: its own check finds nothing missing.
    assert cli("verify", "--remote", store, "ds", "--deep", cwd=clone).code == 0


def test_verify_in_a_partial_clone_still_fails_on_real_damage(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    _published(cli, ws_dir, store)
    clone = tmp_path / "clone"
    cli("clone", store, "ds", str(clone), "--path", "features", cwd=tmp_path)
    with Workspace.open(str(clone)) as ws:
        data_pack = max(ws.repo.index.packs().items(), key=lambda kv: kv[1])[0]
    path = clone / ".datactl" / "store" / pack_key(data_pack)
    original = path.read_bytes()
    raw = bytearray(original)
    raw[len(raw) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))
    r = cli("verify", "--deep", ok=False, cwd=clone)
    assert r.code == 1 and "corrupt" in r.err and "features/" in r.err

    os.unlink(path)  # fetched once, now lost: the index still lists it, so it is damage, not "not fetched"
    r = cli("verify", ok=False, cwd=clone)
    assert r.code == 1 and data_pack in r.err and "missing" in r.err
