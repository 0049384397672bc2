"""The interface every store backend implements.

A backend is a flat key/value space of immutable blobs (packs, index files)
plus a few small mutable blobs (refs) that change only by compare-and-swap.
Keys are '/'-separated relative paths such as ``packs/ab/<id>``.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO


class BackendError(Exception):
    """A storage operation failed (I/O error, permission, network)."""


class TransientError(BackendError):
    """A failure that may succeed when tried again: throttling, a 5xx, a dropped connection.

    The operation may or may not have taken effect on the server.
    """


class ConnectionFailed(TransientError):
    """The store's endpoint could not be reached: refused, timed out, reset, or its name does not resolve."""


class AccessDenied(BackendError):
    """The store refused the credentials, or no credentials could be found."""


class ContainerNotFound(BackendError):
    """The bucket (or the folder) that should hold the store does not exist."""


class NoSpace(BackendError):
    """The disk holding the store is full."""


class ShortRead(BackendError):
    """A ranged read got fewer bytes than asked for because the blob is shorter: it is truncated (damage).

    A body cut on the way (the blob itself is long enough) is a TransientError instead, and is read again.
    """


class SourceChanged(BackendError):
    """The object is no longer the pinned version (ETag or generation differs, or the version is gone)."""


class KeyNotFound(BackendError):
    """The key does not exist in the store."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(f"{key} not found in {url}")
        self.url = url
        self.key = key


@dataclass(frozen=True)
class ObjectInfo:
    """One listed key with its size and modification time (seconds since epoch)."""

    key: str
    size: int
    mtime: float


@dataclass(frozen=True)
class SourceObject:
    """What a source says of one object now: enough to pin a read to it and to notice a change."""

    key: str
    size: int
    etag: str | None  # ETag (S3, Azure, HTTP); GCS: the md5/crc32c the server sends, or None
    version: str | None  # S3 VersionId (versioned bucket), GCS generation, Azure versionId; None when the provider keeps none
    modified: str | None  # Last-Modified as the server sent it (HTTP), else None


@dataclass(frozen=True)
class Versioned:
    """A small blob read together with the token that a compare-and-swap needs.

    The token is opaque: an ETag on S3, a generation on GCS, the content itself
    on a local folder.
    """

    data: bytes
    token: object


class MappedReader(io.RawIOBase):
    """A read-only stream whose SDK errors are turned into BackendErrors by ``translate``.

    Cloud SDKs raise their own exceptions from the middle of a streamed body; callers
    of ``open_read`` only know BackendError.
    """

    def __init__(self, raw: BinaryIO, translate: Callable[[Exception], BackendError]) -> None:
        super().__init__()
        self._raw = raw
        self._translate = translate

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        # GCS's reader seeks (its next ranged request starts there): a read resumed after a dropped connection
        # then skips what it had, instead of downloading it again.
        return bool(getattr(self._raw, "seekable", lambda: False)())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("seek")
        try:
            return self._raw.seek(offset, whence)
        except BackendError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    def tell(self) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("tell")
        return self._raw.tell()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        try:
            data = self._raw.read(len(view))
        except BackendError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            except Exception:
                pass  # nothing left to read; a failed close of a download loses nothing
        super().close()


def validate_key(key: str) -> str:
    """Reject keys that could leave the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
        raise ValueError(f"invalid store key {key!r}")
    return key


class Backend(abc.ABC):
    """Storage primitives. Implementations hold no datactl logic."""

    url: str

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the whole blob; raise KeyNotFound."""

    @abc.abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset``; raise KeyNotFound, or ShortRead if the blob is shorter."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Return a streaming reader over the blob; raise KeyNotFound."""

    @abc.abstractmethod
    def put_file(self, key: str, path: str) -> None:
        """Store the file at ``path`` under ``key`` durably (streaming, any size)."""

    def move_file_in(self, key: str, path: str) -> None:
        """Like ``put_file``, but may consume ``path`` (a local folder renames it into place)."""
        self.put_file(key, path)

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small blob durably, replacing any previous one."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` only if ``key`` does not exist; return whether it was stored."""

    @abc.abstractmethod
    def get_versioned(self, key: str) -> Versioned | None:
        """Read a small mutable blob with its compare-and-swap token, or None if absent."""

    @abc.abstractmethod
    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        """Replace the blob only if it is still ``expected`` (None: must be absent).

        ``data=None`` deletes the key. Returns False when another writer moved it.
        """

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every key under ``prefix`` (a folder-like prefix ending in '/', or '')."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the key exists."""

    # -- reading objects in place (external files) ------------------------------

    def stat(self, key: str) -> SourceObject:
        """What the object is now; raise KeyNotFound when absent."""
        raise BackendError(f"{self.url} cannot describe objects in place (no stat for {key})")

    def get_range_at(self, key: str, offset: int, length: int, version: str | None, etag: str | None = None) -> bytes:
        """Ranged read of that version (version None: the current object; etag given: fail with
        SourceChanged if the current object's ETag differs, for providers without versions)."""
        raise BackendError(f"{self.url} cannot read objects in place (no pinned read of {key})")

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        """Streaming read of that version, same rules as ``get_range_at``."""
        raise BackendError(f"{self.url} cannot read objects in place (no pinned read of {key})")

    def open_read_current(self, key: str) -> tuple[SourceObject, BinaryIO]:
        """What the object is now and a streaming read pinned to exactly that (for recording it).

        The default asks twice (``stat``, then ``open_read_at``); a backend whose GET answers with the
        object's version and ETag does it in one request.
        """
        obj = self.stat(key)
        return obj, self.open_read_at(key, obj.version, obj.etag if obj.version is None else None)
