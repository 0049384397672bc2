"""The ``table_stats`` rule: row counts, null rates and columns of tables, and how they moved from the base version.

Statistics come from the code behind ``datactl stats`` (``datactl.tables.stats``,
the DuckDB engine) and are kept under each file's digest in the same cache, so
a file whose statistics are known (from an earlier run, ``datactl stats``, or
the parent version holding the same bytes) is not read at all. The version
compared with is the run's base (``RunContext``: ``validate --base``, else the
first parent), and a table is compared with the file at the same path there, or
with the file it was renamed from (as ``datactl diff`` finds renames).

    [[validate.rules]]
    type = "table_stats"
    glob = "/labels.csv"
    min_rows = 1000
    max_null_rate = { label = "1%" }
    max_null_rate_change = "2%"      # points, as diff --max-null-rate-change
    max_row_count_change = "10%"     # of the base's rows, or a number of rows
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import BinaryIO

from datactl.core.errors import TableError
from datactl.core.units import parse_fraction
from datactl.format.objects import FILE
from datactl.store.source import SourceEntry, VersionSource
from datactl.tables.engine import Engine
from datactl.tables.formats import SUFFIXES, TableFormat, table_format
from datactl.tables.stats import StatsCache, TableStats, compare_stats, file_stats_of, null_rate_moves
from datactl.validation.context import RunContext
from datactl.validation.rules import Finding, Options, Rule, bounds_findings, register_rule, require_module


def _pct(share: float) -> str:
    """A share as people read it: 4.2%, and 0.04% rather than a misleading 0.0%."""
    value = share * 100
    return f"{value:.2g}%" if 0 < abs(value) < 0.05 else f"{value:.1f}%"


def _limit(share: float) -> str:
    return f"{share * 100:g}%"


@dataclass(frozen=True)
class RowLimit:
    """How far a row count may move: a number of rows, or a percentage of the base's rows."""

    value: float
    percent: bool

    def allowed(self, base_rows: int) -> float:
        return self.value * base_rows / 100 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value)} rows"


@dataclass
class _Table:
    """What is known of one selected table file so far."""

    entry: SourceEntry
    fmt: TableFormat
    stats: TableStats | None = None
    base_entry: SourceEntry | None = None
    base_stats: TableStats | None = None

    @property
    def complete(self) -> bool:
        return self.stats is not None and (self.base_entry is None or self.base_stats is not None)


@register_rule
class TableStatsRule(Rule):
    type = "table_stats"
    description = "tables' row counts, null rates and columns, and how they moved from the base version (DuckDB)"
    default_glob = ["*" + s for s in SUFFIXES]

    def configure(self, o: Options) -> None:
        self.min_rows = o.int("min_rows", None)
        self.max_rows = o.int("max_rows", None)
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise o.error(f"min_rows ({self.min_rows}) is above max_rows ({self.max_rows})")
        self.columns = o.str_list("columns", None)
        self.null_all, self.null_by_column = self._null_limits(o)
        self.max_null_rate_change = o.fraction("max_null_rate_change", None)
        self.max_row_count_change = self._row_limit(o)
        if (
            self.min_rows is None and self.max_rows is None and self.columns is None and self.null_all is None
            and not self.null_by_column and self.max_null_rate_change is None and self.max_row_count_change is None
        ):
            raise o.error("needs min_rows, max_rows, columns, max_null_rate, max_null_rate_change or max_row_count_change")
        require_module("duckdb", "tables", o)
        self.compares = self.max_null_rate_change is not None or self.max_row_count_change is not None
        self.pending: dict[str, _Table] = {}
        self.seen_columns: set[str] = set()
        self.engine: Engine | None = None
        self.engine_lock = threading.Lock()  # one query at a time on the engine's connection

    @staticmethod
    def _null_limits(o: Options) -> tuple[float | None, dict[str, float]]:
        raw = o.raw("max_null_rate", None)
        if raw is None:
            return None, {}
        if isinstance(raw, dict):
            limits = {}
            for column, value in raw.items():
                try:
                    limits[column] = parse_fraction(value)
                except (TypeError, ValueError):
                    raise o.error(f"max_null_rate for column {column!r} must be a fraction between 0 and 1 (or a percentage like \"1%\")") from None
            return None, limits
        return o.fraction("max_null_rate"), {}

    @staticmethod
    def _row_limit(o: Options) -> RowLimit | None:
        raw = o.raw("max_row_count_change", None)
        if raw is None:
            return None
        wrong = o.error(f"max_row_count_change must be a number of rows or a percentage of the base's rows like \"10%\", not {raw!r}")
        if isinstance(raw, bool):
            raise wrong
        if isinstance(raw, int):
            value, percent = float(raw), False
        elif isinstance(raw, str):
            text = raw.strip()
            try:
                value, percent = (float(text[:-1]), True) if text.endswith("%") else (float(int(text)), False)
            except ValueError:
                raise wrong from None
        else:
            raise wrong
        if not value >= 0:  # NaN fails this too
            raise wrong
        return RowLimit(value, percent)

    # -- the run ------------------------------------------------------------------------

    def start(self, context: RunContext) -> None:
        self.context = context
        self.cache = StatsCache(context.cache_dir)
        self.pending, self.seen_columns = {}, set()
        if self.compares and context.base() is None:
            self.note(f"{context.no_base}: no statistics to compare with")

    def selects(self, entry: SourceEntry) -> bool:
        return table_format(entry.path) is not None and super().selects(entry)

    def visit(self, entry: SourceEntry) -> list[Finding] | None:
        """Known statistics (by digest) are judged here, reading nothing; the rest waits for ``check_file``."""
        fmt = table_format(entry.path)
        assert fmt is not None
        table = _Table(entry, fmt, self.cache.get(entry.digest, fmt, entry.path))
        base = self.context.base() if self.compares else None
        if base is not None:
            found = self._base_file(base, entry.path)
            if found is None:
                self.note(f"{entry.path}: new in this version (not in {base.label}): no statistics to compare with")
            elif found.digest != entry.digest:  # the same bytes have the same statistics: nothing moved
                table.base_entry = found
                table.base_stats = self.cache.get(found.digest, fmt, found.path)
        if table.complete:
            return self._judge(table)
        with self.lock:
            self.pending[entry.path] = table
        return None

    def _base_file(self, base: VersionSource, path: str) -> SourceEntry | None:
        """The file ``path`` is compared with: the same path in the base, else the file it was renamed from (said in a note)."""
        found = base.lookup(path)
        if found is None or found.kind != FILE:
            old = self.context.renamed_from(path)
            found = base.lookup(old) if old is not None else None
            if found is None or found.kind != FILE:
                return None
            self.note(f"{path}: compared with {old} in {base.label}, renamed")
        return found

    def wants_content(self, entry: SourceEntry) -> bool:
        with self.lock:
            return entry.path in self.pending

    def check_file(self, entry: SourceEntry, stream: BinaryIO) -> list[Finding]:
        with self.lock:
            table = self.pending.pop(entry.path)
        if table.stats is None:
            try:
                table.stats = self._compute(stream, entry, table.fmt, entry.path)
            except TableError as exc:
                return [Finding(f"not a readable table: {exc.message.removeprefix(entry.path + ': ')}", entry.path)]
        if table.base_entry is not None and table.base_stats is None:
            base = self.context.base()
            assert base is not None
            where = f"{table.base_entry.path} in {base.label}"
            try:
                with base.open(table.base_entry) as old:
                    table.base_stats = self._compute(old, table.base_entry, table.fmt, where)
            except TableError as exc:
                self.note(f"{entry.path}: not compared, the copy in {base.label} is not a readable table ({exc.message.removeprefix(where + ': ')})")
                table.base_entry = None
        return self._judge(table)

    def _compute(self, stream: BinaryIO, entry: SourceEntry, fmt: TableFormat, where: str) -> TableStats:
        with self.engine_lock:
            if self.engine is None:
                self.engine = Engine()
            engine = self.engine
        file = engine.copy_in(stream)  # copies run in parallel; queries one at a time
        try:
            with self.engine_lock:
                return file_stats_of(engine, file, entry.digest, entry.path, fmt, where, self.cache)
        finally:
            os.remove(file)

    def finish(self) -> list[Finding]:
        # A limit for a column no table has is most likely a misspelt name: say so, rather than pass in silence.
        # (A column that only some tables have is limited where it is; `columns` requires it everywhere.)
        return [
            Finding(f"max_null_rate names column {c}, which no table matched here has")
            for c in self.null_by_column if c not in self.seen_columns
        ]

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    # -- verdicts -----------------------------------------------------------------------

    def _judge(self, table: _Table) -> list[Finding]:
        stats = table.stats
        assert stats is not None
        path = table.entry.path
        names = [c.name for c in stats.columns]
        out = [Finding(f.message, path) for f in bounds_findings("the row count", stats.rows, self.min_rows, self.max_rows)]
        missing = [c for c in self.columns or [] if c not in names]
        with self.lock:
            self.seen_columns.update(names)
        out += [Finding(f"column {c} is missing (columns: {', '.join(names) or 'none'})", path) for c in missing]
        for c in stats.columns:
            limit = self.null_by_column.get(c.name, self.null_all)
            rate = c.null_rate(stats.rows)
            if limit is not None and rate > limit:
                out.append(Finding(f"column {c.name} null rate {_pct(rate)} ({c.nulls} of {stats.rows} rows), limit {_limit(limit)}", path))
        if table.base_stats is not None:
            out += self._moved(path, table.base_stats, stats)
        return out

    def _moved(self, path: str, old: TableStats, new: TableStats) -> list[Finding]:
        out = []
        lim = self.max_row_count_change
        if lim is not None and abs(new.rows - old.rows) > lim.allowed(old.rows):
            change = new.rows - old.rows
            share = f", {change / old.rows:+.1%}" if old.rows else ""
            out.append(Finding(f"row count {old.rows} -> {new.rows} ({change:+d}{share}), limit {lim}", path))
        if self.max_null_rate_change is not None:
            for b in null_rate_moves([compare_stats(path, old, new)], self.max_null_rate_change):
                points = (b.new - b.old) * 100
                out.append(Finding(f"column {b.column} null rate {_pct(b.old)} -> {_pct(b.new)} ({points:+.1f} points), limit {_limit(b.limit)}", path))
        return out
