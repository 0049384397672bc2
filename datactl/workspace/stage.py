"""The staging table: what the next commit will hold, next to what HEAD holds.

One SQLite row per tracked path, with
- the staged entry (NULL kind: staged for removal),
- the stat of the file on disk when it was last seen equal to the staged entry
  (the stat cache: an unchanged file is never read again),
- the HEAD entry's kind, mode, size and digest, so ``status`` compares stage
  and HEAD without reading a single tree.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from datactl.core.closing import Closing
from datactl.core.ids import is_hex, is_object_id
from datactl.core.sqlite import Database, database_error
from datactl.format.external import ExternalSource
from datactl.format.objects import FILE, SYMLINK, TreeEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    path TEXT PRIMARY KEY,
    kind TEXT, mode INTEGER, size INTEGER, digest TEXT, chunks TEXT, chunklist TEXT, target TEXT,
    st_size INTEGER, st_mtime_ns INTEGER, st_ctime_ns INTEGER, st_ino INTEGER, st_mode INTEGER,
    st_trusted INTEGER NOT NULL DEFAULT 0,
    head_kind TEXT, head_mode INTEGER, head_size INTEGER, head_digest TEXT,
    source TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
"""

STAGE_HINT = "run `datactl fsck --repair` to rebuild it from HEAD and the files on disk"

# The rows that differ from HEAD: what a commit records and a status lists as staged. Written once, here: the
# ``staged_paths`` index holds only these rows, and SQLite uses it for a query whose WHERE is this very text.
_STAGED = "kind IS NOT head_kind OR mode IS NOT head_mode OR size IS NOT head_size OR digest IS NOT head_digest"

# A file whose mtime is this close to the moment we read it may be changed
# again within the same timestamp tick without its stat changing ("racy
# mtime"): such a stat is not trusted, and the file is re-hashed next time.
RACY_WINDOW_NS = 100_000_000
COARSE_RACY_WINDOW_NS = 2_000_000_000  # file systems with whole-second mtimes


def _outside_racy_window(mtime_ns: int, at_ns: int) -> bool:
    """Whether a change after ``at_ns`` would have to move an mtime of ``mtime_ns``."""
    window = COARSE_RACY_WINDOW_NS if mtime_ns % 1_000_000_000 == 0 else RACY_WINDOW_NS
    return mtime_ns < at_ns - window


@dataclass(frozen=True)
class StatInfo:
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    mode: int
    trusted: bool

    @classmethod
    def of(cls, st: os.stat_result, read_at_ns: int | None = None) -> "StatInfo":
        """The stat of a file whose content was read (or written) at ``read_at_ns``."""
        read_at_ns = time.time_ns() if read_at_ns is None else read_at_ns
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode, _outside_racy_window(st.st_mtime_ns, read_at_ns))

    def judged_at(self, saved_at_ns: int) -> "StatInfo":
        """The stat of a file datactl wrote itself, judged against ``saved_at_ns``, when its row is saved.

        git judges its index entries against the index file's time, not each file's write: a checkout writing a
        million files would otherwise leave every stat racy, and the next status would re-hash every file. Only a
        change made in the same timestamp tick as datactl's own write goes unseen, as in git.
        """
        if self.trusted or not _outside_racy_window(self.mtime_ns, saved_at_ns):
            return self
        return StatInfo(self.size, self.mtime_ns, self.ctime_ns, self.ino, self.mode, True)

    def matches(self, st: os.stat_result) -> bool:
        """True when ``st`` proves the file unchanged since it was hashed."""
        return (
            self.trusted
            and self.size == st.st_size
            and self.mtime_ns == st.st_mtime_ns
            and self.ctime_ns == st.st_ctime_ns
            and self.ino == st.st_ino
            and self.mode == st.st_mode
        )


@dataclass(frozen=True)
class HeadInfo:
    kind: str
    mode: int
    size: int
    digest: str


def head_info(entry: TreeEntry | None) -> HeadInfo | None:
    return None if entry is None else HeadInfo(entry.kind, entry.mode, entry.size, entry.digest)


def same_content(entry: TreeEntry | None, head: HeadInfo | None) -> bool:
    if entry is None or head is None:
        return entry is None and head is None
    return (entry.kind, entry.mode, entry.digest) == (head.kind, head.mode, head.digest)


@dataclass(frozen=True)
class StageRow:
    path: str
    entry: TreeEntry | None
    stat: StatInfo | None
    head: HeadInfo | None

    @property
    def staged_change(self) -> bool:
        return not same_content(self.entry, self.head)


_COLS = (
    "path, kind, mode, size, digest, chunks, chunklist, target, "
    "st_size, st_mtime_ns, st_ctime_ns, st_ino, st_mode, st_trusted, "
    "head_kind, head_mode, head_size, head_digest, source"
)
_NCOLS = 19


_STAT_COLS = "path, kind, st_size, st_mtime_ns, st_ctime_ns, st_ino, st_mode, st_trusted"


# The columns of an entry (``_entry_from_sql``), alone: what a commit reads of each row.
_ENTRY_COLS = "path, kind, mode, size, digest, chunks, chunklist, target, source"


def _entry_from_sql(path: str, r: tuple, source_col: int) -> TreeEntry:
    """The entry of a row whose columns kind .. target are ``r[1:8]`` and whose source is ``r[source_col]``."""
    chunks = tuple(_chunk_ids(r[5]))
    source, sizes = _source_from_sql(r[source_col])
    return TreeEntry(path.rsplit("/", 1)[-1], r[1], r[2], r[3], r[4], chunks, r[6], r[7], source, sizes)


def _tree_dict_from_sql(path: str, r: tuple) -> dict:
    """``_entry_from_sql(path, r, 8).to_dict()``, the entry as a tree stores it, made straight from the row for a
    stored file (nearly every row): a commit of a million files made and converted a million entries, seconds."""
    if r[1] != FILE or r[8] is not None:
        return _entry_from_sql(path, r, 8).to_dict()
    d = {"name": path.rsplit("/", 1)[-1], "kind": FILE, "size": r[3], "digest": r[4], "mode": r[2]}
    if r[6] is not None:
        d["chunklist"] = r[6]
    else:
        d["chunks"] = _chunk_ids(r[5])
    return d


def _chunk_ids(joined: str | None) -> list[str]:
    """A row's ``chunks`` column: the file's chunk ids (32 hex digits each) written one after another."""
    if not joined:
        return []
    if len(joined) == 32:  # most files are one chunk
        return [joined]
    return [joined[i : i + 32] for i in range(0, len(joined), 32)]


def _row_from_sql(r: tuple) -> StageRow:
    path = r[0]
    entry = None if r[1] is None else _entry_from_sql(path, r, 18)
    stat = None if r[8] is None else StatInfo(r[8], r[9], r[10], r[11], r[12], bool(r[13]))
    head = None if r[14] is None else HeadInfo(r[14], r[15], r[16], r[17])
    return StageRow(path, entry, stat, head)


def _source_from_sql(raw: str | None) -> tuple[ExternalSource | None, tuple[int, ...]]:
    """An external file's source and chunk sizes, kept as JSON in the ``source`` column (NULL for stored files)."""
    if raw is None:
        return None, ()
    doc = json.loads(raw)
    return ExternalSource.from_dict(doc["source"]), tuple(doc["sizes"])


def _source_ok(raw: str | None) -> bool:
    try:
        _source_from_sql(raw)
        return True
    except (ValueError, KeyError, TypeError):
        return False


def _source_to_sql(e: TreeEntry | None) -> str | None:
    if e is None or e.source is None:
        return None
    return json.dumps({"source": e.source.to_dict(), "sizes": list(e.chunk_sizes)}, separators=(",", ":"))


def _row_to_sql(row: StageRow) -> tuple:
    e, s, h = row.entry, row.stat, row.head
    return (
        row.path,
        *(
            (e.kind, e.mode, e.size, e.digest, "".join(e.chunks), e.chunklist, e.target)
            if e is not None
            else (None,) * 7
        ),
        *((s.size, s.mtime_ns, s.ctime_ns, s.ino, s.mode, int(s.trusted)) if s is not None else (None,) * 5 + (0,)),
        *((h.kind, h.mode, h.size, h.digest) if h is not None else (None,) * 4),
        _source_to_sql(e),
    )


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Paths under folder ``prefix`` ('a/b') are those in ['a/b/', 'a/b0')."""
    prefix = prefix.strip("/")
    return prefix + "/", prefix + "0"  # '0' is the character after '/'


def _range_clause(prefix: str, lo: str | None, hi: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (with its arguments) of the rows under folder ``prefix`` ('' for all) whose paths are in
    [``lo``, ``hi``): one range of the primary key, which SQLite reads in order (with the row at ``prefix`` itself
    OR-ed in, it sorted every row under the folder before giving the first: 0.9 s at a million)."""
    terms, args = [], []
    if prefix:
        first, end = _prefix_range(prefix)
        terms.append("path >= ? AND path < ?")
        args += [first, end]
    if lo is not None:
        terms.append("path >= ?")
        args.append(lo)
    if hi is not None:
        terms.append("path < ?")
        args.append(hi)
    return (" WHERE " + " AND ".join(terms) if terms else ""), tuple(args)


def _row_at(prefix: str, lo: str | None, hi: str | None) -> str | None:
    """The path of a row at folder ``prefix`` itself (a file where a folder is named) in [``lo``, ``hi``), if one
    can be asked for: it sorts before every path under the folder."""
    at = prefix.strip("/")
    return at if at and (lo is None or at >= lo) and (hi is None or at < hi) else None


def _snapshot_rows(
    db_path: str, cols: str, prefix: str, make: Callable[[tuple], Any] | None, lo: str | None = None, hi: str | None = None
) -> Iterator[Any]:
    """The rows under folder ``prefix`` (the row at ``prefix`` itself first) in [``lo``, ``hi``), in path order,
    read over a connection of their own: a snapshot, so writes through another may interleave."""
    reader = sqlite3.connect(db_path, timeout=60)
    try:
        reader.execute("BEGIN")  # the two reads below see one snapshot
        queries = []
        at = _row_at(prefix, lo, hi)
        if at is not None:
            queries.append((f"SELECT {cols} FROM entries WHERE path = ?", (at,)))
        where, args = _range_clause(prefix, lo, hi)
        queries.append((f"SELECT {cols} FROM entries{where} ORDER BY path", args))
        for sql, sql_args in queries:
            cur = reader.execute(sql, sql_args)
            if make is None:
                yield from cur
            else:
                for r in cur:
                    yield make(r)
    finally:
        reader.close()


def read_stats(db_path: str, prefix: str = "", lo: str | None = None, hi: str | None = None) -> Iterator[tuple]:
    """(path, kind, st_size, st_mtime_ns, st_ctime_ns, st_ino, st_mode, st_trusted) of every row of the stage at
    ``db_path`` under ``prefix`` with a path in [``lo``, ``hi``), in byte order of path: what a scan compares with the
    disk before it needs a whole row (``statscan.scan_range``, in this process or another)."""
    try:
        yield from _snapshot_rows(db_path, _STAT_COLS, prefix, None, lo, hi)
    except sqlite3.DatabaseError as exc:
        raise database_error(exc, db_path, STAGE_HINT) from exc


class FolderRows(Closing):
    """Whether the stage at ``db_path`` has rows under a folder: one lookup on the path index each, over a
    connection of its own (a scan asks as it lists each folder)."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path
        try:
            self._db = sqlite3.connect(db_path, timeout=60)
        except sqlite3.DatabaseError as exc:
            raise database_error(exc, db_path, STAGE_HINT) from exc

    def any_under(self, rel_dir: str) -> bool:
        """Whether a row's path is under ``rel_dir`` ('' for the whole workspace, else a folder ending in '/')."""
        query, args = ("SELECT 1 FROM entries LIMIT 1", ()) if not rel_dir else ("SELECT 1 FROM entries WHERE path >= ? AND path < ? LIMIT 1", _prefix_range(rel_dir))
        try:
            return self._db.execute(query, args).fetchone() is not None
        except sqlite3.DatabaseError as exc:
            raise database_error(exc, self.path, STAGE_HINT) from exc

    def close(self) -> None:
        self._db.close()


class Stage(Database):
    """The staging table of a workspace, with its stat cache and metadata (HEAD, a merge in progress, sparse paths)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, _SCHEMA, STAGE_HINT)
        self._upgrade()

    def _upgrade(self) -> None:
        """What a stage written by an earlier version lacks. The ``source`` column (external files): NULL, every row
        a stored file. The index of external rows: without it every status read the whole table to find them
        (0.1 s at a million rows); only rows with a source enter it, so writing the others costs nothing more. The
        index of staged rows (``_STAGED``): without it a commit read the whole table twice and a status once
        (0.2 s each at a million rows), however little was staged; a row is in it from its add to its commit."""
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(entries)")}
        if "source" not in columns:
            with self._db:
                self._db.execute("ALTER TABLE entries ADD COLUMN source TEXT")
        indexes = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        if "external_paths" not in indexes:
            with self._db:
                self._db.execute("CREATE INDEX IF NOT EXISTS external_paths ON entries(path) WHERE source IS NOT NULL")
        if "staged_paths" not in indexes:
            with self._db:
                self._db.execute(f"CREATE INDEX IF NOT EXISTS staged_paths ON entries(path) WHERE {_STAGED}")

    # -- meta ----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key=?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_sparse(self) -> list[str]:
        """The paths (files or folders) the workspace holds on disk; empty means all."""
        raw = self.get_meta("sparse")
        return json.loads(raw) if raw else []

    @staticmethod
    def _sparse_value(paths: list[str]) -> str | None:
        scope = sorted(set(p.strip("/") for p in paths))
        return json.dumps(scope) if scope and "" not in scope else None

    def set_sparse(self, paths: list[str]) -> None:
        self.set_meta("sparse", self._sparse_value(paths))

    # -- rows ----------------------------------------------------------------

    def get(self, path: str) -> StageRow | None:
        r = self._db.execute(f"SELECT {_COLS} FROM entries WHERE path=?", (path,)).fetchone()
        return None if r is None else _row_from_sql(r)

    def iter_rows(self, prefix: str = "", with_chunks: bool = True) -> Iterator[StageRow]:
        """Rows in byte order of path, read from a snapshot so writes may interleave.

        ``with_chunks=False`` leaves entries' chunk lists empty (a scan needs
        only digests); such rows must not be written back whole.
        """
        cols = _COLS if with_chunks else _COLS.replace("chunks,", "'' AS chunks,")
        with self.translated():
            yield from _snapshot_rows(self.path, cols, prefix, _row_from_sql)

    def has_rows_under(self, prefix: str) -> bool:
        """Whether a row is at ``prefix`` or under it, as a folder ('' for the whole workspace): looks at the key
        only, no row read."""
        at = _row_at(prefix, None, None)
        if at is not None and self._db.execute("SELECT 1 FROM entries WHERE path = ?", (at,)).fetchone() is not None:
            return True
        where, args = _range_clause(prefix, None, None)
        return self._db.execute(f"SELECT 1 FROM entries{where} LIMIT 1", args).fetchone() is not None

    def external_rows(self) -> Iterator[StageRow]:
        """The rows of external files (a source recorded), in path order."""
        for r in self._db.execute(f"SELECT {_COLS} FROM entries WHERE source IS NOT NULL ORDER BY path").fetchall():
            yield _row_from_sql(r)

    def split_points(self, prefix: str, rows_per_part: int, max_parts: int) -> list[str]:
        """Paths that cut the rows under ``prefix`` into at most ``max_parts`` ranges of about equal size, each of at
        least ``rows_per_part`` rows: range k holds the paths from cut k-1 (inclusive) to cut k. No cuts when the
        rows make one range."""
        where, args = _range_clause(prefix, None, None)  # a row at ``prefix`` itself is left out of the count: one row
        rows = self._db.execute(f"SELECT count(*) FROM entries{where}", args).fetchone()[0]
        parts = min(max_parts, rows // max(rows_per_part, 1))
        cuts: list[str] = []
        for k in range(1, parts):
            r = self._db.execute(f"SELECT path FROM entries{where} ORDER BY path LIMIT 1 OFFSET ?", (*args, rows * k // parts)).fetchone()
            if r is not None and (not cuts or r[0] > cuts[-1]):
                cuts.append(r[0])
        return cuts

    def iter_staged_dicts(self) -> Iterator[tuple[str, dict]]:
        """(path, entry as a tree stores it: ``TreeEntry.to_dict``) of every staged file, in byte order of path: what
        a first commit builds its trees from (``build_tree_from_dicts``)."""
        with self.translated():
            for r in _snapshot_rows(self.path, _ENTRY_COLS, "", None):
                if r[1] is not None:
                    yield r[0], _tree_dict_from_sql(r[0], r)

    def write(self, rows: Iterable[StageRow], deletes: Iterable[str] = ()) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                f"INSERT OR REPLACE INTO entries({_COLS}) VALUES ({', '.join('?' * _NCOLS)})",
                (_row_to_sql(r) for r in rows),
            )
            self._db.executemany("DELETE FROM entries WHERE path=?", ((p,) for p in deletes))

    def update_stats(self, stats: Iterable[tuple[str, StatInfo]]) -> None:
        """Record fresh stat-cache values for paths whose content is unchanged."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "UPDATE entries SET st_size=?, st_mtime_ns=?, st_ctime_ns=?, st_ino=?, st_mode=?, st_trusted=? WHERE path=?",
                ((s.size, s.mtime_ns, s.ctime_ns, s.ino, s.mode, int(s.trusted), path) for path, s in stats),
            )

    def finish_commit(self, commit_id: str) -> None:
        """After a commit: HEAD equals the stage."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM entries WHERE kind IS NULL")
            # Only the rows that changed are written: a small commit to a big dataset costs what changed.
            self._db.execute(f"UPDATE entries SET head_kind=kind, head_mode=mode, head_size=size, head_digest=digest WHERE {_STAGED}")
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('head', ?)", (commit_id,))
            # A commit also ends a merge in progress (its second parent was merge_head).
            self._db.execute("DELETE FROM meta WHERE key IN ('pending_commit', 'merge', 'merge_head')")

    def row_problem(self) -> str | None:
        """The first row whose fields cannot be right (a damage SQLite's own check cannot see), or None."""
        kinds = (None, FILE, SYMLINK)
        with self.translated():
            for r in self._db.execute(f"SELECT {_COLS} FROM entries"):
                path, kind, digest, chunks, head_kind, head_digest = r[0], r[1], r[4], r[5] or "", r[14], r[17]
                bad = (
                    not isinstance(path, str) or not path or path.startswith("/") or "//" in path
                    or kind not in kinds or head_kind not in kinds
                    or (kind is not None and not is_object_id(digest))
                    or (head_kind is not None and not is_object_id(head_digest))
                    or len(chunks) % 32 != 0 or (chunks and not is_hex(chunks))
                    or not _source_ok(r[18])
                )
                if bad:
                    return f"row {path!r} is garbled"
        return None

    def begin_checkout(self, commit_id: str, fresh: bool) -> None:
        """Mark a checkout of ``commit_id`` in progress (``fresh``: the streaming pass of a workspace that tracked
        nothing, which places files without temporary names), until ``finish_checkout``."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('checkout', ?)", (commit_id,))
            self._db.execute("DELETE FROM meta WHERE key = 'checkout_fresh'")
            if fresh:
                self._db.execute("INSERT INTO meta(key, value) VALUES ('checkout_fresh', '1')")

    def interrupted_fresh_checkout(self) -> str | None:
        """The version whose fresh checkout (``begin_checkout(fresh=True)``) was cut short, or None."""
        return self.get_meta("checkout") if self.get_meta("checkout_fresh") else None

    def finish_checkout(self, rows: Iterable[StageRow], commit_id: str, sparse: list[str] | None = None) -> None:
        """After a checkout, in one transaction: the last rows, HEAD, and (unless None) the sparse paths; the
        mark of a checkout in progress is cleared."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                f"INSERT OR REPLACE INTO entries({_COLS}) VALUES ({', '.join('?' * _NCOLS)})",
                (_row_to_sql(r) for r in rows),
            )
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('head', ?)", (commit_id,))
            self._db.execute("DELETE FROM meta WHERE key IN ('checkout', 'checkout_fresh')")
            if sparse is not None:
                value = self._sparse_value(sparse)
                self._db.execute("DELETE FROM meta WHERE key = 'sparse'")
                if value is not None:
                    self._db.execute("INSERT INTO meta(key, value) VALUES ('sparse', ?)", (value,))

    def staged_changes(self) -> Iterator[StageRow]:
        cur = self._db.execute(f"SELECT {_COLS} FROM entries WHERE {_STAGED} ORDER BY path")
        for r in cur.fetchall():
            yield _row_from_sql(r)

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM entries WHERE kind IS NOT NULL").fetchone()[0]


