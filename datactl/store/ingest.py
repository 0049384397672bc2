"""Storing many files at once: small files read, cut and hashed in parallel batches, big ones streamed.

A file of at most ``SMALL_FILE`` bytes is read whole, in one call, by a
worker thread, cut with the store's FastCDC parameters (a file no bigger
than the minimum chunk is one chunk, so the chunker is skipped), and hashed;
the caller's thread then stores a whole batch's new chunks with one index
query and one compression task (``Repository.put_many``). Reading, cutting,
hashing and compressing run outside the GIL, so both cores work on bytes
while the caller's thread keeps the books. Bigger files are streamed through
the chunker's bounded buffer as before. Results come back in the order files
were given, through the caller's ``done``.
"""

from __future__ import annotations

import collections
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from pyfastcdc import FastCDC

from datactl.core.closing import Closing
from datactl.core.errors import DatactlError
from datactl.core.ids import object_id
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import ChunkerParams
from datactl.store.chunker import Chunker
from datactl.store.filedata import FileContent, ProgressFn, content_of, read_error, store_file
from datactl.store.repository import Repository

SMALL_FILE = 1 << 20  # read whole; a bigger file is streamed, so memory stays bounded whatever its size
BATCH_FILES = 256
BATCH_BYTES = 1 << 20
Token = TypeVar("Token")


@dataclass(frozen=True)
class StoredFile:
    """A file whose chunks are stored (durable after the repository's next flush)."""

    content: FileContent
    stat: os.stat_result  # lstat of the path after it was read: a caller compares it with the one before
    read_at: int  # time.time_ns() just before the read


@dataclass(frozen=True)
class _ReadFile:
    """A small file as a worker read it: its chunks (id, bytes) and whole-file digest."""

    chunks: list[tuple[str, bytes]]
    digest: str
    stat: os.stat_result
    read_at: int


def _read_small(path: str, size: int, params: ChunkerParams) -> _ReadFile | DatactlError | None:
    """Read, cut and hash one small file listed as ``size`` bytes; None if it grew past SMALL_FILE since."""
    read_at = time.time_ns()
    try:
        with open(path, "rb", buffering=0) as f:
            data = f.read(size + 1)  # exactly the listed size (a bigger buffer, shrunk, fragments the heap)
            if len(data) > size:  # it grew since it was listed
                data += f.read(SMALL_FILE + 1 - len(data))
        st = os.lstat(path)
    except OSError as exc:
        return read_error(path, exc)
    if len(data) > SMALL_FILE:
        return None
    if not data:
        chunks = []
    elif len(data) <= params.min_size:  # FastCDC never cuts below its minimum
        chunks = [(object_id(data), data)]
    else:
        cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size, normalized_chunking=params.normalized_chunking, seed=params.seed)
        view = memoryview(data)
        chunks = []
        for c in cdc.cut_buf(data):
            raw = bytes(view[c.offset : c.offset + c.length])
            chunks.append((object_id(raw), raw))
    return _ReadFile(chunks, object_id(data), st, read_at)


def _read_batch(files: list[tuple[str, int]], params: ChunkerParams) -> list[_ReadFile | DatactlError | None]:
    return [_read_small(path, size, params) for path, size in files]


class FileIngest(Closing, Generic[Token]):
    """Stores files given one by one; calls ``done(token, stored)`` for each, in order, once its chunks are put.

    ``drain`` waits for every file given so far. Errors reading a file
    (permission, I/O) are raised, as ``DatactlError``, from the call that
    finds them.
    """

    def __init__(
        self,
        repo: Repository,
        chunker: Chunker,
        done: Callable[[Token, StoredFile], None],
        progress: ProgressFn | None = None,
        workers: int | None = None,
    ) -> None:
        self.repo = repo
        self.chunker = chunker
        self.done = done
        self.progress = progress
        self._workers = workers or os.cpu_count() or 2
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="datactl-read")
        self._batch: list[tuple[str, int, Token]] = []
        self._batch_bytes = 0
        self._inflight: collections.deque[tuple[list[tuple[str, int, Token]], Future]] = collections.deque()

    def add(self, path: str, size: int, token: Token) -> None:
        """Store the file at ``path`` (``size`` as listed decides how it is read)."""
        if size > SMALL_FILE:
            self.drain()  # keep ``done`` in the order files were given
            self._stream(path, token)
            return
        self._batch.append((path, size, token))
        self._batch_bytes += size
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._submit()

    def drain(self) -> None:
        """Wait until every file given so far is stored and reported."""
        self._submit()
        while self._inflight:
            self._collect()

    def close(self) -> None:
        for _, fut in self._inflight:
            fut.cancel()
        self._inflight.clear()
        self._pool.shutdown(wait=True)

    def _submit(self) -> None:
        if not self._batch:
            return
        files = [(path, size) for path, size, _ in self._batch]
        self._inflight.append((self._batch, self._pool.submit(_read_batch, files, self.chunker.params)))
        self._batch, self._batch_bytes = [], 0
        while len(self._inflight) > 2 * self._workers:  # bounded: a few batches of at most BATCH_BYTES each
            self._collect()

    def _collect(self) -> None:
        batch, fut = self._inflight.popleft()
        results = fut.result()
        objects = [chunk for r in results if isinstance(r, _ReadFile) for chunk in r.chunks]
        self.repo.put_many(ObjectType.CHUNK, objects)
        for (path, _, token), read in zip(batch, results):
            if isinstance(read, DatactlError):
                raise read
            if read is None:  # grew while listed: stream it
                self._stream(path, token)
                continue
            ids = b"".join(bytes.fromhex(oid) for oid, _ in read.chunks)
            size = sum(len(raw) for _, raw in read.chunks)
            content = content_of(self.repo, size, read.digest, ids)
            if self.progress:
                self.progress(size)
            self.done(token, StoredFile(content, read.stat, read.read_at))

    def _stream(self, path: str, token: Token) -> None:
        read_at = time.time_ns()
        content = store_file(self.repo, self.chunker, path, self.progress)
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise read_error(path, exc) from None
        self.done(token, StoredFile(content, st, read_at))

