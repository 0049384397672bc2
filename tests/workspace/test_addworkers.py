"""An add of many files shared with worker processes: each new chunk stored once, every row staged, and a worker
that fails or dies fails the add without losing what was staged."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import age_files, run_datactl, snapshot, write
from datactl.core.errors import DatactlError
from datactl.core.progress import NullProgress
from datactl.core.workerproc import usable_cpus
from datactl.format.pack import ObjectType
from datactl.store.ingest import SMALL_FILE
from datactl.store.packread import read_footer
from datactl.workspace.add import OFFLOAD_AFTER, OFFLOAD_AT_ONCE, AddBatch, AddResult, many_new_files
from datactl.workspace.addworkers import ClaimTable, IngestWorkers
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.scan import FILE, DiskEntry
from datactl.workspace.workspace import Workspace

FILES = OFFLOAD_AFTER + 3_000


def many_files(root: Path, seed: int) -> None:
    """FILES small files; one in four holds one of 50 contents, spread over the whole tree (so over every worker)."""
    rng = random.Random(seed)
    shared = [rng.randbytes(rng.randint(200, 3_000)) for _ in range(50)]
    for i in range(FILES):
        data = shared[i % 50] if i % 4 == 0 else rng.randbytes(rng.randint(1, 3_000))
        write(root / f"d{i % 37:02d}" / f"f{i:05d}.bin", data)


def add_with_workers(ws: Workspace, wait: bool = True) -> AddResult:
    """``add`` of the whole workspace as ``Workspace.add`` does it, with two workers started after OFFLOAD_AFTER files
    and (with ``wait``) waited for there, so the files after those surely go to them."""

    def start() -> IngestWorkers | None:
        workers = IngestWorkers.start(ws.root, ws.stage, NullProgress(), workers=2)
        while wait and workers is not None and workers.ready() is None:
            time.sleep(0.01)
        return workers

    result = AddResult()
    with ws.locked(), AddBatch(ws.repo, ws.stage, ws.chunker, ws.disk, result, NullProgress(), offload=start) as batch:
        try:
            batch.add_path("", IgnoreRules(ws.root), lambda _path: True)
            batch.finish()
        except BaseException:
            ws.repo.abort()
            raise
    return result


def stored_copies(ws: Workspace) -> dict[str, int]:
    """How many packs of the workspace's store hold each data chunk (by their footers, not the index)."""
    copies: dict[str, int] = {}
    for info in ws.repo.backend.list("packs/"):
        for e in read_footer(ws.repo.backend, info.key.rsplit("/", 1)[-1], info.size):
            if e.type == ObjectType.CHUNK:
                copies[e.id] = copies.get(e.id, 0) + 1
    return copies


def test_many_files_added_by_workers_store_each_chunk_once_and_come_back_whole(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    many_files(root, seed=1)
    picture = snapshot(root)
    with Workspace.init(str(root), name="ds") as ws:
        result = add_with_workers(ws)
        assert result.workers == 2 and result.added == FILES and result.bytes_read == sum(f.stat().st_size for f in root.rglob("*.bin"))
        assert not list(Path(ws.layout.tmp_dir).glob("add-*")), "the claims and side files go with the add"
        copies = stored_copies(ws)
        assert copies and max(copies.values()) == 1, "a chunk two workers met is stored once"
        st = ws.status()
        assert not st.unstaged and not st.untracked and len(st.staged) == FILES, "every file's row is staged, those waiting on another worker's chunks too"
        ws.commit("v1")
    assert run_datactl(["verify", "--deep"], root).returncode == 0
    store, clone = tmp_path / "store", tmp_path / "clone"
    assert run_datactl(["push", str(store)], root).returncode == 0
    assert run_datactl(["clone", str(store), "ds", str(clone)], tmp_path).returncode == 0
    assert snapshot(clone) == picture


def test_new_folders_beside_tracked_ones_are_staged_with_the_stats_of_the_files_read(tmp_path: Path) -> None:
    # Files of folders the stage has no row under are handed out without a stat: what is recorded is the stat of
    # the file a worker opened, so the next add and status read nothing again; a big one among them is streamed.
    root = tmp_path / "ws"
    write(root / "old" / "kept.txt", b"kept")
    write(root / "old" / "edited.txt", b"v1")
    with Workspace.init(str(root), name="ds") as ws:
        ws.add([str(root)])
        ws.commit("v1")
    many_files(root / "new", seed=7)
    write(root / "new" / "zz" / "big.bin", random.Random(7).randbytes(3 * SMALL_FILE + 5))  # after the small ones: a worker's
    write(root / "old" / "edited.txt", b"v2, longer")
    age_files(root)  # written long enough ago for their stats to be trusted
    picture = snapshot(root)
    with Workspace.open(str(root)) as ws:
        result = add_with_workers(ws)
        assert result.workers == 2 and (result.added, result.modified) == (FILES + 1, 1)
        again = add_with_workers(ws)
        assert (again.added, again.modified, again.bytes_read) == (0, 0, 0), "the stats recorded vouch for every file"
        ws.commit("v2")
    shutil.rmtree(root / "new")
    assert run_datactl(["checkout", "--force", "HEAD"], root).returncode == 0
    assert snapshot(root) == picture


def test_only_a_first_add_of_many_files_starts_its_workers_before_its_walk(tmp_path: Path) -> None:
    # Workers cost more than they give back for fewer files, and the files of a tracked folder are mostly vouched
    # for by their stats, not read: neither starts them before the walk (they start after OFFLOAD_AFTER files).
    root = tmp_path / "ws"
    for i in range(OFFLOAD_AT_ONCE - 1):
        write(root / "data" / f"d{i % 7}" / f"f{i:05d}.bin", b"x")
    write(root / "data" / "d3" / "notes.tmp", b"ignored")
    write(root / ".datactlignore", b"*.tmp\n")
    write(root / "readme.txt", b"x")
    with Workspace.init(str(root), name="ds") as ws:
        rules = IgnoreRules(ws.root)
        assert not many_new_files(ws.root, ws.stage, "data", rules), "one file short: the ignored one does not count"
        assert many_new_files(ws.root, ws.stage, "", rules), "the file beside the folder makes up the count"
        write(root / "data" / "d6" / "one-more.bin", b"x")
        assert many_new_files(ws.root, ws.stage, "data", rules)
        ws.add([str(root / "data" / "d0")])
        assert not many_new_files(ws.root, ws.stage, "data", rules), "a folder with tracked files under it"
        assert not many_new_files(ws.root, ws.stage, "data/d1", rules), "a new folder of a few files"


# Modules a worker imports, each planted at the workspace's root as a file that leaves a mark when imported.
_PLANTED = ("logging", "json", "random", "dataclasses", "tempfile", "sqlite3", "zstandard", "xxhash", "typing")


def test_python_files_among_the_data_never_run_in_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A workspace's files are data: a `logging.py` there, perhaps written by a checkout from a hostile store, must
    # not be imported by the processes an add starts there (Python puts the current folder first on the path).
    root = tmp_path / "ws"
    many_files(root, seed=6)
    mark = tmp_path / "ran"
    for name in _PLANTED:
        write(root / f"{name}.py", f"open({str(mark / name)!r}, 'w').close()\n".encode())
    mark.mkdir()
    monkeypatch.chdir(root)
    with Workspace.init(str(root), name="ds") as ws:
        result = add_with_workers(ws)
        assert result.workers == 2 and result.added == FILES + len(_PLANTED)
    assert not list(mark.iterdir()), "a planted module ran"


def test_a_worker_killed_midway_fails_the_add_and_the_next_add_finishes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    many_files(root, seed=2)
    picture = snapshot(root)
    with Workspace.init(str(root), name="ds") as ws:
        monkeypatch.setenv("DATACTL_TEST_CRASH_AT", "add-worker-batch")  # read by the workers this process starts
        with pytest.raises(DatactlError, match=r"a process adding files stopped before it finished \(exit code 137\)"):
            add_with_workers(ws)
        monkeypatch.delenv("DATACTL_TEST_CRASH_AT")
        staged = list(ws.stage.iter_rows())
        assert len(staged) < FILES
        for row in staged:  # what was staged names durable objects only
            assert row.entry is not None and all(ws.repo.index.has(oid) for oid in row.entry.chunks), row.path
        assert not list(Path(ws.layout.tmp_dir).glob("add-*"))
        assert add_with_workers(ws).added == FILES - len(staged)
        ws.commit("v1")
    assert run_datactl(["verify", "--deep"], root).returncode == 0
    assert snapshot(root) == picture


def test_workers_that_cannot_start_leave_the_add_to_the_calling_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    many_files(root, seed=3)
    monkeypatch.setenv("DATACTL_TEST_CRASH_AT", "add-worker-start")
    with Workspace.init(str(root), name="ds") as ws:
        result = add_with_workers(ws, wait=False)
        assert result.workers == 0 and result.added == FILES
        ws.commit("v1")
    assert run_datactl(["verify", "--deep"], root).returncode == 0


def test_a_worker_that_dies_before_it_is_up_leaves_the_files_to_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches go out as soon as one worker is up; one that never comes up was given nothing and owes nothing.
    root = tmp_path / "ws"
    many_files(root, seed=5)
    picture = snapshot(root)
    monkeypatch.setenv("DATACTL_TEST_CRASH_AT", "add-worker-start-1")
    with Workspace.init(str(root), name="ds") as ws:
        result = add_with_workers(ws)
        assert result.workers == 1 and result.added == FILES
        ws.commit("v1")
    assert run_datactl(["verify", "--deep"], root).returncode == 0
    for folder in root.glob("d[0-9][0-9]"):
        shutil.rmtree(folder)
    assert run_datactl(["checkout", "--force", "HEAD"], root).returncode == 0
    assert snapshot(root) == picture


@pytest.mark.skipif(usable_cpus() < 2, reason="an add starts workers only with two cores or more")
def test_datactl_add_of_many_files_gives_what_one_process_gives(tmp_path: Path) -> None:
    trees = {}
    for name, env in (("workers", {}), ("alone", {"DATACTL_TEST_CRASH_AT": "add-worker-start"})):
        root = tmp_path / name
        many_files(root, seed=4)
        assert run_datactl(["init", "--name", "ds"], root).returncode == 0
        r = run_datactl(["add", "."], root, env=env)
        assert r.returncode == 0 and f"staged {FILES} added" in r.stdout, r.stderr
        assert run_datactl(["commit", "-m", "v1"], root).returncode == 0
        trees[name] = run_datactl(["ls", "-r", "--json"], root).stdout
    assert trees["workers"] == trees["alone"]


def test_a_file_a_worker_cannot_read_fails_the_add_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root / "here.txt", b"here\n")
    with Workspace.init(str(root), name="ds") as ws:
        workers = IngestWorkers.start(ws.root, ws.stage, NullProgress(), workers=1)
        assert workers is not None
        with workers:
            gone = root / "gone.txt"
            workers.add(DiskEntry("here.txt", FILE, os.lstat(root / "here.txt")), None)
            workers.add(DiskEntry("gone.txt", FILE, os.lstat(root / "here.txt")), None)
            with pytest.raises(DatactlError, match="gone.txt"):
                workers.finish(AddResult())
            assert not gone.exists()


def test_claims_give_each_object_to_the_first_writer_that_asks(tmp_path: Path) -> None:
    path = str(tmp_path / "claims.db")
    a, b, c, d = (f"{k:x}" * 32 for k in range(4))
    with ClaimTable(path, 0) as first, ClaimTable(path, 1) as second:
        assert first.claim([a, b]) == {a, b}
        assert second.claim([b, c]) == {c}
        assert first.claim([a, c, d]) == {a, d}, "a claim is kept: asking again answers the same"


_IDS = st.builds(lambda head, tail: head * 15 + tail * 17, st.sampled_from("01"), st.sampled_from("0af"))  # six ids: writers ask for the same ones


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.lists(_IDS, max_size=6)), max_size=8))
def test_every_claimed_object_is_held_by_exactly_one_writer(asks: list[tuple[int, list[str]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:  # hypothesis runs examples in one test: a folder of each one's own
        path = os.path.join(tmp, "claims.db")
        with ClaimTable(path, 0) as w0, ClaimTable(path, 1) as w1:
            writers = (w0, w1)
            held: dict[str, set[int]] = {}
            for who, oids in asks:
                for oid in writers[who].claim(oids):
                    held.setdefault(oid, set()).add(who)
            for who, oids in asks:  # asked again, each writer answers as before, and nothing is lost
                for oid in oids:
                    assert (oid in writers[who].claim([oid])) == (who in held.get(oid, set()))
                    assert held.get(oid), f"{oid} is stored by nobody"
            for oid, holders in held.items():
                assert len(holders) == 1, f"{oid} is stored by both writers"


def test_an_entry_handed_to_a_worker_arrives_with_every_stat_field_an_add_reads(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1234)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    entry = DiskEntry("data/f.bin", FILE, os.lstat(path))
    arrived = pickle.loads(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    assert (arrived.path, arrived.kind) == (entry.path, entry.kind)
    fields = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_mtime")
    assert [getattr(arrived.st, f) for f in fields] == [getattr(entry.st, f) for f in fields]
    assert arrived.st.st_mtime_ns == 1_700_000_000_987_654_321
