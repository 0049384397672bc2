"""An add of many files shared with worker processes: each new chunk stored once, every row staged, and a worker
that fails or dies fails the add without losing what was staged."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from conftest import run_datactl, snapshot, write
from datactl.core.errors import DatactlError
from datactl.core.progress import NullProgress
from datactl.core.workerproc import usable_cpus
from datactl.format.pack import ObjectType
from datactl.store.packread import read_footer
from datactl.workspace.add import OFFLOAD_AFTER, AddResult
from datactl.workspace.addworkers import ClaimTable, IngestWorkers
from datactl.workspace.scan import FILE, DiskEntry
from datactl.workspace.workspace import Workspace

FILES = OFFLOAD_AFTER + 3_000
needs_two_cores = pytest.mark.skipif(usable_cpus() < 2, reason="workers are started only with two cores or more")


def many_files(root: Path, seed: int) -> None:
    """FILES small files; one in four holds one of 50 contents, spread over the whole tree (so over every worker)."""
    rng = random.Random(seed)
    shared = [rng.randbytes(rng.randint(200, 3_000)) for _ in range(50)]
    for i in range(FILES):
        data = shared[i % 50] if i % 4 == 0 else rng.randbytes(rng.randint(1, 3_000))
        write(root / f"d{i % 37:02d}" / f"f{i:05d}.bin", data)


def stored_copies(ws: Workspace) -> dict[str, int]:
    """How many packs of the workspace's store hold each data chunk (by their footers, not the index)."""
    copies: dict[str, int] = {}
    for info in ws.repo.backend.list("packs/"):
        for e in read_footer(ws.repo.backend, info.key.rsplit("/", 1)[-1], info.size):
            if e.type == ObjectType.CHUNK:
                copies[e.id] = copies.get(e.id, 0) + 1
    return copies


@needs_two_cores
def test_many_files_added_by_workers_store_each_chunk_once_and_come_back_whole(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    many_files(root, seed=1)
    picture = snapshot(root)
    with Workspace.init(str(root), name="ds") as ws:
        result = ws.add([str(root)])
        assert result.workers >= 2 and result.added == FILES and result.bytes_read == sum(f.stat().st_size for f in root.rglob("*.bin"))
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


@needs_two_cores
def test_a_worker_killed_midway_fails_the_add_and_the_next_add_finishes_it(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    many_files(root, seed=2)
    assert run_datactl(["init", "--name", "ds"], root).returncode == 0
    killed = run_datactl(["add", "."], root, env={"DATACTL_TEST_CRASH_AT": "add-worker-batch#2"})
    assert killed.returncode != 0
    message = killed.stderr.strip()
    assert "a process adding files stopped before it finished (exit code 137)" in message and "Traceback" not in message, message
    with Workspace(str(root)) as ws:  # what was staged names durable objects only
        for row in ws.stage.iter_rows():
            assert row.entry is not None and all(ws.repo.index.has(oid) for oid in row.entry.chunks), row.path
    again = run_datactl(["add", "."], root)
    assert again.returncode == 0, again.stderr
    assert run_datactl(["commit", "-m", "v1"], root).returncode == 0
    assert run_datactl(["verify", "--deep"], root).returncode == 0
    assert "nothing to commit" in run_datactl(["status"], root).stdout


@needs_two_cores
def test_workers_that_cannot_start_leave_the_add_to_the_calling_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    many_files(root, seed=3)
    picture = snapshot(root)
    monkeypatch.setenv("DATACTL_TEST_CRASH_AT", "add-worker-start")  # read by the workers this process starts
    with Workspace.init(str(root), name="ds") as ws:
        result = ws.add([str(root)])
        assert result.workers == 0 and result.added == FILES
        ws.commit("v1")
    assert run_datactl(["verify", "--deep"], root).returncode == 0
    assert snapshot(root) == picture


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
    with ClaimTable(path, 0) as first, ClaimTable(path, 1) as second:
        assert first.claim(["a", "b"]) == {"a", "b"}
        assert second.claim(["b", "c"]) == {"c"}
        assert first.claim(["a", "c", "d"]) == {"a", "d"}, "a claim is kept: asking again answers the same"
