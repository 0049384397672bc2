"""What a row-level diff of one table found: schema changes, row counts, and the first changed rows.

``TableDiff`` is what ``Dataset.diff(other, path)``, ``datactl diff A B PATH``
and the web UI show. ``to_pandas()`` and ``to_arrow()`` give the changes as a
frame: one row per changed row, ``_change`` first, then positions, the
values (new, or old for a removed row) and ``COLUMN:old`` for changed cells.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ADDED, REMOVED, CHANGED, MOVED = "added", "removed", "changed", "moved"
KEYED, POSITIONAL = "keyed", "positional"
# How positions count: a byte offset in the file (CSV, JSON Lines), a 0-based row number (Parquet).
BYTE, ROW = "byte", "row"


@dataclass(frozen=True)
class ColumnChange:
    """A schema change: a column added, removed, renamed (same position, new name) or of another type."""

    kind: str  # added, removed, renamed, type
    column: str
    old: str | None = None  # the old name (renamed) or type (type)
    new: str | None = None

    def describe(self) -> str:
        if self.kind == "renamed":
            return f"column {self.old!r} renamed to {self.column!r}"
        if self.kind == "type":
            return f"column {self.column!r} type {self.old} -> {self.new}"
        return f"column {self.column!r} {self.kind}"


@dataclass(frozen=True)
class RowChange:
    """One row added, removed, changed (``cells`` lists the columns whose values differ) or moved."""

    kind: str
    old_at: int | None  # position in the old version (see TableDiff.position)
    new_at: int | None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    cells: tuple[str, ...] = ()
    key: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cells"] = list(self.cells)
        d["key"] = list(self.key) if self.key is not None else None
        return d


@dataclass
class TableDiff:
    path: str
    format: str
    mode: str  # keyed or positional
    key: tuple[str, ...] = ()
    position: str = BYTE
    old_columns: list[str] = field(default_factory=list)
    new_columns: list[str] = field(default_factory=list)
    schema: list[ColumnChange] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {ADDED: 0, REMOVED: 0, CHANGED: 0, MOVED: 0})
    rows: list[RowChange] = field(default_factory=list)  # the first ``limit`` changes
    truncated: bool = False
    bytes_read: int = 0  # file data read from the store (stored bytes) to compute this diff
    old_size: int = 0
    new_size: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.schema) or any(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "format": self.format, "mode": self.mode, "key": list(self.key), "position": self.position,
            "old_columns": self.old_columns, "new_columns": self.new_columns,
            "schema": [asdict(c) for c in self.schema], "counts": dict(self.counts),
            "rows": [r.to_dict() for r in self.rows], "truncated": self.truncated,
            "bytes_read": self.bytes_read, "old_size": self.old_size, "new_size": self.new_size,
        }

    def _columns(self) -> tuple[list[str], list[str]]:
        """(every column, new ones first; the columns with a changed cell in some row)."""
        columns = list(dict.fromkeys(self.new_columns + self.old_columns))
        return columns, [c for c in columns if any(c in r.cells for r in self.rows)]

    def records(self) -> list[dict[str, Any]]:
        """The changes as flat records (what ``to_pandas`` and ``to_arrow`` hold)."""
        columns, changed = self._columns()
        out = []
        for r in self.rows:
            values = r.new if r.new is not None else (r.old or {})
            rec: dict[str, Any] = {"_change": r.kind, "_old_at": r.old_at, "_new_at": r.new_at}
            rec.update({c: values.get(c) for c in columns})
            rec.update({f"{c}:old": (r.old or {}).get(c) if c in r.cells else None for c in changed})
            out.append(rec)
        return out

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(self.records(), columns=self._frame_columns())

    def to_arrow(self) -> Any:
        import pyarrow as pa

        records = self.records()
        arrays = {}
        for name in self._frame_columns():
            values = [r[name] for r in records]
            try:
                arrays[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in one column (JSON Lines): as text
                arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
        return pa.table(arrays)

    def _frame_columns(self) -> list[str]:
        columns, changed = self._columns()
        return ["_change", "_old_at", "_new_at", *columns, *(f"{c}:old" for c in changed)]


def schema_changes(old: list[str], new: list[str], old_types: dict[str, str] | None = None, new_types: dict[str, str] | None = None) -> list[ColumnChange]:
    """Columns added, removed, renamed (a name gone and a new one at the same position) and retyped."""
    changes: list[ColumnChange] = []
    renamed: dict[str, str] = column_renames(old, new)
    gone = [c for c in old if c not in new and c not in renamed]
    for c in gone:
        changes.append(ColumnChange("removed", c))
    for o, n in renamed.items():
        changes.append(ColumnChange("renamed", n, o, n))
    for c in new:
        if c not in old and c not in renamed.values():
            changes.append(ColumnChange("added", c))
    if old_types and new_types:
        for c in new:
            was = old_types.get(renamed_back(renamed, c))
            if was is not None and new_types.get(c) is not None and was != new_types[c]:
                changes.append(ColumnChange("type", c, was, new_types[c]))
    return changes


def column_renames(old: list[str], new: list[str]) -> dict[str, str]:
    """Old name -> new name for each position where a column left and another arrived."""
    return {o: n for o, n in zip(old, new) if o != n and o not in new and n not in old}


def renamed_back(renames: dict[str, str], new_name: str) -> str:
    for o, n in renames.items():
        if n == new_name:
            return o
    return new_name
