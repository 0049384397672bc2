"""Opening the SQLite databases datactl keeps (object index, stage, cache), one way."""

from __future__ import annotations

import sqlite3

from datactl.core.closing import Closing


def connect(path: str) -> sqlite3.Connection:
    """Open a SQLite database the way every datactl table wants it."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a crash never corrupts; at most the last transaction is lost.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class Database(Closing):
    """A SQLite database file, its schema created when it is opened."""

    def __init__(self, path: str, schema: str) -> None:
        self.path = path
        self._db = connect(path)
        self._db.executescript(schema)

    def close(self) -> None:
        self._db.close()
