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
import json
import os
import re
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

from datactl.core.errors import CorruptObject, DatactlError, UsageError
from datactl.core.ids import is_object_id, object_id
from datactl.format.objects import DIR, FILE, Commit, TreeEntry, decode_chunklist, decode_commit, decode_tree
from datactl.format.pack import ObjectType, PackEntry, PackWriter, pack_key
from datactl.store.refs import RefStore, RefValue
from datactl.store.repository import decode_index_file, index_file_key, read_footer, verify_stored, write_index_file
from storage_backends import Backend, BackendError, KeyNotFound, Versioned

DEFAULT_GRACE = 24 * 3600.0
DEFAULT_REPACK_THRESHOLD = 0.5
LOCK_KEY = "locks/gc"
# A lock not refreshed for this long belongs to a gc that died (its owner refreshes it every LOCK_REFRESH).
LOCK_STALE = 30 * 60.0
LOCK_REFRESH = 60.0
CONDEMNED_PREFIX = "gc/condemned/"
PRUNED_PREFIX = "gc/pruned/"
INDEX_FILE_OBJECTS = 100_000  # objects per index file that gc writes
SMALL_INDEX_OBJECTS = INDEX_FILE_OBJECTS // 2  # index files below this are merged
READ_BATCH = 2_000
MAX_GAP = 256 * 1024
MAX_SPAN = 8 * 1024 * 1024
CRASH_ENV = "DATACTL_TEST_CRASH_AT"  # tests: exit abruptly at a named step
STEP_DELAY_ENV = "DATACTL_TEST_STEP_DELAY"


class GcLocked(DatactlError):
    """Another gc (or fsck --repair) holds the store lock."""


class StoreDamaged(DatactlError):
    """Refs reach objects the store does not hold (or cannot read): gc deletes nothing."""


_crash_hits: collections.Counter = collections.Counter()


def crash_point(name: str) -> None:
    """Tests only: die here like a killed process when ``DATACTL_TEST_CRASH_AT`` is ``name`` (or ``name#N``,
    the Nth time), and pause ``DATACTL_TEST_STEP_DELAY`` seconds at every step (to kill at random moments)."""
    delay = os.environ.get(STEP_DELAY_ENV)
    if delay:
        time.sleep(float(delay))
    want = os.environ.get(CRASH_ENV)
    if not want:
        return
    target, _, nth = want.partition("#")
    if target == name:
        _crash_hits[name] += 1
        if _crash_hits[name] >= int(nth or 1):
            os._exit(137)


# -- durations ----------------------------------------------------------------------------------

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")


def parse_duration(text: str | float | int) -> float:
    """'24h', '7d', '90m', '1d12h', '30' (seconds) -> seconds."""
    if isinstance(text, (int, float)):
        if text < 0:
            raise UsageError(f"a duration cannot be negative ({text})")
        return float(text)
    t = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not t or pos != len(t):
        raise UsageError(f"cannot read duration {text!r}", "write it like 30s, 15m, 24h, 7d, 2w or 1d12h")
    return total


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:g}s"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the store lock --------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


class StoreLock:
    """``locks/gc``: keeps two gcs (and fsck --repair) apart. Pushes never take it.

    Created with put-if-absent, refreshed by compare-and-swap every
    ``refresh_every`` seconds from a background thread, removed by
    compare-and-swap. A lock is stale when its process is gone (same host) or
    it was not refreshed for ``stale_after`` seconds; a stale lock is taken over
    by compare-and-swap, so two gcs cannot both take it over.
    """

    def __init__(self, backend: Backend, command: str = "gc", stale_after: float = LOCK_STALE, refresh_every: float = LOCK_REFRESH) -> None:
        self.backend = backend
        self.command = command
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.id = uuid.uuid4().hex
        self.took_over: str | None = None
        self._seq = 0
        self._version: Versioned | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    def _doc(self) -> bytes:
        self._seq += 1
        pid = os.getpid()
        return json.dumps(
            {
                "format": 1, "id": self.id, "command": self.command, "host": socket.gethostname(), "pid": pid,
                "process_start": _process_start(pid), "time": _iso(time.time()), "seq": self._seq,
            },
            sort_keys=True,
        ).encode()

    @staticmethod
    def describe(data: bytes) -> dict:
        try:
            doc = json.loads(data)
            return doc if isinstance(doc, dict) else {}
        except ValueError:
            return {}

    def _age(self) -> float | None:
        for info in self.backend.list("locks/"):
            if info.key == LOCK_KEY:
                return time.time() - info.mtime
        return None

    def _stale_reason(self, doc: dict) -> str | None:
        if doc.get("host") == socket.gethostname() and isinstance(doc.get("pid"), int):
            if not _process_alive(doc["pid"], doc.get("process_start")):
                return f"its process {doc['pid']} on {doc['host']} is gone"
        age = self._age()
        if age is not None and age > self.stale_after:
            return f"it was not refreshed for {format_duration(round(age))}"
        return None

    def acquire(self) -> "StoreLock":
        for _ in range(5):
            data = self._doc()
            if self.backend.put_if_absent(LOCK_KEY, data):
                current = self.backend.get_versioned(LOCK_KEY)
                if current is not None and self.describe(current.data).get("id") == self.id:
                    self._version = current
                    break
                continue
            current = self.backend.get_versioned(LOCK_KEY)
            if current is None:
                continue
            doc = self.describe(current.data)
            if doc.get("id") == self.id:  # our put went through but its answer was lost
                self._version = current
                break
            reason = self._stale_reason(doc)
            if reason is None:
                who = f"{doc.get('command', 'gc')} by pid {doc.get('pid', '?')} on {doc.get('host', '?')} since {doc.get('time', '?')}"
                raise GcLocked(
                    f"{self.backend.url} is locked ({LOCK_KEY}: {who})",
                    "another gc or fsck --repair is running; wait for it (a lock from a dead process is taken over "
                    f"automatically, one from another host after {format_duration(self.stale_after)} without refresh)",
                )
            if self.backend.compare_and_swap(LOCK_KEY, data, current):
                self.took_over = reason
                self._version = self.backend.get_versioned(LOCK_KEY)
                break
        else:
            raise GcLocked(f"could not take {LOCK_KEY} in {self.backend.url}: it keeps changing", "try again")
        if self.refresh_every > 0:
            self._thread = threading.Thread(target=self._beat, name="datactl-gc-lock", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                self.refresh()
            except DatactlError:
                return
            except BackendError:
                continue  # try again at the next beat; a lock stays valid for LOCK_STALE

    def refresh(self) -> None:
        with self._mutex:
            if self.lost:
                raise GcLocked(self.lost)
            data = self._doc()
            if not self.backend.compare_and_swap(LOCK_KEY, data, self._version):
                current = self.backend.get_versioned(LOCK_KEY)
                if current is not None and self.describe(current.data).get("id") == self.id and current.data == data:
                    self._version = current  # our write landed, its answer was lost
                    return
                self.lost = f"the gc lock of {self.backend.url} was taken over by another process"
                raise GcLocked(self.lost, "nothing more was changed; run gc again")
            self._version = self.backend.get_versioned(LOCK_KEY)

    def check(self) -> None:
        """Raise if the lock was lost (before every destructive step)."""
        if self.lost:
            raise GcLocked(self.lost, "nothing more was changed; run gc again")

    def server_time(self) -> float:
        """The store's clock: refresh the lock, then read its modification time."""
        self.refresh()
        for info in self.backend.list("locks/"):
            if info.key == LOCK_KEY:
                return info.mtime
        return time.time()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._mutex:
            try:
                current = self.backend.get_versioned(LOCK_KEY)
                if current is not None and self.describe(current.data).get("id") == self.id:
                    self.backend.compare_and_swap(LOCK_KEY, None, current)
            except BackendError:
                pass  # a lock left behind goes stale

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- records under gc/ -------------------------------------------------------------------------------


@dataclass
class CondemnRecord:
    """``gc/condemned/<run>``: packs a gc run condemned; the record's modification time is when.

    A condemned pack stays in the store, and in the index with its garbage
    objects, for at least the grace period; writers must not rely on its objects
    from the moment they can see the record (``RemoteStore.has`` says no).
    """

    run: str
    packs: dict[str, int]
    mtime: float = 0.0

    @property
    def key(self) -> str:
        return CONDEMNED_PREFIX + self.run

    def encode(self) -> bytes:
        return json.dumps({"format": 1, "run": self.run, "time": _iso(time.time()), "packs": dict(sorted(self.packs.items()))}).encode()


def read_condemned(backend: Backend) -> list[CondemnRecord]:
    out = []
    for info in backend.list(CONDEMNED_PREFIX):
        try:
            doc = json.loads(backend.get(info.key))
            out.append(CondemnRecord(str(doc["run"]), {str(k): int(v) for k, v in doc["packs"].items()}, info.mtime))
        except KeyNotFound:
            continue
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # an unreadable record condemns nothing: its packs are condemned again later
    return out


def condemned_packs(backend: Backend) -> set[str]:
    """Packs a gc condemned (deleted once the grace period is over).

    A writer must never index such a pack again or rely on its objects.
    """
    out: set[str] = set()
    for rec in read_condemned(backend):
        out.update(rec.packs)
    return out


def read_pruned(backend: Backend) -> set[str]:
    """Versions whose files gc may have deleted (their commits and trees are kept)."""
    out: set[str] = set()
    for info in backend.list(PRUNED_PREFIX):
        try:
            doc = json.loads(backend.get(info.key))
            out.update(c for c in doc.get("commits", []) if isinstance(c, str) and is_object_id(c))
        except KeyNotFound:
            continue
        except ValueError:
            continue
    return out


def pruned_commits(backend: Backend) -> set[str]:
    """Public name for ``read_pruned`` (verify uses it to skip file checks of pruned versions)."""
    try:
        return read_pruned(backend)
    except BackendError:
        return set()


def write_pruned(backend: Backend, commits: Iterable[str], reason: str) -> str:
    data = json.dumps({"format": 1, "time": _iso(time.time()), "reason": reason, "commits": sorted(commits)}).encode()
    rid = object_id(data)
    backend.put_if_absent(PRUNED_PREFIX + rid, data)
    return rid


# -- what the store holds -------------------------------------------------------------------------------

_VIEW_SCHEMA = """
CREATE TABLE packs (id TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE index_files (id TEXT PRIMARY KEY, mtime REAL NOT NULL, objects INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE listed (pack TEXT NOT NULL, index_file TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (pack, index_file)) WITHOUT ROWID;
CREATE TABLE entries (
    pack TEXT NOT NULL, id TEXT NOT NULL, type INTEGER NOT NULL, codec INTEGER NOT NULL,
    offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL, indexed INTEGER NOT NULL,
    PRIMARY KEY (pack, id)
) WITHOUT ROWID;
CREATE INDEX entries_id ON entries(id);
CREATE TABLE live (id TEXT PRIMARY KEY, required INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class PackInfo:
    id: str
    size: int
    mtime: float


class StoreView:
    """What a store holds right now, read from its own files into a temporary SQLite database.

    ``load`` lists ``index/`` then ``packs/`` and reads every index file; the
    footers of unindexed packs are read only when an object is not found in
    the index (``load_unindexed``). Memory stays small: entries live on disk.
    """

    def __init__(self, backend: Backend, tmp_dir: str, jobs: int = 8) -> None:
        self.backend = backend
        self.jobs = jobs
        os.makedirs(tmp_dir, exist_ok=True)
        fd, self.path = tempfile.mkstemp(prefix="gc-view-", suffix=".db", dir=tmp_dir)
        os.close(fd)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA temp_store=FILE")
        self.db.executescript(_VIEW_SCHEMA)
        self.packs: dict[str, PackInfo] = {}
        self.index_files: dict[str, float] = {}
        self.unreadable_index: list[tuple[str, str]] = []  # (index id, why)
        self.dangling: dict[str, set[str]] = {}  # pack listed but absent -> index files
        self.size_mismatch: dict[str, tuple[int, int]] = {}  # pack -> (listed size, real size)
        self.unindexed_loaded = False
        self.bad_footers: dict[str, str] = {}
        self.requests = 0
        self.bytes_read = 0
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="datactl-gc")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass

    # -- loading ---------------------------------------------------------------------------------

    def list_index_files(self) -> dict[str, float]:
        return {info.key.rsplit("/", 1)[-1]: info.mtime for info in self.backend.list("index/")}

    def _get_index(self, index_id: str) -> tuple[str, dict | None, str | None]:
        try:
            data = self.backend.get(index_file_key(index_id))
        except KeyNotFound:
            return index_id, None, "vanished"
        try:
            return index_id, decode_index_file(index_id, data), None
        except CorruptObject as exc:
            return index_id, None, exc.message

    def read_index_files(self, ids: Iterable[str]) -> Iterator[tuple[str, dict | None, str | None]]:
        yield from self._pool.map(self._get_index, list(ids))

    def load(self) -> None:
        files = self.list_index_files()
        pack_rows = {}
        loaded_files = {}
        with self.db:
            self.db.execute("BEGIN")
            for index_id, packs, why in self.read_index_files(sorted(files)):
                self.requests += 1
                if packs is None:
                    if why != "vanished":
                        self.unreadable_index.append((index_id, why or "unreadable"))
                        loaded_files[index_id] = 0
                    continue
                count = 0
                for pid, (size, entries) in packs.items():
                    self.db.execute("INSERT OR IGNORE INTO listed(pack, index_file, size) VALUES (?,?,?)", (pid, index_id, size))
                    self.db.executemany(
                        "INSERT OR IGNORE INTO entries(pack,id,type,codec,offset,stored_len,raw_len,indexed) VALUES (?,?,?,?,?,?,?,1)",
                        ((pid, e.id, int(e.type), e.codec, e.offset, e.stored_len, e.raw_len) for e in entries),
                    )
                    count += len(entries)
                loaded_files[index_id] = count
            for index_id, count in loaded_files.items():
                self.db.execute("INSERT INTO index_files(id, mtime, objects) VALUES (?,?,?)", (index_id, files[index_id], count))
        self.index_files = {i: files[i] for i in loaded_files}
        for info in self.backend.list("packs/"):
            pid = info.key.rsplit("/", 1)[-1]
            if ".tmp" in pid:
                continue
            pack_rows[pid] = PackInfo(pid, info.size, info.mtime)
        self.packs = pack_rows
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO packs(id, size, mtime) VALUES (?,?,?)", ((p.id, p.size, p.mtime) for p in pack_rows.values()))
            for pid, index_id, size in self.db.execute("SELECT pack, index_file, size FROM listed").fetchall():
                info = pack_rows.get(pid)
                if info is None:
                    self.dangling.setdefault(pid, set()).add(index_id)
                elif info.size != size:
                    self.size_mismatch[pid] = (size, info.size)
            # Entries in packs that are not there (or not as listed) locate nothing.
            bad = list(self.dangling) + list(self.size_mismatch)
            self.db.executemany("DELETE FROM entries WHERE pack=?", ((p,) for p in bad))

    def indexed_packs(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT pack FROM listed") if r[0] in self.packs}

    def unindexed_packs(self) -> set[str]:
        listed = {r[0] for r in self.db.execute("SELECT DISTINCT pack FROM listed")}
        return set(self.packs) - listed

    def read_footer(self, pack_id: str, size: int) -> list[PackEntry]:
        return read_footer(self.backend, pack_id, size)

    def read_footers(self, packs: Iterable[str]) -> Iterator[tuple[str, list[PackEntry] | None, str | None]]:
        def one(pid: str) -> tuple[str, list[PackEntry] | None, str | None]:
            try:
                return pid, self.read_footer(pid, self.packs[pid].size), None
            except KeyNotFound:
                return pid, None, "vanished"
            except (CorruptObject, BackendError) as exc:
                return pid, None, getattr(exc, "message", None) or str(exc)

        for pid, entries, why in self._pool.map(one, sorted(packs)):
            self.requests += 2
            yield pid, entries, why

    def load_unindexed(self) -> None:
        """Read the footers of packs no index file lists, so their objects can be found (and rescued)."""
        if self.unindexed_loaded:
            return
        self.unindexed_loaded = True
        with self.db:
            self.db.execute("BEGIN")
            for pid, entries, why in self.read_footers(self.unindexed_packs()):
                if entries is None:
                    if why != "vanished":
                        self.bad_footers[pid] = why or "unreadable"
                    continue
                self.db.executemany(
                    "INSERT OR IGNORE INTO entries(pack,id,type,codec,offset,stored_len,raw_len,indexed) VALUES (?,?,?,?,?,?,?,0)",
                    ((pid, e.id, int(e.type), e.codec, e.offset, e.stored_len, e.raw_len) for e in entries),
                )

    # -- reading objects ---------------------------------------------------------------------------

    def locate(self, oid: str) -> tuple[str, PackEntry] | None:
        row = self.db.execute(
            "SELECT pack, type, codec, offset, stored_len, raw_len FROM entries WHERE id=? ORDER BY indexed DESC, pack LIMIT 1", (oid,)
        ).fetchone()
        if row is None and not self.unindexed_loaded:
            self.load_unindexed()
            return self.locate(oid)
        if row is None:
            return None
        return row[0], PackEntry(oid, ObjectType(row[1]), row[2], row[3], row[4], row[5])

    def fetch_stored(self, locs: list[tuple[str, PackEntry]]) -> Iterator[tuple[str, PackEntry, bytes]]:
        """(pack, entry, stored bytes) of each location, by coalesced ranged reads in parallel."""
        window: collections.deque = collections.deque()
        for rng in coalesce(locs):
            window.append(self._pool.submit(self._get_range, rng))
            if len(window) > 2 * self.jobs:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()

    def _get_range(self, rng: tuple[str, int, int, list[PackEntry]]) -> list[tuple[str, PackEntry, bytes]]:
        pack, start, end, entries = rng
        blob = self.backend.get_range(pack_key(pack), start, end - start)
        self.requests += 1
        self.bytes_read += len(blob)
        return [(pack, e, blob[e.offset - start : e.offset - start + e.stored_len]) for e in entries]

    def read_objects(self, ids: Iterable[str]) -> tuple[dict[str, bytes], list[str]]:
        """Verified raw bytes of each id found; and the ids found nowhere."""
        locs, missing = [], []
        for oid in dict.fromkeys(ids):
            loc = self.locate(oid)
            if loc is None:
                missing.append(oid)
            else:
                locs.append(loc)
        got: dict[str, bytes] = {}
        try:
            for pack, entry, stored in self.fetch_stored(locs):
                got[entry.id] = verify_stored(entry.id, entry, stored, pack)
        except KeyNotFound as exc:
            raise StoreDamaged(f"{exc.key} vanished from {self.backend.url} while gc was reading it", "is another gc running without the lock? run `datactl fsck`") from None
        return got, missing


def coalesce(locs: list[tuple[str, PackEntry]], max_gap: int = MAX_GAP, max_span: int = MAX_SPAN) -> list[tuple[str, int, int, list[PackEntry]]]:
    """Group object locations into (pack, start, end, entries) ranges worth one GET each."""
    by_pack: dict[str, list[PackEntry]] = collections.defaultdict(list)
    for pack, e in locs:
        by_pack[pack].append(e)
    out = []
    for pack in sorted(by_pack):
        entries = sorted(by_pack[pack], key=lambda e: e.offset)
        group: list[PackEntry] = []
        for e in entries:
            if group and (e.offset - (group[-1].offset + group[-1].stored_len) > max_gap or e.offset + e.stored_len - group[0].offset > max_span):
                out.append((pack, group[0].offset, group[-1].offset + group[-1].stored_len, group))
                group = []
            group.append(e)
        if group:
            out.append((pack, group[0].offset, group[-1].offset + group[-1].stored_len, group))
    return out


# -- reachability -------------------------------------------------------------------------------------


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
class ExtraRoots:
    """Roots besides refs: a workspace's checked-out, pending and merge commits and its staged files."""

    commits: list[str] = field(default_factory=list)
    entries: list[TreeEntry] = field(default_factory=list)


def is_tag_ref(ref: str) -> bool:
    return ref.startswith("tags/")


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

    def _walk_commits(self) -> None:
        tips = [r.commit for r in self.refs] + list(self.extra.commits)
        for r in self.refs:
            self._where.setdefault(r.commit, f"ref {r.ref}")
        for c in self.extra.commits:
            self._where.setdefault(c, "the workspace")
        frontier = list(dict.fromkeys(tips))
        seen = set(frontier)
        while frontier:
            for i in range(0, len(frontier), READ_BATCH):
                batch = frontier[i : i + READ_BATCH]
                got, _ = self.view.read_objects(batch)
                for cid in batch:
                    if cid not in got:
                        continue
                    try:
                        c = decode_commit(cid, got[cid])
                    except DatactlError as exc:
                        raise StoreDamaged(f"commit {cid} in {self.view.backend.url} is unreadable: {exc.message}", "run `datactl fsck`") from None
                    self.commits[cid] = c
            nxt = []
            for cid in frontier:
                c = self.commits.get(cid)
                if c is None:
                    continue
                where = self._where.get(cid, f"version {cid[:12]}")
                for p in (*c.parents, *c.inputs):
                    self._where.setdefault(p, where)
                    if p not in seen:
                        seen.add(p)
                        nxt.append(p)
            frontier = nxt
        required = set(tips)
        for c in self.commits.values():
            required.update(c.parents)
        for cid in seen:
            if cid in self.commits:
                self._mark(cid, True)
            elif cid in required:
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
        lists = []
        for e in entries:
            if e.kind != FILE:
                continue
            if e.chunklist:
                self._mark(e.chunklist, True)
                lists.append(e.chunklist)
            for ch in e.chunks:
                self._mark(ch, required)
        self._read_lists(lists, where, required)

    def _read_lists(self, lists: list[str], where: str, required: bool) -> None:
        for i in range(0, len(lists), READ_BATCH):
            batch = list(dict.fromkeys(lists[i : i + READ_BATCH]))
            got, missing = self.view.read_objects(batch)
            for oid in missing if not self.partial else ():
                self.missing.append(Missing("chunk list", oid, where))
            for oid, raw in got.items():
                try:
                    chunks = decode_chunklist(oid, raw)
                except DatactlError as exc:
                    raise StoreDamaged(f"chunk list {oid} is unreadable: {exc.message}", "run `datactl fsck`") from None
                for ch in chunks:
                    self._mark(ch, required)

    def _walk_trees(self, commits: list[str], chunks: bool, required_chunks: bool) -> None:
        level = []
        for cid in commits:
            t = self.commits[cid].tree
            if t not in self._seen_trees:
                self._seen_trees.add(t)
                level.append((t, cid))
        while level:
            nxt = []
            for i in range(0, len(level), READ_BATCH):
                batch = level[i : i + READ_BATCH]
                got, _ = self.view.read_objects([t for t, _ in batch])
                lists: list[tuple[str, str]] = []
                for tid, cid in batch:
                    self._mark(tid, True)
                    if tid not in got:
                        self.missing.append(Missing("tree", tid, f"version {cid[:12]}"))
                        continue
                    try:
                        tree = decode_tree(tid, got[tid])
                    except DatactlError as exc:
                        raise StoreDamaged(f"tree {tid} (version {cid[:12]}) is unreadable: {exc.message}", "run `datactl fsck`") from None
                    for e in tree.entries:
                        if e.kind == DIR:
                            if e.digest not in self._seen_trees:
                                self._seen_trees.add(e.digest)
                                nxt.append((e.digest, cid))
                        elif e.kind == FILE:
                            if e.chunklist:
                                self._mark(e.chunklist, True)
                                if chunks:
                                    lists.append((e.chunklist, cid))
                            elif chunks:
                                for ch in e.chunks:
                                    self._mark(ch, required_chunks)
                owner = dict(reversed(lists))
                got_lists, missing_lists = self.view.read_objects(list(owner))
                for oid in missing_lists if not self.partial else ():
                    self.missing.append(Missing("chunk list", oid, f"version {owner[oid][:12]}"))
                for oid, raw in got_lists.items():
                    try:
                        ids = decode_chunklist(oid, raw)
                    except DatactlError as exc:
                        raise StoreDamaged(f"chunk list {oid} is unreadable: {exc.message}", "run `datactl fsck`") from None
                    for ch in ids:
                        self._mark(ch, required_chunks)
            level = nxt

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


# -- targets --------------------------------------------------------------------------------------------


@dataclass
class StoreTarget:
    """A store to gc, check or rewrite: its backend plus what the local side must know.

    ``extra_roots`` (a workspace's store): what the workspace holds besides refs.
    ``after_change``: refresh local caches of the store's index once it changed.
    """

    backend: Backend
    label: str
    tmp_dir: str
    pack_size: int
    extra_roots: Callable[[], ExtraRoots] | None = None
    after_change: Callable[["IndexChange"], None] | None = None
    partial: bool = False  # file data may be absent (a workspace's store holds what was pulled)


@dataclass
class IndexChange:
    """What a gc or repair did to the index, for local caches of it."""

    removed_packs: set[str] = field(default_factory=set)
    added_packs: dict[str, tuple[int, list[PackEntry]]] = field(default_factory=dict)
    relocated: dict[str, tuple[int, list[PackEntry]]] = field(default_factory=dict)  # kept packs holding objects of removed ones
    rebuilt: bool = False  # the whole index was rewritten


def workspace_target(ws) -> StoreTarget:
    """A workspace's own store (call under ``ws.locked()``)."""
    def roots() -> ExtraRoots:
        extra = ExtraRoots()
        for key in ("head", "pending_commit", "merge_head"):
            v = ws.stage.get_meta(key)
            if v and is_object_id(v):
                extra.commits.append(v)
        for row in ws.stage.iter_rows():
            if row.entry is not None and row.entry.kind == FILE:
                extra.entries.append(row.entry)
        return extra

    def after(change: IndexChange) -> None:
        index = ws.repo.index
        if change.rebuilt:
            index.clear()
            for pid, (size, entries) in change.added_packs.items():
                index.add_pack(pid, size, entries)
            return
        for pid in change.removed_packs:
            index.remove_pack(pid)
        for pid, (size, entries) in {**change.added_packs, **change.relocated}.items():
            index.add_pack(pid, size, entries)

    return StoreTarget(ws.repo.backend, f"the store of {ws.root}", os.path.join(ws.dotdir, "store", "tmp"), ws.repo.config.pack_size, roots, after, partial=True)


def remote_target(rs, tmp_dir: str) -> StoreTarget:
    """A remote store; its local index cache (``rs``) is refreshed after a change."""

    def after(change: IndexChange) -> None:
        try:
            rs.sync_index()
        except BackendError:
            pass

    return StoreTarget(rs.backend, rs.spec.label, tmp_dir, rs.config().pack_size, None, after)


def url_target(backend: Backend, tmp_dir: str | None = None) -> StoreTarget:
    """A store by URL, with no local cache."""
    from datactl.format.storeconfig import read_store_config

    return StoreTarget(backend, backend.url, tmp_dir or tempfile.gettempdir(), read_store_config(backend).pack_size)


# -- the plan and its execution ---------------------------------------------------------------------------


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


@dataclass
class _Plan:
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
    listing: dict[str, tuple[int, list[PackEntry]]] = field(default_factory=dict)  # what the new index files list
    old_records: list[CondemnRecord] = field(default_factory=list)
    newly_pruned: set[str] = field(default_factory=set)


def _entries(view: StoreView, pack: str, where: str = "") -> list[PackEntry]:
    rows = view.db.execute(
        "SELECT id, type, codec, offset, stored_len, raw_len FROM entries e WHERE pack=? AND indexed=1" + where + " ORDER BY offset", (pack,)
    ).fetchall()
    return [PackEntry(r[0], ObjectType(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


_NOT_LIVE = " AND NOT EXISTS (SELECT 1 FROM live l WHERE l.id = e.id)"


class _Collector:
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
            plan = self._plan(view, reach, records, pruned, now)
            self._report_plan(view, plan)
            if not self.dry_run:
                self._execute(view, plan)
            return bool(plan.condemn)
        finally:
            rep.requests += view.requests
            view.close()

    # -- planning ---------------------------------------------------------------------------------

    def _plan(self, view: StoreView, reach: Reachability, records: list[CondemnRecord], pruned: set[str], now: float) -> _Plan:
        plan = _Plan(old_records=records, newly_pruned=reach.meta - pruned)
        cutoff = now - self.grace
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
                elif garbage > 0 and garbage >= self.threshold * total:
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

    def _report_plan(self, view: StoreView, plan: _Plan) -> None:
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

    def _execute(self, view: StoreView, plan: _Plan) -> None:
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
            for chunk in _split_for_index({**plan.listing, **new_packs}):
                written.add(write_index_file(self.backend, chunk))
            rep.index_files_written += len(written)
        crash_point("after-index-written")
        self.lock.check()
        for index_id in sorted(plan.rewrite_index - written):
            self.backend.delete(index_file_key(index_id))
            rep.index_files_deleted += 1
            crash_point("during-index-delete")
        crash_point("after-index-deleted")
        if plan.condemn:
            self.lock.check()
            record = CondemnRecord(f"{_iso(time.time()).replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}", plan.condemn)
            self.backend.put_bytes(record.key, record.encode())
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

    def _change(self, view: StoreView, plan: _Plan, deleted: set[str], new_packs: dict[str, tuple[int, list[PackEntry]]]) -> "IndexChange":
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

    def _copy(self, view: StoreView, locs: list[tuple[str, PackEntry]]) -> dict[str, tuple[int, list[PackEntry]]]:
        """Copy objects into new packs (data and metadata apart), each verified; upload them."""
        self.lock.check()
        writers: dict[bool, PackWriter] = {}
        done: dict[str, tuple[int, list[PackEntry]]] = {}

        def seal(is_data: bool) -> None:
            w = writers.pop(is_data)
            pid, path, entries = w.finish()
            size = os.path.getsize(path)
            try:
                self.backend.put_file(pack_key(pid), path)
            finally:
                os.unlink(path)
            done[pid] = (size, entries)
            crash_point("during-copy")

        try:
            for pack, entry, stored in view.fetch_stored(locs):
                verify_stored(entry.id, entry, stored, pack)
                is_data = entry.type == ObjectType.CHUNK
                w = writers.get(is_data)
                if w is None:
                    w = writers[is_data] = PackWriter(self.t.tmp_dir)
                w.add(entry.id, entry.type, entry.codec, stored, entry.raw_len)
                if w.size >= self.t.pack_size:
                    seal(is_data)
            for is_data in list(writers):
                seal(is_data)
        except CorruptObject as exc:
            raise StoreDamaged(f"{exc.message}; gc deletes nothing", "run `datactl fsck --read-data` to find every damaged pack") from None
        finally:
            for w in writers.values():
                w.abort()
        return done

    def _delete_packs(self, view: StoreView, plan: _Plan) -> list[str]:
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


def _split_for_index(packs: dict[str, tuple[int, list[PackEntry]]]) -> Iterator[dict[str, tuple[int, list[PackEntry]]]]:
    chunk: dict[str, tuple[int, list[PackEntry]]] = {}
    n = 0
    for pid in sorted(packs):
        size, entries = packs[pid]
        if chunk and n + len(entries) > INDEX_FILE_OBJECTS:
            yield chunk
            chunk, n = {}, 0
        chunk[pid] = (size, entries)
        n += len(entries)
    if chunk:
        yield chunk


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
            present = {i.key.rsplit("/", 1)[-1]: i.size for i in target.backend.list("packs/")}
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
            report.pending_until = _iso(until) if until is not None else None
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


# -- removing refs ------------------------------------------------------------------------------------------


@dataclass
class DeletedRefs:
    store: str
    name: str
    kind: str | None
    refs: dict[str, str] = field(default_factory=dict)  # ref -> the commit it named

    def to_dict(self) -> dict:
        return asdict(self)


def delete_ref(backend: Backend, ref: str) -> str | None:
    """Remove one ref by compare-and-swap; return the commit it named (None if it was absent)."""
    refs = RefStore(backend)
    current = refs.get(ref)
    if current is None:
        return None
    refs.update(ref, None, expected=current)
    return current


def delete_dataset(backend: Backend, name: str, kind: str | None = None) -> DeletedRefs:
    """Remove a dataset's (or model's) head ref and all its tags. gc reclaims the space later."""
    from datactl.core.errors import UnknownRef
    from datactl.store.refs import HEAD_PREFIX, check_name, head_ref

    check_name(name)
    refs = RefStore(backend)
    kinds = [kind] if kind else list(HEAD_PREFIX)
    found = [k for k in kinds if refs.get(head_ref(k, name)) is not None]
    if len(found) > 1:
        raise UsageError(f"{name} is both a dataset and a model in {backend.url}", "say which with --kind dataset or --kind model")
    tags = refs.list(f"tags/{name}/")
    if not found and not tags:
        raise UnknownRef(f"{backend.url} has no {kind or 'dataset or model'} named {name}", "`datactl datasets` lists them")
    out = DeletedRefs(backend.url, name, found[0] if found else None)
    for t in tags:
        old = delete_ref(backend, t.ref)
        if old is not None:
            out.refs[t.ref] = old
    if found:
        ref = head_ref(found[0], name)
        old = delete_ref(backend, ref)
        if old is not None:
            out.refs[ref] = old
    return out


def delete_tag(backend: Backend, name: str, tag: str) -> str:
    """Remove tag ``tag`` of ``name``; return the commit it named."""
    from datactl.core.errors import UnknownRef
    from datactl.store.refs import tag_ref

    ref = tag_ref(name, tag)
    old = delete_ref(backend, ref)
    if old is None:
        raise UnknownRef(f"{name} has no tag {tag} in {backend.url}", "`datactl tag` lists the tags")
    return old
