"""The shared cache of training machines: cached objects and read-only local copies.

Layout under the cache root (``DATACTL_CACHE_DIR``, default the platform's
user cache folder)::

    stores/<h>/       a local store (same format) of objects read from remote <h>
    remotes/          local caches of remote indexes
    files/xx/<digest> verified file contents, read-only, shared by every copy
    copies/<commit>/  a version's files, hard links into files/ (copies if links fail)
    copies/<commit>.lock  flock: exclusive while building, shared while in use
    cache.db          last-used times and last-known ref resolutions (for offline use)

A copy is built under a temporary name and renamed into place, under an
exclusive lock, so racing processes never see a half-built copy. A process
using a copy holds a shared lock on it, which is what keeps eviction away.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from typing import Iterable

from datactl.core.dirs import remove_tree, walk_folder
from datactl.core.errors import CorruptObject
from datactl.core.ids import hash_file, object_id
from datactl.core.sqlite import connect
from datactl.core.units import parse_size
from datactl.format.storeconfig import StoreConfig
from datactl.remote.locate import default_cache_dir
from datactl.store.backend import local_store_backend
from datactl.store.index import ObjectIndex
from datactl.store.repository import Repository, read_store_config, write_store_config

_SCHEMA = """
CREATE TABLE IF NOT EXISTS copies (commit_id TEXT PRIMARY KEY, last_used REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contents (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resolutions (
    url TEXT, kind TEXT, name TEXT, version TEXT, commit_id TEXT NOT NULL, resolved_at REAL NOT NULL,
    PRIMARY KEY (url, kind, name, version)
) WITHOUT ROWID;
"""
@dataclass
class CacheInfo:
    root: str
    copies: int
    file_bytes: int
    object_bytes: int
    max_size: int | None

    @property
    def total_bytes(self) -> int:
        return self.file_bytes + self.object_bytes


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in walk_folder(path):  # a copy's folders are as deep as its version's
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except FileNotFoundError:
                continue
            total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total


class Cache:
    """One cache root, shared by every process of the user."""

    def __init__(self, root: str | None = None, max_size: int | str | None = None) -> None:
        self.root = os.path.abspath(root or default_cache_dir())
        for sub in ("stores", "remotes", "files", "copies"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        env_size = os.environ.get("DATACTL_CACHE_SIZE")
        limit = max_size if max_size is not None else env_size
        self.max_size = parse_size(limit) if limit else None
        self._db = connect(os.path.join(self.root, "cache.db"))
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def remotes_dir(self) -> str:
        return os.path.join(self.root, "remotes")

    # -- object stores -----------------------------------------------------

    def store_for(self, url: str, config: StoreConfig) -> Repository:
        """The local object cache for the store at ``url`` (created with its chunking)."""
        root = os.path.join(self.root, "stores", object_id(url.encode())[:16])
        backend = local_store_backend(root)
        write_store_config(backend, StoreConfig(chunker=config.chunker, pack_size=config.pack_size))
        return Repository(backend, ObjectIndex(os.path.join(root, "index.db"), "delete it (or run `datactl cache clear`): it is made again when needed"), read_store_config(backend), os.path.join(root, "tmp"))

    # -- ref resolutions (offline use) ---------------------------------------

    def remember(self, url: str, kind: str, name: str, version: str, commit_id: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO resolutions VALUES (?, ?, ?, ?, ?, ?)", (url, kind, name, version, commit_id, time.time())
        )

    def recall(self, url: str, kind: str, name: str, version: str) -> str | None:
        row = self._db.execute(
            "SELECT commit_id FROM resolutions WHERE url=? AND kind=? AND name=? AND version=?", (url, kind, name, version)
        ).fetchone()
        return None if row is None else row[0]

    # -- file contents -------------------------------------------------------

    def file_path(self, digest: str) -> str:
        return os.path.join(self.root, "files", digest[:2], digest)

    def file_ok(self, digest: str, size: int, deep: bool = False) -> bool:
        """Whether the cached content for ``digest`` is intact.

        Its stat must be the one recorded when it was written and verified (a
        write changes mtime); ``deep`` also re-hashes it.
        """
        path = self.file_path(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        row = self._db.execute("SELECT size, mtime_ns, ino FROM contents WHERE digest=?", (digest,)).fetchone()
        if row is None or (st.st_size, st.st_mtime_ns, st.st_ino) != tuple(row) or st.st_size != size:
            return False
        return not deep or hash_file(path) == digest

    def put_file(self, digest: str, chunks: Iterable[bytes]) -> str:
        """Write verified, read-only content for ``digest``; return its path."""
        path = self.file_path(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            with open(tmp, "wb") as f:
                for data in chunks:
                    f.write(data)
            if hash_file(tmp) != digest:
                raise CorruptObject(f"cached content for {digest} does not match its digest")
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        st = os.stat(path)
        self._db.execute("INSERT OR REPLACE INTO contents VALUES (?, ?, ?, ?)", (digest, st.st_size, st.st_mtime_ns, st.st_ino))
        return path

    # -- copies -------------------------------------------------------------

    def copy_path(self, commit_id: str) -> str:
        return os.path.join(self.root, "copies", commit_id)

    def lock_copy(self, commit_id: str, exclusive: bool, blocking: bool = True) -> int | None:
        """Take the copy's lock; return the fd (keep it open to hold the lock) or None if busy."""
        fd = os.open(self.copy_path(commit_id) + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def touch_copy(self, commit_id: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO copies VALUES (?, ?)", (commit_id, time.time()))

    def link_or_copy(self, src: str, dest: str) -> None:
        try:
            os.link(src, dest)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(src, dest)
            os.chmod(dest, 0o444)

    # -- upkeep ---------------------------------------------------------------

    def info(self) -> CacheInfo:
        copies = [d for d in os.listdir(os.path.join(self.root, "copies")) if not d.endswith(".lock") and not d.startswith(".")]
        return CacheInfo(self.root, len(copies), _du(os.path.join(self.root, "files")), _du(os.path.join(self.root, "stores")), self.max_size)

    def prune(self, max_size: int | None = None) -> int:
        """Evict least-recently-used copies (never one in use), then unused contents and objects; return bytes freed."""
        limit = max_size if max_size is not None else self.max_size
        if limit is None:
            return 0
        before = self.info().total_bytes
        if before <= limit:
            return 0
        rows = self._db.execute("SELECT commit_id FROM copies ORDER BY last_used").fetchall()
        for (commit_id,) in rows:
            if self.info().total_bytes <= limit:
                break
            if self._evict_copy(commit_id):
                self._drop_unlinked_files()  # a copy is hard links: its bytes are freed only with its contents
        self._drop_unlinked_files()
        if self.info().total_bytes > limit:
            self._evict_object_packs(limit)
        return before - self.info().total_bytes

    def _evict_copy(self, commit_id: str) -> bool:
        fd = self.lock_copy(commit_id, exclusive=True, blocking=False)
        if fd is None:
            return False  # a running process holds it
        try:
            path = self.copy_path(commit_id)
            if os.path.isdir(path):
                remove_tree(path)
            self._db.execute("DELETE FROM copies WHERE commit_id=?", (commit_id,))
            return True
        finally:
            os.close(fd)

    def _drop_unlinked_files(self) -> None:
        for dirpath, _dirs, files in os.walk(os.path.join(self.root, "files")):
            for f in files:
                path = os.path.join(dirpath, f)
                try:
                    if os.stat(path).st_nlink == 1:
                        os.unlink(path)
                        self._db.execute("DELETE FROM contents WHERE digest=?", (f,))
                except FileNotFoundError:
                    pass

    def _evict_object_packs(self, limit: int) -> None:
        for store_dir in os.listdir(os.path.join(self.root, "stores")):
            root = os.path.join(self.root, "stores", store_dir)
            index = ObjectIndex(os.path.join(root, "index.db"), "delete it (or run `datactl cache clear`): it is made again when needed")
            try:
                packs = []
                for dirpath, _dirs, files in os.walk(os.path.join(root, "packs")):
                    for f in files:
                        full = os.path.join(dirpath, f)
                        packs.append((os.stat(full).st_atime, full, f))
                for _atime, full, pack_id in sorted(packs):
                    if self.info().total_bytes <= limit:
                        return
                    index.remove_pack(pack_id)
                    os.unlink(full)
            finally:
                index.close()

    def clear(self) -> None:
        """Remove everything not held by a running process."""
        for name in os.listdir(os.path.join(self.root, "copies")):
            if name.endswith(".lock") or name.startswith("."):
                continue
            self._evict_copy(name)
        self._drop_unlinked_files()
        self._evict_object_packs(0)
