"""What keeps gc from racing: the store lock (gc, gc --dry-run, fsck --repair), and gc's checks of ``index/``.

Each concurrent case holds a real ``datactl gc`` process at a named point
(``tests/pausepoint.py``) while the test acts, so the interleaving is the same
every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_gc import backend_of, objects_of, shared_scenario, store_objects, verify_deep

from conftest import Cli
from datactl.format.layout import index_file_key, key_name
from datactl.store.indexfiles import list_index_files, read_index_file, write_index_file
from datactl.store.packread import read_footer
from datactl.store.records import condemned_packs
from datactl.upkeep.refdelete import delete_dataset
from pausepoint import PausePoint


def start_gc(tmp_path: Path, pause: PausePoint, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "datactl", "gc", *args], cwd=tmp_path, env={**os.environ, **pause.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def keys(url: str) -> set[str]:
    return {i.key for i in backend_of(url, {}).list("") if not i.key.startswith("locks/")}


def test_gc_dry_run_holds_the_store_lock_and_fsck_repair_never_runs_beside_gc(tmp_path: Path, cli: Cli) -> None:
    url = str(tmp_path / "remote")
    a, b = shared_scenario(tmp_path, url, {}, seed=8)
    delete_dataset(backend_of(url, {}), "a")  # garbage for gc to find
    before = keys(url)

    pause = PausePoint(tmp_path, "after-walk")
    dry = start_gc(tmp_path, pause, url, "--dry-run", "--grace", "0")
    pause.wait(dry)  # a dry run, in the middle of its walk
    try:
        for args in (["gc", url, "--grace", "0"], ["fsck", url, "--repair"]):
            r = cli(*args, ok=False, cwd=tmp_path)
            assert r.code == 1 and "locked" in r.err and "gc --dry-run" in r.err, (args, r.err)
        assert cli("fsck", url, cwd=tmp_path).code == 0, "a plain fsck only reads: it runs beside gc"
    finally:
        pause.release()
    out, err = dry.communicate(timeout=120)
    assert dry.returncode == 0, err
    assert keys(url) == before, "neither the dry run nor the refused commands changed the store"

    pause = PausePoint(tmp_path, "after-walk")
    real = start_gc(tmp_path, pause, url, "--grace", "0", "--repack-threshold", "0")
    pause.wait(real)
    try:
        r = cli("fsck", url, "--repair", ok=False, cwd=tmp_path)
        assert r.code == 1 and "locked" in r.err, r.err
    finally:
        pause.release()
    out, err = real.communicate(timeout=120)
    assert real.returncode == 0, err
    assert set(store_objects(url, {})) == objects_of(b), "gc finished its job once it was let go"
    a.close()
    b.close()


def test_gc_refuses_to_run_on_an_unreadable_index_file(tmp_path: Path, cli: Cli) -> None:
    url = str(tmp_path / "remote")
    a, b = shared_scenario(tmp_path, url, {}, seed=12)
    backend = backend_of(url, {})
    delete_dataset(backend, "a")
    # Damage the index file of one of b's packs: without it, b's objects would look unindexed (garbage).
    victim = index_file_key(_index_file_naming(backend, objects_of(b)))
    data = bytearray(backend.get(victim))
    data[len(data) // 2] ^= 0xFF
    backend.put_bytes(victim, bytes(data))
    before = keys(url)
    r = cli("gc", url, "--grace", "0", "--repack-threshold", "0", ok=False, cwd=tmp_path)
    lines = r.err.strip().splitlines()
    assert r.code == 1 and len(lines) == 2 and key_name(victim) in lines[0] and "unreadable" in lines[0] and "deletes nothing" in lines[0], r.err
    assert "fsck --repair" in lines[1]
    assert keys(url) == before, "gc changed nothing"
    assert cli("fsck", url, "--repair", cwd=tmp_path).code == 0
    verify_deep(url, {}, "b", tmp_path / "cache")
    a.close()
    b.close()


def _index_file_naming(backend, objects: set[str]) -> str:
    """The id of an index file that lists a pack holding one of ``objects``."""
    for index_id in list_index_files(backend):
        if any(e.id in objects for _, entries in read_index_file(backend, index_id).values() for e in entries):
            return index_id
    raise AssertionError("no index file names those objects")


def test_gc_reads_index_again_before_deleting_and_keeps_a_pack_indexed_meanwhile(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a, b = shared_scenario(tmp_path, url, {}, seed=14)
    backend = backend_of(url, {})
    delete_dataset(backend, "a")
    # With no grace period, gc's first pass condemns a's packs and a second pass, at once, deletes them.
    # Between the second pass's listing and its deletes, a writer indexes one of them again.
    pause = PausePoint(tmp_path, "after-listing#2")
    proc = start_gc(tmp_path, pause, url, "--grace", "0", "--repack-threshold", "0")
    pause.wait(proc)
    try:
        condemned = condemned_packs(backend)
        assert condemned, "the first pass condemned a's packs"
        kept = sorted(condemned)[0]
        size = next(i.size for i in backend.list("packs/") if key_name(i.key) == kept)
        write_index_file(backend, {kept: (size, read_footer(backend, kept, size))})
    finally:
        pause.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    present = {key_name(i.key) for i in backend.list("packs/")}
    assert kept in present, "a pack indexed after gc listed the store is not deleted"
    assert condemned - {kept} and not (condemned - {kept}) & present, "the other condemned packs were deleted"
    verify_deep(url, {}, "b", tmp_path / "cache")
    a.close()
    b.close()
