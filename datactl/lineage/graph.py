"""The answer to a lineage question, and how it is drawn: as a tree, JSON, Mermaid or Graphviz."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Container, NamedTuple

from datactl.core.errors import UsageError
from datactl.store.history import HISTORY_CUT

UP, DOWN, BOTH = "up", "down", "both"
DIRECTIONS = (UP, DOWN, BOTH)
FORMATS = ("tree", "json", "mermaid", "dot")


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
    # Versions a shallow workspace does not hold because its history is cut there (not damage: not unresolved).
    cut: list[str] = field(default_factory=list)

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
            **({"history_cut": list(self.cut)} if self.cut else {}),
        }

    def render(self, fmt: str = "tree") -> str:
        """The graph as text: ``tree`` (for people), ``json``, ``mermaid`` or ``dot``."""
        if fmt == "tree":
            return render_tree(self)
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if fmt == "mermaid":
            return render_mermaid(self)
        if fmt == "dot":
            return render_dot(self)
        raise UsageError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")


# -- drawing ------------------------------------------------------------------------------------------


def _details(n: LineageNode, cut: Container[str] = ()) -> str:
    if n.id in cut:
        return f"{n.label}  {HISTORY_CUT}"
    if n.name is None:
        return f"{n.label}  (not in the stores searched)"
    parts = [n.label, n.kind, n.id[:12]]
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
    for direction, title in ((UP, "derives from"), (DOWN, "derived from it")):
        if g.direction not in (direction, BOTH):
            continue
        adjacency: dict[str, list[tuple[str, str]]] = {}
        for e in g.edges:
            if e.direction == direction:
                near, far = (e.target, e.source) if direction == UP else (e.source, e.target)
                adjacency.setdefault(near, []).append((far, e.type))
        sections.append((title, adjacency))
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


def _tree_lines(g: LineageGraph, adj: dict[str, list[tuple[str, str]]], root: str, prefix: str, shown: set[str], lines: list[str]) -> None:
    """Draw the tree below ``root`` depth first, without recursion (histories can be thousands of versions deep)."""
    stack: list[tuple[list[tuple[str, str]], int, str]] = [(adj.get(root, []), 0, prefix)]
    while stack:
        kids, i, pre = stack.pop()
        if i >= len(kids):
            continue
        stack.append((kids, i + 1, pre))
        child, kind = kids[i]
        last = i == len(kids) - 1
        branch = "└── " if last else "├── "
        n = g.nodes[child]
        if child in shown:
            lines.append(f"{pre}{branch}[{kind}] {n.label}  {n.id[:12]}  (shown above)")
            continue
        shown.add(child)
        lines.append(f"{pre}{branch}[{kind}] {_details(n, g.cut)}")
        grandkids = adj.get(child, [])
        # A line of history (a sole parent whose own upstream is one parent) is drawn at one depth, like
        # `git log`: indenting every step would make a long history's drawing grow with the square of its length.
        flat = len(kids) == 1 and kind == "parent" and len(grandkids) == 1 and grandkids[0][1] == "parent"
        stack.append((grandkids, 0, pre if flat else pre + ("    " if last else "│   ")))


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
