"""A store under an Azure Blob Storage container prefix, through azure-storage-blob.

Refs move by conditional writes on block blobs: ``If-None-Match: *`` creates a
blob only if it is absent and ``If-Match: <etag>`` replaces or deletes it only if
nobody changed it since it was read.

Where and who, in this order: the ``connection_string`` option; the account URL
(the ``endpoint_url``/``account_url`` option); ``AZURE_STORAGE_CONNECTION_STRING``;
``https://<AZURE_STORAGE_ACCOUNT>.blob.core.windows.net``. An account URL gets
the key or SAS token of ``AZURE_STORAGE_CONNECTION_STRING`` if that is set, else
an account key (``AZURE_STORAGE_KEY``), a SAS token (``AZURE_STORAGE_SAS_TOKEN``)
or, when azure-identity is installed, ``DefaultAzureCredential``.

The SDK does not retry here (``retry_total=0``): ``RetryingBackend`` retries
TransientErrors, once, for every backend alike.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient

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
TRANSIENT_CODES = frozenset({"ServerBusy", "InternalError", "OperationTimedOut", "Md5Mismatch"})
AUTH_CODES = frozenset({"AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch", "InsufficientAccountPermissions"})
# 409 with these codes: another conditional write or a lease holds the blob right now; that write wins.
LOST_RACE_CODES = frozenset({"BlobAlreadyExists", "ConditionNotMet", "LeaseIdMissing", "LeaseAlreadyPresent"})

# A connection that broke while a response streamed in: read it again.
TRANSIENT_SDK_ERRORS: tuple[type[BaseException], ...] = (
    ServiceResponseError,
    IncompleteReadError,
    DecodeError,
    ConnectionError,
    TimeoutError,
)


def connection_settings(connection_string: str) -> dict[str, str]:
    """The ``Name=value`` pairs of a connection string."""
    return dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)


def account_credential(account_url: str) -> Any:
    """The credential for ``account_url`` from the environment (None: anonymous, for public containers).

    With an endpoint given, a connection string in the environment still lends its key or SAS token.
    """
    conn = connection_settings(os.environ.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    key = conn.get("AccountKey") or os.environ.get("AZURE_STORAGE_KEY") or os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
    if key:
        parsed = urlparse(account_url)
        # Emulators put the account in the path (http://127.0.0.1:10000/devstoreaccount1), Azure in the host.
        name = (
            conn.get("AccountName")
            or os.environ.get("AZURE_STORAGE_ACCOUNT")
            or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
            or parsed.path.strip("/").split("/")[0]
            or (parsed.hostname or "").split(".")[0]
        )
        return {"account_name": name, "account_key": key}
    sas = conn.get("SharedAccessSignature") or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if sas:
        return sas.lstrip("?")
    try:
        from azure.identity import DefaultAzureCredential  # optional: only with azure-identity installed
    except ImportError:
        return None
    return DefaultAzureCredential()


class AzureBackend(Backend):
    """Blobs are block blobs under ``az://container/prefix``; refs change by ETag preconditions.

    ``endpoint_url`` (or its Azure name ``account_url``) is the account's blob
    endpoint; ``connection_string`` replaces both it and the credential. Large
    files go up in blocks of ``part_size`` bytes; ``page_size`` is the number of
    blobs asked for per listing request.
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        account_url: str | None = None,
        connection_string: str | None = None,
        credential: Any = None,
        part_size: int = 8 * MiB,
        page_size: int = 1000,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("az", "azure") or not parsed.netloc:
            raise BackendError(f"not an Azure URL: {url!r} (expected az://container/prefix)")
        self.container = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = f"az://{self.container}/{self.prefix}" if self.prefix else f"az://{self.container}"
        self.page_size = page_size
        settings = {
            "retry_total": 0,
            "connection_timeout": 10,
            "read_timeout": 60,
            "max_block_size": part_size,
            "max_single_put_size": part_size,
            "max_single_get_size": 4 * MiB,  # the first GET of a stream holds this much in memory
            "max_chunk_get_size": 4 * MiB,
        }
        account = endpoint_url or account_url
        connection_string = connection_string or (None if account else os.environ.get("AZURE_STORAGE_CONNECTION_STRING"))
        try:
            if connection_string:
                service = BlobServiceClient.from_connection_string(connection_string, credential=credential, **settings)
            else:
                if not account:
                    name = os.environ.get("AZURE_STORAGE_ACCOUNT") or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
                    if not name:
                        raise AccessDenied(
                            f"no Azure account for {self.url}: set AZURE_STORAGE_CONNECTION_STRING, "
                            "or AZURE_STORAGE_ACCOUNT (with AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or an Azure login)"
                        )
                    account = f"https://{name}.blob.core.windows.net"
                service = BlobServiceClient(account, credential=credential or account_credential(account), **settings)
        except ValueError as exc:  # a malformed connection string or account URL
            raise BackendError(f"cannot set up Azure access for {self.url}: {exc}") from exc
        self._container: ContainerClient = service.get_container_client(self.container)

    # -- helpers -------------------------------------------------------------

    def _name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob(self, key: str) -> Any:
        return self._container.get_blob_client(self._name(key))

    def _error(self, exc: BaseException, key: str, op: str) -> BackendError:
        """Translate an SDK exception about ``key`` into the backend's error types."""
        if isinstance(exc, BackendError):
            return exc
        if type(exc) is HttpResponseError and exc.status_code is None and isinstance(exc.__cause__, TRANSIENT_SDK_ERRORS):
            exc = exc.__cause__  # the SDK wraps a body cut on the way once its own tries of the download are spent
        where = f"{key} in {self.url}"
        code = str(getattr(exc, "error_code", "") or "")
        status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status_code", None)
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            if code == "ContainerNotFound":
                return ContainerNotFound(f"cannot {op} {where}: container {self.container!r} does not exist")
            return KeyNotFound(self.url, key)
        if isinstance(exc, ClientAuthenticationError) or code in AUTH_CODES or status in (401, 403):
            return AccessDenied(
                f"cannot {op} {where}: access denied ({code or status}); check the Azure credentials "
                "(AZURE_STORAGE_CONNECTION_STRING, account key, SAS token, az login) and the container's permissions"
            )
        if code in TRANSIENT_CODES or status in TRANSIENT_STATUS:
            return TransientError(f"cannot {op} {where} right now: {code or status}")
        if isinstance(exc, ServiceRequestError):  # the request never got an answer: refused, unresolvable, timed out
            return ConnectionFailed(f"cannot {op} {where}: cannot reach the endpoint: {exc}")
        if isinstance(exc, TRANSIENT_SDK_ERRORS):
            return TransientError(f"cannot {op} {where}: connection problem: {type(exc).__name__}: {exc}")
        if isinstance(exc, HttpResponseError):
            return BackendError(f"cannot {op} {where}: {code or status}: {exc.reason or exc.message}")
        return BackendError(f"cannot {op} {where}: {type(exc).__name__}: {exc}")

    @staticmethod
    def _lost_race(exc: BaseException) -> bool:
        if isinstance(exc, (ResourceExistsError, ResourceModifiedError)):
            return True
        code = str(getattr(exc, "error_code", "") or "")
        return code in LOST_RACE_CODES or getattr(exc, "status_code", None) == 412

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            downloader = self._blob(key).download_blob(max_concurrency=4)
            data = downloader.readall()
        except Exception as exc:
            raise self._error(exc, key, "read") from exc
        self._check_md5(key, data, downloader.properties.content_settings.content_md5)
        return data

    def _check_md5(self, key: str, data: bytes, md5: bytes | bytearray | None) -> None:
        """A whole blob against the MD5 Azure keeps for it (blobs put in one request have one): damaged on the way, read it again."""
        if md5 and hashlib.md5(data).digest() != bytes(md5):
            raise TransientError(f"cannot read {key} in {self.url}: the body was damaged on the way (Content-MD5 differs)")

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._read_range(key, offset, length, {})

    def _read_range(self, key: str, offset: int, length: int, pin: dict[str, Any]) -> bytes:
        if length == 0:
            if not self.exists(key):
                raise KeyNotFound(self.url, key)
            return b""
        try:
            downloader = self._blob(key).download_blob(offset=offset, length=length, **pin)
            data = downloader.readall()
        except Exception as exc:
            if getattr(exc, "status_code", None) == 416 or getattr(exc, "error_code", None) == "InvalidRange":
                raise ShortRead(f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, it is shorter") from exc
            if pin and self._lost_race(exc):
                raise SourceChanged(f"{key} in {self.url} changed since it was recorded") from exc
            raise self._error(exc, key, "read") from exc
        if len(data) != length:
            # Content-Range ("bytes START-END/TOTAL") tells a blob that is shorter (damage) from a body cut on the way.
            total = str(downloader.properties.content_range or "").rpartition("/")[2]
            if total.isdigit() and int(total) >= offset + length:
                raise TransientError(f"cannot read {key} in {self.url}: the body was cut ({len(data)} of {length} bytes)")
            raise ShortRead(f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, got {len(data)}")
        return data

    def open_read(self, key: str) -> BinaryIO:
        return self._open(key, {})

    def _open(self, key: str, pin: dict[str, Any]) -> BinaryIO:
        try:
            # The SDK pins every later chunk of the stream to the first one's ETag: an overwrite is an error, not mixed bytes.
            downloader = self._blob(key).download_blob(**pin)
        except Exception as exc:
            if pin and self._lost_race(exc):
                raise SourceChanged(f"{key} in {self.url} changed since it was recorded") from exc
            raise self._error(exc, key, "read") from exc
        reader = MappedReader(downloader, lambda exc: self._error(exc, key, "read"))  # type: ignore[arg-type]
        return io.BufferedReader(reader, buffer_size=MiB)  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        try:
            return bool(self._blob(key).exists())
        except Exception as exc:
            error = self._error(exc, key, "look up")
            if isinstance(error, KeyNotFound):
                return False
            raise error from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if prefix:
            validate_key(prefix.rstrip("/"))
        root = f"{self.prefix}/" if self.prefix else ""
        full = root + (prefix.rstrip("/") + "/" if prefix else "")
        try:
            for blob in self._container.list_blobs(name_starts_with=full, results_per_page=self.page_size):
                mtime = blob.last_modified.timestamp() if blob.last_modified is not None else 0.0
                yield ObjectInfo(key=blob.name[len(root) :], size=int(blob.size or 0), mtime=mtime)
        except Exception as exc:
            raise self._error(exc, prefix or "/", "list") from exc

    # -- reading objects in place (external files) -----------------------------

    def stat(self, key: str) -> SourceObject:
        try:
            props = self._blob(key).get_blob_properties()
        except Exception as exc:
            raise self._error(exc, key, "look up") from exc
        return SourceObject(key=key, size=int(props.size), etag=props.etag, version=getattr(props, "version_id", None), modified=None)

    @staticmethod
    def _pin(version: str | None, etag: str | None) -> dict[str, Any]:
        pin: dict[str, Any] = {}
        if version is not None:
            pin["version_id"] = version
        if etag is not None:
            pin.update(etag=etag, match_condition=MatchConditions.IfNotModified)
        return pin

    def get_range_at(self, key: str, offset: int, length: int, version: str | None, etag: str | None = None) -> bytes:
        return self._read_range(key, offset, length, self._pin(version, etag))

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        return self._open(key, self._pin(version, etag))

    # -- writes --------------------------------------------------------------

    def put_file(self, key: str, path: str) -> None:
        try:
            with open(path, "rb") as f:
                # Above part_size the SDK stages blocks of part_size (4 at a time) and commits the block list.
                self._blob(key).upload_blob(f, overwrite=True, length=os.fstat(f.fileno()).st_size, max_concurrency=4)
        except FileNotFoundError as exc:
            raise BackendError(f"cannot read {path} to upload it as {key} to {self.url}: {exc}") from exc
        except Exception as exc:
            raise self._error(exc, key, "upload") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._blob(key).upload_blob(data, overwrite=True)
        except Exception as exc:
            raise self._error(exc, key, "write") from exc

    def _conditional_put(self, key: str, data: bytes, condition: dict[str, Any]) -> bool:
        try:
            self._blob(key).upload_blob(data, **condition)
            return True
        except Exception as exc:
            if self._lost_race(exc):
                return False
            error = self._error(exc, key, "write")
            if isinstance(error, KeyNotFound):  # If-Match on a blob that someone deleted
                return False
            raise error from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._conditional_put(key, data, {"overwrite": False})  # If-None-Match: *

    def delete(self, key: str) -> None:
        try:
            self._blob(key).delete_blob()
        except Exception as exc:
            error = self._error(exc, key, "delete")
            if not isinstance(error, KeyNotFound):
                raise error from exc

    # -- compare-and-swap ----------------------------------------------------

    def get_versioned(self, key: str) -> Versioned | None:
        try:
            downloader = self._blob(key).download_blob()
            data = downloader.readall()
            self._check_md5(key, data, downloader.properties.content_settings.content_md5)
            return Versioned(data=data, token=downloader.properties.etag)
        except Exception as exc:
            error = self._error(exc, key, "read")
            if isinstance(error, KeyNotFound):
                return None
            raise error from exc

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        if data is not None:
            if expected is None:
                return self.put_if_absent(key, data)
            return self._conditional_put(
                key, data, {"overwrite": True, "etag": str(expected.token), "match_condition": MatchConditions.IfNotModified}
            )
        if expected is None:
            return not self.exists(key)
        try:
            self._blob(key).delete_blob(etag=str(expected.token), match_condition=MatchConditions.IfNotModified)
            return True
        except Exception as exc:
            if self._lost_race(exc):
                return False
            error = self._error(exc, key, "delete")
            if isinstance(error, KeyNotFound):
                return False
            raise error from exc
