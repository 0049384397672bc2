"""Walking the workspace in the byte order of full paths.

Inside each folder, a sub-folder sorts as ``name + "/"``: then every path
comes out in the same order as SQLite's ``ORDER BY path`` and a tree walk, so
the three can be merged in one pass with constant memory.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterator

from datactl.core.safepath import check_depth
from datactl.workspace.ignore import IgnoreRules

FILE = "file"
SYMLINK = "symlink"

_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CHANGED_SINCE_LISTED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # a folder gone, a file or a link now
# st_mode & _FORMAT == _FOLDER is S_ISDIR without a call (and _REGULAR S_ISREG, _LINK S_ISLNK).
_FORMAT, _FOLDER, _REGULAR, _LINK = stat.S_IFMT(0o177777), stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK


@dataclass(frozen=True)
class DiskEntry:
    path: str  # workspace-relative, '/'-separated
    kind: str  # "file" or "symlink"
    # None: a regular file listed without its stat (``walk``'s ``stat_files``), for the process that reads it to
    # take it from the file it opens.
    st: os.stat_result | None

    def __reduce__(self) -> tuple:
        # An add hands workers entries by the thousand, pickled: a stat_result pickles with a dict of its fields
        # beyond the tuple's ten, and as one flat tuple the entry costs a third to pickle and half to load.
        # st_blksize, st_blocks and st_rdev do not travel (None on the other side): no one who gets an entry
        # from a pickle reads them.
        st = self.st
        if st is None:
            return DiskEntry, (self.path, self.kind, None)
        flat = (*st[:10], st.st_atime, st.st_mtime, st.st_ctime, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
        return _unpickle_disk_entry, (self.path, self.kind, flat)


def _unpickle_disk_entry(path: str, kind: str, flat: tuple) -> DiskEntry:
    return DiskEntry(path, kind, os.stat_result(flat))


@dataclass(frozen=True)
class ScanProblem:
    path: str
    reason: str


def _utf8_ok(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def display_name(name: str) -> str:
    """A printable form of a possibly non-UTF-8 name."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _list_folder(root: str, rel_dir: str, report: Callable[[str, str], None], stat_files: bool = True) -> list[tuple[str, str, bool, os.stat_result | None]]:
    """(sort key, name, is a folder, stat) of each entry of the folder ``rel_dir`` ('' or ending in '/'), in path
    order. Without ``stat_files``, folders and regular files are told apart by the listing's file types and get no
    stat (None): only links and the odd kinds are looked at."""
    abs_dir = os.path.join(root, *rel_dir[:-1].split("/")) if rel_dir else root  # no trailing '/': it follows links
    items = []
    try:
        # Listed through an open descriptor, each entry's stat is an fstatat of its bare name: the kernel looks up
        # one component, not the whole absolute path (at a million files, a third of the stats' system time).
        # NOFOLLOW below the root: a folder swapped for a link since its parent was listed is not walked into.
        fd = os.open(abs_dir, _LIST_FLAGS | (os.O_NOFOLLOW if rel_dir else 0))
    except PermissionError:
        report(rel_dir or ".", "cannot list folder: permission denied")
        return []
    except OSError as exc:
        if exc.errno not in _CHANGED_SINCE_LISTED:
            raise
        return []
    try:
        with os.scandir(fd) as it:
            for de in it:
                if not stat_files:  # d_type, no system call (one lstat where the file system gives no type)
                    if de.is_dir(follow_symlinks=False):
                        items.append((de.name + "/", de.name, True, None))
                        continue
                    if de.is_file(follow_symlinks=False):
                        items.append((de.name, de.name, False, None))
                        continue
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError as exc:
                    report(f"{rel_dir}{de.name}", f"cannot stat: {exc.strerror}")
                    continue
                if st.st_mode & _FORMAT == _FOLDER:
                    items.append((de.name + "/", de.name, True, st))
                else:
                    items.append((de.name, de.name, False, st))
    finally:
        os.close(fd)
    # Code-point order is UTF-8 byte order for every name that can be tracked; a name that is not UTF-8 (it holds
    # surrogate escapes) may sort elsewhere, but it is reported and skipped, so no order depends on it.
    items.sort()
    return items


def walk(
    root: str,
    rules: IgnoreRules,
    start: str = "",
    on_problem: Callable[[ScanProblem], None] | None = None,
    lo: str | None = None,
    hi: str | None = None,
    stat_files: Callable[[str], bool] | None = None,
) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """(path, kind, stat) of the files and symlinks under ``start`` (a relative folder, '' for all) whose paths
    are in [``lo``, ``hi``) (None: unbounded), skipping ignored ones. Given ``stat_files``, asked for each folder
    ('' or ending in '/') as it is listed, the regular files of a folder it says False for come with no stat (None).

    A folder is entered only when paths of the range can lie under it, and a problem is reported by the range
    holding the path it is about, so ranges walked apart see each file and problem once. Iterative (a stack of
    open folders), so any depth is walked without recursion; a folder deeper than MAX_DEPTH is refused with
    UnsafePath.
    """

    def report(key: str, path: str, reason: str) -> None:
        if on_problem is not None and (lo is None or key >= lo) and (hi is None or key < hi):
            on_problem(ScanProblem(path, reason))

    def listing(rel_dir: str) -> list[tuple[str, str, bool, os.stat_result | None]]:
        return _list_folder(root, rel_dir, lambda path, reason: report(path, path, reason), stat_files is None or stat_files(rel_dir))

    def entries_in_range(rel_dir: str) -> Iterator[tuple[str, str, bool, os.stat_result | None]]:
        """The entries of the folder ``rel_dir`` that are, or hold, paths of the range: cut by bisection, so the
        loop below compares no entry with the bounds."""
        items = listing(rel_dir)
        first, end = 0, len(items)
        if lo is not None:  # skip what ends at or before lo: a file, or a folder's paths, in [rel, rel + "0")
            first = bisect.bisect_right(items, lo, key=lambda it: rel_dir + (it[1] + "0" if it[2] else it[1] + "\0"))
        if hi is not None:  # stop at what starts at or past hi
            end = bisect.bisect_left(items, hi, first, end, key=lambda it: rel_dir + it[0])
        return itertools.islice(items, first, end)

    start = start.strip("/")
    top = start + "/" if start else ""
    # One frame per open folder: its path ('' or ending in '/') and the rest of its entries. An entry's bounds
    # come sorted by its sort key (sibling ranges do not overlap), so both cuts are bisections.
    stack = [(top, entries_in_range(top))]
    while stack:
        rel_dir, entries = stack[-1]
        for _key, name, is_dir, st in entries:
            rel = rel_dir + name
            if not name.isascii() and not _utf8_ok(name):  # most names are ASCII: no encoding needed to know
                report(rel, display_name(rel), "name is not valid UTF-8; rename it to track it")
                continue
            if rules.ignored_in_walk(rel, name, is_dir):
                continue
            if is_dir:
                check_depth(rel + "/", rel.count("/") + 1)
                stack.append((rel + "/", entries_in_range(rel + "/")))
                break  # into it; this folder's iterator resumes after it
            if st is None:  # listed as a regular file, without its stat
                yield rel, FILE, None
                continue
            kind = st.st_mode & _FORMAT
            if kind == _REGULAR:
                yield rel, FILE, st
            elif kind == _LINK:
                yield rel, SYMLINK, st
            else:
                report(rel, rel, "not a regular file, folder or symlink; skipped")
        else:
            stack.pop()
