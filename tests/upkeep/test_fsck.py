"""fsck: finding what is wrong with a store's structure, and rebuilding its index from the packs."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from test_gc import backend_of, kind_of, objects_of, push, shared_scenario, store_objects, verify_deep

from conftest import Cli, snapshot
from datactl.format.layout import pack_key
from datactl.format.pack import ObjectType, PackWriter
from datactl.store.packread import read_footer
from datactl.upkeep.fsck import fsck
from datactl.upkeep.gc import collect_garbage
from datactl.upkeep.targets import url_target
from datactl.workspace import sync


def _endpoint(options: dict) -> list[str]:
    return ["--endpoint-url", options["endpoint_url"]] if options.get("endpoint_url") else []


def test_fsck_repair_rebuilds_a_deleted_index_from_the_packs(tmp_path: Path, store_url: tuple[str, dict], cli: Cli) -> None:
    url, options = store_url
    a, b = shared_scenario(tmp_path, url, options, seed=17)
    backend = backend_of(url, options)
    for info in list(backend.list("index/")):
        backend.delete(info.key)
    r = cli("fsck", url, "--json", *_endpoint(options), ok=False, cwd=tmp_path)
    assert r.code == 1
    report = json.loads(r.out)
    checks = {i["check"] for i in report["issues"] if i["severity"] == "error"}
    assert "packs missing from the index" in checks and report["index_files"] == 0
    assert all(i["repairable"] for i in report["issues"] if i["severity"] == "error")

    fixed = cli("fsck", url, "--repair", *_endpoint(options), cwd=tmp_path).out
    assert "repaired: index rebuilt" in fixed and fixed.splitlines()[-1].startswith("ok")
    after = json.loads(cli("fsck", url, "--json", *_endpoint(options), cwd=tmp_path).out)
    assert after["ok"] and after["packs"] == report["packs"] and after["objects_indexed"] == len(objects_of(a) | objects_of(b))
    verify_deep(url, options, "a", tmp_path / "v")
    verify_deep(url, options, "b", tmp_path / "v")
    clone = sync.clone(url, "b", str(tmp_path / "clone"), options=options)
    assert snapshot(tmp_path / "clone") == snapshot(tmp_path / "b")
    clone.close()
    # A workspace whose cache of the remote index predates the repair pushes as usual.
    (tmp_path / "a" / "new.txt").write_text("after the repair\n")
    a.add([a.root])
    a.commit("v3")
    assert push(a, url, options).objects >= 1
    verify_deep(url, options, "a", tmp_path / "v2")
    report = collect_garbage(url_target(backend, str(tmp_path)), grace=0)
    assert report.packs_deleted == 0 and report.bytes_after == report.bytes_before - report.bytes_freed
    a.close()
    b.close()


def test_fsck_names_index_entries_pointing_nowhere_and_refs_to_missing_commits(tmp_path: Path, cli: Cli) -> None:
    url = str(tmp_path / "remote")
    a, b = shared_scenario(tmp_path, url, {}, seed=18)
    backend = backend_of(url, {})
    head = b.head
    lost = next(i for i in backend.list("packs/") if head in {e.id for e in read_footer(backend, i.key.rsplit("/", 1)[-1], i.size)})
    backend.delete(lost.key)
    report = fsck(url_target(backend, str(tmp_path)))
    messages = [i.message for i in report.errors]
    assert any(f"list pack {lost.key.rsplit('/', 1)[-1]}, which is missing" in m for m in messages)
    assert any(f"ref datasets/b names commit {head}, which is not in the store" in m for m in messages)
    r = cli("fsck", url, "--repair", ok=False, cwd=tmp_path)
    assert r.code == 1 and "repaired" in r.out, "the dangling entries are dropped; the lost commit cannot be repaired"
    after = fsck(url_target(backend, str(tmp_path)))
    assert not any("which is missing" in i.message for i in after.issues)
    assert any("names commit" in i.message for i in after.errors)
    a.close()
    b.close()


def test_fsck_reports_unindexed_packs_and_read_data_finds_a_corrupt_pack(tmp_path: Path, cli: Cli) -> None:
    url = str(tmp_path / "remote")
    a, b = shared_scenario(tmp_path, url, {}, seed=19)
    backend = backend_of(url, {})
    # A pack left by a push cut short, two days ago (older than the 24 h grace period).
    w = PackWriter(str(tmp_path / "pw"))
    w.add("00" * 16, ObjectType.CHUNK, 0, b"x", 1)
    pid, path, _ = w.finish()
    backend.put_file(pack_key(pid), path)
    old = time.time() - 2 * 86400
    os.utime(os.path.join(url, pack_key(pid)), (old, old))
    report = fsck(url_target(backend, str(tmp_path)))
    assert report.ok and any(i.severity == "warning" and pid in i.message for i in report.issues)
    # Flip one byte inside a data chunk: footers and metadata still read, the pack's hash does not.
    victim = next(i for i in backend.list("packs/") if any(e.type == ObjectType.CHUNK and e.stored_len > 100 for e in read_footer(backend, i.key.rsplit("/", 1)[-1], i.size)))
    entry = next(e for e in read_footer(backend, victim.key.rsplit("/", 1)[-1], victim.size) if e.type == ObjectType.CHUNK)
    full = os.path.join(url, victim.key)
    with open(full, "r+b") as f:
        f.seek(entry.offset + entry.stored_len // 2)
        byte = f.read(1)
        f.seek(entry.offset + entry.stored_len // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert fsck(url_target(backend, str(tmp_path))).ok
    r = cli("fsck", url, "--read-data", ok=False, cwd=tmp_path)
    assert r.code == 1 and f"pack {victim.key.rsplit('/', 1)[-1]} is corrupt" in r.out
    # --repair indexes the orphan (and cannot mend the corrupt pack).
    r = cli("fsck", url, "--repair", "--json", ok=True, cwd=tmp_path)
    assert json.loads(r.out)["repair"]["packs_indexed"] == len(store_packs := list(backend.list("packs/"))) and store_packs
    assert pid in {p for p in (i.key.rsplit("/", 1)[-1] for i in store_packs)}
    assert set(store_objects(url, {})) >= objects_of(b)
    assert kind_of(url) == "local"
    a.close()
    b.close()


def test_fsck_and_gc_of_a_store_outside_any_workspace_leave_no_scratch_folder(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "remote")
    a, b = shared_scenario(tmp_path, url, {}, seed=20)
    a.close()
    b.close()
    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the system's temporary folders go, for this test
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cli("fsck", url, "--repair", cwd=outside)
    cli("gc", url, "--grace", "0", cwd=outside)
    assert list(scratch.iterdir()) == [], "each run removes the scratch folder it made"
