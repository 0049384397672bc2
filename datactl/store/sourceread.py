"""Reading external files: bytes fetched from their source, pinned to the recorded version, verified.

An external file's entry names its source URL and the provider's pin (S3
VersionId or ETag, GCS generation, ...). Every read asks the source for that
pinned object, so an overwrite is refused by the provider (or, with a
versioned bucket, the old version is still served), and every byte is hashed
against the recorded chunk ids and digest before a caller sees it: bytes that
changed between a size check and the read never reach the user. Credentials
come only from the SDKs' own chains; nothing about them is recorded.
"""

from __future__ import annotations

import threading
from typing import BinaryIO, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from datactl.core.closing import Closing
from datactl.core.errors import SourceChangedError, UsageError
from datactl.core.ids import new_hasher, object_id
from datactl.format.external import ExternalSource
from datactl.format.objects import TreeEntry
from datactl.store.backend import open_source_backend
from storage_backends import Backend, KeyNotFound, ShortRead, SourceChanged, SourceObject, supported_schemes, url_scheme

READ_BLOCK = 1 << 20


def split_source_url(url: str) -> tuple[str, str]:
    """(the backend root, the key in it) of a source URL: ``s3://bucket/a/b`` -> (``s3://bucket``, ``a/b``)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "file:///", parts.path.lstrip("/")
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def join_source_url(root: str, key: str) -> str:
    """The URL of ``key`` under a backend root from ``split_source_url``."""
    return f"{root}{key}" if root.endswith("/") else f"{root}/{key}"


def source_error(where: str, url: str, why: str, path: str | None = None) -> SourceChangedError:
    """The one line a user reads when an external file's source no longer holds the recorded bytes.

    ``where`` names the file in the message (``PATH in v1 (...)``); the hint names ``path`` alone (default:
    ``where``), as ``datactl update`` takes it.
    """
    return SourceChangedError(
        f"{where}: its source {url} {why}",
        f"run `datactl update {path or where}` and commit to record the source's new content as a new version, or restore the source object",
    )


class SourceBackends(Closing):
    """The backends of the sources one command reads, opened once per bucket or host. Thread-safe."""

    def __init__(self) -> None:
        self._open: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def locate(self, url: str) -> tuple[Backend, str]:
        """(backend, key) of the object at ``url``."""
        root, key = split_source_url(url)
        with self._lock:
            backend = self._open.get(root)
            if backend is None:
                if url_scheme(root) not in supported_schemes():
                    raise UsageError(f"cannot read {url}: no storage backend for {url_scheme(root)}:// here", "install the backend for that scheme, or record the object with another URL")
                backend = self._open[root] = open_source_backend(root)
        return backend, key

    def stat(self, url: str) -> SourceObject | None:
        """What the object at ``url`` is now, or None when it is gone."""
        backend, key = self.locate(url)
        try:
            return backend.stat(key)
        except KeyNotFound:
            return None

    def close(self) -> None:
        self._open.clear()


def source_moved(sources: SourceBackends, entry: TreeEntry) -> str | None:
    """Why ``entry``'s source no longer holds the recorded object, by a stat (size, version, ETag), or None."""
    assert entry.source is not None
    now = sources.stat(entry.source.url)
    if now is None:
        return "is gone"
    seen = ExternalSource(entry.source.url, now.etag, now.version, now.modified)
    if now.size != entry.size or not entry.source.same_object(seen):
        return "changed since it was recorded (size, version or ETag differs)"
    return None


def _pin(entry: TreeEntry) -> tuple[str | None, str | None]:
    """(version, etag) a read of ``entry`` pins to: the version when the provider keeps one, else the ETag."""
    src = entry.source
    assert src is not None
    return src.version, (src.etag if src.version is None else None)


def open_pinned(sources: SourceBackends, entry: TreeEntry, where: str) -> BinaryIO:
    """A stream of the recorded object; a clear error when it is gone or changed."""
    assert entry.source is not None
    backend, key = sources.locate(entry.source.url)
    version, etag = _pin(entry)
    try:
        return backend.open_read_at(key, version, etag)
    except KeyNotFound:
        raise source_error(where, entry.source.url, "is gone") from None
    except SourceChanged:
        raise source_error(where, entry.source.url, "changed since this version was recorded") from None


def iter_source_bytes(sources: SourceBackends, entry: TreeEntry, where: str) -> Iterator[bytes]:
    """An external file's bytes from its source, the last piece held back until size and digest are checked."""
    assert entry.source is not None
    url = entry.source.url
    whole = new_hasher()
    size = 0
    pending: bytes | None = None
    try:
        with open_pinned(sources, entry, where) as stream:
            while data := stream.read(READ_BLOCK):
                if pending is not None:
                    yield pending
                whole.update(data)
                size += len(data)
                if size > entry.size:
                    break
                pending = data
    except SourceChanged:
        raise source_error(where, url, "changed while it was read") from None
    if size != entry.size or whole.hexdigest() != entry.digest:
        raise source_error(where, url, "no longer holds the recorded bytes (its digest differs)")
    if pending is not None:
        yield pending


class SourceChunks:
    """A ``ChunkSource`` over one external file: ranged reads of its source, each chunk hashed against its id.

    ``where`` names the file in errors, ``path`` in their hint (as for ``source_error``).
    """

    def __init__(self, sources: SourceBackends, entry: TreeEntry, where: str, path: str | None = None) -> None:
        assert entry.source is not None
        self._sources = sources
        self._entry = entry
        self._where = where
        self._path = path
        self._span: dict[str, tuple[int, int]] = {}  # chunk id -> (offset, size) of its first occurrence
        offset = 0
        for cid, n in zip(entry.chunks, entry.chunk_sizes):
            self._span.setdefault(cid, (offset, n))
            offset += n
        self._last: dict[str, bytes] = {}

    def chunk_ids(self, entry: TreeEntry) -> Sequence[str]:
        return entry.chunks

    def raw_size(self, oid: str) -> int:
        return self._span[oid][1]

    def cached(self, oid: str) -> bytes | None:
        return self._last.get(oid)

    def fetch(self, oids: Sequence[str]) -> Mapping[str, bytes]:
        """The chunks of ``oids``, adjacent ones read in one ranged request."""
        src = self._entry.source
        assert src is not None
        backend, key = self._sources.locate(src.url)
        version, etag = _pin(self._entry)
        spans = sorted({self._span[o] for o in oids})
        runs: list[list[tuple[int, int]]] = []
        for span in spans:
            if runs and runs[-1][-1][0] + runs[-1][-1][1] == span[0]:
                runs[-1].append(span)
            else:
                runs.append([span])
        got: dict[str, bytes] = {}
        for run in runs:
            start = run[0][0]
            try:
                data = backend.get_range_at(key, start, sum(n for _, n in run), version, etag)
            except KeyNotFound:
                raise source_error(self._where, src.url, "is gone", self._path) from None
            except (SourceChanged, ShortRead):
                raise source_error(self._where, src.url, "changed since this version was recorded", self._path) from None
            for offset, n in run:
                raw = data[offset - start : offset - start + n]
                oid = object_id(raw)
                if self._span.get(oid) != (offset, n):
                    raise source_error(self._where, src.url, "no longer holds the recorded bytes (a chunk's hash differs)", self._path)
                got[oid] = raw
        self._last = got
        return got
