"""The query engine for keyed diffs, Parquet and statistics: DuckDB, streaming and spilling to disk.

Why DuckDB: one engine reads CSV, JSON Lines and Parquet; its joins,
aggregations and sorts stream and spill to a temporary folder past a memory
limit, so a table larger than memory diffs in bounded memory; and it has the
approximate aggregates statistics want (``approx_count_distinct``,
``approx_top_k``). pyarrow alone has no spilling join. It is the optional
extra ``datactl[tables]``.

A version's file is first streamed out of the store (every chunk verified, the
whole-file digest checked; an external file from its source, as every reader
of one does) into the engine's temporary folder, in constant memory; the engine
then reads that file.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from typing import Any, BinaryIO

from datactl.core.closing import Closing
from datactl.core.errors import DatactlError, TableError, UsageError
from datactl.format.objects import TreeEntry
from datactl.store.chunkedfile import ChunkSource, open_chunked
from datactl.store.sourceread import SourceBackends
from datactl.tables.formats import PARQUET, RowProblem, TableFormat, parse_fields, parse_row, split_rows, with_header_dialect

MEMORY_ENV = "DATACTL_TABLES_MEMORY"
DEFAULT_MEMORY = "1GB"
INSTALL_HINT = "install the tables extra: pip install 'datactl[tables]'"


def require_duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise UsageError("keyed row diffs, Parquet diffs, table statistics and row merges need DuckDB", INSTALL_HINT) from None
    return duckdb


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Engine(Closing):
    """A DuckDB connection with a memory limit, spilling to (and holding its files in) a temporary folder."""

    def __init__(self, memory_limit: str | None = None, temp_parent: str | None = None) -> None:
        duckdb = require_duckdb()
        self.error = duckdb.Error
        self.dir = tempfile.mkdtemp(prefix="datactl-tables-", dir=temp_parent)
        limit = memory_limit or os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY
        try:
            # A database file (not in memory), so that tables the engine builds are paged to disk, not only spilled joins.
            self.db = duckdb.connect(
                os.path.join(self.dir, "engine.duckdb"),
                config={"memory_limit": limit, "temp_directory": os.path.join(self.dir, "spill"), "preserve_insertion_order": False, "threads": 2}
            )
        except duckdb.Error as exc:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise UsageError(f"cannot start the table engine: {exc}", f"check {MEMORY_ENV} (a size such as 512MB)") from None
        self.db.execute("SET enable_progress_bar = false")  # it would print into a command's output
        self._texts: dict[str, tuple[TableFormat, list[str], str]] = {}  # CSV/TSV files read: format, columns, name
        self.sources = SourceBackends()  # where external files' bytes are read from (their chunks are in no pack)

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            self.sources.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def materialize(self, source: ChunkSource, entry: TreeEntry, where: str, path: str | None = None) -> str:
        """Stream a version's file into the engine's folder (verified, an external file from its source); returns its path.

        ``where`` names the file in errors, ``path`` (its path alone) in the hint of a changed source.
        """
        with io.BufferedReader(open_chunked(source, entry, where, self.sources, path), buffer_size=1 << 20) as src:
            return self.copy_in(src)

    def copy_in(self, stream: BinaryIO) -> str:
        """Copy a stream (a version's file, already verified by whoever opened it) into the engine's folder; returns its path.

        Safe to call from several threads at once (each copy gets its own file), unlike queries on the connection.
        """
        fd, path = tempfile.mkstemp(prefix="t", dir=self.dir)
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(stream, dst, 1 << 20)
        return path

    def view(self, name: str, file: str, fmt: TableFormat, where: str) -> tuple[TableFormat, list[str], dict[str, str]]:
        """Create view ``name`` over ``file``; returns (the format with its delimiter, columns, column types).

        CSV/TSV cells are read as text, exactly as written (a diff compares what the file says); the columns come
        from the header, read by datactl so that they match a positional diff's.
        """
        if os.path.getsize(file) == 0:
            self.db.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT NULL::VARCHAR AS __empty WHERE false")
            return fmt, [], {}
        if fmt.is_delimited:
            fmt, columns = _csv_header(file, fmt, where)
            if not columns:
                self.db.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT NULL::VARCHAR AS __empty WHERE false")
                return fmt, [], {}
            self._texts[file] = (fmt, columns, where)
            cols = "{" + ", ".join(f"{sql_text(c)}: 'VARCHAR'" for c in columns) + "}"
            src = (
                f"read_csv({sql_text(file)}, header=true, auto_detect=false, columns={cols}, delim={sql_text(fmt.delimiter)}, "
                "quote='\"', escape='\"', strict_mode=true, null_padding=false, buffer_size=4194304)"  # not 32 MiB per thread
            )
        elif fmt.name == PARQUET:
            # file_row_number: rows in the file's order (the engine does not keep order otherwise), for positional diffs
            numbered = f"read_parquet({sql_text(file)}, file_row_number=true)"
            self.run(f"CREATE OR REPLACE TEMP VIEW {name}_pos AS SELECT file_row_number AS __pos, * EXCLUDE (file_row_number) FROM {numbered}", where)
            src = f"read_parquet({sql_text(file)})"
        else:
            src = f"read_json({sql_text(file)}, format='newline_delimited')"
        self.run(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {src}", where)
        described = self.run(f"DESCRIBE SELECT * FROM {name}", where).fetchall()
        return fmt, [r[0] for r in described], {r[0]: r[1] for r in described}

    def run(self, sql: str, where: str, params: list | None = None) -> Any:
        """Execute ``sql``; an error reading the table becomes a TableError naming the file (and line, when known)."""
        try:
            return self.db.execute(sql, params or [])
        except self.error as exc:
            for file, (fmt, columns, name) in self._texts.items():
                if file in str(exc):
                    # The engine counts rows, not lines (a quoted cell may hold newlines): find the row again, by line.
                    found = first_bad_row(file, fmt, columns)
                    if found is not None:
                        raise TableError(f"{name}: line {found[0]}: {found[1]}", "fix the file and commit it again") from None
            raise table_error(exc, where) from None


def first_bad_row(file: str, fmt: TableFormat, columns: list[str]) -> tuple[int, str] | None:
    """(line, what is wrong) of the first row of a CSV/TSV file that does not parse, streaming it; None if all do."""
    tail = b""
    base = 0
    lines_before = 0  # newlines before ``base``
    first = True
    with open(file, "rb") as f:
        while True:
            block = f.read(1 << 20)
            data = tail + block
            try:
                spans, rest = split_rows(data, base, fmt, not block)
                for sp in spans[1:] if first else spans:
                    parse_row(data[sp.start - base : sp.end - base], fmt, columns, sp.start)
            except RowProblem as exc:
                return lines_before + data.count(b"\n", 0, exc.offset - base) + 1, exc.reason
            first = first and not spans
            lines_before += data.count(b"\n", 0, rest - base)
            tail, base = data[rest - base :], rest
            if not block:
                return None


def table_error(exc: BaseException, where: str) -> DatactlError:
    text = str(exc)
    if type(exc).__name__ == "OutOfMemoryException":
        return DatactlError(
            f"the table engine ran out of memory comparing {where}",
            f"give it more: {MEMORY_ENV}=4GB (now {os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY}); it spills to the temporary folder beyond that",
        )
    first = text.splitlines()[0] if text else type(exc).__name__
    first = re.sub(r"^[A-Za-z ]*Error: ", "", first)
    # The engine's own failures are not the file's fault: saying "fix the file" would send the user the wrong way.
    if type(exc).__name__ == "InternalException":  # seen when an allocation fails under a tight address-space limit
        return DatactlError(
            f"the table engine failed comparing {where}: {first}",
            f"run it again; under a tight memory limit give the process more room, or the engine less ({MEMORY_ENV}, now {os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY})",
        )
    if type(exc).__name__ == "IOException":
        return DatactlError(f"the table engine could not read or spill {where}: {first}", "check the space left in the temporary folder (TMPDIR)")
    line = re.search(r"[Ll]ine:? (\d+)", text)
    detail = [ln for ln in text.splitlines()[1:3] if ln.strip() and not ln.startswith(("Possible", "*", "  "))]
    what = "; ".join([first, *detail]) if line else first
    at = f"line {line.group(1)}: " if line else ""
    return TableError(f"{where}: {at}{what}", "fix the file and commit it again")


def _csv_header(file: str, fmt: TableFormat, where: str) -> tuple[TableFormat, list[str]]:
    buf = b""
    with open(file, "rb") as f:
        while True:
            more = f.read(1 << 16)
            buf += more
            try:
                spans, _ = split_rows(buf, 0, fmt, not more)
            except RowProblem as exc:
                raise TableError(f"{where}: line 1: {exc.reason}", "fix the file and commit it again") from None
            if spans or not more:
                break
    if not spans:
        return fmt, []
    raw = buf[spans[0].start : spans[0].end]
    fmt = with_header_dialect(fmt, raw)
    try:
        return fmt, parse_fields(raw, fmt, 0)
    except RowProblem as exc:
        raise TableError(f"{where}: line 1: {exc.reason}", "fix the file and commit it again") from None


def plain(value: Any) -> Any:
    """A value as JSON can hold it (dates, decimals and the like as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)
