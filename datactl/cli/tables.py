"""Tables on the command line: ``datactl stats`` and the printing of row diffs (``diff A B PATH``, ``--rows``, ``--stats``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

import typer

from datactl.cli.options import JSON_OPT
from datactl.cli.output import emit_json, out
from datactl.core.units import human_bytes

if TYPE_CHECKING:
    from datactl.api.tables import VersionTableStats
    from datactl.tables.result import RowChange, TableDiff
    from datactl.tables.stats import StatsDiff, TableStats

MARKS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow"), "moved": (">", "cyan")}
CELL_WIDTH = 40


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", "\\n")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def _where(d: TableDiff, r: RowChange) -> str:
    if d.mode == "keyed":
        return ", ".join(f"{k}={_cell(v)}" for k, v in zip(d.key, r.key or ()))
    unit = "byte" if d.position == "byte" else "row"
    if r.old_at is not None and r.new_at is not None:
        return f"{unit} {r.old_at} -> {r.new_at}"
    return f"{unit} {r.old_at if r.old_at is not None else r.new_at}"


def _what(r: RowChange) -> str:
    if r.kind == "changed":
        return "; ".join(f"{c}: {_cell((r.old or {}).get(c))} -> {_cell((r.new or {}).get(c))}" for c in r.cells)
    values = r.new if r.new is not None else (r.old or {})
    return ", ".join(f"{k}={_cell(v)}" for k, v in values.items())


def print_table_diff(d: TableDiff) -> None:
    """One table's row diff: how rows were matched, schema changes, counts, then the first changed rows."""
    how = f"rows matched by key ({', '.join(d.key)})" if d.mode == "keyed" else "rows compared by position (no key; moved rows shown as moves)"
    out.print_spans((d.path, "bold"), (f": {d.format}, {how}", None))
    for s in d.schema:
        out.print(f"  schema: {s.describe()}", style="magenta")
    c = d.counts
    read = f"; {human_bytes(d.bytes_read)} of file data read" if d.mode == "positional" and d.format != "parquet" else ""
    out.print(f"  {c['added']} added, {c['removed']} removed, {c['changed']} changed, {c['moved']} moved{read}")
    if not d.rows:
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("")
    table.add_column("key" if d.mode == "keyed" else "where")
    table.add_column("row (changed cells: old -> new)")
    for r in d.rows:
        mark, color = MARKS[r.kind]
        table.add_row(Text(mark, style=color), _where(d, r), _what(r))
    out.print(table)
    if d.truncated:
        out.print(f"  ... {sum(c.values()) - len(d.rows)} more (--limit N shows more, --json gives them all with --limit 0)")


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def print_stats_diff(diffs: list[StatsDiff]) -> None:
    for d in diffs:
        rows = d.rows
        out.print_spans((d.path, "bold"), (f": rows {rows[0] if rows[0] is not None else '-'} -> {rows[1] if rows[1] is not None else '-'}", None))
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("column", "nulls", "distinct~", "mean"):
            table.add_column(name)
        for c in d.columns:
            mean = "" if c.mean == (None, None) else f"{c.mean[0]} -> {c.mean[1]}"
            table.add_row(c.name, f"{_percent(c.null_rate[0])} -> {_percent(c.null_rate[1])}", f"{c.distinct[0]} -> {c.distinct[1]}", mean)
        out.print(table)
        for c in d.columns:  # the class balance of columns with few values
            if c.top[0] != c.top[1]:
                out.print(f"  {c.name} top values: {_top(c.top[0])} -> {_top(c.top[1])}")


def _top(values: list[list[Any]]) -> str:
    return ", ".join(f"{_cell(v)}:{n}" for v, n in values) or "-"


def print_table_stats(t: TableStats) -> None:
    out.print_spans((t.path, "bold"), (f": {t.format}, {t.rows} rows, {len(t.columns)} columns, {human_bytes(t.size)}", None))
    if not t.columns:
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("column", "type", "nulls", "distinct~", "min", "max", "mean", "top values"):
        table.add_column(name)
    for c in t.columns:
        table.add_row(
            c.name, c.type, f"{c.nulls} ({_percent(c.null_rate(t.rows))})", str(c.distinct),
            "" if c.min is None else _cell(c.min), "" if c.max is None else _cell(c.max), "" if c.mean is None else f"{c.mean:g}", _top(c.top),
        )
    out.print(table)


def print_version_stats(s: VersionTableStats) -> None:
    for t in s.tables:
        print_table_stats(t)
    f = s.files
    if f.files:
        out.print_spans(("other files", "bold"), (f": {f.files} ({human_bytes(f.bytes)})", None))
        for ext, (n, size) in f.by_type.items():
            out.print(f"  {ext:<10} {n:>8} files {human_bytes(size):>10}")
        z = f.sizes
        out.print(f"  sizes: min {human_bytes(z['min'])}, median {human_bytes(z['median'])}, p90 {human_bytes(z['p90'])}, max {human_bytes(z['max'])}")
    if not s.tables and not f.files:
        out.print(f"no files under {s.path or '/'} in {s.version}")


def stats(
    ref: str = typer.Argument("HEAD", help="The version."),
    path: str = typer.Argument("", help="A table, or a folder (default: the whole version)."),
    remote: Optional[str] = typer.Option(None, "--remote", "-r", help="Read the version in place on this remote (name or URL)."),
    json_: bool = JSON_OPT,
) -> None:
    """Statistics of each table (rows, columns, types, nulls, distinct, min/max/mean, top values) and of the other files.

    Computed by streaming each table once and cached by its digest; `datactl du` gives the sizes in the store.
    """
    from datactl.api.tables import version_table_stats

    s = version_table_stats(ref, path, remote=remote)
    if json_:
        emit_json(s.to_dict())
    else:
        print_version_stats(s)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
