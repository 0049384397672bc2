"""The object model: trees and commits, and their canonical encoding.

Both encode as canonical JSON (sorted keys, no spaces, UTF-8), so the same
content gives the same bytes, hence the same id, on every machine. Chunks are
raw bytes and chunk lists are concatenated 16-byte ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from datactl.core.errors import CorruptObject
from datactl.core.ids import ID_BYTES, is_object_id, object_id
from datactl.core.safepath import check_entry_name

FORMAT = 1
FILE = "file"
DIR = "dir"
SYMLINK = "symlink"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class TreeEntry:
    """One name in a directory.

    A file lists its chunk ids inline, or names a CHUNKLIST object when it has
    many chunks; ``digest`` is the hash of its whole content. A dir points to a
    sub-tree (``digest`` is the tree id, ``size`` the bytes below it). A
    symlink stores its ``target``.
    """

    name: str
    kind: str
    mode: int = 0
    size: int = 0
    digest: str = ""
    chunks: tuple[str, ...] = ()
    chunklist: str | None = None
    target: str | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "size": self.size, "digest": self.digest}
        if self.kind == FILE:
            d["mode"] = self.mode
            if self.chunklist is not None:
                d["chunklist"] = self.chunklist
            else:
                d["chunks"] = list(self.chunks)
        elif self.kind == SYMLINK:
            d["target"] = self.target
        return d


@dataclass(frozen=True)
class Tree:
    entries: tuple[TreeEntry, ...]

    def encode(self) -> bytes:
        return canonical_json({"format": FORMAT, "entries": [e.to_dict() for e in self.entries]})

    def get(self, name: str) -> TreeEntry | None:
        for e in self.entries:
            if e.name == name:
                return e
        return None


def symlink_entry(name: str, target: str) -> TreeEntry:
    """A symlink's entry: its digest is the hash of its target's UTF-8 bytes."""
    raw = target.encode("utf-8")
    return TreeEntry(name, SYMLINK, 0, len(raw), object_id(raw), target=target)


def _bad(what: str, oid: str, why: str) -> CorruptObject:
    return CorruptObject(f"{what} {oid} is malformed: {why}", "run `datactl verify --deep` to find damaged objects")


def decode_tree(oid: str, data: bytes) -> Tree:
    """Parse and validate a tree; hostile names raise UnsafePath."""
    try:
        doc = json.loads(data)
        raw_entries = doc["entries"]
        if doc.get("format") != FORMAT:
            raise _bad("tree", oid, f"unknown format {doc.get('format')!r}")
        entries = []
        previous = None
        for d in raw_entries:
            name = check_entry_name(d["name"])
            if previous is not None and name.encode() <= previous.encode():
                raise _bad("tree", oid, "entries not sorted or duplicated")
            previous = name
            kind = d["kind"]
            if kind == FILE:
                chunks = tuple(d.get("chunks", ()))
                chunklist = d.get("chunklist")
                if not all(is_object_id(c) for c in chunks) or (chunklist is not None and not is_object_id(chunklist)):
                    raise _bad("tree", oid, f"bad chunk id under {name!r}")
                entries.append(TreeEntry(name, FILE, int(d["mode"]) & 0o7777, int(d["size"]), d["digest"], chunks, chunklist))
            elif kind == DIR:
                if not is_object_id(d["digest"]):
                    raise _bad("tree", oid, f"bad tree id under {name!r}")
                entries.append(TreeEntry(name, DIR, 0, int(d["size"]), d["digest"]))
            elif kind == SYMLINK:
                target = d["target"]
                if not isinstance(target, str) or "\0" in target:
                    raise _bad("tree", oid, f"bad link target under {name!r}")
                entries.append(TreeEntry(name, SYMLINK, 0, int(d["size"]), d["digest"], target=target))
            else:
                raise _bad("tree", oid, f"unknown entry kind {kind!r}")
        return Tree(tuple(entries))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad("tree", oid, str(exc)) from None


def encode_chunklist(chunk_ids: bytes) -> bytes:
    return chunk_ids


def decode_chunklist(oid: str, data: bytes) -> list[str]:
    if len(data) % ID_BYTES:
        raise _bad("chunk list", oid, "length is not a multiple of 16")
    return [data[i : i + ID_BYTES].hex() for i in range(0, len(data), ID_BYTES)]


@dataclass(frozen=True)
class Commit:
    """One version of a dataset or model."""

    tree: str
    parents: tuple[str, ...]
    kind: str
    name: str
    message: str
    author: str
    time: str
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        return {
            "tree": self.tree,
            "parents": list(self.parents),
            "kind": self.kind,
            "name": self.name,
            "message": self.message,
            "author": self.author,
            "time": self.time,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "inputs": list(self.inputs),
        }

    def encode(self) -> bytes:
        return canonical_json({"format": FORMAT, **self.fields()})

    def to_dict(self, commit_id: str) -> dict:
        return {"id": commit_id, **self.fields()}


def decode_commit(oid: str, data: bytes) -> Commit:
    try:
        d = json.loads(data)
        if d.get("format") != FORMAT:
            raise _bad("commit", oid, f"unknown format {d.get('format')!r}")
        ids = [d["tree"], *d["parents"], *d["inputs"]]
        if not all(is_object_id(i) for i in ids):
            raise _bad("commit", oid, "bad object id")
        return Commit(
            tree=d["tree"],
            parents=tuple(d["parents"]),
            kind=d["kind"],
            name=d["name"],
            message=d["message"],
            author=d["author"],
            time=d["time"],
            tags=tuple(d["tags"]),
            metadata=dict(d["metadata"]),
            inputs=tuple(d["inputs"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad("commit", oid, str(exc)) from None
