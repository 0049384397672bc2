"""Storage backends: where a datactl store's blobs live.

``open_backend(url, options)`` picks the implementation from the URL: a plain
path or ``file://`` for a local folder, ``s3://bucket/prefix`` for S3 (boto3),
``gs://bucket/prefix`` for Google Cloud Storage, ``az://container/prefix`` (or
``azure://``) for Azure Blob Storage, and ``https://host/path`` (or ``http://``) for a
read-only store served by a web server. The network backends come wrapped
in ``RetryingBackend``; their SDKs are optional extras, imported only when such
a URL is opened. Other schemes are registered through the ``datactl.backends``
entry-point group (a callable taking the URL and the options as keywords).
"""

from __future__ import annotations

import importlib
from urllib.parse import urlparse

from storage_backends.base import (
    AccessDenied,
    Backend,
    BackendError,
    ConnectionFailed,
    ContainerNotFound,
    KeyNotFound,
    NoSpace,
    ObjectInfo,
    ShortRead,
    SourceChanged,
    SourceObject,
    TransientError,
    Versioned,
    validate_key,
)
from storage_backends.local import LocalBackend
from storage_backends.retry import RetryingBackend

__all__ = [
    "AccessDenied",
    "Backend",
    "BackendError",
    "ConnectionFailed",
    "ContainerNotFound",
    "KeyNotFound",
    "LocalBackend",
    "NoSpace",
    "ObjectInfo",
    "RetryingBackend",
    "ShortRead",
    "SourceChanged",
    "SourceObject",
    "TransientError",
    "Versioned",
    "open_backend",
    "supported_schemes",
    "url_scheme",
    "validate_key",
]


# scheme -> (module, class, the options its constructor takes, pip extra, SDK name)
def _registered(group: str) -> list:
    """Entry points of ``group``; importlib.metadata is imported here, as it costs every command ~15 ms at start-up."""
    from importlib.metadata import entry_points

    return list(entry_points(group=group))


AZURE_OPTIONS = {"endpoint_url", "account_url", "connection_string", "credential"}
HTTP_OPTIONS = {"headers"}
CLOUD_BACKENDS = {
    "s3": ("storage_backends.s3", "S3Backend", {"endpoint_url", "region", "profile"}, "s3", "boto3"),
    "gs": ("storage_backends.gcs", "GCSBackend", {"endpoint_url", "project", "client"}, "gcs", "google-cloud-storage"),
    "az": ("storage_backends.azure", "AzureBackend", AZURE_OPTIONS, "azure", "azure-storage-blob"),
    "azure": ("storage_backends.azure", "AzureBackend", AZURE_OPTIONS, "azure", "azure-storage-blob"),
    "http": ("storage_backends.http", "HTTPBackend", HTTP_OPTIONS, "http", "urllib3"),
    "https": ("storage_backends.http", "HTTPBackend", HTTP_OPTIONS, "http", "urllib3"),
}


def _open_cloud(scheme: str, url: str, options: dict) -> Backend:
    module_name, class_name, accepted, extra, sdk = CLOUD_BACKENDS[scheme]
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise BackendError(f"option(s) {', '.join(unknown)} do not apply to {scheme}:// remotes (in {url!r})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"{scheme}:// needs {sdk}: pip install 'datactl[{extra}]'") from exc
    return RetryingBackend(getattr(module, class_name)(url, **options))


def url_scheme(url: str) -> str:
    """The scheme that picks ``url``'s backend: "file" for a plain path (a Windows drive letter included)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and url[1:3] in (":\\", ":/")):
        return "file"
    return parsed.scheme


def supported_schemes() -> list[str]:
    """Every scheme ``open_backend`` opens: file, the cloud backends, and those registered as entry points."""
    return sorted({"file", *CLOUD_BACKENDS, *(ep.name for ep in _registered("datactl.backends"))})


def open_backend(url: str, options: dict | None = None) -> Backend:
    """Return the backend for ``url``: a path, ``file://``, ``s3://``, ``gs://``, ``az://``, ``https://`` or a registered scheme.

    ``options`` are backend keywords, e.g. ``endpoint_url``/``region``/``profile``
    for S3, ``endpoint_url``/``project``/``client`` for GCS, ``endpoint_url``
    (the account URL)/``connection_string``/``credential`` for Azure, ``headers``
    for HTTP; options set to None are ignored.
    """
    options = {k: v for k, v in (options or {}).items() if v is not None}
    parsed = urlparse(url)
    scheme = url_scheme(url)
    if scheme == "file":
        return LocalBackend(parsed.path if parsed.scheme == "file" else url)
    if scheme in CLOUD_BACKENDS:
        return _open_cloud(scheme, url, options)
    for ep in _registered("datactl.backends"):
        if ep.name == parsed.scheme:
            return ep.load()(url, **options)
    raise BackendError(f"no storage backend for {parsed.scheme}:// URLs (in {url!r})")
