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

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from datactl.core.crashpoints import crash_point
from datactl.core.errors import CorruptObject, DatactlError, RefConflict, StoreFormatError, StoreNotListable
from datactl.core.ids import object_id
from datactl.core.parallel import parallel_map
from datactl.format.layout import LINEAGE_HEAD_KEY, LINEAGE_PREFIX, LINEAGE_SEGMENT_PREFIX, REFS_PREFIX, lineage_segment_key, parse_tag_ref
from datactl.format.lineage import Node, TagRecord, decode_head, decode_segment, encode_head, encode_segment
from datactl.lineage.commits import CommitSource, Prefetched, StoreCommits
from datactl.lineage.view import LineageView, _Overlay
from datactl.store.refs import RefStore
from datactl.store.repository import Repository
from datactl.store.walk import walk_commits
from storage_backends import Backend, KeyNotFound, Versioned

MAX_SEGMENTS = 16
# Refs modified later than (index HEAD's modification time - this) are re-read and checked. It must
# exceed the time from a writer's listing of the refs to its swap of HEAD; a writer that takes more
# than half of it checks the refs again before swapping.
REF_CHECK_MARGIN = 120.0
# Superseded segments younger than this (relative to HEAD's modification time) are kept.
SEGMENT_GRACE = 3600.0
MAX_CAS_ATTEMPTS = 200

_log = logging.getLogger("datactl.lineage")


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
        v = self.backend.get_versioned(LINEAGE_HEAD_KEY)
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
                data = self.backend.get(lineage_segment_key(seg_id))
            except KeyNotFound:
                raise CorruptObject(
                    f"lineage index segment {seg_id} listed in {LINEAGE_HEAD_KEY} is missing from {self.url}",
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
        for nodes, tags in parallel_map(self._segment, [s for s, _ in segs], 8, "datactl-lineage"):  # in HEAD's order, oldest first
            for n in nodes:
                view.add(n)
            for t in tags:
                view.add_tag(t)
        return view

    def _head_mtime(self) -> float | None:
        self.stats.lists += 1
        try:
            for info in self.backend.list(LINEAGE_PREFIX):
                if info.key == LINEAGE_HEAD_KEY:
                    return info.mtime
        except StoreNotListable:  # a store read over HTTP: unknown, so every ref is checked against the index
            return None
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
        for info in self.backend.list(REFS_PREFIX):
            if threshold is None or info.mtime >= threshold:
                out.append(info.key[len(REFS_PREFIX) :])
        return out

    def _read_refs(self, refs: Sequence[str]) -> dict[str, str]:
        def get(ref: str) -> tuple[str, str | None]:
            try:
                return ref, self.refs.get(ref)
            except StoreFormatError:
                return ref, None  # a damaged ref names nothing we can index

        pairs = list(parallel_map(get, refs, 16, "datactl-refs"))
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
            source = Prefetched(source)
        nodes, unresolved = self.walk_missing(view, roots, source)
        return nodes, tags, unresolved

    def walk_missing(
        self, view: LineageView, roots: Iterable[str], source: CommitSource | None, *, fresh: bool = False
    ) -> tuple[list[Node], set[str]]:
        """Nodes for ``roots`` and the history they reach that ``view`` does not know, read from ``source``.

        History is followed through parents. An input is not followed: if the
        view does not know it, it becomes an *external* node (what the source
        knows of it; its own history belongs to its dataset, which a ref
        reaches, here or in another store). Returns the nodes and the roots
        or parents that could not be read.

        ``fresh``: the roots were just published, so they are not looked up (learning that a new commit is
        unknown reads every segment); one recorded twice is harmless, as a view keeps one node per id.
        """
        roots = list(roots)
        found: dict[str, Node] = {}
        missing: set[str] = set()
        known = _Known(view, set(roots) if fresh else set())
        if source is None:
            return [], {c for c in dict.fromkeys(roots) if c not in known}
        before = source.commits_read
        inputs: set[str] = set()
        for cid, c in walk_commits(source.read_commits, roots, stop=known, on_absent=missing.add):
            found[cid] = Node.from_commit(cid, c)
            inputs.update(c.inputs)
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
            f"{LINEAGE_HEAD_KEY} in {self.url} kept moving; the lineage index was not updated",
            "the versions are published; run `datactl lineage --rebuild-index` later to index them",
        )

    def _record_once(self, commits: list[str], local: CommitSource | None, tags: list[TagRecord]) -> UpdateResult | None:
        current, segs = self.read_head()
        # Newest segments first, and only as far as the questions asked need: a commit on top of indexed history
        # reads the segment that holds its parent, not the whole index (a commit costs the same at any length).
        view = _NewestFirst(segs, self._segment)
        new = LineageView()
        if local is not None:
            nodes, _ = self.walk_missing(view, commits, local, fresh=True)
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
                start = _compaction_start(new_segs)
                new_segs = [*new_segs[:start], self._compact(new_segs[start:])]
                compacted = True
            crash_point("before-lineage-swap")
            if self.backend.compare_and_swap(LINEAGE_HEAD_KEY, encode_head(new_segs), current):
                result.compacted = compacted
                break
            time.sleep(random.uniform(0, min(0.2, 0.002 * attempt)))
        else:
            raise RefConflict(
                f"{LINEAGE_HEAD_KEY} in {self.url} kept moving; the lineage index was not updated",
                "the versions are published; run `datactl lineage --rebuild-index` later to index them",
            )
        # An old segment (one already there) may have been deleted as superseded meanwhile: HEAD must not name nothing.
        if not fresh and not self.backend.exists(lineage_segment_key(seg_id)):
            self._store_segment(seg_id, data)
        if result.compacted:
            self._delete_superseded()
        return result

    def _store_segment(self, seg_id: str, data: bytes) -> bool:
        """Write a segment; one already there under that name is kept only if it is intact. True: newly written."""
        key = lineage_segment_key(seg_id)
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
            if self.backend.compare_and_swap(LINEAGE_HEAD_KEY, encode_head([merged]), current):
                self._delete_superseded()
                return UpdateResult(merged[0], merged[1], compacted=True, attempts=attempt)
            time.sleep(random.uniform(0, 0.01))
        raise RefConflict(f"{LINEAGE_HEAD_KEY} in {self.url} kept moving; try again")

    def _delete_superseded(self) -> int:
        """Delete segments HEAD no longer lists and that are old enough that no reader still wants them."""
        head_mtime = None
        seg_infos = []
        for info in self.backend.list(LINEAGE_PREFIX):
            if info.key == LINEAGE_HEAD_KEY:
                head_mtime = info.mtime
            elif info.key.startswith(LINEAGE_SEGMENT_PREFIX):
                seg_infos.append(info)
        if head_mtime is None:
            return 0
        _, segs = self.read_head()
        live = {s for s, _ in segs}
        n = 0
        for info in seg_infos:
            sid = info.key[len(LINEAGE_SEGMENT_PREFIX) :]
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
            if self.backend.compare_and_swap(LINEAGE_HEAD_KEY, encode_head([(seg_id, len(view.nodes)), *kept]), current):
                self._delete_superseded()
                return UpdateResult(seg_id, len(view.nodes), len(tags), compacted=True, attempts=attempt)
            time.sleep(random.uniform(0, 0.01))
        raise RefConflict(f"{LINEAGE_HEAD_KEY} in {self.url} kept moving; try again")


def _compaction_start(segs: Sequence[tuple[str, int]]) -> int:
    """Where the tail of segments to merge begins: the first segment no bigger than all after it together.

    Merging a tail of comparable sizes (not every segment) keeps segment sizes roughly geometric, so a
    merge costs what it merges and each node is rewritten about log(n) times, not once per MAX_SEGMENTS
    appends.
    """
    for i in range(len(segs) - 1):
        if segs[i][1] <= sum(n for _, n in segs[i + 1 :]):
            return i
    return len(segs) - 2


class _NewestFirst(LineageView):
    """The index read newest segment first, each only when a question cannot be answered without it.

    Later segments win over earlier ones for tags (HEAD's order), so an older segment's tag records only fill
    what newer ones did not say.
    """

    def __init__(self, segs: Sequence[tuple[str, int]], read: Callable[[str], tuple[list[Node], list[TagRecord]]]) -> None:
        super().__init__()
        self._read = read
        self._unread = [s for s, _ in segs]  # oldest first; read from the end
        self._total = sum(n for _, n in segs)

    def _read_one(self) -> bool:
        if not self._unread:
            return False
        nodes, tags = self._read(self._unread.pop())
        for n in nodes:
            old = self.nodes.get(n.id)
            if old is None or (old.external and not n.external):
                self.nodes[n.id] = n
        for t in tags:
            self.tag_map.setdefault((t.name, t.tag), t.commit)
        self._children = self._by_commit = None
        return True

    def __len__(self) -> int:
        return max(self._total, len(self.nodes))

    def __contains__(self, cid: object) -> bool:
        while cid not in self.nodes:
            if not self._read_one():
                return False
        return True

    def knows(self, cid: str) -> bool:
        while not super().knows(cid):
            if not self._read_one():
                return False
        return True

    def has_tag(self, record: TagRecord) -> bool:
        while (record.name, record.tag) not in self.tag_map:
            if not self._read_one():
                return False
        return super().has_tag(record)


class _Known:
    """The commits a view holds with their history: where a catch-up walk stops (``fresh`` ones are taken as unknown)."""

    def __init__(self, view: LineageView, fresh: set[str]) -> None:
        self._view = view
        self._fresh = fresh

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str) and cid not in self._fresh and self._view.knows(cid)


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


def tag_records(tags: dict[str, str]) -> list[TagRecord]:
    """Tag refs (``tags/NAME/TAG`` -> commit) as index records."""
    out = []
    for ref, cid in tags.items():
        parsed = parse_tag_ref(ref)
        if parsed is not None:
            out.append(TagRecord(cid, *parsed))
    return out


def record_commits(backend: Backend, source: CommitSource, commits: Iterable[str], local: CommitSource | None = None,
                   tags: dict[str, str] | None = None, cache_dir: str | None = None) -> UpdateResult | None:
    """After a ref moved to ``commits`` (and ``tags``): add them to the store's index.

    ``source`` reads the store's commits, ``local`` the writer's own (where a
    pushed commit came from). Never raises: the version is published whatever
    happens here, and an index that lags is caught up by the next update or
    query (or ``--rebuild-index``).
    """
    try:
        return LineageIndex(backend, source, cache_dir).record(commits, local, tag_records(tags or {}))
    except Exception as exc:  # noqa: BLE001 - the version is published whatever happens here
        _log.warning("lineage index of %s not updated: %s", backend.url, exc)
        return None


def record_local_commit(repo: Repository, commit_id: str, tags: dict[str, str] | None = None) -> UpdateResult | None:
    """After a commit (or squash) moved a ref in a local store: add it to that store's index (never raises)."""
    return record_commits(repo.backend, StoreCommits(repo.objects), [commit_id], tags=tags)
