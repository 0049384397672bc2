"""Adding files in worker processes, one per core, when there are many.

Staging a file costs tens of microseconds of Python (its row, its entry, the
books of its chunks) whatever its size, and threads of one process take turns
at that. Once an add has stored ``OFFLOAD_AFTER`` files itself, it starts
workers (``python -m datactl.workspace.addworkers``) and, once they are up, its
walk hands them the rest in batches, to the least busy first. Each adds its
files as ``datactl add`` would: its own packs in the workspace's
store, its own transactions on the index and the stage, a stage row written
only once the objects it names are durable.

Two workers may meet the same new chunk. Each claims the new objects it is to
store in a table they share (``ClaimTable``), so one copy is stored; a row
naming an object the other worker claimed waits, in the worker's side file,
until that worker has flushed too, and the caller then writes it
(``IngestWorkers.finish``). A worker that fails or dies fails the add; what
was staged stays staged, since it names durable objects only.
"""

from __future__ import annotations

import fcntl
import os
import queue
import sqlite3
import subprocess
import threading
from contextlib import contextmanager
from typing import IO, Iterator

from datactl.core.closing import Closing
from datactl.core.crashpoints import crash_point
from datactl.core.errors import DatactlError
from datactl.core.progress import ProgressReporter
from datactl.core.sqlite import database_error
from datactl.core.workerproc import portable_error, read_frames, run_as_worker, send_frame, spawn_module, stop, usable_cpus
from datactl.format.layout import WorkspaceLayout
from datactl.store.chunker import Chunker
from datactl.workspace.add import AddBatch, AddResult
from datactl.workspace.disk import DiskState
from datactl.workspace.opening import database_present, open_store
from datactl.workspace.scan import DiskEntry
from datactl.workspace.stage import Stage, StageRow

BATCH_FILES = 250
BATCH_BYTES = 4 << 20
OUTSTANDING = 4  # batches a worker holds at once: one being added, the next ones waiting in its pipe
MAX_WORKERS = 8
PROGRESS_BYTES = 4 << 20  # a worker reports bytes read once it has this many to report (and after each batch)
SIDE_ROWS = 20_000  # side rows moved to the stage per transaction

_CLAIMS_SCHEMA = "CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, owner INTEGER NOT NULL) WITHOUT ROWID;"
_IN_BATCH = 500


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
    """The caller's side: files handed out in batches to the least busy worker, and what the workers report."""

    def __init__(self, procs: list[subprocess.Popen], stage: Stage, progress: ProgressReporter, claims_path: str, side_paths: list[str]) -> None:
        self._procs = procs
        self._stage = stage
        self._progress = progress
        self._claims_path = claims_path
        self._side_paths = side_paths
        self._messages: queue.SimpleQueue[tuple[int, tuple]] = queue.SimpleQueue()
        self._outstanding = [0] * len(procs)
        self._ready: set[int] = set()
        self._done: dict[int, tuple[int, int, int, int]] = {}
        self._batch: list[tuple[DiskEntry, StageRow | None]] = []
        self._batch_bytes = 0
        # A thread per pipe and direction: a batch is bigger than a pipe holds, and a write waiting for one busy
        # worker to read must not keep the next batch from an idle one.
        self._outboxes: list[queue.SimpleQueue[tuple | None]] = [queue.SimpleQueue() for _ in procs]
        self._threads = [threading.Thread(target=self._read, args=(k, p.stdout), daemon=True, name="datactl-add-reader") for k, p in enumerate(procs)]
        self._threads += [threading.Thread(target=self._write, args=(k, p.stdin), daemon=True, name="datactl-add-writer") for k, p in enumerate(procs)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def start(cls, root: str, stage: Stage, progress: ProgressReporter, workers: int | None = None) -> "IngestWorkers | None":
        """Workers for the workspace at ``root`` (one per usable core, unless ``workers``); None when there is
        one core, or no worker could be started (the caller then adds every file itself)."""
        count = min(workers or usable_cpus(), MAX_WORKERS)
        if count < 2 and workers is None:
            return None
        tmp_dir = WorkspaceLayout(root).tmp_dir
        os.makedirs(tmp_dir, exist_ok=True)
        tag = f"{os.getpid()}-{threading.get_ident()}"
        claims_path = os.path.join(tmp_dir, f"add-claims-{tag}.db")
        side_paths = [os.path.join(tmp_dir, f"add-side-{tag}-{k}.db") for k in range(count)]
        procs: list[subprocess.Popen] = []
        for k in range(count):
            proc = spawn_module(__name__)
            try:
                if proc is None or proc.stdin is None:
                    raise OSError("no interpreter to run a worker")
                send_frame(proc.stdin, (root, claims_path, side_paths[k], k))
            except (OSError, ValueError):  # it could not start, or died at once
                for started in [*procs, proc]:
                    stop(started)
                return None
            procs.append(proc)
        return cls(procs, stage, progress, claims_path, side_paths)

    def _read(self, k: int, stream: IO[bytes]) -> None:
        for message in read_frames(stream):
            self._messages.put((k, message))
        self._messages.put((k, ("eof",)))

    def _write(self, k: int, stream: IO[bytes]) -> None:
        while (message := self._outboxes[k].get()) is not None:
            try:
                send_frame(stream, message)
            except (OSError, ValueError):  # it died: its reader hears the end of its stream
                return

    def ready(self) -> bool | None:
        while len(self._ready) < len(self._procs):
            try:
                k, message = self._messages.get(block=False)
            except queue.Empty:
                return None
            if message[0] == "eof" and k not in self._ready:
                return False
            self._handle(k, message)
        return True

    def add(self, d: DiskEntry, row: StageRow | None) -> None:
        self._batch.append((d, row))
        self._batch_bytes += d.st.st_size
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._send_batch()

    def _send_batch(self) -> None:
        if not self._batch:
            return
        while True:
            self._take_waiting_messages()
            k = min(range(len(self._procs)), key=self._outstanding.__getitem__)
            if self._outstanding[k] < OUTSTANDING:
                break
            self._handle(*self._messages.get())
        self._send(k, ("files", self._batch))
        self._outstanding[k] += 1
        self._batch, self._batch_bytes = [], 0

    def _send(self, k: int, message: tuple) -> None:
        self._outboxes[k].put(message)

    def _take_waiting_messages(self) -> None:
        while True:
            try:
                message = self._messages.get(block=False)
            except queue.Empty:
                return
            self._handle(*message)

    def _handle(self, k: int, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            self._ready.add(k)
        elif kind == "ack":
            self._outstanding[k] -= 1
        elif kind == "progress":
            self._progress.advance(message[1])
        elif kind == "done":
            self._done[k] = message[1]
        elif kind == "error":
            raise message[1]
        elif k not in self._done:  # "eof" before "done"
            code = self._procs[k].wait()
            raise DatactlError(
                f"a process adding files stopped before it finished (exit code {code})",
                "run `datactl add` again: what was staged stays staged, and the rest is added then",
            )

    def finish(self, result: AddResult) -> None:
        self._send_batch()
        for k in range(len(self._procs)):
            self._send(k, ("finish",))
        while len(self._done) < len(self._procs):
            self._handle(*self._messages.get())
        result.workers = len(self._procs)
        for added, modified, unchanged, bytes_read in self._done.values():
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
        for proc, outbox in zip(self._procs, self._outboxes):  # the threads see the ends of the pipes, then they are closed
            outbox.put(None)
            if proc.poll() is None:
                proc.kill()
        for thread in self._threads:
            thread.join()
        for proc in self._procs:
            stop(proc)
        for path in [self._claims_path, *self._side_paths]:
            _remove_database(path)


class _ForwardedProgress:
    """A worker's progress, sent to the caller in sums of at least PROGRESS_BYTES."""

    enabled = True

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._unsent = 0

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        self._unsent += amount
        if self._unsent >= PROGRESS_BYTES:
            self.send()

    def send(self) -> None:
        if self._unsent:
            send_frame(self._stream, ("progress", self._unsent))
            self._unsent = 0

    def stop(self) -> None:
        pass


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A worker's whole job: add the files of each batch read from ``stdin`` until told to finish; flush."""
    side: Stage | None = None

    def spill(rows: list[StageRow]) -> None:
        nonlocal side
        if side is None:
            side = Stage(side_path)
        side.write(rows)

    try:
        root, claims_path, side_path, owner = next(read_frames(stdin))
        progress = _ForwardedProgress(stdout)
        result = AddResult()
        layout = WorkspaceLayout(root)
        with ClaimTable(claims_path, owner) as claims, open_store(layout, announce=False, claims=claims) as repo, Stage(layout.stage_db) as stage:
            with AddBatch(repo, stage, Chunker(repo.config.chunker), DiskState(root, stage), result, progress, spill=spill) as batch:
                crash_point("add-worker-start")
                send_frame(stdout, ("ready",))
                try:
                    for message in read_frames(stdin):
                        if message[0] == "finish":
                            break
                        for d, row in message[1]:
                            batch.consider(d, row)
                        crash_point("add-worker-batch")
                        progress.send()
                        send_frame(stdout, ("ack",))
                    else:
                        return  # the caller is gone: stop, keeping what is staged
                    batch.flush()
                    progress.send()
                except BaseException:
                    repo.abort()
                    raise
        send_frame(stdout, ("done", (result.added, result.modified, result.unchanged, result.bytes_read)))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller, which raises it
        send_frame(stdout, ("error", portable_error(exc, "adding files")))
    finally:
        if side is not None:
            side.close()


if __name__ == "__main__":
    run_as_worker(_serve)
