"""Checking out a version into a workspace that tracks nothing yet (a clone).

There is nothing on disk to lose, so the version streams from its tree: the
plan keeps nothing per file, and each file is placed as soon as it is written
and verified (``checkout`` has the two-phase, all-or-nothing way for a
workspace that tracks files). Until the end the stage says which version is
being checked out, and checking it out again finishes the job.
"""

from __future__ import annotations

import os
from contextlib import closing
from itertools import chain
from typing import Callable, Iterator, Mapping, Protocol, TypeVar

from datactl.core.crashpoints import crash_point
from datactl.core.dirs import walk_folder
from datactl.core.errors import LocalChanges
from datactl.core.progress import ProgressReporter
from datactl.core.safepath import check_rel_path
from datactl.core.settings import check_not_workspace_file
from datactl.format.objects import FILE, TreeEntry
from datactl.store.filedata import fill_new_file, read_ahead
from datactl.store.repository import Repository
from datactl.store.walk import walk_files
from datactl.workspace.checkout import ROW_BATCH, CheckoutResult, holds, judged_now, make_parent, write_entry
from datactl.workspace.disk import DiskState
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.stage import Stage, StageRow, StatInfo, head_info

# Files written here before other processes are started to help (each takes ~0.1 s to start).
OFFLOAD_AFTER = 2_000

T = TypeVar("T")


def _holds_only_own_files(root: str) -> bool:
    """Whether the workspace folder holds nothing but datactl's own files (``.datactl``, datactl.toml, ...)."""
    with os.scandir(root) as entries:
        return all(IgnoreRules.internal(e.name, e.is_dir(follow_symlinks=False)) for e in entries)


def _in_the_way(disk: DiskState, path: str, entry: TreeEntry, force: bool) -> str | None:
    """What on disk a checkout writing ``path`` would overwrite: a folder holding files, or (without ``force``) an
    untracked file that is not already the version's."""
    abs_path = disk.abs_path(path)
    if os.path.isdir(abs_path) and not os.path.islink(abs_path):
        return path + "/" if any(True for _ in walk_folder_files(abs_path)) else None
    if os.path.lexists(abs_path) and not force and not holds(disk, path, entry):
        return path
    return None


def plan_fresh(repo: Repository, disk: DiskState, tree_id: str, force: bool, in_scope: Callable[[str], bool], label: str) -> int:
    """Check what checking out ``tree_id`` into a workspace that tracks nothing would write; return its bytes.

    The version's names are checked and untracked files in the way refused
    (LocalChanges) as ``plan_checkout`` does, in one streaming pass that keeps
    nothing per file, so a version of any number of files needs constant memory.
    """
    conflicts: list[str] = []
    total = 0
    look = not _holds_only_own_files(disk.root)  # a new clone: nothing can be in the way, no file is looked for
    for path, entry in walk_files(repo, tree_id):
        check_not_workspace_file(path, label)
        if not in_scope(path):
            continue
        check_rel_path(path)
        conflict = _in_the_way(disk, path, entry, force) if look else None
        if conflict is not None:
            conflicts.append(conflict)
        if len(conflicts) >= 10:
            break
        total += entry.size if entry.kind == FILE else 0
    if conflicts:
        raise LocalChanges(
            f"checkout would overwrite untracked files: {', '.join(conflicts[:10])}",
            "move them away, or use --force to overwrite them",
        )
    return total


def walk_folder_files(folder: str) -> Iterator[str]:
    for _dirpath, _dirs, files in walk_folder(folder):
        yield from files


class FileWriters(Protocol):
    """Other processes writing a fresh checkout's files (``datactl.workspace.checkoutworkers``), each file placed
    and verified as ``write_entry`` does; its row comes back through the ``record`` they were started with."""

    def ready(self) -> bool | None:
        """True once one is up to take files; None while they are starting; False if none could start."""
        ...

    def write(self, path: str, entry: TreeEntry) -> None: ...

    def finish(self) -> int:
        """Wait until every file handed over is written and recorded; return how many processes wrote them."""
        ...

    def close(self) -> None: ...


StartWriters = Callable[[Callable[[StageRow], None]], FileWriters | None]


def write_files(
    repo: Repository, root: str, files: Iterator[tuple[str, TreeEntry]], progress: ProgressReporter, folders: set[str],
    in_scope: Callable[[str], bool] = lambda _path: True, tag: str = "",
) -> Iterator[StageRow]:
    """Write ``files`` of a version, each at its own name (``_write_in_place``; through a temporary name,
    ``write_entry``, for a link or where something is there already), small ones from chunks read ahead in
    batches; yield each one's row once it is placed. A file out of ``in_scope`` is not written: its row has no stat."""
    for (path, entry), chunks in read_ahead(repo, files, lambda item: item[1] if in_scope(item[0]) else None):
        st: StatInfo | None = None
        if in_scope(path):
            crash_point("checkout-placing")
            st = _write_in_place(repo, root, path, entry, progress, chunks, folders) if entry.kind == FILE else None
            if st is None:  # a link, or something already at its name
                st = write_entry(repo, root, path, entry, progress, chunks, folders, tag)
        yield StageRow(path, entry, st, head_info(entry))


def _write_in_place(
    repo: Repository, root: str, path: str, entry: TreeEntry, progress: ProgressReporter, chunks: Mapping[str, bytes] | None, folders: set[str]
) -> StatInfo | None:
    """Write a file straight at its name, verified; None when something is there already (``write_entry`` then
    writes it under a temporary name and renames it over).

    A fresh checkout has nothing to lose, and a temporary name and its rename
    more than double the kernel's work per file (1.5-2x in a test of 100,000
    small files). A file cut short by a kill is left at its name without a
    row; checking the version out again overwrites it
    (``Stage.interrupted_fresh_checkout``). A failure removes it.
    """
    check_rel_path(path)
    make_parent(root, path, folders)
    dest = os.path.join(root, *path.split("/"))
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return None
    return StatInfo.of(fill_new_file(fd, dest, repo, entry, path, progress.advance, chunks))


def _until(stop: Callable[[], bool], items: Iterator[T]) -> Iterator[T]:
    """``items`` until ``stop()`` says so (asked before each is taken, so none is lost)."""
    while not stop():
        item = next(items, None)
        if item is None:
            return
        yield item


def apply_fresh(
    repo: Repository, stage: Stage, disk: DiskState, tree_id: str, commit_id: str, in_scope: Callable[[str], bool], progress: ProgressReporter,
    scope: list[str] | None, offload: StartWriters | None = None,
) -> CheckoutResult:
    """Write ``tree_id``'s files into a workspace that tracks nothing, as the tree is walked; HEAD becomes ``commit_id``.

    There is nothing to lose, so each file is placed as soon as it is written
    and verified, and its stage row saved with the next batch; until the end
    the stage says which version is being checked out, and checking it out
    again finishes the job. Creating a file costs tens of microseconds of the
    kernel's time and its row some Python: after the first ``OFFLOAD_AFTER``
    files, ``offload`` starts other processes, and once they are up the walk
    hands them the rest (threads here lost to the GIL: writer threads made a
    clone of 100,000 tiny files 1.6x slower on two cores).
    """
    result = CheckoutResult(commit_id)
    stage.begin_checkout(commit_id, fresh=True)
    rows: list[StageRow] = []

    def record(row: StageRow) -> None:
        rows.append(row)
        if row.stat is not None and row.entry is not None:
            result.written += 1
            result.bytes_written += row.entry.size
        if len(rows) >= ROW_BATCH:
            stage.write(judged_now(rows))
            rows.clear()

    folders: set[str] = set()  # folders made or checked once, not per file
    files = walk_files(repo, tree_id)

    def write_here(items: Iterator[tuple[str, TreeEntry]]) -> None:
        for row in write_files(repo, disk.root, items, progress, folders, in_scope):
            record(row)

    write_here(_until(lambda: result.written >= OFFLOAD_AFTER, files))  # files written, not entries: a sparse scope needs no help
    following = next(files, None)
    if following is not None:
        files = chain([following], files)
        writers = offload(record) if offload is not None else None
        if writers is not None:
            with closing(writers):
                up: bool | None = None

                def started() -> bool:
                    nonlocal up
                    up = writers.ready()
                    return up is not None

                write_here(_until(started, files))  # files are written here while the others start
                if up:
                    for path, entry in files:
                        if in_scope(path):
                            writers.write(path, entry)
                        else:
                            record(StageRow(path, entry, None, head_info(entry)))
                    result.workers = writers.finish()
        write_here(files)  # all that is left when no other process could help
    stage.finish_checkout(judged_now(rows), commit_id, scope)
    return result
