"""File contents <-> chunks: storing a file and streaming it back verified."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, TypeVar

from datactl.core.errors import CorruptObject, DatactlError
from datactl.core.ids import ID_BYTES, new_hasher, object_id
from datactl.core.safepath import temp_name
from datactl.core.writeback import start_write_back
from datactl.format.objects import FILE, TreeEntry, decode_chunklist, encode_chunklist
from datactl.format.pack import ObjectType
from datactl.store.chunker import Chunker
from datactl.store.repository import Repository
from datactl.store.sourceread import iter_source_bytes

# Files with more chunks than this list them in a CHUNKLIST object, so a tree
# stays small however large its files are.
INLINE_CHUNKS = 256
# Files up to this size are restored from chunks read ahead in batches of up to this many bytes or files.
READ_AHEAD_FILE = 1 << 20
READ_AHEAD_BYTES = 8 << 20
READ_AHEAD_FILES = 1_000
# Files from this size on are pushed toward the disk as soon as they are written (``start_write_back``).
WRITE_BACK_FROM = 1 << 20

T = TypeVar("T")

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class FileContent:
    """What a tree entry needs to know about one file's bytes."""

    size: int
    digest: str
    chunks: tuple[str, ...]
    chunklist: str | None


@dataclass(frozen=True)
class StreamChunks:
    """A stream as the chunker cut it: size, whole digest, chunk ids (concatenated binary) and chunk sizes."""

    size: int
    digest: str
    ids: bytes
    sizes: tuple[int, ...]

    def chunk_ids(self) -> tuple[str, ...]:
        return tuple(self.ids[i : i + ID_BYTES].hex() for i in range(0, len(self.ids), ID_BYTES))


def chunk_stream(chunker: Chunker, stream, keep: Callable[[str, memoryview], None] | None = None, progress: ProgressFn | None = None) -> StreamChunks:
    """Cut ``stream`` once, hashing each chunk and the whole; ``keep(id, view)`` sees every chunk (to store or copy
    it), a view of bytes that stay as they are."""
    whole = new_hasher()
    ids = bytearray()
    sizes: list[int] = []
    for chunk in chunker.chunks(stream):
        whole.update(chunk)
        oid = object_id(chunk)
        if keep is not None:
            keep(oid, chunk)
        ids += bytes.fromhex(oid)
        sizes.append(len(chunk))
        if progress:
            progress(len(chunk))
    return StreamChunks(sum(sizes), whole.hexdigest(), bytes(ids), tuple(sizes))


def store_stream(repo: Repository, chunker: Chunker, stream, progress: ProgressFn | None = None) -> FileContent:
    """Chunk ``stream``, store new chunks, return its content description."""
    read = chunk_stream(chunker, stream, lambda oid, raw: repo.put(ObjectType.CHUNK, raw, oid), progress)
    return content_of(repo, read.size, read.digest, read.ids)


def content_of(repo: Repository, size: int, digest: str, ids: bytes) -> FileContent:
    """The description of a file whose chunks (``ids``, concatenated binary ids) are stored; a long list goes in a CHUNKLIST."""
    if len(ids) // ID_BYTES > INLINE_CHUNKS:
        return FileContent(size, digest, (), repo.put(ObjectType.CHUNKLIST, encode_chunklist(ids)))
    chunk_ids = tuple(ids[i : i + ID_BYTES].hex() for i in range(0, len(ids), ID_BYTES))
    return FileContent(size, digest, chunk_ids, None)


def content_of_hex(repo: Repository, size: int, digest: str, chunk_ids: tuple[str, ...]) -> FileContent:
    """``content_of`` for chunk ids in hex, as a small file's read gives them: no round trip through binary ids
    for the short list most files have."""
    if len(chunk_ids) > INLINE_CHUNKS:
        return content_of(repo, size, digest, b"".join(bytes.fromhex(oid) for oid in chunk_ids))
    return FileContent(size, digest, chunk_ids, None)


def read_error(path: str, exc: OSError) -> DatactlError:
    """What failing to read a file being stored means to a user."""
    if isinstance(exc, PermissionError):
        return DatactlError(f"cannot read {path}: permission denied", "fix its permissions or add it to .datactlignore")
    return DatactlError(f"cannot read {path}: {exc.strerror or exc}")


def store_file(repo: Repository, chunker: Chunker, path: str, progress: ProgressFn | None = None) -> FileContent:
    """Store the regular file at ``path``, streamed through the chunker; unreadable files raise a clear error."""
    try:
        with open(path, "rb", buffering=0) as f:
            return store_stream(repo, chunker, f, progress)
    except OSError as exc:
        raise read_error(path, exc) from None


def chunk_ids_of(repo: Repository, entry: TreeEntry) -> list[str] | tuple[str, ...]:
    if entry.chunklist is not None:
        return decode_chunklist(entry.chunklist, repo.read(entry.chunklist))
    return entry.chunks


def iter_file_bytes(repo: Repository, entry: TreeEntry, where: str, chunks: Mapping[str, bytes] | None = None) -> Iterator[bytes]:
    """Yield a file's verified bytes chunk by chunk; the whole-file digest is checked at the end.

    A mismatch raises CorruptObject before the last piece is handed out, so a
    caller that writes to a temp file and renames on success never publishes
    bad data. ``chunks``: the file's chunks already read (``read_ahead``).
    """
    assert entry.kind == FILE
    if entry.is_external:
        yield from iter_source_bytes(repo.sources, entry, where)
        return
    whole = new_hasher()
    size = 0
    pending: bytes | None = None
    ids = chunk_ids_of(repo, entry)
    for data in (chunks[oid] for oid in ids) if chunks is not None else repo.read_many(ids):
        if pending is not None:
            yield pending
        whole.update(data)
        size += len(data)
        pending = data
    if size != entry.size or whole.hexdigest() != entry.digest:
        raise CorruptObject(
            f"{where}: restored bytes do not match the recorded digest {entry.digest}",
            "run `datactl verify --deep` on this version",
        )
    if pending is not None:
        yield pending


def read_ahead(repo: Repository, items: Iterable[T], entry_of: Callable[[T], TreeEntry | None]) -> Iterator[tuple[T, Mapping[str, bytes] | None]]:
    """``items`` in order, each with its file's chunks when it is a small stored file: those are read in batches
    of up to a thousand files (a few coalesced reads each), not file by file; other items get None and stream."""
    batch: list[T] = []
    ids: list[str] = []
    held = 0
    for item in items:
        entry = entry_of(item)
        if entry is not None and entry.kind == FILE and not entry.is_external and entry.chunklist is None and entry.size <= READ_AHEAD_FILE:
            batch.append(item)
            ids.extend(entry.chunks)
            held += entry.size
            if held >= READ_AHEAD_BYTES or len(batch) >= READ_AHEAD_FILES:
                yield from _with_chunks(repo, batch, ids)
                batch, ids, held = [], [], 0
            continue
        if batch:
            yield from _with_chunks(repo, batch, ids)
            batch, ids, held = [], [], 0
        yield item, None
    if batch:
        yield from _with_chunks(repo, batch, ids)


def _with_chunks(repo: Repository, batch: list[T], ids: list[str]) -> Iterator[tuple[T, Mapping[str, bytes]]]:
    got = repo.read_batch(ids)  # every object hashed against its id as it is read
    for item in batch:
        yield item, got


def create_new_file(path: str) -> int:
    """A descriptor of a new, empty file at ``path``, open for reading and writing (a caller may read back what it
    wrote, as ``datactl.store.basis`` does), readable by its owner alone until its mode is set.

    A file or link already at ``path`` (a temp name left by a killed run) is
    replaced; O_EXCL|O_NOFOLLOW means a link planted there is never written through.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:  # rare: asked first, it would cost every file a system call
        os.unlink(path)
        return os.open(path, flags, 0o600)


def write_new_file(
    repo: Repository, entry: TreeEntry, path: str, where: str, progress: ProgressFn | None = None, chunks: Mapping[str, bytes] | None = None
) -> None:
    """Write ``entry``'s verified bytes, with its mode, to a new file at ``path`` (``create_new_file``); on failure
    nothing is left there."""
    fill_new_file(create_new_file(path), path, repo, entry, where, progress, chunks)


def fill_new_file(
    fd: int, path: str, repo: Repository, entry: TreeEntry, where: str, progress: ProgressFn | None = None,
    chunks: Mapping[str, bytes] | None = None,
) -> os.stat_result:
    """Write ``entry``'s verified bytes to the new, empty file at ``path`` open as ``fd``, give it ``entry``'s mode
    and close it; return its stat. On failure the file is removed. Written straight from each chunk, with no
    buffer between (a chunk is one ``write``)."""
    try:
        for data in iter_file_bytes(repo, entry, where, chunks):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if progress:
                progress(len(data))
        if entry.size >= WRITE_BACK_FROM:
            start_write_back(fd)
        os.fchmod(fd, entry.mode & 0o7777)
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    os.close(fd)
    return st


def restore_file(repo: Repository, entry: TreeEntry, dest: str, where: str, progress: ProgressFn | None = None) -> None:
    """Write ``entry``'s bytes to ``dest`` through a temp name beside it, renamed on success."""
    tmp = os.path.join(os.path.dirname(dest), temp_name(os.path.basename(dest)))
    write_new_file(repo, entry, tmp, where, progress)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
