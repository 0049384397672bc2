"""The disk against the stat cache, range by range, over several processes.

Finding what changed in a workspace means a stat of every file, compared with
its row of the stage: Python work for each file, on one core. A large stage is
cut into ranges of path order (``Stage.split_points``); this process scans the
first range while a worker process for each other range scans its own and
streams back, in path order, only what the stat cache did not vouch for. The
caller reads the ranges one after another, so what it sees is the one ordered
stream a scan of the whole would give, and a worker it has not reached yet
waits on a full pipe rather than piling up results in memory.

A worker is ``python -m datactl.workspace.statscan`` (``datactl.core.workerproc``),
told its range on stdin. A worker that cannot start is replaced by a scan of its
range here.
"""

from __future__ import annotations

import pickle
import subprocess
from typing import IO, Callable, Iterator

from datactl.core.errors import DatactlError
from datactl.core.workerproc import portable_error, read_frames, run_as_worker, spawn_module, stop, usable_cpus
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.scan import DiskEntry, ScanProblem, walk
from datactl.workspace.stage import FolderRows, Stage, read_stats

# Below this many rows a range is not worth a process (about 0.2 s of scanning against about 0.1 s to start one).
ROWS_PER_RANGE = 100_000
MAX_RANGES = 4
FRAME_RECORDS = 1024  # records a worker sends at a time

Found = tuple[str, DiskEntry | None, bool]  # (path, the file on disk or None, whether the stage has a row for it)


def scan_range(
    root: str,
    stage_path: str,
    rules: IgnoreRules,
    start: str,
    lo: str | None,
    hi: str | None,
    on_problem: Callable[[ScanProblem], None] | None,
    vouched: Callable[[int], None],
    stat_new_folders: bool = True,
) -> Iterator[Found]:
    """What the stat cache does not vouch for under ``start`` in [``lo``, ``hi``), in path order: changed, new and
    missing files; ``vouched`` is told how many files it vouched for. Without ``stat_new_folders``, the regular
    files of a folder the stage has no row under come without their stat (``DiskEntry.st`` None): every one is
    new, and an add takes its stat from the file it reads rather than from a look here first.

    The walk and the rows are merged here rather than by ``merge_by_path``: this loop runs once per file of the
    workspace, and a vouched file costs one tuple compared in C, with no object made for it.
    """
    rows = read_stats(stage_path, start, lo, hi)
    row = next(rows, None)
    count = 0
    folder_rows = None if stat_new_folders else FolderRows(stage_path)
    try:
        for path, kind, st in walk(root, rules, start, on_problem, lo, hi, folder_rows.any_under if folder_rows is not None else None):
            if row is None or row[0] != path:  # not the common case: a path on one side only
                while row is not None and row[0] < path:
                    yield row[0], None, True
                    row = next(rows, None)
                if row is None or row[0] != path:
                    yield path, DiskEntry(path, kind, st), False
                    continue
            # The row's stat columns (StatInfo.matches on them), with st_trusted = 1. A file listed without its
            # stat (its folder had no rows when listed, one came since) is looked at as changed.
            if st is not None and row == (path, kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode, 1):
                count += 1
            else:
                yield path, DiskEntry(path, kind, st), True
            row = next(rows, None)
    finally:
        if folder_rows is not None:
            folder_rows.close()
    while row is not None:
        yield row[0], None, True
        row = next(rows, None)
    vouched(count)


def scan_stats(
    root: str,
    stage: Stage,
    rules: IgnoreRules,
    start: str = "",
    on_problem: Callable[[ScanProblem], None] | None = None,
    vouched: Callable[[int], None] = lambda _n: None,
    rows_per_range: int = ROWS_PER_RANGE,
    max_ranges: int | None = None,
    meanwhile: Callable[[], None] = lambda: None,
    stat_new_folders: bool = True,
) -> Iterator[Found]:
    """``scan_range`` of the whole of ``start``, its ranges after the first scanned by worker processes when the
    stage is large. ``rules`` must be the workspace's own (``IgnoreRules(root)``): a worker reads them again.
    ``meanwhile`` is run once the workers are started, before this process scans: the caller's own work that
    would otherwise keep them from starting (a worker takes about 0.1 s to be up)."""
    cuts = stage.split_points(start, rows_per_range, max_ranges or min(usable_cpus(), MAX_RANGES))
    bounds = list(zip([None, *cuts], [*cuts, None]))
    workers = [RangeWorker.start(root, stage.path, start, lo, hi, stat_new_folders) for lo, hi in bounds[1:]]
    try:
        meanwhile()
        for (lo, hi), worker in zip(bounds, [None, *workers]):
            def scan_here(lo: str | None = lo, hi: str | None = hi) -> Iterator[Found]:
                return scan_range(root, stage.path, rules, start, lo, hi, on_problem, vouched, stat_new_folders)

            if worker is not None and worker.started:
                yield from worker.results(on_problem, vouched, scan_here)
            else:
                yield from scan_here()
    finally:
        for worker in workers:
            worker.stop()


class RangeWorker:
    """A worker process scanning one range, and the stream of what it found."""

    def __init__(self, proc: subprocess.Popen | None) -> None:
        self._proc = proc

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @classmethod
    def start(cls, root: str, stage_path: str, start: str, lo: str | None, hi: str | None, stat_new_folders: bool = True) -> "RangeWorker":
        proc = spawn_module(__name__)
        if proc is not None:
            try:
                assert proc.stdin is not None
                pickle.dump((root, stage_path, start, lo, hi, stat_new_folders), proc.stdin)
                proc.stdin.close()
            except (OSError, ValueError):  # it died at once
                stop(proc)
                proc = None
        return cls(proc)

    def results(
        self,
        on_problem: Callable[[ScanProblem], None] | None,
        vouched: Callable[[int], None],
        scan_here: Callable[[], Iterator[Found]],
    ) -> Iterator[Found]:
        """The worker's findings in path order; its range scanned here instead if it died before it sent any."""
        assert self._proc is not None and self._proc.stdout is not None
        finished = received = False
        for frame in read_frames(self._proc.stdout):
            received = True
            for record in frame:
                tag = record[0]
                if tag == "found":
                    yield record[1]
                elif tag == "problem":
                    if on_problem is not None:
                        on_problem(record[1])
                elif tag == "vouched":
                    vouched(record[1])
                    finished = True
                else:  # "error": what the scan raised there, raised here as if the scan had run here
                    raise record[1]
        if finished:
            return
        code = self._proc.wait()
        if not received:
            yield from scan_here()
            return
        raise DatactlError(f"a worker scanning the workspace stopped before it finished (exit code {code})", "run the command again")

    def stop(self) -> None:
        stop(self._proc)


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A worker's whole job: scan the range read from ``stdin``, send frames of records to ``stdout``."""
    frame: list[tuple] = []

    def send(record: tuple) -> None:
        frame.append(record)
        if len(frame) >= FRAME_RECORDS:
            pickle.dump(frame, stdout, protocol=pickle.HIGHEST_PROTOCOL)
            frame.clear()

    try:
        root, stage_path, start, lo, hi, stat_new_folders = pickle.load(stdin)
        for found in scan_range(root, stage_path, IgnoreRules(root), start, lo, hi, lambda p: send(("problem", p)), lambda n: send(("vouched", n)), stat_new_folders):
            send(("found", found))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller, which raises it
        send(("error", portable_error(exc, "scanning the workspace")))
    pickle.dump(frame, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()


if __name__ == "__main__":
    run_as_worker(_serve)
