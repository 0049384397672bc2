"""One table from every error to what a user reads: one line saying what is wrong, a hint, an exit code.

``main`` looks an exception up here, first match wins. datactl's own errors
carry their message, hint and exit code; storage failures are described by
the same translation the library uses (``datactl.store.backend``); the rest
are failures of the machine (a full disk, a permission, a damaged database).
Anything else is a bug: one line says so, and ``DATACTL_DEBUG=1`` shows the
traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass
from typing import Callable

from datactl.core.errors import EXIT_FAILURE, EXIT_UNREADABLE, EXIT_USAGE, DatactlError
from datactl.store.backend import storage_error
from storage_backends import BackendError

EXIT_INTERRUPTED = 130

# The exit codes, as docs/cli.md lists them.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success (for `diff --exit-code`: no differences; for `verify`, `validate`, `fsck`: no problem found)"),
    (
        EXIT_FAILURE,
        "the command failed, found what it checks for (a problem, a difference, a conflict), or a name matched nothing "
        "(a REF, a path in a version, a workspace); nothing half-done was published",
    ),
    (EXIT_USAGE, "a usage or configuration error: unknown option, bad argument, invalid datactl.toml or rules, a URL scheme no store can use, a write to a read-only (HTTP) store"),
    (EXIT_UNREADABLE, "a store could not be read or written: unreachable, access refused, no store at that location, or data that could not be read"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C); nothing half-written was published"),
)


@dataclass(frozen=True)
class UserError:
    message: str
    hint: str | None
    exit_code: int


def _datactl(exc: BaseException) -> UserError:
    assert isinstance(exc, DatactlError)
    return UserError(exc.message, exc.hint, exc.exit_code)


def _storage(exc: BaseException) -> UserError:
    assert isinstance(exc, BackendError)
    return _datactl(storage_error(exc))


def _database(exc: BaseException) -> UserError:
    return UserError(
        f"a datactl database is damaged or unreadable ({exc})",
        "run `datactl fsck --repair` to rebuild what it derives from; the store's packs are not affected",
        EXIT_FAILURE,
    )


def _os(exc: BaseException) -> UserError:
    assert isinstance(exc, OSError)
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"{where}the disk is full", "free some space and run the command again; nothing was lost: what was cut short is discarded", EXIT_FAILURE)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"{where}{what}", "check the file's permissions (or that the file system is writable)", EXIT_FAILURE)
    if exc.errno == errno.ENAMETOOLONG:
        return UserError(f"{where}{what}", "the file system refuses names this long; use shorter names", EXIT_FAILURE)
    return UserError(f"{where}{what}", None, EXIT_FAILURE)


def _unicode(exc: BaseException) -> UserError:
    return UserError(f"a file datactl reads is not valid UTF-8 ({exc})", "save it as UTF-8", EXIT_USAGE)


# First match wins: subclasses before their bases.
ERROR_TABLE: tuple[tuple[type[BaseException], Callable[[BaseException], UserError]], ...] = (
    (DatactlError, _datactl),
    (BackendError, _storage),
    (sqlite3.DatabaseError, _database),
    (UnicodeError, _unicode),
    (OSError, _os),
)


def describe(exc: BaseException) -> UserError | None:
    """What to tell the user about ``exc``; None for an error datactl did not expect (a bug)."""
    for kind, explain in ERROR_TABLE:
        if isinstance(exc, kind):
            return explain(exc)
    return None
