"""What a store holds right now, read from its own files (never a local cache of them) for gc and fsck."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from typing import Iterable, Iterator

from datactl.core.errors import CorruptObject, ObjectMissing, StoreDamaged
from datactl.core.parallel import parallel_map
from datactl.format.layout import PACKS_PREFIX, key_name
from datactl.format.pack import ObjectType, PackEntry
from datactl.store.indexfiles import list_index_files, read_index_files
from datactl.store.packread import META_GAP, Location, PackReader, ReadObject
from storage_backends import Backend, BackendError, KeyNotFound

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
        self.packs_reader = PackReader(backend, backend.url, jobs)
        self.index_reads = 0

    @property
    def requests(self) -> int:
        """Reads made so far: index files, pack footers, objects."""
        return self.index_reads + self.packs_reader.stats.requests

    def close(self) -> None:
        self.packs_reader.close()
        self.db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass

    # -- loading ---------------------------------------------------------------------------------

    def list_index_files(self) -> dict[str, float]:
        return {index_id: info.mtime for index_id, info in list_index_files(self.backend).items()}

    def read_index_files(self, ids: Iterable[str]) -> Iterator[tuple[str, dict | None, str | None]]:
        """(id, listing, None), or (id, None, why) for an index file gone ("vanished") or damaged."""
        for index_id, listing, problem in read_index_files(self.backend, ids, self.jobs):
            yield index_id, listing, (problem.message if problem is not None else "vanished" if listing is None else None)

    def load(self) -> None:
        files = self.list_index_files()
        pack_rows = {}
        loaded_files = {}
        with self.db:
            self.db.execute("BEGIN")
            for index_id, packs, why in self.read_index_files(sorted(files)):
                self.index_reads += 1
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
        for info in self.backend.list(PACKS_PREFIX):
            pid = key_name(info.key)
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

    def entries_of(self, pack: str, where: str = "") -> list[PackEntry]:
        """The objects index files list in ``pack``, in offset order (``where``: an extra SQL condition on ``e``)."""
        rows = self.db.execute(
            "SELECT id, type, codec, offset, stored_len, raw_len FROM entries e WHERE pack=? AND indexed=1" + where + " ORDER BY offset", (pack,)
        ).fetchall()
        return [PackEntry(r[0], ObjectType(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def unindexed_packs(self) -> set[str]:
        listed = {r[0] for r in self.db.execute("SELECT DISTINCT pack FROM listed")}
        return set(self.packs) - listed

    def read_footers(self, packs: Iterable[str]) -> Iterator[tuple[str, list[PackEntry] | None, str | None]]:
        def one(pid: str) -> tuple[str, list[PackEntry] | None, str | None]:
            try:
                return pid, self.packs_reader.read_footer(pid, self.packs[pid].size), None
            except KeyNotFound:
                return pid, None, "vanished"
            except (CorruptObject, BackendError) as exc:
                return pid, None, getattr(exc, "message", None) or str(exc)

        yield from parallel_map(one, sorted(packs), self.jobs, "datactl-footer")

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

    def read_located(self, locs: list[Location]) -> Iterator[ReadObject]:
        """The objects at ``locs``, verified, by coalesced ranged reads in parallel."""
        try:
            yield from self.packs_reader.read_located(locs, META_GAP)
        except ObjectMissing as exc:
            raise StoreDamaged(f"{exc.message} while gc was reading it", "is another gc running without the lock? run `datactl fsck`") from None

    def read_objects(self, ids: Iterable[str]) -> tuple[dict[str, bytes], list[str]]:
        """Verified raw bytes of each id found; and the ids found nowhere."""
        locs, missing = [], []
        for oid in dict.fromkeys(ids):
            loc = self.locate(oid)
            if loc is None:
                missing.append(oid)
            else:
                locs.append(loc)
        got = {obj.entry.id: obj.raw for obj in self.read_located(locs)}
        return got, missing
