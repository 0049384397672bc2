"""Lineage queries over an index: what a version derives from (up), what derives from it (down)."""

from __future__ import annotations

from collections import deque

from datactl.core.errors import UsageError
from datactl.lineage.graph import BOTH, DIRECTIONS, DOWN, UP, LineageEdge, LineageGraph, LineageNode
from datactl.lineage.view import LineageView


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


