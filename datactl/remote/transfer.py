"""Moving objects between a local repository and a remote store.

Downloads group the wanted objects by remote pack and fetch coalesced byte
ranges in parallel; every object is decoded and hashed before it is stored.
Uploads build fresh packs holding exactly what the remote lacks and send each
as soon as it is sealed, followed by an index file naming its contents, so an
interrupted push resumes where it stopped.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from datactl.core.errors import CorruptObject, ObjectMissing
from datactl.store.index import ObjectLocation
from datactl.format.objects import DIR, FILE, decode_chunklist, decode_commit, decode_tree
from datactl.format.pack import ObjectType, PackEntry, PackWriter, pack_key
from datactl.core.progress import NullProgress, ProgressReporter
from datactl.remote.remotestore import RemoteStore
from datactl.store.repository import Repository, verify_stored, write_index_file
from storage_backends import BackendError, KeyNotFound

DEFAULT_JOBS = 8
MAX_GAP = 256 * 1024  # objects closer than this in a pack are fetched in one range
MAX_SPAN = 4 * 1024 * 1024  # ... as long as the range stays below this


@dataclass(frozen=True)
class _Range:
    pack: str
    start: int
    end: int
    objects: tuple[PackEntry, ...]


def _coalesce(locations: list[ObjectLocation]) -> list[_Range]:
    by_pack: dict[str, list[PackEntry]] = collections.defaultdict(list)
    for loc in locations:
        by_pack[loc.pack].append(loc.entry)
    ranges = []
    for pack, entries in by_pack.items():
        entries.sort(key=lambda e: e.offset)
        group: list[PackEntry] = []
        for e in entries:
            if group and (e.offset - (group[-1].offset + group[-1].stored_len) > MAX_GAP or e.offset + e.stored_len - group[0].offset > MAX_SPAN):
                ranges.append(_Range(pack, group[0].offset, group[-1].offset + group[-1].stored_len, tuple(group)))
                group = []
            group.append(e)
        if group:
            ranges.append(_Range(pack, group[0].offset, group[-1].offset + group[-1].stored_len, tuple(group)))
    return ranges


class Downloader:
    """Fetches objects from a remote into a local repository, verified, in parallel."""

    def __init__(self, remote: RemoteStore, local: Repository, jobs: int = DEFAULT_JOBS, progress: ProgressReporter | None = None) -> None:
        self.remote = remote
        self.local = local
        self.jobs = jobs
        self.progress = progress or NullProgress()
        self.bytes_downloaded = 0
        self.requests = 0

    def _get_range(self, r: _Range) -> list[tuple[PackEntry, bytes, bytes]]:
        where = f"pack {r.pack} on {self.remote.url}"
        try:
            blob = self.remote.backend.get_range(pack_key(r.pack), r.start, r.end - r.start)
        except KeyNotFound:
            raise ObjectMissing(f"{where} is missing", "the remote lost data; run `datactl fsck` against it") from None
        except BackendError as exc:
            raise CorruptObject(f"{where} could not be read: {exc}") from None
        out = []
        for e in r.objects:
            stored = blob[e.offset - r.start : e.offset - r.start + e.stored_len]
            out.append((e, stored, verify_stored(e.id, e, stored, where)))
        return out

    def download(
        self, oids: Iterable[str], keep: Callable[[PackEntry], bool] = lambda e: False, flush: bool = True
    ) -> dict[str, bytes]:
        """Store every id in ``oids`` locally; return raw bytes of those ``keep`` selects.

        With ``flush=False`` the objects stay in the local repository's open
        packs (durable at its next flush), which keeps many small reads from
        each writing a pack.
        """
        wanted = []
        seen = set()
        for oid in oids:
            if oid in seen or self.local.has(oid):
                continue
            seen.add(oid)
            loc = self.remote.index.lookup(oid)
            if loc is None:
                raise ObjectMissing(f"object {oid} is not on the remote {self.remote.url}", "the remote is incomplete; push it again from a complete copy")
            wanted.append(loc)
        kept: dict[str, bytes] = {}
        if not wanted:
            return kept
        ranges = _coalesce(wanted)
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="datactl-get") as pool:
            window: collections.deque[Future] = collections.deque()
            it = iter(ranges)

            def drain_one() -> None:
                for entry, stored, raw in window.popleft().result():
                    self.local.put_stored(entry.id, entry.type, entry.codec, stored, entry.raw_len)
                    self.bytes_downloaded += len(stored)
                    self.progress.advance(len(stored))
                    if keep(entry):
                        kept[entry.id] = raw

            for r in it:
                window.append(pool.submit(self._get_range, r))
                self.requests += 1
                if len(window) >= self.jobs + 2:
                    drain_one()
            while window:
                drain_one()
        if flush:
            self.local.flush()
        return kept


class Uploader:
    """Packs objects the remote lacks and uploads each pack (then its index file) as it fills."""

    def __init__(self, remote: RemoteStore, local: Repository, tmp_dir: str, jobs: int = DEFAULT_JOBS, progress: ProgressReporter | None = None) -> None:
        self.remote = remote
        self.local = local
        self.tmp_dir = tmp_dir
        self.pack_size = remote.config().pack_size
        self.progress = progress or NullProgress()
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="datactl-put")
        self._jobs = jobs
        self._inflight: collections.deque[Future] = collections.deque()
        self._writers: dict[bool, PackWriter] = {}
        self._queued: set[str] = set()
        self.objects = 0
        self.bytes_uploaded = 0
        self.packs = 0

    def add(self, oid: str) -> None:
        if oid in self._queued or self.remote.has(oid):
            return
        self._queued.add(oid)
        entry, stored = self.local.read_stored(oid)
        is_data = entry.type == ObjectType.CHUNK
        writer = self._writers.get(is_data)
        if writer is None:
            writer = self._writers[is_data] = PackWriter(self.tmp_dir)
        writer.add(oid, entry.type, entry.codec, stored, entry.raw_len)
        self.objects += 1
        if writer.size >= self.pack_size:
            self._seal(is_data)

    def _upload(self, pack_id: str, path: str, size: int, entries: list[PackEntry]) -> tuple[str, int, list[PackEntry]]:
        try:
            self.remote.backend.put_file(pack_key(pack_id), path)
            write_index_file(self.remote.backend, {pack_id: (size, entries)})
        finally:
            os.unlink(path)
        return pack_id, size, entries

    def _seal(self, is_data: bool) -> None:
        pack_id, path, entries = self._writers.pop(is_data).finish()
        size = os.path.getsize(path)
        self._inflight.append(self._pool.submit(self._upload, pack_id, path, size, entries))
        while len(self._inflight) > self._jobs:
            self._record(self._inflight.popleft())

    def _record(self, fut: Future) -> None:
        pack_id, size, entries = fut.result()
        self.remote.index.add_pack(pack_id, size, entries)
        self.bytes_uploaded += size
        self.packs += 1
        self.progress.advance(size)

    def finish(self) -> None:
        """Seal and upload what is left; return once every pack and index file is stored."""
        try:
            for is_data in list(self._writers):
                self._seal(is_data)
            while self._inflight:
                self._record(self._inflight.popleft())
        finally:
            self.close()

    def close(self) -> None:
        for w in self._writers.values():
            w.abort()
        self._writers.clear()
        self._pool.shutdown(wait=True)


def commit_closure(repo: Repository, start: Iterable[str]) -> set[str]:
    """Every commit reachable from ``start`` (reading only commits)."""
    seen: set[str] = set()
    stack = [c for c in start if c]
    while stack:
        cid = stack.pop()
        if cid in seen or not repo.has(cid):
            continue
        seen.add(cid)
        stack.extend(repo.read_commit(cid).parents)
    return seen


def local_objects_to_push(repo: Repository, roots: Iterable[str], complete: set[str], has: Callable[[str], bool]) -> Iterator[str]:
    """Ids reachable from ``roots`` that ``has`` says the remote lacks.

    Commits in ``complete`` are known to be whole on the remote (a ref there
    reaches them) and are not walked. Trees are always walked, since an
    interrupted push can leave a tree on the remote without all it names.
    """
    seen_commits: set[str] = set()
    seen_trees: set[str] = set()
    seen_leaves: set[str] = set()
    stack = [c for c in roots if c not in complete]
    while stack:
        cid = stack.pop()
        if cid in seen_commits or cid in complete:
            continue
        seen_commits.add(cid)
        commit = repo.read_commit(cid)
        stack.extend(commit.parents)
        trees = [commit.tree]
        while trees:
            tid = trees.pop()
            if tid in seen_trees:
                continue
            seen_trees.add(tid)
            for e in repo.read_tree(tid).entries:
                if e.kind == DIR:
                    trees.append(e.digest)
                elif e.kind == FILE:
                    leaves = [e.chunklist] if e.chunklist else []
                    leaves += decode_chunklist(e.chunklist, repo.read(e.chunklist)) if e.chunklist else list(e.chunks)
                    for leaf in leaves:
                        if leaf not in seen_leaves:
                            seen_leaves.add(leaf)
                            if not has(leaf):
                                yield leaf
            if not has(tid):
                yield tid
        if not has(cid):
            yield cid


def fetch_metadata(dl: Downloader, roots: Iterable[str], complete: set[str]) -> int:
    """Download the commits and trees reachable from ``roots``, level by level; return objects fetched.

    History below a commit in ``complete`` is already local. Trees already
    local are still walked, since an interrupted fetch may have stopped below them.
    """
    repo = dl.local
    commits = [c for c in roots if c not in complete]
    seen: set[str] = set()
    seen_trees: set[str] = set()
    fetched = 0
    while commits:
        commits = [c for c in dict.fromkeys(commits) if c not in seen and c not in complete]
        seen.update(commits)
        got = dl.download(commits, keep=lambda e: True)
        fetched += len(got)
        trees: list[str] = []
        nxt: list[str] = []
        for cid in commits:
            c = decode_commit(cid, got[cid]) if cid in got else repo.read_commit(cid)
            trees.append(c.tree)
            nxt.extend(c.parents)
        while trees:
            trees = [t for t in dict.fromkeys(trees) if t not in seen_trees]
            seen_trees.update(trees)
            got_trees = dl.download(trees, keep=lambda e: True)
            fetched += len(got_trees)
            children = []
            for tid in trees:
                tree = decode_tree(tid, got_trees[tid]) if tid in got_trees else repo.read_tree(tid)
                children.extend(e.digest for e in tree.entries if e.kind == DIR)
            trees = children
        commits = nxt
    return fetched
