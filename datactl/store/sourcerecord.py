"""Recording external files: which objects a URL, prefix or glob names, and each one's digest and chunk ids.

Each object is streamed once, pinned to the version its source reported
(S3 VersionId or ETag, GCS generation), through the store's own chunker
(``filedata.chunk_stream``), so an external file has the same digest and chunk
ids as the same bytes stored: dedup, diff, renames and verification treat it
like any file. Objects are read by a few threads at once, each through the
chunker's bounded buffer: memory stays bounded whatever the objects' sizes
and number. Nothing is stored; ``keep`` may tee the bytes somewhere (a
workspace's copy of the file).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator
from urllib.parse import urlsplit

from datactl.core.errors import SourceChangedError, StoreUnreachable, UsageError
from datactl.core.parallel import parallel_map
from datactl.core.safepath import check_rel_path
from datactl.format.external import ExternalSource, check_source_url
from datactl.format.objects import FILE, TreeEntry
from datactl.format.storeconfig import ChunkerParams
from datactl.store.chunker import Chunker
from datactl.store.filedata import chunk_stream
from datactl.store.sourceread import SourceBackends, join_source_url, split_source_url
from storage_backends import KeyNotFound, SourceChanged, SourceObject

GLOB_CHARS = "*?["
READ_ATTEMPTS = 3
SOURCE_JOBS = 16  # objects read at once: requests wait on the network far more than on the chunker
EXTERNAL_MODE = 0o644
# Schemes whose stores can list a prefix; an https:// source is one object per URL.
LISTABLE = ("s3", "gs", "az", "azure", "file")


@dataclass(frozen=True)
class SourceFile:
    """One object a URL named: its URL and its path relative to what was named ('/'-separated)."""

    url: str
    rel: str


def source_url(url_or_path: str) -> str:
    """A URL as a version records it: a local path becomes ``file:///abs/path``; refused URLs raise UsageError."""
    if "://" not in url_or_path:
        url_or_path = "file://" + os.path.abspath(url_or_path) + ("/" if url_or_path.endswith("/") else "")
    probe = url_or_path + "x" if _is_prefix(url_or_path) else url_or_path  # a prefix is checked as the objects under it
    try:
        check_source_url(probe)
    except ValueError as exc:
        raise UsageError(
            f"cannot record {_safe(url_or_path)} as an external file: {exc}",
            "give a plain object URL, prefix or glob (s3://bucket/key, gs://bucket/prefix/, https://host/path); credentials come from the SDK's usual chain",
        ) from None
    return url_or_path


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.scheme else url


def _is_prefix(url: str) -> bool:
    return url.endswith("/")


def list_sources(sources: SourceBackends, url: str) -> list[SourceFile]:
    """The objects ``url`` names: one object, every object under a prefix (``s3://b/raw/``), or those matching a glob."""
    url = source_url(url)
    scheme = urlsplit(url).scheme
    root, key = split_source_url(url)
    glob = next((i for i, c in enumerate(key) if c in GLOB_CHARS), None)
    if scheme not in LISTABLE:
        if glob is not None or _is_prefix(url):
            raise UsageError(f"{url}: {scheme}:// sources cannot be listed", "name each object by its own URL")
        return [SourceFile(url, key.rsplit("/", 1)[-1])]
    backend, _ = sources.locate(url)
    if glob is None and not _is_prefix(url):
        try:
            backend.stat(key)
            return [SourceFile(url, key.rsplit("/", 1)[-1])]
        except KeyNotFound:
            prefix = key + "/"  # a folder named without its trailing slash
    elif glob is None:
        prefix = key
    else:
        prefix = key[: key.rfind("/", 0, glob) + 1]
    found = []
    for info in backend.list(prefix):
        if info.key.endswith("/") or (glob is not None and not fnmatch.fnmatchcase(info.key, key)):
            continue
        found.append(SourceFile(join_source_url(root, info.key), info.key[len(prefix) :]))
    if not found:
        raise UsageError(f"{url} did not match any object", "check the bucket, prefix or pattern (and that the credentials may list it)")
    return found


def source_targets(sources: SourceBackends, urls: Iterable[str], dest: str) -> list[tuple[str, str]]:
    """(url, path in the version) of every object the URLs name, placed under the folder ``dest``."""
    out: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for url in urls:
        for sf in list_sources(sources, url):
            target = check_rel_path(f"{dest}/{sf.rel}" if dest else sf.rel)  # refuses .datactl and escapes
            if seen.setdefault(target, sf.url) != sf.url:
                raise UsageError(f"{seen[target]} and {sf.url} would both become {target}", "add them under different destination folders")
            out.append((sf.url, target))
    return out


def external_entry(name: str, obj: SourceObject, url: str, size: int, digest: str, chunks: tuple[str, ...], sizes: tuple[int, ...]) -> TreeEntry:
    source = ExternalSource(url, obj.etag, obj.version, obj.modified)
    return TreeEntry(name, FILE, EXTERNAL_MODE, size, digest, chunks, None, None, source, sizes)


def record_source(sources: SourceBackends, params: ChunkerParams, url: str, name: str, sink: Callable[[], BinaryIO] | None = None) -> TreeEntry:
    """The external entry of the object at ``url`` as it is now: one streaming read pinned to what it is.

    ``sink()`` opens a fresh file the bytes are copied to as they stream by (again if a dropped connection
    makes the read start over).
    """
    for attempt in range(READ_ATTEMPTS):
        try:
            return _record_once(sources, params, url, name, sink)
        except StoreUnreachable:  # a connection dropped mid-body: only opening a stream is retried below us
            if attempt == READ_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


def _record_once(sources: SourceBackends, params: ChunkerParams, url: str, name: str, sink: Callable[[], BinaryIO] | None) -> TreeEntry:
    backend, key = sources.locate(url)
    try:
        obj, stream = backend.open_read_current(key)
        with stream:
            with sink() if sink is not None else contextlib.nullcontext() as out:
                read = chunk_stream(Chunker(params), stream, None if out is None else lambda _oid, raw: out.write(raw))
    except KeyNotFound:
        raise UsageError(f"{url} does not exist (or vanished while it was recorded)") from None
    except SourceChanged:
        read = None
    if read is None or read.size != obj.size:
        raise SourceChangedError(f"{url} changed while it was recorded", "run the command again once the object stops changing")
    return external_entry(name, obj, url, read.size, read.digest, read.chunk_ids(), read.sizes)


def record_sources(
    sources: SourceBackends,
    params: ChunkerParams,
    files: Iterable[tuple[str, str]],
    jobs: int,
    record: Callable[[str, str], TreeEntry] | None = None,
) -> Iterator[tuple[str, TreeEntry]]:
    """(target path, entry) of each (url, target path), recorded ``jobs`` at a time, in the order given.

    ``record(url, target)`` replaces the plain ``record_source`` (a workspace tees the bytes to its file).
    """
    def one(item: tuple[str, str]) -> tuple[str, TreeEntry]:
        url, target = item
        name = target.rsplit("/", 1)[-1]
        return target, (record(url, target) if record is not None else record_source(sources, params, url, name))

    # parallel_map takes the items as it goes: a million objects cost a million small entries, not futures.
    yield from parallel_map(one, files, jobs, "datactl-source")
