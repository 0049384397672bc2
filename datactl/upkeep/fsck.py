"""Checking a store's own structure, and rebuilding its index from the packs' footers.

``fsck`` reads the store's files (never a local cache of them) and reports:

- index files that cannot be read;
- index entries pointing nowhere: a pack that is missing, of another size, or
  whose footer does not hold the object where the index says;
- packs missing from the index (a push cut short, or a lost index file), and
  whether refs need objects only they hold;
- refs to missing commits, and any tree, chunk list or chunk a ref reaches
  that no pack holds (files of versions gc pruned are not required);
- damaged packs: an unreadable footer, or with ``read_data`` content that does
  not hash to the pack's id.

``repair`` rebuilds the index from the footers of every readable pack, under
the store lock (so no gc runs meanwhile; pushes may): new index files are
written first, then the old ones deleted. What no pack holds cannot be
repaired; fsck names it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from datactl.core.errors import DatactlError, StoreFormatError
from datactl.core.ids import new_hasher
from datactl.core.parallel import parallel_map
from datactl.core.units import parse_duration
from datactl.format.layout import index_file_key, pack_key
from datactl.format.pack import PackEntry
from datactl.store.indexfiles import split_listing, write_index_file
from datactl.store.lock import StoreLock
from datactl.store.records import read_condemned, read_pruned
from datactl.store.refs import RefStore, RefValue
from datactl.upkeep.gc import DEFAULT_GRACE
from datactl.upkeep.gcplan import INDEX_FILE_OBJECTS
from datactl.upkeep.reach import Reachability, Retention
from datactl.upkeep.storeview import StoreView
from datactl.upkeep.targets import ExtraRoots, IndexChange, StoreTarget
from storage_backends import KeyNotFound

NAMED = 5  # ids named in one message


@dataclass
class FsckIssue:
    severity: str  # "error", "warning" or "info"
    check: str
    message: str
    repairable: bool = False


@dataclass
class FsckReport:
    store: str
    refs: int = 0
    versions: int = 0
    pruned_versions: int = 0
    packs: int = 0
    bytes: int = 0
    index_files: int = 0
    objects_indexed: int = 0
    objects_needed: int = 0
    read_data: bool = False
    packs_read: int = 0
    issues: list[FsckIssue] = field(default_factory=list)
    repaired: bool = False
    repair: dict | None = None
    seconds: float = 0.0
    store_checked: bool = True  # False: a workspace's databases must be rebuilt before its store can be checked
    rebuilt: list[str] = field(default_factory=list)  # a workspace's own databases rebuilt (what, from what)
    lost: list[str] = field(default_factory=list)  # what a rebuild could not bring back

    @property
    def errors(self) -> list[FsckIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok, "errors": len(self.errors)}


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:NAMED])
    return shown + (f" and {len(ids) - NAMED} more" if len(ids) > NAMED else "")


class _Checker:
    def __init__(self, target: StoreTarget, read_data: bool, grace: float, jobs: int) -> None:
        self.t = target
        self.backend = target.backend
        self.read_data = read_data
        self.grace = grace
        self.jobs = jobs
        self.footers: dict[str, list[PackEntry]] = {}

    def run(self) -> tuple[FsckReport, StoreView]:
        started = time.monotonic()
        rep = FsckReport(self.t.label, read_data=self.read_data)
        add = rep.issues.append
        refs = self._refs(rep)
        view = StoreView(self.backend, self.t.tmp_dir, self.jobs)
        try:
            view.load()
        except BaseException:
            view.close()
            raise
        rep.packs = len(view.packs)
        rep.bytes = sum(p.size for p in view.packs.values())
        rep.index_files = len(view.index_files)
        rep.objects_indexed = view.db.execute("SELECT COUNT(DISTINCT id) FROM entries WHERE indexed=1").fetchone()[0]
        for index_id, why in view.unreadable_index:
            add(FsckIssue("error", "index files", f"index file {index_id} is unreadable: {why}", True))
        for pid, files in sorted(view.dangling.items()):
            add(FsckIssue("error", "index entries", f"index file(s) {_names(sorted(files))} list pack {pid}, which is missing", True))
        for pid, (listed, real) in sorted(view.size_mismatch.items()):
            add(FsckIssue("error", "index entries", f"pack {pid} is {real} bytes; the index says {listed}", True))
        self._footers(view, rep)
        records = read_condemned(self.backend)
        condemned = {p for r in records for p in r.packs}
        now = time.time()
        pruned = read_pruned(self.backend)
        rep.pruned_versions = len(pruned)
        try:
            extra = self.t.extra_roots() if self.t.extra_roots else ExtraRoots()
            reach = Reachability(view, refs, extra, Retention(), pruned, now, self.t.partial).run()
        except DatactlError as exc:
            add(FsckIssue("error", "objects", exc.message))
            reach = None
        if reach is not None:
            rep.versions = len(reach.commits)
            rep.objects_needed = reach.live_count()
            for m in reach.missing:
                if m.kind == "commit" and m.where.startswith("ref "):
                    add(FsckIssue("error", "refs", f"{m.where} names commit {m.id}, which is not in the store"))
                else:
                    add(FsckIssue("error", "objects", f"{m.kind} {m.id} ({m.where}) is in no pack"))
            outside = [r[0] for r in view.db.execute(
                "SELECT DISTINCT e.pack FROM live l JOIN entries e ON e.id = l.id WHERE e.indexed = 0"
                " AND NOT EXISTS (SELECT 1 FROM entries i WHERE i.id = l.id AND i.indexed = 1)"
            )]
            count = view.db.execute(
                "SELECT COUNT(*) FROM live l WHERE NOT EXISTS (SELECT 1 FROM entries i WHERE i.id = l.id AND i.indexed = 1)"
                " AND EXISTS (SELECT 1 FROM entries e WHERE e.id = l.id)"
            ).fetchone()[0]
            if count:
                add(FsckIssue("error", "packs missing from the index",
                              f"{count} object(s) the refs need are only in pack(s) the index does not list: {_names(sorted(outside))}", True))
        unindexed = view.unindexed_packs()
        young = sorted(p for p in unindexed if view.packs[p].mtime > now - self.grace and p not in condemned)
        old = sorted(p for p in unindexed if p not in young and p not in condemned)
        if old:
            add(FsckIssue("warning", "packs missing from the index",
                          f"{len(old)} pack(s) are missing from the index: {_names(old)} (left by interrupted pushes? gc removes them if nothing needs them)", True))
        if young:
            add(FsckIssue("info", "packs missing from the index", f"{len(young)} recent pack(s) not indexed yet (pushes in progress?): {_names(young)}"))
        waiting = sorted(p for p in condemned if p in view.packs)
        if waiting:
            add(FsckIssue("info", "gc", f"{len(waiting)} pack(s) condemned by gc, deleted by a later gc run: {_names(waiting)}"))
        if self.read_data:
            self._read_data(view, rep)
        rep.seconds = round(time.monotonic() - started, 3)
        return rep, view

    def _refs(self, rep: FsckReport) -> list[RefValue]:
        refs = RefStore(self.backend)
        out = []
        for info in self.backend.list("refs/"):
            ref = info.key[len("refs/"):]
            try:
                commit = refs.get(ref)
            except StoreFormatError as exc:
                rep.issues.append(FsckIssue("error", "refs", exc.message))
                continue
            if commit is not None:
                out.append(RefValue(ref, commit))
        rep.refs = len(out)
        return out

    def _footers(self, view: StoreView, rep: FsckReport) -> None:
        unindexed = view.unindexed_packs()
        rows = []
        for pid, entries, why in view.read_footers([p for p in view.packs if p not in view.size_mismatch] + list(view.size_mismatch)):
            if entries is None:
                if why != "vanished":
                    rep.issues.append(FsckIssue("error", "damaged packs", f"pack {pid} is damaged: {why}"))
                continue
            self.footers[pid] = entries
            if pid in unindexed or pid in view.size_mismatch:
                rows.extend((pid, e) for e in entries)
                continue
            listed = {e.id: e for e in entries}
            indexed = view.db.execute(
                "SELECT id, type, codec, offset, stored_len, raw_len FROM entries WHERE pack=? AND indexed=1", (pid,)
            ).fetchall()
            wrong = []
            for oid, typ, codec, offset, stored_len, raw_len in indexed:
                f = listed.get(oid)
                if f is None or (int(f.type), f.codec, f.offset, f.stored_len, f.raw_len) != (typ, codec, offset, stored_len, raw_len):
                    wrong.append(oid)
            if wrong:
                rep.issues.append(FsckIssue("error", "index entries",
                                            f"the index places {len(wrong)} object(s) in pack {pid} where its footer does not: {_names(wrong)}", True))
        with view.db:
            view.db.execute("BEGIN")
            view.db.executemany(
                "INSERT OR IGNORE INTO entries(pack,id,type,codec,offset,stored_len,raw_len,indexed) VALUES (?,?,?,?,?,?,?,0)",
                ((p, e.id, int(e.type), e.codec, e.offset, e.stored_len, e.raw_len) for p, e in rows),
            )
        view.unindexed_loaded = True

    def _read_data(self, view: StoreView, rep: FsckReport) -> None:
        def check(pid: str) -> str | None:
            h = new_hasher()
            try:
                with self.backend.open_read(pack_key(pid)) as f:
                    while block := f.read(1 << 20):
                        h.update(block)
            except KeyNotFound:
                return None
            return None if h.hexdigest() == pid else h.hexdigest()

        packs = sorted(view.packs)
        for pid, got in zip(packs, parallel_map(check, packs, self.jobs, "datactl-fsck")):
            rep.packs_read += 1
            if got is not None:
                rep.issues.append(FsckIssue("error", "damaged packs", f"pack {pid} is corrupt: its bytes hash to {got}"))


def fsck(
    target: StoreTarget,
    *,
    repair: bool = False,
    read_data: bool = False,
    grace: float | str = DEFAULT_GRACE,
    jobs: int = 8,
) -> FsckReport:
    """Check ``target``; with ``repair``, rebuild its index from the packs' footers and check again."""
    grace_s = parse_duration(grace)
    if not repair:
        rep, view = _Checker(target, read_data, grace_s, jobs).run()
        view.close()
        return rep
    started = time.monotonic()
    with StoreLock(target.backend, "fsck --repair") as _lock:
        checker = _Checker(target, read_data, grace_s, jobs)
        before, view = checker.run()
        try:
            fixable = [i for i in before.issues if i.repairable and i.severity in ("error", "warning")]
            written: set[str] = set()
            deleted = 0
            packs = {pid: (view.packs[pid].size, entries) for pid, entries in checker.footers.items() if pid in view.packs}
            if fixable:
                for chunk in split_listing(packs, INDEX_FILE_OBJECTS):
                    written.add(write_index_file(target.backend, chunk))
                for index_id in sorted(set(view.index_files) - written):
                    target.backend.delete(index_file_key(index_id))
                    deleted += 1
                if target.after_change is not None:
                    target.after_change(IndexChange(added_packs=packs, rebuilt=True))
        finally:
            view.close()
        if fixable:
            after, view = _Checker(target, False, grace_s, jobs).run()
            view.close()
            # Damage found only by reading data stays reported.
            after.issues.extend(i for i in before.issues if i.check == "damaged packs" and i not in after.issues)
            after.read_data, after.packs_read = before.read_data, before.packs_read
        else:
            after = before
        after.repaired = bool(fixable)
        after.repair = {
            "issues_before": len([i for i in before.issues if i.severity != "info"]),
            "packs_indexed": len(packs) if fixable else 0,
            "index_files_written": len(written),
            "index_files_deleted": deleted,
        }
    after.seconds = round(time.monotonic() - started, 3)
    return after
