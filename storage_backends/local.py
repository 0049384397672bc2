"""A store in a local folder (or a network mount)."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import time
import uuid
from datetime import datetime, timezone
from typing import BinaryIO, Iterator

from storage_backends.base import (
    AccessDenied,
    Backend,
    BackendError,
    KeyNotFound,
    NoSpace,
    ObjectInfo,
    ShortRead,
    SourceChanged,
    SourceObject,
    Versioned,
    validate_key,
)

# Where flock is not supported (some network mounts), a lock file older than this is taken to belong to a
# crashed writer; elsewhere a dead writer's lock is known dead at once.
STALE_LOCK_SECONDS = 60.0
LOCK_WAIT_SECONDS = 30.0


def fsync_dir(path: str) -> None:
    """Make a rename or create inside ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool | None:
    """True when the exclusive flock is ours, False when another process holds it, None when flock is not supported here."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _same_file(fd: int, path: str) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _remove_if_abandoned(lock: str) -> None:
    """Remove ``lock`` when the writer that made it is gone: nobody holds its flock (or, without flock, it is old)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        held = _try_flock(fd)
        if held is None:
            abandoned = time.time() - os.fstat(fd).st_mtime > STALE_LOCK_SECONDS
        else:
            # Holding its flock, the file is ours to judge; it may have been released and replaced meanwhile.
            abandoned = held and _same_file(fd, lock)
        if abandoned:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)


class LocalBackend(Backend):
    """Blobs are files under ``root``; writes go to a temp name, fsync, then rename."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root

    # -- paths ---------------------------------------------------------------

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *validate_key(key).split("/"))

    def _tmp_path(self, final: str) -> str:
        return f"{final}.tmp-{uuid.uuid4().hex}"

    def _wrap(self, exc: OSError, key: str) -> BackendError:
        if isinstance(exc, FileNotFoundError):
            return KeyNotFound(self.url, key)
        message = f"cannot access {key} in {self.url}: {exc.strerror or exc}"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return NoSpace(message)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return AccessDenied(message)
        return BackendError(message)

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except OSError as exc:
            raise self._wrap(exc, key) from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except OSError as exc:
            raise self._wrap(exc, key) from exc
        try:
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise self._wrap(exc, key) from exc
        finally:
            os.close(fd)
        if len(data) != length:
            raise ShortRead(
                f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, got {len(data)}"
            )
        return data

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except OSError as exc:
            raise self._wrap(exc, key) from exc

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    # A local file keeps neither versions nor an ETag: reads are not pinned (the caller's digest check
    # catches a rewrite), and its modification time is what tells a change without reading it.
    def stat(self, key: str) -> SourceObject:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFound(self.url, key) from None
        except OSError as exc:
            raise self._wrap(exc, key) from exc
        if not stat.S_ISREG(st.st_mode):
            raise KeyNotFound(self.url, key)
        modified = datetime.fromtimestamp(st.st_mtime_ns // 1000 / 1e6, timezone.utc).isoformat()
        return SourceObject(key, st.st_size, None, None, modified)

    def _unpinned(self, key: str, version: str | None, etag: str | None) -> None:
        if version is not None or etag is not None:
            raise SourceChanged(f"{key} in {self.url}: a local folder keeps no versions or ETags to read by")

    def get_range_at(self, key: str, offset: int, length: int, version: str | None, etag: str | None = None) -> bytes:
        self._unpinned(key, version, etag)
        return self.get_range(key, offset, length)

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        self._unpinned(key, version, etag)
        return self.open_read(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root if not prefix else os.path.join(self.root, *prefix.rstrip("/").split("/"))
        if not os.path.isdir(base):
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if ".tmp-" in name or name.endswith(".lock"):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                yield ObjectInfo(key=key, size=st.st_size, mtime=st.st_mtime)

    # -- writes --------------------------------------------------------------

    def _publish(self, tmp: str, final: str, *, replace: bool) -> bool:
        """Atomically give ``tmp`` its final name; with replace=False never clobber."""
        if replace:
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)
            except FileExistsError:
                os.unlink(tmp)
                return False
            os.unlink(tmp)
        fsync_dir(os.path.dirname(final))
        return True

    def _write_tmp(self, final: str, data: bytes) -> str:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = self._tmp_path(final)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def put_bytes(self, key: str, data: bytes) -> None:
        final = self._path(key)
        try:
            self._publish(self._write_tmp(final, data), final, replace=True)
        except OSError as exc:
            raise self._wrap(exc, key) from exc

    def put_file(self, key: str, path: str) -> None:
        final = self._path(key)
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            tmp = self._tmp_path(final)
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            self._publish(tmp, final, replace=True)
        except OSError as exc:
            raise self._wrap(exc, key) from exc

    def move_file_in(self, key: str, path: str) -> None:
        """Like put_file, but may consume ``path`` (a rename when on the same device)."""
        final = self._path(key)
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(path, final)
            fsync_dir(os.path.dirname(final))
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                self.put_file(key, path)
                os.unlink(path)
                return
            raise self._wrap(exc, key) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        try:
            return self._publish(self._write_tmp(final, data), final, replace=False)
        except OSError as exc:
            raise self._wrap(exc, key) from exc

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._wrap(exc, key) from exc

    # -- compare-and-swap ----------------------------------------------------

    def get_versioned(self, key: str) -> Versioned | None:
        try:
            data = self.get(key)
        except KeyNotFound:
            return None
        return Versioned(data=data, token=data)

    def _acquire(self, lock: str) -> int:
        """Hold ``lock`` and return its descriptor: a file made with O_EXCL and flock'ed while held.

        O_EXCL is atomic on local file systems and on NFSv3+. The flock is what
        tells a live holder from a dead one: the kernel lets go of it when a
        writer is killed, so the next writer takes over at once instead of
        waiting for the file to grow old.
        """
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
            except FileExistsError:
                _remove_if_abandoned(lock)
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"{lock} is held by another writer; if no datactl process is running, delete that file"
                    ) from None
                time.sleep(0.005)
                continue
            held = _try_flock(fd)
            # A waiter may have taken this file for abandoned between our create and our flock: then it is
            # gone (or replaced) by the time we hold it, and we start over.
            if held is False or (held and not _same_file(fd, lock)):
                os.close(fd)
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd

    def _release(self, lock: str, fd: int) -> None:
        try:
            os.unlink(lock)  # before the flock goes, so a waiter never takes over a file still in use
        finally:
            os.close(fd)

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        final = self._path(key)
        lock = final + ".lock"
        try:
            fd = self._acquire(lock)
            try:
                current = self.get_versioned(key)
                cur = None if current is None else current.data
                want = None if expected is None else expected.data
                if cur != want:
                    return False
                if data is None:
                    self.delete(key)
                    fsync_dir(os.path.dirname(final))
                else:
                    self._publish(self._write_tmp(final, data), final, replace=True)
                return True
            finally:
                self._release(lock, fd)
        except OSError as exc:
            raise self._wrap(exc, key) from exc
