"""A store under an S3 bucket prefix (AWS or any S3-compatible service), through boto3.

Refs move by S3 conditional writes: ``If-None-Match: *`` creates a key only if it
is absent and ``If-Match: <etag>`` replaces it only if nobody changed it since
it was read. Credentials come only from boto3's own chain (environment,
``AWS_PROFILE`` or the ``profile`` option, config files, instance roles);
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` apply when no endpoint is given.

boto3 does not retry here: ``RetryingBackend`` retries TransientErrors, once,
for every backend alike.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urlparse

import boto3
import botocore.exceptions
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

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

# Error codes that mean "try again later" whatever the HTTP status says.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "BadDigest",  # the body was damaged on the way; sending it again fixes it
    }
)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# 409 ConditionalRequestConflict: another conditional write to the key is in flight, and wins.
LOST_RACE_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "403",
    }
)
# Servers that do not know a conditional header on DELETE answer with one of these.
UNSUPPORTED_CODES = frozenset({"NotImplemented", "InvalidArgument", "InvalidRequest", "501"})

TRANSIENT_SDK_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.FlexibleChecksumError,  # a body that fails its x-amz-checksum: damaged on the way, read it again
    ConnectionError,  # the builtin: resets and aborts while a body streams
    TimeoutError,
)
try:
    from urllib3.exceptions import HTTPError as Urllib3Error

    TRANSIENT_SDK_ERRORS += (Urllib3Error,)  # ProtocolError and friends from a streamed body
except ImportError:  # pragma: no cover - botocore always brings urllib3
    pass

# The endpoint could not be reached at all (as opposed to a connection that broke mid-request).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
)

CREDENTIAL_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
    botocore.exceptions.ProfileNotFound,
)


def error_code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a ClientError."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code, status


class S3Backend(Backend):
    """Blobs are objects under ``s3://bucket/prefix``; refs change by conditional PUT.

    ``endpoint_url`` selects an S3-compatible service (MinIO, Ceph, R2, a test
    server); ``region`` and ``profile`` override boto3's defaults. Large files go
    up as multipart uploads of ``part_size`` bytes; ``page_size`` is the number of
    keys asked for per listing request.
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        part_size: int = 8 * MiB,
        page_size: int = 1000,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise BackendError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.page_size = page_size
        self._transfer = TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=4, use_threads=True
        )
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
        )
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
            self._s3 = session.client("s3", endpoint_url=endpoint_url, config=config)
        except CREDENTIAL_ERRORS as exc:
            raise AccessDenied(f"cannot set up AWS credentials for {self.url}: {exc}") from exc

    # -- helpers -------------------------------------------------------------

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: BaseException, key: str, op: str) -> BackendError:
        """Translate an SDK exception about ``key`` into the backend's error types."""
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, Exception):
            exc = exc.__context__  # boto3 hides the ClientError of a managed upload behind this
        where = f"{key} in {self.url}"
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status = error_code(exc)
            message = exc.response.get("Error", {}).get("Message") or code
            if code in NOT_FOUND_CODES:
                return KeyNotFound(self.url, key)
            if code == "NoSuchBucket":
                return ContainerNotFound(f"cannot {op} {where}: bucket {self.bucket!r} does not exist")
            if code in TRANSIENT_CODES or status in TRANSIENT_STATUS:
                return TransientError(f"cannot {op} {where} right now: {code or status} ({message})")
            if code in AUTH_CODES or status == 403:
                return AccessDenied(
                    f"cannot {op} {where}: access denied ({code}); check the AWS credentials "
                    "(environment, AWS_PROFILE, instance role) and the bucket's permissions"
                )
            if status == 404:
                return KeyNotFound(self.url, key)
            return BackendError(f"cannot {op} {where}: {code or status}: {message}")
        if isinstance(exc, CREDENTIAL_ERRORS):
            return AccessDenied(
                f"cannot {op} {where}: no usable AWS credentials ({type(exc).__name__}); "
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role"
            )
        if isinstance(exc, CONNECTION_ERRORS):
            return ConnectionFailed(f"cannot {op} {where}: cannot reach the endpoint: {exc}")
        if isinstance(exc, TRANSIENT_SDK_ERRORS):
            return TransientError(f"cannot {op} {where}: connection problem: {exc}")
        if isinstance(exc, BackendError):
            return exc
        return BackendError(f"cannot {op} {where}: {type(exc).__name__}: {exc}")

    def _lost_race(self, exc: Exception) -> bool:
        return isinstance(exc, botocore.exceptions.ClientError) and (
            error_code(exc)[0] in LOST_RACE_CODES or error_code(exc)[1] in (409, 412)
        )

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            raise self._error(exc, key, "read") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length == 0:
            if not self.exists(key):
                raise KeyNotFound(self.url, key)
            return b""
        try:
            response = self._s3.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={offset}-{offset + length - 1}"
            )
            data = response["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if error_code(exc)[0] == "InvalidRange" or error_code(exc)[1] == 416:
                raise ShortRead(
                    f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, it is shorter"
                ) from exc
            raise self._error(exc, key, "read") from exc
        except Exception as exc:
            raise self._error(exc, key, "read") from exc
        if len(data) != length:
            # Content-Range ("bytes START-END/TOTAL") tells a blob that is shorter (damage) from a body cut on the way.
            total = str(response.get("ContentRange", "")).rpartition("/")[2]
            if total.isdigit() and int(total) >= offset + length:
                raise TransientError(f"cannot read {key} in {self.url}: the body was cut ({len(data)} of {length} bytes)")
            raise ShortRead(
                f"{key} in {self.url} is truncated: wanted {length} bytes at offset {offset}, got {len(data)}"
            )
        return data

    def open_read(self, key: str) -> BinaryIO:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            raise self._error(exc, key, "read") from exc
        reader = MappedReader(body, lambda exc: self._error(exc, key, "read"))
        return io.BufferedReader(reader, buffer_size=MiB)  # type: ignore[return-value]

    # -- reading objects in place (external files) ------------------------------

    @staticmethod
    def _pin(version: str | None, etag: str | None) -> dict[str, str]:
        """A read pinned to ``version`` (a versioned bucket), else to ``etag`` (412 once the object changes)."""
        if version is not None:
            return {"VersionId": version}
        return {"IfMatch": etag} if etag is not None else {}

    def _pinned_error(self, exc: Exception, key: str, version: str | None) -> BackendError:
        if isinstance(exc, botocore.exceptions.ClientError):
            code, status = error_code(exc)
            if code in LOST_RACE_CODES or status == 412:
                return SourceChanged(f"{key} in {self.url} changed since it was recorded (its ETag differs)")
            if version is not None and (code in ("NoSuchVersion", "InvalidArgument") or status == 400):
                return SourceChanged(f"version {version} of {key} in {self.url} is gone")
        return self._error(exc, key, "read")

    def stat(self, key: str) -> SourceObject:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._error(exc, key, "look up") from exc
        version = head.get("VersionId")
        return SourceObject(key, int(head["ContentLength"]), head.get("ETag"), None if version in (None, "null") else version, None)

    def get_range_at(self, key: str, offset: int, length: int, version: str | None, etag: str | None = None) -> bytes:
        if length == 0:
            return b""
        try:
            response = self._s3.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={offset}-{offset + length - 1}", **self._pin(version, etag)
            )
            data = response["Body"].read()
        except Exception as exc:
            raise self._pinned_error(exc, key, version) from exc
        if len(data) != length:
            raise ShortRead(f"{key} in {self.url} is shorter than recorded: wanted {length} bytes at offset {offset}")
        return data

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(key), **self._pin(version, etag))["Body"]
        except Exception as exc:
            raise self._pinned_error(exc, key, version) from exc
        reader = MappedReader(body, lambda exc: self._error(exc, key, "read"))
        return io.BufferedReader(reader, buffer_size=MiB)  # type: ignore[return-value]

    def open_read_current(self, key: str) -> tuple[SourceObject, BinaryIO]:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._error(exc, key, "read") from exc
        version = response.get("VersionId")
        obj = SourceObject(key, int(response["ContentLength"]), response.get("ETag"), None if version in (None, "null") else version, None)
        reader = MappedReader(response["Body"], lambda exc: self._error(exc, key, "read"))
        return obj, io.BufferedReader(reader, buffer_size=MiB)  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            error = self._error(exc, key, "look up")
            if isinstance(error, KeyNotFound):
                return False
            raise error from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        skip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": self.page_size})
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ObjectInfo(
                        key=item["Key"][skip:], size=int(item["Size"]), mtime=item["LastModified"].timestamp()
                    )
        except Exception as exc:
            raise self._error(exc, prefix or "/", "list") from exc

    # -- writes --------------------------------------------------------------

    def put_file(self, key: str, path: str) -> None:
        try:
            self._s3.upload_file(path, self.bucket, self._key(key), Config=self._transfer)
        except OSError as exc:
            if isinstance(exc, (ConnectionError, TimeoutError)):
                raise self._error(exc, key, "upload") from exc
            raise BackendError(f"cannot read {path} to upload it as {key} to {self.url}: {exc}") from exc
        except Exception as exc:
            raise self._error(exc, key, "upload") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._error(exc, key, "write") from exc

    def _conditional_put(self, key: str, data: bytes, condition: dict[str, Any]) -> bool:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
            return True
        except Exception as exc:
            if self._lost_race(exc):
                return False
            error = self._error(exc, key, "write")
            if isinstance(error, KeyNotFound):  # If-Match on a key that someone deleted
                return False
            raise error from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._conditional_put(key, data, {"IfNoneMatch": "*"})

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            error = self._error(exc, key, "delete")
            if not isinstance(error, KeyNotFound):
                raise error from exc

    # -- compare-and-swap ----------------------------------------------------

    def get_versioned(self, key: str) -> Versioned | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
            return Versioned(data=response["Body"].read(), token=response["ETag"])
        except Exception as exc:
            error = self._error(exc, key, "read")
            if isinstance(error, KeyNotFound):
                return None
            raise error from exc

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        if data is not None:
            condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": str(expected.token)}
            return self._conditional_put(key, data, condition)
        if expected is None:
            return not self.exists(key)
        return self._conditional_delete(key, str(expected.token))

    def _conditional_delete(self, key: str, etag: str) -> bool:
        """Delete ``key`` only while its ETag is ``etag``.

        AWS and recent S3-compatible servers honour ``If-Match`` on DELETE. A server
        that rejects the header gets a HEAD check followed by a plain DELETE: best
        effort, since a writer can slip in between the two. A server that silently
        ignores the header is covered by the same HEAD check only.
        """
        try:
            current = self._s3.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"]
        except Exception as exc:
            error = self._error(exc, key, "look up")
            if isinstance(error, KeyNotFound):
                return False
            raise error from exc
        if current != etag:
            return False
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=etag)
            return True
        except botocore.exceptions.ClientError as exc:
            code, status = error_code(exc)
            if self._lost_race(exc) or code in NOT_FOUND_CODES or status == 404:
                return False
            if code not in UNSUPPORTED_CODES and status != 501:
                raise self._error(exc, key, "delete") from exc
        except botocore.exceptions.ParamValidationError:
            pass  # a botocore that predates IfMatch on DeleteObject
        except Exception as exc:
            raise self._error(exc, key, "delete") from exc
        self.delete(key)
        return True
