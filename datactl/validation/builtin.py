"""The built-in rules. Metadata rules read no file bytes; content rules read only the files they match."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import date, datetime
from typing import BinaryIO

from datactl.core.units import human_bytes
from datactl.store.source import SourceEntry
from datactl.validation.rules import Finding, Options, Rule, bounds_findings, path_matches, register_rule, require_module

# Findings a content rule reports per file before it moves on.
PER_FILE = 5


def _bytes(n: int | float) -> str:
    return f"{human_bytes(n)} ({int(n)} bytes)" if n >= 1024 else f"{int(n)} bytes"


# -- metadata rules ------------------------------------------------------------------


@register_rule
class CountRule(Rule):
    type = "count"
    description = "number of files matching the globs within [min, max]"

    def configure(self, o: Options) -> None:
        self.min = o.int("min", None)
        self.max = o.int("max", None)
        if self.min is None and self.max is None:
            raise o.error("needs min or max")
        self.n = 0

    def visit(self, entry: SourceEntry) -> None:
        self.n += 1

    def finish(self) -> list[Finding]:
        return bounds_findings(f"the number of files matching {', '.join(self.glob or ['*'])}", self.n, self.min, self.max)


@register_rule
class TotalSizeRule(Rule):
    type = "total_size"
    description = "total bytes of the files matching the globs within [min, max]"

    def configure(self, o: Options) -> None:
        self.min = o.size("min", None)
        self.max = o.size("max", None)
        if self.min is None and self.max is None:
            raise o.error("needs min or max")
        self.total = 0

    def visit(self, entry: SourceEntry) -> None:
        self.total += entry.size

    def finish(self) -> list[Finding]:
        return bounds_findings(f"the total size of {', '.join(self.glob or ['*'])}", self.total, self.min, self.max, _bytes)


@register_rule
class FileSizeRule(Rule):
    type = "file_size"
    description = "every matching file's size within [min, max]"

    def configure(self, o: Options) -> None:
        self.min = o.size("min", None)
        self.max = o.size("max", None)
        if self.min is None and self.max is None:
            raise o.error("needs min or max")

    def visit(self, entry: SourceEntry) -> list[Finding]:
        return [Finding(f.message.replace("the size", "its size"), entry.path) for f in bounds_findings("the size", entry.size, self.min, self.max, _bytes)]


@register_rule
class NoEmptyRule(Rule):
    type = "no_empty"
    description = "no zero-byte files"

    def visit(self, entry: SourceEntry) -> list[Finding]:
        return [Finding("the file is empty", entry.path)] if entry.size == 0 else []


@register_rule
class RequiredRule(Rule):
    type = "required"
    description = "each listed path (file, folder or glob) is present"

    def configure(self, o: Options) -> None:
        self.paths = o.str_list("paths")
        self.found = [False] * len(self.paths)

    def visit(self, entry: SourceEntry) -> None:
        for i, p in enumerate(self.paths):
            if not self.found[i] and path_matches(p, entry.path):
                self.found[i] = True

    def finish(self) -> list[Finding]:
        return [Finding(f"required path {p} is missing", p) for p, ok in zip(self.paths, self.found) if not ok]


@register_rule
class ForbiddenRule(Rule):
    type = "forbidden"
    description = "no file matches the listed paths or globs"

    def configure(self, o: Options) -> None:
        self.paths = o.str_list("paths")

    def visit(self, entry: SourceEntry) -> list[Finding]:
        hits = [p for p in self.paths if path_matches(p, entry.path)]
        return [Finding(f"forbidden path (matches {hits[0]})", entry.path)] if hits else []


@register_rule
class ExtensionsRule(Rule):
    type = "extensions"
    description = "only the allowed file extensions"

    def configure(self, o: Options) -> None:
        allowed = o.str_list("allowed")
        self.allowed = {("" if a in ("", ".") else "." + a.lower().lstrip(".")) for a in allowed}

    def visit(self, entry: SourceEntry) -> list[Finding]:
        if entry.suffix in self.allowed:
            return []
        shown = entry.suffix or "(no extension)"
        return [Finding(f"extension {shown} is not allowed (allowed: {', '.join(sorted(a or '(none)' for a in self.allowed))})", entry.path)]


@register_rule
class NoDuplicatesRule(Rule):
    type = "no_duplicates"
    description = "no two files with the same content (by digest; reads no bytes)"

    def configure(self, o: Options) -> None:
        self.ignore_empty = o.bool("ignore_empty", True)
        self.first: dict[bytes, str] = {}

    def visit(self, entry: SourceEntry) -> list[Finding]:
        if entry.size == 0 and self.ignore_empty:
            return []
        key = bytes.fromhex(entry.digest)
        first = self.first.setdefault(key, entry.path)
        return [] if first == entry.path else [Finding(f"same content as {first}", entry.path)]


@register_rule
class SplitOverlapRule(Rule):
    type = "split_overlap"
    description = "no content in more than one split (e.g. the same file in train/ and test/)"

    def configure(self, o: Options) -> None:
        raw = o.raw("splits")
        if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
            self.splits = {s.strip("/"): s for s in raw}
        elif isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values()):
            self.splits = dict(raw)
        else:
            raise o.error("splits must be a list of folders (or globs), or a table name = \"glob\"")
        if len(self.splits) < 2:
            raise o.error("needs at least two splits")
        self.ignore_empty = o.bool("ignore_empty", True)
        self.seen: dict[bytes, tuple[str, str]] = {}  # digest -> (split, first path)

    def visit(self, entry: SourceEntry) -> list[Finding]:
        if entry.size == 0 and self.ignore_empty:
            return []
        split = next((name for name, pattern in self.splits.items() if path_matches(pattern, entry.path)), None)
        if split is None:
            return []
        key = bytes.fromhex(entry.digest)
        first = self.seen.setdefault(key, (split, entry.path))
        if first[0] != split:
            return [Finding(f"leaked across splits: same content as {first[1]} ({first[0]})", entry.path)]
        return []


# -- class balance ---------------------------------------------------------------------


@register_rule
class ClassBalanceRule(Rule):
    type = "class_balance"
    description = "files per class folder, or rows per label value, within bounds; no class missing"

    def configure(self, o: Options) -> None:
        self.by = o.str("by", "folder", choices=("folder", "column"))
        if self.by == "folder":
            self.root = o.str("root").strip("/")
        else:
            if self.glob is None:
                raise o.error('by = "column" needs glob = the label file(s), e.g. "/labels.csv"')
            self.column = o.str("column")
            self.delimiter = o.str("delimiter", None)
        self.min = o.int("min", None)
        self.max = o.int("max", None)
        self.min_fraction = o.fraction("min_fraction", None)
        self.max_fraction = o.fraction("max_fraction", None)
        self.max_ratio = o.float("max_ratio", None)
        self.classes = o.str_list("classes", None)
        self.allow_other = o.bool("allow_other", True)
        self.counts: Counter[str] = Counter()

    def selects(self, entry: SourceEntry) -> bool:
        if self.by == "folder":
            prefix = self.root + "/" if self.root else ""
            return entry.path.startswith(prefix) and "/" in entry.path[len(prefix) :] and super().selects(entry)
        return super().selects(entry)

    def wants_content(self, entry: SourceEntry) -> bool:
        return self.by == "column"

    def visit(self, entry: SourceEntry) -> None:
        if self.by == "folder":
            prefix = self.root + "/" if self.root else ""
            self.counts[entry.path[len(prefix) :].split("/", 1)[0]] += 1

    def check_file(self, entry: SourceEntry, stream: BinaryIO) -> list[Finding]:
        local: Counter[str] = Counter()
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        if entry.suffix in (".jsonl", ".ndjson"):
            for n, line in enumerate(text, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line).get(self.column)
                except (ValueError, AttributeError):
                    return [Finding(f"line {n} is not a JSON object", entry.path)]
                if value is not None:
                    local[str(value)] += 1
        else:
            reader = csv.reader(text, delimiter=self.delimiter or _delimiter(entry))
            header = next(reader, None)
            if header is None or self.column not in header:
                return [Finding(f"no column {self.column!r} in the header", entry.path)]
            i = header.index(self.column)
            for row in reader:
                if len(row) > i:
                    local[row[i]] += 1
        with self.lock:
            self.counts.update(local)
        return []

    def finish(self) -> list[Finding]:
        out = []
        counts = dict(self.counts)
        for c in self.classes or []:
            if counts.get(c, 0) == 0:
                out.append(Finding(f"class {c!r} has no " + ("files" if self.by == "folder" else "rows")))
        if self.classes is not None and not self.allow_other:
            for c in sorted(set(counts) - set(self.classes)):
                out.append(Finding(f"class {c!r} is not in the expected classes"))
        if not counts:
            if self.classes is None:
                out.append(Finding("no classes found"))
            return out
        total = sum(counts.values())
        for c, n in sorted(counts.items()):
            if self.min is not None and n < self.min:
                out.append(Finding(f"class {c!r} has {n}, below the minimum {self.min}"))
            if self.max is not None and n > self.max:
                out.append(Finding(f"class {c!r} has {n}, above the maximum {self.max}"))
            share = n / total
            if self.min_fraction is not None and share < self.min_fraction:
                out.append(Finding(f"class {c!r} is {share:.1%} of {total}, below {self.min_fraction:.1%}"))
            if self.max_fraction is not None and share > self.max_fraction:
                out.append(Finding(f"class {c!r} is {share:.1%} of {total}, above {self.max_fraction:.1%}"))
        if self.max_ratio is not None:
            big = max(counts, key=lambda k: counts[k])
            small = min(counts, key=lambda k: counts[k])
            if counts[big] > self.max_ratio * counts[small]:
                out.append(Finding(f"largest class {big!r} ({counts[big]}) is {counts[big] / counts[small]:.1f}x the smallest {small!r} ({counts[small]}), above {self.max_ratio}x"))
        return out


# -- content rules -----------------------------------------------------------------------


def _delimiter(entry: SourceEntry) -> str:
    return "\t" if entry.suffix in (".tsv", ".tab") else ","


_BOOLS = {"true", "false", "1", "0", "yes", "no", "t", "f", "y", "n"}


def _is_int(v: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", v.strip()) is not None


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _is_date(v: str) -> bool:
    try:
        date.fromisoformat(v.strip())
        return True
    except ValueError:
        return False


def _is_datetime(v: str) -> bool:
    try:
        datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


COLUMN_TYPES = {
    "int": _is_int,
    "integer": _is_int,
    "float": _is_float,
    "number": _is_float,
    "str": lambda v: True,
    "string": lambda v: True,
    "bool": lambda v: v.strip().lower() in _BOOLS,
    "date": _is_date,
    "datetime": _is_datetime,
}


@register_rule
class CsvRule(Rule):
    type = "csv"
    description = "CSV/TSV header and column types (reads the header and the first rows only)"
    reads_content = True
    default_glob = ["*.csv", "*.tsv"]

    def configure(self, o: Options) -> None:
        self.header = o.str_list("header", None)
        self.required_columns = o.str_list("required_columns", None)
        self.columns: dict[str, tuple[str, bool]] = {}
        for col, t in (o.table("columns", None) or {}).items():
            if not isinstance(t, str) or t.rstrip("?") not in COLUMN_TYPES:
                raise o.error(f"column {col!r}: type must be one of {', '.join(sorted(COLUMN_TYPES))} (add ? to allow empty)")
            self.columns[col] = (t.rstrip("?"), t.endswith("?"))
        self.rows = o.int("rows", 1000)
        self.min_rows = o.int("min_rows", None)
        self.delimiter = o.str("delimiter", None)
        self.encoding = o.str("encoding", "utf-8")
        if self.header is None and self.required_columns is None and not self.columns and self.min_rows is None:
            raise o.error("needs header, required_columns, columns or min_rows")

    def check_file(self, entry: SourceEntry, stream: BinaryIO) -> list[Finding]:
        out: list[Finding] = []
        try:
            text = io.TextIOWrapper(stream, encoding=self.encoding, newline="")
            reader = csv.reader(text, delimiter=self.delimiter or _delimiter(entry))
            header = next(reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            return [Finding(f"cannot read the header: {exc}", entry.path)]
        if header is None:
            return [Finding("the file has no header row", entry.path)]
        if self.header is not None and header != self.header:
            out.append(Finding(f"header is {header}, expected {self.header}", entry.path))
        for col in self.required_columns or []:
            if col not in header:
                out.append(Finding(f"required column {col!r} is missing (header: {header})", entry.path))
        typed = [(header.index(c), c, t, nullable) for c, (t, nullable) in self.columns.items() if c in header]
        for c in self.columns:
            if c not in header and c not in (self.required_columns or []):
                out.append(Finding(f"typed column {c!r} is missing (header: {header})", entry.path))
        need = max(self.rows or 0, self.min_rows or 0) if self.rows else None  # None: every row
        n = 0
        try:
            for row in reader:
                n += 1
                if len(row) != len(header):
                    out.append(Finding(f"row {n} has {len(row)} fields, the header has {len(header)}", entry.path))
                for i, c, t, nullable in typed:
                    v = row[i] if i < len(row) else ""
                    if v == "":
                        if not nullable:
                            out.append(Finding(f"row {n}: column {c!r} is empty (type {t})", entry.path))
                    elif not COLUMN_TYPES[t](v):
                        out.append(Finding(f"row {n}: column {c!r} = {v!r} is not {t}", entry.path))
                if len(out) >= PER_FILE or (need is not None and n >= need):
                    break
        except (UnicodeDecodeError, csv.Error) as exc:
            out.append(Finding(f"row {n + 1} cannot be read: {exc}", entry.path))
        if self.min_rows is not None and n < self.min_rows and len(out) < PER_FILE:
            out.append(Finding(f"has {n} data rows, below the minimum {self.min_rows}", entry.path))
        return out


@register_rule
class JsonLinesRule(Rule):
    type = "jsonl"
    description = "JSON Lines: every line is a JSON object with the required keys"
    reads_content = True
    default_glob = ["*.jsonl", "*.ndjson"]

    def configure(self, o: Options) -> None:
        self.required_keys = o.str_list("required_keys", [])
        self.allow_blank = o.bool("allow_blank", False)
        self.min_lines = o.int("min_lines", None)

    def check_file(self, entry: SourceEntry, stream: BinaryIO) -> list[Finding]:
        out: list[Finding] = []
        n = 0
        for n, raw in enumerate(stream, 1):
            line = raw.strip()
            if not line:
                if not self.allow_blank:
                    out.append(Finding(f"line {n} is blank", entry.path))
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                out.append(Finding(f"line {n} is not valid JSON: {exc}", entry.path))
            else:
                if not isinstance(obj, dict):
                    out.append(Finding(f"line {n} is not a JSON object", entry.path))
                else:
                    missing = [k for k in self.required_keys if k not in obj]
                    if missing:
                        out.append(Finding(f"line {n} lacks key(s) {', '.join(missing)}", entry.path))
            if len(out) >= PER_FILE:
                break
        if self.min_lines is not None and n < self.min_lines and len(out) < PER_FILE:
            out.append(Finding(f"has {n} lines, below the minimum {self.min_lines}", entry.path))
        return out


@register_rule
class ParquetRule(Rule):
    type = "parquet"
    description = "Parquet schema and row counts (reads the footer only, through pyarrow)"
    reads_content = True
    default_glob = ["*.parquet"]

    def configure(self, o: Options) -> None:
        self.pq = require_module("pyarrow.parquet", "parquet", o)
        self.schema = {k: str(v) for k, v in (o.table("schema", None) or {}).items()}
        self.exact = o.bool("exact", False)
        self.min_rows = o.int("min_rows", None)
        self.max_rows = o.int("max_rows", None)

    def check_file(self, entry: SourceEntry, stream: BinaryIO) -> list[Finding]:
        try:
            pf = self.pq.ParquetFile(stream)
            schema = pf.schema_arrow
            rows = pf.metadata.num_rows
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            return [Finding(f"not a readable Parquet file: {exc}", entry.path)]
        out = []
        actual = {f.name: str(f.type) for f in schema}
        for col, t in self.schema.items():
            if col not in actual:
                out.append(Finding(f"column {col!r} is missing (columns: {', '.join(actual)})", entry.path))
            elif actual[col] != t:
                out.append(Finding(f"column {col!r} is {actual[col]}, expected {t}", entry.path))
        if self.exact:
            extra = [c for c in actual if c not in self.schema]
            if extra:
                out.append(Finding(f"unexpected column(s) {', '.join(extra)}", entry.path))
        out += [Finding(f.message, entry.path) for f in bounds_findings("the row count", rows, self.min_rows, self.max_rows)]
        return out


@register_rule
class ImageRule(Rule):
    type = "image"
    description = "images decode (Pillow) and have allowed formats, modes and dimensions"
    reads_content = True
    default_glob = ["*.jpg", "*.jpeg", "*.png", "*.gif", "*.bmp", "*.webp", "*.tif", "*.tiff"]

    def configure(self, o: Options) -> None:
        self.pil = require_module("PIL.Image", "images", o, package="Pillow")
        self.min_width = o.int("min_width", None)
        self.max_width = o.int("max_width", None)
        self.min_height = o.int("min_height", None)
        self.max_height = o.int("max_height", None)
        self.formats = {f.upper() for f in o.str_list("formats", [])}
        self.modes = set(o.str_list("modes", []))
        self.decode = o.bool("decode", True)

    def check_file(self, entry: SourceEntry, stream: BinaryIO) -> list[Finding]:
        Image = self.pil
        try:
            with Image.open(stream) as im:
                fmt, mode, (w, h) = im.format, im.mode, im.size
                if self.decode:
                    im.load()
        except Exception as exc:  # Pillow raises many kinds for a broken image
            return [Finding(f"not a decodable image: {exc}", entry.path)]
        out = []
        if self.formats and (fmt or "").upper() not in self.formats:
            out.append(Finding(f"format {fmt} is not allowed ({', '.join(sorted(self.formats))})", entry.path))
        if self.modes and mode not in self.modes:
            out.append(Finding(f"mode {mode} is not allowed ({', '.join(sorted(self.modes))})", entry.path))
        for what, v, lo, hi in (("width", w, self.min_width, self.max_width), ("height", h, self.min_height, self.max_height)):
            out += [Finding(f.message + f" ({w}x{h})", entry.path) for f in bounds_findings(f"the {what}", v, lo, hi)]
        return out


BUILTIN_RULES: tuple[str, ...] = (
    "count", "total_size", "file_size", "no_empty", "required", "forbidden", "extensions", "no_duplicates",
    "split_overlap", "class_balance", "csv", "jsonl", "parquet", "image",
)
