"""The lineage index: which version derives from which, readable without reading commits.

A commit names its parents and inputs, so "what does X derive from" can be
walked from commits; "what derives from X" cannot (the edges point the other
way), and walking every commit of a large store to find out is what this
index avoids. It lives in the store itself, next to the refs::

    lineage/HEAD          {"format": 1, "segments": [[id, nodes], ...]}; moved only by compare-and-swap
    lineage/seg/<id>      immutable segments, named by the xxh3-128 of their bytes (zstd JSON)

A segment lists commit *nodes* (id, kind, name, time, tags, parents, inputs,
author, first line of the message) and tag records ``(commit, name, tag)``.
The index is the union of the segments HEAD lists: an append-only log that a
writer extends by

1. writing its segment (content-addressed, so writing it twice is harmless),
2. compare-and-swapping HEAD from the list it read to that list plus its
   segment, and on failure re-reading HEAD and appending again. A writer
   only ever adds to the list it read, so no other writer's segment is lost.

When HEAD lists more than ``MAX_SEGMENTS`` segments, the writer that notices
merges them into one (same loop, same compare-and-swap). Superseded segments
are deleted only after ``SEGMENT_GRACE`` seconds, so a slow reader still
finds them.

Pushes record their commits *after* their ref moved, so the index never
names an unpublished version. A writer that dies between the two leaves a ref
ahead of the index; every writer and every query therefore re-reads the refs
changed since shortly before the index's last update (``REF_CHECK_MARGIN``,
compared with server-side modification times only) and adds what the index
misses. ``rebuild`` recreates the whole index from the commits.

Nodes recorded from the writer's own copy of an input that the store does not
hold are flagged ``external``: their name and time are known, their own
history is not (another store has it). A full node always replaces an
external one when indexes are merged.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import zstandard

from datactl.core.errors import CorruptObject, DatactlError, ObjectMissing, RefConflict, StoreFormatError
from datactl.core.ids import is_object_id, object_id
from datactl.format.objects import KINDS, Commit, decode_commit
from datactl.format.pack import ObjectType
from datactl.store.refs import RefStore
from storage_backends import Backend, KeyNotFound, Versioned

HEAD_KEY = "lineage/HEAD"
SEG_PREFIX = "lineage/seg/"
FORMAT = 1
MAX_SEGMENTS = 16
# Refs modified later than (index HEAD's modification time - this) are re-read and checked. It must
# exceed the time from a writer's listing of the refs to its swap of HEAD; a writer that takes more
# than half of it checks the refs again before swapping.
REF_CHECK_MARGIN = 120.0
# Superseded segments younger than this (relative to HEAD's modification time) are kept.
SEGMENT_GRACE = 3600.0
MAX_CAS_ATTEMPTS = 200
MESSAGE_CHARS = 200

_log = logging.getLogger("datactl.lineage.query")


# -- nodes and views -----------------------------------------------------------------------


_HEX_RUN = re.compile(r"[0-9a-f]*")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class Node(NamedTuple):
    """One version as the index knows it."""

    id: str
    kind: str
    name: str
    time: str
    tags: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    author: str = ""
    message: str = ""
    external: bool = False

    @classmethod
    def from_commit(cls, cid: str, c: Commit, external: bool = False) -> "Node":
        first = c.message.splitlines()[0] if c.message else ""
        return cls(
            id=cid,
            kind=c.kind,
            name=c.name,
            time=c.time,
            tags=tuple(c.tags),
            parents=() if external else tuple(c.parents),
            inputs=() if external else tuple(c.inputs),
            author=c.author,
            message=first[:MESSAGE_CHARS],
            external=external,
        )

    def to_row(self) -> list:
        return [self.id, self.kind, self.name, self.time, list(self.tags), list(self.parents), list(self.inputs),
                self.author, self.message, 1 if self.external else 0]

    @classmethod
    def from_row(cls, row: list) -> "Node":
        cid, kind, name, when, tags, parents, inputs, author, message, external = row
        ids = [cid, *parents, *inputs]
        # Checked because a store is input: ids are 32 hex digits, names and tags what check_name allows.
        if any(type(i) is not str or len(i) != 32 for i in ids) or not _HEX_RUN.fullmatch("".join(ids)):
            raise ValueError("bad commit id")
        if kind not in KINDS or not _NAME.fullmatch(name) or not all(type(t) is str and _NAME.fullmatch(t) for t in tags):
            raise ValueError(f"bad kind, name or tag in node {cid}")
        return cls(cid, kind, name, str(when), tuple(tags), tuple(parents), tuple(inputs), str(author), str(message), bool(external))


@dataclass(frozen=True)
class TagRecord:
    commit: str
    name: str
    tag: str


class LineageView:
    """The index in memory: nodes by id, tags, and (built on demand) the reverse edges."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        # (name, tag) -> commit; a later record (in HEAD's order) replaces an earlier one: tags can move.
        self.tag_map: dict[tuple[str, str], str] = {}
        self._children: dict[str, list[tuple[str, str]]] | None = None
        self._by_commit: dict[str, list[TagRecord]] | None = None
        # Commits that refs name but that could not be read (no way to read commits, or missing).
        self.unresolved: set[str] = set()

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, cid: object) -> bool:
        return cid in self.nodes

    def knows(self, cid: str) -> bool:
        """Whether ``cid`` is indexed with its full history (not only as an external input)."""
        n = self.nodes.get(cid)
        return n is not None and not n.external

    def add(self, node: Node) -> bool:
        """Add a node; a full record replaces an external one. Returns whether the view changed."""
        old = self.nodes.get(node.id)
        if old is not None and (node.external or not old.external):
            return False
        self.nodes[node.id] = node
        self._children = None
        return True

    @property
    def tag_records(self) -> set[TagRecord]:
        return {TagRecord(c, n, t) for (n, t), c in self.tag_map.items()}

    def has_tag(self, record: TagRecord) -> bool:
        return self.tag_map.get((record.name, record.tag)) == record.commit

    def add_tag(self, record: TagRecord) -> bool:
        if self.has_tag(record):
            return False
        self.tag_map[(record.name, record.tag)] = record.commit
        self._by_commit = None
        return True

    def update(self, other: "LineageView") -> None:
        for n in other.nodes.values():
            self.add(n)
        for key, commit in other.tag_map.items():
            self.tag_map.setdefault(key, commit)  # stores are independent: the first one asked wins
        self._by_commit = None
        self.unresolved |= other.unresolved
        self.unresolved -= {c for c in self.unresolved if self.knows(c)}

    def tags_of(self, cid: str) -> list[str]:
        """Tags naming ``cid``: recorded tag refs, and the tags it was committed with unless that tag moved since."""
        node = self.nodes.get(cid)
        tags = {t for t in node.tags if self.tag_map.get((node.name, t), cid) == cid} if node else set()
        tags.update(r.tag for r in self._tags_by_commit().get(cid, ()))
        return sorted(tags)

    def _tags_by_commit(self) -> dict[str, list[TagRecord]]:
        if self._by_commit is None:
            out: dict[str, list[TagRecord]] = {}
            for (n, t), c in self.tag_map.items():
                out.setdefault(c, []).append(TagRecord(c, n, t))
            self._by_commit = out
        return self._by_commit

    def tagged(self, name: str, tag: str) -> list[str]:
        """Commits of ``name`` carrying ``tag`` (from tag refs, or the tags a commit was made with)."""
        if (name, tag) in self.tag_map:
            return [self.tag_map[(name, tag)]]  # the tag ref as last recorded
        return sorted(n.id for n in self.nodes.values() if n.name == name and tag in n.tags)

    def children(self) -> dict[str, list[tuple[str, str]]]:
        """Reverse edges: commit -> [(child, "parent" | "input")], in a stable order."""
        if self._children is None:
            rev: dict[str, list[tuple[str, str]]] = {}
            for n in self.nodes.values():
                for p in n.parents:
                    rev.setdefault(p, []).append((n.id, "parent"))
                for i in n.inputs:
                    rev.setdefault(i, []).append((n.id, "input"))
            for lst in rev.values():
                lst.sort()
            self._children = rev
        return self._children


# -- segments and HEAD -----------------------------------------------------------------------


def encode_segment(nodes: Iterable[Node], tags: Iterable[TagRecord]) -> bytes:
    doc = {
        "format": FORMAT,
        "nodes": [n.to_row() for n in sorted(nodes, key=lambda n: n.id)],
        "tags": sorted([t.commit, t.name, t.tag] for t in tags),
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return zstandard.ZstdCompressor(level=10).compress(raw)


def decode_segment(seg_id: str, data: bytes) -> tuple[list[Node], list[TagRecord]]:
    if object_id(data) != seg_id:
        raise CorruptObject(
            f"lineage index segment {seg_id} is corrupt (its bytes do not hash to its id)",
            "rebuild the index with `datactl lineage --rebuild-index`",
        )
    try:
        doc = json.loads(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31))
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown format {doc.get('format')!r}")
        nodes = [Node.from_row(r) for r in doc["nodes"]]
        tags = [TagRecord(str(c), str(n), str(t)) for c, n, t in doc["tags"]]
        return nodes, tags
    except (ValueError, KeyError, TypeError, zstandard.ZstdError) as exc:
        raise CorruptObject(
            f"lineage index segment {seg_id} is unreadable: {exc}", "rebuild the index with `datactl lineage --rebuild-index`"
        ) from None


def encode_head(segments: Sequence[tuple[str, int]]) -> bytes:
    return json.dumps({"format": FORMAT, "segments": [[s, n] for s, n in segments]}, separators=(",", ":")).encode() + b"\n"


def decode_head(data: bytes, url: str) -> list[tuple[str, int]]:
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown format {doc.get('format')!r}")
        segs = [(str(s), int(n)) for s, n in doc["segments"]]
        if not all(is_object_id(s) for s, _ in segs):
            raise ValueError("bad segment id")
        return segs
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreFormatError(
            f"{HEAD_KEY} in {url} is damaged: {exc}", "rebuild the index with `datactl lineage --rebuild-index`"
        ) from None


# -- reading commits -------------------------------------------------------------------------


class CommitSource:
    """Reads commit objects of one store (only needed to catch up or rebuild the index)."""

    commits_read = 0

    def has(self, cid: str) -> bool:
        raise NotImplementedError

    def read_commits(self, ids: Sequence[str]) -> dict[str, Commit]:
        """The commits among ``ids`` that the store holds, read in as few requests as it can."""
        raise NotImplementedError

    def all_commit_ids(self) -> Iterable[str]:
        raise NotImplementedError


class RepositorySource(CommitSource):
    """Commits of a local Repository (a workspace's store, a cache store)."""

    def __init__(self, repo) -> None:  # repo: datactl.repository.Repository (or anything with has/read_many/index)
        self.repo = repo
        self.commits_read = 0

    def has(self, cid: str) -> bool:
        return self.repo.has(cid)

    def read_commits(self, ids: Sequence[str]) -> dict[str, Commit]:
        present = [c for c in dict.fromkeys(ids) if self.repo.has(c)]
        out = {}
        for cid, raw in zip(present, self.repo.read_many(present)):
            out[cid] = decode_commit(cid, raw)
        self.commits_read += len(out)
        return out

    def all_commit_ids(self) -> Iterable[str]:
        return list(self.repo.index.iter_ids(ObjectType.COMMIT))


class RemoteSource(CommitSource):
    """Commits of a remote store, fetched by coalesced ranged reads of its packs."""

    def __init__(self, rs, jobs: int = 8) -> None:  # rs: datactl.remote.RemoteStore
        self.rs = rs
        self.jobs = jobs
        self.commits_read = 0
        self._synced = False

    def _sync(self, force: bool = False) -> None:
        if force or not self._synced:
            self.rs.sync_index()
            self._synced = True

    def has(self, cid: str) -> bool:
        self._sync()
        return self.rs.index.has(cid)

    def read_commits(self, ids: Sequence[str]) -> dict[str, Commit]:
        from datactl.remote.transfer import _coalesce  # local: transfer imports more than the index needs
        from datactl.format.pack import pack_key
        from datactl.store.repository import verify_stored

        self._sync()
        ids = list(dict.fromkeys(ids))
        locs = [self.rs.index.lookup(c) for c in ids]
        if any(loc is None for loc in locs) and self._synced:
            self._sync(force=True)  # written since we last looked
            locs = [self.rs.index.lookup(c) for c in ids]
        wanted = [loc for loc in locs if loc is not None]
        out: dict[str, Commit] = {}

        def fetch(r) -> list[tuple[str, bytes]]:
            where = f"pack {r.pack} on {self.rs.url}"
            try:
                blob = self.rs.backend.get_range(pack_key(r.pack), r.start, r.end - r.start)
            except KeyNotFound:
                raise ObjectMissing(f"{where} is missing", "run `datactl fsck` against the store") from None
            got = []
            for e in r.objects:
                stored = blob[e.offset - r.start : e.offset - r.start + e.stored_len]
                got.append((e.id, verify_stored(e.id, e, stored, where)))
            return got

        ranges = _coalesce(wanted)
        if len(ranges) <= 1:
            results = [fetch(r) for r in ranges]
        else:
            with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="datactl-lineage") as pool:
                results = list(pool.map(fetch, ranges))
        for got in results:
            for cid, raw in got:
                out[cid] = decode_commit(cid, raw)
        self.commits_read += len(out)
        return out

    def all_commit_ids(self) -> Iterable[str]:
        self._sync(force=True)
        return list(self.rs.index.iter_ids(ObjectType.COMMIT))


# -- the index of one store ------------------------------------------------------------------


@dataclass
class IndexStats:
    """What a query or an update cost: objects read from the store."""

    index_objects_read: int = 0  # HEAD + segments fetched from the store
    segments: int = 0  # segments HEAD lists
    lists: int = 0  # LIST requests (refs/, lineage/)
    refs_read: int = 0
    commits_read: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class UpdateResult:
    segment: str | None = None  # None: the index already had everything
    nodes: int = 0
    tags: int = 0
    compacted: bool = False
    attempts: int = 0


class LineageIndex:
    """The lineage index of one store (a local folder or a bucket prefix)."""

    def __init__(self, backend: Backend, source: CommitSource | None = None, cache_dir: str | None = None) -> None:
        self.backend = backend
        self.source = source
        self.refs = RefStore(backend)
        self.cache_dir = cache_dir
        self.stats = IndexStats()
        self._parsed: dict[str, tuple[list[Node], list[TagRecord]]] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.backend.url

    # -- reading ---------------------------------------------------------------------

    def read_head(self) -> tuple[Versioned | None, list[tuple[str, int]]]:
        v = self.backend.get_versioned(HEAD_KEY)
        self.stats.index_objects_read += 1
        if v is None:
            return None, []
        return v, decode_head(v.data, self.url)

    def _cache_path(self, seg_id: str) -> str | None:
        return os.path.join(self.cache_dir, seg_id) if self.cache_dir else None

    def _segment(self, seg_id: str) -> tuple[list[Node], list[TagRecord]]:
        with self._lock:
            hit = self._parsed.get(seg_id)
        if hit is not None:
            return hit
        data = None
        path = self._cache_path(seg_id)
        if path is not None:
            try:
                with open(path, "rb") as f:
                    data = f.read()
                if object_id(data) != seg_id:
                    data = None
            except OSError:
                data = None
        if data is None:
            try:
                data = self.backend.get(SEG_PREFIX + seg_id)
            except KeyNotFound:
                raise CorruptObject(
                    f"lineage index segment {seg_id} listed in {HEAD_KEY} is missing from {self.url}",
                    "rebuild the index with `datactl lineage --rebuild-index`",
                ) from None
            with self._lock:
                self.stats.index_objects_read += 1
            if path is not None:
                _write_cache(path, data)
        parsed = decode_segment(seg_id, data)
        with self._lock:
            self._parsed[seg_id] = parsed
        return parsed

    def _load_segments(self, segs: Sequence[tuple[str, int]]) -> LineageView:
        view = LineageView()
        ids = [s for s, _ in segs]
        if len(ids) > 2:
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="datactl-lineage") as pool:
                parsed = list(pool.map(self._segment, ids))
        else:
            parsed = [self._segment(s) for s in ids]
        for nodes, tags in parsed:  # in HEAD's order, oldest first
            for n in nodes:
                view.add(n)
            for t in tags:
                view.add_tag(t)
        return view

    def _head_mtime(self) -> float | None:
        self.stats.lists += 1
        for info in self.backend.list("lineage/"):
            if info.key == HEAD_KEY:
                return info.mtime
        return None

    def load(self, check_refs: bool = True) -> LineageView:
        """The index as a view; with ``check_refs``, plus whatever recently moved refs name that it lacks."""
        head_mtime = self._head_mtime() if check_refs else None
        _, segs = self.read_head()
        self.stats.segments = len(segs)
        view = self._load_segments(segs)
        if check_refs:
            nodes, tags, unresolved = self._catch_up(view, head_mtime if segs else None)
            for n in nodes:
                view.add(n)
            for t in tags:
                view.add_tag(t)
            view.unresolved = unresolved
        return view

    # -- catching up with the refs ------------------------------------------------------

    def _suspect_refs(self, head_mtime: float | None) -> list[str]:
        """Refs that may name commits the index lacks: all of them if there is no index yet."""
        threshold = None if head_mtime is None else head_mtime - REF_CHECK_MARGIN
        self.stats.lists += 1
        out = []
        for info in self.backend.list("refs/"):
            if threshold is None or info.mtime >= threshold:
                out.append(info.key[len("refs/") :])
        return out

    def _read_refs(self, refs: Sequence[str]) -> dict[str, str]:
        def get(ref: str) -> tuple[str, str | None]:
            try:
                return ref, self.refs.get(ref)
            except StoreFormatError:
                return ref, None  # a damaged ref names nothing we can index

        if len(refs) > 4:
            with ThreadPoolExecutor(max_workers=16, thread_name_prefix="datactl-refs") as pool:
                pairs = list(pool.map(get, refs))
        else:
            pairs = [get(r) for r in refs]
        self.stats.refs_read += len(refs)
        return {r: c for r, c in pairs if c is not None}

    def _catch_up(self, view: LineageView, head_mtime: float | None) -> tuple[list[Node], list[TagRecord], set[str]]:
        refs = self._read_refs(self._suspect_refs(head_mtime))
        tags = []
        roots = []
        for ref, cid in sorted(refs.items()):
            parts = ref.split("/")
            if parts[0] == "tags" and len(parts) == 3:
                rec = TagRecord(cid, parts[1], parts[2])
                if not view.has_tag(rec):
                    tags.append(rec)
            if not view.knows(cid):
                roots.append(cid)
        source = self.source
        if head_mtime is None and len(view) == 0 and source is not None and roots:
            # No index yet (a store written before it existed): read every commit in one batch, not level by level.
            source = _Prefetched(source)
        nodes, unresolved = self.walk_missing(view, roots, source)
        return nodes, tags, unresolved

    def walk_missing(self, view: LineageView, roots: Iterable[str], source: CommitSource | None) -> tuple[list[Node], set[str]]:
        """Nodes for ``roots`` and the history they reach that ``view`` does not know, read from ``source``.

        History is followed through parents. An input is not followed: if the
        view does not know it, it becomes an *external* node (what the source
        knows of it; its own history belongs to its dataset, which a ref
        reaches, here or in another store). Returns the nodes and the roots
        or parents that could not be read.
        """
        found: dict[str, Node] = {}
        missing: set[str] = set()
        level = [c for c in dict.fromkeys(roots) if not view.knows(c)]
        if source is None:
            return [], set(level)
        before = source.commits_read
        inputs: set[str] = set()
        while level:
            got = source.read_commits(level)
            nxt = []
            for cid in level:
                c = got.get(cid)
                if c is None:
                    missing.add(cid)
                    continue
                found[cid] = Node.from_commit(cid, c)
                nxt.extend(c.parents)
                inputs.update(c.inputs)
            level = [x for x in dict.fromkeys(nxt) if x not in found and x not in missing and not view.knows(x)]
        outside = sorted(i for i in inputs if i not in found and i not in view)
        if outside:
            for cid, c in source.read_commits(outside).items():
                found[cid] = Node.from_commit(cid, c, external=True)
        self.stats.commits_read += source.commits_read - before
        return list(found.values()), missing

    # -- writing -----------------------------------------------------------------------------

    def record(
        self,
        commits: Iterable[str],
        local: CommitSource | None = None,
        tags: Iterable[TagRecord] = (),
    ) -> UpdateResult:
        """Add ``commits`` (just published, so their refs already moved) and all they reach to the index.

        ``local`` reads them (the writer's own repository; default: the
        store's). Inputs the store does not hold are recorded as external
        nodes when ``local`` has them. Refs that moved since shortly before
        the index's last update are checked too, so a writer that died
        between its ref and its index update is made good here.
        """
        local = local or self.source
        commits = list(commits)
        tags = list(tags)
        for _ in range(3):
            result = self._record_once(commits, local, tags)
            if result is not None:
                return result
        raise RefConflict(
            f"{HEAD_KEY} in {self.url} kept moving; the lineage index was not updated",
            "the versions are published; run `datactl lineage --rebuild-index` later to index them",
        )

    def _record_once(self, commits: list[str], local: CommitSource | None, tags: list[TagRecord]) -> UpdateResult | None:
        current, segs = self.read_head()
        view = self._load_segments(segs)
        new = LineageView()
        if local is not None:
            nodes, _ = self.walk_missing(view, commits, local)
            for n in nodes:
                new.add(n)
        # From here to the swap of HEAD must stay well inside REF_CHECK_MARGIN. HEAD's time is listed
        # before the refs: every ref that moved before its last update is in the HEAD we append to.
        started = time.monotonic()
        head_mtime = self._head_mtime()
        catch_nodes, catch_tags, _ = self._catch_up(_Overlay(view, new), head_mtime)
        for n in catch_nodes:
            new.add(n)
        for t in [*tags, *catch_tags]:
            if not view.has_tag(t):
                new.add_tag(t)
        if not new.nodes and not new.tag_records:
            return UpdateResult()
        return self.append(
            list(new.nodes.values()), new.tag_records, head=(current, segs), deadline=started + REF_CHECK_MARGIN / 2
        )

    def append(
        self,
        nodes: Sequence[Node],
        tags: Iterable[TagRecord] = (),
        *,
        head: tuple[Versioned | None, list[tuple[str, int]]] | None = None,
        deadline: float | None = None,
    ) -> UpdateResult | None:
        """Write a segment and add it to HEAD by compare-and-swap (compacting when HEAD grows long).

        ``head`` is HEAD as just read (saves reading it for the first try).
        Past ``deadline`` (time.monotonic) nothing is swapped and None is
        returned: the caller's look at the refs is too old to rely on.
        """
        tags = list(tags)
        data = encode_segment(nodes, tags)
        seg_id = object_id(data)
        fresh = self._store_segment(seg_id, data)
        with self._lock:
            self._parsed[seg_id] = (list(nodes), tags)
        result = UpdateResult(seg_id, len(nodes), len(tags))
        for attempt in range(1, MAX_CAS_ATTEMPTS + 1):
            result.attempts = attempt
            if deadline is not None and time.monotonic() > deadline:
                return None
            current, segs = head if head is not None else self.read_head()
            head = None
            if any(s == seg_id for s, _ in segs):
                break
            new_segs = [*segs, (seg_id, len(nodes))]
            compacted = False
            if len(new_segs) > MAX_SEGMENTS:
                new_segs = [self._compact(new_segs)]
                compacted = True
            if self.backend.compare_and_swap(HEAD_KEY, encode_head(new_segs), current):
                result.compacted = compacted
                break
            time.sleep(random.uniform(0, min(0.2, 0.002 * attempt)))
        else:
            raise RefConflict(
                f"{HEAD_KEY} in {self.url} kept moving; the lineage index was not updated",
                "the versions are published; run `datactl lineage --rebuild-index` later to index them",
            )
        # An old segment (one already there) may have been deleted as superseded meanwhile: HEAD must not name nothing.
        if not fresh and not self.backend.exists(SEG_PREFIX + seg_id):
            self._store_segment(seg_id, data)
        if result.compacted:
            self._delete_superseded()
        return result

    def _store_segment(self, seg_id: str, data: bytes) -> bool:
        """Write a segment; one already there under that name is kept only if it is intact. True: newly written."""
        key = SEG_PREFIX + seg_id
        if self.backend.put_if_absent(key, data):
            return True
        try:
            intact = object_id(self.backend.get(key)) == seg_id
        except KeyNotFound:
            intact = False
        if not intact:
            self.backend.put_bytes(key, data)
        return not intact

    def _compact(self, segs: Sequence[tuple[str, int]]) -> tuple[str, int]:
        view = self._load_segments(segs)
        data = encode_segment(view.nodes.values(), view.tag_records)
        seg_id = object_id(data)
        self._store_segment(seg_id, data)
        with self._lock:
            self._parsed[seg_id] = (list(view.nodes.values()), list(view.tag_records))
        return seg_id, len(view.nodes)

    def compact(self) -> UpdateResult:
        """Merge every segment HEAD lists into one."""
        for attempt in range(1, MAX_CAS_ATTEMPTS + 1):
            current, segs = self.read_head()
            if len(segs) <= 1:
                return UpdateResult(segs[0][0] if segs else None, segs[0][1] if segs else 0, attempts=attempt)
            merged = self._compact(segs)
            if self.backend.compare_and_swap(HEAD_KEY, encode_head([merged]), current):
                self._delete_superseded()
                return UpdateResult(merged[0], merged[1], compacted=True, attempts=attempt)
            time.sleep(random.uniform(0, 0.01))
        raise RefConflict(f"{HEAD_KEY} in {self.url} kept moving; try again")

    def _delete_superseded(self) -> int:
        """Delete segments HEAD no longer lists and that are old enough that no reader still wants them."""
        head_mtime = None
        seg_infos = []
        for info in self.backend.list("lineage/"):
            if info.key == HEAD_KEY:
                head_mtime = info.mtime
            elif info.key.startswith(SEG_PREFIX):
                seg_infos.append(info)
        if head_mtime is None:
            return 0
        _, segs = self.read_head()
        live = {s for s, _ in segs}
        n = 0
        for info in seg_infos:
            sid = info.key[len(SEG_PREFIX) :]
            if sid not in live and info.mtime < head_mtime - SEGMENT_GRACE:
                self.backend.delete(info.key)
                n += 1
        return n

    def rebuild(self) -> UpdateResult:
        """Recreate the index from the store's commits and refs (segments appended meanwhile are kept)."""
        if self.source is None:
            raise DatactlError(f"cannot read the commits of {self.url} to rebuild its lineage index")
        _, before = self.read_head()
        old_external: list[Node] = []
        try:
            old_external = [n for n in self._load_segments(before).nodes.values() if n.external]
        except DatactlError:
            pass  # a damaged index is what a rebuild is for
        refs = self._read_refs(self._suspect_refs(None))
        all_ids = list(self.source.all_commit_ids())
        before_reads = self.source.commits_read
        commits = self.source.read_commits(all_ids)
        self.stats.commits_read += self.source.commits_read - before_reads
        view = LineageView()
        stack = sorted(set(refs.values()))
        while stack:
            cid = stack.pop()
            if cid in view.nodes or cid not in commits:
                continue
            c = commits[cid]
            view.add(Node.from_commit(cid, c))
            stack.extend(p for p in c.parents if p in commits and p not in view.nodes)
        inputs = {i for n in list(view.nodes.values()) for i in n.inputs if i not in view.nodes}
        for i in sorted(inputs):
            if i in commits:
                view.add(Node.from_commit(i, commits[i], external=True))
        for n in old_external:
            if n.id in inputs:
                view.add(n)
        # Reading every commit can take a while: take in whatever refs moved meanwhile, so the
        # time from the last look at the refs to the swap of HEAD stays short (see REF_CHECK_MARGIN).
        refs = self._read_refs(self._suspect_refs(None))
        late, _ = self.walk_missing(view, [c for c in refs.values() if not view.knows(c)], self.source)
        for n in late:
            view.add(n)
        tags = set()
        for ref, cid in refs.items():
            parts = ref.split("/")
            if parts[0] == "tags" and len(parts) == 3 and cid in view.nodes:
                tags.add(TagRecord(cid, parts[1], parts[2]))
        data = encode_segment(view.nodes.values(), tags)
        seg_id = object_id(data)
        self._store_segment(seg_id, data)
        replaced = {s for s, _ in before}
        for attempt in range(1, MAX_CAS_ATTEMPTS + 1):
            current, segs = self.read_head()
            kept = [s for s in segs if s[0] not in replaced and s[0] != seg_id]
            if self.backend.compare_and_swap(HEAD_KEY, encode_head([(seg_id, len(view.nodes)), *kept]), current):
                self._delete_superseded()
                return UpdateResult(seg_id, len(view.nodes), len(tags), compacted=True, attempts=attempt)
            time.sleep(random.uniform(0, 0.01))
        raise RefConflict(f"{HEAD_KEY} in {self.url} kept moving; try again")


class _Prefetched(CommitSource):
    """Every commit of a store, read in one batch on first use (for walking a whole unindexed history)."""

    def __init__(self, inner: CommitSource) -> None:
        self.inner = inner
        self._all: dict[str, Commit] | None = None
        self.commits_read = 0

    def has(self, cid: str) -> bool:
        return self.inner.has(cid)

    def read_commits(self, ids: Sequence[str]) -> dict[str, Commit]:
        if self._all is None:
            self._all = self.inner.read_commits(list(self.inner.all_commit_ids()))
            self.commits_read = len(self._all)
        return {c: self._all[c] for c in ids if c in self._all}

    def all_commit_ids(self) -> Iterable[str]:
        return self.inner.all_commit_ids()


class _Overlay(LineageView):
    """A view plus nodes about to be added (for catching up without copying the base view)."""

    def __init__(self, base: LineageView, extra: LineageView) -> None:
        super().__init__()
        self._base = base
        self._extra = extra
        self.tag_map = {**base.tag_map, **extra.tag_map}

    def knows(self, cid: str) -> bool:
        return self._base.knows(cid) or self._extra.knows(cid)

    def __contains__(self, cid: object) -> bool:
        return cid in self._base or cid in self._extra


def _write_cache(path: str, data: bytes) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass  # the cache only saves a download


# -- entry points used by commit and push ---------------------------------------------------------


def segment_cache_dir(rs) -> str:
    """Where segments of remote ``rs`` are kept locally (next to the cache of its object index)."""
    from datactl.remote.remotestore import cache_path

    base = os.path.dirname(rs.index.path)
    return os.path.join(base, "lineage", os.path.basename(cache_path(base, rs.spec.url))[: -len(".db")])


def record_local_commit(repo, commit_id: str) -> UpdateResult | None:
    """After a commit moved a ref in a workspace's own store: add it to that store's index.

    Never raises: the commit is already done, and an index that lags is
    caught up by the next update or query (or ``--rebuild-index``).
    """
    try:
        return LineageIndex(repo.backend, RepositorySource(repo)).record([commit_id])
    except Exception as exc:  # noqa: BLE001 - the version is committed whatever happens here
        _log.warning("lineage index of %s not updated for %s: %s", repo.backend.url, commit_id[:12], exc)
        return None


def record_push(rs, repo, commits: Iterable[str], tags: dict[str, str] | None = None) -> UpdateResult | None:
    """After ``publish`` moved a remote ref: add the pushed commits (and tags) to the remote's index.

    ``rs`` is the RemoteStore, ``repo`` the local Repository the commits
    came from. Never raises, for the same reason as ``record_local_commit``.
    """
    records = []
    for ref, cid in (tags or {}).items():
        parts = ref.split("/")
        if len(parts) == 3 and parts[0] == "tags":
            records.append(TagRecord(cid, parts[1], parts[2]))
    try:
        index = LineageIndex(rs.backend, RemoteSource(rs), segment_cache_dir(rs))
        return index.record(commits, RepositorySource(repo), records)
    except Exception as exc:  # noqa: BLE001 - the push is done whatever happens here
        _log.warning("lineage index of %s not updated: %s", rs.url, exc)
        return None


__all__ = [
    "CommitSource",
    "IndexStats",
    "LineageIndex",
    "LineageView",
    "Node",
    "RemoteSource",
    "RepositorySource",
    "TagRecord",
    "UpdateResult",
    "record_local_commit",
    "record_push",
    "segment_cache_dir",
]
