"""Merging two lines of a dataset's history into one version with two parents.

Two people push versions of the same dataset from the same starting point;
the second push is refused ("the remote moved on"). ``datactl merge``
joins the lines: it finds the versions' common ancestor (the merge base) and
compares both sides with it, path by path:

- a path changed on one side only takes that side's content (added, changed,
  deleted or turned from a file into a folder);
- a path changed the same way on both sides is taken as is;
- a path changed differently on both sides is a **conflict**.

Whole folders that one side left alone are taken from the other side without
being opened, so a merge costs what changed, not the dataset's size.

A file changed on both sides that is a table with a key configured in
datactl.toml (``[tables."labels.csv"] key = ["path"]``) is merged row by row
first (``datactl.workspace.tablemerge``); only rows changed differently on
both sides remain, in an editable conflict table.

Without conflicts the merge is committed at once (parents: our head, then
theirs). With conflicts nothing is committed: every non-conflicting change is
applied to the workspace and staged, each conflicting file keeps our content,
their content is written next to it as ``PATH.theirs``, and the merge waits.
Resolve by putting the content you want at PATH and ``datactl add PATH``,
then ``datactl merge --continue`` (or ``datactl commit``); or give up with
``datactl merge --abort``. ``--strategy ours|theirs`` settles every conflict
for one side up front.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

from datactl.core.errors import LocalChanges, ObjectMissing, UnknownRef, UsageError
from datactl.core.ids import hash_file
from datactl.core.progress import NullProgress, ProgressReporter
from datactl.core.safepath import check_depth
from datactl.core.settings import check_not_workspace_file
from datactl.format.objects import DIR, FILE, TreeEntry, decode_chunklist
from datactl.format.pack import ObjectType
from datactl.lineage.index import record_local_commit
from datactl.remote.locate import list_remotes, resolve_remote
from datactl.remote.transfer import commit_closure
from datactl.store.filedata import chunk_ids_of
from datactl.store.repository import Repository
from datactl.store.trees import lookup_path, write_tree
from datactl.store.walk import walk_changes
from datactl.workspace.checkout import judged_now, prune_empty_dirs, write_entry
from datactl.workspace.stage import StageRow
from datactl.workspace.tablemerge import apply_table_resolutions, drop_conflict_tables, merge_table_conflicts, write_table_merges
from datactl.workspace.workspace import Workspace

STRATEGIES = ("ours", "theirs")
SIDECAR_SUFFIX = ".theirs"
UP_TO_DATE, FAST_FORWARD, MERGED, CONFLICTS = "up-to-date", "fast-forward", "merged", "conflicts"


@dataclass(frozen=True)
class Conflict:
    path: str
    reason: str
    sidecar: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "sidecar": self.sidecar}


@dataclass
class MergeResult:
    status: str  # up-to-date, fast-forward, merged, conflicts
    ours: str
    theirs: str
    base: str | None = None
    commit: str | None = None  # the merge commit, or the version fast-forwarded to
    conflicts: list[Conflict] = field(default_factory=list)
    updated: int = 0  # paths changed in the workspace
    resolved: dict[str, str] = field(default_factory=dict)  # conflict path -> side taken by --strategy

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "ours": self.ours, "theirs": self.theirs, "base": self.base, "commit": self.commit,
            "conflicts": [c.to_dict() for c in self.conflicts], "updated": self.updated, "resolved": self.resolved,
        }


# -- history -------------------------------------------------------------------------------------


def merge_base(repo: Repository, a: str, b: str) -> str | None:
    """The nearest common ancestor of ``a`` and ``b`` (the newest one if there are several), or None."""
    common = commit_closure(repo, [a]) & commit_closure(repo, [b])
    if not common:
        return None
    below: set[str] = set()
    # Parents the store lacks are where a shallow history ends: commit_closure did not reach them either.
    stack = [p for c in common for p in repo.read_commit(c).parents if repo.has(p)]
    while stack:
        c = stack.pop()
        if c in below:
            continue
        below.add(c)
        stack.extend(p for p in repo.read_commit(c).parents if repo.has(p))
    bases = common - below
    return max(bases, key=lambda c: (repo.read_commit(c).time, c))


# -- trees ---------------------------------------------------------------------------------------


def _same(a: TreeEntry | None, b: TreeEntry | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (a.kind, a.mode, a.digest) == (b.kind, b.mode, b.digest)


def _entries(repo: Repository, tree_id: str | None) -> dict[str, TreeEntry]:
    return {e.name: e for e in repo.read_tree(tree_id).entries} if tree_id else {}


def _is_dir(e: TreeEntry | None) -> bool:
    return e is not None and e.kind == DIR


def _reason(base: TreeEntry | None, ours: TreeEntry | None, theirs: TreeEntry | None) -> str:
    if _is_dir(ours) != _is_dir(theirs) and ours is not None and theirs is not None:
        return "a file on one side, a folder on the other"
    if base is None:
        return "added on both sides with different content"
    if ours is None:
        return "deleted here, changed there"
    if theirs is None:
        return "changed here, deleted there"
    return "changed on both sides"


def merge_trees(
    repo: Repository, base: str | None, ours: str, theirs: str, strategy: str | None = None
) -> tuple[str, list[Conflict], dict[str, str]]:
    """Three-way merge of root trees; returns (merged tree id, conflicts left, conflicts settled by ``strategy``).

    A conflicting path keeps our entry (``strategy="theirs"``: theirs).
    """
    conflicts: list[Conflict] = []
    resolved: dict[str, str] = {}

    def open_folder(b: str | None, o: str | None, t: str | None, prefix: str, name: str) -> _Folder:
        sides = (_entries(repo, b), _entries(repo, o), _entries(repo, t))
        return _Folder(prefix, name, sorted(sides[0].keys() | sides[1].keys() | sides[2].keys()), sides)

    # Folders merged on both sides are opened on a stack (no recursion, whatever the depth).
    stack = [open_folder(base, ours, theirs, "", "")]
    while True:
        folder = stack[-1]
        if folder.next >= len(folder.names):
            stack.pop()
            if not stack:
                return write_tree(repo, folder.out).digest, conflicts, resolved
            if folder.out:
                stack[-1].out.append(replace(write_tree(repo, folder.out), name=folder.name))
            continue
        name = folder.names[folder.next]
        folder.next += 1
        be, oe, te = (side.get(name) for side in folder.sides)
        if _same(oe, te):
            chosen = oe
        elif _same(be, oe):
            chosen = te
        elif _same(be, te):
            chosen = oe
        elif all(e is None or _is_dir(e) for e in (be, oe, te)):
            # Folders (or no folder) on every side: merge what is inside, file by file.
            check_depth(f"{folder.prefix}{name}/", len(stack))
            stack.append(open_folder(*(e.digest if e is not None else None for e in (be, oe, te)), f"{folder.prefix}{name}/", name))
            continue
        else:
            path = folder.prefix + name
            if strategy is None:
                conflicts.append(Conflict(path, _reason(be, oe, te)))
            else:
                resolved[path] = strategy
            chosen = te if strategy == "theirs" else oe
        if chosen is not None:
            folder.out.append(chosen)


@dataclass
class _Folder:
    """A folder being merged: its path, name, the names on any side, each side's entries, and the merged entries so far."""

    prefix: str
    name: str
    names: list[str]
    sides: tuple[dict[str, TreeEntry], dict[str, TreeEntry], dict[str, TreeEntry]]
    out: list[TreeEntry] = field(default_factory=list)
    next: int = 0


def _lookup(repo: Repository, tree_id: str | None, path: str) -> TreeEntry | None:
    if tree_id is None:
        return None
    e = lookup_path(repo, tree_id, path)
    return e if e is not None and e.kind != DIR else None


# -- the workspace side ----------------------------------------------------------------------------


def merge_state(ws: Workspace) -> dict[str, Any] | None:
    """The merge waiting in ``ws`` for conflicts to be resolved, or None."""
    raw = ws.stage.get_meta("merge")
    return json.loads(raw) if raw else None


def _ensure_local(ws: Workspace, entries: list[TreeEntry], remote: str | None) -> None:
    """Download the chunks of ``entries`` that the local store lacks (from the workspace's remote)."""
    repo = ws.repo
    files = [e for e in entries if e.kind == FILE and not e.is_external]
    lists = [e.chunklist for e in files if e.chunklist and not repo.has(e.chunklist)]
    missing = [c for e in files if not (e.chunklist and not repo.has(e.chunklist)) for c in chunk_ids_of(repo, e) if not repo.has(c)]
    if not lists and not missing:
        return
    if not list_remotes(ws.root):
        raise ObjectMissing(
            f"the files to merge are not all in the local store ({len(missing) + len(lists)} objects missing)",
            "add a remote that has them, or pull them first",
        )
    from datactl.remote.transfer import Downloader
    from datactl.workspace.sync import open_remote

    with open_remote(ws, remote) as rs:
        rs.sync_index()
        dl = Downloader(rs, repo)
        if lists:
            got = dl.download(lists, keep=lambda e: e.type == ObjectType.CHUNKLIST)
            for oid, raw in got.items():
                missing.extend(c for c in decode_chunklist(oid, raw) if not repo.has(c))
        dl.download(missing)


def _resolve_theirs(ws: Workspace, ref: str | None, remote: str | None) -> tuple[str, str]:
    """(commit id, how to call it) of the version to merge in."""
    from datactl.workspace import sync

    if ref is not None:
        try:
            return ws.resolve(ref), ref
        except UnknownRef:
            if ref not in list_remotes(ws.root):
                raise
            remote = ref
    spec = resolve_remote(ws.root, remote)
    fetched = sync.fetch(ws, spec.name or spec.url)
    cid = fetched.refs.get(ws.head_ref)
    if cid is None:
        raise UnknownRef(f"{spec.label} has no {ws.kind} named {ws.name}", "push it there first")
    return cid, f"{spec.label}'s {ws.name}"


def _check_clean(ws: Workspace) -> None:
    st = ws.status()
    if not st.clean:
        changed = ", ".join(c.path for c in (st.staged + st.unstaged)[:10])
        raise LocalChanges(f"merge needs a clean workspace; changed: {changed}", "commit or drop your changes first")


def merge(
    ws: Workspace,
    ref: str | None = None,
    *,
    message: str | None = None,
    no_ff: bool = False,
    strategy: str | None = None,
    remote: str | None = None,
    progress: ProgressReporter | None = None,
) -> MergeResult:
    """Merge version ``ref`` (default: the remote's head of this dataset, fetched first) into the workspace's head."""
    progress = progress or NullProgress()
    if strategy is not None and strategy not in STRATEGIES:
        raise UsageError(f"strategy must be one of {', '.join(STRATEGIES)}")
    if merge_state(ws) is not None:
        raise UsageError("a merge is already in progress", "resolve it and run `datactl merge --continue`, or `datactl merge --abort`")
    ours = ws.repo.refs.get(ws.head_ref)
    if ours is None:
        raise UsageError(f"{ws.name} has no version yet", "use `datactl pull` or `datactl checkout` to start from another one")
    if ws.head != ours:
        raise UsageError(
            f"the workspace holds {ws.head[:12] if ws.head else 'nothing'}, not the latest version {ours[:12]}",
            f"check out the latest first: `datactl checkout {ws.name}`",
        )
    theirs, label = _resolve_theirs(ws, ref, remote)
    tc = ws.repo.read_commit(theirs)
    if (tc.name, tc.kind) != (ws.name, ws.kind):
        raise UsageError(
            f"{label} is a version of {tc.kind} {tc.name}, not of {ws.kind} {ws.name}",
            "merge joins two lines of one dataset; record another dataset as an input with `datactl commit --input`",
        )
    _check_clean(ws)
    ours_history = commit_closure(ws.repo, [ours])
    if theirs in ours_history:
        return MergeResult(UP_TO_DATE, ours, theirs, theirs, ours)
    ours_tree = ws.repo.read_commit(ours).tree
    if ours in commit_closure(ws.repo, [theirs]) and not no_ff:
        _ensure_local(ws, [e for p, _, e in walk_changes(ws.repo, ours_tree, tc.tree) if e is not None and ws.in_scope(p)], remote)
        co = ws.checkout(theirs, progress=progress)
        ws.repo.refs.update(ws.head_ref, theirs, expected=ours)
        record_local_commit(ws.repo, theirs)
        return MergeResult(FAST_FORWARD, ours, theirs, ours, theirs, updated=co.written + co.deleted)
    base = merge_base(ws.repo, ours, theirs)
    base_tree = ws.repo.read_commit(base).tree if base else None
    merged, conflicts, resolved = merge_trees(ws.repo, base_tree, ours_tree, tc.tree, strategy)
    ws.repo.flush()
    updates = list(walk_changes(ws.repo, ours_tree, merged))
    for path, _old, new in updates:
        if new is not None:
            check_not_workspace_file(path, label)
    conflicts, table_merges = merge_table_conflicts(
        ws, conflicts, lambda p: (_lookup(ws.repo, base_tree, p), _lookup(ws.repo, ours_tree, p), _lookup(ws.repo, tc.tree, p)),
        (f"the merge base {base[:12]}" if base else "the merge base (none)", f"ours ({ours[:12]})", label), lambda es: _ensure_local(ws, es, remote),
    )
    sidecars: list[tuple[str, str, TreeEntry]] = []  # (conflict path, sidecar path, their entry)
    final_conflicts: list[Conflict] = []
    for c in conflicts:
        if c.sidecar is not None:  # a table merged by rows: its conflict table is the sidecar
            final_conflicts.append(c)
            continue
        te = _lookup(ws.repo, tc.tree, c.path)
        side = c.path + SIDECAR_SUFFIX
        if te is not None and ws.in_scope(c.path) and not os.path.lexists(ws.disk.abs_path(side)) and ws.stage.get(side) is None:
            sidecars.append((c.path, side, te))
            final_conflicts.append(replace(c, sidecar=side))
        else:
            final_conflicts.append(c)
    _check_untracked_in_the_way(ws, updates)
    _ensure_local(ws, [e for p, _, e in updates if e is not None and ws.in_scope(p)] + [e for _, _, e in sidecars], remote)
    msg = message or f"Merge {label} into {ws.name}"
    state = {
        "ours": ours, "theirs": theirs, "base": base, "label": label, "message": msg,
        "conflicts": [c.to_dict() for c in final_conflicts],
        "sidecars": {side: te.digest for _, side, te in sidecars if te.kind == FILE},
    }
    with ws.locked():
        ws.stage.set_meta("merge", json.dumps(state))
        ws.stage.set_meta("merge_head", theirs)
        n = _apply(ws, updates, progress)
        for _, side, te in sidecars:
            write_entry(ws.repo, ws.root, side, replace(te, name=side.rsplit("/", 1)[-1]), progress)
    tables = write_table_merges(ws, table_merges)
    if tables:
        ws.stage.set_meta("merge", json.dumps({**state, "tables": tables}))
    result = MergeResult(CONFLICTS if final_conflicts else MERGED, ours, theirs, base, None, final_conflicts, n, resolved)
    if not final_conflicts:
        result.commit = ws.commit(msg, allow_empty=True)
    return result


def _check_untracked_in_the_way(ws: Workspace, updates: list[tuple[str, TreeEntry | None, TreeEntry | None]]) -> None:
    in_the_way = []
    for path, old, new in updates:
        if new is None or old is not None or not ws.in_scope(path):
            continue
        if os.path.lexists(ws.disk.abs_path(path)) and ws.stage.get(path) is None:
            in_the_way.append(path)
    if in_the_way:
        raise LocalChanges(
            f"merge would overwrite untracked files: {', '.join(in_the_way[:10])}", "move them away, then merge again"
        )


def _apply(ws: Workspace, updates: list[tuple[str, TreeEntry | None, TreeEntry | None]], progress: ProgressReporter) -> int:
    """Make disk and stage hold the merged entries (deletions first, so a file can become a folder)."""
    rows: list[StageRow] = []
    drop: list[str] = []
    for path, _old, new in updates:
        if new is not None:
            continue
        row = ws.stage.get(path)
        abs_path = ws.disk.abs_path(path)
        if ws.in_scope(path) and (os.path.islink(abs_path) or os.path.isfile(abs_path)):
            os.unlink(abs_path)
            prune_empty_dirs(ws.root, path)
        if row is not None and row.head is not None:
            rows.append(StageRow(path, None, None, row.head))
        else:
            drop.append(path)
    ws.stage.write(rows, drop)
    rows = []
    for path, _old, new in updates:
        if new is None:
            continue
        row = ws.stage.get(path)
        head = row.head if row is not None else None
        st = write_entry(ws.repo, ws.root, path, new, progress) if ws.in_scope(path) else None
        rows.append(StageRow(path, new, st, head))
        if len(rows) >= 1000:
            ws.stage.write(judged_now(rows))
            rows = []
    ws.stage.write(judged_now(rows))
    return len(updates)


def _drop_sidecars(ws: Workspace, state: dict[str, Any]) -> None:
    """Delete the PATH.theirs files merge wrote, unless the user changed them."""
    for side, digest in state.get("sidecars", {}).items():
        path = ws.disk.abs_path(side)
        try:
            if os.path.isfile(path) and not os.path.islink(path) and hash_file(path) == digest:
                os.unlink(path)
        except OSError:
            pass


def merge_continue(ws: Workspace, message: str | None = None) -> MergeResult:
    """Commit the merge waiting in ``ws`` (its conflicts resolved and added) with both parents."""
    state = merge_state(ws)
    if state is None:
        raise UsageError("no merge in progress")
    current = ws.repo.refs.get(ws.head_ref)
    if current != state["ours"]:
        raise UsageError(
            f"{ws.name} moved to {current[:12] if current else 'nothing'} since the merge started",
            "abort the merge with `datactl merge --abort` and merge again",
        )
    apply_table_resolutions(ws, state.get("tables", {}))
    st = ws.status()
    if st.unstaged:
        changed = ", ".join(c.path for c in st.unstaged[:10])
        raise LocalChanges(f"changes not added: {changed}", "`datactl add` your resolution first, then `datactl merge --continue`")
    cid = ws.commit(message or state["message"], allow_empty=True)
    _drop_sidecars(ws, state)
    conflicts = [Conflict(c["path"], c["reason"], c.get("sidecar")) for c in state["conflicts"]]
    return MergeResult(MERGED, state["ours"], state["theirs"], state["base"], cid, conflicts)


def merge_abort(ws: Workspace, progress: ProgressReporter | None = None) -> MergeResult:
    """Give up the merge waiting in ``ws``: the workspace holds our version again."""
    state = merge_state(ws)
    if state is None:
        raise UsageError("no merge in progress")
    ws.checkout(state["ours"], force=True, progress=progress)
    _drop_sidecars(ws, state)
    drop_conflict_tables(ws, state.get("tables", {}))
    ws.stage.set_meta("merge", None)
    ws.stage.set_meta("merge_head", None)
    return MergeResult("aborted", state["ours"], state["theirs"], state["base"])


__all__ = [
    "Conflict",
    "MergeResult",
    "merge",
    "merge_abort",
    "merge_base",
    "merge_continue",
    "merge_state",
    "merge_trees",
]
