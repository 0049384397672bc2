"""Checking out a version: plan what to write, delete and keep, then do it.

Untracked files are never overwritten (unless forced), tracked files that
already hold the version's content are kept untouched, paths outside a sparse
workspace's scope follow the version in the stage only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from datactl.core.errors import LocalChanges
from datactl.core.progress import ProgressReporter
from datactl.core.safepath import TEMP_SUFFIX, safe_join
from datactl.core.sortedmerge import merge_by_path
from datactl.format.objects import FILE, SYMLINK, TreeEntry
from datactl.store.filedata import restore_file
from datactl.store.repository import Repository
from datactl.store.walk import walk_files
from datactl.workspace.disk import DiskState
from datactl.workspace.scan import DiskEntry
from datactl.workspace.stage import Stage, StageRow, StatInfo, head_info, same_content

# Stage rows of written files are saved in batches of this many.
ROW_BATCH = 1_000


@dataclass
class CheckoutResult:
    commit: str
    written: int = 0
    deleted: int = 0
    kept: int = 0
    bytes_written: int = 0


@dataclass
class CheckoutPlan:
    writes: list[tuple[str, TreeEntry]] = field(default_factory=list)
    deletes: list[StageRow] = field(default_factory=list)
    head_updates: list[StageRow] = field(default_factory=list)
    stale_rows: list[str] = field(default_factory=list)
    kept: int = 0
    bytes: int = 0


def plan_checkout(repo: Repository, stage: Stage, disk: DiskState, tree_id: str, force: bool, in_scope: Callable[[str], bool]) -> CheckoutPlan:
    """What checking out ``tree_id`` writes, deletes and keeps; LocalChanges if it would overwrite untracked files."""
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
        entry = t[1]
        abs_path = disk.abs_path(path)
        if not in_scope(path):
            # Tracked but not materialized: the row follows the version, the disk is left alone.
            plan.head_updates.append(StageRow(path, entry, None, head_info(entry)))
            continue
        if staged is not None:
            on_disk = os.path.lexists(abs_path)
            if same_content(staged, head_info(entry)) and on_disk and disk.matches(row, DiskEntry(path, staged.kind, os.lstat(abs_path))):
                plan.kept += 1
                if row.head != head_info(entry):  # type: ignore[union-attr]  # unchanged between versions: nothing to record
                    plan.head_updates.append(StageRow(path, row.entry, row.stat, head_info(entry)))  # type: ignore[union-attr]
                continue
        elif os.path.isdir(abs_path) and not os.path.islink(abs_path):
            dir_collisions.append(path)
        elif os.path.lexists(abs_path) and not force:
            conflicts.append(path)
            continue
        plan.writes.append((path, entry))
        plan.bytes += entry.size if entry.kind == FILE else 0
    disk.forget_refreshed()
    # A folder where the version has a file is fine only if it holds nothing but tracked files being deleted.
    leaving = {row.path for row in plan.deletes}
    for path in dir_collisions:
        for dirpath, _dirs, files in os.walk(disk.abs_path(path)):
            rel_dir = os.path.relpath(dirpath, disk.root).replace(os.sep, "/")
            if any(f"{rel_dir}/{f}" not in leaving for f in files):
                conflicts.append(path + "/")
                break
    if conflicts:
        raise LocalChanges(
            f"checkout would overwrite untracked files: {', '.join(conflicts[:10])}",
            "move them away, or use --force to overwrite them",
        )
    if plan.stale_rows:
        stage.write([], plan.stale_rows)
    return plan


def apply_checkout(repo: Repository, stage: Stage, disk: DiskState, plan: CheckoutPlan, commit_id: str, progress: ProgressReporter) -> CheckoutResult:
    """Delete, write and record what ``plan`` says; HEAD becomes ``commit_id``."""
    result = CheckoutResult(commit_id, kept=plan.kept)
    for row in plan.deletes:
        abs_path = disk.abs_path(row.path)
        if os.path.islink(abs_path) or os.path.isfile(abs_path):
            os.unlink(abs_path)
        prune_empty_dirs(disk.root, row.path)
        result.deleted += 1
    stage.write([], [r.path for r in plan.deletes])
    rows: list[StageRow] = []
    for path, entry in plan.writes:
        st = write_entry(repo, disk.root, path, entry, progress)
        rows.append(StageRow(path, entry, st, head_info(entry)))
        result.written += 1
        result.bytes_written += entry.size
        if len(rows) >= ROW_BATCH:
            stage.write(rows)
            rows = []
    stage.write(rows + plan.head_updates)
    stage.set_meta("head", commit_id)
    return result


def write_entry(repo: Repository, root: str, path: str, entry: TreeEntry, progress: ProgressReporter) -> StatInfo:
    """Write one file or symlink of a version at ``path`` (verified, through a temp name); return its stat."""
    dest = safe_join(root, path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.isdir(dest) and not os.path.islink(dest):
        try:
            os.rmdir(dest)
        except OSError:
            raise LocalChanges(f"{path} is a folder with untracked files where the version has a file", "move it away and retry") from None
    if entry.kind == SYMLINK:
        tmp = f"{dest}{TEMP_SUFFIX}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(entry.target or "", tmp)
        os.replace(tmp, dest)
    else:
        restore_file(repo, entry, dest, path, progress.advance)
    read_at = time.time_ns()
    return StatInfo.of(os.lstat(dest), read_at)


def prune_empty_dirs(root: str, rel: str) -> None:
    """Remove the folders above ``rel`` that became empty."""
    parts = rel.split("/")[:-1]
    while parts:
        try:
            os.rmdir(os.path.join(root, *parts))
        except OSError:
            return
        parts.pop()
