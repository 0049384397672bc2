"""The files on disk, seen against the stage: the stat cache vouches for unchanged files, the rest are hashed.

A file whose stat (size, mtime, ctime, inode, mode) equals the one recorded
when it was last hashed is not read again. A file found unchanged by hashing
gets its fresh stat recorded (in batches), so the next scan skips it.
"""

from __future__ import annotations

import os
import stat as statmod
import time
from typing import Callable, Iterator

from datactl.core.errors import DatactlError
from datactl.core.ids import hash_file
from datactl.core.sortedmerge import merge_by_path
from datactl.format.objects import FILE, SYMLINK, TreeEntry, symlink_entry
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.scan import DiskEntry, ScanProblem, walk
from datactl.workspace.stage import Stage, StageRow, StatInfo
from datactl.workspace.statscan import scan_stats

# Fresh stats of files found unchanged by hashing are saved in batches of this many.
REFRESH_BATCH = 20_000


def read_link(abs_path: str, rel: str) -> str:
    """A symlink's target, which must be UTF-8 to be tracked."""
    target = os.readlink(abs_path)
    try:
        target.encode("utf-8")
    except UnicodeEncodeError:
        raise DatactlError(f"{rel}: symlink target is not valid UTF-8", "fix the link or add it to .datactlignore") from None
    return target


def permissions(st: os.stat_result) -> int:
    return statmod.S_IMODE(st.st_mode)


class DiskState:
    """The workspace's files on disk, compared with its stage."""

    def __init__(self, root: str, stage: Stage) -> None:
        self.root = root
        self.stage = stage
        # Paths are joined by hand where the separator is '/': os.path.join cost ~1.5 us a file, 3% of an add.
        self._prefix = root.rstrip("/") + "/" if os.sep == "/" else None
        self._refresh: list[tuple[StageRow, os.stat_result, int]] = []

    def abs_path(self, rel: str) -> str:
        if not rel:
            return self.root
        if self._prefix is not None:
            return self._prefix + rel
        return os.path.join(self.root, *rel.split("/"))

    def matches(self, row: StageRow | None, d: DiskEntry) -> bool:
        """Whether the file on disk is exactly the staged entry, hashing only when the stat cache cannot tell."""
        if row is None or row.entry is None or row.entry.kind != d.kind:
            return False
        if row.stat is not None and row.stat.matches(d.st):
            return True
        abs_path = self.abs_path(d.path)
        if d.kind == SYMLINK:
            return symlink_entry("", read_link(abs_path, d.path)).digest == row.entry.digest
        if d.st.st_size != row.entry.size or permissions(d.st) != row.entry.mode:
            return False
        read_at = time.time_ns()
        try:
            same = hash_file(abs_path) == row.entry.digest
        except OSError:
            return False
        if same:
            self._refresh.append((row, d.st, read_at))
            if len(self._refresh) >= REFRESH_BATCH:
                self.save_refreshed()
        return same

    def save_refreshed(self) -> None:
        """Record fresh stats for files found unchanged by hashing, so the next scan skips them."""
        if self._refresh:
            self.stage.update_stats((row.path, StatInfo.of(st, read_at)) for row, st, read_at in self._refresh)
        self._refresh = []

    def forget_refreshed(self) -> None:
        """Drop stats not yet saved (the rows they belong to are about to be rewritten)."""
        self._refresh = []

    def lstat_entry(self, path: str) -> DiskEntry | None:
        """The file or symlink at ``path`` as the walk would report it, or None."""
        try:
            st = os.lstat(self.abs_path(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if statmod.S_ISREG(st.st_mode):
            return DiskEntry(path, FILE, st)
        if statmod.S_ISLNK(st.st_mode):
            return DiskEntry(path, SYMLINK, st)
        return None

    def entry_of(self, d: DiskEntry) -> TreeEntry:
        """The entry a file on disk would get, hashing it (without storing anything)."""
        name = d.path.rsplit("/", 1)[-1]
        abs_path = self.abs_path(d.path)
        if d.kind == SYMLINK:
            return symlink_entry(name, read_link(abs_path, d.path))
        return TreeEntry(name, FILE, permissions(d.st), d.st.st_size, hash_file(abs_path))

    def scan(
        self,
        rules: IgnoreRules,
        start: str = "",
        on_problem: Callable[[ScanProblem], None] | None = None,
        vouched: Callable[[int], None] | None = None,
        in_scope: Callable[[str], bool] | None = None,
        meanwhile: Callable[[], None] = lambda: None,
        stat_new_folders: bool = True,
    ) -> Iterator[tuple[str, DiskEntry | None, StageRow | None]]:
        """(path, file on disk or None, stage row or None) for every path under ``start``, in path order.

        Ignore rules apply to untracked files only: a tracked file the walk
        skipped is still looked at. Given ``vouched``, tracked files whose
        stats the stat cache vouches for are counted to it instead, compared
        on the rows' stat columns alone (``statscan``, over several processes
        for a large stage): a scan where little changed reads a whole row only
        for what did. Given ``in_scope`` (a sparse workspace's paths), a
        tracked path outside it that is not on disk, as it should not be, is
        skipped without a look at its row or the disk. ``meanwhile`` is run before the scan begins, once the
        processes that share it are started (``scan_stats``). Without ``stat_new_folders`` (with ``vouched``
        only), the regular files of folders the stage has no row under come without their stat
        (``scan_range``).
        """
        if vouched is None:
            meanwhile()
            disk = (DiskEntry(path, kind, st) for path, kind, st in walk(self.root, rules, start=start, on_problem=on_problem))
            rows = self.stage.iter_rows(start, with_chunks=False)
            for path, d, row in merge_by_path(disk, rows, lambda x: x.path, lambda r: r.path):
                if d is None and row is not None and row.entry is not None:
                    d = self.lstat_entry(path)
                yield path, d, row
            return
        for path, d, tracked in scan_stats(self.root, self.stage, rules, start, on_problem, vouched, meanwhile=meanwhile, stat_new_folders=stat_new_folders):
            if d is None and in_scope is not None and not in_scope(path):
                continue
            row = self.stage.get(path) if tracked else None
            if d is None and row is not None and row.entry is not None:
                d = self.lstat_entry(path)
            yield path, d, row

    def entries(self, problems: list[ScanProblem] | None = None) -> Iterator[tuple[str, TreeEntry]]:
        """(path, entry) for every tracked-or-not file on disk, in path order, using the stat cache."""
        self._refresh = []
        for path, d, row in self.scan(IgnoreRules(self.root), on_problem=problems.append if problems is not None else None):
            if d is None:
                continue
            if row is not None and row.entry is not None and self.matches(row, d):
                yield path, row.entry
            else:
                yield path, self.entry_of(d)
        self.save_refreshed()
