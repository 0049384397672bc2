"""The object index: which object is in which pack at which offset.

Kept in SQLite on the local side; the store itself holds the same facts in
its packs' footers (and ``index/`` files), so this database is a cache that
``rebuild`` can always recreate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from datactl.core.sqlite import Database
from datactl.format.pack import ObjectType, PackEntry


@dataclass(frozen=True)
class ObjectLocation:
    """An object's pack and its place in it."""

    pack: str
    entry: PackEntry

_IN_BATCH = 500  # ids per IN (...) query; SQLite allows 32,766 parameters
_TYPES = {int(t): t for t in ObjectType}  # a dict lookup: calling the enum per row costs more than the query

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY,
    type INTEGER NOT NULL,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    codec INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_pack ON objects(pack);
CREATE TABLE IF NOT EXISTS packs (id TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_files (id TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class ObjectIndex(Database):
    """Lookups and inserts over the ``objects`` and ``packs`` tables."""

    def __init__(self, path: str, hint: str = "run `datactl fsck --repair` to rebuild it from the packs") -> None:
        super().__init__(path, _SCHEMA, hint)

    def lookup(self, object_id: str) -> ObjectLocation | None:
        row = self._db.execute(
            "SELECT type, pack, offset, stored_len, raw_len, codec FROM objects WHERE id=?", (object_id,)
        ).fetchone()
        if row is None:
            return None
        return ObjectLocation(row[1], PackEntry(object_id, ObjectType(row[0]), row[5], row[2], row[3], row[4]))

    def has(self, object_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM objects WHERE id=?", (object_id,)).fetchone() is not None

    def lookup_many(self, object_ids: Sequence[str]) -> dict[str, ObjectLocation]:
        """Where each of ``object_ids`` that is indexed is: one query per few hundred ids."""
        found: dict[str, ObjectLocation] = {}
        for i in range(0, len(object_ids), _IN_BATCH):
            part = object_ids[i : i + _IN_BATCH]
            marks = ",".join("?" * len(part))
            for oid, typ, pack, offset, stored_len, raw_len, codec in self._db.execute(
                f"SELECT id, type, pack, offset, stored_len, raw_len, codec FROM objects WHERE id IN ({marks})", part
            ):
                found[oid] = ObjectLocation(pack, PackEntry(oid, _TYPES.get(typ) or ObjectType(typ), codec, offset, stored_len, raw_len))
        return found

    def raw_lens(self, object_ids: Sequence[str]) -> dict[str, int]:
        """The uncompressed size of each of ``object_ids`` that is indexed (a file's chunk layout, without locating each chunk)."""
        return self._lengths("raw_len", object_ids)

    def stored_lens(self, object_ids: Sequence[str]) -> dict[str, int]:
        """The stored (compressed) size of each of ``object_ids`` that is indexed (what a download of them fetches)."""
        return self._lengths("stored_len", object_ids)

    def _lengths(self, column: str, object_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(object_ids), _IN_BATCH):
            part = object_ids[i : i + _IN_BATCH]
            found.update(self._db.execute(f"SELECT id, {column} FROM objects WHERE id IN ({','.join('?' * len(part))})", part))
        return found

    def present(self, object_ids: Sequence[str]) -> set[str]:
        """Which of ``object_ids`` are indexed: one query per few hundred ids instead of one each."""
        found: set[str] = set()
        for i in range(0, len(object_ids), _IN_BATCH):
            part = object_ids[i : i + _IN_BATCH]
            marks = ",".join("?" * len(part))
            found.update(r[0] for r in self._db.execute(f"SELECT id FROM objects WHERE id IN ({marks})", part))
        return found

    def add_pack(self, pack_id: str, size: int, entries: Iterable[PackEntry]) -> None:
        """Record a sealed pack; an object already indexed elsewhere keeps its first home."""
        # In id order: each page of the table is then changed once, not once per object that lands on it
        # (18% less time for a 16,384-object pack into an index of a million objects).
        rows = sorted((e.id, int(e.type), pack_id, e.offset, e.stored_len, e.raw_len, e.codec) for e in entries)
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO packs(id, size) VALUES (?, ?)", (pack_id, size))
            self._db.executemany("INSERT OR IGNORE INTO objects(id, type, pack, offset, stored_len, raw_len, codec) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def add_packs(self, packs: Iterable[tuple[str, int, Iterable[PackEntry]]]) -> int:
        """Record many sealed packs at once (all or none); return how many. An object already indexed keeps its
        first home, as with ``add_pack``.

        The rows gather in scratch tables of this connection first, which lock nothing (``packs`` may be read
        from the network meanwhile), and go in with one sorted insert in one short transaction: each page of
        the table is then written once, instead of once per pack with an object on it (a million objects in
        61 packs into an empty index, as a clone's first sync of its remote: 23 s -> 7 s).
        """
        db = self._db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS packs_load(id TEXT, size INTEGER)")
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS objects_load"
            "(id TEXT, type INTEGER, pack TEXT, offset INTEGER, stored_len INTEGER, raw_len INTEGER, codec INTEGER)"
        )
        try:
            count = 0
            for pack_id, size, entries in packs:
                db.execute("INSERT INTO temp.packs_load VALUES (?, ?)", (pack_id, size))
                db.executemany(
                    "INSERT INTO temp.objects_load VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(e.id, int(e.type), pack_id, e.offset, e.stored_len, e.raw_len, e.codec) for e in entries],
                )
                count += 1
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT OR REPLACE INTO packs(id, size) SELECT id, size FROM temp.packs_load ORDER BY rowid")
                # rowid breaks ties: of two copies of an object, the one loaded first is kept.
                db.execute("INSERT OR IGNORE INTO objects SELECT * FROM temp.objects_load ORDER BY id, rowid")
        finally:
            db.execute("DROP TABLE temp.packs_load")
            db.execute("DROP TABLE temp.objects_load")
        return count

    def ids_with_prefix(self, prefix: str, obj_type: ObjectType, limit: int = 2) -> list[str]:
        upper = prefix + "g"  # 'g' sorts after every hex digit
        rows = self._db.execute(
            "SELECT id FROM objects WHERE id >= ? AND id < ? AND type = ? LIMIT ?",
            (prefix, upper, int(obj_type), limit),
        ).fetchall()
        return [r[0] for r in rows]

    def packs(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT id, size FROM packs").fetchall())

    def count_objects(self, pack_id: str, limit: int) -> int:
        """How many objects the index places in ``pack_id``, counted up to ``limit`` (a bounded look, by the pack index)."""
        return self._db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM objects WHERE pack=? LIMIT ?)", (pack_id, limit)).fetchone()[0]

    def entries_of_pack(self, pack_id: str, obj_type: ObjectType | None = None) -> list[PackEntry]:
        """The objects a pack holds (only those of ``obj_type`` when given), in pack order."""
        rows = self._db.execute(
            "SELECT id, type, offset, stored_len, raw_len, codec FROM objects WHERE pack=? AND (? IS NULL OR type=?) ORDER BY offset",
            (pack_id, None if obj_type is None else int(obj_type), None if obj_type is None else int(obj_type)),
        ).fetchall()
        return [PackEntry(r[0], ObjectType(r[1]), r[5], r[2], r[3], r[4]) for r in rows]

    def iter_ids(self, obj_type: ObjectType | None = None) -> Iterator[str]:
        if obj_type is None:
            cur = self._db.execute("SELECT id FROM objects")
        else:
            cur = self._db.execute("SELECT id FROM objects WHERE type=?", (int(obj_type),))
        for (oid,) in cur:
            yield oid

    def stored_bytes(self) -> tuple[int, int, int]:
        """(object count, stored bytes, raw bytes) over every indexed object."""
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(stored_len),0), COALESCE(SUM(raw_len),0) FROM objects").fetchone()
        return row[0], row[1], row[2]

    def known_index_files(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM index_files")}

    def mark_index_file(self, index_id: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO index_files(id) VALUES (?)", (index_id,))

    def mark_index_files(self, index_ids: Iterable[str]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO index_files(id) VALUES (?)", ((i,) for i in index_ids))

    def replace_packs(self, removed: Iterable[str], added: dict[str, tuple[int, list[PackEntry]]]) -> None:
        """Forget ``removed`` packs and record ``added`` ones in one transaction: a reader never sees an object
        that moved from one to the other missing. An object of an added pack is homed there: added packs hold
        copies made because their old packs are going (gc, merging small packs), possibly in a later call."""
        with self._db:
            self._db.execute("BEGIN")
            for pack_id in removed:
                self._db.execute("DELETE FROM objects WHERE pack=?", (pack_id,))
                self._db.execute("DELETE FROM packs WHERE id=?", (pack_id,))
            for pack_id, (size, entries) in added.items():
                self._db.execute("INSERT OR REPLACE INTO packs(id, size) VALUES (?, ?)", (pack_id, size))
                self._db.executemany(
                    "INSERT OR REPLACE INTO objects(id, type, pack, offset, stored_len, raw_len, codec)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ((e.id, int(e.type), pack_id, e.offset, e.stored_len, e.raw_len, e.codec) for e in entries),
                )

    def remove_pack(self, pack_id: str) -> None:
        """Forget a pack and every object located in it."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM objects WHERE pack=?", (pack_id,))
            self._db.execute("DELETE FROM packs WHERE id=?", (pack_id,))

    def clear(self) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM objects")
            self._db.execute("DELETE FROM packs")
            self._db.execute("DELETE FROM index_files")
