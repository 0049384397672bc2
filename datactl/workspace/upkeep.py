"""A workspace's own store as the target of gc, fsck and squash.

Besides its refs, a workspace holds versions that no ref may name yet (its
checked-out commit, a commit whose ref update was cut short, a merge in
progress) and its staged files; gc must keep all of them. Its store holds only
the file data that was pulled (a partial clone), and its object index must
follow what gc or a repair changed.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from datactl.core.ids import is_object_id
from datactl.format.layout import WorkspaceLayout
from datactl.format.objects import FILE
from datactl.remote.locate import choose_store
from datactl.remote.remotestore import RemoteStore
from datactl.store.index import ObjectIndex
from datactl.store.repository import Repository
from datactl.upkeep.fsck import FsckIssue, FsckReport, fsck
from datactl.upkeep.targets import ExtraRoots, IndexChange, StoreTarget, remote_target
from datactl.workspace.repair import check_databases
from datactl.workspace.shallow import shallow_commits
from datactl.workspace.workspace import Workspace


def workspace_target(ws: Workspace) -> StoreTarget:
    """The workspace's own store (call under ``ws.locked()``)."""

    def roots() -> ExtraRoots:
        extra = ExtraRoots(cut=shallow_commits(ws.stage))
        for key in ("head", "pending_commit", "merge_head"):
            v = ws.stage.get_meta(key)
            if v and is_object_id(v):
                extra.commits.append(v)
        for row in ws.stage.iter_rows():
            if row.entry is not None and row.entry.kind == FILE and not row.entry.is_external:
                extra.entries.append(row.entry)
        return extra

    def after(change: IndexChange) -> None:
        index = ws.repo.index
        if change.rebuilt:
            index.clear()
            index.add_packs((pid, size, entries) for pid, (size, entries) in change.added_packs.items())
            return
        index.replace_packs(change.removed_packs, {**change.added_packs, **change.relocated})

    return StoreTarget(ws.repo.backend, f"the store of {ws.root}", ws.layout.tmp_dir, ws.repo.config.pack_size, roots, after, partial=True)


@dataclass
class UpkeepStore:
    """A store opened for gc, fsck, squash or a ref deletion: its target, and the workspace or remote behind it."""

    target: StoreTarget
    workspace: Workspace | None
    remote: RemoteStore | None

    @contextmanager
    def repository(self) -> Iterator[Repository]:
        """A Repository over the store: the workspace's own, or the remote's backend with its index cache."""
        if self.workspace is not None:
            yield self.workspace.repo
            return
        assert self.remote is not None
        self.remote.sync_index()
        repo = Repository(self.remote.backend, ObjectIndex(self.remote.index.path), self.remote.config(), self.target.tmp_dir)
        try:
            yield repo
        finally:
            repo.close()


def fsck_store(
    text: str | None, options: dict[str, Any] | None = None, *, repair: bool = False, read_data: bool = False
) -> FsckReport:
    """``datactl fsck``: check the store ``text`` names, or the workspace's own store and its databases first.

    With ``repair``, a workspace's damaged index.db and stage.db are rebuilt
    (``datactl.workspace.repair``), then the store's index from the packs.
    """
    choice = choose_store(text, options=options)
    databases = check_databases(choice.root, repair) if choice.own and choice.root is not None else None
    if databases is not None and databases.damaged and not repair:
        report = FsckReport(f"the store of {choice.root}", store_checked=False)
        for why in databases.damaged.values():
            report.issues.append(FsckIssue("error", "workspace databases", why, True))
        return report
    with open_upkeep_store(text, options, lock_workspace=repair) as store:
        report = fsck(store.target, repair=repair, read_data=read_data)
    if databases is not None:
        report.rebuilt, report.lost = databases.rebuilt, databases.lost
        report.repaired = report.repaired or bool(databases.rebuilt)
    return report


@contextmanager
def open_upkeep_store(text: str | None, options: dict[str, Any] | None = None, *, lock_workspace: bool = True) -> Iterator[UpkeepStore]:
    """The store ``text`` names (a remote, URL or path), or the workspace's own; its workspace is locked meanwhile."""
    choice = choose_store(text, options=options)
    if choice.own:
        assert choice.root is not None
        with Workspace(choice.root) as ws:
            if lock_workspace:
                with ws.locked():
                    yield UpkeepStore(workspace_target(ws), ws, None)
            else:
                yield UpkeepStore(workspace_target(ws), ws, None)
        return
    with ExitStack() as stack:
        # Outside a workspace the scratch folder is the run's own, and goes with it.
        tmp_dir = WorkspaceLayout(choice.root).tmp_dir if choice.root is not None else stack.enter_context(tempfile.TemporaryDirectory(prefix="datactl-upkeep-"))
        rs = stack.enter_context(RemoteStore(choice.spec, choice.cache_dir))
        yield UpkeepStore(remote_target(rs, tmp_dir), None, rs)
