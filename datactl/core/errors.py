"""Errors a user can act on: each says what is wrong and what to do."""

from __future__ import annotations


class DatactlError(Exception):
    """Base class. ``hint`` tells the user what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(DatactlError):
    """The command was given arguments that cannot work."""

    exit_code = 2


class NotAWorkspace(DatactlError):
    """No ``.datactl`` folder here or in any parent."""


class UnknownRef(DatactlError):
    """A ref names nothing in the store."""


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


class UnsafePath(DatactlError):
    """A name from a manifest or the command line would escape the workspace."""


class RefConflict(DatactlError):
    """A ref moved under us (another writer won the compare-and-swap)."""


class StoreFormatError(DatactlError):
    """The store's config is missing, unreadable or of an unknown format."""
