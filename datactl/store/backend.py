"""Opening a store's backend: the one place where storage failures become datactl errors.

Every backend datactl uses comes from ``open_store_backend`` (a URL) or
``local_store_backend`` (a folder), wrapped in ``GuardedBackend``: a failure
of the storage (no credentials, a refused key, a missing bucket, an endpoint
that does not answer, a full disk) reaches callers as a ``StorageError``
subclass naming the store and saying what to do, with the SDK's error chained.
A missing key (``KeyNotFound``) and a short read (``ShortRead``) are answers,
not failures, and pass through for the caller to interpret.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO, Callable, Iterator, TypeVar

from datactl.core.errors import DiskFull, StorageError, StoreAccessDenied, StoreNotFound, StoreUnreachable, UsageError
from datactl.store.listing import ListedBackend
from storage_backends import (
    AccessDenied,
    Backend,
    BackendError,
    ConnectionFailed,
    ContainerNotFound,
    KeyNotFound,
    LocalBackend,
    NoSpace,
    ObjectInfo,
    ShortRead,
    SourceChanged,
    SourceObject,
    Versioned,
    open_backend,
    supported_schemes,
    url_scheme,
)

T = TypeVar("T")


def storage_error(exc: BackendError, url: str | None = None) -> StorageError:
    """The datactl error for a storage failure (of the store at ``url``, when the error does not name it)."""
    if isinstance(exc, StorageError):
        return exc
    message = str(exc)
    if isinstance(exc, AccessDenied):
        return StoreAccessDenied(message, "check the credentials (the cloud SDK's usual chain: environment, profile, role) and the bucket's permissions")
    if isinstance(exc, ContainerNotFound):
        return StoreNotFound(message, "check the store's URL (bucket and prefix); `datactl push` creates a store in an existing bucket")
    if isinstance(exc, ConnectionFailed):
        return StoreUnreachable(message, "check the endpoint URL and the network; datactl retried before giving up")
    if isinstance(exc, NoSpace):
        return DiskFull(message, "free space on that disk and run the command again; nothing half-written was published")
    where = f"storage error on {url}: " if url and url not in message else "storage error: "
    return StorageError(where + message, "check the store's URL, credentials and network; nothing half-written was published")


class GuardedBackend(Backend):
    """A backend whose storage failures are raised as ``StorageError`` (see the module doc)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except (KeyNotFound, ShortRead, SourceChanged, StorageError):
            raise
        except BackendError as exc:
            raise storage_error(exc, self.url) from exc

    def stat(self, key: str) -> SourceObject:
        return self._call(self.inner.stat, key)

    def get_range_at(self, key: str, offset: int, length: int, version: str | None, etag: str | None = None) -> bytes:
        return self._call(self.inner.get_range_at, key, offset, length, version, etag)

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        return _GuardedStream(self._call(self.inner.open_read_at, key, version, etag), self.url)  # type: ignore[return-value]

    def open_read_current(self, key: str) -> tuple[SourceObject, BinaryIO]:
        obj, stream = self._call(self.inner.open_read_current, key)
        return obj, _GuardedStream(stream, self.url)  # type: ignore[return-value]

    def get(self, key: str) -> bytes:
        return self._call(self.inner.get, key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._call(self.inner.get_range, key, offset, length)

    def open_read(self, key: str) -> BinaryIO:
        return _GuardedStream(self._call(self.inner.open_read, key), self.url)  # type: ignore[return-value]

    def put_file(self, key: str, path: str) -> None:
        self._call(self.inner.put_file, key, path)

    def move_file_in(self, key: str, path: str) -> None:
        self._call(self.inner.move_file_in, key, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(self.inner.put_bytes, key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._call(self.inner.put_if_absent, key, data)

    def get_versioned(self, key: str) -> Versioned | None:
        return self._call(self.inner.get_versioned, key)

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        return self._call(self.inner.compare_and_swap, key, data, expected)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        it = self._call(self.inner.list, prefix)
        while True:
            try:
                info = self._call(next, it)
            except StopIteration:
                return
            yield info

    def delete(self, key: str) -> None:
        self._call(self.inner.delete, key)

    def exists(self, key: str) -> bool:
        return self._call(self.inner.exists, key)


class _GuardedStream(io.RawIOBase):
    """A stream from ``open_read`` whose storage failures while reading are raised as ``StorageError``."""

    def __init__(self, raw: BinaryIO, url: str) -> None:
        super().__init__()
        self._raw = raw
        self._url = url

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._raw.read(len(buffer))
        except (ShortRead, SourceChanged, StorageError):
            raise
        except BackendError as exc:
            raise storage_error(exc, self._url) from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def guarded(backend: Backend) -> Backend:
    """``backend`` with its storage failures made datactl errors (unchanged if it already is)."""
    return backend if isinstance(backend, GuardedBackend) else GuardedBackend(backend)


def check_store_url(url: str) -> str:
    """``url`` if a backend can open it; otherwise a UsageError naming the schemes that work."""
    scheme = url_scheme(url)
    schemes = supported_schemes()
    if scheme not in schemes:
        others = ", ".join(f"{s}://" for s in schemes if s != "file")
        raise UsageError(f"datactl cannot store data at {scheme}:// URLs ({url})", f"a store is a folder (a path or file://) or a {others} URL")
    return url


def open_store_backend(url: str, options: dict[str, Any] | None = None) -> Backend:
    """The backend of the store at ``url`` (a path, ``file://``, ``s3://``, ``gs://``, ``az://``, ``https://``).

    Its failures are made datactl errors, and its ``listing`` is kept (store/listing.py): any store
    opened by URL may be served over HTTP one day.
    """
    check_store_url(url)
    try:
        backend = open_backend(url, options)
    except BackendError as exc:
        raise storage_error(exc, url) from exc
    return guarded(ListedBackend(backend))


def open_source_backend(url: str, options: dict[str, Any] | None = None) -> Backend:
    """The backend of a bucket or host that external files are read from in place: not a store, so no listing."""
    check_store_url(url)
    try:
        backend = open_backend(url, options)
    except BackendError as exc:
        raise storage_error(exc, url) from exc
    return guarded(backend)


def local_store_backend(path: str) -> Backend:
    """The backend of a store in a local folder (a workspace's own store, a cache store)."""
    return GuardedBackend(LocalBackend(path))
