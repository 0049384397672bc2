"""Positional row diff of two versions of a CSV/TSV or JSON Lines file, reading only the chunks that differ.

Two versions of a file share every chunk their edits did not touch, and the
chunk lists say which without reading any data. The chunk-id sequences are
aligned (``difflib``); each run of differing chunks is widened to row
boundaries in the identical chunks around it and only that window is read,
on both sides, until both sides reach a row boundary at the same place in
identical bytes again. Rows are compared inside windows; a row removed in one
place and added in another (in any window) is reported as moved.

A row boundary before a window is found in identical bytes whose state
(inside a quoted CSV field or not) is unknown: the newline nearest to the
window is tried, and taken when the first quote after it opens a field (one
that closes a field means the newline is inside a quoted cell) and the rows
after it have the header's number of fields; earlier newlines, an earlier
chunk, and in the end the last known boundary are tried when it fails, and a
window whose changed rows do not parse is read again from that boundary.
JSON Lines has no multi-line values, so any newline is a row boundary. Only
rows that differ are parsed.

A file added with ``add --external`` has no chunks in any pack: its entry
records the chunk ids and sizes, and the windows are read from its source
through ``open_chunked``, as every reader of one (ranged, pinned, each chunk
hashed against its id).
"""

from __future__ import annotations

import bisect
import difflib
import io
import itertools
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from datactl.core.errors import CorruptObject, TableError
from datactl.format.objects import TreeEntry
from datactl.store.chunkedfile import ChunkSource, open_chunked
from datactl.store.reader import ObjectReader
from datactl.store.sourceread import SourceBackends
from datactl.tables.formats import RowProblem, Span, TableFormat, parse_fields, parse_row, split_rows, with_header_dialect
from datactl.tables.result import ADDED, CHANGED, MOVED, POSITIONAL, REMOVED, RowChange, TableDiff, column_renames, schema_changes

# Newlines tried in a chunk before a window as its start, before going back a chunk.
START_TRIES = 8
# Bytes of chunks fetched ahead for all windows at once (kept under the reader's chunk cache, which holds them).
PREFETCH_BYTES = 16 * 1024 * 1024


class FileChunks:
    """One version of a file: its chunk ids and offsets (from the chunk list), and its chunks, read only when asked."""

    def __init__(self, source: ChunkSource, entry: TreeEntry | None, where: str, sources: SourceBackends, path: str) -> None:
        self.source = source
        self.where = where
        self.size = entry.size if entry is not None else 0  # no such file in that version: no rows
        # An external file's chunks are in no pack: its entry lists them with their sizes, its source holds the bytes.
        self.external: io.BufferedReader | None = None
        if entry is not None and entry.is_external:
            self.external = io.BufferedReader(open_chunked(source, entry, where, sources, path))
            self.ids, sizes = list(entry.chunks), list(entry.chunk_sizes)
        else:
            self.ids = list(source.chunk_ids(entry)) if entry is not None and entry.size else []
            # A store's reader looks every chunk's size up at once; another source one by one.
            sizes = source.raw_sizes(self.ids) if isinstance(source, ObjectReader) else [source.raw_size(cid) for cid in self.ids]
        self.starts: list[int] = [0, *itertools.accumulate(sizes)]
        if self.starts[-1] != self.size:
            raise CorruptObject(f"{where}: its chunks hold {self.starts[-1]} bytes, the tree records {self.size}")

    def read(self, lo: int, hi: int) -> bytes:
        """The bytes of chunks [lo, hi), fetched together (each verified against its id by the reader)."""
        if self.external is not None:  # a buffered read goes on until it has them all
            self.external.seek(self.starts[lo])
            return self.external.read(self.starts[hi] - self.starts[lo])
        wanted = self.ids[lo:hi]
        got = dict(self.source.fetch(wanted)) if wanted else {}
        for cid in wanted:
            if cid not in got:
                got[cid] = self.source.cached(cid) or self.source.fetch([cid])[cid]
        return b"".join(got[cid] for cid in wanted)

    def line_of(self, offset: int) -> int:
        """The 1-based line number at byte ``offset``: reads every chunk before it, so only an error calls it."""
        newlines = 0
        k = 0
        while k < len(self.ids) and self.starts[k] < offset:
            newlines += self.read(k, k + 1)[: offset - self.starts[k]].count(b"\n")
            k += 1
        return newlines + 1

    def problem(self, exc: RowProblem) -> TableError:
        return TableError(f"{self.where}: line {self.line_of(exc.offset)}: {exc.reason}", "fix the file and commit it again")

    def chunk_at(self, offset: int) -> int:
        """The index of the chunk holding byte ``offset`` (the chunk count at the end)."""
        return bisect.bisect_right(self.starts, offset) - 1 if offset < self.size else len(self.ids)


@dataclass
class _Side:
    """One version while diffing: its chunks, columns and how to name a place in it."""

    chunks: FileChunks
    fmt: TableFormat
    columns: list[str]
    header_end: int  # offset of the first data row


@dataclass(frozen=True)
class _Row:
    at: int
    raw: bytes


def read_header(chunks: FileChunks, fmt: TableFormat) -> tuple[list[str], int, bytes, TableFormat]:
    """(columns, offset of the first data row, the header's bytes, the format with the header's delimiter).

    CSV/TSV: the first row. JSON Lines has no header: the columns are the keys of the first row.
    """
    buf = b""
    k = 0
    while True:
        if k < len(chunks.ids):
            buf += chunks.read(k, k + 1)
            k += 1
        at_eof = k >= len(chunks.ids)
        try:
            spans, _ = split_rows(buf, 0, fmt, at_eof)
        except RowProblem as exc:
            raise chunks.problem(exc) from None
        if spans or at_eof:
            break
    if not spans:
        return [], 0, b"", fmt
    first = buf[spans[0].start : spans[0].end]
    if not fmt.is_delimited:
        try:
            return list(parse_row(first, fmt, [], 0)), 0, first, fmt
        except RowProblem as exc:
            raise chunks.problem(exc) from None
    fmt = with_header_dialect(fmt, first)
    header_end = spans[1].start if len(spans) > 1 else len(buf) if at_eof else _next_row_start(buf, spans[0].end)
    return parse_fields(first, fmt, 0), header_end, first, fmt


def _next_row_start(buf: bytes, end: int) -> int:
    nl = buf.find(b"\n", end)
    return nl + 1 if nl >= 0 else len(buf)


def positional_diff(
    source: ChunkSource,
    old: TreeEntry | None,
    new: TreeEntry | None,
    path: str,
    fmt: TableFormat,
    where: tuple[str, str],
    limit: int | None = None,
) -> TableDiff:
    """Rows added, removed, changed and moved from ``old`` to ``new`` (two versions of ``path``), matched by position.

    ``where`` names each version's file in errors; ``path`` is what their hint tells ``datactl update`` when an
    external version's source changed.
    """
    with SourceBackends() as sources:  # where an external version's bytes are read from
        if isinstance(source, ObjectReader):  # both sides' chunk lists in one read, not one round trip each
            source.read_batch([e.chunklist for e in (old, new) if e is not None and e.chunklist and not e.is_external], remember=True)
        a = FileChunks(source, old, where[0], sources, path)
        b = FileChunks(source, new, where[1], sources, path)
        if isinstance(source, ObjectReader):  # and the first chunk of each, where the header is
            source.read_batch([side.ids[0] for side in (a, b) if side.ids and side.external is None], max_gap=0, remember=True)
        return _diff(a, b, path, fmt, limit)


def _diff(a: FileChunks, b: FileChunks, path: str, fmt: TableFormat, limit: int | None) -> TableDiff:
    cols_a, end_a, _, fmt_a = read_header(a, fmt)
    cols_b, end_b, _, fmt_b = read_header(b, fmt)
    result = TableDiff(path, fmt.name, POSITIONAL, old_columns=cols_a, new_columns=cols_b, old_size=a.size, new_size=b.size)
    result.schema = schema_changes(cols_a, cols_b)
    sides = (_Side(a, fmt_a, cols_a, end_a), _Side(b, fmt_b, cols_b, end_b))
    compare = RowKey.for_columns(fmt, cols_a, cols_b)
    changes: list[RowChange] = []
    for found in _windows(sides, lambda rows_a, rows_b: _diff_rows(sides, rows_a, rows_b, compare)):
        changes.extend(found)
    find_moves(changes, compare.of_values)
    for c in changes:
        result.counts[c.kind] += 1
    changes.sort(key=lambda c: (c.new_at if c.new_at is not None else c.old_at or 0, c.old_at or 0))
    result.rows = changes[:limit] if limit is not None else changes
    result.truncated = limit is not None and len(changes) > limit
    return result


# -- windows ------------------------------------------------------------------------------------------


def _regions(a: FileChunks, b: FileChunks) -> list[tuple[int, int, int, int]]:
    ops = difflib.SequenceMatcher(None, a.ids, b.ids, autojunk=False).get_opcodes()
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def _prefetch(a: FileChunks, b: FileChunks, regions: list[tuple[int, int, int, int]]) -> None:
    """Fetch the chunks every window will read, all in one batch, up to PREFETCH_BYTES.

    One batch lets the reader fetch from several packs at once, where windows read one after another would wait for
    one round trip each (on an object store, most of a diff's time). Each window reads its region, the chunk before it
    (where its first row starts) and the one after (where the sides meet again).
    """
    if not isinstance(a.source, ObjectReader):
        return  # a source that keeps no cache would read them twice
    wanted: dict[str, None] = {}
    budget = PREFETCH_BYTES
    for i1, i2, j1, j2 in regions:
        for side, lo, hi in ((a, i1 - 1, i2 + 1), (b, j1 - 1, j2 + 1)):
            if side.external is not None:
                continue  # in no pack: its windows are read from its source when they are diffed
            lo, hi = max(lo, 0), min(hi, len(side.ids))
            size = side.starts[hi] - side.starts[lo]
            if lo < hi and size <= budget:
                budget -= size
                wanted.update(dict.fromkeys(side.ids[lo:hi]))
    if wanted:
        a.source.read_batch(list(wanted), max_gap=0, remember=True)  # the chunks asked for, not what lies between


def _windows(sides: tuple[_Side, _Side], diff_window: Callable[[list["_Row"], list["_Row"]], list[RowChange]]) -> Iterator[list[RowChange]]:
    """Yield the changes ``diff_window(old rows, new rows)`` finds in each window around differing chunks, in file order.

    A window from a guessed start whose changed rows do not parse is read again from the last known row boundary.
    """
    a, b = sides[0].chunks, sides[1].chunks
    regions = _regions(a, b)
    _prefetch(a, b, regions)
    sync = (0, 0)  # the last offsets known to be a row boundary with identical bytes after them on both sides
    ri = 0
    while ri < len(regions):
        i1, _, j1, _ = regions[ri]
        start = _window_start(sides, i1, j1, regions[ri][1], sync)
        try:
            rows, end, last = _window(sides, regions, ri, start, checked=start == sync)
            found = diff_window(*rows)
        except (RowProblem, TableError):
            if start == sync:
                raise
            rows, end, last = _window(sides, regions, ri, sync, checked=True)  # the guessed start was inside a quoted field
            found = diff_window(*rows)
        yield found
        sync = end
        ri = last + 1
        while ri < len(regions) and a.starts[regions[ri][1]] <= sync[0] and b.starts[regions[ri][3]] <= sync[1]:
            ri += 1  # regions already read by this window


def _window(
    sides: tuple[_Side, _Side], regions: list[tuple[int, int, int, int]], ri: int, start: tuple[int, int], checked: bool
) -> tuple[tuple[list[_Row], list[_Row]], tuple[int, int], int]:
    """The rows of both sides from ``start`` until they meet again after region ``ri`` (and any it runs into).

    Returns (rows, where the sides met, the last region read). A window from a guessed start (``checked`` False)
    raises RowProblem when a row does not parse, so that the caller starts again from a known boundary.
    """
    a, b = sides[0].chunks, sides[1].chunks
    _, i2, _, j2 = regions[ri]
    ca, cb = a.chunk_at(start[0]), b.chunk_at(start[1])
    bufs = [a.read(ca, i2)[start[0] - a.starts[ca] :], b.read(cb, j2)[start[1] - b.starts[cb] :]]
    ka, kb = i2, j2  # next chunk to read on each side
    while True:
        at_eof = (ka >= len(a.ids), kb >= len(b.ids))
        if checked:
            spans = [_split(sides[s], bufs[s], start[s], at_eof[s]) for s in (0, 1)]
        else:
            spans = [split_rows(bufs[s], start[s], sides[s].fmt, at_eof[s]) for s in (0, 1)]
        end = _common_boundary(spans, (a.starts[ka], b.starts[kb]), (a.starts[i2], b.starts[j2]), at_eof, (a.size, b.size))
        if end is not None:
            break
        nxt = regions[ri + 1] if ri + 1 < len(regions) else None
        if nxt is not None and ka >= nxt[0]:
            ri += 1  # the identical run ended before the sides met again: the next region joins this window
            _, i2, _, j2 = nxt
            bufs[0] += a.read(ka, i2)
            bufs[1] += b.read(kb, j2)
            ka, kb = i2, j2
            continue
        if not at_eof[0]:
            bufs[0] += a.read(ka, ka + 1)
            ka += 1
        if not at_eof[1]:
            bufs[1] += b.read(kb, kb + 1)
            kb += 1
    rows = [[_Row(sp.start, bufs[s][sp.start - start[s] : sp.end - start[s]]) for sp in spans[s][0] if sides[s].header_end <= sp.start < end[s]] for s in (0, 1)]
    return (rows[0], rows[1]), end, ri


def _split(side: _Side, buf: bytes, base: int, at_eof: bool) -> tuple[list[Span], int]:
    try:
        return split_rows(buf, base, side.fmt, at_eof)
    except RowProblem as exc:
        raise side.chunks.problem(exc) from None


def _common_boundary(
    spans: list[tuple[list[Span], int]], read_to: tuple[int, int], region_end: tuple[int, int], at_eof: tuple[bool, bool], sizes: tuple[int, int]
) -> tuple[int, int] | None:
    """The first row boundary after both regions at the same distance past each region's end (so identical bytes follow), or None."""
    if all(at_eof):
        return sizes
    rel = []
    for s in (0, 1):
        starts = [sp.start for sp in spans[s][0]] + [spans[s][1]]
        rel.append({x - region_end[s]: x for x in starts if region_end[s] <= x <= read_to[s]})
    common = sorted(set(rel[0]) & set(rel[1]))
    return (rel[0][common[0]], rel[1][common[0]]) if common else None


def _window_start(sides: tuple[_Side, _Side], i1: int, j1: int, i2: int, sync: tuple[int, int]) -> tuple[int, int]:
    """Offsets on each side, in the identical bytes before chunks ``i1`` / ``j1``, where a row starts."""
    a, b = sides[0].chunks, sides[1].chunks
    if i1 == 0 or j1 == 0 or a.starts[i1] <= sync[0]:
        return sync
    shift = b.starts[j1] - a.starts[i1]  # identical bytes before the region: the same content at offsets shifted by this
    region: bytes | None = None
    k = i1 - 1
    while k >= 0 and a.starts[k + 1] > sync[0]:
        lo = max(a.starts[k], sync[0])
        context = a.read(a.chunk_at(lo), i1)[lo - a.starts[a.chunk_at(lo)] :]
        # The newlines of chunk k, the nearest to the region first (the less to read and parse).
        upto = a.starts[k + 1] - lo
        for _ in range(START_TRIES):
            nl = context.rfind(b"\n", 0, upto)
            if nl < 0:
                break
            upto = nl
            pos = nl + 1
            if sides[0].fmt.is_delimited and b'"' not in context[pos:] and region is None:
                region = a.read(i1, i2)  # where the first quote after the start may be (read again from the cache)
            if _plausible_start(sides[0], context[pos:] + (region or b"")):
                return lo + pos, lo + pos + shift
        k -= 1
    return sync


def _plausible_start(side: _Side, data: bytes) -> bool:
    """Whether rows can start at ``data[0]``: JSON Lines always; CSV when the first quote after it opens a field (a quote
    that closes one means the start is inside a quoted field), and every complete row has the header's number of fields."""
    if not side.fmt.is_delimited:
        return True
    q = data.find(b'"')
    if q > 0 and data[q - 1 : q] not in (side.fmt.delimiter.encode(), b"\n", b"\r"):
        return False
    if q < 0:
        return True
    try:
        spans, _ = split_rows(data, 0, side.fmt, False)
        for sp in spans:
            parse_row(data[sp.start : sp.end], side.fmt, side.columns, sp.start)
    except RowProblem:
        return False
    return True


# -- rows -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowKey:
    """What two rows are compared by: their bytes, or (CSV with a schema change) the values of the columns both sides have."""

    shared: tuple[tuple[str, ...], tuple[str, ...]] | None  # the shared columns by their old and new names

    @classmethod
    def for_columns(cls, fmt: TableFormat, cols_a: list[str], cols_b: list[str]) -> "RowKey":
        if not fmt.is_delimited or cols_a == cols_b:
            return cls(None)
        renames = column_renames(cols_a, cols_b)
        shared_a = tuple(c for c in cols_a if c in cols_b or c in renames)
        return cls((shared_a, tuple(renames.get(c, c) for c in shared_a)))

    def of(self, side: int, raw: bytes, values: dict[str, Any]) -> Any:
        return raw if self.shared is None else tuple(values[c] for c in self.shared[side])

    def of_values(self, side: int, values: dict[str, Any]) -> Any:
        """The same, from values alone (moved rows are matched after parsing)."""
        if self.shared is None:
            return json.dumps(values, sort_keys=True, default=str)
        return tuple(values.get(c) for c in self.shared[side])


def _values(side: _Side, row: _Row) -> dict[str, Any]:
    try:
        return parse_row(row.raw, side.fmt, side.columns, row.at)
    except RowProblem as exc:
        raise side.chunks.problem(exc) from None


def _diff_rows(sides: tuple[_Side, _Side], rows_a: Sequence[_Row], rows_b: Sequence[_Row], compare: RowKey) -> list[RowChange]:
    """The changes between one window's rows; only rows that differ are parsed (unless the schema changed)."""
    values: list[dict[int, dict[str, Any]]] = [{}, {}]

    def vals(s: int, rows: Sequence[_Row], i: int) -> dict[str, Any]:
        got = values[s].get(i)
        if got is None:
            got = values[s][i] = _values(sides[s], rows[i])
        return got

    keys_a = [compare.of(0, r.raw, vals(0, rows_a, i) if compare.shared else {}) for i, r in enumerate(rows_a)]
    keys_b = [compare.of(1, r.raw, vals(1, rows_b, i) if compare.shared else {}) for i, r in enumerate(rows_b)]
    renames = column_renames(sides[0].columns, sides[1].columns)
    changes: list[RowChange] = []
    for tag, i1, i2, j1, j2 in _opcodes(keys_a, keys_b):
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            old, new = vals(0, rows_a, i1 + k), vals(1, rows_b, j1 + k)
            cells = _changed_cells(old, new, renames)
            if cells:
                changes.append(RowChange(CHANGED, rows_a[i1 + k].at, rows_b[j1 + k].at, old, new, cells))
        changes.extend(RowChange(REMOVED, rows_a[k].at, None, vals(0, rows_a, k), None) for k in range(i1 + paired, i2))
        changes.extend(RowChange(ADDED, None, rows_b[k].at, None, vals(1, rows_b, k)) for k in range(j1 + paired, j2))
    return changes


def _opcodes(keys_a: list[Any], keys_b: list[Any]) -> Iterator[tuple[str, int, int, int, int]]:
    """``SequenceMatcher``'s opcodes, matched only between the first and the last rows that differ.

    A window holds a few changed rows among thousands of equal ones around them (whole chunks on each side): the
    equal rows at both ends are found by comparing slices, so the matcher, quadratic at worst, sees only the middle.
    """
    head = _common_length(keys_a, keys_b, lambda seq, n: seq[:n])
    tail = _common_length(keys_a[head:], keys_b[head:], lambda seq, n: seq[len(seq) - n :])
    end_a, end_b = len(keys_a) - tail, len(keys_b) - tail
    if head:
        yield "equal", 0, head, 0, head
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, keys_a[head:end_a], keys_b[head:end_b], autojunk=False).get_opcodes():
        yield tag, i1 + head, i2 + head, j1 + head, j2 + head
    if tail:
        yield "equal", end_a, len(keys_a), end_b, len(keys_b)


def _common_length(a: list[Any], b: list[Any], part: Callable[[list[Any], int], list[Any]]) -> int:
    """The largest n with ``part(a, n) == part(b, n)`` (a prefix or a suffix), by bisection over slice comparisons."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if part(a, mid) == part(b, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _changed_cells(old: dict[str, Any], new: dict[str, Any], renames: dict[str, str]) -> tuple[str, ...]:
    """The columns (new names) whose values differ, among those on both sides."""
    back = {n: o for o, n in renames.items()}
    return tuple(c for c in new if (back.get(c, c) in old) and old[back.get(c, c)] != new[c])


def find_moves(changes: list[RowChange], row_key: Callable[[int, dict], Any] | None = None) -> None:
    """A removed row equal to an added row elsewhere was moved: the pair becomes one ``moved`` change.

    ``row_key(side, values)`` is what rows are equal by (default: all their values).
    """
    key = row_key or (lambda side, values: json.dumps(values, sort_keys=True, default=str))
    pool: dict[Any, list[int]] = {}
    for i, c in enumerate(changes):
        if c.kind == REMOVED:
            pool.setdefault(key(0, c.old or {}), []).append(i)
    if not pool:
        return
    drop: set[int] = set()
    for i, c in enumerate(changes):
        if c.kind != ADDED:
            continue
        same = pool.get(key(1, c.new or {}))
        if same:
            j = same.pop(0)
            changes[i] = RowChange(MOVED, changes[j].old_at, c.new_at, changes[j].old, c.new)
            drop.add(j)
    changes[:] = [c for i, c in enumerate(changes) if i not in drop]
