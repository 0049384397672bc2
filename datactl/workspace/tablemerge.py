"""Row merges inside ``datactl merge``: a table changed on both sides, with a key configured, merges by rows.

A conflicting path that is a table (CSV/TSV, JSON Lines, Parquet) with
``[tables."PATH"] key = [...]`` in datactl.toml is merged row by row
(``datactl.tables.rowmerge``). Clean: the merged file is written and staged,
and the path is no conflict. Rows in conflict: the merged file (our rows for
those) is written and staged, ``PATH.conflicts.csv`` (or ``.tsv``, ``.jsonl``)
lists both sides' rows; the user keeps one row per key, and
``merge --continue`` applies it. A table that cannot be merged by rows (its
columns changed, a key repeats, a row is malformed) stays a whole-file
conflict, with the reason.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any, Callable

from datactl.core.errors import DatactlError
from datactl.core.safepath import TEMP_SUFFIX
from datactl.core.settings import read_settings, table_keys
from datactl.format.objects import FILE, TreeEntry
from datactl.store.filedata import iter_file_bytes
from datactl.tables.formats import table_format
from datactl.tables.rowmerge import RowMerge, apply_conflicts, conflict_table_path, merge_tables, read_table, write_conflicts, write_table
from datactl.workspace.workspace import Workspace


@dataclass
class TableMerge:
    """One table merged by rows: the result, and where its conflict table goes (None when clean)."""

    path: str
    key: tuple[str, ...]
    merge: RowMerge
    conflicts_path: str | None


def merge_table_conflicts(
    ws: Workspace,
    conflicts: list[Any],
    lookup: Callable[[str], tuple[TreeEntry | None, TreeEntry | None, TreeEntry | None]],
    labels: tuple[str, str, str],
    ensure_local: Callable[[list[TreeEntry]], None],
) -> tuple[list[Any], list[TableMerge]]:
    """Merge by rows each conflict that is a keyed table; returns (conflicts left, table merges to write)."""
    keys = table_keys(read_settings(ws.root))
    left: list[Any] = []
    merges: list[TableMerge] = []
    for c in conflicts:
        key, fmt = keys.get(c.path), table_format(c.path)
        sides = lookup(c.path)
        base, ours, theirs = sides
        if not key or fmt is None or ours is None or theirs is None or not ws.in_scope(c.path) or any(e is not None and e.kind != FILE for e in sides):
            left.append(c)
            continue
        ensure_local([e for e in sides if e is not None])
        try:
            with tempfile.TemporaryDirectory(prefix="datactl-merge-", dir=ws.dotdir) as tmp:
                tables = []
                for name, entry, label in zip(("base", "ours", "theirs"), sides, labels):
                    where = f"{c.path} in {label}"
                    tables.append(read_table(_materialize(ws, entry, os.path.join(tmp, name), where), fmt, where))
                merged = merge_tables(*tables, key, tuple(f"{c.path} in {label}" for label in labels))  # type: ignore[arg-type]
        except DatactlError as exc:
            left.append(replace(c, reason=f"{c.reason}; rows not merged: {exc.message}"))
            continue
        if merged.conflicts:
            side = conflict_table_path(c.path, fmt)
            left.append(replace(c, reason=f"{len(merged.conflicts)} row(s) changed differently on both sides (key {', '.join(key)})", sidecar=side))
            merges.append(TableMerge(c.path, key, merged, side))
        else:
            merges.append(TableMerge(c.path, key, merged, None))
    return left, merges


def _materialize(ws: Workspace, entry: TreeEntry | None, path: str, where: str) -> str | None:
    if entry is None:
        return None
    with open(path, "wb") as f:
        for data in iter_file_bytes(ws.repo, entry, where):
            f.write(data)
    return path


def write_table_merges(ws: Workspace, merges: list[TableMerge]) -> dict[str, dict[str, Any]]:
    """Write each merged table (and conflict table) into the workspace and stage the table; returns the state to keep."""
    state: dict[str, dict[str, Any]] = {}
    for m in merges:
        target = ws.disk.abs_path(m.path)
        _write_atomic(target, lambda tmp, m=m: write_table(m.merge.table, tmp))
        if m.conflicts_path is not None:
            write_conflicts(m.merge, m.key, ws.disk.abs_path(m.conflicts_path))
            state[m.path] = {"key": list(m.key), "conflicts": m.conflicts_path}
    if merges:
        ws.add([ws.disk.abs_path(m.path) for m in merges])
    return state


def _write_atomic(target: str, write: Callable[[str], None]) -> None:
    tmp = target + TEMP_SUFFIX
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def apply_table_resolutions(ws: Workspace, tables: dict[str, dict[str, Any]]) -> None:
    """``merge --continue``: put the rows kept in each conflict table into its table, stage it, delete the conflict table.

    A conflict table the user deleted means the table itself was settled by hand.
    """
    for path, info in tables.items():
        side = ws.disk.abs_path(info["conflicts"])
        if not os.path.isfile(side):
            continue
        fmt = table_format(path)
        assert fmt is not None
        target = ws.disk.abs_path(path)
        merged = apply_conflicts(read_table(target, fmt, path), side, info["key"])
        _write_atomic(target, lambda tmp: write_table(merged, tmp))
        os.unlink(side)
        ws.add([target])


def drop_conflict_tables(ws: Workspace, tables: dict[str, dict[str, Any]]) -> None:
    """``merge --abort``: the conflict tables merge wrote go."""
    for info in tables.values():
        side = ws.disk.abs_path(info["conflicts"])
        if os.path.isfile(side):
            os.unlink(side)
