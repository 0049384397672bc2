"""Garbage collection: what the refs reach, what may go, and removing it without racing writers.

A gc run works on the store's own files (``refs/``, ``index/``, ``packs/``,
``gc/``), never on a local cache of them, under the store lock ``locks/gc``
(taken with put-if-absent; pushes never take it). One pass:

1. ``T`` := the store's clock (the modification time of the lock just refreshed);
   then list refs, then ``index/``, then ``packs/`` (in that order: a ref seen
   was published after its index files, an index file after its packs).
2. Walk everything the refs reach (parents, inputs, trees, chunk lists, chunks),
   reading objects by ranged GETs of the packs the index files name.
3. Plan. A pack younger than the grace period is never touched. An indexed pack
   with no live object is *condemned*; one whose garbage share reaches the
   repack threshold is condemned after its live objects are copied to a new
   pack. An unindexed old pack (an interrupted push) is condemned too.
4. Execute, in this order: record versions whose files are pruned
   (``gc/pruned/``); write the new packs; write new index files; write the
   condemnation record ``gc/condemned/<run>`` (state "intent"); delete the old
   index files; mark the record "done"; delete packs condemned by a *done* record
   older than the grace period (measured against ``T``), unless something
   reaches them again (their objects are then copied first: "rescued").

A condemned pack thus stays in the store, unindexed, for at least the grace
period before it is deleted, and every object a ref reaches when it is deleted
has been copied elsewhere. docs/gc.md states the guarantees and the argument.
"""

from __future__ import annotations

import collections
import time
from dataclasses import asdict, dataclass, field

from datactl.core.crashpoints import crash_point
from datactl.core.errors import StoreDamaged, UsageError
from datactl.core.settings import read_settings
from datactl.core.units import iso_seconds, parse_duration
from datactl.format.indexfile import PackListing
from datactl.format.layout import CONDEMNED_PREFIX, PACKS_PREFIX, key_name, pack_key
from datactl.format.pack import ObjectType, PackEntry
from datactl.store.indexfiles import delete_index_file, split_listing, write_index_file
from datactl.store.lock import LOCK_STALE, StoreLock
from datactl.store.packread import Location
from datactl.store.records import CondemnRecord, new_run_id, read_condemned, read_pruned, write_condemned, write_pruned
from datactl.store.refs import RefStore
from datactl.upkeep.gcplan import INDEX_FILE_OBJECTS, GcPlan, plan_gc
from datactl.upkeep.packcopy import copy_to_packs
from datactl.upkeep.reach import Reachability, Retention
from datactl.upkeep.storeview import StoreView
from datactl.upkeep.targets import ExtraRoots, IndexChange, StoreTarget
from storage_backends import Backend

DEFAULT_GRACE = 24 * 3600.0
DEFAULT_REPACK_THRESHOLD = 0.5


def gc_settings(root: str | None) -> tuple[float, float]:
    """(grace seconds, repack threshold) from ``[gc]`` in ``root``'s datactl.toml, else the defaults."""
    section = read_settings(root).get("gc", {}) if root is not None else {}
    if not isinstance(section, dict):
        raise UsageError("datactl.toml: [gc] must be a table")
    grace = parse_duration(section.get("grace", DEFAULT_GRACE))
    try:
        threshold = float(section.get("repack_threshold", DEFAULT_REPACK_THRESHOLD))
    except (TypeError, ValueError):
        raise UsageError("datactl.toml: [gc] repack_threshold must be a number") from None
    return grace, threshold


@dataclass
class GcReport:
    store: str
    dry_run: bool
    grace_seconds: float
    repack_threshold: float
    retention: dict
    passes: int = 0
    refs: int = 0
    versions: int = 0
    versions_kept: int = 0
    versions_pruned: int = 0
    newly_pruned: list[str] = field(default_factory=list)
    inputs_elsewhere: int = 0
    live_objects: int = 0
    packs_before: int = 0
    bytes_before: int = 0
    packs_after: int = 0
    bytes_after: int = 0
    packs_deleted: int = 0
    bytes_freed: int = 0
    packs_condemned: int = 0
    bytes_condemned: int = 0
    packs_repacked: int = 0
    objects_copied: int = 0
    bytes_copied: int = 0
    packs_written: int = 0
    objects_rescued: int = 0
    packs_young: int = 0
    bytes_young: int = 0
    packs_pending: int = 0
    bytes_pending: int = 0
    pending_until: str | None = None
    index_files_before: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    lock_taken_over: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class _Collector:
    """One gc run: passes of load, walk, plan (``plan_gc``) and execute, under the store lock."""

    def __init__(self, target: StoreTarget, retention: Retention, grace: float, threshold: float, dry_run: bool, jobs: int, lock: StoreLock, report: GcReport) -> None:
        self.t = target
        self.backend = target.backend
        self.retention = retention
        self.grace = grace
        self.threshold = threshold
        self.dry_run = dry_run
        self.jobs = jobs
        self.lock = lock
        self.report = report
        self.record_key: str | None = None

    def one_pass(self) -> bool:
        """Run one pass; return whether it condemned packs (which a later pass may delete)."""
        rep = self.report
        rep.passes += 1
        now = self.lock.server_time()
        refs = RefStore(self.backend).list("")
        extra = self.t.extra_roots() if self.t.extra_roots else ExtraRoots()
        view = StoreView(self.backend, self.t.tmp_dir, self.jobs)
        try:
            view.load()
            crash_point("after-listing")
            records = read_condemned(self.backend)
            pruned = read_pruned(self.backend)
            if view.unreadable_index:
                i, why = view.unreadable_index[0]
                raise StoreDamaged(f"index file {i} is unreadable ({why}); gc deletes nothing", "run `datactl fsck --repair`")
            if view.size_mismatch:
                pid, (listed, real) = next(iter(view.size_mismatch.items()))
                raise StoreDamaged(f"pack {pid} is {real} bytes, its index file says {listed}; gc deletes nothing", "run `datactl fsck --repair`")
            reach = Reachability(view, refs, extra, self.retention, pruned, time.time(), self.t.partial).run()
            if reach.missing:
                shown = "; ".join(m.text() for m in reach.missing[:5])
                more = f" and {len(reach.missing) - 5} more" if len(reach.missing) > 5 else ""
                raise StoreDamaged(
                    f"refs of {self.t.label} reach objects it does not hold: {shown}{more}; gc deletes nothing",
                    "run `datactl fsck` (and `datactl fsck --repair` if they are in packs the index misses)",
                )
            if view.dangling:
                rep.warnings.append(f"{len(view.dangling)} pack(s) named by index files are missing; nothing needed them (dropped from the index)")
            if rep.passes == 1:
                rep.refs = len(refs)
                rep.versions = len(reach.commits)
                rep.versions_kept = len(reach.full)
                rep.versions_pruned = len(reach.meta)
                rep.inputs_elsewhere = len(reach.external)
                rep.packs_before = len(view.packs)
                rep.bytes_before = sum(p.size for p in view.packs.values())
                rep.index_files_before = len(view.index_files)
            rep.live_objects = reach.live_count()
            crash_point("after-walk")
            plan = plan_gc(view, reach, records, pruned, now, self.grace, self.threshold)
            self._report_plan(view, plan)
            if not self.dry_run:
                self._execute(view, plan)
            return bool(plan.condemn)
        finally:
            rep.requests += view.requests
            view.close()

    def _report_plan(self, view: StoreView, plan: GcPlan) -> None:
        rep = self.report
        rep.packs_deleted += len(plan.delete)
        rep.bytes_freed += sum(plan.delete.values())
        rep.packs_condemned += len(plan.condemn) - len(plan.requeued)
        rep.bytes_condemned += sum(s for p, s in plan.condemn.items() if p not in plan.requeued)
        rep.packs_repacked += len(plan.repacked)
        rep.objects_copied += len(plan.copy)
        rep.objects_rescued += plan.rescued
        rep.packs_young = len(plan.young)
        rep.bytes_young = sum(plan.young.values())
        if self.dry_run:  # (after a real run, collect_garbage counts what waits from the records)
            rep.packs_pending = len(plan.pending) + len(plan.condemn)
            rep.bytes_pending = sum(plan.pending.values()) + sum(plan.condemn.values())
        if plan.newly_pruned:
            rep.newly_pruned = sorted(set(rep.newly_pruned) | plan.newly_pruned)
        if self.dry_run:
            rep.bytes_copied += sum(e.stored_len for _, e in plan.copy)

    # -- execution ---------------------------------------------------------------------------------

    def _execute(self, view: StoreView, plan: GcPlan) -> None:
        rep = self.report
        if plan.newly_pruned:
            self.lock.check()
            write_pruned(self.backend, plan.newly_pruned, "gc")
            crash_point("after-pruned-record")
        new_packs = self._copy(view, plan.copy) if plan.copy else {}
        rep.packs_written += len(new_packs)
        rep.bytes_copied += sum(size for size, _ in new_packs.values())
        crash_point("after-copy")
        written: set[str] = set()
        if plan.rewrite_index or new_packs:
            self.lock.check()
            for chunk in split_listing({**plan.listing, **new_packs}, INDEX_FILE_OBJECTS):
                written.add(write_index_file(self.backend, chunk))
            rep.index_files_written += len(written)
        crash_point("after-index-written")
        self.lock.check()
        for index_id in sorted(plan.rewrite_index - written):
            delete_index_file(self.backend, index_id)
            rep.index_files_deleted += 1
            crash_point("during-index-delete")
        crash_point("after-index-deleted")
        if plan.condemn:
            self.lock.check()
            record = CondemnRecord(new_run_id(), plan.condemn)
            write_condemned(self.backend, record)
            self.record_key = record.key
            crash_point("after-condemn-record")
        deleted = self._delete_packs(view, plan)
        crash_point("after-pack-delete")
        gone = set(deleted) | {p for p in (set().union(*(r.packs for r in plan.old_records)) if plan.old_records else ()) if p not in view.packs}
        for rec in plan.old_records:
            if all(p in gone for p in rec.packs):
                self.backend.delete(rec.key)
        if self.t.after_change is not None and (deleted or new_packs or written):
            self.t.after_change(self._change(view, plan, set(deleted), new_packs))

    def _change(self, view: StoreView, plan: GcPlan, deleted: set[str], new_packs: PackListing) -> IndexChange:
        """For local caches: the packs gone, the new ones, and other homes of the objects that were in deleted packs."""
        change = IndexChange(removed_packs=deleted, added_packs=dict(new_packs))
        if not deleted:
            return change
        ids = set()
        for pid in deleted:
            ids.update(r[0] for r in view.db.execute("SELECT id FROM entries WHERE pack=?", (pid,)))
        listing = {**plan.listing, **new_packs}
        out: dict[str, list[PackEntry]] = collections.defaultdict(list)
        for pid, (size, entries) in listing.items():
            for e in entries:
                if e.id in ids:
                    out[pid].append(e)
        for oid in ids:
            for r in view.db.execute("SELECT pack, type, codec, offset, stored_len, raw_len FROM entries WHERE id=? AND indexed=1", (oid,)).fetchall():
                if r[0] not in deleted and r[0] in view.packs and r[0] not in listing:
                    out[r[0]].append(PackEntry(oid, ObjectType(r[1]), r[2], r[3], r[4], r[5]))
        change.relocated = {pid: (view.packs[pid].size if pid in view.packs else listing[pid][0], es) for pid, es in out.items()}
        return change

    def _copy(self, view: StoreView, locs: list[Location]) -> PackListing:
        self.lock.check()
        return copy_to_packs(view, locs, self.backend, self.t.tmp_dir, self.t.pack_size, "gc")

    def _delete_packs(self, view: StoreView, plan: GcPlan) -> list[str]:
        if not plan.delete:
            return []
        self.lock.check()
        # Defence in depth: an index file written since we listed that names a pack keeps it.
        fresh = set(view.list_index_files()) - set(view.index_files)
        relisted: set[str] = set()
        for _, packs, _ in view.read_index_files(fresh):
            if packs:
                relisted.update(packs)
        deleted = []
        for pid in sorted(plan.delete):
            if pid in relisted:
                self.report.warnings.append(f"pack {pid} was indexed again while gc ran; kept")
                continue
            self.backend.delete(pack_key(pid))
            deleted.append(pid)
            crash_point("during-pack-delete")
        if len(deleted) != len(plan.delete):
            self.report.packs_deleted -= len(plan.delete) - len(deleted)
            self.report.bytes_freed -= sum(s for p, s in plan.delete.items() if p not in deleted)
        return deleted


def collect_garbage(
    target: StoreTarget,
    *,
    retention: Retention | None = None,
    grace: float | str = DEFAULT_GRACE,
    repack_threshold: float = DEFAULT_REPACK_THRESHOLD,
    dry_run: bool = False,
    jobs: int = 8,
    lock_stale_after: float = LOCK_STALE,
) -> GcReport:
    """Delete what no ref (and no retention rule) keeps, in a store that writers may be pushing to.

    Packs are condemned first and deleted by a later pass once their
    condemnation is ``grace`` old; when that is already the case at the end of
    the first pass (``grace`` of 0, in tests or with no other writer), a second
    pass runs at once.
    """
    retention = retention or Retention()
    grace_s = parse_duration(grace)
    if not 0.0 <= repack_threshold <= 1.0:
        raise UsageError(f"the repack threshold must be a fraction in [0, 1], not {repack_threshold}")
    if retention.keep_last is not None and retention.keep_last < 1:
        raise UsageError("--keep-last must be at least 1 (the version a ref names always keeps its files)")
    started = time.monotonic()
    report = GcReport(target.label, dry_run, grace_s, repack_threshold, retention.to_dict())
    lock = StoreLock(target.backend, "gc --dry-run" if dry_run else "gc", stale_after=lock_stale_after)
    lock.acquire()
    report.lock_taken_over = lock.took_over
    try:
        c = _Collector(target, retention, grace_s, repack_threshold, dry_run, jobs, lock, report)
        condemned = c.one_pass()
        if condemned and not dry_run and c.record_key is not None:
            if lock.server_time() - grace_s >= _record_time(target.backend, c.record_key):
                c.one_pass()
        if not dry_run:
            present = {key_name(i.key): i.size for i in target.backend.list(PACKS_PREFIX)}
            report.packs_after = len(present)
            report.bytes_after = sum(present.values())
            waiting: dict[str, int] = {}
            until = None
            for rec in read_condemned(target.backend):
                here = {p: present[p] for p in rec.packs if p in present}
                if here:
                    waiting.update(here)
                    until = min(until or rec.mtime + grace_s, rec.mtime + grace_s)
            report.packs_pending, report.bytes_pending = len(waiting), sum(waiting.values())
            report.pending_until = iso_seconds(until) if until is not None else None
        else:
            report.packs_after = report.packs_before - report.packs_deleted
            report.bytes_after = report.bytes_before - report.bytes_freed
    finally:
        lock.release()
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _record_time(backend: Backend, key: str) -> float:
    for info in backend.list(CONDEMNED_PREFIX):
        if info.key == key:
            return info.mtime
    return float("inf")
