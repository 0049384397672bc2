"""Table formats: which files are tables, and cutting a text table's bytes into rows.

CSV/TSV and JSON Lines are cut into rows by datactl itself, so that a diff can
parse just a window of a file (starting at a row boundary) and know each row's
exact bytes and offset; a merge writes rows back byte for byte. A CSV row ends
at a newline outside quotes: RFC 4180 doubles a quote inside a quoted field,
so a row is complete exactly when it holds an even number of quote characters.
Parquet is read by the engine (``datactl.tables.engine``).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from datactl.core.errors import UsageError

CSV, TSV, JSONL, PARQUET = "csv", "tsv", "jsonl", "parquet"
SUFFIXES = {".csv": CSV, ".tsv": TSV, ".tab": TSV, ".jsonl": JSONL, ".ndjson": JSONL, ".parquet": PARQUET, ".pq": PARQUET}
QUOTE = b'"'
# Delimiters a .csv file may use; the header line decides (the most frequent outside quotes).
CSV_DELIMITERS = (",", ";", "|", "\t")


@dataclass(frozen=True)
class TableFormat:
    """A table's format, and for CSV/TSV its delimiter."""

    name: str
    delimiter: str = ","

    @property
    def is_text(self) -> bool:
        """Whether rows are lines of text datactl cuts itself (CSV, TSV, JSON Lines)."""
        return self.name != PARQUET

    @property
    def is_delimited(self) -> bool:
        return self.name in (CSV, TSV)


def table_format(path: str) -> TableFormat | None:
    """The format of ``path`` by its extension, or None when it is not a table datactl reads."""
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    fmt = SUFFIXES.get(name[dot:].lower()) if dot > 0 else None
    if fmt is None:
        return None
    return TableFormat(fmt, "\t" if fmt == TSV else ",")


def require_table_format(path: str) -> TableFormat:
    fmt = table_format(path)
    if fmt is None:
        raise UsageError(
            f"{path} is not a table datactl can diff by rows",
            f"row diffs read {', '.join(sorted(SUFFIXES))} files; `datactl diff A B` without a path compares whole files",
        )
    return fmt


def with_header_dialect(fmt: TableFormat, header: bytes) -> TableFormat:
    """A .csv file's delimiter, from its header line (a .tsv file is always tab-separated)."""
    if fmt.name != CSV:
        return fmt
    text = header.decode("utf-8", "replace")
    outside = "".join(part for i, part in enumerate(text.split('"')) if i % 2 == 0)
    best = max(CSV_DELIMITERS, key=lambda d: outside.count(d))
    return TableFormat(CSV, best if outside.count(best) else ",")


class RowProblem(ValueError):
    """A row that cannot be read, at a byte offset of its file; the caller names the file and line."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


class Span(NamedTuple):
    """One row's bytes in a file: [start, end), without its line ending (a tuple: a diff window makes one per row)."""

    start: int
    end: int


def split_rows(buf: bytes | memoryview, base: int, fmt: TableFormat, at_eof: bool) -> tuple[list[Span], int]:
    """The complete rows of ``buf`` (whose first byte, at file offset ``base``, starts a row), and where the rest starts.

    Blank lines are no rows. At the end of the file the last line is a row even
    without a newline; an open quote there is a RowProblem.
    """
    data = bytes(buf)
    spans: list[Span] = []
    row_start = 0
    quotes = 0
    pos = 0
    n = len(data)
    if not fmt.is_delimited or QUOTE not in data:
        # No quotes: every newline ends a row (the common case, without a step per line in Python).
        last = data.rfind(b"\n") + 1
        lines = data[:last].split(b"\n")[:-1] if last else []
        lengths = list(map(len, lines))
        starts = itertools.accumulate((length + 1 for length in lengths), initial=base)  # where each line starts
        if b"\r" not in data:  # a window holds thousands of rows: as little as can be done per row
            spans = [Span(start, start + length) for start, length in zip(starts, lengths) if length]
        else:
            for line, start, length in zip(lines, starts, lengths):
                size = length - (1 if line.endswith(b"\r") else 0)
                if size:
                    spans.append(Span(start, start + size))
        row_start = pos = last
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        if fmt.is_delimited:
            quotes += data.count(QUOTE, pos, nl)
        pos = nl + 1
        if quotes % 2:
            continue  # a newline inside a quoted field
        end = nl - 1 if nl > row_start and data[nl - 1] == 13 else nl  # \r\n
        if end > row_start:
            spans.append(Span(base + row_start, base + end))
        row_start, quotes = pos, 0
    if at_eof and row_start < n:
        if fmt.is_delimited and (quotes + data.count(QUOTE, pos, n)) % 2:
            raise RowProblem(base + row_start, "a quoted field is never closed")
        end = n - 1 if data[n - 1] == 13 else n
        if end > row_start:
            spans.append(Span(base + row_start, base + end))
        row_start = n
    return spans, base + row_start


def parse_fields(raw: bytes, fmt: TableFormat, offset: int) -> list[str]:
    """The fields of one CSV/TSV row (its exact bytes, at file ``offset``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RowProblem(offset, "the row is not valid UTF-8") from None
    if text.startswith("\ufeff") and offset == 0:
        text = text[1:]
    try:
        rows = list(csv.reader([text], delimiter=fmt.delimiter, strict=True))
    except csv.Error as exc:
        raise RowProblem(offset, f"the row is not valid {fmt.name.upper()} ({exc})") from None
    return rows[0] if rows else []


def parse_object(raw: bytes, offset: int) -> dict[str, Any]:
    """One JSON Lines row: a JSON object."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RowProblem(offset, f"the line is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RowProblem(offset, f"the line is a JSON {type(value).__name__}, not an object")
    return value


def parse_row(raw: bytes, fmt: TableFormat, columns: Sequence[str], offset: int) -> dict[str, Any]:
    """A row's values by column: CSV/TSV fields against the header's ``columns``, a JSON Lines object as it is."""
    if not fmt.is_delimited:
        return parse_object(raw, offset)
    fields = parse_fields(raw, fmt, offset)
    if len(fields) != len(columns):
        raise RowProblem(offset, f"the row has {len(fields)} fields, the header has {len(columns)}")
    return dict(zip(columns, fields))


def format_fields(values: Sequence[Any], fmt: TableFormat) -> bytes:
    """One CSV/TSV row written the way the csv module quotes (only where needed), without a line ending."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=fmt.delimiter, lineterminator="").writerow(["" if v is None else v for v in values])
    return buf.getvalue().encode("utf-8")


def format_object(values: dict[str, Any]) -> bytes:
    return json.dumps(values, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")
