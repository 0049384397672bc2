"""Small packs are merged without being asked (issue 18): packs and index files stay bounded by the data, not by
the number of versions, every version restores bit for bit afterwards, and a kill at any step loses nothing."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli, run_datactl, write
from datactl.core.crashpoints import CRASH_ENV
from datactl.upkeep.consolidate import consolidate_packs, packs_to_merge
from datactl.upkeep.smallpacks import MAX_SMALL_PACKS, is_small
from datactl.upkeep.targets import StoreTarget
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace


def count_files(folder: Path) -> int:
    return sum(len(names) for _d, _s, names in os.walk(folder)) if folder.exists() else 0


def content(version: int, i: int) -> bytes:
    return f"version {version} of file {i}\n".encode() * (1 + version % 7)


def commit_versions(ws: Workspace, root: Path, first: int, last: int, files: int = 10) -> None:
    """Versions ``first``..``last``, each rewriting one of ``files`` files (version 1 writes them all)."""
    for v in range(first, last + 1):
        changed = range(files) if v == 1 else [v % files]
        for i in changed:
            write(root / f"f{i}.txt", content(v, i))
        ws.add([str(root / f"f{i}.txt") for i in changed])
        ws.commit(f"v{v}", tags=[f"v{v}"])


def expected_files(version: int, files: int = 10) -> dict[str, bytes]:
    """The files of ``version`` as commit_versions wrote them."""
    latest = {i: 1 for i in range(files)}
    for v in range(2, version + 1):
        latest[v % files] = v
    return {f"f{i}.txt": content(latest[i], i) for i in range(files)}


def test_many_small_commits_keep_packs_and_index_files_bounded(cli: Cli, ws_dir: Path) -> None:
    with Workspace.init(str(ws_dir), name="ds") as ws:
        commit_versions(ws, ws_dir, 1, 120)
    store = ws_dir / ".datactl" / "store"
    # Two packs (file data, metadata) and two index files per version, had nothing merged them.
    assert count_files(store / "packs") <= MAX_SMALL_PACKS + 2
    assert count_files(store / "index") <= MAX_SMALL_PACKS + 2
    assert cli("fsck").code == 0
    for v in (1, 2, 60, 119, 120):
        cli("checkout", f"v{v}")
        assert {p.name: p.read_bytes() for p in ws_dir.glob("f*.txt")} == expected_files(v)
    assert cli("verify", "--deep").code == 0


def test_many_small_pushes_keep_the_remote_bounded(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    with Workspace.init(str(ws_dir), name="ds") as ws:
        for v in range(1, 81):
            commit_versions(ws, ws_dir, v, v)
            sync.push(ws, str(remote), tags=True)
    # A push leaves a pack and an index file; the old small packs wait, condemned, for gc's grace period.
    assert count_files(remote / "index") <= MAX_SMALL_PACKS + 2
    assert cli("gc", str(remote), "--grace", "0").code == 0
    assert count_files(remote / "packs") <= MAX_SMALL_PACKS + 4
    dest = tmp_path / "clone"
    cli("clone", str(remote), "ds", str(dest), cwd=tmp_path)
    assert {p.name: p.read_bytes() for p in dest.glob("f*.txt")} == expected_files(80)
    cli("checkout", "v7", cwd=dest)
    assert {p.name: p.read_bytes() for p in dest.glob("f*.txt")} == expected_files(7)


CRASH_POINTS = [
    "during-copy",
    "consolidate-after-copy",
    "consolidate-after-index-written",
    "consolidate-after-local-index",
    "consolidate-after-index-deleted",
    "consolidate-during-pack-delete",
]


@pytest.fixture(scope="module")
def before_merge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose next commit merges its small packs (16 versions: 32 small packs)."""
    root = tmp_path_factory.mktemp("template") / "ws"
    root.mkdir()
    with Workspace.init(str(root), name="ds") as ws:
        commit_versions(ws, root, 1, MAX_SMALL_PACKS // 2)
    return root


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_during_consolidation_loses_nothing(before_merge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    root = tmp_path / "ws"
    shutil.copytree(before_merge, root)
    last = MAX_SMALL_PACKS // 2 + 1
    write(root / f"f{last % 10}.txt", content(last, last % 10))
    assert run_datactl(["add", "."], root).returncode == 0
    monkeypatch.setenv(CRASH_ENV, point)
    killed = run_datactl(["commit", "-m", f"v{last}", "--tag", f"v{last}"], root)
    monkeypatch.delenv(CRASH_ENV)
    assert killed.returncode == 137, killed.stderr  # the version was committed; the merge after it was cut short
    check = run_datactl(["verify", "--deep"], root)
    assert check.returncode == 0, check.stdout + check.stderr
    fsck = run_datactl(["fsck"], root)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # Later commits work on top (a later merge takes in what this one left; gc frees packs it left unindexed).
    with Workspace(str(root)) as ws:
        commit_versions(ws, root, last + 1, last + 1)
    assert run_datactl(["verify", "--deep", f"v{last + 1}"], root).returncode == 0
    assert run_datactl(["checkout", "v1"], root).returncode == 0
    assert {p.name: p.read_bytes() for p in root.glob("f*.txt")} == expected_files(1)


def test_one_merge_holds_at_most_its_object_budget(before_merge: Path, tmp_path: Path) -> None:
    """A store of many tiny objects in small packs is merged over several runs, each within its budget of objects
    (what one run holds in memory), and every version still restores."""
    root = tmp_path / "ws"
    shutil.copytree(before_merge, root)
    with Workspace(str(root)) as ws:
        index = ws.repo.index
        target = StoreTarget(
            ws.repo.backend, "the store", ws.layout.tmp_dir, ws.repo.config.pack_size,
            after_change=lambda change: index.replace_packs(change.removed_packs, change.added_packs),
        )
        merged_per_run = []
        while True:
            objects_before = {pid: len(entries) for pid, entries in ((p, index.entries_of_pack(p)) for p in index.packs())}
            report = consolidate_packs(target, delete_now=True, max_small=0, max_objects=5)
            if report.packs_merged == 0:
                break
            gone = set(objects_before) - set(index.packs())
            merged_per_run.append(sum(objects_before[p] for p in gone))
    assert len(merged_per_run) > 1 and all(n <= 5 for n in merged_per_run), merged_per_run
    assert run_datactl(["verify", "--deep"], root).returncode == 0
    for v in (1, MAX_SMALL_PACKS // 2):
        assert run_datactl(["checkout", f"v{v}"], root).returncode == 0
        assert {p.name: p.read_bytes() for p in root.glob("f*.txt")} == expected_files(v)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.integers(100, 5_000), min_size=1_000, max_size=2_000))
def test_merging_copies_each_byte_a_logarithmic_number_of_times(pack_sizes: list[int]) -> None:
    # Commits leave packs of these sizes; each time more than MAX_SMALL_PACKS are small, packs_to_merge picks.
    # Merging every small pack each time copied about 15 times the data here, past the bound; this copies about 4.
    target = 32 << 20
    packs: dict[str, int] = {}
    copied = 0
    for n, size in enumerate(pack_sizes):
        packs[f"p{n}"] = size
        small = {p: s for p, s in packs.items() if is_small(s, 0, target)}
        if len(small) > MAX_SMALL_PACKS:
            chosen = packs_to_merge(small)
            order = sorted(small, key=lambda p: (small[p], p))
            assert chosen == set(order[: len(chosen)]) and len(chosen) > 1, "the smallest packs, and more than one"
            merged = sum(packs.pop(p) for p in chosen)
            rest = [small[p] for p in order[len(chosen) :]]
            assert not rest or rest[0] >= 2 * merged, "the merged pack stands in progression below the rest"
            copied += merged
            packs[f"m{n}"] = merged
        assert sum(1 for s in packs.values() if is_small(s, 0, target)) <= MAX_SMALL_PACKS
    total = sum(pack_sizes)
    assert copied <= 0.5 * (math.log2(total / min(pack_sizes)) + 1) * total
