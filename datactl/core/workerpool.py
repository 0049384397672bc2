"""A pool of worker processes fed batches of one command's work, the least busy first.

The caller starts one worker per core (``datactl.core.workerproc``), greets
each with what it needs to know, then hands out batches, from the moment the
first is up, to the workers that are up (an interpreter and its imports take a
tenth of a second, and on a busy machine the second may come up much later
than the first). A worker says once that it is ready, acknowledges each batch
when it is done with it (with what the caller needs back), forwards its
progress, and at the end says what it did. A worker that fails sends its
error, which the caller raises; one that dies midway is an error too, never a
short answer. One that dies before it is up was given nothing: the others do
the work.

Both ends are written here: ``WorkerPool`` for the caller, ``serve_batches``
for the worker's ``__main__``, so every kind of worker speaks one protocol.
"""

from __future__ import annotations

import queue
import subprocess
import threading
from typing import IO, Any, Callable, ContextManager, Protocol

from datactl.core.closing import Closing
from datactl.core.errors import DatactlError
from datactl.core.progress import ProgressReporter
from datactl.core.workerproc import portable_error, read_frames, send_frame, spawn_module, stop, usable_cpus

OUTSTANDING = 4  # batches a worker holds at once: one being done, the next ones waiting in its pipe
MAX_WORKERS = 8
PROGRESS_BYTES = 4 << 20  # a worker reports progress once it has this much to report (and after each batch)


class WorkerPool(Closing):
    """The caller's side: batches to the least busy worker, and what the workers send back.

    A thread per pipe and direction: a batch may be bigger than a pipe holds,
    and a write waiting for one busy worker to read must not keep the next
    batch from an idle one.
    """

    def __init__(
        self, procs: list[subprocess.Popen], progress: ProgressReporter, on_ack: Callable[[Any], None], lost: Callable[[int], DatactlError]
    ) -> None:
        self._procs = procs
        self._progress = progress
        self._on_ack = on_ack
        self._lost = lost
        self._messages: queue.SimpleQueue[tuple[int, tuple]] = queue.SimpleQueue()
        self._outstanding = [0] * len(procs)
        self._ready: set[int] = set()
        self._gone: set[int] = set()  # died before they were up: given nothing, owing nothing
        self._done: dict[int, Any] = {}
        self._outboxes: list[queue.SimpleQueue[tuple | None]] = [queue.SimpleQueue() for _ in procs]
        self._input_ended = False
        self._threads = [threading.Thread(target=self._read, args=(k, p.stdout), daemon=True, name="datactl-worker-reader") for k, p in enumerate(procs)]
        self._threads += [threading.Thread(target=self._write, args=(k, p.stdin), daemon=True, name="datactl-worker-writer") for k, p in enumerate(procs)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def start(
        cls, module: str, greetings: Callable[[int], Any], progress: ProgressReporter, on_ack: Callable[[Any], None],
        lost: Callable[[int], DatactlError], workers: int | None = None,
    ) -> "WorkerPool | None":
        """Workers running ``module`` (one per usable core, unless ``workers``), the k-th greeted with
        ``greetings(k)``. None when there is one core, or a worker could not be started: the caller then
        does the work itself. ``lost(exit_code)`` is the error for a worker that died before it finished."""
        count = min(workers or usable_cpus(), MAX_WORKERS)
        if count < 2 and workers is None:
            return None
        procs: list[subprocess.Popen] = []
        for k in range(count):
            proc = spawn_module(module)
            try:
                if proc is None or proc.stdin is None:
                    raise OSError("no interpreter to run a worker")
                send_frame(proc.stdin, greetings(k))
            except (OSError, ValueError):  # it could not start, or died at once
                for started in [*procs, proc]:
                    stop(started)
                return None
            procs.append(proc)
        return cls(procs, progress, on_ack, lost)

    @property
    def size(self) -> int:
        return len(self._procs)

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
        """True once a worker is up (batches may go out); None while none is; False if every one died first."""
        self.take_waiting()
        if self._ready:
            return True
        return False if self._all_gone() else None

    def _all_gone(self) -> bool:
        return len(self._gone) == len(self._procs)

    def send(self, batch: Any) -> None:
        """Hand ``batch`` to the worker that is up with the fewest outstanding, waiting (and handling what comes
        back) while none is up, or every one has ``OUTSTANDING``."""
        while not self._ready:
            if self._all_gone():
                raise self._lost(self._procs[0].wait())
            self._handle(*self._messages.get())
        while True:
            self.take_waiting()
            k = min(self._ready, key=self._outstanding.__getitem__)
            if self._outstanding[k] < OUTSTANDING:
                break
            self._handle(*self._messages.get())
        self._outboxes[k].put(("batch", batch))
        self._outstanding[k] += 1

    def take_waiting(self) -> None:
        """Handle what the workers have sent so far, without waiting."""
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
            self._on_ack(message[1])
        elif kind == "progress":
            self._progress.advance(message[1])
        elif kind == "done":
            self._done[k] = message[1]
        elif kind == "error":
            raise message[1]
        elif k not in self._ready:  # "eof" before it was up: it was given nothing
            self._gone.add(k)
        elif k not in self._done:  # "eof" before "done"
            raise self._lost(self._procs[k].wait())

    def end_input(self) -> None:
        """Tell every worker there is no more: each finishes its work (flushes) once done with its batches."""
        if not self._input_ended:
            self._input_ended = True
            for outbox in self._outboxes:
                outbox.put(("finish",))

    def finish(self) -> list[Any]:
        """``end_input``; wait until each worker has acknowledged its batches and said it is done (one still coming
        up says so at once); return what each said, in worker order, without those that died before they were up."""
        self.end_input()
        while len(self._done) + len(self._gone) < len(self._procs):
            self._handle(*self._messages.get())
        return [self._done[k] for k in sorted(self._done)]

    def close(self) -> None:
        for proc, outbox in zip(self._procs, self._outboxes):  # the threads see the ends of the pipes, then they are closed
            outbox.put(None)
            if proc.poll() is None:
                proc.kill()
        for thread in self._threads:
            thread.join()
        for proc in self._procs:
            stop(proc)


class ForwardedProgress:
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


class BatchJob(Protocol):
    """What a worker does: each batch, then the end of the work."""

    def do(self, batch: Any) -> Any:
        """Do one batch; return what the caller gets with its acknowledgement."""
        ...

    def finish(self) -> Any:
        """Finish the work (flush what is pending); return what the caller gets as this worker's result."""
        ...


def serve_batches(stdin: IO[bytes], stdout: IO[bytes], open_job: Callable[[Any, ForwardedProgress], ContextManager[BatchJob]], doing: str) -> None:
    """A worker's whole life: greeted, ``open_job``, each batch until told to finish, the job's result.

    Every failure goes back to the caller, which raises it (``doing`` names the
    work for an error that cannot travel). A caller that goes away stops the
    job where it is, without finishing it.
    """
    try:
        greeting = next(read_frames(stdin))
        progress = ForwardedProgress(stdout)
        with open_job(greeting, progress) as job:
            send_frame(stdout, ("ready",))
            for message in read_frames(stdin):
                if message[0] == "finish":
                    break
                answer = job.do(message[1])
                progress.send()
                send_frame(stdout, ("ack", answer))
            else:
                return
            result = job.finish()
            progress.send()
        send_frame(stdout, ("done", result))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller, which raises it
        send_frame(stdout, ("error", portable_error(exc, doing)))
