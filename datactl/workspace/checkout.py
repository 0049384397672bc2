"""Checking out a version: plan what to write, delete and keep, then do it in two phases.

Untracked files are never overwritten (unless forced, or they already hold
the version's content), tracked files that already hold the version's
content are kept untouched, paths outside a sparse workspace's scope follow
the version in the stage only.

Applying a plan is all or nothing for every failure that reading data can
cause (a digest mismatch, a missing object, a full disk, a name or folder
the file system refuses): first every file to write is written, verified, to
a hidden temporary name (in its folder, or the nearest folder that exists);
only then are files deleted and the temporary names renamed into place, and
the stage and HEAD updated. A failure in the first phase removes the
temporary files and changes nothing else. The second phase does no data
I/O; if it is cut short (a crash, an I/O error), the stage records the
version being checked out, ``status`` says so, and checking it out again
finishes the job.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from datactl.core.crashpoints import crash_point
from datactl.core.dirs import make_dirs, walk_folder
from datactl.core.errors import LocalChanges, PathNotFound, UnsafePath
from datactl.core.parallel import parallel_map
from datactl.core.progress import ProgressReporter
from datactl.core.safepath import check_rel_path, temp_name
from datactl.core.settings import check_not_workspace_file
from datactl.core.sortedmerge import merge_by_path
from datactl.core.workerproc import usable_cpus
from datactl.format.objects import DIR, FILE, SYMLINK, TreeEntry
from datactl.store.basis import Basis, can_serve, write_from_basis
from datactl.store.filedata import read_ahead, write_new_file
from datactl.store.repository import Repository
from datactl.store.trees import lookup_path
from datactl.store.walk import walk_changes, walk_files
from datactl.workspace.disk import DiskState
from datactl.workspace.scan import DiskEntry
from datactl.workspace.stage import Stage, StageRow, StatInfo, head_info, same_content

# Stage rows of written files are saved in batches of this many.
ROW_BATCH = 1_000
# At most this many files are built on their bases at once.
BASIS_WRITERS = 4


@dataclass
class CheckoutResult:
    commit: str
    written: int = 0
    deleted: int = 0
    kept: int = 0
    bytes_written: int = 0
    bytes_reused: int = 0  # of bytes_written, copied from the files they replaced (``datactl.store.basis``)
    workers: int = 0  # other processes that wrote files of a fresh checkout (``datactl.workspace.checkoutworkers``)


# Files of a version (path, entry), as a function a caller may call more than once to walk them again.
FileListing = Callable[[], Iterable[tuple[str, TreeEntry]]]


@dataclass
class CheckoutPlan:
    writes: list[tuple[str, TreeEntry]] = field(default_factory=list)
    deletes: list[StageRow] = field(default_factory=list)
    head_updates: list[StageRow] = field(default_factory=list)
    stale_rows: list[str] = field(default_factory=list)
    bases: dict[str, TreeEntry] = field(default_factory=dict)  # path -> the entry its file on disk holds, to build on
    kept: int = 0
    bytes: int = 0


def holds(disk: DiskState, path: str, entry: TreeEntry) -> bool:
    """Whether the untracked file or link at ``path`` already holds ``entry``'s content (so writing it loses nothing)."""
    d = disk.lstat_entry(path)
    if d is None or d.kind != entry.kind or (entry.kind == FILE and d.st.st_size != entry.size):
        return False
    try:
        return disk.entry_of(d).digest == entry.digest
    except OSError:
        return False


def already_there(repo: Repository, disk: DiskState, tree_id: str, paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` that already are as the tree ``tree_id`` has them (its file on disk, or absent from both):
    what a checkout of it that was cut short had done."""
    done = set()
    for path in paths:
        entry = lookup_path(repo, tree_id, path)
        if (entry is None and not os.path.lexists(disk.abs_path(path))) or (entry is not None and entry.kind != DIR and holds(disk, path, entry)):
            done.add(path)
    return done


def plan_checkout(
    repo: Repository, stage: Stage, disk: DiskState, tree_id: str, force: bool, in_scope: Callable[[str], bool], label: str = "the version"
) -> CheckoutPlan:
    """What checking out ``tree_id`` writes, deletes and keeps; LocalChanges if it would overwrite untracked files.

    Every name is checked here (safe, not too long or deep, not the
    workspace's own configuration), before anything is written.
    """
    plan = CheckoutPlan()
    conflicts: list[str] = []
    dir_collisions: list[str] = []
    target = walk_files(repo, tree_id)
    for path, t, row in merge_by_path(target, stage.iter_rows(), lambda x: x[0], lambda r: r.path):
        staged = row.entry if row is not None else None
        if t is None:
            if staged is not None:
                plan.deletes.append(row)  # type: ignore[arg-type]
            else:
                plan.stale_rows.append(row.path)  # type: ignore[union-attr]
            continue
        check_not_workspace_file(path, label)
        entry = t[1]
        abs_path = disk.abs_path(path)
        if not in_scope(path):
            # Tracked but not materialized: the row follows the version, the disk is left alone.
            plan.head_updates.append(StageRow(path, entry, None, head_info(entry)))
            continue
        check_rel_path(path)
        if staged is not None:
            on_disk = os.path.lexists(abs_path)
            if same_content(staged, head_info(entry)) and on_disk and disk.matches(row, DiskEntry(path, staged.kind, os.lstat(abs_path))):
                plan.kept += 1
                if row.head != head_info(entry):  # type: ignore[union-attr]  # unchanged between versions: nothing to record
                    plan.head_updates.append(StageRow(path, row.entry, row.stat, head_info(entry)))  # type: ignore[union-attr]
                continue
            if on_disk and can_serve(staged, entry) and disk.matches(row, DiskEntry(path, staged.kind, os.lstat(abs_path))):
                plan.bases[path] = staged
        elif os.path.isdir(abs_path) and not os.path.islink(abs_path):
            dir_collisions.append(path)
        elif os.path.lexists(abs_path) and not force and not holds(disk, path, entry):
            conflicts.append(path)
            continue
        plan.writes.append((path, entry))
        plan.bytes += entry.size if entry.kind == FILE else 0
    disk.forget_refreshed()
    _refuse_untracked(disk, plan, conflicts, dir_collisions)
    if plan.stale_rows:
        stage.write([], plan.stale_rows)
    return plan


def _refuse_untracked(disk: DiskState, plan: CheckoutPlan, conflicts: list[str], dir_collisions: list[str]) -> None:
    """LocalChanges naming the untracked files the plan would overwrite, if any.

    A folder where the version has a file is fine only if it holds nothing but tracked files being deleted.
    """
    leaving = {row.path for row in plan.deletes}
    for path in dir_collisions:
        for dirpath, _dirs, files in walk_folder(disk.abs_path(path)):
            rel_dir = os.path.relpath(dirpath, disk.root).replace(os.sep, "/")
            if any(f"{rel_dir}/{f}" not in leaving for f in files):
                conflicts.append(path + "/")
                break
    if conflicts:
        raise LocalChanges(
            f"checkout would overwrite untracked files: {', '.join(conflicts[:10])}",
            "move them away, or use --force to overwrite them",
        )



def plan_switch(
    repo: Repository, stage: Stage, disk: DiskState, head_tree: str, tree_id: str, in_scope: Callable[[str], bool], label: str = "the version"
) -> CheckoutPlan:
    """What moving a workspace from HEAD's tree ``head_tree`` to ``tree_id`` writes and deletes, looking only
    at the paths that differ between the two trees (equal sub-trees are skipped unread), so the cost follows
    the change, not the size of the version.

    As in git, paths equal in both versions keep whatever local changes they have; a path that differs must
    be clean (tracked and unchanged, or absent), else LocalChanges, and an untracked file in the way is
    refused unless it already holds the new content. Names are checked as ``plan_checkout`` checks them.
    """
    plan = CheckoutPlan()
    changed: list[str] = []
    conflicts: list[str] = []
    dir_collisions: list[str] = []
    replaced = 0
    for path, old, new in walk_changes(repo, head_tree, tree_id):
        row = stage.get(path)
        if row is not None and row.staged_change:
            changed.append(path)
            continue
        tracked_here = row is not None and row.entry is not None and in_scope(path)
        if tracked_here:
            d = disk.lstat_entry(path)
            if d is not None and not disk.matches(row, d):
                changed.append(path)
                continue
            if d is None and new is not None:
                changed.append(path)  # deleted locally, and the version changes it
                continue
        if new is None:
            if row is not None:
                plan.deletes.append(row)
            continue
        check_not_workspace_file(path, label)
        if not in_scope(path):
            plan.head_updates.append(StageRow(path, new, None, head_info(new)))
            continue
        check_rel_path(path)
        abs_path = disk.abs_path(path)
        if not tracked_here:
            if os.path.isdir(abs_path) and not os.path.islink(abs_path):
                dir_collisions.append(path)
            elif os.path.lexists(abs_path) and not holds(disk, path, new):
                conflicts.append(path)
                continue
        plan.writes.append((path, new))
        plan.bytes += new.size if new.kind == FILE else 0
        replaced += row is not None and row.entry is not None
        if tracked_here and d is not None and can_serve(row.entry, new):  # type: ignore[union-attr]
            plan.bases[path] = row.entry  # type: ignore[union-attr]
    disk.save_refreshed()
    plan.kept = max(0, stage.count() - len(plan.deletes) - replaced)  # every other tracked file stays as it is
    if changed:
        raise LocalChanges(f"checkout would overwrite local changes: {', '.join(changed[:10])}", "commit them, or use --force to discard them")
    _refuse_untracked(disk, plan, conflicts, dir_collisions)
    return plan


# -- writing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A file or link of a version written and verified under a temporary name, waiting to be renamed into place."""

    path: str
    entry: TreeEntry
    tmp: str
    reused: int = 0  # bytes copied from the file it replaces


def _temp_folder(root: str, path: str, leaving: set[str], folders: set[str] | None = None) -> tuple[str, str]:
    """(the folder to write ``path``'s temporary file in, the part of ``path`` below it).

    That is ``path``'s own folder when it exists, else the nearest one above
    that does: no folder is created before the data is safe. A parent that is
    a symlink, or a file that is not being deleted, is refused. ``folders``
    holds folders this checkout has placed files in, not looked at again.
    """
    parent, _, name = path.rpartition("/")
    if folders is not None and parent in folders:
        return os.path.join(root, *parent.split("/")), name
    parts = path.split("/")
    current = root
    for i, part in enumerate(parts[:-1]):
        nxt = os.path.join(current, part)
        try:
            st = os.lstat(nxt)
        except FileNotFoundError:
            return current, "/".join(parts[i:])
        if stat.S_ISDIR(st.st_mode):
            current = nxt
            continue
        if stat.S_ISREG(st.st_mode) and "/".join(parts[: i + 1]) in leaving:
            return current, "/".join(parts[i:])  # a file of the old version, deleted before the rename
        raise UnsafePath(
            f"{'/'.join(parts[: i + 1])} is a {'symlink' if stat.S_ISLNK(st.st_mode) else 'file'}, not a folder",
            "move it away, then run the command again",
        )
    return current, parts[-1]


def make_parent(root: str, path: str, folders: set[str]) -> None:
    """Make ``path``'s folder, once per folder of ``folders``, after checking as ``_temp_folder`` does that no part
    of it is a symlink or a file."""
    parent = path.rpartition("/")[0]
    if parent not in folders:
        _temp_folder(root, path, set())
        make_dirs(os.path.join(root, *parent.split("/")))
        folders.add(parent)


def prepare_entry(
    repo: Repository, root: str, path: str, entry: TreeEntry, progress: ProgressReporter, leaving: set[str], taken: set[str],
    chunks: Mapping[str, bytes] | None = None, folders: set[str] | None = None, basis: TreeEntry | None = None, tag: str = "",
) -> Prepared:
    """Write one file or symlink of a version, verified, under a temporary name; nothing is created at ``path`` yet.
    ``basis``: the entry the file now at ``path`` holds, whose chunks the new one may copy from it. ``tag``: see
    ``temp_name``."""
    tmp = _temp_path(root, path, leaving, taken, folders, tag)
    if entry.kind == SYMLINK:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(entry.target or "", tmp)
        return Prepared(path, entry, tmp)
    if basis is not None:
        return _build_on_basis(repo, root, Prepared(path, entry, tmp), basis, progress)
    write_new_file(repo, entry, tmp, path, progress.advance, chunks)
    return Prepared(path, entry, tmp)


def _temp_path(root: str, path: str, leaving: set[str], taken: set[str], folders: set[str] | None = None, tag: str = "") -> str:
    """The temporary name ``path`` is written under, one not ``taken`` by another path of this checkout."""
    folder, rest = _temp_folder(root, path, leaving, folders)
    tmp = os.path.join(folder, temp_name(rest.replace("/", "%"), tag))
    n = 1
    while tmp in taken:  # two paths of one version map to one temporary name (names with '%', or cut long ones)
        tmp = os.path.join(folder, temp_name(rest.replace("/", "%"), f"{tag}-{n}"))
        n += 1
    taken.add(tmp)
    return tmp


def _build_on_basis(repo: Repository, root: str, p: Prepared, basis: TreeEntry, progress: ProgressReporter) -> Prepared:
    """Write ``p``'s file from the file at its path (holding ``basis``) and the store; from the store alone when that
    does not serve."""
    reused = write_from_basis(repo, p.entry, Basis(os.path.join(root, *p.path.split("/")), basis), p.tmp, progress.advance)
    if reused is None:
        write_new_file(repo, p.entry, p.tmp, p.path, progress.advance)
        return p
    return Prepared(p.path, p.entry, p.tmp, reused)


def place_entry(root: str, p: Prepared, folders: set[str] | None = None) -> StatInfo:
    """Rename a prepared entry into place (creating its folders, and adding them to ``folders``; an empty folder in
    the way is removed); return its stat."""
    dest = os.path.join(root, *p.path.split("/"))
    parent = p.path.rpartition("/")[0]
    if folders is None or parent not in folders:
        make_dirs(os.path.dirname(dest))
        if folders is not None:
            folders.add(parent)
    try:
        os.replace(p.tmp, dest)
    except IsADirectoryError:  # a folder where the version has a file: replaced only when empty
        try:
            os.rmdir(dest)
        except OSError:
            raise LocalChanges(f"{p.path} is a folder with untracked files where the version has a file", "move it away and retry") from None
        os.replace(p.tmp, dest)
    return StatInfo.of(os.lstat(dest), time.time_ns())


def judged_now(rows: list[StageRow]) -> list[StageRow]:
    """Rows of files this checkout wrote, as saved now: each stat judged against this moment (``StatInfo.judged_at``)."""
    now = time.time_ns()
    return [StageRow(r.path, r.entry, r.stat.judged_at(now), r.head) if r.stat is not None else r for r in rows]


def discard(prepared: Iterable[Prepared]) -> None:
    """Remove the temporary files of entries that will not be placed."""
    for p in prepared:
        try:
            os.unlink(p.tmp)
        except FileNotFoundError:
            pass


def prepare_all(
    repo: Repository, root: str, writes: list[tuple[str, TreeEntry]], progress: ProgressReporter, leaving: set[str],
    bases: Mapping[str, TreeEntry] | None = None,
) -> list[Prepared]:
    """Phase one: every entry of ``writes`` written and verified under a temporary name; on failure none is left.
    ``bases``: paths whose file on disk holds a known entry, to build the new one on (``CheckoutPlan.bases``)."""
    prepared: list[Prepared] = []
    taken: set[str] = set()
    bases = bases or {}
    built: list[Prepared] = []  # files to build on their bases, named here and written by a few threads at once
    try:
        for (path, entry), chunks in read_ahead(repo, [w for w in writes if w[0] not in bases], lambda item: item[1]):
            prepared.append(prepare_entry(repo, root, path, entry, progress, leaving, taken, chunks))
        built = [Prepared(path, entry, _temp_path(root, path, leaving, taken)) for path, entry in writes if path in bases]
        # Copies in the kernel and read-backs release the GIL: one file per core goes as fast as the page cache takes them.
        jobs = min(BASIS_WRITERS, usable_cpus())
        prepared.extend(parallel_map(lambda p: _build_on_basis(repo, root, p, bases[p.path], progress), built, jobs, "datactl-write"))
    except BaseException:
        discard(prepared + built)  # parallel_map has waited for its threads: nothing is written after this
        raise
    return prepared


def write_entry(
    repo: Repository, root: str, path: str, entry: TreeEntry, progress: ProgressReporter, chunks: Mapping[str, bytes] | None = None,
    folders: set[str] | None = None, tag: str = "",
) -> StatInfo:
    """Write one file or symlink of a version at ``path`` (verified, through a temp name); return its stat. A caller
    writing many files passes one ``folders`` set to all: each folder is then checked or made once, not per file.
    Writers working side by side give each a ``tag``, so that their temporary names never meet."""
    check_rel_path(path)
    p = prepare_entry(repo, root, path, entry, progress, set(), set(), chunks, folders, tag=tag)
    try:
        return place_entry(root, p, folders)
    except BaseException:
        discard([p])
        raise


def apply_checkout(repo: Repository, stage: Stage, disk: DiskState, plan: CheckoutPlan, commit_id: str, progress: ProgressReporter, scope: list[str] | None = None) -> CheckoutResult:
    """Write, delete and record what ``plan`` says; HEAD becomes ``commit_id`` (and the sparse paths ``scope``, when given)."""
    result = CheckoutResult(commit_id, kept=plan.kept)
    prepared = prepare_all(repo, disk.root, plan.writes, progress, {row.path for row in plan.deletes}, plan.bases)
    # Phase two: renames and deletions only. Until it ends, the stage says which version is being checked out.
    stage.begin_checkout(commit_id, fresh=stage.interrupted_fresh_checkout() == commit_id)  # finishing a fresh one: still so
    try:
        for row in plan.deletes:
            abs_path = disk.abs_path(row.path)
            if os.path.islink(abs_path) or os.path.isfile(abs_path):
                os.unlink(abs_path)
            prune_empty_dirs(disk.root, row.path)
            result.deleted += 1
        stage.write([], [r.path for r in plan.deletes])
        rows: list[StageRow] = []
        for p in prepared:
            crash_point("checkout-placing")
            st = place_entry(disk.root, p)
            rows.append(StageRow(p.path, p.entry, st, head_info(p.entry)))
            result.written += 1
            result.bytes_written += p.entry.size
            result.bytes_reused += p.reused
            if len(rows) >= ROW_BATCH:
                stage.write(judged_now(rows))
                rows = []
    except BaseException:
        discard(prepared[result.written :])
        raise
    stage.finish_checkout(judged_now(rows) + plan.head_updates, commit_id, scope)
    return result


def plan_restore(repo: Repository, tree_id: str, paths: list[str], label: str) -> list[tuple[str, TreeEntry]]:
    """The files and links under ``paths`` (files or folders) of the tree ``tree_id``, each once; a path not in it is refused."""
    found: dict[str, TreeEntry] = {}
    for rel in paths:
        entry = lookup_path(repo, tree_id, rel)
        if entry is None:
            raise PathNotFound(f"{rel or '.'} is not in {label}", "`datactl ls -r REF` lists its files")
        if entry.kind == DIR:
            found.update(walk_files(repo, entry.digest, rel + "/" if rel else ""))
        else:
            found[rel] = entry
    for path in found:
        check_not_workspace_file(path, label)
        check_rel_path(path)
    return sorted(found.items(), key=lambda item: item[0].encode("utf-8"))


def apply_restore(repo: Repository, stage: Stage, root: str, writes: list[tuple[str, TreeEntry]], commit_id: str, progress: ProgressReporter) -> CheckoutResult:
    """Write ``writes`` over what is there and stage them (HEAD stays); every file is written and verified before the first is placed."""
    result = CheckoutResult(commit_id)
    prepared = prepare_all(repo, root, writes, progress, set())
    rows: list[StageRow] = []
    try:
        for p in prepared:
            st = place_entry(root, p)
            old = stage.get(p.path)
            rows.append(StageRow(p.path, p.entry, st, old.head if old is not None else None))
            result.written += 1
            result.bytes_written += p.entry.size
    except BaseException:
        discard(prepared[result.written :])
        raise
    finally:
        stage.write(judged_now(rows))  # what was placed is staged, so status tells the truth even after a failure
    return result


def prune_empty_dirs(root: str, rel: str) -> None:
    """Remove the folders above ``rel`` that became empty."""
    parts = rel.split("/")[:-1]
    while parts:
        try:
            os.rmdir(os.path.join(root, *parts))
        except OSError:
            return
        parts.pop()
