"""A workspace's own store as the target of gc, fsck and squash.

Besides its refs, a workspace holds versions that no ref may name yet (its
checked-out commit, a commit whose ref update was cut short, a merge in
progress) and its staged files; gc must keep all of them. Its store holds only
the file data that was pulled (a partial clone), and its object index must
follow what gc or a repair changed.
"""

from __future__ import annotations

from datactl.core.ids import is_object_id
from datactl.format.objects import FILE
from datactl.upkeep.targets import ExtraRoots, IndexChange, StoreTarget
from datactl.workspace.workspace import Workspace


def workspace_target(ws: Workspace) -> StoreTarget:
    """The workspace's own store (call under ``ws.locked()``)."""

    def roots() -> ExtraRoots:
        extra = ExtraRoots()
        for key in ("head", "pending_commit", "merge_head"):
            v = ws.stage.get_meta(key)
            if v and is_object_id(v):
                extra.commits.append(v)
        for row in ws.stage.iter_rows():
            if row.entry is not None and row.entry.kind == FILE:
                extra.entries.append(row.entry)
        return extra

    def after(change: IndexChange) -> None:
        index = ws.repo.index
        if change.rebuilt:
            index.clear()
            for pid, (size, entries) in change.added_packs.items():
                index.add_pack(pid, size, entries)
            return
        for pid in change.removed_packs:
            index.remove_pack(pid)
        for pid, (size, entries) in {**change.added_packs, **change.relocated}.items():
            index.add_pack(pid, size, entries)

    return StoreTarget(ws.repo.backend, f"the store of {ws.root}", ws.layout.tmp_dir, ws.repo.config.pack_size, roots, after, partial=True)
