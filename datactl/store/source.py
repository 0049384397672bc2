"""A version's files as checks see them: list them, and open any one as a verified stream.

Validation rules and deep verification see a version only through a
``VersionSource``: ``entries()`` lists (path, size, digest) without reading
file data, and ``open(entry)`` returns a seekable, verified stream that reads
only the chunks it is asked for. The source reads through an ``ObjectReader``,
so a version in a workspace's store and one read in place on a remote
(``datactl.remote.source``) behave alike; ``stats`` tells exactly what was
read, split into metadata (commits, trees, chunk lists) and file data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Iterator

from datactl.core.closing import Closing
from datactl.core.errors import DatactlError
from datactl.format.objects import DIR, FILE, Tree, TreeEntry
from datactl.store.chunkedfile import open_chunked
from datactl.store.packread import META_GAP, ReadStats
from datactl.store.reader import ObjectReader
from datactl.store.repository import Repository
from datactl.store.sourceread import SourceBackends
from datactl.store.trees import DecodedTrees, lookup_path
from datactl.store.walk import walk_files

# Decoded chunks kept for re-reads (two rules reading one file, a seek back).
CHUNK_CACHE_BYTES = 32 * 1024 * 1024
# Tree entries ``lookup`` keeps decoded (a path's folders are read once for many lookups).
KEPT_TREE_ENTRIES = 200_000


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


class VersionSource(Closing):
    """A version's files: listed from its trees, opened as verified streams."""

    commit_id: str | None
    tree_id: str
    label: str

    def __init__(self, reader: ObjectReader, tree_id: str, commit_id: str | None, label: str, *, owns_reader: bool = True) -> None:
        self.reader = reader
        self.tree_id = tree_id
        self.commit_id = commit_id
        self.label = label
        self.sources = SourceBackends()
        self._closers: list[Callable[[], None]] = []
        self._owns_reader = owns_reader
        self._trees = _KeptTrees(reader)
        # Set by whoever opens the source: the version checks compare this one with when it is not the first
        # parent (``validate --base``), and a folder where checks keep what they compute from a file's bytes,
        # under its digest (None: nothing is kept).
        self.base_id: str | None = None
        self.cache_dir: str | None = None

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` when the source is closed (e.g. to close the workspace or remote it reads)."""
        self._closers.append(fn)

    @property
    def stats(self) -> ReadStats:
        return self.reader.stats

    def entries(self) -> Iterator[SourceEntry]:
        """Every file and symlink, in byte order of path, reading trees only."""
        for path, e in walk_files(self.reader, self.tree_id, max_gap=META_GAP):
            yield SourceEntry(path, e.kind, e.size, e.digest, e.mode, e)

    def lookup(self, path: str) -> SourceEntry | None:
        """The file or symlink at ``path``, reading only the trees along it (once); None when there is none (or a folder). One thread at a time."""
        e = lookup_path(self._trees, self.tree_id, path)  # type: ignore[arg-type]  (it needs only read_tree)
        if e is None or e.kind == DIR:
            return None
        return SourceEntry(path, e.kind, e.size, e.digest, e.mode, e)

    def parents(self) -> tuple[str, ...]:
        """The version's parent commits, first parent first (none for a bare tree)."""
        return self.reader.read_commit(self.commit_id).parents if self.commit_id else ()

    def other(self, commit_id: str, label: str) -> "VersionSource":
        """Another version of the same store, read through this source's reader (closing it leaves the reader open)."""
        return VersionSource(self.reader, self.reader.read_commit(commit_id).tree, commit_id, label, owns_reader=False)

    def open(self, entry: SourceEntry) -> io.BufferedReader:
        """A seekable, buffered stream of the file's verified bytes."""
        if entry.kind != FILE or entry.tree_entry is None:
            raise DatactlError(f"{entry.path} is not a regular file")
        with self.reader.packs.stats_lock:
            self.reader.stats.files_opened += 1
        return io.BufferedReader(open_chunked(self.reader, entry.tree_entry, entry.path, self.sources), buffer_size=64 * 1024)

    def read_bytes(self, entry: SourceEntry) -> bytes:
        with self.open(entry) as f:
            return f.read()

    def close(self) -> None:
        if self._owns_reader:
            self.reader.close()
        self.sources.close()
        while self._closers:
            self._closers.pop()()


class _KeptTrees:
    """``read_tree`` keeping the trees it decoded: looking up many paths of one folder reads that folder once."""

    def __init__(self, reader: ObjectReader) -> None:
        self._reader = reader
        self._trees = DecodedTrees(KEPT_TREE_ENTRIES)

    def read_tree(self, oid: str) -> Tree:
        return self._trees.get(oid, self._reader.read)


def local_source(repo: Repository, commit_id: str | None = None, *, tree_id: str | None = None, label: str | None = None) -> VersionSource:
    """A version (or just a tree) of a local store, such as a workspace's own."""
    if tree_id is None:
        if commit_id is None:
            raise ValueError("give a commit id or a tree id")
        tree_id = repo.read_commit(commit_id).tree
    reader = ObjectReader(repo.backend, repo.index, label or repo.backend.url, cache_bytes=CHUNK_CACHE_BYTES)
    return VersionSource(reader, tree_id, commit_id, label or (commit_id[:12] if commit_id else f"tree {tree_id[:12]}"))
