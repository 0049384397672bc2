"""The lineage index's byte layouts: segments and HEAD (see datactl/lineage/index.py for how they are used).

``lineage/HEAD``: ``{"format": 1, "segments": [[segment id, node count], ...]}``.

``lineage/seg/<id>``: zstd-compressed JSON, named by the xxh3-128 of its bytes::

    {"format": 1,
     "nodes": [[id, kind, name, time, [tags], [parents], [inputs], author, message, external], ...],
     "tags": [[commit, name, tag], ...]}

Every field is checked on decoding: ids are 32 hex digits, names and tags what
dataset names allow, kinds known, counts non-negative.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import zstandard

from datactl.core.compression import decompress_bounded
from datactl.core.errors import CorruptObject, StoreFormatError
from datactl.core.ids import is_object_id, object_id
from datactl.format.jsontext import parse_json
from datactl.format.layout import KINDS, LINEAGE_HEAD_KEY, is_name
from datactl.format.objects import Commit

FORMAT = 1
MESSAGE_CHARS = 200
MAX_SEGMENT_BYTES = 1 << 31
REBUILD_HINT = "rebuild the index with `datactl lineage --rebuild-index`"


class Node(NamedTuple):
    """One version as the index knows it."""

    id: str
    kind: str
    name: str
    time: str
    tags: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    author: str = ""
    message: str = ""
    external: bool = False

    @classmethod
    def from_commit(cls, cid: str, c: Commit, external: bool = False) -> "Node":
        first = c.message.splitlines()[0] if c.message else ""
        return cls(
            id=cid,
            kind=c.kind,
            name=c.name,
            time=c.time,
            tags=tuple(c.tags),
            parents=() if external else tuple(c.parents),
            inputs=() if external else tuple(c.inputs),
            author=c.author,
            message=first[:MESSAGE_CHARS],
            external=external,
        )

    def to_row(self) -> list:
        return [self.id, self.kind, self.name, self.time, list(self.tags), list(self.parents), list(self.inputs),
                self.author, self.message, 1 if self.external else 0]

    @classmethod
    def from_row(cls, row: list) -> "Node":
        cid, kind, name, when, tags, parents, inputs, author, message, external = row
        if not all(isinstance(v, list) for v in (tags, parents, inputs)):
            raise ValueError("tags, parents and inputs must be lists")
        if not all(isinstance(i, str) and is_object_id(i) for i in (cid, *parents, *inputs)):
            raise ValueError("bad commit id")
        if kind not in KINDS or not isinstance(name, str) or not is_name(name) or not all(isinstance(t, str) and is_name(t) for t in tags):
            raise ValueError(f"bad kind, name or tag in node {cid}")
        if not all(isinstance(v, str) for v in (when, author, message)) or external not in (0, 1, True, False):
            raise ValueError(f"bad time, author, message or flag in node {cid}")
        return cls(cid, kind, name, when, tuple(tags), tuple(parents), tuple(inputs), author, message, bool(external))


@dataclass(frozen=True)
class TagRecord:
    """A tag ref as the index records it."""

    commit: str
    name: str
    tag: str

    @classmethod
    def from_row(cls, row: list) -> "TagRecord":
        commit, name, tag = row
        if not (isinstance(commit, str) and is_object_id(commit) and isinstance(name, str) and is_name(name) and isinstance(tag, str) and is_name(tag)):
            raise ValueError("bad tag record")
        return cls(commit, name, tag)


def encode_segment(nodes: Iterable[Node], tags: Iterable[TagRecord]) -> bytes:
    doc = {
        "format": FORMAT,
        "nodes": [n.to_row() for n in sorted(nodes, key=lambda n: n.id)],
        "tags": sorted([t.commit, t.name, t.tag] for t in tags),
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return zstandard.ZstdCompressor(level=10).compress(raw)


def decode_segment(seg_id: str, data: bytes) -> tuple[list[Node], list[TagRecord]]:
    if object_id(data) != seg_id:
        raise CorruptObject(
            f"lineage index segment {seg_id} is corrupt (its bytes do not hash to its id)",
            REBUILD_HINT,
        )
    try:
        doc = parse_json(decompress_bounded(data, MAX_SEGMENT_BYTES))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("unknown format")
        nodes = [Node.from_row(r) for r in doc["nodes"]]
        tags = [TagRecord.from_row(r) for r in doc["tags"]]
        return nodes, tags
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptObject(f"lineage index segment {seg_id} is unreadable: {exc}", REBUILD_HINT) from None


def encode_head(segments: Sequence[tuple[str, int]]) -> bytes:
    return json.dumps({"format": FORMAT, "segments": [[s, n] for s, n in segments]}, separators=(",", ":")).encode() + b"\n"


def decode_head(data: bytes, url: str) -> list[tuple[str, int]]:
    try:
        doc = parse_json(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("unknown format")
        segs = [(s, n) for s, n in doc["segments"]]
        if not all(isinstance(s, str) and is_object_id(s) and type(n) is int and n >= 0 for s, n in segs):
            raise ValueError("bad segment id or count")
        return segs
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreFormatError(f"{LINEAGE_HEAD_KEY} in {url} is damaged: {exc}", REBUILD_HINT) from None
