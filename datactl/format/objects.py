"""The object model: trees and commits, and their canonical encoding.

Both encode as canonical JSON (sorted keys, no spaces, UTF-8), so the same
content gives the same bytes, hence the same id, on every machine. Chunks are
raw bytes and chunk lists are concatenated 16-byte ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datactl.core.errors import CorruptObject
from datactl.core.ids import ID_BYTES, all_object_ids, is_object_id, object_id
from datactl.core.safepath import check_entry_name
from datactl.format.external import ExternalSource
from datactl.format.jsontext import canonical_json, canonical_plain_json, parse_json, parse_plain_json
from datactl.format.layout import KINDS, is_name

FORMAT = 1
FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
# An external file is a FILE whose bytes stay at their source (``TreeEntry.source``). It is written with its
# own kind, so a reader that does not know sources refuses the tree instead of looking for chunks never stored.
EXTERNAL = "external"
MAX_SIZE = 2**63 - 1
_set_fields = object.__setattr__


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
    source: ExternalSource | None = None  # an external file: where its bytes are (its chunks are not stored)
    chunk_sizes: tuple[int, ...] = ()  # an external file's chunk sizes, so ranged reads check chunk by chunk

    def __init__(
        self,
        name: str,
        kind: str,
        mode: int = 0,
        size: int = 0,
        digest: str = "",
        chunks: tuple[str, ...] = (),
        chunklist: str | None = None,
        target: str | None = None,
        source: ExternalSource | None = None,
        chunk_sizes: tuple[int, ...] = (),
    ) -> None:
        # The fields (in order, with their defaults) as one dict: a frozen dataclass's own __init__ sets them by ten
        # object.__setattr__ calls, twice the cost of an entry, and a clone or commit of 1M files makes millions.
        _set_fields(self, "__dict__", {
            "name": name, "kind": kind, "mode": mode, "size": size, "digest": digest, "chunks": chunks,
            "chunklist": chunklist, "target": target, "source": source, "chunk_sizes": chunk_sizes,
        })  # fmt: skip

    @property
    def is_external(self) -> bool:
        return self.source is not None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "size": self.size, "digest": self.digest}
        if self.source is not None:
            d.update(kind=EXTERNAL, mode=self.mode, chunks=list(self.chunks), sizes=list(self.chunk_sizes), source=self.source.to_dict())
        elif self.kind == FILE:
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
        return encode_tree_dicts([e.to_dict() for e in self.entries])

    def get(self, name: str) -> TreeEntry | None:
        for e in self.entries:
            if e.name == name:
                return e
        return None


def encode_tree_dicts(entries: list[dict]) -> bytes:
    """A tree's bytes from its entries as ``TreeEntry.to_dict`` gives them (or ``tree_entry_dicts`` parsed them), in
    byte order of name."""
    return canonical_plain_json({"format": FORMAT, "entries": entries})


def symlink_entry(name: str, target: str) -> TreeEntry:
    """A symlink's entry: its digest is the hash of its target's UTF-8 bytes."""
    raw = target.encode("utf-8")
    return TreeEntry(name, SYMLINK, 0, len(raw), object_id(raw), target=target)


def _bad(what: str, oid: str, why: str) -> CorruptObject:
    return CorruptObject(f"{what} {oid} is malformed: {why}", "run `datactl verify --deep` to find damaged objects")


def _int(d: dict, key: str, top: int) -> int:
    """An integer field in [0, top]: JSON numbers that are floats, booleans or out of range are refused."""
    value = d[key]
    if type(value) is not int or not 0 <= value <= top:
        raise ValueError(f"{key} {str(value)[:40]} is not a whole number in [0, {top}]")
    return value


def _ids(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(is_object_id(i) for i in value):
        raise ValueError(f"{what} must be a list of object ids")
    return tuple(value)  # type: ignore[arg-type]


def _tree_doc_entries(oid: str, data: bytes) -> list:
    doc = parse_plain_json(data)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("entries"), list):
        raise _bad("tree", oid, "not a tree of format 1")
    return doc["entries"]


def _decode_entry(oid: str, d: object, ids: list) -> TreeEntry:
    """One entry of tree ``oid``, every field checked but its ids, which are added to ``ids`` to be checked together
    (``all_object_ids``). Raises UnsafePath, CorruptObject, or a KeyError, TypeError or ValueError to be reported
    as CorruptObject."""
    if not isinstance(d, dict):
        raise _bad("tree", oid, "an entry is not an object")
    name = check_entry_name(d["name"])
    kind = d["kind"]
    size = _int(d, "size", MAX_SIZE)
    digest = d["digest"]
    ids.append(digest)
    if kind == FILE:
        chunklist = d.get("chunklist")
        if chunklist is not None:
            if "chunks" in d:
                raise _bad("tree", oid, f"bad chunk list under {name!r}")
            ids.append(chunklist)
            chunks: tuple[str, ...] = ()
        else:
            listed = d.get("chunks", [])
            if not isinstance(listed, list):
                raise ValueError(f"chunks of {name!r} must be a list of object ids")
            ids.extend(listed)
            chunks = tuple(listed)
        return TreeEntry(name, FILE, _int(d, "mode", 0o7777), size, digest, chunks, chunklist)
    if kind == EXTERNAL:
        return _external_entry(d, name, size, digest)
    if kind == DIR:
        return TreeEntry(name, DIR, 0, size, digest)
    if kind == SYMLINK:
        target = d["target"]
        if not isinstance(target, str) or "\0" in target:
            raise _bad("tree", oid, f"bad link target under {name!r}")
        link = symlink_entry(name, target)  # UnicodeEncodeError (a ValueError) for a target that is not UTF-8
        if (link.size, link.digest) != (size, digest):
            raise _bad("tree", oid, f"link {name!r}: size or digest does not match its target")
        return link
    raise _bad("tree", oid, f"unknown entry kind {str(kind)[:40]!r}")


def decode_tree(oid: str, data: bytes) -> Tree:
    """Parse a tree and check every field; hostile names raise UnsafePath, anything else malformed CorruptObject."""
    try:
        raw = _tree_doc_entries(oid, data)
        entries = []
        ids: list = []  # every digest, chunk list and chunk id of the tree, checked together after the loop
        previous: bytes | None = None
        for d in raw:
            entry = _decode_entry(oid, d, ids)
            encoded = entry.name.encode("utf-8")
            if previous is not None and encoded <= previous:
                raise _bad("tree", oid, "entries not sorted or duplicated")
            previous = encoded
            entries.append(entry)
        if not all_object_ids(ids):
            raise _bad("tree", oid, _first_bad_id(raw))
        return Tree(tuple(entries))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad("tree", oid, str(exc)) from None


def tree_entry_dicts(oid: str, data: bytes) -> tuple[list[str], list[dict]]:
    """The names and the entries of a tree as parsed, checked only for what a merge of two trees by name needs:
    objects with string names, in strictly increasing order. Comparing two trees this way costs a parse and a
    comparison per entry; only an entry that differs is then decoded (``decode_tree_entry``), every field checked,
    before any use."""
    try:
        raw = _tree_doc_entries(oid, data)
        try:
            names = [d["name"] for d in raw]  # parsed JSON: only an object (a dict) is indexed by a string
        except TypeError:
            raise _bad("tree", oid, "an entry is not an object") from None
        if not set(map(type, names)) <= {str}:
            raise ValueError("an entry's name is not a string")
        # Code-point order: UTF-8 byte order for every name that decodes (decode_tree_entry refuses the others).
        if not all(map(str.__lt__, names, names[1:])):
            raise _bad("tree", oid, "entries not sorted or duplicated")
        return names, raw
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad("tree", oid, str(exc)) from None


def decode_tree_entry(oid: str, d: dict) -> TreeEntry:
    """One entry of ``tree_entry_dicts``, checked as ``decode_tree`` checks it."""
    try:
        ids: list = []
        entry = _decode_entry(oid, d, ids)
        if not all_object_ids(ids):
            raise _bad("tree", oid, _first_bad_id([d]))
        return entry
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad("tree", oid, str(exc)) from None


def _first_bad_id(entries: list[dict]) -> str:
    """What is wrong with the first entry holding a malformed id (the ids of a tree are checked all at once)."""
    for d in entries:
        name = d["name"]
        if not is_object_id(d["digest"]):
            return f"bad digest under {name!r}"
        if d.get("chunklist") is not None and not is_object_id(d["chunklist"]):
            return f"bad chunk list under {name!r}"
        if not all(is_object_id(i) for i in d.get("chunks", [])):
            return f"chunks of {name!r} must be a list of object ids"
    return "an id is malformed"


def _external_entry(d: dict, name: str, size: int, digest: str) -> TreeEntry:
    """An external file's entry: its source, and chunk ids with sizes that add up to its size."""
    chunks = _ids(d["chunks"], f"chunks of {name!r}")
    sizes = d["sizes"]
    if not isinstance(sizes, list) or len(sizes) != len(chunks) or any(type(n) is not int or not 0 < n <= MAX_SIZE for n in sizes):
        raise ValueError(f"sizes of {name!r} must be one positive whole number per chunk")
    if sum(sizes) != size:
        raise ValueError(f"chunk sizes of {name!r} do not add up to its size")
    source = ExternalSource.from_dict(d["source"])
    return TreeEntry(name, FILE, _int(d, "mode", 0o7777), size, digest, chunks, None, None, source, tuple(sizes))


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
    """Parse a commit and check every field (ids, kind, name, tags, text fields, time)."""
    try:
        d = parse_json(data)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise _bad("commit", oid, "not a commit of format 1")
        if not is_object_id(d["tree"]):
            raise ValueError("bad tree id")
        kind, name, tags = d["kind"], d["name"], d["tags"]
        if kind not in KINDS or not is_name(name):
            raise ValueError(f"bad kind or name {str(kind)[:20]!r}/{str(name)[:40]!r}")
        if not isinstance(tags, list) or not all(is_name(t) for t in tags):
            raise ValueError("tags must be a list of names")
        if not all(isinstance(d[k], str) for k in ("message", "author", "time")) or not isinstance(d["metadata"], dict):
            raise ValueError("message, author and time must be text, metadata an object")
        datetime.fromisoformat(d["time"])
        return Commit(
            tree=d["tree"],
            parents=_ids(d["parents"], "parents"),
            kind=kind,
            name=name,
            message=d["message"],
            author=d["author"],
            time=d["time"],
            tags=tuple(tags),
            metadata=dict(d["metadata"]),
            inputs=_ids(d["inputs"], "inputs"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad("commit", oid, str(exc)) from None
