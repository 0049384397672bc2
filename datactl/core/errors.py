"""Every error datactl raises on purpose: one hierarchy, each says what is wrong and what to do.

``DatactlError.exit_code`` is the process exit code the command line uses
(docs/cli.md lists them): 1 a failure, 2 a usage or configuration error,
3 a store that could not be read or written (or data that could not be read).
"""

from __future__ import annotations

from typing import Any

from storage_backends import BackendError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3


class DatactlError(Exception):
    """Base class. ``hint`` tells the user what to do next."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(DatactlError):
    """The command was given arguments (or settings) that cannot work."""

    exit_code = EXIT_USAGE


class NotAWorkspace(DatactlError):
    """No ``.datactl`` folder here or in any parent."""


class UnknownRef(DatactlError):
    """A ref names nothing in the store."""


class BelowShallowCut(UnknownRef):
    """A ref names a version older than a shallow workspace's history: below its cut, never fetched."""


class PathNotFound(DatactlError):
    """A path names nothing in a version."""


class AmbiguousRef(DatactlError):
    """An id prefix matches several commits."""


class LocalChanges(DatactlError):
    """An operation would overwrite changes that were not committed."""


class NothingToCommit(DatactlError):
    """The staged files equal the current version."""


class NotAtLatest(DatactlError):
    """The workspace holds an older version; committing on it would undo the later ones."""


class ObjectMissing(DatactlError):
    """An object that a tree or commit references is not in the store."""


class CorruptObject(DatactlError):
    """Stored bytes do not hash to their id, or a pack is malformed."""


class SourceChangedError(DatactlError):
    """An external file's source no longer holds the recorded bytes (overwritten, deleted, or changed mid-read)."""

    exit_code = EXIT_UNREADABLE


class UnsafePath(DatactlError):
    """A name from a manifest or the command line would escape the workspace."""


class RefConflict(DatactlError):
    """A ref moved under us (another writer won the compare-and-swap)."""


class StoreFormatError(DatactlError):
    """The store's config is missing, unreadable or of an unknown format."""


class StoreLocked(DatactlError):
    """Another gc (or fsck --repair) holds the store lock."""


class StoreDamaged(DatactlError):
    """Refs reach objects the store does not hold (or cannot read): gc deletes nothing."""


class ValidationFailed(DatactlError):
    """The rules failed (raised by the commit hook; ``report`` has the details)."""

    def __init__(self, report: Any, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.report = report  # a datactl.validation.ValidationReport
        self.exit_code = report.exit_code or EXIT_FAILURE


class TableError(DatactlError):
    """A table cannot be read as its format (a malformed row, a key that is not unique), named with its file and line."""


class DatabaseDamaged(DatactlError):
    """A local SQLite database (a workspace's object index or stage) is damaged, or missing where it must exist."""


class StorageError(DatactlError, BackendError):
    """The store could not be read or written: unreachable, access refused, or an I/O failure.

    Also a ``BackendError``, so code that handles storage failures handles it.
    """

    exit_code = EXIT_UNREADABLE


class StoreUnreachable(StorageError):
    """The store's endpoint could not be reached (after retries)."""


class StoreAccessDenied(StorageError):
    """The store refused the credentials, or none could be found."""


class StoreNotFound(StorageError):
    """No store at that location: the bucket or folder does not exist, or holds no datactl store."""


class DiskFull(StorageError):
    """The disk that holds a store or a workspace is full."""


class StoreNotListable(StorageError):
    """The store's server cannot list keys (an HTTP store) and its ``listing`` file does not name them."""


class StoreReadOnly(UsageError):
    """A write to a store that can only be read (an HTTP store)."""
