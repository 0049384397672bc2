"""Moving objects between a local repository and a remote store.

Downloads read the wanted objects from the remote's packs through the one
``PackReader`` (coalesced ranges, in parallel, each object hashed before it is
stored locally). Uploads build fresh packs holding exactly what the remote
lacks and send each as soon as it is sealed, followed by an index file naming
its contents, so an interrupted push resumes where it stopped.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from datactl.core.crashpoints import crash_point
from datactl.core.errors import ObjectMissing
from datactl.core.progress import NullProgress, ProgressReporter
from datactl.format.layout import pack_key
from datactl.format.objects import FILE, decode_chunklist
from datactl.format.pack import ObjectType, PackEntry, PackWriter
from datactl.remote.remotestore import RemoteStore
from datactl.store.index import ObjectLocation
from datactl.store.indexfiles import write_index_file
from datactl.store.packread import DEFAULT_JOBS, META_GAP, PackReader, ReadObject, coalesce
from datactl.store.repository import Repository
from datactl.store.walk import BATCH, ReadBatch, present, walk_commits, walk_trees

# A walk this many levels deep reads commit by commit rather than every commit of the packs it meets.
SHALLOW_LEVELS = 32


class Downloader:
    """Fetches objects from a remote into a local repository, verified, in parallel."""

    def __init__(self, remote: RemoteStore, local: Repository, jobs: int = DEFAULT_JOBS, progress: ProgressReporter | None = None) -> None:
        self.remote = remote
        self.local = local
        self.progress = progress or NullProgress()
        self.packs = PackReader(remote.backend, remote.spec.label, jobs)
        self.objects = 0
        self.bytes_downloaded = 0  # stored bytes of the objects downloaded
        self._synced = False
        # Commits read ahead from packs already read (see read_commits), kept until a walk asks for them.
        self._ahead: dict[str, ReadObject] = {}
        self._packs_seen: set[str] = set()
        self._packs_read: set[str] = set()

    @property
    def requests(self) -> int:
        return self.packs.stats.requests

    def close(self) -> None:
        self.packs.close()

    def download(
        self, oids: Iterable[str], keep: Callable[[PackEntry], bool] = lambda e: False, flush: bool = True, report: bool = True
    ) -> dict[str, bytes]:
        """Store every id in ``oids`` locally; return raw bytes of those ``keep`` selects.

        With ``flush=False`` the objects stay in the local repository's open
        packs (durable at its next flush), which keeps many small reads from
        each writing a pack. ``report=False`` leaves the progress bar alone
        (a download made to learn a bar's total, before the bar starts).
        """
        missing = self.local.missing(list(dict.fromkeys(oids)))
        found = self.remote.index.lookup_many(missing)
        wanted = [found.get(oid) or self._locate(oid) for oid in missing]
        kept: dict[str, bytes] = {}
        for objects in self.packs.read_ranges(coalesce(((loc.pack, loc.entry) for loc in wanted), META_GAP)):
            self._store(objects, report)
            kept.update((obj.entry.id, obj.raw) for obj in objects if keep(obj.entry))
        if flush and wanted:
            self.local.flush()
        return kept

    def _locate(self, oid: str) -> ObjectLocation:
        loc = self.remote.index.lookup(oid)
        if loc is None and not self._synced:
            self.remote.sync_index()  # the cached index may predate what was pushed since
            self._synced = True
            loc = self.remote.index.lookup(oid)
        if loc is None:
            raise ObjectMissing(f"object {oid} is not on the remote {self.remote.url}", "the remote is incomplete; push it again from a complete copy")
        return loc

    def _store(self, objects: Sequence[ReadObject], report: bool = True) -> None:
        """Store objects the local store was found to lack (both callers ask it first, in batches), together."""
        self.local.put_stored_many(objects)
        self.objects += len(objects)
        stored = sum(len(obj.stored) for obj in objects)
        self.bytes_downloaded += stored
        if report:
            self.progress.advance(stored)

    def read_commits(self, oids: Sequence[str], read_ahead: bool = True) -> dict[str, bytes]:
        """Commits by id, a ReadBatch for ``walk_commits``; those the local store lacks are stored there (unflushed).

        A history is a chain a walk would otherwise fetch one commit per step. So once a walk comes back to a
        pack for another commit, every commit of that pack is read in one coalesced pass (commits are small)
        and those not reached yet wait here, in memory; a walk that stops early (``--depth``) stores none of
        them. The first visit reads only what is asked, so fetching a few new versions reads a few commits.
        """
        got = self.local.read_batch([o for o in oids if self.local.has(o)])
        wanted = []
        for oid in oids:
            if oid in got or oid in self._ahead:
                continue
            loc = self._locate(oid)
            if read_ahead and loc.pack in self._packs_seen and loc.pack not in self._packs_read:
                self._packs_read.add(loc.pack)
                wanted.extend((loc.pack, e) for e in self.remote.index.entries_of_pack(loc.pack, ObjectType.COMMIT) if not self.local.has(e.id))
            else:
                wanted.append((loc.pack, loc.entry))
            self._packs_seen.add(loc.pack)
        for obj in self.packs.read_located(wanted, max_gap=META_GAP):
            self._ahead[obj.entry.id] = obj
        reached = [obj for obj in (self._ahead.pop(oid, None) for oid in oids) if obj is not None]
        self._store(reached)
        got.update((obj.entry.id, obj.raw) for obj in reached)
        return got

    def read_batch(self, oids: Sequence[str]) -> dict[str, bytes]:
        """Objects from the local repository, downloading those it lacks first (a ReadBatch for walks)."""
        got = self.download(oids, keep=lambda e: True)
        got.update(self.local.read_batch([o for o in oids if o not in got]))
        return got


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
        self._inflight: collections.deque[tuple[Future, set[str]]] = collections.deque()
        self._writers: dict[bool, PackWriter] = {}
        # The ids in each open pack, and in each pack being uploaded: once a pack is recorded, the remote's index
        # knows its objects, so what this upload remembers is bounded by the packs in flight, not by the push.
        self._open_ids: dict[bool, set[str]] = {}
        self.objects = 0
        self.bytes_uploaded = 0
        self.packs = 0

    def queued(self, oid: str) -> bool:
        """Whether ``oid`` is in a pack this upload has not finished sending."""
        return any(oid in ids for ids in self._open_ids.values()) or any(oid in ids for _, ids in self._inflight)

    def add_many(self, oids: Sequence[str]) -> None:
        """Put ``oids`` in the packs to send: ids the remote lacks and none queued already (the caller asked, as
        ``local_objects_to_push`` does), read from the local store together, a pack's neighbours in one read."""
        for obj in self.local.read_stored_many(oids):
            entry = obj.entry
            is_data = entry.type == ObjectType.CHUNK
            writer = self._writers.get(is_data)
            if writer is None:
                writer = self._writers[is_data] = PackWriter(self.tmp_dir)
                self._open_ids[is_data] = set()
            writer.add(entry.id, entry.type, entry.codec, obj.stored, entry.raw_len)
            self._open_ids[is_data].add(entry.id)
            self.objects += 1
            if writer.full(self.pack_size):
                self._seal(is_data)

    def _upload(self, pack_id: str, path: str, size: int, entries: list[PackEntry]) -> tuple[str, int, list[PackEntry], str]:
        try:
            self.remote.backend.put_file(pack_key(pack_id), path)
            crash_point("after-pack-upload")
            index_id = write_index_file(self.remote.backend, {pack_id: (size, entries)})
        finally:
            os.unlink(path)
        return pack_id, size, entries, index_id

    def _seal(self, is_data: bool) -> None:
        pack_id, path, entries = self._writers.pop(is_data).finish()
        size = os.path.getsize(path)
        self._inflight.append((self._pool.submit(self._upload, pack_id, path, size, entries), self._open_ids.pop(is_data)))
        while len(self._inflight) > self._jobs:
            self._record(self._inflight.popleft()[0])

    def _record(self, fut: Future) -> None:
        pack_id, size, entries, index_id = fut.result()
        self.remote.index.add_pack(pack_id, size, entries)
        # Known by name, so a later sync notices when the store lost it (and stops trusting its objects).
        self.remote.index.mark_index_file(index_id)
        self.bytes_uploaded += size
        self.packs += 1
        self.progress.advance(sum(e.stored_len for e in entries))  # the objects' bytes, as a push's total counts them

    def finish(self) -> None:
        """Seal and upload what is left; return once every pack and index file is stored."""
        try:
            for is_data in list(self._writers):
                self._seal(is_data)
            while self._inflight:
                self._record(self._inflight.popleft()[0])
        finally:
            self.close()

    def close(self) -> None:
        for w in self._writers.values():
            w.abort()
        self._writers.clear()
        self._open_ids.clear()
        self._pool.shutdown(wait=True)


def commit_closure(repo: Repository, start: Iterable[str]) -> set[str]:
    """Every commit reachable from ``start`` that the repository holds (reading only commits)."""
    return {cid for cid, _ in walk_commits(present(repo), start)}


def local_objects_to_push(repo: Repository, roots: Iterable[str], complete: set[str], lacking: Callable[[list[str]], list[str]]) -> Iterator[list[str]]:
    """Ids reachable from ``roots`` that the remote lacks, in batches: file data, then trees, then commits.

    Commits in ``complete`` are known to be whole on the remote (a ref there
    reaches them) and are not walked. Trees are always walked, since an
    interrupted push can leave a tree on the remote without all it names.
    Every commit and tree must be local (ObjectMissing otherwise).
    ``lacking`` is asked about a few thousand ids at a time (each once) and answers those of them the remote
    lacks; it must leave out the ids of the batches yielded before (an ``Uploader`` knows what it queued, and
    each batch is queued before the next is asked about): nothing here remembers the ids of the whole push, so
    a chunk named by a thousand files is asked about a thousand times, in constant memory.
    """
    read: ReadBatch = repo.read_batch
    commits: list[str] = []
    roots_of_trees = []
    for cid, commit in walk_commits(read, roots, stop=complete):
        commits.append(cid)
        roots_of_trees.append((commit.tree, cid))
    lists: list[str] = []
    asked: list[str] = []

    def ask() -> list[str]:
        wanted = lacking(list(dict.fromkeys(asked)))
        asked.clear()
        return wanted

    def leaves_of_lists() -> Iterator[str]:
        for oid, raw in repo.read_batch(lists).items():
            yield from decode_chunklist(oid, raw)
        lists.clear()

    for visit in walk_trees(read, roots_of_trees):
        if visit.tree is None:
            raise ObjectMissing(f"tree {visit.id} of version {visit.tag[:12]} is not in the local store", "run `datactl verify`")
        for e in visit.tree.entries:
            if e.kind != FILE or e.is_external:  # its bytes stay at its source
                continue
            if e.chunklist is not None:
                asked.append(e.chunklist)
                lists.append(e.chunklist)
            asked.extend(e.chunks)
            if len(asked) >= BATCH and (batch := ask()):
                yield batch
        if len(lists) >= BATCH:
            asked.extend(leaves_of_lists())
        asked.append(visit.id)
        if len(asked) >= BATCH and (batch := ask()):
            yield batch
    asked.extend(leaves_of_lists())
    asked.extend(commits)
    if batch := ask():
        yield batch


@dataclass
class FetchedHistory:
    """What ``fetch_metadata`` brought: how many objects, and the commits whose parents it left on the remote."""

    objects: int
    cut: list[str] = field(default_factory=list)


def fetch_metadata(dl: Downloader, roots: Iterable[str], complete: set[str], depth: int | None = None) -> FetchedHistory:
    """Download the commits and trees reachable from ``roots``: all of them, or with ``depth`` the newest ``depth`` versions.

    History below a commit in ``complete`` is already local. Trees already
    local are still walked, since an interrupted fetch may have stopped below them.
    Commits come a pack at a time (``Downloader.read_commits``; a shallow walk, one level at a time), trees a level at a time.
    """
    before = dl.objects
    stop = set(complete)  # grows by the parents a depth leaves out, so the walk does not follow them
    distance = dict.fromkeys(roots, 0)
    edge: list[tuple[str, tuple[str, ...]]] = []
    read_ahead = depth is None or depth > SHALLOW_LEVELS

    def read(ids: Sequence[str]) -> dict[str, bytes]:
        return dl.read_commits(ids, read_ahead)

    def tree_roots() -> Iterator[tuple[str, str]]:
        for cid, commit in walk_commits(read, list(distance), stop=stop):
            d = distance[cid]
            if depth is not None and d + 1 >= depth and commit.parents:
                stop.update(commit.parents)
                edge.append((cid, commit.parents))
            for p in commit.parents:
                distance.setdefault(p, d + 1)
            yield commit.tree, cid

    for _ in walk_trees(dl.read_batch, tree_roots()):
        pass
    dl.local.flush()
    cut = [cid for cid, parents in edge if not all(dl.local.has(p) for p in parents)]
    return FetchedHistory(dl.objects - before, cut)
