"""A row-level diff of one table between two versions: which engine, by format and key."""

from __future__ import annotations

from typing import Sequence

from datactl.format.objects import TreeEntry
from datactl.store.chunkedfile import ChunkSource
from datactl.tables.engine import Engine
from datactl.tables.formats import PARQUET, require_table_format
from datactl.tables.keyed import keyed_diff, parquet_positional_diff
from datactl.tables.positional import positional_diff
from datactl.tables.result import TableDiff


def diff_table(
    source: ChunkSource,
    path: str,
    old: TreeEntry | None,
    new: TreeEntry | None,
    *,
    key: Sequence[str] | None = None,
    limit: int | None = None,
    where: tuple[str, str] = ("old", "new"),
    memory_limit: str | None = None,
) -> TableDiff:
    """Rows of ``path`` added, removed, changed (and, without a key, moved) from ``old`` to ``new`` (None: no such file).

    With ``key`` rows are matched by those columns in the engine; without, CSV/TSV and JSON Lines are compared by
    position reading only the chunks that differ, and Parquet by position in the engine.
    """
    fmt = require_table_format(path)
    if not key and fmt.name != PARQUET:
        return positional_diff(source, old, new, path, fmt, where, limit)
    with Engine(memory_limit) as engine:
        if key:
            return keyed_diff(engine, source, old, new, path, fmt, list(key), where, limit)
        return parquet_positional_diff(engine, source, old, new, path, fmt, where, limit)
