"""The scan of the disk against the stat cache: cut into ranges, run in worker processes, it finds what one scan finds."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import age_files, write
from datactl.core.errors import DatactlError
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.scan import ScanProblem
from datactl.workspace.statscan import RangeWorker, scan_range, scan_stats
from datactl.workspace.workspace import Workspace

# Names around '/' in byte order ('-' and '.' sort before it, '0' after), and beyond ASCII.
names = st.sampled_from(["a", "b", "a-b", "a.b", "a0", "é", "日"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
EDITS = ("keep", "modify", "delete", "touch", "chmod")


def _without_clashes(wanted: list[str], taken: set[str]) -> list[str]:
    """``wanted`` less the paths that would need a file where a folder is (or the reverse), in order."""
    kept = []
    for path in wanted:
        parts = path.split("/")
        above = ("/".join(parts[:i]) for i in range(1, len(parts)))
        if path in taken or any(p in taken for p in above) or any(t.startswith(path + "/") for t in taken):
            continue
        taken.add(path)
        kept.append(path)
    return kept


def build(root: Path, tracked: dict[str, str], untracked: list[str]) -> tuple[Workspace, dict[str, str]]:
    """A workspace committing ``tracked`` (path -> the edit made after the commit) and holding ``untracked`` new files,
    an ignored file and a FIFO (a problem to report); and the edits made (``tracked`` less paths that clashed)."""
    taken: set[str] = set()
    kept = _without_clashes(sorted(tracked), taken)
    for path in kept:
        write(root / path, f"content of {path}\n")
    age_files(root)  # stats old enough for the stat cache to trust
    ws = Workspace.init(str(root), name="scan")
    ws.add([str(root)])
    ws.commit("v1")
    for path in kept:
        edit = tracked[path]
        if edit == "modify":
            write(root / path, f"other content of {path}, longer\n")
        elif edit == "delete":
            os.unlink(root / path)
        elif edit == "touch":
            os.utime(root / path, ns=(1, 1))
        elif edit == "chmod":
            os.chmod(root / path, 0o600)
    for path in _without_clashes(sorted(untracked), taken):
        write(root / path, "new\n")
    write(root / ".datactlignore", "*.ignored\n")
    write(root / "b.ignored", "ignored\n")
    os.mkfifo(root / "fifo")
    return ws, {path: tracked[path] for path in kept}


def scanned(run) -> tuple[list[tuple], list[ScanProblem], int]:
    """What a scan yields (as comparable tuples), the problems it reports and the files it vouches for."""
    problems: list[ScanProblem] = []
    vouched: list[int] = []
    found = [(path, None if d is None else (d.path, d.kind, d.st), tracked) for path, d, tracked in run(problems.append, vouched.append)]
    return found, problems, sum(vouched)


def whole(root: Path, ws: Workspace):
    return lambda on_problem, vouched: scan_range(str(root), ws.stage.path, IgnoreRules(str(root)), "", None, None, on_problem, vouched)


def in_ranges(root: Path, ws: Workspace, max_ranges: int):
    rules = IgnoreRules(str(root))
    return lambda on_problem, vouched: scan_stats(str(root), ws.stage, rules, "", on_problem, vouched, rows_per_range=1, max_ranges=max_ranges)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(paths, st.sampled_from(EDITS), min_size=3, max_size=14), st.lists(paths, max_size=5), st.integers(2, 4))
def test_workers_find_what_one_scan_finds(tracked: dict[str, str], untracked: list[str], max_ranges: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws, edits = build(root, tracked, untracked)
        with ws:
            assume(len(edits) >= 2)
            assert ws.stage.split_points("", 1, max_ranges), "the stage is cut: workers run"
            one = scanned(whole(root, ws))
            assert scanned(in_ranges(root, ws, max_ranges)) == one
            found, problems, vouched = one
            assert [p.path for p in problems] == ["fifo"]
            assert vouched == list(edits.values()).count("keep")
            assert {path for path, _d, tracked in found if tracked} == {path for path, edit in edits.items() if edit != "keep"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(paths, st.sampled_from(EDITS), min_size=1, max_size=14), st.lists(paths, max_size=5), st.lists(paths, max_size=4))
def test_ranges_cut_anywhere_add_up_to_the_whole(tracked: dict[str, str], untracked: list[str], cut_at: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws, _edits = build(root, tracked, untracked)
        with ws:
            rules = IgnoreRules(str(root))
            # Cuts at paths and at their folders' ends ('a/' and 'a0' bound what is under 'a').
            cuts = sorted({c for p in cut_at for c in (p, p + "/", p + "0")})
            pieces: list = []
            for lo, hi in zip([None, *cuts], [*cuts, None]):
                pieces.append(lambda on_problem, vouched, lo=lo, hi=hi: scan_range(str(root), ws.stage.path, rules, "", lo, hi, on_problem, vouched))
            parts = [scanned(piece) for piece in pieces]
            assert (
                [f for found, _p, _v in parts for f in found],
                [p for _f, problems, _v in parts for p in problems],
                sum(v for _f, _p, v in parts),
            ) == scanned(whole(root, ws))


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    edits = {f"d{k}/f{j}.txt": EDITS[(k + j) % len(EDITS)] for k in range(4) for j in range(5)}
    ws, _edits = build(tmp_path, edits, ["d1/new.txt", "e/new.txt"])
    with ws:
        yield ws


def test_the_scan_counts_unchanged_files_and_yields_the_rest(tmp_path: Path, workspace: Workspace) -> None:
    found, problems, vouched = scanned(in_ranges(tmp_path, workspace, 3))
    edits = {f"d{k}/f{j}.txt": EDITS[(k + j) % len(EDITS)] for k in range(4) for j in range(5)}
    changed = [(path, edit != "delete", True) for path, edit in edits.items() if edit != "keep"]
    assert [(path, d is not None, tracked) for path, d, tracked in found] == sorted(changed + [("d1/new.txt", True, False), ("e/new.txt", True, False)])
    assert vouched == 4  # the files kept as they were, one in each folder
    assert [p.path for p in problems] == ["fifo"]


def test_what_the_caller_does_meanwhile_runs_once_while_the_workers_are_up(tmp_path: Path, workspace: Workspace) -> None:
    expected = scanned(whole(tmp_path, workspace))
    children = Path(f"/proc/self/task/{os.getpid()}/children")
    before = set(children.read_text().split())
    started: list[set[str]] = []

    def meanwhile() -> None:  # the worker processes of the ranges after the first are started by now
        started.append(set(children.read_text().split()) - before)

    rules = IgnoreRules(str(tmp_path))
    found = scanned(lambda on_problem, vouched: scan_stats(str(tmp_path), workspace.stage, rules, "", on_problem, vouched, rows_per_range=1, max_ranges=3, meanwhile=meanwhile))
    assert found == expected
    assert len(started) == 1 and len(started[0]) == 2  # once; two workers for three ranges


def test_a_worker_that_cannot_start_leaves_its_range_to_this_process(tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = scanned(whole(tmp_path, workspace))
    for interpreter in ("/nonexistent/python3", "/bin/false"):  # not there; there, but exits at once
        monkeypatch.setattr(sys, "executable", interpreter)
        assert scanned(in_ranges(tmp_path, workspace, 3)) == expected


def test_a_worker_killed_midway_is_an_error_not_a_short_answer(tmp_path: Path, workspace: Workspace) -> None:
    for k in range(3000):  # far more to send than a pipe holds: the worker is still sending when it is killed
        write(tmp_path / "many" / f"new{k:04d}.txt", "new\n")
    worker = RangeWorker.start(str(tmp_path), workspace.stage.path, "", "many/", None)
    try:
        stream = worker.results(None, lambda _n: None, lambda: iter(()))
        assert next(stream)[0] == "many/new0000.txt"
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(DatactlError, match="stopped before it finished"):
            list(stream)
    finally:
        worker.stop()


def test_an_error_in_a_workers_range_is_raised_here(tmp_path: Path, workspace: Workspace) -> None:
    worker = RangeWorker.start(str(tmp_path), workspace.stage.path + ".missing", "", "e/", None)
    try:
        with pytest.raises(DatactlError) as raised:
            list(worker.results(None, lambda _n: None, lambda: iter(())))
        assert "stage.db.missing" in str(raised.value)
    finally:
        worker.stop()
