"""datactl verify against a remote: missing and corrupted objects are found and named, reading only what each mode needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_data import build_versions, counting_remote, pack_keys, publish_all
from conftest import Cli
from datactl.core.errors import StoreUnreachable
from datactl.format.layout import pack_key
from datactl.format.pack import ENTRY_SIZE, TRAILER_SIZE
from datactl.remote.locate import RemoteSpec
from datactl.remote.remotestore import RemoteStore
from datactl.upkeep.verify import verify_local, verify_remote
from datactl.workspace.workspace import Workspace
from servers import free_port
from storage_backends import open_backend


@pytest.fixture
def pushed(tmp_path: Path, store_url: tuple[str, dict]):
    """(workspace dir, url, options, facts about one file's chunk on the remote)."""
    url, options = store_url
    ws = build_versions(tmp_path / "data-ws")
    try:
        publish_all(ws, url, options, str(tmp_path / "push-cache"))
        from datactl.remote.locate import add_remote

        add_remote(ws.root, "origin", url, options)
        huge = ws.repo.read_tree(ws.repo.read_commit(ws.resolve("bad")).tree).get("data")
        huge = ws.repo.read_tree(huge.digest).get("huge.bin")
    finally:
        ws.close()
    with RemoteStore(RemoteSpec(None, url, dict(options)), str(tmp_path / "probe")) as rs:
        rs.sync_index()
        chunk = huge.chunks[1]
        loc = rs.index.lookup(chunk)
    return tmp_path / "data-ws", url, options, {"chunk": chunk, "pack": loc.pack, "entry": loc.entry, "path": "data/huge.bin"}


def test_verify_a_remote_reads_metadata_and_footers_only(pushed, tmp_path: Path) -> None:
    _, url, options, facts = pushed
    rs, backend = counting_remote(url, options, str(tmp_path / "cache"))
    with rs:
        report = verify_remote(rs, "ds@bad")
    assert report.ok, report.problems
    assert report.commits == 2 and report.files > 20 and report.packs >= 1
    assert report.bytes_read == 0 and report.files_rehashed == 0
    data_key = pack_key(facts["pack"])
    size = pack_keys(url, options)[data_key]
    read_from_data_pack = backend.by_key.get(data_key, 0)
    assert 0 < read_from_data_pack < size / 10, (read_from_data_pack, size)  # the footer, not the data
    assert (read_from_data_pack - TRAILER_SIZE) % ENTRY_SIZE == 0  # exactly the trailer and the footer's entries


def test_verify_cli_against_a_remote_inside_and_outside_a_workspace(pushed, cli: Cli, tmp_path: Path) -> None:
    ws_dir, url, options, _ = pushed
    r = cli("verify", "--remote", "origin", cwd=ws_dir)
    assert "PASS" in r.out and "pack footers" in r.out
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    extra = ["--endpoint-url", options["endpoint_url"]] if options.get("endpoint_url") else []
    r = cli("verify", "ds@good", "--remote", url, "--deep", "--json", *extra, cwd=outside)
    report = json.loads(r.out)
    assert report["ok"] and report["files_rehashed"] == report["files"] > 0
    r = cli("verify", "--remote", url, *extra, cwd=outside, ok=False)
    assert r.code == 2 and "NAME@VERSION" in r.err


def test_corrupted_bytes_are_caught_by_deep_and_sample_with_the_object_named(pushed, cli: Cli) -> None:
    ws_dir, url, options, facts = pushed
    backend = open_backend(url, options)
    key = pack_key(facts["pack"])
    raw = bytearray(backend.get(key))
    e = facts["entry"]
    raw[e.offset + e.stored_len // 2] ^= 0xFF
    backend.put_bytes(key, bytes(raw))

    assert cli("verify", "bad", "--remote", "origin", cwd=ws_dir).code == 0  # presence only: bytes are not read
    r = cli("verify", "bad", "--remote", "origin", "--deep", cwd=ws_dir, ok=False)
    assert r.code == 1
    assert facts["chunk"] in r.err and facts["path"] in r.err and "corrupt" in r.err
    report = json.loads(cli("verify", "bad", "--remote", "origin", "--deep", "--json", cwd=ws_dir, ok=False).out)
    bad = [d for d in report["details"] if d["check"] == "bytes re-hashed"]
    assert [(d["object"], d["path"]) for d in bad] == [(facts["chunk"], facts["path"])]
    assert report["files_rehashed"] == report["files"] - 1
    r = cli("verify", "bad", "--remote", "origin", "--sample", "1", cwd=ws_dir, ok=False)
    assert r.code == 1 and facts["chunk"] in r.err
    # the good version does not hold the corrupted file
    assert cli("verify", "good", "--remote", "origin", "--deep", cwd=ws_dir).code == 0


def test_sample_reads_a_seeded_random_fraction(pushed, tmp_path: Path) -> None:
    _, url, options, _ = pushed
    counts = []
    for seed in (1, 1, 2):
        with RemoteStore(RemoteSpec(None, url, dict(options)), str(tmp_path / "c")) as rs:
            report = verify_remote(rs, "ds@bad", sample=0.5, seed=seed)
        assert report.ok
        counts.append((report.files_rehashed, report.bytes_read))
    assert counts[0] == counts[1]
    assert 0 < counts[0][0] < report.files
    with pytest.raises(ValueError):
        verify_remote(RemoteStore(RemoteSpec(None, url, dict(options)), str(tmp_path / "c")), "ds@bad", sample=1.5)


def test_missing_pack_is_caught_with_the_objects_named(pushed, cli: Cli) -> None:
    ws_dir, url, options, facts = pushed
    open_backend(url, options).delete(pack_key(facts["pack"]))
    r = cli("verify", "bad", "--remote", "origin", cwd=ws_dir, ok=False)
    assert r.code == 1
    assert facts["pack"] in r.err and "is missing" in r.err
    assert facts["path"] in r.err or "chunk " in r.err
    report = json.loads(cli("verify", "bad", "--remote", "origin", "--json", cwd=ws_dir, ok=False).out)
    lost = [d for d in report["details"] if d["check"] == "packs present"]
    assert len(lost) == 1 and lost[0]["object"] and lost[0]["path"]
    r = cli("verify", "bad", "--remote", "origin", "--deep", cwd=ws_dir, ok=False)
    assert r.code == 1 and facts["pack"] in r.err


def test_truncated_pack_and_missing_metadata_are_caught(pushed, cli: Cli) -> None:
    ws_dir, url, options, facts = pushed
    backend = open_backend(url, options)
    key = pack_key(facts["pack"])
    backend.put_bytes(key, backend.get(key)[:-100])
    r = cli("verify", "bad", "--remote", "origin", cwd=ws_dir, ok=False)
    assert r.code == 1 and facts["pack"] in r.err and "truncated or replaced" in r.err

    for k in pack_keys(url, options):
        if k != key:
            backend.delete(k)  # the metadata packs: commits and trees
    r = cli("verify", "bad", "--remote", "origin", "--json", cwd=ws_dir, ok=False)
    report = json.loads(r.out)
    assert not report["ok"] and any(d["check"] == "history" for d in report["details"])


def test_local_verify_with_sample_and_footers(tmp_path: Path, cli: Cli) -> None:
    ws = build_versions(tmp_path / "data-ws")
    try:
        report = verify_local(ws.repo, ws.resolve("bad"), sample=1.0)
        assert report.ok and report.files_rehashed == report.files
        r = cli("verify", "--sample", "0.3", "--seed", "4", cwd=tmp_path / "data-ws")
        assert "bytes re-hashed" in r.out
        assert cli("verify", "--sample", "0", cwd=tmp_path / "data-ws", ok=False).code == 2
    finally:
        ws.close()


def test_an_unreachable_store_exits_3(tmp_path: Path, s3_server: str, cli: Cli) -> None:
    """verify --remote against an endpoint nothing listens on: a StorageError (exit 3), from the library and the CLI."""
    port = free_port()  # bound, then closed: nothing listens there
    url, options = "s3://nowhere/store", {"endpoint_url": f"http://127.0.0.1:{port}"}
    with RemoteStore(RemoteSpec(None, url, options), str(tmp_path / "cache")) as rs:
        with pytest.raises(StoreUnreachable) as info:
            verify_remote(rs, "ds@bad")
    assert info.value.exit_code == 3 and info.value.__cause__ is not None
    r = cli("verify", "ds@bad", "--remote", url, "--endpoint-url", options["endpoint_url"], cwd=tmp_path, ok=False)
    assert r.code == 3 and r.err.startswith("error: ") and "Traceback" not in r.err, (r.out, r.err)
    r = cli("validate", "ds@bad", "--remote", url, "--rules", str(_rules_file(tmp_path)), cwd=tmp_path, ok=False)
    assert r.code == 3, (r.out, r.err)


def _rules_file(tmp_path: Path) -> Path:
    p = tmp_path / "rules.toml"
    p.write_text('[[rules]]\ntype = "count"\nmin = 1\n')
    return p


def test_workspace_is_untouched_by_remote_checks(pushed, cli: Cli) -> None:
    ws_dir, *_ = pushed
    with Workspace.open(str(ws_dir)) as ws:
        before = ws.repo.index.stored_bytes()
    cli("verify", "good", "--remote", "origin", "--deep", cwd=ws_dir)
    rules = _rules_file(ws_dir.parent)
    cli("validate", "good", "--remote", "origin", "--rules", str(rules), cwd=ws_dir)
    with Workspace.open(str(ws_dir)) as ws:
        assert ws.repo.index.stored_bytes() == before  # nothing was downloaded into the workspace's store
