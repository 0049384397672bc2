"""Writing a fresh checkout's files in worker processes, one per core.

A clone of many small files spends its time creating them: tens of
microseconds of the kernel's time per file, plus the Python around it, on
one core. Once ``apply_fresh`` has written ``OFFLOAD_AFTER`` files itself it
starts workers (``python -m datactl.workspace.checkoutworkers``) and hands
them the rest of the tree's walk in batches, the least busy first
(``WorkerPool``). Each writes its files as the checkout would
(``write_files``: verified, each at its own name, or under a temporary name
tagged with the worker's number where something is there already) and
answers each batch with the files' stats; the caller keeps each batch's
entries until then and saves the rows.

A worker that fails or dies fails the checkout; what was placed stays, and
checking the version out again finishes the job.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import IO, Callable, Iterator

from datactl.core.closing import Closing
from datactl.core.crashpoints import crash_point
from datactl.core.errors import DatactlError
from datactl.core.progress import ProgressReporter
from datactl.core.workerpool import ForwardedProgress, WorkerPool, serve_batches
from datactl.core.workerproc import run_as_worker
from datactl.format.layout import WorkspaceLayout
from datactl.format.objects import FILE, TreeEntry
from datactl.store.repository import Repository
from datactl.workspace.fresh import write_files
from datactl.workspace.opening import open_store
from datactl.workspace.stage import StageRow, StatInfo, head_info

BATCH_FILES = 250
BATCH_BYTES = 4 << 20

Batch = tuple[int, list[tuple[str, TreeEntry]]]  # (its number, the files to write, in path order)


class CheckoutWorkers(Closing):
    """The caller's side (``FileWriters``): files handed out in numbered batches, rows made from the answers."""

    def __init__(self, pool: WorkerPool, pending: dict[int, list[tuple[str, TreeEntry]]]) -> None:
        self._pool = pool
        self._pending = pending
        self._batch: list[tuple[str, TreeEntry]] = []
        self._batch_bytes = 0
        self._numbered = 0

    @classmethod
    def start(cls, root: str, progress: ProgressReporter, record: Callable[[StageRow], None], workers: int | None = None) -> "CheckoutWorkers | None":
        """Workers writing into the workspace at ``root`` (one per usable core, unless ``workers``), each written
        file's row given to ``record``; None when there is one core or no worker could start."""
        pending: dict[int, list[tuple[str, TreeEntry]]] = {}

        def written(answer: tuple[int, list[StatInfo]]) -> None:
            number, stats = answer
            for (path, entry), st in zip(pending.pop(number), stats, strict=True):
                record(StageRow(path, entry, st, head_info(entry)))

        pool = WorkerPool.start(__name__, lambda k: (root, f"-{k + 1}w"), progress, written, _lost, workers)
        return cls(pool, pending) if pool is not None else None

    def ready(self) -> bool | None:
        return self._pool.ready()

    def write(self, path: str, entry: TreeEntry) -> None:
        self._batch.append((path, entry))
        self._batch_bytes += entry.size if entry.kind == FILE else 0
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._send_batch()

    def _send_batch(self) -> None:
        if self._batch:
            self._numbered += 1
            self._pending[self._numbered] = self._batch
            self._pool.send((self._numbered, self._batch))
            self._batch, self._batch_bytes = [], 0

    def finish(self) -> int:
        self._send_batch()
        return len(self._pool.finish())

    def close(self) -> None:
        self._pool.close()


def _lost(exit_code: int) -> DatactlError:
    return DatactlError(
        f"a process writing files stopped before it finished (exit code {exit_code})",
        "check out the version again: the files already written are kept, and the rest are written then",
    )


class _WriteJob:
    """A worker's part of a fresh checkout (``BatchJob``)."""

    def __init__(self, repo: Repository, root: str, tag: str, progress: ForwardedProgress) -> None:
        self._repo = repo
        self._root = root
        self._tag = tag
        self._progress = progress
        self._folders: set[str] = set()

    def do(self, batch: Batch) -> tuple[int, list[StatInfo]]:
        number, files = batch
        rows = write_files(self._repo, self._root, iter(files), self._progress, self._folders, tag=self._tag)
        stats = [row.stat for row in rows if row.stat is not None]
        crash_point("checkout-worker-batch")
        return number, stats

    def finish(self) -> None:
        return None


@contextmanager
def _open_job(greeting: tuple[str, str], progress: ForwardedProgress) -> Iterator[_WriteJob]:
    root, tag = greeting
    with open_store(WorkspaceLayout(root), announce=False) as repo:
        crash_point("checkout-worker-start")
        yield _WriteJob(repo, root, tag, progress)


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A worker's whole job: write the files of each batch read from ``stdin`` until told to finish."""
    serve_batches(stdin, stdout, _open_job, "writing files")


if __name__ == "__main__":
    run_as_worker(_serve)
