"""Writing a file of a version from the file it replaces, as rsync builds on its basis file.

Moving a big file between two versions rewrites all of it, though the two
share most chunks (an insert shifts the bytes after it, it does not change
them). When the file on disk is known to hold the old entry, the chunks both
entries have are copied from it with ``copy_file_range`` (in the kernel, no
decompression, a reflink where the file system has them) and only the others
are read from the store. The result is read back and checked against the new
entry's digest; a basis that does not serve (changed under us, cut short, on a
file system that refuses the copy in a way no fallback handles) leaves nothing
behind and the caller writes the file from the store alone, so what lands on
disk never depends on the basis being what its stat said.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from datactl.core.errors import ObjectMissing
from datactl.core.ids import Hasher, new_hasher
from datactl.core.writeback import drop_cached, start_write_back
from datactl.format.objects import FILE, TreeEntry
from datactl.store.filedata import WRITE_BACK_FROM, ProgressFn, chunk_ids_of, create_new_file
from datactl.store.repository import Repository

# Files below this size are written from the store: the read-back costs more than it saves.
MIN_BASIS_SIZE = 4 << 20
# A basis is used when it holds at least this share of the new file's bytes.
MIN_SHARED = 0.5
# Bytes copied, or read back, per system call: progress moves, and Ctrl-C is seen, between them.
STEP = 8 << 20
# copy_file_range errors that mean "not between these two files": the bytes then go through a buffer.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM, errno.ETXTBSY}


class BasisUnusable(Exception):
    """The basis file is not what its entry says (shorter, not a regular file): write from the store."""


@dataclass(frozen=True)
class Basis:
    """A file on disk (``path``) known, by its stat, to hold ``entry``: a source of the chunks it shares with the new
    entry that replaces it."""

    path: str
    entry: TreeEntry


def can_serve(old: TreeEntry | None, new: TreeEntry) -> bool:
    """Whether a file holding ``old`` is worth trying as the basis of ``new``: both stored files, ``new`` big."""
    return (
        old is not None and old.kind == FILE and new.kind == FILE and not old.is_external and not new.is_external
        and new.size >= MIN_BASIS_SIZE and old.digest != new.digest
    )


@dataclass
class Piece:
    """A run of the new file: ``length`` bytes copied from the basis at ``source_offset`` or, when that is None,
    the chunks ``ids`` read from the store."""

    length: int
    source_offset: int | None = None
    ids: list[str] = field(default_factory=list)


def plan_pieces(new_ids: Sequence[str], new_sizes: Sequence[int], old_ids: Sequence[str], old_sizes: Sequence[int]) -> list[Piece]:
    """The new file as runs copied from the old one (contiguous in both) and runs read from the store."""
    offsets: dict[str, int] = {}
    pos = 0
    for oid, size in zip(old_ids, old_sizes):
        offsets.setdefault(oid, pos)
        pos += size
    pieces: list[Piece] = []
    for oid, size in zip(new_ids, new_sizes):
        src = offsets.get(oid)
        last = pieces[-1] if pieces else None
        if src is None:
            if last is not None and last.source_offset is None:
                last.ids.append(oid)
                last.length += size
            else:
                pieces.append(Piece(size, None, [oid]))
        elif last is not None and last.source_offset is not None and last.source_offset + last.length == src:
            last.length += size
        else:
            pieces.append(Piece(size, src))
    return pieces


def write_from_basis(repo: Repository, entry: TreeEntry, basis: Basis, path: str, progress: ProgressFn | None = None) -> int | None:
    """Write ``entry``'s bytes, with its mode, to a new file at ``path`` from ``basis`` and the store, verified; return
    the bytes copied from the basis. None when the basis shares too little or does not serve: nothing is then at ``path``.

    A layout the store cannot tell (the old entry's chunks dropped from a cache) gives None too. Errors of the store
    while reading the new chunks (missing, corrupt) are raised as they are; an OSError while writing gives None, and
    the caller's write from the store meets the same error, if it is the destination's, and reports it.
    """
    try:
        new_ids = list(chunk_ids_of(repo, entry))
        old_ids = list(chunk_ids_of(repo, basis.entry))
        every = list(dict.fromkeys(new_ids + old_ids))  # the two share most chunks: each size looked up once
        size_of = dict(zip(every, repo.raw_sizes(every)))
    except ObjectMissing:
        return None
    pieces = plan_pieces(new_ids, [size_of[i] for i in new_ids], old_ids, [size_of[i] for i in old_ids])
    shared = sum(p.length for p in pieces if p.source_offset is not None)
    if shared < MIN_SHARED * entry.size:
        return None
    try:
        src = os.open(basis.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO put there must not block
    except OSError:
        return None
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode) or st.st_size != basis.entry.size:
            return None
        dst = create_new_file(path)
        try:
            _write_verified(repo, entry, pieces, src, dst, progress)
            # The basis is the file the new one replaces: its pages serve no more. Freed here, by the threads that
            # write, rather than one file after another when the renames replace it (W2's restore, in the
            # benchmark: 1.30-1.41 -> 0.90-1.02 s).
            drop_cached(src)
            if entry.size >= WRITE_BACK_FROM:
                start_write_back(dst)
            os.fchmod(dst, entry.mode & 0o7777)
        except BaseException as exc:
            os.close(dst)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if isinstance(exc, (OSError, BasisUnusable)):
                return None
            raise
        os.close(dst)
        return shared
    finally:
        os.close(src)


def _write_verified(repo: Repository, entry: TreeEntry, pieces: list[Piece], src: int, dst: int, progress: ProgressFn | None) -> None:
    """Write ``pieces`` to ``dst``; a thread reads back and hashes each stretch as soon as it is written, so the
    check runs beside the copy; BasisUnusable when the file is not ``entry``'s bytes."""
    whole = new_hasher()
    buf = bytearray(STEP)  # the verifying thread's alone
    checks: list[Future] = []
    with ThreadPoolExecutor(1, thread_name_prefix="datactl-verify") as verifier:

        def written(at: int, n: int) -> None:
            checks.append(verifier.submit(_hash_range, dst, at, n, whole, buf))
            if progress:
                progress(n)

        _write_pieces(repo, pieces, src, dst, written)
    for check in checks:
        check.result()  # an error reading back is raised here
    if os.fstat(dst).st_size != entry.size or whole.hexdigest() != entry.digest:
        raise BasisUnusable("the bytes built on the basis do not match the new version's digest")


def _write_pieces(repo: Repository, pieces: list[Piece], src: int, dst: int, written: Callable[[int, int], None]) -> None:
    fetched: Iterator[bytes] = repo.read_many([oid for p in pieces for oid in p.ids])  # one stream: read ahead across pieces
    at = 0
    for piece in pieces:
        if piece.source_offset is None:
            for _ in piece.ids:
                data = next(fetched)
                _pwrite_all(dst, data, at)
                written(at, len(data))
                at += len(data)
        else:
            _copy_range(src, dst, piece.source_offset, at, piece.length, written)
            at += piece.length


def _copy_range(src: int, dst: int, src_at: int, dst_at: int, length: int, written: Callable[[int, int], None]) -> None:
    """``length`` bytes of ``src`` from ``src_at`` to ``dst`` at ``dst_at``: in the kernel where it can, else through a buffer."""
    kernel = hasattr(os, "copy_file_range")  # Linux; elsewhere through a buffer
    done = 0
    while done < length:
        step = min(STEP, length - done)
        if kernel:
            try:
                n = os.copy_file_range(src, dst, step, src_at + done, dst_at + done)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                kernel = False
                continue
        else:
            data = os.pread(src, step, src_at + done)
            _pwrite_all(dst, data, dst_at + done)
            n = len(data)
        if n == 0:
            raise BasisUnusable("the basis file ended early")
        written(dst_at + done, n)
        done += n


def _pwrite_all(fd: int, data: bytes, at: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        view = view[n:]
        at += n


def _hash_range(fd: int, at: int, length: int, whole: Hasher, buf: bytearray) -> None:
    """Add ``length`` bytes of the file open at ``fd`` from ``at`` to ``whole``, read through ``buf``."""
    view = memoryview(buf)
    end = at + length
    while at < end:
        n = os.preadv(fd, [view[: min(len(buf), end - at)]], at)
        if n == 0:
            raise BasisUnusable("the file being written is shorter than what was written to it")
        whole.update(view[:n])
        at += n
