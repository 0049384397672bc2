"""A fresh checkout of many files written by worker processes: the bytes come back whole, every row is saved, and a
worker that fails or dies fails the checkout, which checking the version out again finishes."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import run_datactl, snapshot, write
from datactl.core.errors import DatactlError
from datactl.core.progress import NullProgress
from datactl.core.workerproc import usable_cpus
from datactl.workspace.checkout import CheckoutResult
from datactl.workspace.checkoutworkers import BATCH_BYTES, CheckoutWorkers
from datactl.workspace.fresh import OFFLOAD_AFTER, FileWriters, apply_fresh
from datactl.workspace.stage import Stage, StageRow
from datactl.workspace.workspace import Workspace

FILES = OFFLOAD_AFTER + 1_500


def versioned(tmp_path: Path, seed: int) -> tuple[Path, str, dict[str, tuple]]:
    """A committed workspace of FILES small files over 23 folders, a link, an executable and a file bigger than a
    batch; (its root, the commit, its picture)."""
    rng = random.Random(seed)
    root = tmp_path / "src"
    for i in range(FILES):
        write(root / f"d{i % 23:02d}" / f"f{i:05d}.bin", rng.randbytes(rng.randint(0, 2_000)))
    write(root / "zz" / "big.bin", rng.randbytes(BATCH_BYTES + 12_345))
    write(root / "zz" / "run.sh", b"#!/bin/sh\necho hi\n")
    os.chmod(root / "zz" / "run.sh", 0o755)
    os.symlink("run.sh", root / "zz" / "link")
    with Workspace.init(str(root), name="ds") as ws:
        ws.add([str(root)])
        commit_id = ws.commit("v1")
    return root, commit_id, snapshot(root)


def tracking_nothing(src: Path, dst: Path) -> Workspace:
    """A workspace at ``dst`` whose store holds ``src``'s versions and which tracks nothing yet, as a clone is
    between its download and its checkout."""
    dst.mkdir()
    shutil.copytree(src / ".datactl", dst / ".datactl")
    shutil.copy(src / "datactl.toml", dst / "datactl.toml")
    ws = Workspace(str(dst))
    for name in os.listdir(dst / ".datactl"):
        if name.startswith(os.path.basename(ws.layout.stage_db)):
            os.unlink(dst / ".datactl" / name)
    Stage(ws.layout.stage_db).close()
    ws.close()
    return Workspace(str(dst))


def checkout_with_workers(ws: Workspace, commit_id: str, in_scope: Callable[[str], bool] = lambda _p: True, wait: bool = True) -> CheckoutResult:
    """``apply_fresh`` as a clone runs it, with two workers started after OFFLOAD_AFTER files and (with ``wait``)
    waited for, so the files after those surely go to them."""

    def start(record: Callable[[StageRow], None]) -> FileWriters | None:
        writers = CheckoutWorkers.start(ws.root, NullProgress(), record, workers=2)
        while wait and writers is not None and writers.ready() is None:
            time.sleep(0.01)
        return writers

    tree_id = ws.repo.read_commit(commit_id).tree
    with ws.locked():
        return apply_fresh(ws.repo, ws.stage, ws.disk, tree_id, commit_id, in_scope, NullProgress(), None, start)


def test_files_written_by_workers_come_back_whole_and_tracked(tmp_path: Path) -> None:
    src, commit_id, picture = versioned(tmp_path, seed=1)
    with tracking_nothing(src, tmp_path / "dst") as ws:
        result = checkout_with_workers(ws, commit_id)
        assert result.workers == 2 and result.written == FILES + 3
        assert ws.head == commit_id and ws.interrupted_checkout is None
        assert ws.stage.count() == FILES + 3
        assert ws.status().clean
    assert snapshot(tmp_path / "dst") == picture
    assert not [p for p in (tmp_path / "dst").rglob("*datactl-tmp*")], "no temporary file is left"


def test_out_of_scope_files_are_tracked_but_not_written(tmp_path: Path) -> None:
    src, commit_id, picture = versioned(tmp_path, seed=2)
    with tracking_nothing(src, tmp_path / "dst") as ws:
        result = checkout_with_workers(ws, commit_id, in_scope=lambda p: not p.startswith("d07/"))
        assert result.workers == 2
        assert ws.stage.count() == FILES + 3
    assert snapshot(tmp_path / "dst") == {k: v for k, v in picture.items() if not k.startswith("d07")}


def test_a_worker_killed_midway_fails_the_checkout_and_checking_out_again_finishes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, commit_id, picture = versioned(tmp_path, seed=3)
    with tracking_nothing(src, tmp_path / "dst") as ws:
        monkeypatch.setenv("DATACTL_TEST_CRASH_AT", "checkout-worker-batch")  # read by the workers this process starts
        with pytest.raises(DatactlError, match=r"a process writing files stopped before it finished \(exit code 137\)"):
            checkout_with_workers(ws, commit_id)
        monkeypatch.delenv("DATACTL_TEST_CRASH_AT")
        assert ws.interrupted_checkout == commit_id
        assert OFFLOAD_AFTER <= ws.stage.count() < FILES, "the rows of the files written before the workers took over are saved"
    r = run_datactl(["checkout", commit_id], tmp_path / "dst")
    assert r.returncode == 0, r.stderr
    assert snapshot(tmp_path / "dst") == picture
    assert run_datactl(["status", "--json"], tmp_path / "dst").stdout.count('"path"') == 0


def test_workers_that_cannot_start_leave_the_checkout_to_the_calling_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, commit_id, picture = versioned(tmp_path, seed=4)
    monkeypatch.setenv("DATACTL_TEST_CRASH_AT", "checkout-worker-start")
    with tracking_nothing(src, tmp_path / "dst") as ws:
        result = checkout_with_workers(ws, commit_id, wait=False)
        assert result.workers == 0 and result.written == FILES + 3
        assert ws.head == commit_id
    assert snapshot(tmp_path / "dst") == picture


@pytest.mark.skipif(usable_cpus() < 2, reason="a checkout starts workers only with two cores or more")
def test_a_clone_of_many_files_gives_what_one_process_gives(tmp_path: Path) -> None:
    src, _commit_id, picture = versioned(tmp_path, seed=5)
    assert run_datactl(["push", str(tmp_path / "remote")], src).returncode == 0
    for name, env in (("workers", {}), ("alone", {"DATACTL_TEST_CRASH_AT": "checkout-worker-start"})):
        r = run_datactl(["clone", str(tmp_path / "remote"), "ds", str(tmp_path / name)], tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        assert snapshot(tmp_path / name) == picture
        assert run_datactl(["verify"], tmp_path / name).returncode == 0


def test_a_narrow_scope_of_a_big_version_is_written_without_workers(tmp_path: Path) -> None:
    src, commit_id, picture = versioned(tmp_path, seed=6)
    with tracking_nothing(src, tmp_path / "dst") as ws:
        result = checkout_with_workers(ws, commit_id, in_scope=lambda p: p.startswith("d07/"))
        assert result.workers == 0, "workers start after OFFLOAD_AFTER files written, not entries walked"
        assert result.written == len([k for k in picture if k.startswith("d07/")])
        assert ws.stage.count() == FILES + 3
    assert snapshot(tmp_path / "dst") == {k: v for k, v in picture.items() if k.startswith("d07")}
