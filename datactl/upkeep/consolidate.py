"""Merging a store's small packs (and their index files) into packs of the target size, without being asked.

Every commit or push leaves its own packs, most far below the target size, and
an index file for them: a history of thousands of versions would leave
thousands of each, and every command that opens the store would list and read
more of them. When a store holds more than ``MAX_SMALL_PACKS`` packs under half
the target size, they are merged, under the store lock (``locks/gc``; when gc
or another consolidation holds it, nothing is done and a later commit or push
tries again):

1. list ``index/`` and ``packs/`` and read every index file (``StoreView``);
2. copy every object of the smallest small packs (``packs_to_merge``: a geometric
   progression, as git repacks), as stored and verified, into new packs of the
   target size (data and metadata apart), durably;
3. write index files listing the new packs and every other pack the replaced
   index files listed; bring local caches of the index along
   (``StoreTarget.after_change``: a workspace's SQLite index switches to the new
   packs in one transaction);
4. delete the replaced index files;
5. the old packs: in a workspace's own store, whose readers all look objects up
   in the workspace's index (and look again when a pack vanished under them),
   they are deleted now; in a shared store they are condemned
   (``gc/condemned/``) and a gc deletes them a grace period later, so a reader
   that listed the index before step 4 still finds them (docs/gc.md).

Every object of an old pack is in a new pack before any listing of it goes, so
no reader and no pushing writer (which reads index files and condemnation
records) ever misses an object. An interrupted run leaves at most objects
listed twice, or unindexed packs, which gc condemns.
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass

from datactl.core.crashpoints import crash_point
from datactl.core.errors import StoreLocked
from datactl.format.indexfile import PackListing
from datactl.format.layout import pack_key
from datactl.format.pack import ObjectType, PackEntry
from datactl.store.indexfiles import delete_index_file, split_listing, write_index_file
from datactl.store.lock import StoreLock
from datactl.store.records import CondemnRecord, new_run_id, read_condemned, write_condemned
from datactl.upkeep.gcplan import INDEX_FILE_OBJECTS
from datactl.upkeep.packcopy import copy_to_packs
from datactl.upkeep.smallpacks import MAX_SMALL_PACKS, is_small
from datactl.upkeep.storeview import StoreView
from datactl.upkeep.targets import IndexChange, StoreTarget

# At most this many objects are merged in one run (each is held in memory while its pack is written and indexed,
# about 500 bytes); the packs left small are merged by the next runs. A store of a million tiny files stays bounded.
MAX_MERGE_OBJECTS = 200_000


@dataclass
class ConsolidateReport:
    store: str
    skipped: str | None = None  # why nothing was done (the store lock is held)
    packs_merged: int = 0
    bytes_merged: int = 0
    packs_written: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    packs_deleted: int = 0
    packs_condemned: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def packs_to_merge(sizes: dict[str, int], factor: int = 2) -> set[str]:
    """Which of these (small) packs to merge: the smallest ones whose merge leaves every pack at least ``factor``
    times the size of all smaller ones together, as git's ``repack --geometric`` chooses.

    A merged pack is merged again only once the packs written after it add up to about half its size, so each
    byte is copied about log2(store size / pack size) times over a history, instead of once per merge (merging
    every small pack each time copied the whole store again every few dozen commits).
    """
    order = sorted(sizes, key=lambda p: (sizes[p], p))
    # From the largest down, the packs already in progression stay; the first pair out of it marks the split.
    split = 0
    for i in range(len(order) - 1, 0, -1):
        if sizes[order[i]] < factor * sizes[order[i - 1]]:
            split = i + 1
            break
    # The merged pack must itself stand in progression: roll up the next packs while it would outweigh them.
    total = sum(sizes[p] for p in order[:split])
    while split < len(order) and sizes[order[split]] < factor * total:
        total += sizes[order[split]]
        split += 1
    return set(order[:split]) if split > 1 else set()


def _within_object_budget(chosen: set[str], sizes: dict[str, int], counts: dict[str, int], max_objects: int) -> set[str]:
    """The smallest of ``chosen`` whose objects add up to at most ``max_objects`` (none when fewer than two)."""
    kept: set[str] = set()
    total = 0
    for pid in sorted(chosen, key=lambda p: (sizes[p], p)):
        total += counts.get(pid, 0)
        if total > max_objects:
            break
        kept.add(pid)
    return kept if len(kept) > 1 else set()


def consolidate_packs(
    target: StoreTarget, *, delete_now: bool, max_small: int = MAX_SMALL_PACKS, jobs: int = 8, max_objects: int = MAX_MERGE_OBJECTS
) -> ConsolidateReport:
    """Merge the small packs of ``target`` into packs of its target size (see the module doc).

    ``delete_now``: the old packs are deleted at once (a workspace's own store, whose every reader looks objects
    up in the index this run updates); otherwise they are condemned for a later gc. Never waits for the store
    lock: when it is held the report says so and nothing changes.
    """
    report = ConsolidateReport(target.label)
    lock = StoreLock(target.backend, "consolidate packs")
    try:
        lock.acquire()
    except StoreLocked as exc:
        report.skipped = exc.message
        return report
    try:
        view = StoreView(target.backend, target.tmp_dir, jobs)
        try:
            view.load()
            if view.unreadable_index or view.size_mismatch:
                report.skipped = "the store's index needs `datactl fsck --repair`"
                return report
            _merge(view, target, delete_now, max_small, max_objects, lock, report)
        finally:
            view.close()
    finally:
        lock.release()
    return report


def _merge(view: StoreView, target: StoreTarget, delete_now: bool, max_small: int, max_objects: int, lock: StoreLock, report: ConsolidateReport) -> None:
    db = view.db
    per_file: dict[str, set[str]] = collections.defaultdict(set)
    for pid, index_id in db.execute("SELECT pack, index_file FROM listed"):
        per_file[index_id].add(pid)
    condemned = set().union(*(r.packs for r in read_condemned(target.backend)))
    counts = dict(db.execute("SELECT pack, COUNT(*) FROM entries WHERE indexed=1 GROUP BY pack"))
    small_sizes = {
        p: view.packs[p].size for p in view.indexed_packs() - condemned if is_small(view.packs[p].size, counts.get(p, 0), target.pack_size)
    }
    if len(small_sizes) <= max_small:
        return
    small = _within_object_budget(packs_to_merge(small_sizes), small_sizes, counts, max_objects)
    if not small:
        return
    locs = [
        (pid, PackEntry(oid, ObjectType(t), codec, off, sl, rl))
        for pid, oid, t, codec, off, sl, rl in db.execute(
            "SELECT pack, id, type, codec, offset, stored_len, raw_len FROM entries WHERE indexed=1 ORDER BY pack, offset"
        )
        if pid in small
    ]
    first: dict[str, tuple[str, PackEntry]] = {}
    for pid, e in locs:
        first.setdefault(e.id, (pid, e))  # an object in two small packs is copied once
    lock.check()
    new_packs = copy_to_packs(view, list(first.values()), target.backend, target.tmp_dir, target.pack_size, "consolidation")
    report.packs_merged, report.bytes_merged = len(small), sum(view.packs[p].size for p in small)
    report.packs_written = len(new_packs)
    crash_point("consolidate-after-copy")
    # Index files naming a small pack are replaced by files naming the new packs and the other packs they named.
    replaced = {i for i, packs in per_file.items() if packs & small}
    staying = set().union(*(per_file[i] for i in set(per_file) - replaced)) if len(per_file) > len(replaced) else set()
    listing: PackListing = dict(new_packs)
    for pid in sorted(set().union(*(per_file[i] for i in replaced)) - small - staying):
        if pid in view.packs:
            listing[pid] = (view.packs[pid].size, view.entries_of(pid))
    lock.check()
    written = {write_index_file(target.backend, chunk) for chunk in split_listing(listing, INDEX_FILE_OBJECTS)}
    report.index_files_written = len(written)
    crash_point("consolidate-after-index-written")
    if target.after_change is not None:
        target.after_change(IndexChange(removed_packs=set(small), added_packs=dict(new_packs)))
    crash_point("consolidate-after-local-index")
    lock.check()
    for index_id in sorted(replaced - written):
        delete_index_file(target.backend, index_id)
        report.index_files_deleted += 1
    crash_point("consolidate-after-index-deleted")
    if delete_now:
        for pid in sorted(small):
            target.backend.delete(pack_key(pid))
            report.packs_deleted += 1
            crash_point("consolidate-during-pack-delete")
    else:
        write_condemned(target.backend, CondemnRecord(new_run_id(), {p: view.packs[p].size for p in small}))
        report.packs_condemned = len(small)
