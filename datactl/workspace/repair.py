"""Checking and rebuilding a workspace's own databases, which hold nothing that cannot be derived again.

- ``.datactl/index.db`` (where each object is) is derived from the packs'
  footers: damaged, missing, or disagreeing with the packs, it is rebuilt.
- ``.datactl/stage.db`` (the stage, the stat cache, and HEAD, the sparse
  paths, a merge in progress) is derived from HEAD and the files on disk:
  damaged or missing, it is rebuilt with HEAD's files as the stage, and a
  rescan of the disk. Its meta values are kept when they can still be read;
  otherwise HEAD is taken from the dataset's ref, and the staged changes,
  the sparse paths and a merge in progress are lost (the files on disk are
  never touched, so a lost staged change shows as a change not staged).

``datactl fsck`` runs ``check_databases`` before it checks the store.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field

from datactl.core.errors import DatabaseDamaged, DatactlError
from datactl.core.ids import is_object_id
from datactl.format.layout import WorkspaceLayout, head_ref
from datactl.store.walk import walk_files
from datactl.workspace.opening import database_present, open_store, read_workspace_config, workspace_lock
from datactl.workspace.stage import Stage, StageRow, head_info
from datactl.workspace.workspace import Workspace

# Meta values of the stage kept across a rebuild, when they can be read.
KEPT_META = ("head", "sparse", "merge", "merge_head", "pending_commit", "pending_ref", "checkout")
ROW_BATCH = 10_000


@dataclass
class DatabaseCheck:
    """What checking a workspace's databases found (``damaged``: file -> why) and, with repair, did."""

    damaged: dict[str, str] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged or bool(self.rebuilt)


def _index_problem(layout: WorkspaceLayout) -> str | None:
    """What is wrong with index.db, as a sentence naming it, or None."""
    path = layout.index_db
    if not database_present(path):
        return f"{path} is missing"
    try:
        repo = open_store(layout)
    except DatabaseDamaged as exc:
        return exc.message
    try:
        problem = repo.index.integrity_problem()
        if problem is not None:
            return f"{path} is damaged ({problem})"
        wrong = repo.index_disagreements()
        return f"{path} disagrees with the packs' footers about {wrong} object(s)" if wrong else None
    except DatabaseDamaged as exc:
        return exc.message
    finally:
        repo.close()


def _stage_problem(layout: WorkspaceLayout) -> str | None:
    """What is wrong with stage.db, as a sentence naming it, or None."""
    path = layout.stage_db
    if not database_present(path):
        return f"{path} is missing"
    try:
        stage = Stage(path)
    except DatabaseDamaged as exc:
        return exc.message
    try:
        problem = stage.integrity_problem() or stage.row_problem()
        return f"{path} is damaged ({problem})" if problem else None
    except DatabaseDamaged as exc:
        return exc.message
    finally:
        stage.close()


def _readable_meta(path: str) -> dict[str, str] | None:
    """The meta values of a damaged stage that still read as what they should be, or None if the table cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT key, value FROM meta").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    kept: dict[str, str] = {}
    for key, value in rows:
        if key not in KEPT_META or not isinstance(value, str):
            continue
        if key in ("head", "merge_head", "pending_commit", "checkout") and not is_object_id(value):
            continue
        if key in ("sparse", "merge", "pending_ref"):
            try:
                json.loads(value)
            except ValueError:
                continue
        kept[key] = value
    return kept


def _move_aside(path: str) -> str:
    """Keep a damaged database as ``NAME.damaged`` (for a closer look), out of the way of the new one."""
    aside = path + ".damaged"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return aside


def _rebuild_index(layout: WorkspaceLayout, why: str, check: DatabaseCheck) -> None:
    _move_aside(layout.index_db)
    repo = open_store(layout, announce=False)  # a missing index is rebuilt from the footers on open
    try:
        count = repo.index.stored_bytes()[0]
        packs = len(repo.index.packs())
    finally:
        repo.close()
    check.rebuilt.append(f"{why}: rebuilt it from the footers of {packs} pack(s), {count} object(s)")


def _rebuild_stage(root: str, layout: WorkspaceLayout, why: str, check: DatabaseCheck) -> None:
    meta = _readable_meta(layout.stage_db) if database_present(layout.stage_db) else None
    aside = _move_aside(layout.stage_db)
    config = read_workspace_config(root)
    lost_meta = meta is None
    meta = meta or {}
    repo = open_store(layout, announce=False)
    stage = Stage(layout.stage_db)
    try:
        head = meta.get("head")
        if head is None:
            head = repo.refs.get(head_ref(config.kind, config.name))
            if head is not None:
                meta["head"] = head
        for key, value in meta.items():
            stage.set_meta(key, value)
        rows: list[StageRow] = []
        if head is not None:
            for path, entry in walk_files(repo, repo.read_commit(head).tree):
                rows.append(StageRow(path, entry, None, head_info(entry)))
                if len(rows) >= ROW_BATCH:
                    stage.write(rows)
                    rows = []
        stage.write(rows)
    finally:
        stage.close()
        repo.close()
    with Workspace(root) as ws:
        status = ws.status()  # the rescan: files equal to HEAD get their stat cached, the rest are listed
    changed = len(status.unstaged)
    where = f"HEAD {head[:12]}" + (" (taken from the dataset's ref)" if lost_meta else "") if head else "no HEAD (nothing committed)"
    kept = f"; the damaged file is kept as {aside}" if os.path.exists(aside) else ""
    check.rebuilt.append(
        f"{why}: rebuilt it from {where} and a rescan of the files"
        + (f"; {changed} file(s) differ from HEAD (`datactl status` lists them)" if changed else "")
        + kept
    )
    if lost_meta:
        check.lost.append(
            "the stage's own records could not be read: changes that were staged are now changes not staged "
            "(`datactl add` them again); a partial workspace's paths and a merge in progress are forgotten"
        )


def check_databases(root: str, repair: bool = False) -> DatabaseCheck:
    """Check the workspace's index.db and stage.db; with ``repair``, rebuild each that is damaged (under the workspace lock)."""
    layout = WorkspaceLayout(root)
    check = DatabaseCheck()
    with workspace_lock(layout):
        why = _index_problem(layout)
        if why is not None:
            check.damaged[layout.index_db] = why
            if repair:
                _rebuild_index(layout, why, check)
        why = _stage_problem(layout)
        if why is not None:
            check.damaged[layout.stage_db] = why
            if repair:
                try:
                    _rebuild_stage(root, layout, why, check)
                except DatactlError as exc:
                    check.lost.append(f"{layout.stage_db} could not be rebuilt: {exc.message}")
    return check
