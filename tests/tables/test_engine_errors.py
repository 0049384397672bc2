"""What the table engine's own failures tell a user: the engine's trouble is not blamed on the file."""

from __future__ import annotations

import duckdb
import pytest

from datactl.core.errors import TableError
from datactl.tables.engine import MEMORY_ENV, table_error


@pytest.mark.parametrize(
    ("exc", "says", "hint"),
    [
        (duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate"), "ran out of memory", MEMORY_ENV),
        # Raised by the engine when an allocation fails under `ulimit -v` (seen in bench_tables.py's keyed diff).
        (duckdb.InternalException("INTERNAL Error: Attempting to dereference an optional pointer that is not set"), "the table engine failed", "run it again"),
        (duckdb.IOException("IO Error: No space left on device"), "could not read or spill", "temporary folder"),
    ],
)
def test_engine_failures_name_the_engine_not_the_file(exc: Exception, says: str, hint: str) -> None:
    err = table_error(exc, "big.csv in v1 (0123456789ab)")
    assert says in err.message and "big.csv in v1" in err.message
    assert hint in (err.hint or "")
    assert "fix the file" not in (err.hint or "")
    assert not isinstance(err, TableError)


def test_a_conversion_error_points_at_the_file_and_line() -> None:
    exc = duckdb.ConversionException('Conversion Error: Could not convert string "x" to INT64 at Line: 12')
    err = table_error(exc, "big.csv in v1")
    assert isinstance(err, TableError)
    assert "big.csv in v1: line 12:" in err.message
    assert err.hint == "fix the file and commit it again"
