"""A store under a Google Cloud Storage bucket prefix, through google-cloud-storage.

Refs move by generation preconditions: ``if_generation_match=0`` creates a blob
only if it is absent, ``if_generation_match=<generation>`` replaces or deletes it
only if nobody changed it since it was read. Credentials come from Application
Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud, metadata
server); ``STORAGE_EMULATOR_HOST`` points the client at an emulator.

Every call passes ``retry=None``: ``RetryingBackend`` retries TransientErrors,
once, for every backend alike.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urlparse

import google.api_core.exceptions as api_errors
import google.auth.exceptions
import requests.exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from storage_backends.base import (
    AccessDenied,
    Backend,
    BackendError,
    ConnectionFailed,
    ContainerNotFound,
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

TRANSIENT_SDK_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    google.auth.exceptions.TransportError,
    DataCorruption,  # a checksum mismatch on download: the bytes were damaged in transit
    ConnectionError,
    TimeoutError,
)
try:
    from urllib3.exceptions import HTTPError as Urllib3Error

    TRANSIENT_SDK_ERRORS += (Urllib3Error,)  # ProtocolError and friends from a streamed body
except ImportError:  # pragma: no cover - requests always brings urllib3
    pass


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a google-cloud-storage exception, if there is one."""
    if isinstance(exc, api_errors.GoogleAPICallError):
        return int(exc.code) if exc.code is not None else None
    if isinstance(exc, InvalidResponse):
        response = getattr(exc, "response", None)
        return getattr(response, "status_code", None)
    return None


class GCSBackend(Backend):
    """Blobs are objects under ``gs://bucket/prefix``; refs change by generation preconditions.

    ``client`` is used as given; otherwise ``endpoint_url`` (an emulator, reached
    without credentials) or the default client (ADC, honouring
    ``STORAGE_EMULATOR_HOST``) is built. ``page_size`` is the number of blobs asked
    for per listing request.
    """

    def __init__(
        self,
        url: str,
        *,
        project: str | None = None,
        client: storage.Client | None = None,
        endpoint_url: str | None = None,
        part_size: int = 8 * MiB,
        page_size: int = 1000,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "gs" or not parsed.netloc:
            raise BackendError(f"not a GCS URL: {url!r} (expected gs://bucket/prefix)")
        self.prefix = parsed.path.strip("/")
        self.url = f"gs://{parsed.netloc}/{self.prefix}" if self.prefix else f"gs://{parsed.netloc}"
        self.page_size = page_size
        # Resumable uploads buffer one chunk; the SDK's default chunk is 100 MiB.
        self.part_size = max(256 * 1024, part_size // (256 * 1024) * (256 * 1024))
        if client is None:
            try:
                if endpoint_url:
                    client = storage.Client(
                        project=project or "datactl",
                        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options={"api_endpoint": endpoint_url},
                    )
                else:
                    client = storage.Client(project=project)
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise AccessDenied(
                    f"no Google Cloud credentials for {self.url}: set GOOGLE_APPLICATION_CREDENTIALS "
                    "or run 'gcloud auth application-default login'"
                ) from exc
        self._client = client
        self._bucket = client.bucket(parsed.netloc)

    # -- helpers -------------------------------------------------------------

    def _blob(self, key: str, **kwargs: Any) -> storage.Blob:
        validate_key(key)
        return self._bucket.blob(f"{self.prefix}/{key}" if self.prefix else key, **kwargs)

    def _error(self, exc: BaseException, key: str, op: str) -> BackendError:
        """Translate an SDK exception about ``key`` into the backend's error types."""
        where = f"{key} in {self.url}"
        if isinstance(exc, BackendError):
            return exc
        status = status_of(exc)
        if status == 404:
            if "bucket" in str(exc).lower() and "does not exist" in str(exc).lower():
                return ContainerNotFound(f"cannot {op} {where}: bucket {self._bucket.name!r} does not exist")
            return KeyNotFound(self.url, key)
        if status in TRANSIENT_STATUS:
            return TransientError(f"cannot {op} {where} right now: HTTP {status}")
        if status in (401, 403) or isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
            return AccessDenied(
                f"cannot {op} {where}: access denied; check the Google Cloud credentials "
                "(GOOGLE_APPLICATION_CREDENTIALS, gcloud auth) and the bucket's permissions"
            )
        if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return ConnectionFailed(f"cannot {op} {where}: cannot reach the endpoint: {type(exc).__name__}: {exc}")
        if isinstance(exc, TRANSIENT_SDK_ERRORS):
            return TransientError(f"cannot {op} {where}: connection problem: {type(exc).__name__}: {exc}")
        if status is not None:
            message = getattr(exc, "message", None) or str(exc)
            return BackendError(f"cannot {op} {where}: HTTP {status}: {message}")
        return BackendError(f"cannot {op} {where}: {type(exc).__name__}: {exc}")

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            return self._blob(key).download_as_bytes(retry=None)
        except Exception as exc:
            raise self._error(exc, key, "read") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length == 0:
            if not self.exists(key):
                raise KeyNotFound(self.url, key)
            return b""
        try:
            data = self._blob(key).download_as_bytes(start=offset, end=offset + length - 1, retry=None)
        except Exception as exc:
            if status_of(exc) == 416:
                raise ShortRead(
                    f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, it is shorter"
                ) from exc
            raise self._error(exc, key, "read") from exc
        if len(data) != length:
            # The blob's size tells a blob that is shorter (damage) from a body cut on the way (read it again).
            blob = self._blob(key)
            try:
                blob.reload(retry=None)
            except Exception as exc:
                raise self._error(exc, key, "look up") from exc
            if blob.size is not None and int(blob.size) >= offset + length:
                raise TransientError(f"cannot read {key} in {self.url}: the body was cut ({len(data)} of {length} bytes)")
            raise ShortRead(
                f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, got {len(data)}"
            )
        return data

    def open_read(self, key: str) -> BinaryIO:
        blob = self._blob(key)
        try:
            blob.reload(retry=None)
            # Pinning the generation makes an overwrite during the read an error, not mixed bytes.
            raw = blob.open("rb", chunk_size=self.part_size, retry=None, if_generation_match=blob.generation)
        except Exception as exc:
            raise self._error(exc, key, "read") from exc
        reader = MappedReader(raw, lambda exc: self._error(exc, key, "read"))
        return io.BufferedReader(reader, buffer_size=MiB)  # type: ignore[return-value]

    # -- reading objects in place (external files) ------------------------------

    def stat(self, key: str) -> SourceObject:
        blob = self._blob(key)
        try:
            blob.reload(retry=None)
        except Exception as exc:
            raise self._error(exc, key, "look up") from exc
        generation = None if blob.generation is None else str(blob.generation)
        return SourceObject(key, int(blob.size or 0), blob.md5_hash or blob.crc32c, generation, None)

    def _pinned_error(self, exc: Exception, key: str, version: str | None) -> BackendError:
        if status_of(exc) == 412 or (version is not None and status_of(exc) == 404 and self._has(key)):
            return SourceChanged(f"generation {version} of {key} in {self.url} is no longer there")
        return self._error(exc, key, "read")

    def _has(self, key: str) -> bool:
        try:
            return bool(self._blob(key).exists(retry=None))
        except Exception:
            return False

    def get_range_at(self, key: str, offset: int, length: int, version: str | None, etag: str | None = None) -> bytes:
        if length == 0:
            return b""
        # A generation names one immutable object: reading it, not "the current object if it is still it",
        # serves the pinned bytes while a soft-deleted or noncurrent generation is kept.
        blob = self._blob(key, generation=int(version) if version is not None else None)
        try:
            data = blob.download_as_bytes(start=offset, end=offset + length - 1, retry=None)
        except Exception as exc:
            raise self._pinned_error(exc, key, version) from exc
        if len(data) != length:
            raise ShortRead(f"{key} in {self.url} is shorter than recorded: wanted {length} bytes at offset {offset}")
        return data

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        blob = self._blob(key, generation=int(version) if version is not None else None)
        try:
            blob.reload(retry=None)
            raw = blob.open("rb", chunk_size=self.part_size, retry=None)
        except Exception as exc:
            raise self._pinned_error(exc, key, version) from exc
        reader = MappedReader(raw, lambda exc: self._pinned_error(exc, key, version))
        return io.BufferedReader(reader, buffer_size=MiB)  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        try:
            return bool(self._blob(key).exists(retry=None))
        except Exception as exc:
            raise self._error(exc, key, "look up") from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if prefix:
            validate_key(prefix.rstrip("/"))
        root = f"{self.prefix}/" if self.prefix else ""
        full = root + (prefix.rstrip("/") + "/" if prefix else "")
        try:
            for blob in self._client.list_blobs(self._bucket, prefix=full, page_size=self.page_size, retry=None):
                mtime = blob.updated.timestamp() if blob.updated is not None else 0.0
                yield ObjectInfo(key=blob.name[len(root) :], size=int(blob.size or 0), mtime=mtime)
        except Exception as exc:
            raise self._error(exc, prefix or "/", "list") from exc

    # -- writes --------------------------------------------------------------

    def put_file(self, key: str, path: str) -> None:
        try:
            # Files above 8 MiB go up as resumable uploads in part_size chunks.
            self._blob(key, chunk_size=self.part_size).upload_from_filename(
                path, content_type="application/octet-stream", retry=None
            )
        except FileNotFoundError as exc:
            raise BackendError(f"cannot read {path} to upload it as {key} to {self.url}: {exc}") from exc
        except Exception as exc:
            raise self._error(exc, key, "upload") from exc

    def _upload(self, key: str, data: bytes, generation: int | None) -> bool:
        """Simple (one request) upload; with a generation, only if the blob is still at it."""
        try:
            self._blob(key).upload_from_string(
                data, content_type="application/octet-stream", if_generation_match=generation, retry=None
            )
            return True
        except Exception as exc:
            if generation is not None and status_of(exc) in (409, 412):
                return False
            raise self._error(exc, key, "write") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        self._upload(key, data, None)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._upload(key, data, 0)

    def delete(self, key: str) -> None:
        try:
            self._blob(key).delete(retry=None)
        except Exception as exc:
            error = self._error(exc, key, "delete")
            if not isinstance(error, KeyNotFound):
                raise error from exc

    # -- compare-and-swap ----------------------------------------------------

    def get_versioned(self, key: str) -> Versioned | None:
        blob = self._blob(key)
        try:
            data = blob.download_as_bytes(retry=None)
        except Exception as exc:
            error = self._error(exc, key, "read")
            if isinstance(error, KeyNotFound):
                return None
            raise error from exc
        if blob.generation is None:
            raise BackendError(f"{self.url} sent {key} without its generation; cannot compare-and-swap")
        return Versioned(data=data, token=int(blob.generation))

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        generation = 0 if expected is None else int(expected.token)  # type: ignore[call-overload]
        if data is not None:
            return self._upload(key, data, generation)
        if expected is None:
            return not self.exists(key)
        return self._conditional_delete(key, generation)

    def _conditional_delete(self, key: str, generation: int) -> bool:
        """Delete ``key`` only while it is at ``generation``.

        GCS enforces the precondition atomically. The generation is also checked
        first because some emulators (fake-gcs-server 1.54) ignore preconditions on
        DELETE; against those the check is best effort.
        """
        blob = self._blob(key)
        try:
            blob.reload(retry=None)
            if blob.generation is None or int(blob.generation) != generation:
                return False
            blob.delete(if_generation_match=generation, retry=None)
            return True
        except Exception as exc:
            if status_of(exc) in (404, 409, 412):
                return False
            raise self._error(exc, key, "delete") from exc
