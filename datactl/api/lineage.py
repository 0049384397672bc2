"""Lineage questions from training code or CI: ``lineage(ref, "up" | "down" | "both")``.

    from datactl.api.lineage import lineage
    g = lineage("model@v2", "up", remotes=["origin"])      # every dataset and model version it came from
    g = lineage("raw@v3", "down", remotes=["origin"])      # every version built on it, in any dataset or model
    print(g.render("mermaid"))

Edges go from a version to the versions derived from it: ``parent`` for the
next version of the same dataset or model, ``input`` for a version of
another one that was made from it (``datactl commit --input``,
``Dataset.create(inputs=...)``, ``log_model(inputs=...)``). Both directions
are answered from the stores' lineage indexes (``datactl.lineage``), so a
query reads a handful of objects however many commits the stores hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from datactl.core.closing import Closing
from datactl.core.errors import BelowShallowCut, DatactlError, NotAWorkspace, UnknownRef
from datactl.lineage.graph import UP, LineageGraph
from datactl.lineage.stores import LineageStore, query_stores, resolve_in_stores
from datactl.remote.locate import REMOTE_ENV, RemoteSpec, default_remote, index_cache_dir, list_remotes, resolve_remote, workspace_root
from datactl.remote.remotestore import RemoteStore
from datactl.store.revparse import RefContext
from datactl.workspace.shallow import cut_parents
from datactl.workspace.workspace import Workspace
from storage_backends import BackendError


@dataclass
class LineageSources(Closing):
    """The stores a lineage question goes to, the workspace it runs in (if any), and what could not be read."""

    workspace: Workspace | None
    stores: list[LineageStore]
    warnings: list[str] = field(default_factory=list)

    def close(self) -> None:
        for s in self.stores:
            s.close()
        if self.workspace is not None:
            self.workspace.close()


def open_sources(remotes: Sequence[str] = (), *, options: dict[str, Any] | None = None, local: bool = False, with_default: bool = True) -> LineageSources:
    """The stores to search: the workspace's own plus the named ``remotes`` (URLs, paths or remote names).

    Inside a workspace with no remote named (and not ``local``), its default
    remote is searched too; if that one cannot be read, the answer comes from
    the workspace's store with a warning. Outside a workspace the named
    stores, else ``DATACTL_REMOTE``, are searched.
    """
    root = workspace_root()
    specs = [resolve_remote(root, r, options) for r in remotes]
    implicit = False
    if root is not None and not specs and not local and with_default:
        ws = Workspace(root)
        try:
            specs, implicit = default_remotes(ws), True
        except BaseException:
            ws.close()
            raise
    else:
        ws = Workspace(root) if root is not None else None
    if ws is None and not specs:
        spec = default_remote(None)  # DATACTL_REMOTE
        if spec is None:
            raise NotAWorkspace("not in a datactl workspace, and no store given", f"name one with --remote URL (or set {REMOTE_ENV})")
        specs = [spec.with_options(options)]
    try:
        sources = LineageSources(ws, open_stores(ws, [] if implicit else specs, include_workspace=ws is not None))
    except BaseException:
        if ws is not None:
            ws.close()
        raise
    for spec in specs if implicit else []:
        assert ws is not None
        try:  # reach it now, so a default remote that cannot be read only costs a warning
            sources.stores.append(remote_lineage_store(spec, index_cache_dir(ws.root)))
            sources.stores[-1].view()
        except (BackendError, DatactlError) as exc:
            why = exc.message if isinstance(exc, DatactlError) else str(exc)
            sources.warnings.append(f"{spec.label} cannot be read ({why}); showing this workspace's store only")
            if len(sources.stores) > 1:
                sources.stores.pop().close()
    return sources


def remote_lineage_store(spec: RemoteSpec, cache_dir: str) -> LineageStore:
    """The lineage index of the store ``spec`` names (closing it closes the store's handle)."""
    rs = RemoteStore(spec, cache_dir)
    try:
        rs.config()  # no store there is an error, not an empty lineage
    except BaseException:
        rs.close()
        raise
    return LineageStore(rs.lineage_index(), spec.label, rs.close)


def open_stores(
    workspace: Workspace | None = None, remotes: Iterable[str | RemoteSpec] = (), *, include_workspace: bool = True
) -> list[LineageStore]:
    """The workspace's own store (if any) and each remote (a name from datactl.toml, a URL or a path)."""
    stores: list[LineageStore] = []
    try:
        if workspace is not None and include_workspace:
            stores.append(LineageStore.for_repository(workspace.repo, f"workspace {workspace.name}"))
        root = workspace.root if workspace is not None else None
        for r in remotes:
            spec = r if isinstance(r, RemoteSpec) else resolve_remote(root, r)
            stores.append(remote_lineage_store(spec, index_cache_dir(root)))
    except BaseException:
        for s in stores:
            s.close()
        raise
    return stores


def default_remotes(workspace: Workspace) -> list[RemoteSpec]:
    """The remote a workspace's lineage questions also go to by default: its default remote, if it has one."""
    if not list_remotes(workspace.root):
        return []
    spec = default_remote(workspace.root)
    return [spec] if spec is not None else []


def resolve_ref_anywhere(ref: str, stores: Sequence[LineageStore], workspace: Workspace | None) -> str:
    """``ref`` in the stores' indexes and refs, else as the workspace understands it."""
    ctx = workspace.ref_context() if workspace is not None else RefContext()
    try:
        return resolve_in_stores(stores, ref, ctx)
    except UnknownRef as first:
        if workspace is None:
            raise
        try:
            return workspace.resolve(ref)
        except BelowShallowCut:
            raise  # the stores searched end at the same cut: say so, not that a version has no parent
        except UnknownRef:
            raise first from None


def _mark_cut(graph: LineageGraph, workspace: Workspace) -> LineageGraph:
    """Versions below a shallow workspace's cut that no store searched holds: where its history ends, not damage."""
    below = cut_parents(workspace.stage, workspace.repo)
    graph.cut = sorted(c for c in below if c in graph.nodes and graph.nodes[c].name is None)
    graph.unresolved = [u for u in graph.unresolved if u not in below]
    return graph


def lineage(
    ref: str,
    direction: str = UP,
    depth: int | None = None,
    *,
    workspace: Workspace | None = None,
    remotes: Iterable[str | RemoteSpec] = (),
    stores: Sequence[LineageStore] | None = None,
) -> LineageGraph:
    """Everything ``ref`` derives from (``up``), derives from it (``down``), or both, ``depth`` edges deep.

    ``ref`` is a commit id, NAME, NAME@TAG or NAME@ID (or, with a
    ``workspace``, any REF it understands such as HEAD~2). Give the stores to
    search as ``stores``, or a ``workspace`` (its own store) and/or
    ``remotes``; with neither, the current folder's workspace, or
    ``DATACTL_REMOTE``.
    """
    if stores is not None:
        graph = query_stores(stores, resolve_ref_anywhere(ref, stores, workspace), direction, depth)
        return _mark_cut(graph, workspace) if workspace is not None else graph
    if workspace is None and not remotes:
        with open_sources() as sources:
            return lineage(ref, direction, depth, workspace=sources.workspace, stores=sources.stores)
    opened = open_stores(workspace, remotes)
    try:
        return lineage(ref, direction, depth, workspace=workspace, stores=opened)
    finally:
        for s in opened:
            s.close()
