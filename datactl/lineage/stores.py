"""The stores a lineage question is asked of, and resolving refs across them.

A ``LineageStore`` is one store's lineage index (a workspace's own store, a
remote); several are queried together by merging their views (a model kept
in one bucket, trained on data kept in another). Refs are resolved with the
one grammar of ``datactl.store.revparse``, answered from the stores' refs and
indexes.
"""

from __future__ import annotations

from typing import Callable, Sequence

from datactl.core.closing import Closing
from datactl.core.ids import is_object_id
from datactl.format.layout import head_ref, tag_ref
from datactl.lineage.commits import StoreCommits
from datactl.lineage.graph import LineageGraph
from datactl.lineage.index import IndexStats, LineageIndex
from datactl.lineage.query import query
from datactl.lineage.view import LineageView
from datactl.store.refs import RefStore
from datactl.store.repository import Repository
from datactl.store.revparse import RefContext, resolve_ref


class LineageStore(Closing):
    """One store whose lineage index is queried; ``on_close`` releases what it reads through."""

    def __init__(self, index: LineageIndex, label: str, on_close: Callable[[], None] | None = None) -> None:
        self.index = index
        self.label = label
        self._on_close = on_close
        self._view: LineageView | None = None

    @classmethod
    def for_repository(cls, repo: Repository, label: str = "local") -> "LineageStore":
        return cls(LineageIndex(repo.backend, StoreCommits(repo.objects)), label)

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
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


def merged_view(stores: Sequence[LineageStore]) -> LineageView:
    if len(stores) == 1:
        return stores[0].view()
    view = LineageView()
    for s in stores:
        view.update(s.view())
    return view


class LineageRefs:
    """A RefLookup over several stores: their refs first, then what their indexes record."""

    def __init__(self, stores: Sequence[LineageStore]) -> None:
        self.stores = stores
        self.label = ", ".join(s.label for s in stores) or "no store"

    def head(self, kind: str, name: str) -> str | None:
        for s in self.stores:
            cid = s.refs.get(head_ref(kind, name))
            if cid is not None:
                return cid
        return None

    def tag(self, name: str, tag: str) -> str | None:
        for s in self.stores:
            cid = s.refs.get(tag_ref(name, tag))
            if cid is not None:
                return cid
        hits = merged_view(self.stores).tagged(name, tag)
        return hits[-1] if len(hits) == 1 else None

    def commits_with_prefix(self, prefix: str, name: str | None) -> list[str]:
        view = merged_view(self.stores)
        if is_object_id(prefix) and (prefix in view.nodes or name is None):
            return [prefix]  # a whole id names itself (even one no index knows: its lineage is then empty)
        return sorted(
            cid for cid, n in view.nodes.items() if cid.startswith(prefix) and not n.external and (name is None or n.name == name)
        )[:10]

    def first_parent(self, commit_id: str) -> str | None:
        node = merged_view(self.stores).nodes.get(commit_id)
        return node.parents[0] if node is not None and node.parents else None


def resolve_in_stores(stores: Sequence[LineageStore], text: str, ctx: RefContext | None = None) -> str:
    """The commit id ``text`` names in ``stores`` (see datactl.store.revparse for the grammar)."""
    return resolve_ref(LineageRefs(stores), text, ctx)


def query_stores(stores: Sequence[LineageStore], root: str, direction: str, depth: int | None) -> LineageGraph:
    """The lineage of ``root`` across ``stores``, with what the answer cost in ``graph.stats``."""
    graph = query(merged_view(stores), root, direction, depth)
    total = IndexStats()
    for s in stores:
        for k, v in s.stats.to_dict().items():
            setattr(total, k, getattr(total, k) + v)
    graph.stats = total.to_dict()
    return graph
