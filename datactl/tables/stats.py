"""Column statistics of a table, and how they moved between two versions; cached by the file's digest.

Computed in the engine in two streaming passes (``SUMMARIZE``: types, min,
max, mean, approximate distinct counts, null rates; then exact value counts of
the columns with few distinct values, the ``top`` values a reviewer reads as a
class balance). A file's statistics depend only on its bytes, so they are
kept under its digest: a second call, or another version holding the same
file, reads nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from datactl.core.safepath import TEMP_SUFFIX
from datactl.format.objects import TreeEntry
from datactl.store.chunkedfile import ChunkSource
from datactl.tables.engine import Engine, plain, quote_name, sql_text
from datactl.tables.formats import PARQUET, TableFormat

# Bump when what is computed changes: older cached entries are then recomputed.
STATS_VERSION = 1
TOP_VALUES = 5
# Columns with at most this many distinct values (approximately) get exact counts of their top values.
FEW_DISTINCT = 1000


@dataclass
class ColumnStats:
    name: str
    type: str
    nulls: int
    distinct: int  # approximate
    min: Any = None
    max: Any = None
    mean: float | None = None
    top: list[list[Any]] = field(default_factory=list)  # [value, count], most frequent first

    def null_rate(self, rows: int) -> float:
        return self.nulls / rows if rows else 0.0


@dataclass
class TableStats:
    path: str
    format: str
    digest: str
    size: int
    rows: int
    columns: list[ColumnStats] = field(default_factory=list)

    def column(self, name: str) -> ColumnStats | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TableStats":
        return cls(d["path"], d["format"], d["digest"], d["size"], d["rows"], [ColumnStats(**c) for c in d["columns"]])


class StatsCache:
    """Statistics by file digest, as JSON files in a folder (a workspace's ``.datactl/tables``)."""

    def __init__(self, folder: str | None) -> None:
        self.folder = folder

    def _file(self, digest: str, fmt: TableFormat) -> str:
        assert self.folder is not None
        return os.path.join(self.folder, f"{digest}.{fmt.name}.json")

    def get(self, digest: str, fmt: TableFormat, path: str) -> TableStats | None:
        if self.folder is None:
            return None
        try:
            with open(self._file(digest, fmt), encoding="utf-8") as f:
                d = json.load(f)
            if d.get("version") != STATS_VERSION:
                return None
            stats = TableStats.from_dict(d["stats"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: computed again
        stats.path = path
        return stats

    def put(self, stats: TableStats, fmt: TableFormat) -> None:
        if self.folder is None:
            return
        os.makedirs(self.folder, exist_ok=True)
        target = self._file(stats.digest, fmt)
        tmp = target + TEMP_SUFFIX
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": STATS_VERSION, "stats": stats.to_dict()}, f)
        os.replace(tmp, target)


def table_stats(engine: Engine, source: ChunkSource, entry: TreeEntry, path: str, fmt: TableFormat, where: str, cache: StatsCache) -> TableStats:
    """The statistics of one table file (from the cache when its digest was seen before)."""
    cached = cache.get(entry.digest, fmt, path)
    if cached is not None:
        return cached
    return file_stats_of(engine, engine.materialize(source, entry, where, path), entry.digest, path, fmt, where, cache)


def file_stats_of(engine: Engine, file: str, digest: str, path: str, fmt: TableFormat, where: str, cache: StatsCache) -> TableStats:
    """The statistics of a table file already in the engine's folder (``Engine.materialize``/``copy_in``), kept under ``digest``.

    Queries the engine's connection: one call at a time per engine.
    """
    size = os.path.getsize(file)
    stats = TableStats(path, fmt.name, digest, size, 0)
    if size:
        dialect, columns, _ = engine.view("s", file, fmt, where)
        if columns:
            _summarize(engine, file, dialect, where, stats)
    cache.put(stats, fmt)
    return stats


def _typed_source(file: str, fmt: TableFormat) -> str:
    """The table with types inferred from every row (CSV/TSV: a value that does not fit a sampled type cannot fail later)."""
    if fmt.name == PARQUET:
        return f"read_parquet({sql_text(file)})"
    if fmt.is_delimited:
        return f"read_csv({sql_text(file)}, header=true, delim={sql_text(fmt.delimiter)}, quote='\"', escape='\"', strict_mode=true, sample_size=-1)"
    return f"read_json({sql_text(file)}, format='newline_delimited', sample_size=-1)"


def _summarize(engine: Engine, file: str, fmt: TableFormat, where: str, stats: TableStats) -> None:
    engine.run(f"CREATE OR REPLACE TEMP VIEW st AS SELECT * FROM {_typed_source(file, fmt)}", where)
    summary = engine.run("SUMMARIZE SELECT * FROM st", where)
    names = [d[0] for d in summary.description]
    rows = [dict(zip(names, r)) for r in summary.fetchall()]
    stats.rows = rows[0]["count"] if rows else engine.run("SELECT count(*) FROM st", where).fetchone()[0]
    for r in rows:
        nulls = round(float(r["null_percentage"] or 0) * stats.rows / 100)
        mean = _number(r.get("avg"))
        low, high = (_typed(r["column_type"], r[k]) for k in ("min", "max"))
        stats.columns.append(ColumnStats(r["column_name"], r["column_type"], nulls, int(r["approx_unique"] or 0), low, high, mean))
    few = [c for c in stats.columns if c.distinct <= FEW_DISTINCT and not c.type.startswith(("STRUCT", "MAP", "LIST")) and not c.type.endswith("[]")]
    for c in few:
        # By position, not by alias: a table's own column named like an alias would win over it.
        col = quote_name(c.name)
        q = f"SELECT {col}, count(*) FROM st WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_VALUES}"
        c.top = [[plain(v), n] for v, n in engine.run(q, where).fetchall()]


def _typed(column_type: str, value: Any) -> Any:
    """SUMMARIZE gives min and max as text: numbers become numbers again."""
    if value is None:
        return None
    try:
        if column_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"):
            return int(value)
        if column_type in ("FLOAT", "DOUBLE") or column_type.startswith("DECIMAL"):
            return float(value)
    except (TypeError, ValueError):
        pass
    return plain(value)


def _number(value: Any) -> float | None:
    try:
        return None if value is None else round(float(value), 6)
    except (TypeError, ValueError):
        return None  # SUMMARIZE gives no mean for text


@dataclass(frozen=True)
class ColumnMove:
    """How one column's statistics moved between two versions."""

    name: str
    null_rate: tuple[float | None, float | None]
    distinct: tuple[int | None, int | None]
    mean: tuple[float | None, float | None]
    top: tuple[list[list[Any]], list[list[Any]]]


@dataclass
class StatsDiff:
    """Statistics of one table in two versions (None: not a table there), and how each column moved."""

    path: str
    old: TableStats | None
    new: TableStats | None
    columns: list[ColumnMove] = field(default_factory=list)

    @property
    def rows(self) -> tuple[int | None, int | None]:
        return (self.old.rows if self.old else None, self.new.rows if self.new else None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "rows": list(self.rows),
            "columns": [
                {"name": c.name, "null_rate": list(c.null_rate), "distinct": list(c.distinct), "mean": list(c.mean), "top": list(c.top)} for c in self.columns
            ],
        }


@dataclass(frozen=True)
class NullRateBreach:
    """A column of a table in both versions whose share of nulls moved by more than a limit (fractions)."""

    path: str
    column: str
    old: float
    new: float
    limit: float

    def describe(self) -> str:
        return f"{self.path}: column {self.column!r} nulls {self.old:.2%} -> {self.new:.2%}, moved {abs(self.new - self.old):.2%}; limit {self.limit:.2%}"


def null_rate_moves(moved: list[StatsDiff], limit: float) -> list[NullRateBreach]:
    """Each column of a table in both versions whose share of nulls moved by more than ``limit`` (a fraction)."""
    found = []
    for d in moved:
        for c in d.columns:
            old, new = c.null_rate
            if old is not None and new is not None and abs(new - old) > limit:
                found.append(NullRateBreach(d.path, c.name, old, new, limit))
    return found


def null_rate_breaches(moved: list[StatsDiff], limit: float) -> list[str]:
    """Each column of a table in both versions whose share of nulls moved by more than ``limit`` (a fraction), described."""
    return [b.describe() for b in null_rate_moves(moved, limit)]


def compare_stats(path: str, old: TableStats | None, new: TableStats | None) -> StatsDiff:
    names = list(dict.fromkeys([c.name for c in (new.columns if new else [])] + [c.name for c in (old.columns if old else [])]))
    moves = []
    for name in names:
        co = old.column(name) if old else None
        cn = new.column(name) if new else None
        moves.append(
            ColumnMove(
                name,
                (round(co.null_rate(old.rows), 6) if co and old else None, round(cn.null_rate(new.rows), 6) if cn and new else None),
                (co.distinct if co else None, cn.distinct if cn else None),
                (co.mean if co else None, cn.mean if cn else None),
                (co.top if co else [], cn.top if cn else []),
            )
        )
    return StatsDiff(path, old, new, moves)


@dataclass
class FileStats:
    """The files under a folder that are not tables: counts and bytes by type (extension), and their size distribution."""

    files: int = 0
    bytes: int = 0
    by_type: dict[str, list[int]] = field(default_factory=dict)  # extension -> [files, bytes]
    sizes: dict[str, int] = field(default_factory=dict)  # min, median, p90, max

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_stats(files: list[tuple[str, int]]) -> FileStats:
    """Counts by type and the size distribution of ``files`` (path, size)."""
    out = FileStats(len(files), sum(s for _, s in files))
    for path, size in files:
        name = path.rsplit("/", 1)[-1]
        dot = name.rfind(".")
        ext = name[dot:].lower() if dot > 0 else "(none)"
        slot = out.by_type.setdefault(ext, [0, 0])
        slot[0] += 1
        slot[1] += size
    sizes = sorted(s for _, s in files)
    if sizes:
        out.sizes = {"min": sizes[0], "median": sizes[len(sizes) // 2], "p90": sizes[min(len(sizes) - 1, int(len(sizes) * 0.9))], "max": sizes[-1]}
    out.by_type = dict(sorted(out.by_type.items(), key=lambda kv: (-kv[1][1], kv[0])))
    return out
