"""What a store's refs reach, and what a retention policy keeps (for gc and fsck).

Marks go to the store view's ``live`` table: ``required`` objects must exist
(metadata, and the files of versions not pruned before); objects of versions
pruned earlier are kept when present but may be gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, Sequence

from datactl.core.errors import DatactlError, StoreDamaged
from datactl.format.layout import is_tag_ref
from datactl.format.objects import FILE, Commit, TreeEntry, decode_chunklist
from datactl.store.refs import RefValue
from datactl.store.walk import BATCH, walk_commits, walk_trees
from datactl.upkeep.storeview import StoreView
from datactl.upkeep.targets import ExtraRoots


@dataclass(frozen=True)
class Retention:
    """Which versions keep their files. With no option set, every version a ref reaches does.

    ``keep_last``: the last N versions of each dataset's (and model's) first-parent
    history; ``keep_tags``: tagged versions; ``keep_within``: versions younger
    than this many seconds. The version each dataset or model ref names always
    keeps its files, and so does every version a kept version names as an input.
    """

    keep_last: int | None = None
    keep_tags: bool = False
    keep_within: float | None = None

    @property
    def active(self) -> bool:
        return self.keep_last is not None or self.keep_tags or self.keep_within is not None

    def to_dict(self) -> dict:
        return {"keep_last": self.keep_last, "keep_tags": self.keep_tags, "older_than_seconds": self.keep_within}


@dataclass
class Missing:
    kind: str  # commit, tree, chunk list, chunk
    id: str
    where: str  # the ref or version that needs it

    def text(self) -> str:
        return f"{self.kind} {self.id} ({self.where})"


class Reachability:
    """The commits, trees, chunk lists and chunks that refs reach, and what a retention keeps.

    Marks go to the view's ``live`` table: ``required`` objects must exist
    (metadata, and the files of versions not pruned before); objects of
    versions pruned earlier are kept when present but may be gone.
    """

    def __init__(
        self, view: StoreView, refs: list[RefValue], extra: ExtraRoots, retention: Retention, pruned: set[str], now: float, partial: bool = False
    ) -> None:
        self.view = view
        self.partial = partial  # a workspace's store: file data (chunks, chunk lists) may be absent, fetched on demand
        self.refs = refs
        self.extra = extra
        self.retention = retention
        self.pruned_before = pruned
        self.now = now
        self.commits: dict[str, Commit] = {}
        self.external: set[str] = set()  # inputs this store does not hold
        self.missing: list[Missing] = []
        self.full: set[str] = set()
        self.meta: set[str] = set()
        self._where: dict[str, str] = {}
        self._seen_trees: set[str] = set()
        self._marks: list[tuple[str, int]] = []

    # marks
    def _mark(self, oid: str, required: bool) -> None:
        self._marks.append((oid, 1 if required else 0))
        if len(self._marks) >= 50_000:
            self._flush_marks()

    def _flush_marks(self) -> None:
        if self._marks:
            with self.view.db:
                self.view.db.execute("BEGIN")
                self.view.db.executemany(
                    "INSERT INTO live(id, required) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET required = MAX(required, excluded.required)",
                    self._marks,
                )
            self._marks = []

    def run(self) -> "Reachability":
        self._walk_commits()
        self._choose_full()
        self._walk_all_trees()
        self._flush_marks()
        self._check_present()
        return self

    def _read(self, ids: Sequence[str]) -> dict[str, bytes]:
        return self.view.read_objects(ids)[0]

    def _walk_commits(self) -> None:
        tips = list(dict.fromkeys([r.commit for r in self.refs] + list(self.extra.commits)))
        for r in self.refs:
            self._where.setdefault(r.commit, f"ref {r.ref}")
        for c in self.extra.commits:
            self._where.setdefault(c, "the workspace")
        absent: list[str] = []

        def damaged(cid: str, exc: DatactlError) -> None:
            raise StoreDamaged(f"commit {cid} in {self.view.backend.url} is unreadable: {exc.message}", "run `datactl fsck`")

        for cid, c in walk_commits(self._read, tips, inputs=True, cut=self.extra.cut, on_absent=absent.append, on_damaged=damaged):
            self.commits[cid] = c
            self._mark(cid, True)
            where = self._where.get(cid, f"version {cid[:12]}")
            for p in (*c.parents, *c.inputs):
                self._where.setdefault(p, where)
        required = set(tips)
        for c in self.commits.values():
            required.update(c.parents)
        for cid in absent:
            if cid in required:
                self.missing.append(Missing("commit", cid, self._where.get(cid, "?")))
            else:
                self.external.add(cid)

    def _first_parent_chain(self, tip: str, n: int | None) -> Iterator[str]:
        cid: str | None = tip
        k = 0
        while cid is not None and cid in self.commits and (n is None or k < n):
            yield cid
            k += 1
            parents = self.commits[cid].parents
            cid = parents[0] if parents else None

    def _history(self, starts: Iterable[str]) -> set[str]:
        out: set[str] = set()
        stack = [c for c in starts if c in self.commits]
        while stack:
            cid = stack.pop()
            if cid in out:
                continue
            out.add(cid)
            stack.extend(p for p in self.commits[cid].parents if p in self.commits)
        return out

    def _choose_full(self) -> None:
        r = self.retention
        if not r.active:
            full = self._history([ref.commit for ref in self.refs] + list(self.extra.commits))
        else:
            full = {c for c in self.extra.commits if c in self.commits}
            for ref in self.refs:
                if is_tag_ref(ref.ref):
                    if r.keep_tags and ref.commit in self.commits:
                        full.add(ref.commit)
                    continue
                full.update(self._first_parent_chain(ref.commit, max(1, r.keep_last or 1)))
            if r.keep_within is not None:
                cutoff = self.now - r.keep_within
                for cid, c in self.commits.items():
                    try:
                        t = datetime.fromisoformat(c.time.replace("Z", "+00:00")).timestamp()
                    except ValueError:
                        t = self.now
                    if t >= cutoff:
                        full.add(cid)
        # A version a kept version was made from keeps its files (not its history).
        stack = list(full)
        while stack:
            for i in self.commits[stack.pop()].inputs:
                if i in self.commits and i not in full:
                    full.add(i)
                    stack.append(i)
        self.full = full
        self.meta = set(self.commits) - full

    def _walk_all_trees(self) -> None:
        fresh = [c for c in self.commits if c in self.full and c not in self.pruned_before]
        again = [c for c in self.commits if c in self.full and c in self.pruned_before]
        self._walk_trees(fresh, chunks=True, required_chunks=True)
        self._walk_files(self.extra.entries, "the workspace's staged files", required=True)
        self._walk_trees(again, chunks=True, required_chunks=False)
        self._walk_trees([c for c in self.commits if c in self.meta], chunks=False, required_chunks=False)

    def _walk_files(self, entries: Iterable[TreeEntry], where: str, required: bool) -> None:
        owners: dict[str, str] = {}
        for e in entries:
            if e.kind != FILE or e.is_external:  # an external file's chunks stay at its source
                continue
            if e.chunklist:
                self._mark(e.chunklist, True)
                owners.setdefault(e.chunklist, where)
            for ch in e.chunks:
                self._mark(ch, required)
            if len(owners) >= BATCH:
                self._mark_listed_chunks(owners, required)
        self._mark_listed_chunks(owners, required)

    def _mark_listed_chunks(self, owners: dict[str, str], required: bool) -> None:
        """Mark the chunks each chunk list in ``owners`` (list -> who needs it) names; then forget them."""
        if not owners:
            return
        got, missing = self.view.read_objects(list(owners))
        for oid in missing if not self.partial else ():
            self.missing.append(Missing("chunk list", oid, owners[oid]))
        for oid, raw in got.items():
            try:
                chunks = decode_chunklist(oid, raw)
            except DatactlError as exc:
                raise StoreDamaged(f"chunk list {oid} is unreadable: {exc.message}", "run `datactl fsck`") from None
            for ch in chunks:
                self._mark(ch, required)
        owners.clear()

    def _walk_trees(self, commits: list[str], chunks: bool, required_chunks: bool) -> None:
        owners: dict[str, str] = {}  # chunk list -> the version that needs it

        def damaged(tid: str, exc: DatactlError) -> None:
            raise StoreDamaged(f"tree {tid} is unreadable: {exc.message}", "run `datactl fsck`")

        roots = [(self.commits[cid].tree, cid) for cid in commits]
        for visit in walk_trees(self._read, roots, seen=self._seen_trees, on_damaged=damaged):
            self._mark(visit.id, True)
            if visit.tree is None:
                self.missing.append(Missing("tree", visit.id, f"version {visit.tag[:12]}"))
                continue
            for e in visit.tree.entries:
                if e.kind != FILE or e.is_external:
                    continue
                if e.chunklist:
                    self._mark(e.chunklist, True)
                    if chunks:
                        owners.setdefault(e.chunklist, f"version {visit.tag[:12]}")
                elif chunks:
                    for ch in e.chunks:
                        self._mark(ch, required_chunks)
            if len(owners) >= BATCH:
                self._mark_listed_chunks(owners, required_chunks)
        self._mark_listed_chunks(owners, required_chunks)

    def _check_present(self) -> None:
        def absent() -> list[str]:
            return [r[0] for r in self.view.db.execute(
                "SELECT id FROM live WHERE required=1 AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = live.id) LIMIT 1000"
            )]

        if not self.view.unindexed_loaded and self.view.db.execute(
            "SELECT 1 FROM live WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = live.id) LIMIT 1"
        ).fetchone():
            self.view.load_unindexed()  # live objects outside the index: find them in unindexed packs (to rescue them)
        # What is still absent here are chunks and chunk lists (a missing commit or tree was found while reading);
        # a workspace's store holds only the file data that was pulled.
        gone = absent() if not self.partial else []
        known = {m.id for m in self.missing}
        for oid in gone:
            if oid not in known:
                self.missing.append(Missing("chunk", oid, "a kept version"))

    def live_count(self) -> int:
        return self.view.db.execute("SELECT COUNT(*) FROM live").fetchone()[0]
