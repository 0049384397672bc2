"""Lineage queries: what a version derives from, what derives from it, and drawing the graph.

    from datactl.lineage.query import lineage
    g = lineage("model@v2", "up", remotes=["origin"])      # every dataset and model version it came from
    g = lineage("raw@v3", "down", remotes=["origin"])      # every version built on it, in any dataset or model
    print(g.render("mermaid"))

Edges go from a version to the versions derived from it: ``parent`` for the
next version of the same dataset or model, ``input`` for a version of
another one that was made from it (``datactl commit --input``,
``Dataset.create(inputs=...)``, ``log_model(inputs=...)``).

Both directions are answered from the stores' lineage indexes
(``datactl.lineage.index``), so a query reads a handful of objects however
many commits the store has. Several stores can be queried together (a model
kept in one bucket and trained on data kept in another); their indexes are
merged.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Sequence

from datactl.core.errors import AmbiguousRef, DatactlError, UnknownRef, UsageError
from datactl.core.ids import is_hex, is_object_id
from datactl.lineage.index import IndexStats, LineageIndex, LineageView, RemoteSource, RepositorySource, segment_cache_dir
from datactl.store.refs import HEAD_PREFIX, RefStore
from datactl.remote.remotestore import RemoteSpec, RemoteStore, list_remotes, resolve_remote
from datactl.store.revparse import MIN_PREFIX, RefContext
from storage_backends import BackendError

if TYPE_CHECKING:
    from datactl.store.repository import Repository
    from datactl.workspace.workspace import Workspace

UP, DOWN, BOTH = "up", "down", "both"
DIRECTIONS = (UP, DOWN, BOTH)
FORMATS = ("tree", "json", "mermaid", "dot")
_SUFFIX = re.compile(r"^(.*?)((?:~\d*|\^)*)$")
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


# -- stores ------------------------------------------------------------------------------------


class LineageStore:
    """One store whose lineage index is queried: a workspace's own store, or a remote."""

    def __init__(self, index: LineageIndex, label: str, closer: Any = None) -> None:
        self.index = index
        self.label = label
        self._closer = closer
        self._view: LineageView | None = None

    @classmethod
    def for_repository(cls, repo: "Repository", label: str = "local") -> "LineageStore":
        return cls(LineageIndex(repo.backend, RepositorySource(repo)), label)

    @classmethod
    def for_remote(cls, rs: RemoteStore, cache_dir: str | None = None, own: bool = False) -> "LineageStore":
        """``rs``'s index; segments are kept in ``cache_dir`` (default: next to ``rs``'s index cache). ``own``: close ``rs`` with this."""
        cache_dir = cache_dir or segment_cache_dir(rs)
        return cls(LineageIndex(rs.backend, RemoteSource(rs), cache_dir), rs.spec.label, rs if own else None)

    @classmethod
    def open(cls, spec: RemoteSpec, cache_dir: str) -> "LineageStore":
        """A store by URL or remote spec; ``cache_dir`` holds the local caches of its object index and segments."""
        return cls.for_remote(RemoteStore(spec, cache_dir), own=True)

    @property
    def refs(self) -> RefStore:
        return self.index.refs

    @property
    def stats(self) -> IndexStats:
        return self.index.stats

    def view(self) -> LineageView:
        """The index (plus what refs moved since its last update name), loaded once."""
        if self._view is None:
            self._view = self.index.load(check_refs=True)
        return self._view

    def close(self) -> None:
        if self._closer is not None:
            self._closer.close()
            self._closer = None

    def __enter__(self) -> "LineageStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merged_view(stores: Sequence[LineageStore]) -> LineageView:
    if len(stores) == 1:
        return stores[0].view()
    view = LineageView()
    for s in stores:
        view.update(s.view())
    return view


# -- the graph ---------------------------------------------------------------------------------


class LineageNode(NamedTuple):
    """A version in a lineage answer. ``kind`` is "unknown" for a version none of the stores indexes."""

    id: str
    kind: str
    name: str | None
    time: str | None
    tags: tuple[str, ...]
    author: str
    message: str
    direction: str  # "root", "up" or "down"
    distance: int  # edges from the root
    external: bool = False  # known only as another version's input; its own history is in another store

    @property
    def label(self) -> str:
        if self.name is None:
            return f"unknown {self.id[:12]}"
        return f"{self.name}@{self.tags[0]}" if self.tags else f"{self.name}@{self.id[:8]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "name": self.name, "tags": list(self.tags), "time": self.time,
            "author": self.author, "message": self.message, "direction": self.direction, "distance": self.distance,
            "external": self.external, "label": self.label,
        }


class LineageEdge(NamedTuple):
    """``source`` is a parent or input of ``target`` (data flows from source to target)."""

    source: str
    target: str
    type: str  # "parent" or "input"
    direction: str = UP  # the walk that found it: "up" (target is the root or upstream) or "down"

    def to_dict(self) -> dict[str, str]:
        return {"from": self.source, "to": self.target, "type": self.type}


@dataclass
class LineageGraph:
    root: str
    direction: str
    depth: int | None
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)

    def ids(self, direction: str) -> set[str]:
        """Ids found in ``direction`` ("up" or "down"), without the root."""
        return {n.id for n in self.nodes.values() if n.direction == direction}

    @property
    def upstream(self) -> list[LineageNode]:
        return sorted((n for n in self.nodes.values() if n.direction == UP), key=lambda n: (n.distance, n.name or "", n.time or ""))

    @property
    def downstream(self) -> list[LineageNode]:
        return sorted((n for n in self.nodes.values() if n.direction == DOWN), key=lambda n: (n.distance, n.name or "", n.time or ""))

    def to_dict(self) -> dict[str, Any]:
        order = {"root": 0, UP: 1, DOWN: 2}
        nodes = sorted(self.nodes.values(), key=lambda n: (order[n.direction], n.distance, n.name or "", n.time or "", n.id))
        return {
            "root": self.root,
            "direction": self.direction,
            "depth": self.depth,
            "nodes": [n.to_dict() for n in nodes],
            "edges": [e.to_dict() for e in sorted(self.edges, key=lambda e: (e.source, e.target, e.type))],
            "stats": dict(self.stats),
            "unresolved": list(self.unresolved),
        }

    def render(self, fmt: str = "tree") -> str:
        if fmt == "tree":
            return render_tree(self)
        if fmt == "json":
            import json

            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if fmt == "mermaid":
            return render_mermaid(self)
        if fmt == "dot":
            return render_dot(self)
        raise UsageError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")


def _walk(view: LineageView, root: str, direction: str, depth: int | None) -> tuple[dict[str, int], list[LineageEdge]]:
    """Breadth-first from ``root``: {id: distance} and the edges crossed (each once)."""
    dist = {root: 0}
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    queue = deque([root])
    children = view.children() if direction == DOWN else None
    while queue:
        cid = queue.popleft()
        d = dist[cid]
        if depth is not None and d >= depth:
            continue
        if direction == UP:
            node = view.nodes.get(cid)
            if node is None:
                continue
            steps = [(p, "parent") for p in node.parents] + [(i, "input") for i in node.inputs]
            for other, kind in steps:
                edges[(other, cid, kind)] = LineageEdge(other, cid, kind, UP)
                if other not in dist:
                    dist[other] = d + 1
                    queue.append(other)
        else:
            for other, kind in children.get(cid, ()):  # type: ignore[union-attr]
                edges[(cid, other, kind)] = LineageEdge(cid, other, kind, DOWN)
                if other not in dist:
                    dist[other] = d + 1
                    queue.append(other)
    return dist, list(edges.values())


def query(view: LineageView, root: str, direction: str = UP, depth: int | None = None) -> LineageGraph:
    """The lineage of ``root`` in ``view``: up (what it derives from), down (what derives from it), or both."""
    if direction not in DIRECTIONS:
        raise UsageError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if depth is not None and depth < 0:
        raise UsageError("depth must be 0 or more")
    graph = LineageGraph(root, direction, depth)
    graph.nodes[root] = _node(view, root, "root", 0)
    for d in ((UP, DOWN) if direction == BOTH else (direction,)):
        dist, edges = _walk(view, root, d, depth)
        for cid, n in dist.items():
            if cid != root and cid not in graph.nodes:
                graph.nodes[cid] = _node(view, cid, d, n)
        graph.edges.extend(edges)
    graph.unresolved = sorted(view.unresolved)
    return graph


def _node(view: LineageView, cid: str, direction: str, distance: int) -> LineageNode:
    n = view.nodes.get(cid)
    if n is None:
        return LineageNode(cid, "unknown", None, None, (), "", "", direction, distance)
    return LineageNode(cid, n.kind, n.name, n.time, tuple(view.tags_of(cid)), n.author, n.message, direction, distance, n.external)


# -- resolving what the user typed ---------------------------------------------------------------


def resolve_in_stores(stores: Sequence[LineageStore], text: str, ctx: RefContext | None = None) -> str:
    """The commit id ``text`` names in ``stores``: NAME, NAME@TAG, NAME@ID, a tag of ``ctx.name``, an id prefix, ~N."""
    ctx = ctx or RefContext()
    m = _SUFFIX.match(text.strip())
    assert m is not None
    base, suffix = m.group(1), m.group(2)
    cid = _resolve_base(stores, base, ctx)
    for step in re.findall(r"~\d*|\^", suffix):
        n = 1 if step in ("~", "^") else int(step[1:])
        for _ in range(n):
            node = merged_view(stores).nodes.get(cid)
            if node is None or not node.parents:
                raise UnknownRef(f"{text}: {cid[:12]} has no parent in the lineage index")
            cid = node.parents[0]
    return cid


def _resolve_base(stores: Sequence[LineageStore], base: str, ctx: RefContext) -> str:
    if not base:
        raise UnknownRef("empty ref")
    if base == "HEAD":
        if ctx.head is None:
            raise UnknownRef("HEAD names no version here", "give NAME@VERSION or a commit id")
        return ctx.head
    if is_object_id(base):
        return base  # a whole id names itself (even one no index knows: its lineage is then empty)
    if "@" in base:
        name, version = base.split("@", 1)
        if not _PLAIN.match(name):
            raise UnknownRef(f"unknown ref {base!r}")
        if version in ("", "HEAD"):
            head = _head(stores, name, ctx.kind)
            if head is None:
                raise UnknownRef(f"no dataset or model named {name!r} in {_labels(stores)}")
            return head
        found = _version_of(stores, name, version)
        if found is None:
            raise UnknownRef(f"{name} has no version {version!r} in {_labels(stores)}", "use a tag or a commit id (6+ hex digits)")
        return found
    if _PLAIN.match(base):
        if ctx.name is not None:
            found = _tag(stores, ctx.name, base)
            if found is not None:
                return found
        head = _head(stores, base, ctx.kind)
        if head is not None:
            return head
    if is_hex(base) and len(base) >= MIN_PREFIX:
        found = _by_prefix(stores, base, None)
        if found is not None:
            return found
    hint = "give NAME, NAME@TAG, NAME@ID or a commit id (6+ hex digits)"
    raise UnknownRef(f"unknown ref {base!r} in {_labels(stores)}", hint)


def _labels(stores: Sequence[LineageStore]) -> str:
    return ", ".join(s.label for s in stores) or "no store"


def _head(stores: Sequence[LineageStore], name: str, kind: str) -> str | None:
    kinds = (kind, *(k for k in HEAD_PREFIX if k != kind))
    for s in stores:
        for k in kinds:
            cid = s.refs.get(f"{HEAD_PREFIX[k]}/{name}")
            if cid is not None:
                return cid
    return None


def _tag(stores: Sequence[LineageStore], name: str, tag: str) -> str | None:
    for s in stores:
        cid = s.refs.get(f"tags/{name}/{tag}")
        if cid is not None:
            return cid
    hits = merged_view(stores).tagged(name, tag)
    return hits[-1] if len(hits) == 1 else None


def _version_of(stores: Sequence[LineageStore], name: str, version: str) -> str | None:
    if _PLAIN.match(version):
        found = _tag(stores, name, version)
        if found is not None:
            return found
    if is_hex(version) and len(version) >= MIN_PREFIX:
        return _by_prefix(stores, version, name)
    return None


def _by_prefix(stores: Sequence[LineageStore], prefix: str, name: str | None) -> str | None:
    view = merged_view(stores)
    if is_object_id(prefix) and (prefix in view.nodes or name is None):
        return prefix
    matches = sorted(
        cid for cid, n in view.nodes.items() if cid.startswith(prefix) and not n.external and (name is None or n.name == name)
    )
    if len(matches) > 1:
        raise AmbiguousRef(f"{prefix} is ambiguous: it is a prefix of {', '.join(m[:12] for m in matches[:10])}", "give more hex digits")
    return matches[0] if matches else None


# -- one call for the library and the CLI ---------------------------------------------------------


def open_stores(
    workspace: "Workspace | None" = None, remotes: Iterable[str | RemoteSpec] = (), *, include_workspace: bool = True
) -> list[LineageStore]:
    """The workspace's own store (if any) and each remote (a name from datactl.toml, a URL or a path)."""
    from datactl.remote.cache import default_cache_dir

    stores: list[LineageStore] = []
    try:
        if workspace is not None and include_workspace:
            stores.append(LineageStore.for_repository(workspace.repo, f"workspace {workspace.name}"))
        cache_dir = os.path.join(workspace.dotdir, "remotes") if workspace is not None else os.path.join(default_cache_dir(), "remotes")
        for r in remotes:
            spec = r if isinstance(r, RemoteSpec) else resolve_remote(workspace.root if workspace else None, r)
            stores.append(LineageStore.open(spec, cache_dir))
    except BaseException:
        for s in stores:
            s.close()
        raise
    return stores


def lineage(
    ref: str,
    direction: str = UP,
    depth: int | None = None,
    *,
    workspace: "Workspace | None" = None,
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
    own = stores is None
    if stores is None:
        if workspace is None and not remotes:
            workspace, remotes = _default_sources()
        stores = open_stores(workspace, remotes)
    try:
        ctx = workspace.ref_context() if workspace is not None else RefContext()
        root = resolve_ref_anywhere(ref, stores, workspace, ctx)
        view = merged_view(stores)
        graph = query(view, root, direction, depth)
        total = IndexStats()
        for s in stores:
            for k, v in s.stats.to_dict().items():
                setattr(total, k, getattr(total, k) + v)
        graph.stats = total.to_dict()
        return graph
    finally:
        if own:
            for s in stores:
                s.close()


def default_remotes(workspace: "Workspace") -> list[RemoteSpec]:
    """The remote a workspace's lineage questions also go to by default: its default remote, if it has one."""
    if not list_remotes(workspace.root):
        return []
    try:
        return [resolve_remote(workspace.root, None)]
    except UsageError:
        return []


def _default_sources() -> tuple["Workspace | None", list]:
    from datactl.core.errors import NotAWorkspace
    from datactl.workspace.workspace import Workspace

    try:
        ws = Workspace.open()
        return ws, default_remotes(ws)
    except NotAWorkspace:
        env = os.environ.get("DATACTL_REMOTE")
        if env:
            return None, [env]
        raise UsageError("not in a workspace and no store given", "pass --remote URL (or set DATACTL_REMOTE)") from None


def resolve_ref_anywhere(ref: str, stores: Sequence[LineageStore], workspace: "Workspace | None", ctx: RefContext) -> str:
    """``ref`` in the stores' indexes and refs, else as the workspace understands it."""
    try:
        return resolve_in_stores(stores, ref, ctx)
    except UnknownRef as first:
        if workspace is None:
            raise
        try:
            return workspace.resolve(ref)
        except UnknownRef:
            raise first from None


def resolve_input(ws: "Workspace", text: str) -> str:
    """The commit an ``--input REF`` names: in the workspace's store, else in one of its remotes.

    A version found on a remote (another dataset's ``NAME@VERSION``) has its
    commit copied into the local store, so the new version's lineage can be
    shown without the network.
    """
    try:
        return ws.resolve(text)
    except UnknownRef as exc:
        first = exc
    remotes = list_remotes(ws.root)
    if not remotes:
        raise first
    try:
        default = resolve_remote(ws.root, None)
        order = [default, *(r for r in remotes.values() if r.name != default.name)]
    except UsageError:
        order = list(remotes.values())
    for spec in order:
        try:
            with RemoteStore(spec, os.path.join(ws.dotdir, "remotes")) as rs:
                store = LineageStore.for_remote(rs)
                try:
                    cid = resolve_in_stores([store], text, RefContext(None, ws.kind, None))
                except UnknownRef:
                    continue
                _copy_commit(ws, rs, cid)
                return cid
        except (BackendError, DatactlError) as exc:
            if isinstance(exc, (UnknownRef, AmbiguousRef)):
                raise
            continue  # an unreachable remote does not hide the others
    raise UnknownRef(first.message, f"{first.hint or ''} (looked in this workspace and in remotes {', '.join(remotes)})".strip())


def _copy_commit(ws: "Workspace", rs: RemoteStore, cid: str) -> None:
    from datactl.remote.transfer import Downloader

    if ws.repo.has(cid):
        return
    rs.sync_index()
    Downloader(rs, ws.repo).download([cid])


# -- drawing ------------------------------------------------------------------------------------------


def _details(n: LineageNode) -> str:
    if n.name is None:
        return f"{n.label}  (not in the stores searched)"
    parts = [n.label, n.kind]
    if True:
        parts.append(n.id[:12])
        if n.time:
            parts.append(n.time[:16].replace("T", " "))
        if len(n.tags) > 1:
            parts.append("tags: " + ", ".join(n.tags))
        if n.external:
            parts.append("(in another store)")
        if n.message:
            parts.append(repr(n.message) if len(n.message) < 60 else repr(n.message[:57] + "..."))
    return "  ".join(parts)


def render_tree(g: LineageGraph) -> str:
    lines = [_details(g.nodes[g.root])]
    sections = []
    if g.direction in (UP, BOTH):
        up: dict[str, list[tuple[str, str]]] = {}
        for e in g.edges:
            if e.direction == UP:
                up.setdefault(e.target, []).append((e.source, e.type))
        sections.append(("derives from", up))
    if g.direction in (DOWN, BOTH):
        down: dict[str, list[tuple[str, str]]] = {}
        for e in g.edges:
            if e.direction == DOWN:
                down.setdefault(e.source, []).append((e.target, e.type))
        sections.append(("derived from it", down))
    for title, adjacency in sections:
        for lst in adjacency.values():
            lst.sort(key=lambda t: (t[1] != "parent", g.nodes[t[0]].name or "", g.nodes[t[0]].time or "", t[0]))
        if g.direction == BOTH:
            lines.append(f"{title}:")
        if not adjacency.get(g.root):
            lines.append("  (nothing)" if g.direction == BOTH else "(nothing)")
            continue
        shown: set[str] = {g.root}
        _tree_lines(g, adjacency, g.root, "  " if g.direction == BOTH else "", shown, lines)
    for u in g.unresolved:
        lines.append(f"warning: a ref names {u[:12]}, which could not be read")
    return "\n".join(lines) + "\n"


def _tree_lines(g: LineageGraph, adj: dict[str, list[tuple[str, str]]], cid: str, prefix: str, shown: set[str], lines: list[str]) -> None:
    kids = adj.get(cid, [])
    for i, (child, kind) in enumerate(kids):
        last = i == len(kids) - 1
        branch = "└── " if last else "├── "
        n = g.nodes[child]
        if child in shown:
            lines.append(f"{prefix}{branch}[{kind}] {n.label}  {n.id[:12]}  (shown above)")
            continue
        shown.add(child)
        lines.append(f"{prefix}{branch}[{kind}] {_details(n)}")
        _tree_lines(g, adj, child, prefix + ("    " if last else "│   "), shown, lines)


def _mermaid_id(cid: str) -> str:
    return f"v{cid[:12]}"


def render_mermaid(g: LineageGraph) -> str:
    """A Mermaid flowchart: datasets as cylinders, models as hexagons, edges labelled parent/input."""
    lines = ["flowchart LR"]
    for n in sorted(g.nodes.values(), key=lambda n: (n.name or "~", n.time or "", n.id)):
        text = n.label if n.name is None else f"{n.label}<br/>{n.id[:8]} · {(n.time or '')[:10]}"
        text = text.replace('"', "#quot;")
        if n.kind == "model":
            shape = f'{{{{"{text}"}}}}'
        elif n.kind == "dataset":
            shape = f'[("{text}")]'
        else:
            shape = f'["{text}"]'
        cls = n.kind if n.kind in ("dataset", "model") else "unknown"
        lines.append(f"    {_mermaid_id(n.id)}{shape}:::{cls}")
    for e in sorted(g.edges, key=lambda e: (e.type, e.source, e.target)):
        arrow = "==>" if e.type == "input" else "-->"
        lines.append(f"    {_mermaid_id(e.source)} {arrow}|{e.type}| {_mermaid_id(e.target)}")
    lines += [
        "    classDef dataset fill:#e3f0fb,stroke:#2f6fb0",
        "    classDef model fill:#fdebd3,stroke:#c77c12",
        "    classDef unknown fill:#eeeeee,stroke:#888888,stroke-dasharray:4 3",
        f"    style {_mermaid_id(g.root)} stroke-width:3px",
    ]
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(g: LineageGraph) -> str:
    """A Graphviz digraph: datasets as cylinders, models as hexagons, edges labelled parent/input."""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for n in sorted(g.nodes.values(), key=lambda n: (n.name or "~", n.time or "", n.id)):
        label = n.label if n.name is None else f"{n.label}\\n{n.id[:12]}\\n{(n.time or '')[:10]}"
        shape = {"dataset": "cylinder", "model": "hexagon"}.get(n.kind, "box")
        attrs = [f'label="{label}"', f"shape={shape}"]
        if n.kind == "dataset":
            attrs.append('style=filled, fillcolor="#e3f0fb"')
        elif n.kind == "model":
            attrs.append('style=filled, fillcolor="#fdebd3"')
        else:
            attrs.append("style=dashed")
        if n.id == g.root:
            attrs.append("penwidth=3")
        lines.append(f"  {_dot_quote(n.id[:12])} [{', '.join(attrs)}];")
    for e in sorted(g.edges, key=lambda e: (e.type, e.source, e.target)):
        style = ", style=bold" if e.type == "input" else ""
        lines.append(f"  {_dot_quote(e.source[:12])} -> {_dot_quote(e.target[:12])} [label={_dot_quote(e.type)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
