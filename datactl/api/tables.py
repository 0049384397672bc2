"""Tables as library calls: the row-level diff of a table between two versions (statistics: ``table_stats``).

Both versions are read from the workspace's store, or (``remote``) in place
on a remote store, through one ``ObjectReader``: a positional diff of a CSV
or JSON Lines file reads only the chunks that differ between the versions.
The key of a table, when not given, comes from ``[tables."PATH"] key`` in
datactl.toml.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from datactl.api.checks import remote_context
from datactl.core.errors import DatactlError, PathNotFound, UsageError
from datactl.core.parallel import parallel_map
from datactl.core.settings import read_settings, table_keys
from datactl.format.objects import DIR, FILE, TreeEntry
from datactl.remote.locate import settings_root, workspace_root
from datactl.remote.remotestore import RemoteStore
from datactl.remote.source import resolve_on_remote
from datactl.store.diff import MODIFIED, RENAMED, diff_trees
from datactl.store.reader import ObjectReader
from datactl.store.source import CHUNK_CACHE_BYTES
from datactl.store.trees import lookup_path
from datactl.store.walk import walk_files
from datactl.tables.diff import diff_table
from datactl.tables.engine import Engine
from datactl.tables.formats import require_table_format, table_format
from datactl.tables.result import TableDiff
from datactl.tables.stats import FileStats, StatsCache, StatsDiff, TableStats, compare_stats, file_stats, table_stats
from datactl.workspace.workspace import Workspace


@dataclass(frozen=True)
class Versions:
    """Versions' trees in one store, read through one reader; ``cache_dir`` holds table statistics."""

    reader: ObjectReader
    trees: tuple[str | None, ...]
    labels: tuple[str, ...]
    cache_dir: str | None

    def entry(self, side: int, path: str) -> TreeEntry | None:
        tree = self.trees[side]
        e = lookup_path(self.reader, tree, path) if tree else None
        if e is not None and e.kind == DIR:
            raise UsageError(f"{path} is a folder in {self.labels[side]}", "name a table file: datactl diff A B PATH")
        return e if e is None or e.kind == FILE else None


@contextmanager
def open_versions(refs: Sequence[str], remote: str | None = None, options: dict[str, Any] | None = None) -> Iterator[Versions]:
    """Versions ``refs`` of the workspace's store, or of ``remote`` (read in place)."""
    if remote is None:
        with Workspace.open() as ws:
            cids = [ws.resolve(r) for r in refs]
            reader = ObjectReader(ws.repo.backend, ws.repo.index, ws.repo.backend.url, cache_bytes=CHUNK_CACHE_BYTES)
            try:
                yield Versions(reader, tuple(ws.repo.read_commit(c).tree for c in cids), _labels(refs, cids), ws.layout.tables_dir)
            finally:
                reader.close()
        return
    ctx = remote_context(remote, None, options)
    with RemoteStore(ctx.spec, ctx.cache_dir) as rs:
        rs.sync_index()
        reader = rs.reader(cache_bytes=CHUNK_CACHE_BYTES)
        try:
            # Each step for all versions at once: a round trip each, not one per version.
            cids = list(parallel_map(lambda r: resolve_on_remote(rs, reader, r, ctx.name, ctx.kind), refs, len(refs), "datactl-refs"))
            reader.read_batch(cids, remember=True)
            trees = tuple(reader.read_commit(c).tree for c in cids)
            reader.read_batch(trees, remember=True)
            yield Versions(reader, trees, _labels(refs, cids), ctx.tables_dir)
        finally:
            reader.close()


def _labels(refs: Sequence[str], cids: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{r} ({c[:12]})" for r, c in zip(refs, cids))


def configured_keys(root: str | None = None) -> dict[str, tuple[str, ...]]:
    """The key of each table configured in datactl.toml (``[tables."PATH"] key``); none outside a workspace."""
    where = workspace_root(root) or settings_root(root)
    if where is None:
        return {}
    try:
        settings = read_settings(where)
    except DatactlError:
        return {}
    return table_keys(settings)


def _diff_one(v: Versions, path: str, old_path: str, key: Sequence[str] | None, limit: int | None) -> TableDiff:
    require_table_format(path)
    old, new = v.entry(0, old_path), v.entry(1, path)
    if old is None and new is None:
        raise PathNotFound(f"{path} is in neither {v.labels[0]} nor {v.labels[1]}", f"`datactl diff {v.labels[0].split()[0]} {v.labels[1].split()[0]}` lists what changed")
    before = v.reader.stats.data_bytes
    result = diff_table(v.reader, path, old, new, key=key, limit=limit, where=(f"{old_path} in {v.labels[0]}", f"{path} in {v.labels[1]}"))
    result.bytes_read = v.reader.stats.data_bytes - before
    return result


def diff_table_versions(
    ref_a: str,
    ref_b: str,
    path: str,
    *,
    key: Sequence[str] | None = None,
    limit: int | None = None,
    remote: str | None = None,
    options: dict[str, Any] | None = None,
) -> TableDiff:
    """The rows of table ``path`` that changed from ``ref_a`` to ``ref_b`` (by ``key``, or the configured key, or position)."""
    path = path.strip("/")
    key = key or configured_keys().get(path)
    with open_versions((ref_a, ref_b), remote, options) as v:
        return _diff_one(v, path, path, key, limit)


def diff_changed_tables(
    ref_a: str, ref_b: str, *, limit: int | None = None, remote: str | None = None, options: dict[str, Any] | None = None
) -> list[TableDiff]:
    """A row diff of every table modified (or renamed and changed) between two versions, with each one's configured key."""
    keys = configured_keys()
    with open_versions((ref_a, ref_b), remote, options) as v:
        changes = diff_trees(v.reader, *v.trees).changes
        return [
            _diff_one(v, c.path, c.old_path or c.path, keys.get(c.path), limit)
            for c in changes
            if table_format(c.path) is not None and (c.status == MODIFIED or (c.status == RENAMED and c.old_digest != c.new_digest))
        ]


@dataclass
class VersionTableStats:
    """``datactl stats``: every table's column statistics, and the other files by type and size, under a path of a version."""

    version: str
    path: str
    tables: list[TableStats]
    files: FileStats

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "path": self.path, "tables": [t.to_dict() for t in self.tables], "files": self.files.to_dict()}


def _tables_under(v: Versions, side: int, path: str) -> tuple[list[tuple[str, TreeEntry]], list[tuple[str, int]]]:
    """(table files, other files as (path, size)) at or under ``path`` in version ``side``."""
    tree = v.trees[side]
    if tree is None:
        return [], []
    if path:
        e = lookup_path(v.reader, tree, path)
        if e is None:
            raise PathNotFound(f"{path} is not in {v.labels[side]}", f"`datactl ls {v.labels[side].split()[0]}` lists what it holds")
        listing = [(path, e)] if e.kind != DIR else list(walk_files(v.reader, e.digest, path + "/"))
    else:
        listing = list(walk_files(v.reader, tree))
    files = [(p, e) for p, e in listing if e.kind == FILE]
    return [(p, e) for p, e in files if table_format(p) is not None], [(p, e.size) for p, e in files if table_format(p) is None]


def _stats(engine: Engine, v: Versions, side: int, path: str, entry: TreeEntry) -> TableStats:
    fmt = table_format(path)
    assert fmt is not None
    return table_stats(engine, v.reader, entry, path, fmt, f"{path} in {v.labels[side]}", StatsCache(v.cache_dir))


def version_table_stats(ref: str = "HEAD", path: str = "", *, remote: str | None = None, options: dict[str, Any] | None = None) -> VersionTableStats:
    """Statistics of the tables (rows, columns, types, nulls, distinct, min/max/mean, top values) and other files under ``path``."""
    path = path.strip("/")
    with open_versions((ref,), remote, options) as v:
        tables, others = _tables_under(v, 0, path)
        out: list[TableStats] = []
        if tables:
            with Engine() as engine:
                out = [_stats(engine, v, 0, p, e) for p, e in tables]
        return VersionTableStats(v.labels[0], path, out, file_stats(others))


def diff_table_stats(
    ref_a: str, ref_b: str, path: str = "", *, remote: str | None = None, options: dict[str, Any] | None = None
) -> list[StatsDiff]:
    """How the statistics of each table changed (or added, or removed) under ``path`` moved from ``ref_a`` to ``ref_b``."""
    path = path.strip("/")
    with open_versions((ref_a, ref_b), remote, options) as v:
        changed = [c for c in diff_trees(v.reader, *v.trees).changes if table_format(c.path) is not None]
        if path:
            changed = [c for c in changed if c.path == path or c.path.startswith(path + "/")]
        if not changed:
            return []
        out = []
        with Engine() as engine:
            for c in changed:
                old_path = c.old_path or c.path
                old, new = v.entry(0, old_path), v.entry(1, c.path)
                out.append(
                    compare_stats(
                        c.path,
                        _stats(engine, v, 0, old_path, old) if old is not None else None,
                        _stats(engine, v, 1, c.path, new) if new is not None else None,
                    )
                )
        return out
