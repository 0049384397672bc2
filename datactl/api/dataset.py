"""The Python API for training code: get a version, list, stream, copy, derive.

    from datactl import Dataset
    ds = Dataset.get("imagenet-mini", version="v3")
    root = ds.get_local_copy()             # read-only, verified, shared cache
    with ds.open("labels.csv") as f: ...   # streams only the chunks it reads

Versions are read from a remote store through a local cache of the same
format (``DATACTL_CACHE_DIR``), so a second process or a second call finds
everything local, and an already-cached version keeps working offline.
"""

from __future__ import annotations

import fcntl
import fnmatch
import io
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Sequence, overload

from datactl.api.location import Location, open_location, resolve_any, resolve_version
from datactl.core.author import default_author
from datactl.core.closing import Closing
from datactl.core.dirs import make_dirs, remove_tree, walk_folder
from datactl.core.errors import RefConflict, StoreNotFound, UsageError
from datactl.core.safepath import check_rel_path, safe_join, temp_name
from datactl.core.settings import WORKSPACE_FILES, check_not_workspace_file
from datactl.core.units import now_iso
from datactl.format.layout import KINDS, check_name, head_ref, tag_ref
from datactl.format.objects import DIR, FILE, SYMLINK, Commit, TreeEntry, symlink_entry
from datactl.format.pack import ObjectType
from datactl.lineage.graph import LineageGraph
from datactl.lineage.index import record_local_commit
from datactl.lineage.stores import LineageStore, query_stores
from datactl.remote.cache import Cache
from datactl.remote.locate import RemoteSpec
from datactl.remote.publish import PushResult, publish
from datactl.remote.readthrough import prefetch_trees
from datactl.store.chunkedfile import open_chunked
from datactl.store.chunker import Chunker
from datactl.store.diff import DiffResult, diff_trees
from datactl.store.filedata import chunk_ids_of, iter_file_bytes
from datactl.store.ingest import FileIngest, StoredFile
from datactl.store.sourcerecord import SOURCE_JOBS, record_sources, source_targets
from datactl.store.trees import build_tree, lookup_path
from datactl.store.walk import walk_files
from datactl.tables.diff import diff_table
from datactl.tables.result import TableDiff


@dataclass(frozen=True)
class FileEntry:
    """One file of a version."""

    path: str
    size: int
    digest: str


class Dataset(Closing):
    """One version of a dataset or model, read-only. Get one with ``Dataset.get``."""

    def __init__(self, location: Location, cache: Cache, commit_id: str) -> None:
        self._loc = location
        self._cache = cache
        self.id = commit_id
        self._commit: Commit = location.store.read_commit(commit_id)
        self._leases: list[int] = []

    # -- getting one -----------------------------------------------------------

    @classmethod
    def get(
        cls,
        name: str,
        version: str | None = None,
        *,
        remote: str | RemoteSpec | None = None,
        kind: str = "dataset",
        cache_dir: str | None = None,
    ) -> "Dataset":
        """The version of ``name`` tagged or identified by ``version`` (default: the latest).

        ``remote`` is a remote name or URL; it defaults to ``DATACTL_REMOTE``,
        then the workspace's remote, then the workspace's own store.
        """
        if kind not in KINDS:
            raise UsageError(f"kind must be one of {', '.join(KINDS)}")
        cache = Cache(cache_dir)
        loc = open_location(remote, cache)
        try:
            return cls(loc, cache, resolve_version(loc, cache, check_name(name), version, kind))
        except BaseException:
            loc.close()
            cache.close()
            raise

    def close(self) -> None:
        """Release cache leases and open files."""
        for fd in self._leases:
            os.close(fd)
        self._leases.clear()
        self._loc.close()
        self._cache.close()


    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, id={self.id[:12]!r}, kind={self.kind!r})"

    # -- properties --------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._commit.name

    @property
    def kind(self) -> str:
        return self._commit.kind

    @property
    def version(self) -> list[str]:
        """The tags that name this version."""
        if self._loc.refs is None:
            return list(self._commit.tags)
        prefix = f"tags/{self.name}/"
        return [r.ref[len(prefix):] for r in self._loc.refs.list(prefix) if r.commit == self.id]

    @property
    def message(self) -> str:
        return self._commit.message

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self._commit.time)

    @property
    def author(self) -> str:
        return self._commit.author

    @property
    def parents(self) -> list[str]:
        return list(self._commit.parents)

    @property
    def inputs(self) -> list[str]:
        return list(self._commit.inputs)

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._commit.metadata)

    @property
    def bytes_downloaded(self) -> int:
        """Bytes this object has fetched from the remote (compressed sizes)."""
        return self._loc.store.bytes_downloaded

    # -- reading -------------------------------------------------------------------

    def _tree(self) -> str:
        prefetch_trees(self._loc.store, self._commit.tree)
        return self._commit.tree

    def _walk(self) -> Iterator[tuple[str, TreeEntry]]:
        return walk_files(self._loc.store, self._tree())  # type: ignore[arg-type]

    def files(self, pattern: str | None = None) -> Iterator[FileEntry]:
        """Every file (path, size, digest), optionally those matching a glob like ``train/*.jpg``."""
        for path, e in self._walk():
            if e.kind == FILE and (pattern is None or fnmatch.fnmatchcase(path, pattern)):
                yield FileEntry(path, e.size, e.digest)

    def _entry(self, path: str) -> TreeEntry:
        entry = lookup_path(self._loc.store, self._commit.tree, path.strip("/"))  # type: ignore[arg-type]
        if entry is None or entry.kind == DIR:
            raise FileNotFoundError(f"{path} is not a file in {self.name} {self.id[:12]}")
        return entry

    def open(self, path: str) -> io.BufferedReader:
        """A seekable binary file that streams ``path``, fetching only the chunks it reads."""
        entry = self._entry(path)
        if entry.kind == SYMLINK:
            raise FileNotFoundError(f"{path} is a symlink to {entry.target}")
        if self._cache.file_ok(entry.digest, entry.size):
            return open(self._cache.file_path(entry.digest), "rb")
        return io.BufferedReader(open_chunked(self._loc.store, entry, path, self._loc.store.sources), buffer_size=1 << 16)  # type: ignore[arg-type]

    def read_bytes(self, path: str) -> bytes:
        with self.open(path) as f:
            return f.read()

    # -- local copies ----------------------------------------------------------------

    def get_local_copy(self, verify: bool = False) -> str:
        """A read-only, fully verified copy of this version in the shared cache; returns its folder.

        A second call, in this or another process, returns at once. The copy is
        held (never evicted) while this object is open.
        """
        cache, cid = self._cache, self.id
        path = cache.copy_path(cid)
        lease = cache.lock_copy(cid, exclusive=False)
        assert lease is not None
        if not os.path.isdir(path):
            os.close(lease)
            build = cache.lock_copy(cid, exclusive=True)
            assert build is not None
            if not os.path.isdir(path):  # nobody built it while we waited
                self._build_copy(path)
            fcntl.flock(build, fcntl.LOCK_SH)  # keep it as our lease
            lease = build
        self._repair_copy(path, deep=verify)
        self._leases.append(lease)
        cache.touch_copy(cid)
        if cache.max_size is not None:
            cache.prune()
        return path

    def _ensure_contents(self, entries: Sequence[tuple[str, TreeEntry]], deep: bool) -> None:
        """Put verified contents of ``entries`` in the cache, downloading missing chunks in batches."""
        todo = [(p, e) for p, e in entries if e.kind == FILE and not self._cache.file_ok(e.digest, e.size, deep)]
        for i in range(0, len(todo), 256):
            batch = todo[i : i + 256]
            self._loc.store.ensure(c for _, e in batch if not e.is_external for c in chunk_ids_of(self._loc.store, e))  # type: ignore[arg-type]
            for p, e in batch:
                if not self._cache.file_ok(e.digest, e.size):
                    self._cache.put_file(e.digest, iter_file_bytes(self._loc.store, e, p))  # type: ignore[arg-type]

    def _materialize(self, target: str, place: Callable[[str, str, TreeEntry], None]) -> None:
        """Write every entry under ``target``: links as links, files through ``place(src, dest, entry)``."""
        entries = list(self._walk())
        for p, _e in entries:
            check_not_workspace_file(p, f"version {self.id[:12]}")
        self._ensure_contents(entries, deep=False)
        for p, e in entries:
            dest = safe_join(target, p)
            make_dirs(os.path.dirname(dest))
            if e.kind == SYMLINK:
                os.symlink(e.target or "", dest)
            else:
                place(self._cache.file_path(e.digest), dest, e)

    def _build_copy(self, path: str) -> None:
        tmp = os.path.join(os.path.dirname(path), f".tmp-{self.id}-{os.getpid()}")
        remove_tree(tmp)
        os.makedirs(tmp)
        try:
            self._materialize(tmp, lambda src, dest, _e: self._cache.link_or_copy(src, dest))
            os.replace(tmp, path)
        except BaseException:
            remove_tree(tmp)
            raise

    def _repair_copy(self, path: str, deep: bool) -> None:
        """Re-fetch any file of the copy whose cached content was damaged (atomic per file)."""
        bad = []
        for p, e in self._walk():
            if e.kind != FILE:
                continue
            dest = os.path.join(path, *p.split("/"))
            try:
                st = os.stat(dest)
                cached = os.stat(self._cache.file_path(e.digest))
            except FileNotFoundError:
                bad.append((p, e))
                continue
            if st.st_ino != cached.st_ino and st.st_size == e.size and not deep:
                continue  # a plain copy (no hard links here); size checked
            if st.st_ino != cached.st_ino or not self._cache.file_ok(e.digest, e.size, deep):
                bad.append((p, e))
        if not bad:
            return
        for _, e in bad:
            try:
                os.unlink(self._cache.file_path(e.digest))
            except FileNotFoundError:
                pass
        self._ensure_contents(bad, deep=False)
        for p, e in bad:
            dest = os.path.join(path, *p.split("/"))
            tmp = os.path.join(os.path.dirname(dest), temp_name(os.path.basename(dest), f"-{os.getpid()}"))
            self._cache.link_or_copy(self._cache.file_path(e.digest), tmp)
            os.replace(tmp, dest)

    def get_mutable_local_copy(self, target: str, overwrite: bool = False) -> str:
        """Write a writable copy of this version into ``target``; returns its path."""
        target = os.path.abspath(target)
        if os.path.exists(target) and os.listdir(target):
            if not overwrite:
                raise UsageError(f"{target} is not empty", "pass overwrite=True to replace its contents")
            remove_tree(target)
        os.makedirs(target, exist_ok=True)

        def place(src: str, dest: str, e: TreeEntry) -> None:
            shutil.copyfile(src, dest)
            os.chmod(dest, e.mode | 0o200)

        self._materialize(target, place)
        return target

    # -- relations ----------------------------------------------------------------------

    @overload
    def diff(self, other: "Dataset | str") -> DiffResult: ...

    @overload
    def diff(self, other: "Dataset | str", path: str, *, key: Sequence[str] | None = None, limit: int | None = None) -> TableDiff: ...

    def diff(self, other: "Dataset | str", path: str | None = None, *, key: Sequence[str] | None = None, limit: int | None = None) -> DiffResult | TableDiff:
        """Changes from ``other`` (a Dataset or commit id in the same store) to this version.

        With ``path`` (a CSV, TSV, JSON Lines or Parquet file), the rows of that table added, removed, changed and
        moved: matched by ``key`` columns, or by position (docs/tables.md). ``.to_pandas()`` / ``.to_arrow()`` give
        the changes as a frame.
        """
        other_id = other.id if isinstance(other, Dataset) else other
        other_commit = self._loc.store.read_commit(other_id)
        if path is None:
            prefetch_trees(self._loc.store, other_commit.tree)
            return diff_trees(self._loc.store, other_commit.tree, self._tree())  # type: ignore[arg-type]
        path = path.strip("/")
        store = self._loc.store
        old, new = (lookup_path(store, tree, path) for tree in (other_commit.tree, self._commit.tree))  # type: ignore[arg-type]
        if (old is None or old.kind != FILE) and (new is None or new.kind != FILE):
            raise FileNotFoundError(f"{path} is not a file in {other_id[:12]} or {self.id[:12]}")
        where = (f"{path} in {other_id[:12]}", f"{path} in {self.id[:12]}")
        return diff_table(store, path, old if old is not None and old.kind == FILE else None, new if new is not None and new.kind == FILE else None,  # type: ignore[arg-type]
                          key=key, limit=limit, where=where)

    def lineage(self, direction: str = "up", depth: int | None = None) -> LineageGraph:
        """Versions this one derives from (``up``), that derive from it (``down``), or ``both``.

        Answered from the store's lineage index, across every dataset and
        model in it; ``depth`` limits the number of edges followed.
        """
        loc = self._loc
        if loc.missing is not None:
            raise StoreNotFound(f"{loc.missing.message}: lineage needs the store's index", loc.missing.hint) from loc.missing.__cause__
        if loc.remote is not None:
            store = LineageStore(loc.remote.lineage_index(), loc.remote.spec.label)
        elif loc.refs is not None:
            store = LineageStore.for_repository(loc.store.cache)
        else:
            why = loc.unreachable
            assert why is not None
            raise type(why)(f"{why.message}; lineage needs the store's index", "connect to the store and try again") from why
        return query_stores([store], self.id, direction, depth)

    # -- creating versions ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        *,
        parents: Iterable["Dataset | str"] = (),
        inputs: Iterable["Dataset | str"] = (),
        remote: str | RemoteSpec | None = None,
        kind: str = "dataset",
        cache_dir: str | None = None,
    ) -> "DatasetDraft":
        """Start a new version of ``name``. With one parent, the draft starts from its files.

        Without parents, the draft starts empty, and the new version still
        follows the dataset's current head in history (so it can be pushed).
        Without ``remote``, a draft whose parents or inputs are ``Dataset``
        objects goes to their store (and cache); otherwise the default store
        (see ``Dataset.get``).
        """
        if kind not in KINDS:
            raise UsageError(f"kind must be one of {', '.join(KINDS)}")
        parents, inputs = list(parents), list(inputs)
        if remote is None:
            remote, cache_dir = _store_of([*parents, *inputs], cache_dir)
        cache = Cache(cache_dir)
        loc = open_location(remote, cache)
        return DatasetDraft(loc, cache, check_name(name), kind, parents, inputs)


def _store_of(versions: Sequence["Dataset | str"], cache_dir: str | None) -> tuple[RemoteSpec | None, str | None]:
    """The remote (and, unless given, the cache folder) the ``Dataset`` objects among ``versions`` were read from.

    (None, cache_dir) when there are none, or they were read from a
    workspace's own store: the default store applies.
    """
    read = [v for v in versions if isinstance(v, Dataset) and v._loc.spec is not None]
    if not read:
        return None, cache_dir
    urls = sorted({v._loc.url for v in read})
    if len(urls) > 1:
        raise UsageError(f"the parents and inputs come from different stores ({', '.join(urls)})", "pass remote= to say which store the new version goes to")
    return read[0]._loc.spec, cache_dir if cache_dir is not None else read[0]._cache.root


def _folders_above(path: str) -> Iterator[str]:
    """'a/b/c' -> 'a', 'a/b'."""
    parts = path.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


class DatasetDraft:
    """A version being assembled: add and remove files, set metadata, commit, push."""

    def __init__(self, loc: Location, cache: Cache, name: str, kind: str, parents: list, inputs: list) -> None:
        self._loc = loc
        self._cache = cache
        self.name = name
        self.kind = kind
        self._repo = loc.store.cache
        self.parents = [resolve_any(loc, cache, p) if isinstance(p, str) else p.id for p in parents]
        self.inputs = [resolve_any(loc, cache, i) if isinstance(i, str) else i.id for i in inputs]
        self.metadata: dict[str, Any] = {}
        self._files: dict[str, TreeEntry] = {}
        self._folders: set[str] = set()  # every folder a path of _files was put under (some may be empty since)
        self._chunker = Chunker(self._repo.config.chunker)
        self.commit_id: str | None = None
        self._tags: list[str] = []
        if len(self.parents) == 1:
            base = loc.store.read_commit(self.parents[0])
            prefetch_trees(loc.store, base.tree)
            self._files = dict(walk_files(loc.store, base.tree))  # type: ignore[arg-type]
            self._folders = {folder for p in self._files for folder in _folders_above(p)}
        if not self.parents and loc.refs is not None:
            head = loc.refs.get(head_ref(kind, name))
            if head is not None:
                loc.store.ensure([head])  # the new version follows it: a push checks it is in our history
                self.parents = [head]

    def add_files(self, path: str, pattern: str | None = None, dest: str | None = None) -> int:
        """Add a file, or a folder's files (matching ``pattern``), under ``dest``; returns how many."""
        path = os.path.abspath(path)
        if not os.path.exists(path):
            raise UsageError(f"{path} does not exist")
        dest = (dest or "").strip("/")
        if os.path.isfile(path):
            items = [(os.path.basename(path), path)]
        else:
            items = []
            for dirpath, _dirs, files in walk_folder(path):
                for f in files:
                    rel = os.path.relpath(os.path.join(dirpath, f), path).replace(os.sep, "/")
                    if pattern is None or fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(f, pattern):
                        items.append((rel, os.path.join(dirpath, f)))

        def stored(target: str, f: StoredFile) -> None:
            c = f.content
            self._files[target] = TreeEntry(target.rsplit("/", 1)[-1], FILE, f.stat.st_mode & 0o777, c.size, c.digest, c.chunks, c.chunklist)

        with FileIngest(self._repo, self._chunker, stored) as ingest:
            for rel, full in items:
                target = check_rel_path(f"{dest}/{rel}" if dest else rel)
                if target in WORKSPACE_FILES:
                    raise UsageError(f"{full} cannot be added as {target}: a version never carries a workspace's own configuration", "give it another name with dest=")
                self._add_one(ingest, target, full)
            ingest.drain()
        return len(items)

    def add_external_files(self, url: str, dest: str | None = None) -> int:
        """Record the objects ``url`` names (an object, a prefix ending in '/', or a glob; s3://, gs://, file://,
        https://) under ``dest`` as external files: their bytes stay at the source; returns how many."""
        files = source_targets(self._repo.sources, [url], (dest or "").strip("/"))
        for source, target in files:
            if target in WORKSPACE_FILES:
                raise UsageError(f"{source} cannot be added as {target}: a version never carries a workspace's own configuration", "give it another name with dest=")
        for target, entry in record_sources(self._repo.sources, self._repo.config.chunker, files, SOURCE_JOBS):
            self._make_room(target)
            self._files[target] = entry
        return len(files)

    def _make_room(self, target: str) -> None:
        """Drop a folder or file in the way of a file at ``target``."""
        parts = target.split("/")
        if target in self._folders:  # a folder becomes a file (rare: the scan of every path is paid only then)
            for existing in [p for p in self._files if p.startswith(target + "/")]:
                del self._files[existing]
        self._folders.update(_folders_above(target))
        for i in range(1, len(parts)):
            self._files.pop("/".join(parts[:i]), None)

    def _add_one(self, ingest: "FileIngest[str]", target: str, full: str) -> None:
        """Put ``full`` at ``target``, replacing a folder or file in the way (its bytes go through ``ingest``)."""
        parts = target.split("/")
        self._make_room(target)
        if os.path.islink(full):
            self._files[target] = symlink_entry(parts[-1], os.readlink(full))
            return
        ingest.add(full, os.path.getsize(full), target)

    def remove_files(self, pattern: str) -> int:
        """Remove files whose path matches the glob ``pattern`` (or lie under a folder of that name)."""
        doomed = [p for p in self._files if fnmatch.fnmatchcase(p, pattern) or p.startswith(pattern.rstrip("/") + "/")]
        for p in doomed:
            del self._files[p]
        return len(doomed)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata.update(metadata)

    def list_files(self) -> list[str]:
        return sorted(self._files)

    def commit(self, message: str, tags: Sequence[str] = ()) -> str:
        """Record the draft as a version in the local cache store; returns its id. ``push`` publishes it."""
        for t in tags:
            check_name(t, "tag")
        tree = build_tree(self._repo, sorted(self._files.items(), key=lambda kv: kv[0]))
        commit = Commit(tree, tuple(self.parents), self.kind, self.name, message, default_author(), now_iso(),
                        tuple(tags), dict(self.metadata), tuple(self.inputs))
        self.commit_id = self._repo.put(ObjectType.COMMIT, commit.encode())
        self._repo.flush()
        self._tags = list(tags)
        if self._loc.remote is None and self._loc.refs is not None:
            # Reading a workspace's own store: the version lands there directly.
            ref = head_ref(self.kind, self.name)
            self._loc.refs.update(ref, self.commit_id, expected=self._loc.refs.get(ref) if not self.parents else self.parents[0])
            for t in tags:
                self._loc.refs.update(tag_ref(self.name, t), self.commit_id, expected=None)
            record_local_commit(self._repo, self.commit_id)
        return self.commit_id

    def push(self) -> PushResult:
        """Publish the committed version to the remote (objects first, then its head by compare-and-swap)."""
        if self.commit_id is None:
            raise UsageError("commit the draft before pushing it")
        if self._loc.remote is None:
            if self._loc.unreachable is not None:
                raise self._loc.unreachable
            raise UsageError("no remote to push to: the draft was made in a workspace's own store", "push from the workspace with `datactl push`")
        ref = head_ref(self.kind, self.name)
        try:
            return publish(
                self._repo, self._loc.remote, ref, self.commit_id,
                tags={tag_ref(self.name, t): self.commit_id for t in self._tags}, tmp_dir=self._loc.tmp_dir,
            )
        except RefConflict as exc:
            raise RefConflict(exc.message, "another version was pushed since this draft's parent; create the draft again from the latest") from None

    def get(self) -> Dataset:
        """The committed version as a Dataset."""
        if self.commit_id is None:
            raise UsageError("commit the draft first")
        return Dataset(self._loc, self._cache, self.commit_id)


def log_model(
    path: str,
    name: str,
    *,
    inputs: Iterable["Dataset | str"] = (),
    metadata: dict[str, Any] | None = None,
    message: str | None = None,
    tags: Sequence[str] = (),
    remote: str | RemoteSpec | None = None,
) -> Dataset:
    """Commit the model file or folder at ``path`` as a new version of model ``name`` and push it.

    ``inputs`` are the datasets (or models) it was trained on: the Dataset
    objects training code got from ``Dataset.get`` can be passed straight in.
    """
    draft = Dataset.create(name, kind="model", inputs=inputs, remote=remote)
    draft.add_files(path)
    draft.set_metadata(metadata or {})
    draft.commit(message or f"model {name} from {os.path.basename(os.path.abspath(path))}", tags=tags)
    if draft._loc.remote is not None or draft._loc.unreachable is not None:
        draft.push()  # raises when the store cannot be reached: the model is committed in the cache only
    return draft.get()
