"""Adding files in worker processes, one per core, when there are many.

Staging a file costs tens of microseconds of Python (its row, its entry, the
books of its chunks) whatever its size, and threads of one process take turns
at that. Once an add has stored ``OFFLOAD_AFTER`` files itself (a first add of
many files: before its walk, ``many_new_files``), it starts
workers (``python -m datactl.workspace.addworkers``) and, once they are up, its
walk hands them the rest in batches, to the least busy first. Each adds its
files as ``datactl add`` would: its own packs in the workspace's
store, its own transactions on the index and the stage, a stage row written
only once the objects it names are durable.

Two workers may meet the same new chunk. Each claims the new objects it is to
store in a table they share (``ClaimTable``), so one copy is stored; a row
naming an object the other worker claimed waits, in the worker's side file,
until that worker has flushed too, and the caller then writes it
(``IngestWorkers.finish``). The caller claims there, before the first batch
goes out, the objects it stored itself and has not flushed yet, so the workers
start at once rather than after its fsyncs. A worker that fails or dies fails the add; what
was staged stays staged, since it names durable objects only.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import IO, Iterator

from datactl.core.closing import Closing
from datactl.core.crashpoints import crash_point
from datactl.core.errors import DatactlError
from datactl.core.progress import ProgressReporter
from datactl.core.sqlite import database_error
from datactl.core.workerpool import MAX_WORKERS, ForwardedProgress, WorkerPool, serve_batches
from datactl.core.workerproc import run_as_worker
from datactl.format.layout import WorkspaceLayout
from datactl.store.chunker import Chunker
from datactl.workspace.add import AddBatch, AddResult
from datactl.workspace.disk import DiskState
from datactl.workspace.opening import database_present, open_store
from datactl.workspace.scan import DiskEntry
from datactl.workspace.stage import Stage, StageRow

BATCH_FILES = 250
BATCH_BYTES = 4 << 20
SIDE_ROWS = 20_000  # side rows moved to the stage per transaction

_CLAIMS_SCHEMA = "CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, owner INTEGER NOT NULL) WITHOUT ROWID;"
_IN_BATCH = 500
CALLER = -1  # the calling process's owner number in the claims (the workers are 0, 1, ...)


class ClaimTable(Closing):
    """Which writer stores each new object (``ObjectClaims``), in a SQLite file the workers of one add share.

    Writers take turns by a lock on a file beside it, which wakes a waiter the moment it is free (SQLite's own
    wait for a busy database sleeps in steps of milliseconds, and claims are short and many). The file lives only
    while the add runs, so it keeps no journal on disk and is never synced: a crash leaves nothing to recover.
    """

    def __init__(self, path: str, owner: int) -> None:
        self.path = path
        self.owner = owner
        self._turn = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        with self._turns():
            self._db.execute("PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(_CLAIMS_SCHEMA)

    def close(self) -> None:
        self._db.close()
        os.close(self._turn)

    @contextmanager
    def _turns(self) -> Iterator[None]:
        fcntl.flock(self._turn, fcntl.LOCK_EX)
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise database_error(exc, self.path, "it lives only while an add runs: run the add again") from exc
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    def claim(self, oids: list[str]) -> set[str]:
        mine: set[str] = set()
        with self._turns():
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO claims(id, owner) VALUES (?, ?)", ((oid, self.owner) for oid in sorted(oids)))
            for i in range(0, len(oids), _IN_BATCH):
                part = oids[i : i + _IN_BATCH]
                query = f"SELECT id FROM claims WHERE owner = ? AND id IN ({','.join('?' * len(part))})"
                mine.update(r[0] for r in self._db.execute(query, (self.owner, *part)))
            self._db.execute("COMMIT")
        return mine


def _remove_database(path: str) -> None:
    for name in (path, path + "-wal", path + "-shm", path + "-journal", path + ".lock"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


class IngestWorkers(Closing):
    """The caller's side: files handed out in batches to the least busy worker (``WorkerPool``), and what the
    workers report."""

    def __init__(self, pool: WorkerPool, stage: Stage, claims_path: str, side_paths: list[str]) -> None:
        self._pool = pool
        self._stage = stage
        self._claims_path = claims_path
        self._side_paths = side_paths
        self._batch: list[tuple[DiskEntry, StageRow | None]] = []
        self._batch_bytes = 0

    @classmethod
    def start(cls, root: str, stage: Stage, progress: ProgressReporter, workers: int | None = None) -> "IngestWorkers | None":
        """Workers for the workspace at ``root`` (one per usable core, unless ``workers``); None when there is
        one core, or no worker could be started (the caller then adds every file itself)."""
        tmp_dir = WorkspaceLayout(root).tmp_dir
        os.makedirs(tmp_dir, exist_ok=True)
        tag = f"{os.getpid()}-{threading.get_ident()}"
        claims_path = os.path.join(tmp_dir, f"add-claims-{tag}.db")
        side_paths = [os.path.join(tmp_dir, f"add-side-{tag}-{k}.db") for k in range(MAX_WORKERS)]
        pool = WorkerPool.start(__name__, lambda k: (root, claims_path, side_paths[k], k), progress, lambda _ack: None, _lost, workers)
        if pool is None:
            return None
        return cls(pool, stage, claims_path, side_paths[: pool.size])

    def ready(self) -> bool | None:
        return self._pool.ready()

    def leave_to_caller(self, oids: list[str]) -> None:
        with ClaimTable(self._claims_path, CALLER) as claims:
            claims.claim(oids)  # before any batch went out: every one is the caller's

    def add(self, d: DiskEntry, row: StageRow | None) -> None:
        self._batch.append((d, row))
        self._batch_bytes += d.st.st_size if d.st is not None else 0  # listed without its stat: counted as files only
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._send_batch()

    def _send_batch(self) -> None:
        if self._batch:
            self._pool.send(self._batch)
            self._batch, self._batch_bytes = [], 0

    def end_input(self) -> None:
        self._send_batch()
        self._pool.end_input()

    def finish(self, result: AddResult) -> None:
        self.end_input()
        done = self._pool.finish()
        result.workers = len(done)
        for added, modified, unchanged, bytes_read in done:
            result.added += added
            result.modified += modified
            result.unchanged += unchanged
            result.bytes_read += bytes_read
        # Every worker has flushed: the objects the rows in the side files name are durable now.
        for path in self._side_paths:
            if database_present(path):
                with Stage(path) as side:
                    rows: list[StageRow] = []
                    for row in side.iter_rows():
                        rows.append(row)
                        if len(rows) >= SIDE_ROWS:
                            self._stage.write(rows)
                            rows = []
                    self._stage.write(rows)

    def close(self) -> None:
        self._pool.close()
        for path in [self._claims_path, *self._side_paths]:
            _remove_database(path)


def _lost(exit_code: int) -> DatactlError:
    return DatactlError(
        f"a process adding files stopped before it finished (exit code {exit_code})",
        "run `datactl add` again: what was staged stays staged, and the rest is added then",
    )


class _AddJob:
    """A worker's part of an add (``BatchJob``): the files of each batch considered as ``datactl add`` would."""

    def __init__(self, batch: AddBatch) -> None:
        self._batch = batch

    def do(self, files: list[tuple[DiskEntry, StageRow | None]]) -> None:
        for d, row in files:
            self._batch.consider(d, row)
        crash_point("add-worker-batch")

    def finish(self) -> tuple[int, int, int, int]:
        self._batch.flush()
        result = self._batch.result
        return result.added, result.modified, result.unchanged, result.bytes_read


@contextmanager
def _open_job(greeting: tuple[str, str, str, int], progress: ForwardedProgress) -> Iterator[_AddJob]:
    root, claims_path, side_path, owner = greeting
    side: Stage | None = None

    def spill(rows: list[StageRow]) -> None:
        nonlocal side
        if side is None:
            side = Stage(side_path)
        side.write(rows)

    layout = WorkspaceLayout(root)
    try:
        # One worker per core: its threads would only take turns with it for the GIL (see ``FileIngest``).
        with ClaimTable(claims_path, owner) as claims, open_store(layout, announce=False, claims=claims, compress_here=True) as repo, Stage(layout.stage_db) as stage:
            disk = DiskState(root, stage)
            with AddBatch(repo, stage, Chunker(repo.config.chunker), disk, AddResult(), progress, spill=spill, read_small_here=True) as batch:
                crash_point("add-worker-start")
                crash_point(f"add-worker-start-{owner}")  # one worker only (``owner``: 0, 1, ...)
                try:
                    yield _AddJob(batch)
                except BaseException:
                    repo.abort()
                    raise
    finally:
        if side is not None:
            side.close()


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A worker's whole job: add the files of each batch read from ``stdin`` until told to finish; flush."""
    serve_batches(stdin, stdout, _open_job, "adding files")


if __name__ == "__main__":
    run_as_worker(_serve)
