"""Opening the SQLite databases datactl keeps (object index, stage, cache), one way.

A ``Database`` names its file in every failure: SQLite's own exceptions say
"file is not a database" or "database disk image is malformed" without
saying which file, so every call on its connection (and every row fetched)
turns a ``sqlite3.DatabaseError`` into a datactl error that names the file
and says how to rebuild it (``DatabaseDamaged``), or that its disk is full.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from typing import Any, Iterator

from datactl.core.closing import Closing
from datactl.core.errors import DatabaseDamaged, DatactlError, DiskFull

# Primary result codes of a damaged file (extended codes carry them in their low byte).
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
# Seconds a statement waits for another process's lock before failing as "locked".
_OPEN_TIMEOUT = 60


def connect(path: str) -> sqlite3.Connection:
    """Open a SQLite database the way every datactl table wants it."""
    conn = sqlite3.connect(path, timeout=_OPEN_TIMEOUT, isolation_level=None, check_same_thread=False)
    _configure(conn)
    return conn


def _configure(conn: sqlite3.Connection) -> None:
    # Switching a new file to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY at once
    # (without its busy handler) while another process opens the same new file: retry until the timeout.
    deadline = time.monotonic() + _OPEN_TIMEOUT
    delay = 0.005
    while True:
        try:
            sqlite3.Connection.execute(conn, "PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    # NORMAL in WAL mode: a crash never corrupts; at most the last transaction is lost.
    conn.execute("PRAGMA synchronous=NORMAL")


def database_error(exc: sqlite3.DatabaseError, path: str, hint: str) -> DatactlError:
    """What a SQLite failure on the file ``path`` means to a user; ``hint`` says how to rebuild a damaged one."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc)
    if code in _DAMAGED or text.startswith(("no such table", "no such column")):
        return DatabaseDamaged(f"{path} is damaged ({text})", hint)
    if code == sqlite3.SQLITE_FULL:
        return DiskFull(
            f"{path}: the disk is full", "free some space and run the command again; nothing was lost: the database keeps its last complete change"
        )
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatactlError(f"{path} is locked ({text})", "another datactl command is using it; wait for it to finish, then retry")
    return DatactlError(f"{path}: {text}", "check that the file and its folder are readable and writable")


class _Cursor(sqlite3.Cursor):
    """A cursor whose failures (in a statement, a fetch, or while iterating over rows) name its database's file."""

    def _fail(self, exc: sqlite3.DatabaseError) -> DatactlError:
        conn = self.connection
        assert isinstance(conn, _Connection)
        return database_error(exc, conn.path, conn.hint)

    def execute(self, sql: str, parameters: Any = (), /) -> "_Cursor":  # type: ignore[override]
        try:
            return super().execute(sql, parameters)  # type: ignore[return-value]
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def executemany(self, sql: str, seq: Any, /) -> "_Cursor":  # type: ignore[override]
        try:
            return super().executemany(sql, seq)  # type: ignore[return-value]
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def executescript(self, script: str, /) -> "_Cursor":  # type: ignore[override]
        try:
            return super().executescript(script)  # type: ignore[return-value]
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def fetchmany(self, size: int = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator over the C fetchone rather than a Python __next__: iterating a million rows costs
        # about 0.07 s of CPU more than a plain cursor, where a __next__ override cost about 0.3 s.
        try:
            yield from iter(super().fetchone, None)
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from exc


class _Connection(sqlite3.Connection):
    """A connection whose statements (and their cursors) name the database's file when they fail."""

    path: str = ""
    hint: str = ""

    def cursor(self, factory: Any = None) -> _Cursor:  # type: ignore[override]
        return super().cursor(_Cursor)  # type: ignore[return-value]

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Any, /) -> _Cursor:  # type: ignore[override]
        return self.cursor().executemany(sql, seq)

    def executescript(self, script: str, /) -> _Cursor:  # type: ignore[override]
        return self.cursor().executescript(script)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return super().__exit__(*exc_info)
        except sqlite3.DatabaseError as exc:
            raise database_error(exc, self.path, self.hint) from exc


class Database(Closing):
    """A SQLite database file, its schema created when it is opened; failures name the file.

    ``hint`` tells the user how to rebuild the file when it is damaged.
    """

    def __init__(self, path: str, schema: str, hint: str = "run `datactl fsck --repair` to rebuild it") -> None:
        self.path = path
        self.hint = hint
        try:
            conn = sqlite3.connect(path, timeout=_OPEN_TIMEOUT, isolation_level=None, check_same_thread=False, factory=_Connection)
        except sqlite3.DatabaseError as exc:
            raise database_error(exc, path, hint) from exc
        conn.path, conn.hint = path, hint
        self._db: sqlite3.Connection = conn
        try:
            try:
                _configure(conn)
            except sqlite3.DatabaseError as exc:
                raise database_error(exc, path, hint) from exc
            conn.executescript(schema)
        except BaseException:
            conn.close()
            raise

    def integrity_problem(self) -> str | None:
        """What SQLite's full integrity check finds wrong with the file (reads all of it), or None."""
        rows = self._db.execute("PRAGMA integrity_check(5)").fetchall()
        found = [r[0] for r in rows if r[0] != "ok"]
        return "; ".join(found) if found else None

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Name this database's file in a SQLite failure of a connection opened outside ``_db`` (a snapshot reader)."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise database_error(exc, self.path, self.hint) from exc

    def close(self) -> None:
        self._db.close()
