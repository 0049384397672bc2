"""Keyed row diff (rows matched by key columns), and the positional diff of Parquet files, in the engine.

A keyed diff is a full outer join of the two versions' keys, each with a
hash of the row's other shared columns, kept where a side is missing or the
hashes differ; the engine streams it and spills past its memory limit. Counts
come from the whole join; only the first ``limit`` changed rows, in key order,
are fetched with their values.
Parquet without a key is compared by position on a hash of each row
(``file_row_number`` keeps the file's order), and only the rows around
differences are fetched.
"""

from __future__ import annotations

import difflib
from typing import Any, Sequence

from datactl.core.errors import TableError, UsageError
from datactl.format.objects import TreeEntry
from datactl.store.chunkedfile import ChunkSource
from datactl.tables.engine import Engine, plain, quote_name
from datactl.tables.formats import TableFormat
from datactl.tables.positional import find_moves
from datactl.tables.result import ADDED, CHANGED, KEYED, POSITIONAL, REMOVED, ROW, RowChange, TableDiff, column_renames, schema_changes


def load_pair(engine: Engine, source: ChunkSource, old: TreeEntry | None, new: TreeEntry | None, path: str, fmt: TableFormat, where: tuple[str, str]):
    """Views ``a`` (old) and ``b`` (new) of ``path``; returns their (columns, types) pairs."""
    out = []
    for name, entry, label in (("a", old, where[0]), ("b", new, where[1])):
        if entry is None:
            engine.db.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT NULL::VARCHAR AS __empty WHERE false")
            out.append(([], {}))
            continue
        file = engine.materialize(source, entry, label, path)
        _, columns, types = engine.view(name, file, fmt, label)
        out.append((columns, types))
    return out


def check_key(engine: Engine, view: str, columns: list[str], key: Sequence[str], where: str) -> None:
    """The key columns exist, and no two rows share a key (a clear error naming a repeated value)."""
    if not columns:
        return
    missing = [k for k in key if k not in columns]
    if missing:
        raise UsageError(f"{where} has no column {missing[0]!r} (its columns: {', '.join(columns)})", "name key columns the table has: --key COL[,COL]")
    cols = ", ".join(quote_name(k) for k in key)
    dup = engine.run(f"SELECT {cols}, count(*) AS n FROM {view} GROUP BY ALL HAVING count(*) > 1 LIMIT 1", where).fetchone()
    if dup is not None:
        value = ", ".join(f"{k}={plain(v)!r}" for k, v in zip(key, dup[:-1]))
        raise TableError(
            f"{where}: the key ({', '.join(key)}) is not unique: {value} is on {dup[-1]} rows",
            "choose key columns that identify one row (--key COL[,COL], or [tables.\"PATH\"] key in datactl.toml)",
        )


def keyed_diff(
    engine: Engine,
    source: ChunkSource,
    old: TreeEntry | None,
    new: TreeEntry | None,
    path: str,
    fmt: TableFormat,
    key: Sequence[str],
    where: tuple[str, str],
    limit: int | None = None,
) -> TableDiff:
    """Rows added, removed and changed from ``old`` to ``new``, matched by ``key``."""
    (cols_a, types_a), (cols_b, types_b) = load_pair(engine, source, old, new, path, fmt, where)
    check_key(engine, "a", cols_a, key, where[0])
    check_key(engine, "b", cols_b, key, where[1])
    result = TableDiff(
        path, fmt.name, KEYED, tuple(key), old_columns=cols_a, new_columns=cols_b,
        old_size=old.size if old else 0, new_size=new.size if new else 0,
    )
    result.schema = schema_changes(cols_a, cols_b, types_a, types_b)
    renames = column_renames(cols_a, cols_b)
    shared = [(c, renames.get(c, c)) for c in cols_a if (c in cols_b or c in renames) and c not in key]
    if not cols_a or not cols_b:
        return _one_sided(engine, result, "b" if cols_b else "a", cols_b or cols_a, key, where, limit)
    # The join carries only the key and a hash of the other shared columns, so its memory is that of the keys; the
    # values of the first ``limit`` changed rows are fetched afterwards.
    on = " AND ".join(f"o.{quote_name(k)} = n.{quote_name(k)}" for k in key)
    keys = ", ".join(quote_name(k) for k in key)
    hash_a, hash_b = (_row_hash([pair[side] for pair in shared]) for side in (0, 1))
    kinds = "CASE WHEN o.__in IS NULL THEN 'added' WHEN n.__in IS NULL THEN 'removed' ELSE 'changed' END"
    picked = ", ".join(f"coalesce(o.{quote_name(k)}, n.{quote_name(k)}) AS {quote_name(k)}" for k in key)
    engine.run(
        f"CREATE TABLE d AS SELECT {kinds} AS __change, {picked} "
        f"FROM (SELECT {keys}, {hash_a} AS __h, true AS __in FROM a) o FULL OUTER JOIN (SELECT {keys}, {hash_b} AS __h, true AS __in FROM b) n "
        f"ON {on} WHERE o.__in IS NULL OR n.__in IS NULL OR o.__h != n.__h",
        f"{where[0]} and {where[1]}",
    )
    for kind, n in engine.db.execute("SELECT __change, count(*) FROM d GROUP BY ALL").fetchall():
        result.counts[kind] = n
    first = "SELECT * FROM d ORDER BY " + keys + (f" LIMIT {int(limit) + 1}" if limit is not None else "")
    select = ", ".join(["f.__change", *(f"f.{quote_name(k)}" for k in key), *(f"o.{quote_name(c)}" for c in cols_a), *(f"n.{quote_name(c)}" for c in cols_b)])
    sql = (
        f"SELECT {select} FROM ({first}) f LEFT JOIN a o ON {' AND '.join(f'o.{quote_name(k)} = f.{quote_name(k)}' for k in key)} "
        f"LEFT JOIN b n ON {' AND '.join(f'n.{quote_name(k)} = f.{quote_name(k)}' for k in key)} ORDER BY {', '.join(f'f.{quote_name(k)}' for k in key)}"
    )
    back = {n: o for o, n in renames.items()}
    for row in engine.run(sql, f"{where[0]} and {where[1]}").fetchall():
        kind, k = row[0], tuple(plain(v) for v in row[1 : 1 + len(key)])
        vo = dict(zip(cols_a, (plain(v) for v in row[1 + len(key) : 1 + len(key) + len(cols_a)])))
        vn = dict(zip(cols_b, (plain(v) for v in row[1 + len(key) + len(cols_a) :])))
        if kind == ADDED:
            result.rows.append(RowChange(ADDED, None, None, None, vn, key=k))
        elif kind == REMOVED:
            result.rows.append(RowChange(REMOVED, None, None, vo, None, key=k))
        else:
            cells = tuple(c for c in cols_b if back.get(c, c) in vo and vo[back.get(c, c)] != vn[c])
            result.rows.append(RowChange(CHANGED, None, None, vo, vn, cells, key=k))
    engine.db.execute("DROP TABLE d")
    _cut(result, limit)
    return result


def _row_hash(columns: list[str]) -> str:
    """A 64-bit hash of a row's values in ``columns`` (two rows that differ hash alike with odds of 2^-64)."""
    return "hash(" + ", ".join(quote_name(c) for c in columns) + ")" if columns else "0"


def _one_sided(engine: Engine, result: TableDiff, view: str, columns: list[str], key: Sequence[str], where: tuple[str, str], limit: int | None) -> TableDiff:
    """One side is empty (or has no such file): every row of the other is added (or removed)."""
    kind = ADDED if view == "b" else REMOVED
    label = where[1] if view == "b" else where[0]
    result.counts[kind] = engine.run(f"SELECT count(*) FROM {view}", label).fetchone()[0]
    order = ", ".join(quote_name(k) for k in key)
    sql = f"SELECT * FROM {view} ORDER BY {order}" + (f" LIMIT {int(limit) + 1}" if limit is not None else "")
    for row in engine.run(sql, label).fetchall():
        values = dict(zip(columns, (plain(v) for v in row)))
        k = tuple(values[c] for c in key)
        result.rows.append(RowChange(kind, None, None, values if kind == REMOVED else None, values if kind == ADDED else None, key=k))
    _cut(result, limit)
    return result


def _cut(result: TableDiff, limit: int | None) -> None:
    if limit is not None and len(result.rows) > limit:
        result.rows = result.rows[:limit]
        result.truncated = True
    result.truncated = result.truncated or (limit is not None and sum(result.counts.values()) > len(result.rows))


def parquet_positional_diff(
    engine: Engine, source: ChunkSource, old: TreeEntry | None, new: TreeEntry | None, path: str, fmt: TableFormat, where: tuple[str, str], limit: int | None = None
) -> TableDiff:
    """Rows of two Parquet files compared by position: a hash per row aligned with ``difflib``, then the differing rows fetched."""
    (cols_a, types_a), (cols_b, types_b) = load_pair(engine, source, old, new, path, fmt, where)
    result = TableDiff(path, fmt.name, POSITIONAL, position=ROW, old_columns=cols_a, new_columns=cols_b,
                       old_size=old.size if old else 0, new_size=new.size if new else 0)
    result.schema = schema_changes(cols_a, cols_b, types_a, types_b)
    renames = column_renames(cols_a, cols_b)
    shared_a = [c for c in cols_a if c in cols_b or c in renames]
    hashes = []
    for view, cols, label in (("a", [c for c in shared_a], where[0]), ("b", [renames.get(c, c) for c in shared_a], where[1])):
        if not (cols_a and cols_b):
            cols = cols_a if view == "a" else cols_b
        expr = f"hash({', '.join(quote_name(c) for c in cols)})" if cols else "0"
        rows = engine.run(f"SELECT {expr} FROM {view}_pos ORDER BY __pos", label).fetchall() if (cols_a if view == "a" else cols_b) else []
        hashes.append([r[0] for r in rows])
    want: dict[str, set[int]] = {"a": set(), "b": set()}
    plan: list[tuple[str, list[int], list[int]]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, hashes[0], hashes[1], autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        plan.append((tag, list(range(i1, i2)), list(range(j1, j2))))
        want["a"].update(range(i1, i2))
        want["b"].update(range(j1, j2))
    rows = {v: _rows_at(engine, v, sorted(want[v]), cols_a if v == "a" else cols_b, where[0] if v == "a" else where[1]) for v in ("a", "b")}
    back = {n: o for o, n in renames.items()}
    changes: list[RowChange] = []
    for tag, olds, news in plan:
        paired = min(len(olds), len(news)) if tag == "replace" else 0
        for i, j in zip(olds[:paired], news[:paired]):
            vo, vn = rows["a"][i], rows["b"][j]
            cells = tuple(c for c in cols_b if back.get(c, c) in vo and vo[back.get(c, c)] != vn[c])
            if cells:
                changes.append(RowChange(CHANGED, i, j, vo, vn, cells))
        changes.extend(RowChange(REMOVED, i, None, rows["a"][i], None) for i in olds[paired:])
        changes.extend(RowChange(ADDED, None, j, None, rows["b"][j]) for j in news[paired:])
    find_moves(changes)
    for c in changes:
        result.counts[c.kind] += 1
    result.rows = changes
    _cut(result, limit)
    return result


def _rows_at(engine: Engine, view: str, positions: list[int], columns: list[str], where: str) -> dict[int, dict[str, Any]]:
    """The rows at these 0-based positions of a Parquet view (``file_row_number`` numbers them in file order)."""
    if not positions or not columns:
        return {}
    sql = f"SELECT * FROM {view}_pos WHERE __pos IN (SELECT unnest(?::BIGINT[]))"
    out = {}
    for row in engine.run(sql, where, [positions]).fetchall():
        out[row[0]] = dict(zip(columns, (plain(v) for v in row[1:])))
    return out
