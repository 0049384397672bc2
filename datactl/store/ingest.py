"""Storing many files at once: small files read, cut and hashed in parallel batches, big ones cut in parallel too.

A file of at most ``SMALL_FILE`` bytes is read whole, in one call, by a
worker thread, cut with the store's FastCDC parameters (a file no bigger
than the minimum chunk is one chunk, so the chunker is skipped), and hashed;
a bigger one is streamed through a chunker's bounded buffer by a worker of
its own, and handed over in pieces. The caller's thread stores each batch's
or piece's new chunks with one index query and one compression task
(``Repository.put_many``). Reading, cutting, hashing and compressing run
outside the GIL, so both cores work on bytes while the caller's thread keeps
the books. Results come back in the order files were given, through the
caller's ``done``.

A process that is one of several, one per core (an add's workers), reads its
small files in its own thread instead: there the cores are busy already, and
a reading thread would take turns with the caller for the GIL at every system
call (nine futex calls a file, measured).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Generic, TypeVar

from datactl.core.closing import Closing
from datactl.core.errors import DatactlError
from datactl.core.ids import object_id
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import ChunkerParams
from datactl.store.chunker import Chunker, new_fastcdc
from datactl.store.filedata import FileContent, ProgressFn, StreamChunks, chunk_stream, content_of, content_of_hex, read_error, store_file
from datactl.store.repository import Repository

SMALL_FILE = 1 << 20  # read whole; a bigger file is streamed, so memory stays bounded whatever its size
BATCH_FILES = 256
BATCH_BYTES = 1 << 20
PIECE_BYTES = 4 << 20  # a big file's chunks are handed over in pieces of about this many bytes
WAITING_BYTES = 32 << 20  # at most this many bytes of pieces wait to be stored
Token = TypeVar("Token")


@dataclass(frozen=True)
class StoredFile:
    """A file whose chunks are stored (durable after the repository's next flush)."""

    content: FileContent
    stat: os.stat_result  # lstat of the path after it was read: a caller compares it with the one before
    read_at: int  # time.time_ns() just before the read
    opened: os.stat_result | None = None  # a file given without its size: its stat when opened, before the read


@dataclass(frozen=True)
class _ReadFile:
    """A small file as a worker read it: its chunks (id, bytes) and whole-file digest."""

    chunks: list[tuple[str, bytes]]
    size: int
    digest: str
    stat: os.stat_result
    read_at: int
    opened: os.stat_result | None = None


@dataclass(frozen=True)
class _Big:
    """A file given without its size that turned out bigger than SMALL_FILE: it is streamed instead."""

    opened: os.stat_result


def _read_small(path: str, size: int | None, params: ChunkerParams) -> _ReadFile | _Big | DatactlError | None:
    """Read, cut and hash one small file listed as ``size`` bytes; None if it grew past SMALL_FILE since. Given no
    size, the file's own stat tells it as it is opened (``_Big`` if it is not small)."""
    read_at = time.time_ns()
    opened = None
    try:
        with open(path, "rb", buffering=0) as f:
            if size is None:
                opened = os.fstat(f.fileno())
                if opened.st_size > SMALL_FILE:
                    return _Big(opened)
                size = opened.st_size
            data = f.read(size + 1)  # exactly the listed size (a bigger buffer, shrunk, fragments the heap)
            if len(data) > size:  # it grew since it was listed
                data += f.read(SMALL_FILE + 1 - len(data))
            # The stat of the file read, not of whatever the path names by now (a copy put in its place with the
            # same size and mtime would be vouched for with these bytes); and no second lookup of the path.
            st = os.fstat(f.fileno())
    except OSError as exc:
        return read_error(path, exc)
    if len(data) > SMALL_FILE:
        return None
    if not data:
        chunks = []
    elif len(data) <= params.min_size:  # FastCDC never cuts below its minimum: one chunk, the file's own id
        oid = object_id(data)
        return _ReadFile([(oid, data)], len(data), oid, st, read_at, opened)
    else:
        cdc = new_fastcdc(params)
        view = memoryview(data)
        chunks = []
        for c in cdc.cut_buf(data):
            raw = bytes(view[c.offset : c.offset + c.length])
            chunks.append((object_id(raw), raw))
    return _ReadFile(chunks, len(data), object_id(data), st, read_at, opened)


def _read_batch(files: list[tuple[str, int]], params: ChunkerParams) -> list[_ReadFile | _Big | DatactlError | None]:
    return [_read_small(path, size, params) for path, size in files]


@dataclass(frozen=True)
class _Piece:
    """What a worker hands the caller's thread: chunks of a big file (``end`` set on its last piece), the
    results of a small-file batch, or a read error."""

    unit: int
    chunks: list[tuple[str, bytes | memoryview]] = field(default_factory=list)
    end: StreamChunks | None = None
    stat: os.stat_result | None = None
    small: list[_ReadFile | _Big | DatactlError | None] | None = None
    error: BaseException | None = None

    @property
    def size(self) -> int:
        return sum(len(raw) for _, raw in self.chunks)


@dataclass
class _Unit(Generic[Token]):
    """A small-file batch or one big file, in the order given; complete once its last piece is stored."""

    files: list[tuple[str, int | None, Token]]
    read_at: int = 0
    piece: _Piece | None = None  # the last one (a big file's end, a batch's results, or an error)
    opened: os.stat_result | None = None  # a big file given without its size: its stat when first opened


class _Cancelled(Exception):
    """The ingest is closing: a worker stops handing pieces over."""


class _Handover:
    """Pieces from the workers to the caller's thread, with at most ``budget`` bytes of chunks waiting."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.waiting = 0
        self.cancelled = False
        self.pieces: queue.SimpleQueue[_Piece] = queue.SimpleQueue()
        self.room = threading.Condition()

    def put(self, piece: _Piece) -> None:
        """Hand ``piece`` over once there is room (always, when nothing waits: a piece may exceed the budget)."""
        size = piece.size
        with self.room:
            while self.waiting and self.waiting + size > self.budget and not self.cancelled:
                self.room.wait()
            if self.cancelled:
                raise _Cancelled
            self.waiting += size
        self.pieces.put(piece)

    def take(self) -> _Piece:
        return self.pieces.get()

    def done_with(self, piece: _Piece) -> None:
        with self.room:
            self.waiting -= piece.size
            self.room.notify_all()

    def cancel(self) -> None:
        with self.room:
            self.cancelled = True
            self.room.notify_all()


class FileIngest(Closing, Generic[Token]):
    """Stores files given one by one; calls ``done(token, stored)`` for each, in order, once its chunks are put.

    Small files go to the workers in batches; a big file is streamed by a
    worker of its own, which hands its chunks over in pieces of about
    ``PIECE_BYTES``: two big files are cut on two cores at once, and the
    caller's thread stores the pieces of all of them as they come (one index
    query per piece), then reports files in the order given. At most
    ``WAITING_BYTES`` of chunks wait for it, and a few small batches. ``drain``
    waits for every file given so far. Errors reading a file (permission, I/O)
    are raised, as ``DatactlError``, from the call that reaches that file.
    """

    def __init__(
        self,
        repo: Repository,
        chunker: Chunker,
        done: Callable[[Token, StoredFile], None],
        progress: ProgressFn | None = None,
        workers: int | None = None,
        read_small_here: bool = False,
    ) -> None:
        """``read_small_here``: read small files in the calling thread (see the module's notes); big ones are still
        cut by workers."""
        self.repo = repo
        self._read_small_here = read_small_here
        self.chunker = chunker
        self.done = done
        self.progress = progress
        self._workers = workers or os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="datactl-read")
        self._handover = _Handover(WAITING_BYTES)
        self._batch: list[tuple[str, int, Token]] = []
        self._batch_bytes = 0
        self._units: dict[int, _Unit[Token]] = {}  # not yet reported, by number (ascending: the order given)
        self._next_unit = 0
        self._first_unit = 0

    def add(self, path: str, size: int | None, token: Token) -> None:
        """Store the file at ``path`` (``size`` as listed decides how it is read). ``size`` None (with
        ``read_small_here`` only): the file was listed without it, and the stat of the file opened decides; the
        ``StoredFile`` then carries that stat (``opened``)."""
        if size is not None and size > SMALL_FILE:
            self._submit()  # the batch so far comes first
            self._stream_unit(path, size, token)
            return
        assert size is not None or self.takes_unsized, "a file's size is needed to hand it to a reading thread"
        self._batch.append((path, size, token))
        self._batch_bytes += size or 0
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._submit()

    @property
    def takes_unsized(self) -> bool:
        """Whether ``add`` takes a file without its size (it reads small files in the calling thread, where the
        stat of the file opened can decide)."""
        return self._read_small_here

    def _stream_unit(self, path: str, size: int | None, token: Token, opened: os.stat_result | None = None) -> None:
        unit = self._start(_Unit([(path, size, token)], read_at=time.time_ns(), opened=opened))
        self._pool.submit(self._stream_worker, unit, path, self.chunker.params)

    def drain(self) -> None:
        """Wait until every file given so far is stored and reported."""
        self._submit()
        while self._units:
            self._store_next_piece()

    def close(self) -> None:
        self._handover.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._units.clear()

    def _start(self, unit: _Unit[Token]) -> int:
        number = self._next_unit
        self._units[number] = unit
        self._next_unit += 1
        while len(self._units) > 2 * self._workers:  # bounded: the workers' pieces wait for this thread
            self._store_next_piece()
        return number

    def _submit(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if not self._read_small_here:
            number = self._start(_Unit(batch))
            self._pool.submit(self._batch_worker, number, [(path, size) for path, size, _ in batch], self.chunker.params)
            return
        # Read here, one by one. A file given without its size may turn out big: the files read before it make a
        # unit, it gets one of its own (cut by a thread, as any big file), and the rest another; and what is read
        # is stored every BATCH_BYTES, the sizes not being known when the batch was made.
        files: list[tuple[str, int | None, Token]] = []
        results: list[_ReadFile | _Big | DatactlError | None] = []
        held = 0
        for path, size, token in batch:
            result = _read_small(path, size, self.chunker.params)
            if isinstance(result, _Big):
                self._store_read(files, results)
                files, results, held = [], [], 0
                self._stream_unit(path, None, token, result.opened)
                continue
            files.append((path, size, token))
            results.append(result)
            held += result.size if isinstance(result, _ReadFile) else 0
            if held >= BATCH_BYTES:
                self._store_read(files, results)
                files, results, held = [], [], 0
        self._store_read(files, results)

    def _store_read(self, files: list[tuple[str, int | None, Token]], results: list[_ReadFile | _Big | DatactlError | None]) -> None:
        """Store small files read in this thread, as one unit."""
        if files:
            self._store_piece(_Piece(self._start(_Unit(files)), small=results))

    def _batch_worker(self, unit: int, files: list[tuple[str, int]], params: ChunkerParams) -> None:
        self._hand_over(unit, lambda: _Piece(unit, small=_read_batch(files, params)))

    def _stream_worker(self, unit: int, path: str, params: ChunkerParams) -> None:
        """Cut, hash and hand over a big file in pieces (its own chunker: a chunker is not thread-safe)."""
        piece: list[tuple[str, bytes | memoryview]] = []
        held = 0

        def keep(oid: str, raw: memoryview) -> None:
            nonlocal piece, held
            piece.append((oid, raw))
            held += len(raw)
            if held >= PIECE_BYTES:
                self._handover.put(_Piece(unit, piece))
                piece, held = [], 0

        def last_piece() -> _Piece:
            try:
                with open(path, "rb", buffering=0) as f:
                    read = chunk_stream(Chunker(params), f, keep)
                    st = os.fstat(f.fileno())  # the file read (see _read_small)
                return _Piece(unit, piece, end=read, stat=st)
            except OSError as exc:
                return _Piece(unit, error=read_error(path, exc))

        self._hand_over(unit, last_piece)

    def _hand_over(self, unit: int, work: Callable[[], _Piece]) -> None:
        """Run a worker's ``work`` and hand its last piece over; any failure reaches the caller's thread as one."""
        try:
            try:
                piece = work()
            except _Cancelled:
                raise
            except BaseException as exc:  # noqa: BLE001 - the caller's thread waits for this unit: it must hear of it
                piece = _Piece(unit, error=exc)
            self._handover.put(piece)
        except _Cancelled:
            pass

    def _store_next_piece(self) -> None:
        """Store the next piece any worker handed over."""
        piece = self._handover.take()
        try:
            self._put_chunks(piece)
        finally:
            self._handover.done_with(piece)
        self._stored(piece)

    def _store_piece(self, piece: _Piece) -> None:
        """Store a piece made in this thread."""
        self._put_chunks(piece)
        self._stored(piece)

    def _put_chunks(self, piece: _Piece) -> None:
        if piece.chunks:
            self.repo.put_many(ObjectType.CHUNK, piece.chunks)
        if piece.small is not None:
            self.repo.put_many(ObjectType.CHUNK, [chunk for r in piece.small if isinstance(r, _ReadFile) for chunk in r.chunks])

    def _stored(self, piece: _Piece) -> None:
        """Note ``piece`` as stored; report the files of every unit complete by now, in order."""
        if self.progress and piece.chunks:
            self.progress(piece.size)
        if piece.end is not None or piece.small is not None or piece.error is not None:
            self._units[piece.unit].piece = replace(piece, chunks=[])  # stored: only the file's description is kept
        while self._first_unit in self._units and self._units[self._first_unit].piece is not None:
            self._report(self._units.pop(self._first_unit))
            self._first_unit += 1

    def _report(self, unit: _Unit[Token]) -> None:
        piece = unit.piece
        assert piece is not None
        if piece.error is not None:
            raise piece.error
        if piece.end is not None:
            assert piece.stat is not None
            (_path, _size, token), read = unit.files[0], piece.end
            self.done(token, StoredFile(content_of(self.repo, read.size, read.digest, read.ids), piece.stat, unit.read_at, unit.opened))
            return
        for (path, _, token), result in zip(unit.files, piece.small or []):
            if isinstance(result, DatactlError):
                raise result
            assert not isinstance(result, _Big), "a big file is given a unit of its own (_submit)"
            if result is None:  # grew while listed: stream it here
                self._stream(path, token)
                continue
            content = content_of_hex(self.repo, result.size, result.digest, tuple(oid for oid, _ in result.chunks))
            if self.progress:
                self.progress(result.size)
            self.done(token, StoredFile(content, result.stat, result.read_at, result.opened))

    def _stream(self, path: str, token: Token) -> None:
        read_at = time.time_ns()
        content = store_file(self.repo, self.chunker, path, self.progress)
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise read_error(path, exc) from None
        self.done(token, StoredFile(content, st, read_at))
