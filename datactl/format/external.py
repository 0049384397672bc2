"""Where an external file's bytes live: its source URL and the provider's pin, as a tree records them.

A version may name a file it never copied (``datactl add --external``): the
tree entry then carries the object's URL, what the provider said of it when it
was recorded (S3 VersionId or ETag, GCS generation, HTTP ETag / Last-Modified)
and the size of each chunk, so ranged reads can be checked chunk by chunk.
A URL in a version is read by everyone who clones it, so it must never carry
a credential or a signed-URL query string: those URLs are refused when
recorded and when decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Schemes whose objects can be recorded in place (az/azure and https are read by their backends when installed).
SOURCE_SCHEMES = ("s3", "gs", "az", "azure", "https", "http", "file")
MAX_URL = 4096
MAX_PIN = 1024


def check_source_url(url: object) -> str:
    """``url`` if a version may record it; ValueError saying why not (credentials, a query string, a bad form)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise ValueError("a source URL must be text of at most 4096 characters")
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise ValueError(f"source URL {url[:80]!r} holds control characters")
    parts = urlsplit(url)
    if parts.scheme not in SOURCE_SCHEMES:
        raise ValueError(f"source URL {url[:80]!r}: scheme must be one of {', '.join(s + '://' for s in SOURCE_SCHEMES)}")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ValueError(f"source URL {_shown(url)} carries credentials; a version must never store one")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"source URL {_shown(url)} has a query string (a signed URL?); a version must never store one")
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"source URL {url[:80]!r}: a file:// URL needs an absolute path (file:///...)")
    elif not parts.netloc:
        raise ValueError(f"source URL {url[:80]!r} names no bucket or host")
    key = parts.path.lstrip("/")
    if not key or key.endswith("/") or any(p in ("", ".", "..") for p in key.split("/")) or "\\" in key or "\0" in key:
        raise ValueError(f"source URL {url[:80]!r} does not name one object")
    return url


def _shown(url: str) -> str:
    """A refused URL as an error may show it: scheme and host only, so a secret in it is not echoed."""
    parts = urlsplit(url)
    return repr(f"{parts.scheme}://{parts.hostname or ''}/...")


def _pin(d: dict, key: str) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_PIN or any(ord(c) < 0x20 for c in value):
        raise ValueError(f"source {key} must be text of at most {MAX_PIN} characters")
    return value


@dataclass(frozen=True)
class ExternalSource:
    """One object at its source, as recorded: what a read pins to and what ``verify`` compares."""

    url: str
    etag: str | None = None
    version: str | None = None
    modified: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"url": self.url}
        for key in ("etag", "version", "modified"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, d: object) -> "ExternalSource":
        """The source a stored dict describes, every field checked; ValueError otherwise."""
        if not isinstance(d, dict) or set(d) - {"url", "etag", "version", "modified"}:
            raise ValueError("source must be an object with url, etag, version, modified")
        return cls(check_source_url(d.get("url")), _pin(d, "etag"), _pin(d, "version"), _pin(d, "modified"))

    def same_object(self, other: "ExternalSource") -> bool:
        """Whether ``other`` (what the source says now) is still the recorded object, by version, else ETag, else date."""
        if self.url != other.url:
            return False
        if self.version is not None:
            return self.version == other.version
        if self.etag is not None:
            return self.etag == other.etag
        return self.modified is not None and self.modified == other.modified
