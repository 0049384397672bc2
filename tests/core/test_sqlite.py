"""SQLite files: a damaged one is named in the error, whichever call meets the damage; a new one opens under concurrency."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from datactl.core.errors import DatabaseDamaged
from datactl.core.sqlite import Database

SCHEMA = "CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b TEXT);"


def test_damage_met_while_iterating_rows_names_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "rows.db")
    with Database(path, SCHEMA) as db:
        db._db.execute("PRAGMA wal_checkpoint")
        db._db.executemany("INSERT INTO t VALUES (?, ?)", ((i, "x" * 100) for i in range(20_000)))
        db._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = Database(path, SCHEMA)
    try:
        rows = iter(db._db.execute("SELECT a, b FROM t"))
        next(rows)  # the first leaf page is read; the others are damaged before they are
        with open(path, "r+b") as f:
            f.seek(64 * 1024)
            f.write(b"\xff" * (1024 * 1024))
        with pytest.raises(DatabaseDamaged) as exc:
            for _row in rows:
                pass
        assert path in exc.value.message and "fsck --repair" in (exc.value.hint or "")
    finally:
        db.close()


def test_a_file_that_is_not_a_database_is_named_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseDamaged) as exc:
        Database(str(path), SCHEMA)
    assert str(path) in exc.value.message


OPEN_SCRIPT = """
import sys, time
from datactl.core.sqlite import Database
start = float(sys.argv[2])
while time.time() < start:
    pass
for n in range(200):
    Database(f"{sys.argv[1]}/{n}.db", "CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY);").close()
"""


def test_processes_opening_the_same_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    # Switching a new file to WAL is refused at once (no busy wait) while another process does the same.
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_SCRIPT, str(tmp_path), str(start)], stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
