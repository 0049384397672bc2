"""A version's file source: list a version's files and stream any one of them.

Validation rules and deep verification see a version only through
``VersionSource``: ``entries()`` lists (path, size, digest) without reading
file data, and ``open(entry)`` returns a seekable, verified stream that reads
only the chunks it is asked for. Two implementations share one reader of
packs (``PackReader``: index lookup, coalesced ranged reads, every object
hashed against its id):

* ``RepositorySource``: a version in a local store (a workspace's own).
* ``RemoteSource``: a version on a remote store, read by ranged GETs through
  ``RemoteStore`` and its cached index. Nothing is written to a workspace or a
  local store; the only local state is the remote index cache.

Byte counters (``stats``) tell exactly what was read, split into metadata
(commits, trees, chunk lists) and file data.
"""

from __future__ import annotations

import abc
import collections
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from datactl.store.chunkedfile import ChunkedFile
from datactl.core.errors import CorruptObject, DatactlError, ObjectMissing
from datactl.store.index import ObjectIndex, ObjectLocation
from datactl.format.objects import DIR, FILE, Commit, Tree, TreeEntry, decode_chunklist, decode_commit, decode_tree
from datactl.format.pack import ObjectType, PackEntry, pack_key
from datactl.store.refs import HEAD_PREFIX
from datactl.remote.remotestore import RemoteStore
from datactl.store.repository import Repository, verify_stored
from datactl.store.revparse import RefContext, resolve_ref
from storage_backends import Backend, BackendError, KeyNotFound

# Objects closer than this in a pack are read in one ranged request ...
META_GAP = 256 * 1024
# ... as long as the request stays below this.
MAX_SPAN = 8 * 1024 * 1024
# Sub-trees fetched together when a walk first reaches one of them.
TREE_BATCH = 256
# Decoded chunks kept for re-reads (two rules reading one file, a seek back).
CHUNK_CACHE_BYTES = 32 * 1024 * 1024
DEFAULT_JOBS = 8


class DataUnreadable(DatactlError):
    """The store could not be read (unreachable, permission denied): the check could not run."""

    exit_code = 3


@dataclass
class ReadStats:
    """What a source has read from its store (stored, i.e. compressed, bytes)."""

    requests: int = 0
    bytes_read: int = 0
    metadata_bytes: int = 0
    data_bytes: int = 0
    objects: int = 0
    files_opened: int = 0

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "bytes_read": self.bytes_read,
            "metadata_bytes": self.metadata_bytes,
            "data_bytes": self.data_bytes,
            "objects": self.objects,
            "files_opened": self.files_opened,
        }


@dataclass(frozen=True)
class SourceEntry:
    """One file (or symlink) of a version, as rules see it."""

    path: str
    kind: str
    size: int
    digest: str
    mode: int = 0
    tree_entry: TreeEntry | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        """The extension with its dot, lower-cased ('' when none)."""
        name = self.name
        dot = name.rfind(".")
        return name[dot:].lower() if dot > 0 else ""


class PackReader:
    """Reads objects from a store's packs: index lookup, coalesced ranged reads, each object verified.

    Thread-safe. ``on_miss`` is called once when an id is not in the index
    (a remote syncs its index files then).
    """

    def __init__(self, backend: Backend, index: ObjectIndex, label: str | None = None, on_miss=None, jobs: int = DEFAULT_JOBS) -> None:
        self.backend = backend
        self.index = index
        self.label = label or backend.url
        self.jobs = jobs
        self.stats = ReadStats()
        self._on_miss = on_miss
        self._missed_once = False
        self._lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._cache: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._cache_bytes = 0
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def lookup(self, oid: str) -> ObjectLocation | None:
        """The index entry of ``oid``, or None (no sync on a miss)."""
        with self._index_lock:
            return self.index.lookup(oid)

    def locate(self, oid: str) -> ObjectLocation:
        # One SQLite connection serves every worker thread: lookups (and a sync) take turns.
        with self._index_lock:
            loc = self.index.lookup(oid)
            if loc is None and self._on_miss is not None and not self._missed_once:
                self._missed_once = True
                self._on_miss()
                loc = self.index.lookup(oid)
        if loc is None:
            raise ObjectMissing(f"object {oid} is not in any pack of {self.label}", "run `datactl verify` to see what else is missing")
        return loc

    # -- cache ---------------------------------------------------------------

    def cached(self, oid: str) -> bytes | None:
        with self._lock:
            raw = self._cache.get(oid)
            if raw is not None:
                self._cache.move_to_end(oid)
            return raw

    def _remember(self, oid: str, raw: bytes) -> None:
        with self._lock:
            if oid in self._cache:
                return
            self._cache[oid] = raw
            self._cache_bytes += len(raw)
            while self._cache_bytes > CHUNK_CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= len(old)

    # -- reading -------------------------------------------------------------

    def _count(self, stored: int, entries: Iterable[PackEntry]) -> None:
        meta = data = n = 0
        for e in entries:
            n += 1
            if e.type == ObjectType.CHUNK:
                data += e.stored_len
            else:
                meta += e.stored_len
        with self._lock:
            self.stats.requests += 1
            self.stats.bytes_read += stored
            self.stats.objects += n
            # Gap bytes read between wanted objects count with the objects' kind.
            gap = stored - meta - data
            if data:
                self.stats.data_bytes += data + gap
                self.stats.metadata_bytes += meta
            else:
                self.stats.metadata_bytes += meta + gap

    def _read_range(self, pack: str, entries: list[PackEntry]) -> dict[str, bytes]:
        start = entries[0].offset
        end = max(e.offset + e.stored_len for e in entries)
        where = f"pack {pack} on {self.label}"
        try:
            blob = self.backend.get_range(pack_key(pack), start, end - start)
        except KeyNotFound:
            first = entries[0]
            raise ObjectMissing(
                f"object {first.id} is missing: {where} does not exist",
                "the store lost data; run `datactl verify` against it to list every affected file",
            ) from None
        except BackendError as exc:
            msg = str(exc)
            if "truncated" in msg:
                raise CorruptObject(f"object {entries[0].id} cannot be read: {where} is truncated ({msg})") from None
            raise DataUnreadable(f"cannot read {where}: {msg}", "check the store's URL, credentials and network") from None
        self._count(len(blob), entries)
        out = {}
        for e in entries:
            stored = blob[e.offset - start : e.offset - start + e.stored_len]
            out[e.id] = verify_stored(e.id, e, stored, f"{pack} on {self.label}")
        return out

    def fetch(self, oids: Iterable[str], max_gap: int = 0, remember: bool = True) -> dict[str, bytes]:
        """Verified raw bytes of every id, read in as few ranged requests as the gap allows, in parallel."""
        out: dict[str, bytes] = {}
        by_pack: dict[str, list[PackEntry]] = collections.defaultdict(list)
        for oid in dict.fromkeys(oids):
            raw = self.cached(oid)
            if raw is not None:
                out[oid] = raw
                continue
            loc = self.locate(oid)
            by_pack[loc.pack].append(loc.entry)
        groups: list[tuple[str, list[PackEntry]]] = []
        for pack, entries in by_pack.items():
            entries.sort(key=lambda e: e.offset)
            group: list[PackEntry] = []
            for e in entries:
                if group:
                    last = group[-1]
                    gap = e.offset - (last.offset + last.stored_len)
                    if gap > max_gap or e.offset + e.stored_len - group[0].offset > MAX_SPAN:
                        groups.append((pack, group))
                        group = []
                group.append(e)
            if group:
                groups.append((pack, group))
        if len(groups) == 1:
            results = [self._read_range(*groups[0])]
        elif groups:
            if self._pool is None:
                with self._lock:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="datactl-read")
            results = list(self._pool.map(lambda g: self._read_range(*g), groups))
        else:
            results = []
        for got in results:
            for oid, raw in got.items():
                out[oid] = raw
                if remember:
                    self._remember(oid, raw)
        return out

    def read(self, oid: str) -> bytes:
        return self.fetch([oid])[oid]

    def read_commit(self, oid: str) -> Commit:
        return decode_commit(oid, self.read(oid))

    def read_tree(self, oid: str) -> Tree:
        return decode_tree(oid, self.read(oid))

    def raw_size(self, oid: str) -> int:
        return self.locate(oid).entry.raw_len

    def chunk_ids(self, entry: TreeEntry) -> list[str] | tuple[str, ...]:
        if entry.chunklist is not None:
            return decode_chunklist(entry.chunklist, self.read(entry.chunklist))
        return entry.chunks


def _walk_key(entry: TreeEntry) -> str:
    return entry.name + "/" if entry.kind == DIR else entry.name


def walk_entries(reader: PackReader, tree_id: str, prefix: str = "") -> Iterator[tuple[str, TreeEntry]]:
    """(path, entry) for every file and symlink below ``tree_id``, in byte order of path.

    Sub-trees are fetched in batches (one ranged request per run of nearby
    trees), so a version with thousands of folders costs a handful of requests.
    """
    trees: dict[str, Tree] = {}

    def load(ids: list[str]) -> None:
        want = [i for i in ids if i not in trees]
        for oid, raw in reader.fetch(want, max_gap=META_GAP, remember=False).items():
            trees[oid] = decode_tree(oid, raw)

    def walk(tid: str, pre: str) -> Iterator[tuple[str, TreeEntry]]:
        if tid not in trees:
            load([tid])
        tree = trees.pop(tid)
        entries = sorted(tree.entries, key=_walk_key)
        dirs = [e.digest for e in entries if e.kind == DIR]
        for i, entry in enumerate(entries):
            path = pre + entry.name
            if entry.kind == DIR:
                if entry.digest not in trees:
                    pos = dirs.index(entry.digest)
                    load(dirs[pos : pos + TREE_BATCH])
                yield from walk(entry.digest, path + "/")
            else:
                yield path, entry

    yield from walk(tree_id, prefix)


class VersionSource(abc.ABC):
    """A version's files: listed from its trees, opened as verified streams."""

    commit_id: str | None
    tree_id: str
    label: str

    def __init__(self, reader: PackReader, tree_id: str, commit_id: str | None, label: str) -> None:
        self.reader = reader
        self.tree_id = tree_id
        self.commit_id = commit_id
        self.label = label
        self._closers: list = []

    def on_close(self, fn) -> None:
        """Call ``fn()`` when the source is closed (e.g. to close the workspace or remote it reads)."""
        self._closers.append(fn)

    @property
    def stats(self) -> ReadStats:
        return self.reader.stats

    def entries(self) -> Iterator[SourceEntry]:
        """Every file and symlink, in byte order of path, reading trees only."""
        for path, e in walk_entries(self.reader, self.tree_id):
            yield SourceEntry(path, e.kind, e.size, e.digest, e.mode, e)

    def open(self, entry: SourceEntry) -> io.BufferedReader:
        """A seekable, buffered stream of the file's verified bytes."""
        if entry.kind != FILE or entry.tree_entry is None:
            raise DatactlError(f"{entry.path} is not a regular file")
        with self.reader._lock:
            self.reader.stats.files_opened += 1
        return io.BufferedReader(ChunkedFile(self.reader, entry.tree_entry, entry.path), buffer_size=64 * 1024)

    def read_bytes(self, entry: SourceEntry) -> bytes:
        with self.open(entry) as f:
            return f.read()

    def close(self) -> None:
        self.reader.close()
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> "VersionSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RepositorySource(VersionSource):
    """A version in a local store."""

    def __init__(self, repo: Repository, commit_id: str | None = None, *, tree_id: str | None = None, label: str | None = None) -> None:
        if tree_id is None:
            if commit_id is None:
                raise ValueError("give a commit id or a tree id")
            tree_id = repo.read_commit(commit_id).tree
        reader = PackReader(repo.backend, repo.index, label or repo.backend.url)
        super().__init__(reader, tree_id, commit_id, label or (commit_id[:12] if commit_id else f"tree {tree_id[:12]}"))


class RemoteView:
    """Enough of a Repository over a remote store for ref resolution and tree diffs."""

    def __init__(self, rs: RemoteStore, reader: PackReader) -> None:
        self.rs = rs
        self.refs = rs.refs
        self.index = rs.index
        self.backend = rs.backend
        self.reader = reader

    def read(self, oid: str) -> bytes:
        return self.reader.read(oid)

    def read_commit(self, oid: str) -> Commit:
        return self.reader.read_commit(oid)

    def read_tree(self, oid: str) -> Tree:
        return self.reader.read_tree(oid)

    def has(self, oid: str) -> bool:
        return self.index.has(oid)

    def object_type(self, oid: str) -> ObjectType | None:
        loc = self.index.lookup(oid)
        return None if loc is None else loc.entry.type


def remote_reader(rs: RemoteStore, jobs: int = DEFAULT_JOBS) -> PackReader:
    return PackReader(rs.backend, rs.index, rs.spec.label if rs.spec.name else rs.url, on_miss=rs.sync_index, jobs=jobs)


def resolve_on_remote(rs: RemoteStore, reader: PackReader, ref: str, name: str | None = None, kind: str = "dataset") -> str:
    """The commit a REF names on a remote store (``HEAD`` is the remote's head of ``name``)."""
    view = RemoteView(rs, reader)
    head = None
    if name is not None:
        head = rs.refs.get(f"{HEAD_PREFIX[kind]}/{name}")
    return resolve_ref(view, ref, RefContext(name, kind, head))  # type: ignore[arg-type]


class RemoteSource(VersionSource):
    """A version on a remote store, read by verified ranged GETs; nothing is written locally but the index cache."""

    def __init__(self, rs: RemoteStore, ref: str, *, name: str | None = None, kind: str = "dataset", jobs: int = DEFAULT_JOBS) -> None:
        self.remote = rs
        try:
            rs.sync_index()
            reader = remote_reader(rs, jobs)
            commit_id = resolve_on_remote(rs, reader, ref, name, kind)
            tree_id = reader.read_commit(commit_id).tree
        except BackendError as exc:
            raise DataUnreadable(f"cannot read {rs.url}: {exc}", "check the remote's URL, credentials and network") from None
        super().__init__(reader, tree_id, commit_id, f"{commit_id[:12]} on {rs.spec.label}")


__all__ = [
        "DataUnreadable",
    "PackReader",
    "ReadStats",
    "RemoteSource",
    "RemoteView",
    "RepositorySource",
    "SourceEntry",
    "VersionSource",
    "resolve_on_remote",
    "walk_entries",
]
