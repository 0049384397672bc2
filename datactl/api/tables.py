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
from datactl.core.settings import read_settings, table_keys
from datactl.format.objects import DIR, FILE, TreeEntry
from datactl.remote.locate import settings_root, workspace_root
from datactl.remote.remotestore import RemoteStore
from datactl.remote.source import resolve_on_remote
from datactl.store.diff import MODIFIED, RENAMED, diff_trees
from datactl.store.reader import ObjectReader
from datactl.store.source import CHUNK_CACHE_BYTES
from datactl.store.trees import lookup_path
from datactl.tables.diff import diff_table
from datactl.tables.formats import table_format
from datactl.tables.result import TableDiff
from datactl.workspace.workspace import Workspace


@dataclass(frozen=True)
class TwoVersions:
    """Two versions' trees in one store, read through one reader."""

    reader: ObjectReader
    trees: tuple[str | None, str | None]
    labels: tuple[str, str]

    def entry(self, side: int, path: str) -> TreeEntry | None:
        tree = self.trees[side]
        e = lookup_path(self.reader, tree, path) if tree else None
        if e is not None and e.kind == DIR:
            raise UsageError(f"{path} is a folder in {self.labels[side]}", "name a table file: datactl diff A B PATH")
        return e if e is None or e.kind == FILE else None


@contextmanager
def two_versions(ref_a: str, ref_b: str, remote: str | None = None, options: dict[str, Any] | None = None) -> Iterator[TwoVersions]:
    """Versions ``ref_a`` and ``ref_b`` of the workspace's store, or of ``remote`` (read in place)."""
    if remote is None:
        with Workspace.open() as ws:
            cids = ws.resolve(ref_a), ws.resolve(ref_b)
            reader = ObjectReader(ws.repo.backend, ws.repo.index, ws.repo.backend.url, cache_bytes=CHUNK_CACHE_BYTES)
            try:
                yield TwoVersions(reader, tuple(ws.repo.read_commit(c).tree for c in cids), (f"{ref_a} ({cids[0][:12]})", f"{ref_b} ({cids[1][:12]})"))
            finally:
                reader.close()
        return
    ctx = remote_context(remote, None, options)
    with RemoteStore(ctx.spec, ctx.cache_dir) as rs:
        rs.sync_index()
        reader = rs.reader(cache_bytes=CHUNK_CACHE_BYTES)
        try:
            cids = tuple(resolve_on_remote(rs, reader, r, ctx.name, ctx.kind) for r in (ref_a, ref_b))
            yield TwoVersions(reader, tuple(reader.read_commit(c).tree for c in cids), (f"{ref_a} ({cids[0][:12]})", f"{ref_b} ({cids[1][:12]})"))
        finally:
            reader.close()


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


def _diff_one(v: TwoVersions, path: str, old_path: str, key: Sequence[str] | None, limit: int | None) -> TableDiff:
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
    with two_versions(ref_a, ref_b, remote, options) as v:
        return _diff_one(v, path, path, key, limit)


def diff_changed_tables(
    ref_a: str, ref_b: str, *, limit: int | None = None, remote: str | None = None, options: dict[str, Any] | None = None
) -> list[TableDiff]:
    """A row diff of every table modified (or renamed and changed) between two versions, with each one's configured key."""
    keys = configured_keys()
    with two_versions(ref_a, ref_b, remote, options) as v:
        changes = diff_trees(v.reader, *v.trees).changes
        return [
            _diff_one(v, c.path, c.old_path or c.path, keys.get(c.path), limit)
            for c in changes
            if table_format(c.path) is not None and (c.status == MODIFIED or (c.status == RENAMED and c.old_digest != c.new_digest))
        ]
