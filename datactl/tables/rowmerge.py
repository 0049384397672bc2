"""Three-way merge of a table's rows by key, written in the file's own format; conflicts as an editable table.

Rows are matched by key between the merge base, ours and theirs. A row
changed (or added, or removed) on one side only takes that side; a row
changed on both sides merges cell by cell when the sides changed different
cells; the same cell changed differently on both sides, or a row changed on
one side and removed on the other, is a conflict: the merged table keeps our
row and the conflict table lists both sides' rows for the user to settle.

The merged file keeps our file's form: CSV/TSV and JSON Lines rows are
written back byte for byte as one side wrote them (delimiter, quoting, line
endings, column order); a row merged cell by cell is written with the csv
module's minimal quoting. Parquet is written with our file's schema and
compression. The three versions are held in memory (row merges are of files
people edit, not of the largest tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from datactl.core.errors import TableError, UsageError
from datactl.tables.formats import (
    PARQUET,
    RowProblem,
    TableFormat,
    format_fields,
    format_object,
    parse_fields,
    parse_row,
    split_rows,
    with_header_dialect,
)

SIDE = "_side"  # the conflict table's first column: which side a row comes from
OURS, THEIRS = "ours", "theirs"
DELETED = " (deleted)"  # a side that removed the row: keeping this row removes it


@dataclass
class Table:
    """One side of a merge: its columns and rows (values, and for text formats the row's exact bytes), in file order."""

    fmt: TableFormat
    columns: list[str]
    rows: list[tuple[dict[str, Any], bytes | None]]
    header: bytes = b""
    newline: bytes = b"\n"
    final_newline: bool = True
    arrow: Any = None  # Parquet: the pyarrow table (schema), and its compression
    compression: str | None = None

    def by_key(self, key: Sequence[str], where: str) -> dict[tuple, int]:
        out: dict[tuple, int] = {}
        for i, (values, _) in enumerate(self.rows):
            k = tuple(values.get(c) for c in key)
            if k in out:
                shown = ", ".join(f"{c}={v!r}" for c, v in zip(key, k))
                raise TableError(
                    f"{where}: the key ({', '.join(key)}) is not unique: {shown} is on rows {out[k] + 1} and {i + 1}",
                    'choose key columns that identify one row ([tables."PATH"] key in datactl.toml)',
                )
            out[k] = i
        return out


def read_table(path: str | None, fmt: TableFormat, where: str) -> Table:
    """A table file (``path`` None: the file does not exist on that side, an empty table)."""
    if path is None:
        return Table(fmt, [], [])
    if fmt.name == PARQUET:
        return _read_parquet(path, where)
    with open(path, "rb") as f:
        data = f.read()
    try:
        spans, _ = split_rows(data, 0, fmt, True)
    except RowProblem as exc:
        raise _problem(where, data, exc) from None
    t = Table(fmt, [], [], newline=b"\r\n" if b"\r\n" in data[:65536] else b"\n", final_newline=data.endswith(b"\n") or not data)
    try:
        if fmt.is_delimited and spans:
            t.header = data[spans[0].start : spans[0].end]
            t.fmt = fmt = with_header_dialect(fmt, t.header)
            t.columns = parse_fields(t.header, fmt, 0)
            spans = spans[1:]
        for sp in spans:
            raw = data[sp.start : sp.end]
            values = parse_row(raw, fmt, t.columns, sp.start)
            t.rows.append((values, raw))
            if not fmt.is_delimited:
                t.columns.extend(c for c in values if c not in t.columns)
    except RowProblem as exc:
        raise _problem(where, data, exc) from None
    return t


def _read_parquet(path: str, where: str) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("merging Parquet rows needs pyarrow", "install the tables extra: pip install 'datactl[tables]'") from None
    try:
        f = pq.ParquetFile(path)
        arrow = f.read()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise TableError(f"{where}: not a readable Parquet file ({exc})", "fix the file and commit it again") from None
    meta = f.metadata
    compression = meta.row_group(0).column(0).compression.lower() if meta.num_row_groups and meta.num_columns else None
    return Table(TableFormat(PARQUET), list(arrow.schema.names), [(r, None) for r in arrow.to_pylist()], arrow=arrow, compression=compression)


def _problem(where: str, data: bytes, exc: RowProblem) -> TableError:
    line = data.count(b"\n", 0, exc.offset) + 1
    return TableError(f"{where}: line {line}: {exc.reason}", "fix the file, then merge again")


@dataclass(frozen=True)
class RowConflict:
    key: tuple
    reason: str
    columns: tuple[str, ...]  # the cells changed differently on both sides (none when a side removed the row)
    ours: dict[str, Any] | None
    theirs: dict[str, Any] | None


@dataclass
class RowMerge:
    """A merged table, and the rows that could not be merged."""

    table: Table
    conflicts: list[RowConflict] = field(default_factory=list)
    merged_rows: int = 0  # rows taken from theirs or merged cell by cell


def merge_tables(base: Table, ours: Table, theirs: Table, key: Sequence[str], where: tuple[str, str, str]) -> RowMerge:
    """Three-way merge by ``key``; conflicting rows keep ours. The three must have the same columns."""
    names = [t.columns for t in (base, ours, theirs) if t.columns or t.rows]
    if any(n != names[0] for n in names):
        raise UsageError(f"{where[1]}: the columns differ between the versions, so rows cannot be merged", "merge the file by hand")
    for t, w in zip((base, ours, theirs), where):
        missing = [c for c in key if t.columns and c not in t.columns]
        if missing:
            raise UsageError(f"{w} has no key column {missing[0]!r}", 'fix [tables."PATH"] key in datactl.toml')
    bk, ok, tk = (t.by_key(key, w) for t, w in zip((base, ours, theirs), where))
    out = Table(ours.fmt, ours.columns or theirs.columns, [], ours.header or theirs.header, ours.newline, ours.final_newline, ours.arrow, ours.compression)
    if ours.arrow is None and theirs.arrow is not None:
        out.arrow, out.compression = theirs.arrow, theirs.compression
    result = RowMerge(out)

    def row(t: Table, index: dict[tuple, int], k: tuple) -> tuple[dict[str, Any], bytes | None] | None:
        i = index.get(k)
        return t.rows[i] if i is not None else None

    def take(k: tuple) -> None:
        b, o, t = row(base, bk, k), row(ours, ok, k), row(theirs, tk, k)
        bv, ov, tv = (x[0] if x else None for x in (b, o, t))
        if ov == tv or tv == bv:
            chosen = o
        elif ov == bv:
            chosen = t
            result.merged_rows += 1
        elif ov is not None and tv is not None and bv is not None:
            cells, clash = _merge_cells(bv, ov, tv)
            if clash:
                result.conflicts.append(RowConflict(k, "changed on both sides", tuple(clash), ov, tv))
                chosen = o
            else:
                chosen = (cells, None)
                result.merged_rows += 1
        else:
            reason = "added on both sides" if bv is None else ("removed here, changed there" if ov is None else "changed here, removed there")
            result.conflicts.append(RowConflict(k, reason, (), ov, tv))
            chosen = o
        if chosen is not None:
            out.rows.append(chosen)

    for values, _ in ours.rows:
        take(tuple(values.get(c) for c in key))
    for values, _ in theirs.rows:
        k = tuple(values.get(c) for c in key)
        if k not in ok:
            take(k)
    return result


def _merge_cells(base: dict, ours: dict, theirs: dict) -> tuple[dict, list[str]]:
    merged, clash = {}, []
    for c in ours:
        o, t, b = ours.get(c), theirs.get(c), base.get(c)
        if o == t or t == b:
            merged[c] = o
        elif o == b:
            merged[c] = t
        else:
            merged[c] = o
            clash.append(c)
    return merged, clash


def write_table(t: Table, path: str) -> None:
    """Write ``t`` to ``path`` in its format (rows that kept their bytes are written as they were)."""
    if t.fmt.name == PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = t.arrow.schema if t.arrow is not None else None
        table = pa.Table.from_pylist([v for v, _ in t.rows], schema=schema)
        pq.write_table(table, path, compression=t.compression or "snappy")
        return
    lines = [t.header] if t.fmt.is_delimited and t.header else []
    for values, raw in t.rows:
        if raw is None:
            raw = format_fields([values.get(c) for c in t.columns], t.fmt) if t.fmt.is_delimited else format_object(values)
        lines.append(raw)
    data = t.newline.join(lines)
    if lines and t.final_newline:
        data += t.newline
    with open(path, "wb") as f:
        f.write(data)


# -- the conflict table ----------------------------------------------------------------------------


def conflict_table_path(path: str, fmt: TableFormat) -> str:
    """Where the conflicts of ``path`` are written: beside it, in its format (Parquet's as CSV, to be edited)."""
    return f"{path}.conflicts.{'jsonl' if fmt.name == 'jsonl' else 'tsv' if fmt.name == 'tsv' else 'csv'}"


def is_conflict_table(path: str) -> bool:
    """Whether ``path`` (a merge's sidecar) is a conflict table written by a row merge."""
    return any(path.endswith(f".conflicts.{ext}") for ext in ("csv", "tsv", "jsonl"))


def write_conflicts(merge: RowMerge, key: Sequence[str], path: str) -> None:
    """One row per side of each conflict (``_side`` first); keep one row per key, edit it, delete the other."""
    columns = merge.table.columns
    fmt = merge.table.fmt if merge.table.fmt.name != PARQUET else TableFormat("csv")
    lines = [format_fields([SIDE, *columns], fmt)] if fmt.is_delimited else []
    for c in merge.conflicts:
        for side, values in ((OURS, c.ours), (THEIRS, c.theirs)):
            label = side if values is not None else side + DELETED
            row = values if values is not None else dict(zip(key, c.key))
            if fmt.is_delimited:
                lines.append(format_fields([label, *(_text(row.get(col)) for col in columns)], fmt))
            else:
                lines.append(format_object({SIDE: label, **row}))
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def _text(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def apply_conflicts(merged: Table, conflicts_path: str, key: Sequence[str]) -> Table:
    """The merged table with the rows the user kept in the conflict table (one per key; a ``(deleted)`` row removes it)."""
    fmt = merged.fmt if merged.fmt.name != PARQUET else TableFormat("csv")
    resolution = read_table(conflicts_path, fmt, conflicts_path)
    chosen: dict[tuple, dict[str, Any] | None] = {}
    for values, _ in resolution.rows:
        side = str(values.pop(SIDE, ""))
        k = tuple(_typed_like(merged, c, values.get(c)) for c in key)
        if k in chosen:
            shown = ", ".join(f"{c}={v!r}" for c, v in zip(key, k))
            raise UsageError(f"{conflicts_path}: {shown} still has more than one row", "keep exactly one row per key (delete the other), then run `datactl merge --continue`")
        chosen[k] = None if side.endswith(DELETED) else {c: _typed_like(merged, c, values.get(c)) for c in merged.columns}
    rows = []
    for values, raw in merged.rows:
        k = tuple(values.get(c) for c in key)
        if k in chosen:
            new = chosen.pop(k)
            if new is not None:
                rows.append((new, raw if new == values else None))
        else:
            rows.append((values, raw))
    rows.extend((v, None) for v in chosen.values() if v is not None)
    merged.rows = rows
    return merged


def _typed_like(t: Table, column: str, value: Any) -> Any:
    """A value read back from the (text) conflict table as the merged table's type (Parquet: the column's type)."""
    if t.arrow is None or value is None or column not in t.arrow.schema.names:
        return value
    import pyarrow as pa

    typ = t.arrow.schema.field(column).type
    if value == "":
        return None
    try:
        return pa.array([value]).cast(typ).to_pylist()[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise UsageError(f"the conflict table holds {value!r} in column {column}, which is not a {typ}", "fix the value, then run `datactl merge --continue`") from None
