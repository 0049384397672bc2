"""The lineage index in memory: nodes by id, tags, and the reverse edges built on demand."""

from __future__ import annotations

from datactl.format.lineage import Node, TagRecord


class LineageView:
    """The index in memory: nodes by id, tags, and (built on demand) the reverse edges."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        # (name, tag) -> commit; a later record (in HEAD's order) replaces an earlier one: tags can move.
        self.tag_map: dict[tuple[str, str], str] = {}
        self._children: dict[str, list[tuple[str, str]]] | None = None
        self._by_commit: dict[str, list[TagRecord]] | None = None
        # Commits that refs name but that could not be read (no way to read commits, or missing).
        self.unresolved: set[str] = set()

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, cid: object) -> bool:
        return cid in self.nodes

    def knows(self, cid: str) -> bool:
        """Whether ``cid`` is indexed with its full history (not only as an external input)."""
        n = self.nodes.get(cid)
        return n is not None and not n.external

    def add(self, node: Node) -> bool:
        """Add a node; a full record replaces an external one. Returns whether the view changed."""
        old = self.nodes.get(node.id)
        if old is not None and (node.external or not old.external):
            return False
        self.nodes[node.id] = node
        self._children = None
        return True

    @property
    def tag_records(self) -> set[TagRecord]:
        return {TagRecord(c, n, t) for (n, t), c in self.tag_map.items()}

    def has_tag(self, record: TagRecord) -> bool:
        return self.tag_map.get((record.name, record.tag)) == record.commit

    def add_tag(self, record: TagRecord) -> bool:
        if self.has_tag(record):
            return False
        self.tag_map[(record.name, record.tag)] = record.commit
        self._by_commit = None
        return True

    def update(self, other: "LineageView") -> None:
        for n in other.nodes.values():
            self.add(n)
        for key, commit in other.tag_map.items():
            self.tag_map.setdefault(key, commit)  # stores are independent: the first one asked wins
        self._by_commit = None
        self.unresolved |= other.unresolved
        self.unresolved -= {c for c in self.unresolved if self.knows(c)}

    def tags_of(self, cid: str) -> list[str]:
        """Tags naming ``cid``: recorded tag refs, and the tags it was committed with unless that tag moved since."""
        node = self.nodes.get(cid)
        tags = {t for t in node.tags if self.tag_map.get((node.name, t), cid) == cid} if node else set()
        tags.update(r.tag for r in self._tags_by_commit().get(cid, ()))
        return sorted(tags)

    def _tags_by_commit(self) -> dict[str, list[TagRecord]]:
        if self._by_commit is None:
            out: dict[str, list[TagRecord]] = {}
            for (n, t), c in self.tag_map.items():
                out.setdefault(c, []).append(TagRecord(c, n, t))
            self._by_commit = out
        return self._by_commit

    def tagged(self, name: str, tag: str) -> list[str]:
        """Commits of ``name`` carrying ``tag`` (from tag refs, or the tags a commit was made with)."""
        if (name, tag) in self.tag_map:
            return [self.tag_map[(name, tag)]]  # the tag ref as last recorded
        return sorted(n.id for n in self.nodes.values() if n.name == name and tag in n.tags)

    def children(self) -> dict[str, list[tuple[str, str]]]:
        """Reverse edges: commit -> [(child, "parent" | "input")], in a stable order."""
        if self._children is None:
            rev: dict[str, list[tuple[str, str]]] = {}
            for n in self.nodes.values():
                for p in n.parents:
                    rev.setdefault(p, []).append((n.id, "parent"))
                for i in n.inputs:
                    rev.setdefault(i, []).append((n.id, "input"))
            for lst in rev.values():
                lst.sort()
            self._children = rev
        return self._children


class _Overlay(LineageView):
    """A view plus nodes about to be added (for catching up without copying the base view)."""

    def __init__(self, base: LineageView, extra: LineageView) -> None:
        super().__init__()
        self._base = base
        self._extra = extra
        self.tag_map = {**base.tag_map, **extra.tag_map}

    # The extra view first: it is in memory, where the base may read stored segments to answer.
    def knows(self, cid: str) -> bool:
        return self._extra.knows(cid) or self._base.knows(cid)

    def __contains__(self, cid: object) -> bool:
        return cid in self._extra or cid in self._base

    def has_tag(self, record: TagRecord) -> bool:
        key = (record.name, record.tag)
        return self._extra.has_tag(record) if key in self._extra.tag_map else self._base.has_tag(record)
