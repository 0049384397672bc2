"""Verifying a version in any store, local or remote, without downloading its data unless asked.

``verify_version`` checks every object reachable from a commit (its history
included):

1. history: every commit reads and hashes right;
2. trees: every tree and chunk list reads and hashes right;
3. objects indexed: every chunk is listed in the store's index;
4. packs present: every pack holding a needed object exists, at its indexed size;
5. pack footers: each such pack's footer (read by two small ranged requests)
   lists every needed object at the place the index says;
6. bytes re-hashed: with ``deep`` every file (with ``sample`` a random
   fraction of them) is read back, each chunk hashed against its id and each
   file against its digest, like restic's ``check --read-data-subset``;
7. external sources: the source of every external file of the version
   checked (not of its history: ``verify REF`` checks an older one) still
   holds the recorded object (a stat: size and version / ETag, nothing
   downloaded); with ``deep`` its bytes are read from the source and
   re-hashed instead.

Only commits, trees, chunk lists and footers are read unless 6 is asked for.
Every problem names the object (and the file it belongs to).

A workspace holds only part of what its remote has (a clone fetches the
data of one version, ``clone --path`` of some of its paths): ``must_be_local``
says which files' data the store must hold. The data of other files that is
in no pack of the store (not in its index) is counted as not fetched, not as
damage; whatever the index lists is checked as usual.
"""

from __future__ import annotations

import collections
import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Container, Iterator, Sequence

# Whether the file at (commit id, path) must have its data in the store being verified.
MustBeLocal = Callable[[str, str], bool]

from datactl.core.errors import CorruptObject, DatactlError, ObjectMissing, StoreNotListable
from datactl.core.parallel import parallel_map
from datactl.core.progress import NullProgress, ProgressReporter
from datactl.format.layout import PACKS_PREFIX, pack_key
from datactl.format.objects import FILE, Commit, TreeEntry, decode_chunklist
from datactl.format.pack import PackEntry
from datactl.remote.remotestore import RemoteStore
from datactl.remote.source import resolve_on_remote
from datactl.store.chunkedfile import open_chunked
from datactl.store.packread import META_GAP
from datactl.store.reader import ObjectReader
from datactl.store.records import read_pruned
from datactl.store.repository import Repository
from datactl.store.source import CHUNK_CACHE_BYTES
from datactl.store.sourceread import SourceBackends, source_moved
from datactl.store.walk import walk_commits, walk_trees
from storage_backends import KeyNotFound

# Small files re-hashed together: their chunks come in one or a few ranged reads.
BATCH_BYTES = 2 * 1024 * 1024
BATCH_FILES = 512
CHECKS = ("history", "trees", "objects indexed", "packs present", "pack footers", "bytes re-hashed", "external sources")
# Objects named per missing pack in its problem message (all are in ``details``).
NAMED_PER_PACK = 5
# Files whose chunk lists are read together while walking trees.
SETTLE_FILES = 10_000


@dataclass
class VerifyProblem:
    check: str
    message: str
    object: str | None = None
    path: str | None = None
    commit: str | None = None


@dataclass
class StoreVerifyReport:
    """What ``verify_version`` found; ``problems`` are plain strings, ``details`` structured."""

    commit: str
    store: str
    deep: bool
    sample: float | None = None
    commits: int = 0
    trees: int = 0
    files: int = 0
    chunks: int = 0
    packs: int = 0
    files_rehashed: int = 0
    external: int = 0  # external files whose sources were checked
    pruned: int = 0  # older versions whose files gc pruned: history and trees checked, not files
    not_fetched: int = 0  # chunks and chunk lists a partial copy never fetched (see ``must_be_local``)
    fetch_from: str | None = None  # where what was not fetched can be had (a workspace's remote)
    history_cut: list[str] = field(default_factory=list)  # versions a shallow history ends at: checked, parents not
    bytes_read: int = 0
    requests: int = 0
    details: list[VerifyProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.details

    @property
    def problems(self) -> list[str]:
        return [p.message for p in self.details]

    def checks(self) -> dict[str, list[VerifyProblem]]:
        """Each check with its problems ('bytes re-hashed' only when it ran)."""
        shown = [c for c in CHECKS if (c != "bytes re-hashed" or self.deep or self.sample) and (c != "external sources" or self.external)]
        out: dict[str, list[VerifyProblem]] = {c: [] for c in shown}
        for p in self.details:
            out.setdefault(p.check, []).append(p)
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["details"] = [asdict(p) for p in self.details]
        return {**d, "problems": self.problems, "ok": self.ok}


class _Verifier:
    def __init__(
        self, reader: ObjectReader, report: StoreVerifyReport, progress: ProgressReporter, seed: int | None, jobs: int, must_be_local: MustBeLocal
    ) -> None:
        self.must_be_local = must_be_local
        self.unfetched: set[str] = set()  # objects not in the store that no file needing them locally has met yet
        self.reader = reader
        self.report = report
        self.progress = progress
        self.rng = random.Random(seed)
        self.jobs = jobs
        self.lock = threading.Lock()
        self.chunk_owner: dict[str, tuple[str, str]] = {}  # chunk -> (path, commit) where first seen
        self.needed: dict[str, list[PackEntry]] = collections.defaultdict(list)
        self.seen_needed: set[str] = set()
        self.failed: dict[str, DatactlError] = {}  # objects that could not be read, and why
        self.sources = SourceBackends()
        self.external: dict[tuple[str, str], tuple[TreeEntry, str, str]] = {}  # (url, digest) -> (entry, path, commit)

    def problem(self, check: str, message: str, obj: str | None = None, path: str | None = None, commit: str | None = None) -> None:
        with self.lock:
            self.report.details.append(VerifyProblem(check, message, obj, path, commit))

    # -- 1. history ------------------------------------------------------------

    def _read(self, ids: Sequence[str]) -> dict[str, bytes]:
        """A ReadBatch that never raises for a damaged or missing object: it notes why in ``failed``."""
        try:
            return self.reader.read_batch(ids, META_GAP)
        except (ObjectMissing, CorruptObject):
            pass
        got: dict[str, bytes] = {}
        for oid in ids:  # find which ones
            try:
                got.update(self.reader.read_batch([oid]))
            except (ObjectMissing, CorruptObject) as exc:
                self.failed[oid] = exc
        return got

    def _why(self, oid: str) -> str:
        exc = self.failed.pop(oid, None)
        return exc.message if exc is not None else f"object {oid} is missing"

    def commits(self, start: str, cut: Container[str] = frozenset()) -> list[tuple[str, Commit]]:
        def absent(cid: str) -> None:
            self.problem("history", f"commit {cid}: {self._why(cid)}", cid, commit=cid)

        def damaged(cid: str, exc: DatactlError) -> None:
            self.problem("history", exc.message, cid, commit=cid)

        out = list(walk_commits(self._read, [start], cut=cut, on_absent=absent, on_damaged=damaged))
        self.report.commits = len(out)
        self.report.history_cut = sorted(cid for cid, c in out if cid in cut and c.parents)
        return out

    # -- 2, 3. trees and their files -----------------------------------------

    def trees(self, commits: list[tuple[str, Commit]], on_file: Callable[[TreeEntry, str, str, dict[str, bytes]], None]) -> None:
        lists: dict[str, tuple[str, str]] = {}  # chunk list -> (path, commit) where first seen
        files: list[tuple[TreeEntry, str, str]] = []

        def damaged(tid: str, exc: DatactlError) -> None:
            self.problem("trees", f"tree {tid}: {exc.message}", tid)

        def settle() -> None:
            listed = self._read(list(lists)) if lists else {}
            local = {e.chunklist for e, path, cid in files if self.must_be_local(cid, path)}
            for oid, (path, cid) in lists.items():
                if oid not in listed:
                    if oid not in local and isinstance(self.failed.get(oid), ObjectMissing) and self.reader.lookup(oid) is None:
                        self.failed.pop(oid)
                        self.unfetched.add(oid)
                        continue
                    self.problem("trees", f"chunk list of {path} in commit {cid[:12]}: {self._why(oid)}", oid, path, cid)
            for e, path, cid in files:
                on_file(e, path, cid, listed)
            lists.clear()
            files.clear()

        for visit in walk_trees(self._read, ((c.tree, cid) for cid, c in commits), on_damaged=damaged):
            cid, where = visit.tag, visit.path or "/"
            if visit.tree is None:
                self.problem("trees", f"tree of {where} in commit {cid[:12]}: {self._why(visit.id)}", visit.id, where, cid)
                continue
            self.report.trees += 1
            for e in visit.tree.entries:
                if e.kind == FILE:
                    path = visit.path + e.name
                    if e.chunklist is not None:
                        lists.setdefault(e.chunklist, (path, cid))
                    files.append((e, path, cid))
            if len(files) >= SETTLE_FILES:
                settle()
        settle()

    def file(self, e, path: str, cid: str, listed: dict[str, bytes], local: bool) -> list[str] | None:
        """Record a file's chunks as needed (``local``: they must be in the store); return its chunk ids (None if
        unreadable or not fetched)."""
        if e.chunklist is not None:
            if e.chunklist not in listed:
                return None
            try:
                chunks = decode_chunklist(e.chunklist, listed[e.chunklist])
            except DatactlError as exc:
                self.problem("trees", f"{path} in commit {cid[:12]}: {exc.message}", e.chunklist, path, cid)
                return None
            self._need(e.chunklist, path, cid, local)
        else:
            chunks = list(e.chunks)
        for chunk in chunks:
            if chunk in self.unfetched:
                if not local:
                    continue
                self.unfetched.discard(chunk)  # a file that must be local needs it after all: a problem below
            elif chunk in self.chunk_owner:
                continue
            self.chunk_owner[chunk] = (path, cid)
            self._need(chunk, path, cid, local)
        return chunks

    def _need(self, oid: str, path: str, cid: str, local: bool) -> None:
        loc = self.reader.lookup(oid)
        if loc is None:
            if not local:
                self.unfetched.add(oid)
                return
            self.problem("objects indexed", f"{path} in commit {cid[:12]}: chunk {oid} is missing (no pack of {self.reader.label} holds it)", oid, path, cid)
            return
        if oid not in self.seen_needed:
            self.seen_needed.add(oid)
            self.needed[loc.pack].append(loc.entry)

    # -- 4, 5. packs and footers -----------------------------------------------

    def _owner(self, oid: str) -> tuple[str | None, str | None]:
        path, cid = self.chunk_owner.get(oid, (None, None))
        return path, cid

    def _lost(self, check: str, pack: str, entries: list[PackEntry], why: str) -> None:
        named = []
        for e in entries[:NAMED_PER_PACK]:
            path, cid = self._owner(e.id)
            named.append(f"{e.type.name.lower()} {e.id}" + (f" ({path} in commit {cid[:12]})" if path and cid else ""))
        more = f" and {len(entries) - NAMED_PER_PACK} more" if len(entries) > NAMED_PER_PACK else ""
        path, cid = self._owner(entries[0].id)
        self.problem(check, f"pack {pack} {why}: {len(entries)} needed object(s) lost: {', '.join(named)}{more}", entries[0].id, path, cid)

    def packs(self) -> None:
        backend = self.reader.backend
        self.report.packs = len(self.needed)
        if not self.needed:
            return
        with self.reader.index_lock:
            indexed_sizes = self.reader.index.packs()
        try:
            listed = {info.key: info.size for info in backend.list(PACKS_PREFIX)}
        except StoreNotListable:  # an HTTP store: the index's sizes stand in, and reading each footer finds a pack gone or cut
            listed = {pack_key(pack): size for pack, size in indexed_sizes.items()}
        present = []
        for pack in sorted(self.needed):
            entries = sorted(self.needed[pack], key=lambda e: e.offset)
            size = listed.get(pack_key(pack))
            if size is None:
                self._lost("packs present", pack, entries, f"is missing from {self.reader.label}")
            elif pack in indexed_sizes and indexed_sizes[pack] != size:
                self._lost("packs present", pack, entries, f"is {size} bytes, the index says {indexed_sizes[pack]} (truncated or replaced)")
            else:
                present.append((pack, size, entries))
        for _ in parallel_map(lambda p: self._footer(*p), present, self.jobs, "datactl-footer"):
            pass

    def _footer(self, pack: str, size: int, entries: list[PackEntry]) -> None:
        try:
            listed = {e.id: e for e in self.reader.packs.read_footer(pack, size)}
        except KeyNotFound:
            self._lost("packs present", pack, entries, f"is missing from {self.reader.label}")
            return
        except CorruptObject as exc:
            self._lost("pack footers", pack, entries, f"has an unreadable footer ({exc.message})")
            return
        wrong = [e for e in entries if listed.get(e.id) != e]
        if wrong:
            self._lost("pack footers", pack, wrong, "does not hold what the index says (its footer lists them elsewhere or not at all)")

    # -- 6. re-hashing ---------------------------------------------------------

    def rehash_batch(self, files: list[tuple[TreeEntry, str, str]]) -> list[tuple[TreeEntry, str, str, int | DatactlError]]:
        """Re-hash several small files, their chunks fetched together in a few ranged reads."""
        ids = [c for e, _, _ in files for c in e.chunks]
        if len(files) > 1 and ids:
            try:
                self.reader.fetch(ids)  # verified, and kept in the reader's cache
            except (CorruptObject, ObjectMissing):
                pass  # file by file below, so the damaged file is the one named
        out: list[tuple[TreeEntry, str, str, int | DatactlError]] = []
        for e, path, cid in files:
            try:
                out.append((e, path, cid, self.rehash(e, path, cid)))
            except (CorruptObject, ObjectMissing) as exc:
                out.append((e, path, cid, exc))
        return out

    def rehash(self, e, path: str, cid: str) -> int:
        f = open_chunked(self.reader, e, path, self.sources)
        n = 0
        buf = bytearray(1 << 20)
        while True:
            got = f.readinto(buf)
            if not got:
                break
            n += got
            self.progress.advance(got)
        return n


    # -- 7. external sources ---------------------------------------------------

    def check_sources(self, deep: bool) -> None:
        """Each external file's source against the recorded object: by a stat, or (``deep``) by re-hashing its bytes."""

        def check(item: tuple[TreeEntry, str, str]) -> tuple[int, str | None]:
            e, path, cid = item
            assert e.source is not None
            try:
                if deep:
                    return self.rehash(e, path, cid), None
                why = source_moved(self.sources, e)
            except DatactlError as exc:
                return 0, exc.message
            return 0, None if why is None else f"{path}: its source {e.source.url} {why}"

        items = list(self.external.values())
        for (e, path, cid), (n, why) in zip(items, parallel_map(check, items, self.jobs, "datactl-source")):
            self.report.external += 1
            self.report.bytes_read += n
            self.report.files_rehashed += 1 if deep and why is None else 0
            if why is not None:
                self.problem("external sources", f"{why} (in commit {cid[:12]})", e.digest, path, cid)


def verify_version(
    reader: ObjectReader,
    commit_id: str,
    *,
    deep: bool = False,
    sample: float | None = None,
    seed: int | None = None,
    progress: ProgressReporter | None = None,
    jobs: int = 8,
    must_be_local: MustBeLocal | None = None,
    cut: Container[str] = frozenset(),
) -> StoreVerifyReport:
    """Check every object reachable from ``commit_id`` in the store ``reader`` reads (see the module doc).

    ``must_be_local`` (default: every file) says which files' data must be in that store. The parents of
    commits in ``cut`` (where a shallow workspace's history ends) are not checked; the report names the cut
    commits the walk reached (``history_cut``).
    """
    import time

    if sample is not None and not 0.0 < sample <= 1.0:
        raise ValueError("sample must be a fraction in (0, 1]")
    started = time.monotonic()
    progress = progress or NullProgress()
    report = StoreVerifyReport(commit_id, reader.label, deep, sample)
    v = _Verifier(reader, report, progress, seed, jobs, must_be_local or (lambda _cid, _path: True))
    seen_files: dict[str, bool] = {}  # file digest -> whether a file with it must be local
    rehash_all = deep or sample == 1.0
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="datactl-verify") if (deep or sample) else None
    window: collections.deque[Future] = collections.deque()
    batch: list[tuple[TreeEntry, str, str]] = []
    batch_bytes = 0

    def settle(fut: Future) -> None:
        for e, path, cid, result in fut.result():
            if isinstance(result, int):
                report.bytes_read += result
                report.files_rehashed += 1
                continue
            obj = next((w for w in result.message.split() if len(w) == 32 and all(ch in "0123456789abcdef" for ch in w)), e.digest)
            v.problem("bytes re-hashed", f"{result.message} (in commit {cid[:12]})", obj, path, cid)

    def submit() -> None:
        nonlocal batch, batch_bytes
        if batch:
            window.append(pool.submit(v.rehash_batch, batch))  # type: ignore[union-attr]
            batch, batch_bytes = [], 0
            while len(window) > 2 * jobs:
                settle(window.popleft())

    def on_file(e, path: str, cid: str, listed: dict[str, bytes]) -> None:
        nonlocal batch_bytes
        if e.is_external:  # its bytes are at its source, checked once per object after the walk
            if cid == commit_id:  # sources outlive no promise: an older version's is that version's to check
                v.external.setdefault((e.source.url, e.digest), (e, path, cid))
            return
        local = v.must_be_local(cid, path)
        before = seen_files.get(e.digest)
        if before is not None and (before or not local):
            return
        seen_files[e.digest] = local
        if before is None:
            report.files += 1
        chunks = v.file(e, path, cid, listed, local)
        if pool is None or chunks is None or (not local and any(c in v.unfetched for c in chunks)):
            return
        if rehash_all or v.rng.random() < (sample or 0.0):
            if e.chunklist is not None or e.size >= BATCH_BYTES:
                window.append(pool.submit(v.rehash_batch, [(e, path, cid)]))
            else:
                batch.append((e, path, cid))
                batch_bytes += e.size
                if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                    submit()

    progress.start("verifying", None)
    try:
        try:
            commits = v.commits(commit_id, cut)
            # Older versions whose files gc pruned (--keep-last ...): their trees are checked, not their files.
            pruned = read_pruned(reader.backend) - {commit_id}
            v.trees([c for c in commits if c[0] not in pruned], on_file)
            if any(c[0] in pruned for c in commits):
                report.pruned = sum(1 for c in commits if c[0] in pruned)
                v.trees([c for c in commits if c[0] in pruned], lambda *args: None)
            submit()
            while window:
                settle(window.popleft())
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        v.check_sources(deep)
        report.chunks = len(v.chunk_owner)
        report.not_fetched = len(v.unfetched)
        v.packs()
    finally:
        progress.stop()
    if not (deep or sample):
        report.bytes_read = 0
    report.requests = reader.stats.requests
    report.seconds = time.monotonic() - started
    return report


def verify_local(repo: Repository, commit_id: str, **kwargs) -> StoreVerifyReport:
    """``verify_version`` on a local store (a workspace's own)."""
    reader = ObjectReader(repo.backend, repo.index, cache_bytes=CHUNK_CACHE_BYTES)
    try:
        return verify_version(reader, commit_id, **kwargs)
    finally:
        reader.close()


def verify_remote(rs: RemoteStore, ref: str, *, name: str | None = None, kind: str = "dataset", **kwargs) -> StoreVerifyReport:
    """``verify_version`` of REF on a remote store, reading only metadata and footers unless deep/sample."""
    rs.sync_index()
    reader = rs.reader(cache_bytes=CHUNK_CACHE_BYTES)
    try:
        commit_id = resolve_on_remote(rs, reader, ref, name, kind)
        return verify_version(reader, commit_id, **kwargs)
    finally:
        reader.close()


def iter_problem_lines(report: StoreVerifyReport) -> Iterator[str]:
    for p in report.details:
        yield f"[{p.check}] {p.message}"
