"""A read-only store served by a web server or CDN (``https://host/path``, ``http://``), through urllib3.

Every read is a GET of ``<url>/<key>``, ranged reads with a ``Range`` header, over
a keep-alive connection pool. A web server cannot list a folder in a way every
server agrees on, so ``list`` is refused: datactl finds what it needs to list
from the store's ``listing`` file (docs/format.md). Writes are refused too: push
to the store behind the server.

``headers`` (an option) are sent with every request, e.g. an ``Authorization``
header for a server that wants one. urllib3 does not retry here:
``RetryingBackend`` retries TransientErrors, once, for every backend alike.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import quote, urlparse

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, ProtocolError

from storage_backends.base import (
    AccessDenied,
    Backend,
    BackendError,
    ConnectionFailed,
    KeyNotFound,
    MappedReader,
    ObjectInfo,
    ShortRead,
    SourceChanged,
    SourceObject,
    TransientError,
    Versioned,
    validate_key,
)

MiB = 1 << 20
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
READ_ONLY = "an HTTP store is read-only: push to the store behind it (the folder or bucket the web server serves)"


class HTTPBackend(Backend):
    """Blobs are files under ``https://host/path``; nothing can be written or listed."""

    read_only = True  # datactl refuses writes before they reach the backend, with this reason
    listable = False

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, pool_size: int = 32) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BackendError(f"not an HTTP URL: {url!r} (expected https://host/path)")
        if parsed.query or parsed.fragment:
            raise BackendError(f"an HTTP store's URL takes no query or fragment: {url!r}")
        self.url = url.rstrip("/")
        self._headers = dict(headers or {})
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=10, read=60),
        )

    # -- helpers -------------------------------------------------------------

    def _key_url(self, key: str) -> str:
        validate_key(key)
        return f"{self.url}/{quote(key)}"

    def _error(self, exc: BaseException, key: str, op: str) -> BackendError:
        where = f"{key} in {self.url}"
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        if isinstance(exc, (NewConnectionError, ConnectionRefusedError)):
            return ConnectionFailed(f"cannot {op} {where}: cannot reach the server: {exc}")
        if isinstance(exc, (HTTPError, ProtocolError, ConnectionError, TimeoutError)):
            return TransientError(f"cannot {op} {where}: connection problem: {type(exc).__name__}: {exc}")
        return BackendError(f"cannot {op} {where}: {type(exc).__name__}: {exc}")

    def _status_error(self, status: int, key: str, op: str) -> BackendError:
        where = f"{key} in {self.url}"
        if status in (404, 410):
            return KeyNotFound(self.url, key)
        if status in (401, 403):
            return AccessDenied(f"cannot {op} {where}: the server refused access (HTTP {status}); pass the headers it wants (the `headers` option)")
        if status in TRANSIENT_STATUS:
            return TransientError(f"cannot {op} {where} right now: HTTP {status}")
        return BackendError(f"cannot {op} {where}: HTTP {status}")

    def _request(self, method: str, key: str, op: str, headers: dict[str, str], stream: bool = False) -> Any:
        try:
            response = self._pool.request(
                method, self._key_url(key), headers={**self._headers, **headers}, preload_content=not stream, redirect=True
            )
        except Exception as exc:
            raise self._error(exc, key, op) from exc
        return response

    @staticmethod
    def _pin(version: str | None, etag: str | None) -> dict[str, str]:
        """The condition that makes a read fail (412) once the object is not the one recorded.

        A web server keeps no versions (``stat`` says None), so only the ETag pins a read.
        """
        return {"If-Match": etag} if etag is not None else {}

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> bytes:
        response = self._request("GET", key, "read", {"Accept-Encoding": "identity"})
        if response.status != 200:
            raise self._status_error(response.status, key, "read")
        data = bytes(response.data)
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) != len(data):
            raise TransientError(f"cannot read {key} in {self.url}: the body was cut ({len(data)} of {declared} bytes)")
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._read_range(key, offset, length, {})

    def _read_range(self, key: str, offset: int, length: int, pin: dict[str, str]) -> bytes:
        if length == 0:
            self.stat(key)  # KeyNotFound when absent
            return b""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity", **pin}
        try:
            response = self._request("GET", key, "read", headers)
            if response.status == 412:
                raise SourceChanged(f"{key} in {self.url} changed since it was recorded")
            if response.status == 416:
                raise ShortRead(f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, it is shorter")
            if response.status == 200:
                # A server that ignores Range sends the whole file: take the part asked for.
                whole = bytes(response.data)
                if len(whole) < offset + length:
                    raise ShortRead(f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, it has {len(whole)}")
                return whole[offset : offset + length]
            if response.status != 206:
                raise self._status_error(response.status, key, "read")
            data = bytes(response.data)
        except BackendError:
            raise
        except Exception as exc:  # a body cut while it was read
            raise self._error(exc, key, "read") from exc
        if len(data) != length:
            # Content-Range ("bytes START-END/TOTAL") tells a file that is shorter (damage) from a body cut on the way.
            total = str(response.headers.get("Content-Range", "")).rpartition("/")[2]
            if total.isdigit() and int(total) >= offset + length:
                raise TransientError(f"cannot read {key} in {self.url}: the body was cut ({len(data)} of {length} bytes)")
            raise ShortRead(f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, got {len(data)}")
        return data

    def open_read(self, key: str) -> BinaryIO:
        return self._open(key, {})

    def _open(self, key: str, pin: dict[str, str]) -> BinaryIO:
        response = self._request("GET", key, "read", {"Accept-Encoding": "identity", **pin}, stream=True)
        if response.status != 200:
            response.release_conn()
            if response.status == 412:
                raise SourceChanged(f"{key} in {self.url} changed since it was recorded")
            raise self._status_error(response.status, key, "read")
        reader = MappedReader(response, lambda exc: self._error(exc, key, "read"))
        return io.BufferedReader(reader, buffer_size=MiB)  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except KeyNotFound:
            return False

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        raise BackendError(f"cannot list {prefix or '/'} in {self.url}: a web server does not list a store's keys")

    # -- reading objects in place (external files) -----------------------------

    def stat(self, key: str) -> SourceObject:
        response = self._request("HEAD", key, "look up", {"Accept-Encoding": "identity"})
        if response.status != 200:
            raise self._status_error(response.status, key, "look up")
        size = response.headers.get("Content-Length")
        if size is None or not size.isdigit():
            raise BackendError(f"cannot look up {key} in {self.url}: the server sent no Content-Length")
        return SourceObject(key=key, size=int(size), etag=response.headers.get("ETag"), version=None, modified=response.headers.get("Last-Modified"))

    def get_range_at(self, key: str, offset: int, length: int, version: str | None, etag: str | None = None) -> bytes:
        return self._read_range(key, offset, length, self._pin(version, etag))

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        return self._open(key, self._pin(version, etag))

    # -- writes: refused -------------------------------------------------------

    def get_versioned(self, key: str) -> Versioned | None:
        try:
            return Versioned(data=self.get(key), token=None)
        except KeyNotFound:
            return None

    def _refuse(self, key: str) -> BackendError:
        return AccessDenied(f"cannot write {key} to {self.url}: {READ_ONLY}")

    def put_file(self, key: str, path: str) -> None:
        raise self._refuse(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        raise self._refuse(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        raise self._refuse(key)

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        raise self._refuse(key)

    def delete(self, key: str) -> None:
        raise self._refuse(key)
