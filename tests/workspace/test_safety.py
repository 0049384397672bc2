"""Bad input gets a clear error, a non-zero exit, and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Cli, snapshot, write
from datactl.core.ids import object_id
from datactl.format.layout import pack_key
from datactl.format.objects import FILE, SYMLINK, Commit, TreeEntry
from datactl.format.pack import ObjectType
from datactl.workspace.workspace import Workspace


def committed(cli: Cli, ws_dir: Path) -> None:
    write(ws_dir / "a.txt", "alpha\n")
    write(ws_dir / "sub" / "b.txt", "beta\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")


def test_not_a_workspace(cli: Cli, tmp_path: Path) -> None:
    r = cli("status", ok=False, cwd=tmp_path)
    assert r.code == 1
    assert "not a datactl workspace" in r.err and "datactl init" in r.err


def test_unknown_and_short_refs(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    r = cli("checkout", "no-such-tag", ok=False)
    assert r.code == 1 and "unknown ref 'no-such-tag'" in r.err
    r = cli("log", "abc", ok=False)
    assert r.code == 1 and "at least 6 hex digits" in r.err
    r = cli("log", "HEAD~5", ok=False)
    assert r.code == 1 and "no parent" in r.err


def test_ambiguous_prefix(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    ws = Workspace.open(str(ws_dir))
    base = ws.repo.read_commit(ws.head)
    # Make commit objects until two ids share 6 hex digits (a birthday search, ~5,000 tries).
    by_prefix: dict[str, bytes] = {}
    for i in range(200_000):
        raw = Commit(base.tree, (), "dataset", "ds", f"m{i}", "t", base.time).encode()
        prefix = object_id(raw)[:6]
        if prefix in by_prefix:
            ws.repo.put(ObjectType.COMMIT, by_prefix[prefix])
            ws.repo.put(ObjectType.COMMIT, raw)
            break
        by_prefix[prefix] = raw
    ws.repo.flush()
    ws.close()
    r = cli("log", prefix, ok=False)
    assert r.code == 1 and "ambiguous" in r.err and "more hex digits" in r.err


def test_usage_errors_exit_2(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    assert cli("commit", ok=False).code == 2  # -m missing
    assert cli("log", "--no-such-flag", ok=False).code == 2
    r = cli("add", "missing.txt", ok=False)
    assert r.code == 2 and "did not match any file" in r.err
    r = cli("add", str(ws_dir.parent), ok=False)
    assert r.code == 2 and "outside the workspace" in r.err


def test_nothing_to_commit(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    r = cli("commit", "-m", "again", ok=False)
    assert r.code == 1 and "nothing to commit" in r.err


def test_checkout_refuses_to_overwrite_local_changes(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    write(ws_dir / "a.txt", "alpha v2\n")
    cli("add", ".")
    cli("commit", "-m", "v2")
    write(ws_dir / "a.txt", "precious local edit\n")
    before = snapshot(ws_dir)
    r = cli("checkout", "v1", ok=False)
    assert r.code == 1 and "a.txt" in r.err and "--force" in r.err
    assert snapshot(ws_dir) == before
    cli("checkout", "v1", "--force")
    assert (ws_dir / "a.txt").read_text() == "alpha\n"


def test_checkout_carries_local_changes_to_files_both_versions_share(cli: Cli, ws_dir: Path) -> None:
    # As in git: only the paths that differ between the versions must be clean; the rest keep what the user did.
    committed(cli, ws_dir)
    write(ws_dir / "a.txt", "alpha v2\n")
    cli("add", ".")
    cli("commit", "-m", "v2")
    write(ws_dir / "sub" / "b.txt", "beta, edited\n")
    write(ws_dir / "new.txt", "staged, not committed\n")
    cli("add", "new.txt")
    cli("checkout", "v1")
    assert (ws_dir / "a.txt").read_text() == "alpha\n"
    assert (ws_dir / "sub" / "b.txt").read_text() == "beta, edited\n"
    st = json.loads(cli("status", "--json").out)
    assert [c["path"] for c in st["staged"]] == ["new.txt"] and [c["path"] for c in st["unstaged"]] == ["sub/b.txt"]
    # A file the next version changes, deleted here: refused, nothing moves.
    (ws_dir / "a.txt").unlink()
    before = snapshot(ws_dir)
    r = cli("checkout", "ds", ok=False)
    assert r.code == 1 and "local changes: a.txt" in r.err
    assert snapshot(ws_dir) == before


def test_checkout_never_touches_untracked_files(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    write(ws_dir / "c.txt", "gamma\n")
    cli("add", "c.txt")
    cli("commit", "-m", "v2")
    write(ws_dir / "sub" / "scratch.tmp", "my notes\n")
    cli("checkout", "v1")
    assert (ws_dir / "sub" / "scratch.tmp").read_text() == "my notes\n"
    assert not (ws_dir / "c.txt").exists()
    # An untracked file where the target version has one: refuse, keep it.
    write(ws_dir / "c.txt", "untracked\n")
    r = cli("checkout", "ds", ok=False)
    assert r.code == 1 and "untracked" in r.err
    assert (ws_dir / "c.txt").read_text() == "untracked\n"


def _plant_version(ws_dir: Path, entries: list[TreeEntry], extra_chunks: dict[str, bytes]) -> str:
    """Write a version by hand, as a faulty or hostile tool could."""
    ws = Workspace.open(str(ws_dir))
    for oid, data in extra_chunks.items():
        ws.repo.put(ObjectType.CHUNK, data, oid)
    doc = {"format": 1, "entries": [e.to_dict() for e in entries]}
    tree_raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    tree_id = ws.repo.put(ObjectType.TREE, tree_raw)
    c = Commit(tree_id, (ws.head,), "dataset", "ds", "evil", "x", "2026-01-01T00:00:00Z")
    cid = ws.repo.put(ObjectType.COMMIT, c.encode())
    ws.repo.flush()
    ws.repo.refs.update("tags/ds/evil", cid, None)
    ws.close()
    return cid


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/evil", "a/b", "C:evil", "x\0y", "..", ".datactl", ".a.txt.datactl-tmp"])
def test_hostile_names_in_a_manifest_are_refused(cli: Cli, ws_dir: Path, tmp_path: Path, name: str) -> None:
    committed(cli, ws_dir)
    data = b"pwned\n"
    oid = object_id(data)
    _plant_version(ws_dir, [TreeEntry(name, FILE, 0o644, len(data), oid, (oid,))], {oid: data})
    before = snapshot(tmp_path)
    r = cli("checkout", "evil", "--force", ok=False)
    assert r.code == 1 and "unsafe file name" in r.err
    assert snapshot(tmp_path) == before, "nothing was written anywhere"


def test_a_link_at_a_temp_name_cannot_redirect_a_write(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    committed(cli, ws_dir)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    write(ws_dir / "a.txt", "alpha v2\n")
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("checkout", "v1")
    os.symlink(victim, ws_dir / ".a.txt.datactl-tmp")  # planted where checkout writes its temp file
    cli("checkout", "ds")
    assert victim.read_text() == "keep me\n"
    assert (ws_dir / "a.txt").read_text() == "alpha v2\n"


def test_checkout_does_not_write_through_a_planted_symlink(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    committed(cli, ws_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    write(ws_dir / "new" / "x.txt", "x\n")
    cli("add", ".")
    cli("commit", "-m", "v2")
    cli("checkout", "v1")
    os.symlink(outside, ws_dir / "new")  # untracked link where the version has a folder
    r = cli("checkout", "ds", "--force", ok=False)
    assert r.code == 1 and "symlink" in r.err
    assert list(outside.iterdir()) == []


def test_non_utf8_names_are_reported_not_tracked(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    bad = os.path.join(os.fsencode(ws_dir), b"bad\xffname.bin")
    with open(bad, "wb") as f:
        f.write(b"data")
    r = cli("add", ".")
    assert "not valid UTF-8" in r.err
    r = cli("status")
    assert "not valid UTF-8" in r.err


def without_root_powers(args: list[str]) -> list[str]:
    """``args`` run as is, or, for root (how CI runs), as root without the power to read any file.

    setpriv (util-linux) drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so the command gets permission checks like any other user.
    """
    if os.geteuid() != 0:
        return args
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *args]


def test_unreadable_file(cli: Cli, ws_dir: Path) -> None:
    committed(cli, ws_dir)
    write(ws_dir / "secret.bin", b"x" * 100, mode=0)
    env = {**os.environ, "DATACTL_AUTHOR": "Test <test@example.com>"}
    r = subprocess.run(without_root_powers([sys.executable, "-m", "datactl", "add", "secret.bin"]), cwd=ws_dir, env=env, capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and lines[0].startswith("error: ") and "secret.bin" in lines[0] and "permission denied" in lines[0].lower(), r.stderr
    status = json.loads(cli("status", "--json").out)
    assert status["staged"] == [] and status["untracked"] == ["secret.bin"], "nothing was staged"


def test_corruption_is_named_and_never_reaches_the_workspace(cli: Cli, ws_dir: Path) -> None:
    write(ws_dir / "data.bin", os.urandom(300_000))
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    good = (ws_dir / "data.bin").read_bytes()
    (ws_dir / "data.bin").unlink()
    cli("commit", "-m", "removed", ok=False)  # not staged yet: nothing to commit
    cli("add", ".")
    cli("commit", "-m", "v2")

    ws = Workspace.open(str(ws_dir))
    packs = ws.repo.index.packs()
    big = max(packs, key=packs.get)
    ws.close()
    path = ws_dir / ".datactl" / "store" / pack_key(big)
    original = path.read_bytes()
    raw = bytearray(original)
    raw[1000] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))

    assert cli("verify", "v1").code == 0  # presence only
    r = cli("verify", "v1", "--deep", ok=False)
    assert r.code == 1 and "corrupt" in r.err and big in r.err
    r = cli("checkout", "v1", ok=False)
    assert r.code == 1 and "corrupt" in r.err
    assert not (ws_dir / "data.bin").exists(), "no partial or bad file left behind"
    assert [p for p in os.listdir(ws_dir) if "tmp" in p] == []

    path.write_bytes(bytes(raw[:500]))  # truncated pack
    r = cli("checkout", "v1", ok=False)
    assert r.code == 1 and big in r.err
    assert not (ws_dir / "data.bin").exists(), "still nothing written"

    path.write_bytes(original)  # the pack restored from another copy: v1 comes back, byte for byte
    cli("checkout", "v1")
    assert (ws_dir / "data.bin").read_bytes() == good


def test_missing_pack_is_reported_by_verify(cli: Cli, ws_dir: Path) -> None:
    write(ws_dir / "data.bin", os.urandom(100_000))
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1")
    ws = Workspace.open(str(ws_dir))
    packs = ws.repo.index.packs()
    ws.close()
    big = max(packs, key=packs.get)
    (ws_dir / ".datactl" / "store" / pack_key(big)).unlink()
    r = cli("verify", "--json", ok=False)
    assert r.code == 1
    report = json.loads(r.out)
    assert report["ok"] is False and any(big in p for p in report["problems"])


def test_symlinks_round_trip_as_links(cli: Cli, ws_dir: Path) -> None:
    write(ws_dir / "target.txt", "t\n")
    os.symlink("target.txt", ws_dir / "rel_link")
    os.symlink("/nonexistent/abs", ws_dir / "dangling")
    cli("init")
    cli("add", ".")
    cli("commit", "-m", "links")
    ws = Workspace.open(str(ws_dir))
    tree = ws.repo.read_tree(ws.repo.read_commit(ws.head).tree)
    ws.close()
    assert tree.get("rel_link").kind == SYMLINK and tree.get("rel_link").target == "target.txt"
    os.unlink(ws_dir / "rel_link")
    os.unlink(ws_dir / "dangling")
    cli("checkout", "HEAD", "--force")
    assert os.readlink(ws_dir / "rel_link") == "target.txt"
    assert os.readlink(ws_dir / "dangling") == "/nonexistent/abs"
