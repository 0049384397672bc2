"""Planning a gc pass: which packs to condemn, which objects to copy, which packs to delete.

The plan is made from a ``StoreView`` (what the store holds) and a
``Reachability`` (what its refs, and any extra roots the caller passes, reach);
it changes nothing. ``datactl.upkeep.gc`` executes it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from datactl.format.indexfile import PackListing
from datactl.format.pack import PackEntry
from datactl.store.records import CondemnRecord
from datactl.upkeep.reach import Reachability
from datactl.upkeep.storeview import StoreView

INDEX_FILE_OBJECTS = 100_000  # objects per index file that gc writes
SMALL_INDEX_OBJECTS = INDEX_FILE_OBJECTS // 2  # index files below this are merged


@dataclass
class GcPlan:
    """What one gc pass will do; ``plan_gc`` makes it, ``execute_plan`` (datactl.upkeep.gc) carries it out."""

    condemn: dict[str, int] = field(default_factory=dict)  # packs to condemn now (indexed ones and old unindexed ones)
    orphans: set[str] = field(default_factory=set)  # ... of which unindexed
    repacked: set[str] = field(default_factory=set)  # ... of which still hold live objects (copied out now)
    requeued: set[str] = field(default_factory=set)  # ... condemned before, now holding listed live objects again
    delete: dict[str, int] = field(default_factory=dict)  # condemned for a grace period: deleted now
    pending: dict[str, int] = field(default_factory=dict)  # condemned, not yet deletable
    pending_since: float = 0.0
    young: dict[str, int] = field(default_factory=dict)
    copy: list[tuple[str, PackEntry]] = field(default_factory=list)  # (source pack, entry)
    rescued: int = 0
    rewrite_index: set[str] = field(default_factory=set)
    listing: PackListing = field(default_factory=dict)  # what the new index files list
    old_records: list[CondemnRecord] = field(default_factory=list)
    newly_pruned: set[str] = field(default_factory=set)


def _entries(view: StoreView, pack: str, where: str = "") -> list[PackEntry]:
    return view.entries_of(pack, where)


_NOT_LIVE = " AND NOT EXISTS (SELECT 1 FROM live l WHERE l.id = e.id)"


def plan_gc(view: StoreView, reach: Reachability, records: list[CondemnRecord], pruned: set[str], now: float, grace: float, threshold: float) -> GcPlan:
    """Decide, from what the store holds and what its refs reach, which packs to condemn, copy from and delete.

    A pack younger than ``grace`` is never touched; an indexed pack with no
    live object is condemned; one whose garbage share reaches ``threshold`` is
    condemned after its live objects are copied to a new pack; an unindexed old
    pack (an interrupted push) is condemned too; a pack condemned by a record
    older than ``grace`` is deleted, unless something reaches it again (its
    objects are then copied first: rescued).
    """
    plan = GcPlan(old_records=records, newly_pruned=reach.meta - pruned)
    cutoff = now - grace
    db = view.db
    indexed = view.indexed_packs()
    since: dict[str, float] = {}
    for rec in records:
        for pid in rec.packs:
            since[pid] = max(since.get(pid, 0.0), rec.mtime)
    totals = {r[0]: r[1] for r in db.execute("SELECT pack, SUM(stored_len) FROM entries WHERE indexed=1 GROUP BY pack")}
    live = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT e.pack, SUM(e.stored_len), COUNT(*) FROM entries e JOIN live l ON l.id = e.id WHERE e.indexed=1 GROUP BY e.pack"
    )}
    kept: set[str] = set()
    for pid in sorted(view.packs):
        info = view.packs[pid]
        if pid in since:  # condemned by an earlier run
            if since[pid] <= cutoff and info.mtime <= cutoff:
                if pid in indexed and pid in live:
                    # A writer came to rely on objects the index still lists here, and readers may have
                    # found them here: copy them out now, delete the pack a grace period later.
                    plan.condemn[pid] = info.size
                    plan.requeued.add(pid)
                else:
                    plan.delete[pid] = info.size
            else:
                plan.pending[pid] = info.size
                plan.pending_since = max(plan.pending_since, since[pid])
        elif info.mtime > cutoff:
            plan.young[pid] = info.size
            if pid in indexed:
                kept.add(pid)
        elif pid not in indexed:
            plan.condemn[pid] = info.size  # left by an interrupted push
            plan.orphans.add(pid)
        else:
            total = totals.get(pid, 0)
            live_bytes, live_n = live.get(pid, (0, 0))
            garbage = total - live_bytes
            if live_n == 0:
                plan.condemn[pid] = info.size
            elif garbage > 0 and garbage >= threshold * total:
                plan.condemn[pid] = info.size
                plan.repacked.add(pid)
            else:
                kept.add(pid)
    # Live objects that no kept pack holds are copied to new packs: those of repacked packs, and
    # any a writer relied on in a condemned or unindexed pack since ("rescued").
    db.execute("CREATE TEMP TABLE kept (pack TEXT PRIMARY KEY) WITHOUT ROWID")
    db.executemany("INSERT INTO kept(pack) VALUES (?)", ((p,) for p in kept))
    rows = db.execute(
        "SELECT l.id FROM live l WHERE NOT EXISTS (SELECT 1 FROM entries e JOIN kept k ON k.pack = e.pack WHERE e.id = l.id AND e.indexed = 1)"
    ).fetchall()
    for (oid,) in rows:
        loc = view.locate(oid)
        if loc is None:
            continue  # a chunk of a version pruned earlier, already gone
        plan.copy.append(loc)
        if loc[0] not in plan.repacked:
            plan.rescued += 1
    # Index files: those naming a pack whose listing changes are rewritten (small ones merged too).
    condemned = set(plan.delete) | set(plan.pending) | set(plan.condemn)
    changed = set(plan.delete) | set(view.dangling)
    for pid in condemned & indexed:
        if pid not in plan.delete and pid in live:
            changed.add(pid)  # its live objects leave its listing (they are copied to other packs)
    per_file: dict[str, set[str]] = collections.defaultdict(set)
    for pid, index_id in db.execute("SELECT pack, index_file FROM listed"):
        per_file[index_id].add(pid)
    rewrite = {i for i, ps in per_file.items() if ps & changed}
    small = [i for i, n in db.execute("SELECT id, objects FROM index_files") if n < SMALL_INDEX_OBJECTS]
    if len(small) > 1 or (small and (rewrite or plan.copy)):
        rewrite.update(small)
    plan.rewrite_index = rewrite
    staying = set(view.index_files) - rewrite
    covered = set().union(*(per_file[i] for i in staying)) if staying else set()
    for pid in sorted(set().union(*(per_file[i] for i in rewrite)) if rewrite else ()):
        if pid in covered or pid in plan.delete or pid not in view.packs:
            continue
        entries = _entries(view, pid, _NOT_LIVE if pid in condemned else "")
        if entries:
            plan.listing[pid] = (view.packs[pid].size, entries)
    return plan
