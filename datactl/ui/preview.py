"""What a file preview shows, read from a seekable stream: only the bytes shown (and a Parquet footer).

Tables (CSV, TSV, JSON lines, Parquet) come as a page of rows with the schema
and a summary of each column over the rows shown; images as their type (the
page shows the bytes themselves); other files as numbered text lines, or as
a hex dump when they are binary.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Iterator, Sequence

TABLE_ROWS = 50  # rows on one page of a table preview
MAX_ROWS = 500
TEXT_BYTES = 64 * 1024  # what a text preview reads
HEX_BYTES = 512
CELL_CHARS = 300  # a longer cell is cut (the file is not: its bytes are never changed)
SNIFF_BYTES = 8192

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp", ".bmp": "image/bmp"}
DELIMITERS = {".csv": ",", ".tsv": "\t"}
JSON_LINES = (".jsonl", ".ndjson")


@dataclass
class ColumnSummary:
    """One column over the rows shown: type, nulls, distinct values, range, and a small histogram."""

    name: str
    type: str
    nulls: int
    distinct: int
    min: str | None = None
    max: str | None = None
    histogram: list[tuple[str, int]] = field(default_factory=list)  # (bin label, count)


@dataclass
class Preview:
    """A file's preview; ``kind`` is table, image, text or hex."""

    kind: str
    format: str
    size: int
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    summaries: list[ColumnSummary] = field(default_factory=list)
    offset: int = 0
    total_rows: int | None = None  # known for Parquet (its footer says)
    has_more: bool = False
    lines: list[str] = field(default_factory=list)
    hex: list[tuple[str, str, str]] = field(default_factory=list)  # (offset, bytes, text)
    mime: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def preview_file(stream: BinaryIO, name: str, size: int, offset: int = 0, limit: int = TABLE_ROWS) -> Preview:
    """The preview of ``name`` (``size`` bytes): for a table, rows ``offset`` .. ``offset + limit``."""
    suffix = file_suffix(name)
    limit = max(1, min(limit, MAX_ROWS))
    offset = max(0, offset)
    if suffix in IMAGE_TYPES:
        return Preview("image", suffix[1:], size, mime=IMAGE_TYPES[suffix])
    try:
        if suffix in DELIMITERS:
            return _csv(stream, suffix, size, DELIMITERS[suffix], offset, limit)
        if suffix in JSON_LINES:
            return _json_lines(stream, suffix, size, offset, limit)
        if suffix == ".parquet":
            return _parquet(stream, size, offset, limit)
    except (csv.Error, ValueError, UnicodeDecodeError) as exc:
        stream.seek(0)
        shown = _text_or_hex(stream, suffix, size)
        shown.note = f"not read as a table ({exc}); shown as {shown.kind}"
        return shown
    return _text_or_hex(stream, suffix, size)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _page(rows: Iterator[Sequence[Any]], offset: int, limit: int) -> tuple[list[list[Any]], bool]:
    """Rows offset .. offset+limit of ``rows``, and whether there are more after them."""
    for _ in range(offset):
        if next(rows, None) is None:
            return [], False
    page = [list(r) for _, r in zip(range(limit), rows)]
    return page, next(rows, None) is not None


def _csv(stream: BinaryIO, suffix: str, size: int, delimiter: str, offset: int, limit: int) -> Preview:
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")  # type: ignore[arg-type]
    try:
        reader = csv.reader(text, delimiter=delimiter)
        header = next(reader, [])
        page, more = _page(reader, offset, limit)
    finally:
        text.detach()  # the stream stays open for a fallback read
    width = max([len(header), *(len(r) for r in page)]) if header or page else 0
    columns = [*header, *(f"column {i + 1}" for i in range(len(header), width))]
    values = [[(r[i] if i < len(r) and r[i] != "" else None) for r in page] for i in range(width)]
    summaries = [summarize(columns[i], values[i]) for i in range(width)]
    rows = [[_cell(v) for v in r] + [""] * (width - len(r)) for r in page]
    return Preview("table", suffix[1:], size, columns, [s.type for s in summaries], rows, summaries, offset, None, more)


def _json_lines(stream: BinaryIO, suffix: str, size: int, offset: int, limit: int) -> Preview:
    records = (json.loads(line) for line in stream if line.strip())
    page, more = _page(((r,) for r in records), offset, limit)
    objects = [r[0] if isinstance(r[0], dict) else {"value": r[0]} for r in page]
    columns = list(dict.fromkeys(k for o in objects for k in o))
    values = [[o.get(c) for o in objects] for c in columns]
    summaries = [summarize(c, v) for c, v in zip(columns, values)]
    rows = [[_cell(o.get(c)) for c in columns] for o in objects]
    return Preview("table", suffix[1:], size, columns, [s.type for s in summaries], rows, summaries, offset, None, more)


def _parquet(stream: BinaryIO, size: int, offset: int, limit: int) -> Preview:
    try:
        import pyarrow.parquet as pq  # optional: the `parquet` extra
    except ImportError:
        stream.seek(0)
        shown = _text_or_hex(stream, ".parquet", size)
        shown.note = "install pyarrow (pip install 'datactl[parquet]') to see Parquet files as tables"
        return shown
    pf = pq.ParquetFile(stream)  # reads the footer: the schema and where each row group is
    meta = pf.metadata
    columns = list(pf.schema_arrow.names)
    types = [str(t) for t in pf.schema_arrow.types]
    rows: list[list[Any]] = []
    start = 0
    for g in range(meta.num_row_groups):  # only the row groups the page falls in are read
        n = meta.row_group(g).num_rows
        if start + n > offset and len(rows) < limit:
            table = pf.read_row_group(g)
            lo = max(0, offset - start)
            part = table.slice(lo, limit - len(rows)).to_pylist()
            rows.extend([rec.get(c) for c in columns] for rec in part)
        start += n
    values = [[r[i] for r in rows] for i in range(len(columns))]
    summaries = [summarize(c, v, t) for c, v, t in zip(columns, values, types)]
    return Preview(
        "table", "parquet", size, columns, types, [[_cell(v) for v in r] for r in rows], summaries, offset, meta.num_rows, offset + len(rows) < meta.num_rows
    )


def _text_or_hex(stream: BinaryIO, suffix: str, size: int) -> Preview:
    head = stream.read(TEXT_BYTES)
    text = None if b"\0" in head[:SNIFF_BYTES] else head.decode("utf-8", errors="replace")
    if text is not None and text.count("\ufffd") <= max(2, len(text) // 100):
        lines = text.splitlines()
        more = size > len(head)
        if more and lines and not text.endswith("\n"):
            lines.pop()  # a line cut by the end of what was read
        return Preview("text", suffix[1:] or "text", size, lines=lines, has_more=more)
    rows = []
    for at in range(0, min(len(head), HEX_BYTES), 16):
        part = head[at : at + 16]
        rows.append((f"{at:08x}", " ".join(f"{b:02x}" for b in part), "".join(chr(b) if 32 <= b < 127 else "." for b in part)))
    return Preview("hex", suffix[1:] or "binary", size, hex=rows, has_more=size > HEX_BYTES)


# -- column summaries -------------------------------------------------------------------------


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def summarize(name: str, values: list[Any], type_name: str | None = None) -> ColumnSummary:
    """Type, nulls, distinct count, min/max and a histogram of ``values`` (None is a null)."""
    present = [v for v in values if v is not None]
    keys = [json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else v for v in present]
    numbers = [_number(v) for v in present]
    numeric = bool(present) and all(n is not None for n in numbers)
    if type_name is None:
        if not present:
            type_name = "empty"
        elif numeric:
            type_name = "integer" if all(float(n).is_integer() and "." not in str(v) for n, v in zip(numbers, present)) else "float"  # type: ignore[arg-type]
        else:
            type_name = "string"
    s = ColumnSummary(name, type_name, len(values) - len(present), len(set(keys)))
    if numeric:
        nums = [n for n in numbers if n is not None]
        lo, hi = min(nums), max(nums)
        s.min, s.max = _fmt(lo), _fmt(hi)
        s.histogram = _bins(nums, lo, hi)
    elif present:
        s.min, s.max = _cell(min(keys)), _cell(max(keys))
        counts: dict[str, int] = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        s.histogram = [(_cell(k)[:40], c) for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]]
    return s


def _fmt(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.6g}"


def _bins(nums: list[float], lo: float, hi: float, n: int = 8) -> list[tuple[str, int]]:
    if lo == hi:
        return [(_fmt(lo), len(nums))]
    width = (hi - lo) / n
    counts = [0] * n
    for x in nums:
        counts[min(n - 1, int((x - lo) / width))] += 1
    return [(f"{_fmt(lo + i * width)}–{_fmt(lo + (i + 1) * width)}", c) for i, c in enumerate(counts)]
