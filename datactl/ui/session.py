"""One store opened for the pages: every question a page asks, answered by the library's own calls.

Listing is ``RefStore.datasets`` (``datactl datasets``), history ``iter_history``
(``datactl log``), a diff ``diff_trees`` (``datactl diff``), lineage
``api.lineage.lineage`` (``datactl lineage``), checks ``verify_remote`` and
``api.checks.validate`` (``datactl verify`` / ``validate`` with ``--remote``).
Any store is read in place through a ``RemoteStore`` (a workspace's own store
too: it has the same layout), so nothing here writes to it.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Iterator

from datactl.api.checks import validate
from datactl.api.lineage import lineage
from datactl.core.closing import Closing
from datactl.core.errors import PathNotFound, UnknownRef, UnsafePath
from datactl.core.safepath import check_rel_path
from datactl.format.layout import check_name
from datactl.format.objects import FILE, Commit, Tree, TreeEntry, decode_commit, decode_tree
from datactl.format.pack import ObjectType
from datactl.lineage.graph import LineageGraph
from datactl.lineage.stores import LineageStore
from datactl.remote.locate import StoreChoice, choose_store
from datactl.remote.remotestore import RemoteStore
from datactl.remote.source import remote_source, resolve_on_remote
from datactl.store.chunkedfile import open_chunked
from datactl.store.diff import DiffResult, diff_trees
from datactl.store.history import iter_history
from datactl.store.packread import META_GAP
from datactl.store.reader import ObjectReader
from datactl.store.refs import DatasetInfo
from datactl.store.source import CHUNK_CACHE_BYTES
from datactl.store.sourceread import SourceBackends
from datactl.store.trees import DecodedTrees, lookup_path
from datactl.store.walk import walk_files
from datactl.upkeep.verify import StoreVerifyReport, verify_remote
from datactl.validation import ValidationReport

PREFETCH_COMMITS = 4096  # up to this many commits are read at once for the store and history pages (about 2 MiB)
DECODED_TREE_ENTRIES = 150_000  # entries of decoded trees kept (some tens of MB)


@dataclass(frozen=True)
class Version:
    """A version a page is about: who it belongs to and its commit."""

    id: str
    commit: Commit

    @property
    def ref(self) -> str:
        """NAME@ID, the form every page URL uses (a tag may move; an id never does)."""
        return f"{self.commit.name}@{self.id[:12]}"


class CachedObjects:
    """A reader that remembers the commits and trees it read: they never change, and pages ask for the same ones again.

    It is what the walks, the diff and the history read through (``BatchReader``, ``TreeReader``).
    """

    def __init__(self, reader: ObjectReader, tree_entries: int = DECODED_TREE_ENTRIES) -> None:
        self.reader = reader
        # Decoded trees too: a folder of 100,000 files is one object that takes seconds to decode and check.
        self._trees = DecodedTrees(tree_entries)

    def read(self, oid: str) -> bytes:
        raw = self.reader.cached(oid)
        return raw if raw is not None else self.reader.read_batch([oid], remember=True)[oid]

    def read_batch(self, oids: Iterable[str], max_gap: int = META_GAP) -> dict[str, bytes]:
        return self.reader.read_batch(oids, max_gap, remember=True)

    def has(self, oid: str) -> bool:
        return self.reader.has(oid)

    def read_commit(self, oid: str) -> Commit:
        return decode_commit(oid, self.read(oid))

    def read_tree(self, oid: str) -> Tree:
        return self._trees.get(oid, self.read)
        tree = decode_tree(oid, self.read(oid))
        self._trees[oid] = tree
        self._tree_entries += len(tree.entries)
        while self._tree_entries > self._tree_budget and len(self._trees) > 1:
            self._tree_entries -= len(self._trees.popitem(last=False)[1].entries)
        return tree


class StoreSession(Closing):
    """A store read in place, shared by the requests of one server (one request at a time: the reader is not re-entrant)."""

    def __init__(self, choice: StoreChoice) -> None:
        self.spec = choice.spec
        self.store = RemoteStore(choice.spec, choice.cache_dir)
        self.lock = threading.RLock()
        self._datasets: list[DatasetInfo] = []
        self.sources = SourceBackends()  # where external files' bytes are read from (their chunks are in no pack)
        try:
            self.reader: ObjectReader = self.store.reader(cache_bytes=CHUNK_CACHE_BYTES)
            self.objects = CachedObjects(self.reader)
            self.refresh()
        except BaseException:
            self.store.close()
            raise

    @classmethod
    def open(cls, store: str | None, options: dict[str, Any] | None = None) -> "StoreSession":
        """The store ``store`` names (a remote, URL or path; None: the workspace's own, or DATACTL_REMOTE)."""
        return cls(choose_store(store, options=options))

    @property
    def label(self) -> str:
        """What pages call the store: its remote name or URL (never credentials: those stay in the backend's config)."""
        return self.spec.label

    def close(self) -> None:
        self.reader.close()
        self.sources.close()
        self.store.close()

    # -- versions -------------------------------------------------------------------------

    def refresh(self) -> None:
        """The store as it is now: its index files and its refs (once per request; a page then reads one state)."""
        self.store.sync_index()
        self._datasets = self.store.refs.datasets()

    def datasets(self) -> list[DatasetInfo]:
        """The datasets and models with heads and tags (what ``datactl datasets`` lists), as of the last ``refresh``."""
        return list(self._datasets)

    def info(self, name: str) -> DatasetInfo:
        check_name(name)
        for i in self.datasets():
            if i.name == name:
                return i
        raise UnknownRef(f"no dataset or model {name!r} in {self.label}", "the store page lists them")

    def prefetch_commits(self) -> None:
        """Read the store's commits together (a few ranged reads), when there are few enough to keep: history walks then read none."""
        ids = list(islice(self.store.index.iter_ids(ObjectType.COMMIT), PREFETCH_COMMITS + 1))
        if len(ids) <= PREFETCH_COMMITS:
            self.objects.read_batch(ids)

    def commits(self, ids: list[str]) -> dict[str, Commit]:
        """Several commits in one batched read (the store page's heads)."""
        found = self.objects.read_batch(ids)
        return {cid: decode_commit(cid, found[cid]) for cid in ids if cid in found}

    def version(self, name: str, version: str | None = None) -> Version:
        """NAME@VERSION (a tag, an id or its prefix, HEAD~N; None: the head) as a commit of that dataset or model."""
        info = self.info(name)
        ref = f"{name}@{version}" if version else name
        cid = resolve_on_remote(self.store, self.reader, ref, name, info.kind)
        return Version(cid, self.objects.read_commit(cid))

    def history(self, start: str, limit: int) -> list[tuple[str, Commit]]:
        """Newest first, each version once (merges included), at most ``limit``."""
        return list(iter_history(self.objects, start, limit))  # type: ignore[arg-type]

    def tags_of(self, info: DatasetInfo) -> dict[str, list[str]]:
        """commit id -> the tags naming it."""
        out: dict[str, list[str]] = {}
        for tag, cid in sorted(info.tags.items()):
            out.setdefault(cid, []).append(tag)
        return out

    # -- files ------------------------------------------------------------------------------

    def entry(self, v: Version, path: str) -> TreeEntry:
        """The entry at ``path`` (checked like a checkout's names), or PathNotFound."""
        if path:
            try:
                check_rel_path(path)
            except UnsafePath as exc:
                raise UnsafePath(f"the address names an unsafe path: {exc.message}", "paths in addresses are checked as a checkout checks names: no '..', NUL or absolute parts") from None
        found = lookup_path(self.objects, v.commit.tree, path)  # type: ignore[arg-type]
        if found is None:
            raise PathNotFound(f"{path} is not in {v.ref}", "the version page lists its files")
        return found

    def folder(self, entry: TreeEntry) -> list[TreeEntry]:
        """A folder's entries (one tree object: the page lists lazily, folder by folder)."""
        return list(self.objects.read_tree(entry.digest).entries)

    def open_file(self, entry: TreeEntry, path: str) -> io.BufferedReader:
        """A seekable verified stream that reads only the chunks asked for (an external file's from its source)."""
        if entry.kind != FILE:
            raise PathNotFound(f"{path} is not a regular file")
        return io.BufferedReader(open_chunked(self.reader, entry, path, self.sources), buffer_size=64 * 1024)

    def walk(self, v: Version) -> Iterator[tuple[str, TreeEntry]]:
        return walk_files(self.objects, v.commit.tree, max_gap=META_GAP)

    # -- relations and checks ----------------------------------------------------------------

    def diff(self, old: Version | None, new: Version) -> DiffResult:
        return diff_trees(self.objects, old.commit.tree if old else None, new.commit.tree)

    def lineage(self, v: Version, direction: str) -> LineageGraph:
        index = LineageStore(self.store.lineage_index(), self.label)
        return lineage(v.id, direction, stores=[index])

    def verify(self, v: Version) -> StoreVerifyReport:
        return verify_remote(self.store, v.id, name=v.commit.name, kind=v.commit.kind)

    def validate(self, v: Version) -> ValidationReport:
        """The rules of the current folder's datactl.toml (as ``datactl validate --remote``) on this version."""
        source = remote_source(self.store, v.id, name=v.commit.name, kind=v.commit.kind)
        with source:
            return validate(source=source)

