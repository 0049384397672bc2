"""Every decoder of stored bytes: what it returns passes the format's checks, or it raises a format error.

A store can be damaged (flipped bits, truncated uploads) or written by a
faulty or hostile tool. Whatever bytes a decoder is given, it must either
return values that satisfy the format (ids are 32 lowercase hex digits, names
are safe, counts are non-negative integers ...) or raise one of datactl's own
errors (``CorruptObject``, ``StoreFormatError``, ``UnsafePath``), which the
command line turns into a message and an exit code. Any other exception is a
crash with a traceback.

The checks below are written out independently of datactl's helpers (regular
expressions matched in full), so a lenient helper cannot hide itself.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import re
import struct
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from datactl.core import compression
from datactl.core.errors import CorruptObject, StoreFormatError, UnsafePath
from datactl.core.ids import object_id
from datactl.format import gcrecords, indexfile, lineage, listing, objects, pack
from datactl.format.layout import KINDS
from datactl.format.objects import (
    DIR,
    FILE,
    SYMLINK,
    Commit,
    Tree,
    TreeEntry,
    symlink_entry,
)
from datactl.format.pack import (
    ENTRY_SIZE,
    HEADER,
    MAX_OBJECT_BYTES,
    TRAILER_SIZE,
    ObjectType,
    PackEntry,
    PackWriter,
)
from datactl.format.storeconfig import (
    COMPRESSION_LEVELS,
    MAX_CHUNK_SIZE,
    PACK_SIZES,
    STORE_FORMAT,
    ChunkerParams,
    StoreConfig,
)

FORMAT_ERRORS = (CorruptObject, StoreFormatError, UnsafePath)
# No shrinking: a failing example of a mutated document is reported as found (the assertion
# names the offending value), which keeps a failing run as quick as a passing one.
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)

# -- the formats' checks, written out ------------------------------------------------------

ID = re.compile(r"[0-9a-f]{32}")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
RUN = re.compile(r"[0-9A-Za-z_:-][0-9A-Za-z_.:-]{0,79}")


def is_id(v: Any) -> bool:
    return isinstance(v, str) and ID.fullmatch(v) is not None


def is_name(v: Any) -> bool:
    """A dataset, model or tag name."""
    return isinstance(v, str) and NAME.fullmatch(v) is not None and not v.endswith(".lock")


def is_count(v: Any) -> bool:
    return type(v) is int and v >= 0


def is_safe_entry_name(v: Any) -> bool:
    """One path component that stays inside the workspace and can be written to disk."""
    if not isinstance(v, str) or v in ("", ".", "..", ".datactl"):
        return False
    if any(c in v for c in "/\\\0") or re.match(r"[A-Za-z]:", v) or v.endswith(".datactl-tmp"):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decoded(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when it raised a format error; any other exception fails the test."""
    try:
        return fn(*args)
    except FORMAT_ERRORS:
        return None


def assert_valid_entry(e: PackEntry) -> None:
    assert is_id(e.id)
    assert e.type in set(ObjectType) and isinstance(e.type, ObjectType)
    assert e.codec in compression.CODECS
    assert all(type(v) is int for v in (e.offset, e.stored_len, e.raw_len))
    assert e.offset >= len(HEADER)
    assert 0 <= e.stored_len <= MAX_OBJECT_BYTES and 0 <= e.raw_len <= MAX_OBJECT_BYTES
    if e.codec == compression.RAW:
        assert e.stored_len == e.raw_len


def assert_valid_tree(tree: Tree) -> None:
    assert isinstance(tree, Tree)
    names = [e.name for e in tree.entries]
    assert all(is_safe_entry_name(n) for n in names), names
    encoded = [n.encode() for n in names]
    assert all(a < b for a, b in itertools.pairwise(encoded)), "entries not strictly sorted"
    for e in tree.entries:
        assert e.kind in (FILE, DIR, SYMLINK)
        assert is_count(e.size), e
        assert is_id(e.digest), e
        if e.kind == FILE:
            assert type(e.mode) is int and 0 <= e.mode <= 0o7777
            assert all(is_id(c) for c in e.chunks)
            assert e.chunklist is None or is_id(e.chunklist)
        if e.kind == SYMLINK:
            assert isinstance(e.target, str) and "\0" not in e.target


def assert_valid_commit(c: Commit) -> None:
    assert is_id(c.tree)
    assert all(is_id(p) for p in c.parents) and all(is_id(i) for i in c.inputs)
    assert c.kind in KINDS, c.kind
    assert is_name(c.name), c.name
    assert all(is_name(t) for t in c.tags), c.tags
    assert all(isinstance(v, str) for v in (c.message, c.author, c.time)), c
    assert isinstance(c.metadata, dict)


def assert_valid_node(n: lineage.Node) -> None:
    assert is_id(n.id) and all(is_id(p) for p in (*n.parents, *n.inputs))
    assert n.kind in KINDS and is_name(n.name) and all(is_name(t) for t in n.tags), n
    assert all(isinstance(v, str) for v in (n.time, n.author, n.message))
    assert isinstance(n.external, bool)


def assert_valid_config(c: StoreConfig) -> None:
    assert c.format == STORE_FORMAT
    assert isinstance(c.store_id, str) and 0 < len(c.store_id) <= 64 and c.store_id.isalnum()
    p = c.chunker
    assert p.algorithm == "fastcdc-2020"
    assert all(type(v) is int for v in (p.min_size, p.avg_size, p.max_size, p.normalized_chunking, p.seed))
    assert 64 <= p.min_size <= p.avg_size <= p.max_size <= MAX_CHUNK_SIZE
    assert 0 <= p.normalized_chunking <= 3 and 0 <= p.seed < 2**32
    assert type(c.pack_size) is int and c.pack_size in PACK_SIZES
    assert type(c.compression_level) is int and c.compression_level in COMPRESSION_LEVELS


# -- mutations ------------------------------------------------------------------------------

HOSTILE: list[Any] = [
    "../x", "..", ".", "", "/etc/passwd", "a/b", "a\\b", "C:x", "x\0y", ".datactl", "f.datactl-tmp", "\ud800",
    "name\n", "x.lock", "-x", "0" * 31 + "\n", "A" * 32, "g" * 32, "0" * 31, "0" * 33, " " + "0" * 31,
    -1, -(2**63), 2**64, 10**30, 10**400, float("inf"), float("-inf"), float("nan"), 1.5, 0.0, 1e300,
    True, False, None, [], {}, [1], {"a": 1}, "1",
]
json_values = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(),
    st.text(max_size=40),
    st.floats(),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.sampled_from(HOSTILE)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.sampled_from(HOSTILE)), max_size=3),
).map(copy.deepcopy)  # HOSTILE's lists and dicts are shared: a mutation must not change them


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def mutate_doc(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with 1-3 of its values replaced by wrong types or hostile values, removed, added or repeated."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "repeat"]))
        if not path:
            if op == "add" and isinstance(doc, dict):
                doc[draw(st.text(max_size=8))] = draw(json_values)
            elif op == "add" and isinstance(doc, list):
                doc.append(draw(json_values))
            else:
                doc = draw(json_values)
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op == "replace":
            parent[key] = draw(json_values)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=8))] = draw(json_values)
        elif op == "add" and isinstance(parent[key], list):
            parent[key].insert(draw(st.integers(0, len(parent[key]))), draw(json_values))
        elif op == "repeat" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key] = draw(json_values)
    return doc


def dump(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with 1-4 damages: flipped bytes, truncation, appended junk, inserted or deleted runs."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "append", "insert", "delete", "set"]))
        if op == "truncate":
            b = b[: draw(st.integers(0, len(b)))]
        elif op == "append":
            b += draw(st.binary(min_size=1, max_size=64))
        elif op == "insert":
            i = draw(st.integers(0, len(b)))
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif not b:
            continue
        elif op == "flip":
            i = draw(st.integers(0, len(b) - 1))
            b[i] ^= draw(st.integers(1, 255))
        elif op == "delete":
            i = draw(st.integers(0, len(b) - 1))
            del b[i : i + draw(st.integers(1, 16))]
        else:  # overwrite one byte with something meaningful to a JSON parser
            b[draw(st.integers(0, len(b) - 1))] = draw(st.sampled_from(list(b'{}[]":,0af-\\ e.')))
    return bytes(b)


def zstd(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(raw)


# -- valid values ----------------------------------------------------------------------------

ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
names = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,20}\Z").filter(lambda s: not s.endswith(".lock"))
entry_names = st.text(alphabet="abcAB09._- é日\n~", min_size=1, max_size=10).filter(is_safe_entry_name)
texts = st.text(max_size=30)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.text(max_size=10))
metadata = st.dictionaries(st.text(max_size=8), st.one_of(json_scalars, st.lists(json_scalars, max_size=3)), max_size=4)


@st.composite
def tree_entries(draw: st.DrawFn, name: str) -> TreeEntry:
    kind = draw(st.sampled_from([FILE, DIR, SYMLINK]))
    if kind == DIR:
        return TreeEntry(name, DIR, 0, draw(st.integers(0, 10**15)), draw(ids))
    if kind == SYMLINK:
        return symlink_entry(name, draw(st.text(max_size=20).filter(lambda t: "\0" not in t)))
    mode = draw(st.sampled_from([0o644, 0o755, 0o600, 0o444, 0]))
    size, digest = draw(st.integers(0, 10**15)), draw(ids)
    if draw(st.booleans()):
        return TreeEntry(name, FILE, mode, size, digest, chunklist=draw(ids))
    return TreeEntry(name, FILE, mode, size, digest, tuple(draw(st.lists(ids, max_size=3))))


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    picked = sorted(set(draw(st.lists(entry_names, max_size=6))), key=str.encode)
    return Tree(tuple(draw(tree_entries(n)) for n in picked))


commits = st.builds(
    Commit,
    tree=ids,
    parents=st.lists(ids, max_size=2).map(tuple),
    kind=st.sampled_from(KINDS),
    name=names,
    message=texts,
    author=texts,
    time=st.sampled_from(["2024-01-02T03:04:05Z", "2030-12-31T23:59:59Z"]),
    tags=st.lists(names, max_size=3, unique=True).map(tuple),
    metadata=metadata,
    inputs=st.lists(ids, max_size=2).map(tuple),
)


@st.composite
def pack_listings(draw: st.DrawFn) -> indexfile.PackListing:
    out: indexfile.PackListing = {}
    for pid in draw(st.lists(ids, max_size=3, unique=True)):
        offset, entries = len(HEADER), []
        for oid in draw(st.lists(ids, max_size=5, unique=True)):
            codec = draw(st.sampled_from(compression.CODECS))
            stored = draw(st.integers(0, 10**6))
            raw = stored if codec == compression.RAW else draw(st.integers(0, 10**6))
            entries.append(PackEntry(oid, draw(st.sampled_from(list(ObjectType))), codec, offset, stored, raw))
            offset += stored + draw(st.integers(0, 100))
        out[pid] = (offset + draw(st.integers(0, 10**4)), entries)
    return out


@st.composite
def store_configs(draw: st.DrawFn) -> StoreConfig:
    lo = draw(st.integers(64, MAX_CHUNK_SIZE))
    avg = draw(st.integers(lo, MAX_CHUNK_SIZE))
    hi = draw(st.integers(avg, MAX_CHUNK_SIZE))
    chunker = ChunkerParams(
        min_size=lo, avg_size=avg, max_size=hi,
        normalized_chunking=draw(st.integers(0, 3)), seed=draw(st.integers(0, 2**32 - 1)),
    )
    return StoreConfig(
        store_id=draw(st.text(alphabet="0123456789abcdefXYZ", min_size=1, max_size=64)),
        chunker=chunker,
        pack_size=draw(st.integers(PACK_SIZES.start, PACK_SIZES.stop - 1)),
        compression_level=draw(st.sampled_from(list(COMPRESSION_LEVELS))),
    )


nodes = st.builds(
    lineage.Node,
    id=ids,
    kind=st.sampled_from(KINDS),
    name=names,
    time=st.sampled_from(["2024-01-02T03:04:05Z", ""]),
    tags=st.lists(names, max_size=2).map(tuple),
    parents=st.lists(ids, max_size=2).map(tuple),
    inputs=st.lists(ids, max_size=2).map(tuple),
    author=texts,
    message=texts,
    external=st.booleans(),
)
tag_records = st.builds(lineage.TagRecord, commit=ids, name=names, tag=names)
segments = st.tuples(st.lists(nodes, max_size=4, unique_by=lambda n: n.id), st.lists(tag_records, max_size=3))
head_lists = st.lists(st.tuples(ids, st.integers(0, 10**9)), max_size=4)


# -- packs: trailer and footer ---------------------------------------------------------------

objects_to_pack = st.lists(
    st.tuples(st.sampled_from(list(ObjectType)), st.one_of(st.binary(max_size=300), st.just(b"abc" * 200))), max_size=5
)


def make_pack(items: list[tuple[ObjectType, bytes]]) -> tuple[str, bytes, list[PackEntry]]:
    """A sealed pack of ``items`` as PackWriter writes it: (pack id, its bytes, its entries)."""
    with tempfile.TemporaryDirectory() as tmp:
        w = PackWriter(tmp)
        for typ, raw in items:
            codec, stored = compression.compress(raw, 3)
            w.add(object_id(raw), typ, codec, stored, len(raw))
        pack_id, path, entries = w.finish()
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
    return pack_id, data, entries


def read_pack_footer(pack_id: str, data: bytes) -> tuple[int, list[PackEntry]]:
    """What a reader learns from a pack's last bytes: trailer, then footer (as PackReader.read_footer)."""
    if len(data) < TRAILER_SIZE:
        raise CorruptObject(f"pack {pack_id} is truncated")
    footer_offset, count, footer_hash = pack.parse_trailer(pack_id, data[-TRAILER_SIZE:], len(data))
    assert is_id(footer_hash)
    assert footer_offset >= len(HEADER), "the footer starts inside the pack header"
    assert footer_offset + count * ENTRY_SIZE + TRAILER_SIZE == len(data)
    return footer_offset, pack.parse_footer(pack_id, data[footer_offset : len(data) - TRAILER_SIZE], count, footer_hash)


@SETTINGS
@given(objects_to_pack)
def test_pack_footer_round_trips(items: list[tuple[ObjectType, bytes]]) -> None:
    pack_id, data, entries = make_pack(items)
    assert object_id(data) == pack_id
    footer_offset, parsed = read_pack_footer(pack_id, data)
    assert parsed == entries
    assert [(e.type, e.raw_len) for e in parsed] == [(t, len(raw)) for t, raw in items]
    for e, (_, raw) in zip(parsed, items):
        assert_valid_entry(e)
        assert e.offset + e.stored_len <= footer_offset
        assert compression.decompress(e.codec, data[e.offset : e.offset + e.stored_len], e.raw_len) == raw


@SETTINGS
@given(st.binary(max_size=TRAILER_SIZE + 4), st.integers(0, 2**70))
def test_trailer_of_random_bytes(trailer: bytes, size: int) -> None:
    got = decoded(pack.parse_trailer, "p" * 32, trailer, size)
    if got is not None:
        footer_offset, count, footer_hash = got
        assert is_id(footer_hash) and footer_offset >= len(HEADER)
        assert footer_offset + count * ENTRY_SIZE + TRAILER_SIZE == size


@SETTINGS
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=16, max_size=16),
    st.sampled_from([pack.FOOTER_MAGIC, b"DCTLFOOt", b"\0" * 8]),
    st.booleans(),
    st.integers(0, 2**70),
)
@example(offset=0, count=0, digest=bytes(16), magic=pack.FOOTER_MAGIC, consistent=True, size=0)  # a 40-byte "pack"
def test_trailer_with_crafted_fields(offset: int, count: int, digest: bytes, magic: bytes, consistent: bool, size: int) -> None:
    if consistent:
        size = offset + count * ENTRY_SIZE + TRAILER_SIZE
    got = decoded(pack.parse_trailer, "p" * 32, struct.pack("<QQ16s8s", offset, count, digest, magic), size)
    if got is not None:
        assert got[0] >= len(HEADER), "a footer cannot start inside the 16-byte pack header"
        assert got[0] + got[1] * ENTRY_SIZE + TRAILER_SIZE == size
        assert got[2] == digest.hex()


@SETTINGS
@given(st.binary(max_size=5 * ENTRY_SIZE), st.booleans())
def test_footer_of_random_bytes(footer: bytes, right_hash: bool) -> None:
    # With the right hash the random entries themselves are checked.
    count = len(footer) // ENTRY_SIZE
    footer = footer[: count * ENTRY_SIZE] if right_hash else footer
    digest = object_id(footer) if right_hash else "0" * 32
    got = decoded(pack.parse_footer, "p" * 32, footer, count, digest)
    if got is not None:
        assert len(got) == count
        for e in got:
            assert_valid_entry(e)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=16, max_size=16),
            st.sampled_from([0, 1, 2, 3, 4, 5, 255]),
            st.sampled_from([0, 1, 2, 255]),
            st.integers(0, 65535),
            st.sampled_from([0, 15, 16, 17, 2**40, 2**64 - 1]),
            st.sampled_from([0, 1, 100, MAX_OBJECT_BYTES, MAX_OBJECT_BYTES + 1, 2**64 - 1]),
            st.sampled_from([0, 1, 100, MAX_OBJECT_BYTES, MAX_OBJECT_BYTES + 1, 2**64 - 1]),
        ),
        max_size=4,
    )
)
def test_footer_with_crafted_entries(rows: list[tuple]) -> None:
    footer = b"".join(struct.pack("<16sBBHQQQ", *r) for r in rows)
    got = decoded(pack.parse_footer, "p" * 32, footer, len(rows), object_id(footer))
    if got is not None:
        assert [e.id for e in got] == [r[0].hex() for r in rows]
        for e in got:
            assert_valid_entry(e)


@st.composite
def damaged_packs(draw: st.DrawFn) -> tuple[str, bytes]:
    pack_id, data, _ = make_pack(draw(objects_to_pack))
    return pack_id, mutate_bytes(draw, data)


@SETTINGS
@given(damaged_packs())
def test_damaged_pack_footer_is_refused_or_still_valid(case: tuple[str, bytes]) -> None:
    pack_id, data = case
    got = decoded(read_pack_footer, pack_id, data)
    if got is not None:
        footer_offset, entries = got
        for e in entries:
            assert_valid_entry(e)
            assert e.offset + e.stored_len <= footer_offset


def test_pack_errors_name_the_pack() -> None:
    pack_id, data, _ = make_pack([(ObjectType.CHUNK, b"hello")])
    with pytest.raises(CorruptObject, match=f"pack {pack_id} is truncated"):
        pack.parse_trailer(pack_id, data[-TRAILER_SIZE + 1 :], len(data))
    with pytest.raises(CorruptObject, match=f"pack {pack_id} has a damaged footer"):
        pack.parse_trailer(pack_id, data[-TRAILER_SIZE:], len(data) + 1)
    footer_offset, count, digest = pack.parse_trailer(pack_id, data[-TRAILER_SIZE:], len(data))
    footer = bytearray(data[footer_offset:-TRAILER_SIZE])
    footer[0] ^= 1
    with pytest.raises(CorruptObject, match=f"pack {pack_id} has a corrupt footer"):
        pack.parse_footer(pack_id, bytes(footer), count, digest)


# -- index files -----------------------------------------------------------------------------


def assert_valid_listing(listing: indexfile.PackListing) -> None:
    assert isinstance(listing, dict)
    for pid, (size, entries) in listing.items():
        assert is_id(pid) and is_count(size)
        for e in entries:
            assert_valid_entry(e)
            assert e.offset + e.stored_len <= size


@SETTINGS
@given(pack_listings())
def test_index_file_round_trips(listing: indexfile.PackListing) -> None:
    got = indexfile.decode_index_file("i" * 32, indexfile.encode_index_file(listing))
    assert got == listing
    assert_valid_listing(got)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"\x28\xb5\x2f\xfd" + b)))
def test_index_file_of_random_bytes(data: bytes) -> None:
    got = decoded(indexfile.decode_index_file, "i" * 32, data)
    if got is not None:
        assert_valid_listing(got)


@st.composite
def damaged_index_files(draw: st.DrawFn) -> bytes:
    listing = draw(pack_listings())
    data = indexfile.encode_index_file(listing)
    if draw(st.booleans()):
        return mutate_bytes(draw, data)
    doc = json.loads(zstandard.ZstdDecompressor().decompress(data))
    return zstd(dump(mutate_doc(draw, doc)))


@SETTINGS
@given(damaged_index_files())
def test_damaged_index_file_is_refused_or_still_valid(data: bytes) -> None:
    got = decoded(indexfile.decode_index_file, "i" * 32, data)
    if got is not None:
        assert_valid_listing(got)


def test_index_file_refuses_objects_beyond_the_pack_end() -> None:
    e = PackEntry("a" * 32, ObjectType.CHUNK, compression.RAW, 16, 100, 100)
    data = indexfile.encode_index_file({"b" * 32: (115, [e])})
    with pytest.raises(CorruptObject, match="beyond the end of pack"):
        indexfile.decode_index_file("i" * 32, data)


# -- trees, commits, chunk lists -----------------------------------------------------------


@SETTINGS
@given(trees())
def test_tree_round_trips(tree: Tree) -> None:
    got = objects.decode_tree("t" * 32, tree.encode())
    assert got == tree
    assert_valid_tree(got)


@SETTINGS
@given(st.binary(max_size=300))
def test_tree_of_random_bytes(data: bytes) -> None:
    got = decoded(objects.decode_tree, "t" * 32, data)
    if got is not None:
        assert_valid_tree(got)


@st.composite
def damaged_trees(draw: st.DrawFn) -> bytes:
    tree = draw(trees().filter(lambda t: len(t.entries) > 0))
    if draw(st.booleans()):
        return mutate_bytes(draw, tree.encode())
    return dump(mutate_doc(draw, json.loads(tree.encode())))


@SETTINGS
@given(damaged_trees())
def test_damaged_tree_is_refused_or_still_valid(data: bytes) -> None:
    got = decoded(objects.decode_tree, "t" * 32, data)
    if got is not None:
        assert_valid_tree(got)


def test_a_tree_entry_holds_every_field_in_order_with_its_default() -> None:
    # TreeEntry writes its own __init__ (for speed): it must stay in step with the dataclass's fields.
    fields = dataclasses.fields(TreeEntry)
    bare = TreeEntry("n", FILE)
    assert list(vars(bare)) == [f.name for f in fields]
    assert all(getattr(bare, f.name) == f.default for f in fields[2:])
    values = ["n", FILE, 1, 2, "d", ("c",), "l", "t", None, (3,)]
    assert [getattr(TreeEntry(*values), f.name) for f in fields] == values
    assert TreeEntry(**{f.name: v for f, v in zip(fields, values)}) == TreeEntry(*values)


def entry_by_entry(oid: str, data: bytes) -> Tree:
    """A tree decoded as ``walk_changes`` decodes one: its entries as parsed, then each entry on its own."""
    _names, raw = objects.tree_entry_dicts(oid, data)
    return Tree(tuple(objects.decode_tree_entry(oid, d) for d in raw))


@SETTINGS
@given(st.one_of(damaged_trees(), trees().map(Tree.encode), st.binary(max_size=300)))
def test_a_tree_decoded_entry_by_entry_is_the_tree_decoded_whole(data: bytes) -> None:
    assert decoded(entry_by_entry, "t" * 32, data) == decoded(objects.decode_tree, "t" * 32, data)


def _tree_doc(**fields: Any) -> bytes:
    entry = {"name": "f", "kind": FILE, "mode": 0o644, "size": 1, "digest": "d" * 32, "chunks": ["c" * 32]}
    entry.update(fields)
    return dump({"format": 1, "entries": [entry]})


@pytest.mark.parametrize("name", ["../x", "..", ".", "", "a/b", "a\\b", "C:x", "x\0", ".datactl", "f.datactl-tmp"])
def test_tree_with_a_hostile_name_raises_unsafe_path(name: str) -> None:
    with pytest.raises(UnsafePath):
        objects.decode_tree("t" * 32, _tree_doc(name=name))


def test_tree_with_an_infinite_number_raises_corrupt_object() -> None:
    # json.loads reads 1e999, Infinity and -Infinity as infinite floats; a size or mode must be an integer.
    for field, value in [("size", 1e999), ("size", float("inf")), ("mode", float("-inf"))]:
        with pytest.raises(CorruptObject):
            objects.decode_tree("t" * 32, _tree_doc(**{field: value}))


def test_tree_entry_with_a_malformed_digest_is_refused() -> None:
    # A file's digest is the id of its content (the shared cache even names files by it, remote/cache.py
    # file_path), a symlink's the id of its target.
    accepted = []
    for kind in (FILE, SYMLINK):
        for digest in ["../../outside", "/tmp/x", 5, None, "D" * 32]:
            extra = {"target": "t"} if kind == SYMLINK else {}
            if decoded(objects.decode_tree, "t" * 32, _tree_doc(kind=kind, digest=digest, **extra)) is not None:
                accepted.append((kind, digest))
    assert not accepted, f"accepted: {accepted}"


def test_tree_entry_with_a_negative_size_is_refused() -> None:
    accepted = [kind for kind in (FILE, DIR, SYMLINK)
                if decoded(objects.decode_tree, "t" * 32, _tree_doc(kind=kind, size=-5, target="t")) is not None]
    assert not accepted, f"accepted: {accepted}"


def test_tree_with_one_unencodable_name_is_refused() -> None:
    # A lone surrogate cannot be encoded, so such a file can never be written to disk; with two
    # entries the sort check trips over it, with one nothing does.
    got = decoded(objects.decode_tree, "t" * 32, _tree_doc(name="\ud800"))
    assert got is None, f"decoded a name that is not valid UTF-8: {got}"


@pytest.mark.parametrize("chunk", ["A" * 32, "0" * 31, "0" * 33, "g" * 32, 7])
def test_tree_with_a_malformed_chunk_id_is_refused(chunk: Any) -> None:
    assert decoded(objects.decode_tree, "t" * 32, _tree_doc(chunks=[chunk])) is None
    assert decoded(objects.decode_tree, "t" * 32, _tree_doc(chunks=[], chunklist=chunk)) is None


def test_tree_entries_out_of_order_are_refused() -> None:
    doc = json.loads(Tree((TreeEntry("a", DIR, 0, 0, "1" * 32), TreeEntry("b", DIR, 0, 0, "2" * 32))).encode())
    doc["entries"].reverse()
    with pytest.raises(CorruptObject, match="not sorted"):
        objects.decode_tree("t" * 32, dump(doc))
    doc["entries"][0]["name"] = "a"
    with pytest.raises(CorruptObject):
        objects.decode_tree("t" * 32, dump(doc))


@SETTINGS
@given(commits)
def test_commit_round_trips(commit: Commit) -> None:
    got = objects.decode_commit("c" * 32, commit.encode())
    assert got == commit
    assert_valid_commit(got)


@SETTINGS
@given(st.binary(max_size=300))
def test_commit_of_random_bytes(data: bytes) -> None:
    got = decoded(objects.decode_commit, "c" * 32, data)
    if got is not None:
        assert_valid_commit(got)


@st.composite
def damaged_commits(draw: st.DrawFn) -> bytes:
    commit = draw(commits)
    if draw(st.booleans()):
        return mutate_bytes(draw, commit.encode())
    return dump(mutate_doc(draw, json.loads(commit.encode())))


@SETTINGS
@given(damaged_commits())
def test_damaged_commit_is_refused_or_still_valid(data: bytes) -> None:
    got = decoded(objects.decode_commit, "c" * 32, data)
    if got is not None:
        assert_valid_commit(got)


def _commit_doc(**fields: Any) -> bytes:
    doc = json.loads(Commit("a" * 32, ("b" * 32,), "dataset", "ds", "m", "me", "2024-01-01T00:00:00Z").encode())
    doc.update(fields)
    return dump(doc)


@pytest.mark.parametrize("field,value", [("tree", "X" * 32), ("parents", ["0" * 31]), ("inputs", ["g" * 32]), ("tree", 7), ("parents", [None])])
def test_commit_with_a_malformed_id_is_refused(field: str, value: Any) -> None:
    with pytest.raises(CorruptObject, match=f"commit {'c' * 32} is malformed"):
        objects.decode_commit("c" * 32, _commit_doc(**{field: value}))


def test_commit_with_a_malformed_name_kind_tag_or_text_is_refused() -> None:
    # A commit's kind, name and tags become lineage index nodes (whose own decoder refuses such
    # values, so one such commit makes the index unreadable), and its message is split into lines there.
    accepted = []
    for field, value in [("name", "../x"), ("name", ""), ("kind", "tool"), ("kind", 5), ("tags", ["../t"]),
                         ("tags", "v1"), ("message", None), ("author", 3), ("time", [])]:
        if decoded(objects.decode_commit, "c" * 32, _commit_doc(**{field: value})) is not None:
            accepted.append((field, value))
    assert not accepted, f"accepted: {accepted}"


@SETTINGS
@given(st.lists(ids, max_size=8))
def test_chunklist_round_trips(chunk_ids: list[str]) -> None:
    data = objects.encode_chunklist(b"".join(bytes.fromhex(c) for c in chunk_ids))
    assert objects.decode_chunklist("l" * 32, data) == chunk_ids


@SETTINGS
@given(st.binary(max_size=200))
def test_chunklist_of_random_bytes(data: bytes) -> None:
    got = decoded(objects.decode_chunklist, "l" * 32, data)
    if got is None:
        assert len(data) % 16 != 0
    else:
        assert all(is_id(c) for c in got)
        assert b"".join(bytes.fromhex(c) for c in got) == data


# -- store config ----------------------------------------------------------------------------


@SETTINGS
@given(store_configs())
def test_store_config_round_trips(config: StoreConfig) -> None:
    got = StoreConfig.decode(config.encode(), "file:///store")
    assert got == config
    assert_valid_config(got)


@SETTINGS
@given(st.binary(max_size=300))
def test_store_config_of_random_bytes(data: bytes) -> None:
    got = decoded(StoreConfig.decode, data, "file:///store")
    if got is not None:
        assert_valid_config(got)


@st.composite
def damaged_configs(draw: st.DrawFn) -> bytes:
    data = draw(store_configs()).encode()
    if draw(st.booleans()):
        return mutate_bytes(draw, data)
    return dump(mutate_doc(draw, json.loads(data)))


@SETTINGS
@given(damaged_configs())
def test_damaged_store_config_is_refused_or_still_valid(data: bytes) -> None:
    got = decoded(StoreConfig.decode, data, "file:///store")
    if got is not None:
        assert_valid_config(got)


def test_store_config_errors_name_the_store() -> None:
    doc = json.loads(StoreConfig().encode())
    doc["format"] = 2
    with pytest.raises(StoreFormatError, match="store s3://bucket/x has format 2") as exc:
        StoreConfig.decode(dump(doc), "s3://bucket/x")
    assert exc.value.hint == "upgrade datactl"
    with pytest.raises(StoreFormatError, match="s3://bucket/x"):
        StoreConfig.decode(b"not json", "s3://bucket/x")


# -- gc records and the store lock ----------------------------------------------------------

runs = st.from_regex(r"\A[0-9A-Za-z_:-][0-9A-Za-z_.:-]{0,79}\Z")  # not starting with ".": a run names a key
condemned = st.tuples(runs, st.dictionaries(ids, st.integers(0, 2**40), max_size=4))


def assert_valid_condemned(got: tuple[str, dict[str, int]]) -> None:
    run, packs = got
    assert isinstance(run, str) and RUN.fullmatch(run) is not None, repr(run)
    assert isinstance(packs, dict) and all(is_id(p) and is_count(n) for p, n in packs.items())


@SETTINGS
@given(condemned)
def test_condemned_record_round_trips(rec: tuple[str, dict[str, int]]) -> None:
    run, packs = rec
    got = gcrecords.decode_condemned("gc/condemned/x", gcrecords.encode_condemned(run, packs, "2024-01-01T00:00:00Z"))
    assert got == (run, packs)


@st.composite
def damaged_condemned(draw: st.DrawFn) -> bytes:
    run, packs = draw(condemned)
    data = gcrecords.encode_condemned(run, packs, "2024-01-01T00:00:00Z")
    choice = draw(st.sampled_from(["random", "bytes", "doc"]))
    if choice == "random":
        return draw(st.binary(max_size=200))
    if choice == "bytes":
        return mutate_bytes(draw, data)
    return dump(mutate_doc(draw, json.loads(data)))


@SETTINGS
@given(damaged_condemned())
def test_damaged_condemned_record_is_refused_or_still_valid(data: bytes) -> None:
    got = decoded(gcrecords.decode_condemned, "gc/condemned/x", data)
    if got is not None:
        assert_valid_condemned(got)


@pytest.mark.parametrize("run", ["../x", "a/b", "", "x" * 81, 5])
def test_condemned_record_with_a_malformed_run_is_refused(run: Any) -> None:
    # The run names the record's key (CondemnRecord.key), which gc deletes.
    data = gcrecords.encode_condemned(run, {"a" * 32: 1}, "2024-01-01T00:00:00Z")
    with pytest.raises(CorruptObject, match="gc record gc/condemned/x is malformed"):
        gcrecords.decode_condemned("gc/condemned/x", data)


@SETTINGS
@given(st.lists(ids, max_size=5))
def test_pruned_record_round_trips(commit_ids: list[str]) -> None:
    assert gcrecords.decode_pruned("gc/pruned/x", gcrecords.encode_pruned(commit_ids, "gc", "2024-01-01T00:00:00Z")) == set(commit_ids)


@st.composite
def damaged_pruned(draw: st.DrawFn) -> bytes:
    data = gcrecords.encode_pruned(draw(st.lists(ids, max_size=4)), "gc", "2024-01-01T00:00:00Z")
    choice = draw(st.sampled_from(["random", "bytes", "doc"]))
    if choice == "random":
        return draw(st.binary(max_size=200))
    if choice == "bytes":
        return mutate_bytes(draw, data)
    return dump(mutate_doc(draw, json.loads(data)))


@SETTINGS
@given(damaged_pruned())
def test_damaged_pruned_record_is_refused_or_still_valid(data: bytes) -> None:
    got = decoded(gcrecords.decode_pruned, "gc/pruned/x", data)
    if got is not None:
        assert isinstance(got, set) and all(is_id(c) for c in got)


lock_fields = st.fixed_dictionaries(
    {"id": st.uuids().map(lambda u: u.hex), "command": st.sampled_from(["gc", "fsck --repair"]), "host": texts,
     "pid": st.integers(1, 2**22), "process_start": st.none() | st.text(alphabet="0123456789", max_size=10),
     "time": st.just("2024-01-01T00:00:00Z"), "seq": st.integers(1, 10**6)}
)


@SETTINGS
@given(lock_fields)
def test_lock_round_trips(fields: dict[str, Any]) -> None:
    assert gcrecords.decode_lock(gcrecords.encode_lock(fields)) == {"format": 1, **fields}


@st.composite
def damaged_locks(draw: st.DrawFn) -> bytes:
    data = gcrecords.encode_lock(draw(lock_fields))
    choice = draw(st.sampled_from(["random", "bytes", "doc"]))
    if choice == "random":
        return draw(st.binary(max_size=200))
    if choice == "bytes":
        return mutate_bytes(draw, data)
    return dump(mutate_doc(draw, json.loads(data)))


@SETTINGS
@given(damaged_locks())
def test_damaged_lock_reads_as_a_dict(data: bytes) -> None:
    # The lock holds whatever its content; unreadable content reads as {} and never raises.
    got = gcrecords.decode_lock(data)
    assert isinstance(got, dict)


# -- lineage segments and HEAD --------------------------------------------------------------


def assert_valid_segment(got: tuple[list[lineage.Node], list[lineage.TagRecord]]) -> None:
    found_nodes, found_tags = got
    for n in found_nodes:
        assert_valid_node(n)
    for t in found_tags:
        assert is_id(t.commit) and is_name(t.name) and is_name(t.tag), t


@SETTINGS
@given(segments)
def test_segment_round_trips(seg: tuple[list[lineage.Node], list[lineage.TagRecord]]) -> None:
    seg_nodes, seg_tags = seg
    data = lineage.encode_segment(seg_nodes, seg_tags)
    got_nodes, got_tags = lineage.decode_segment(object_id(data), data)
    assert got_nodes == sorted(seg_nodes, key=lambda n: n.id)
    assert sorted((t.commit, t.name, t.tag) for t in got_tags) == sorted((t.commit, t.name, t.tag) for t in seg_tags)
    assert_valid_segment((got_nodes, got_tags))


@st.composite
def damaged_segments(draw: st.DrawFn) -> bytes:
    data = lineage.encode_segment(*draw(segments))
    choice = draw(st.sampled_from(["random", "bytes", "doc"]))
    if choice == "random":
        return draw(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"\x28\xb5\x2f\xfd" + b)))
    if choice == "bytes":
        return mutate_bytes(draw, data)
    doc = json.loads(zstandard.ZstdDecompressor().decompress(data))
    return zstd(dump(mutate_doc(draw, doc)))


@SETTINGS
@given(damaged_segments())
def test_damaged_segment_is_refused_or_still_valid(data: bytes) -> None:
    # Named by its own hash, so the damage gets past the hash check and reaches the decoder.
    got = decoded(lineage.decode_segment, object_id(data), data)
    if got is not None:
        assert_valid_segment(got)


def test_segment_that_does_not_hash_to_its_id_is_refused() -> None:
    data = lineage.encode_segment([], [])
    with pytest.raises(CorruptObject, match="do not hash to its id"):
        lineage.decode_segment("0" * 32, data)


@pytest.mark.parametrize("name", ["../x", "x.lock", ".hidden", "", 5])
def test_segment_with_a_malformed_name_is_refused(name: Any) -> None:
    row = lineage.Node("a" * 32, "dataset", "ds", "2024-01-01T00:00:00Z").to_row()
    row[2] = name
    data = zstd(dump({"format": 1, "nodes": [row], "tags": []}))
    with pytest.raises(CorruptObject, match="is unreadable"):
        lineage.decode_segment(object_id(data), data)


@SETTINGS
@given(head_lists)
def test_lineage_head_round_trips(segs: list[tuple[str, int]]) -> None:
    assert lineage.decode_head(lineage.encode_head(segs), "file:///s") == segs


@st.composite
def damaged_heads(draw: st.DrawFn) -> bytes:
    data = lineage.encode_head(draw(head_lists))
    choice = draw(st.sampled_from(["random", "bytes", "doc"]))
    if choice == "random":
        return draw(st.binary(max_size=200))
    if choice == "bytes":
        return mutate_bytes(draw, data)
    return dump(mutate_doc(draw, json.loads(data)))


@SETTINGS
@given(damaged_heads())
def test_damaged_lineage_head_is_refused_or_still_valid(data: bytes) -> None:
    got = decoded(lineage.decode_head, data, "file:///s")
    if got is not None:
        assert isinstance(got, list) and all(is_id(s) and is_count(n) for s, n in got)


def test_lineage_head_error_names_the_store() -> None:
    with pytest.raises(StoreFormatError, match="lineage/HEAD in s3://b/p is damaged"):
        lineage.decode_head(b"{}", "s3://b/p")


# -- deeply nested JSON ---------------------------------------------------------------------

NESTED = b"[" * 100_000 + b"]" * 100_000

JSON_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "tree": lambda b: objects.decode_tree("t" * 32, b),
    "commit": lambda b: objects.decode_commit("c" * 32, b),
    "store config": lambda b: StoreConfig.decode(b, "file:///s"),
    "condemned": lambda b: gcrecords.decode_condemned("gc/condemned/x", b),
    "pruned": lambda b: gcrecords.decode_pruned("gc/pruned/x", b),
    "lineage head": lambda b: lineage.decode_head(b, "file:///s"),
    "index file": lambda b: indexfile.decode_index_file("i" * 32, zstd(b)),
    "segment": lambda b: lineage.decode_segment(object_id(zstd(b)), zstd(b)),
}


def test_deeply_nested_json_is_refused() -> None:
    # Hostile bytes: json.loads raises RecursionError on nesting this deep.
    crashed = []
    for what, decode in sorted(JSON_DECODERS.items()):
        try:
            decoded(decode, NESTED)
        except Exception as exc:  # noqa: BLE001 - which decoders crash, and how
            crashed.append((what, type(exc).__name__))
    assert not crashed, f"crashed: {crashed}"


def test_deeply_nested_lock_reads_as_empty() -> None:
    assert gcrecords.decode_lock(NESTED) == {}


# -- one slip shared by several formats: '$' also matches before a trailing newline ----------

NL_ID = "0" * 31 + "\n"  # 32 characters


def test_ids_names_and_runs_with_a_trailing_newline_are_refused() -> None:
    node = lineage.Node("a" * 32, "dataset", "ds", "2024-01-01T00:00:00Z").to_row()
    bad_node = [*node[:2], "ds\n", *node[3:]]
    seg = zstd(dump({"format": 1, "nodes": [bad_node], "tags": []}))
    bad_id_seg = zstd(dump({"format": 1, "nodes": [[NL_ID, *node[1:]]], "tags": []}))
    e = PackEntry("a" * 32, ObjectType.CHUNK, compression.RAW, 16, 1, 1)
    listing = json.loads(zstandard.ZstdDecompressor().decompress(indexfile.encode_index_file({"b" * 32: (100, [e])})))
    listing["packs"] = {NL_ID: listing["packs"]["b" * 32]}
    cases: dict[str, Callable[[], Any]] = {
        "tree chunk id": lambda: objects.decode_tree("t" * 32, _tree_doc(chunks=[NL_ID])),
        "tree sub-tree id": lambda: objects.decode_tree("t" * 32, _tree_doc(kind=DIR, digest=NL_ID)),
        "commit tree id": lambda: objects.decode_commit("c" * 32, _commit_doc(tree=NL_ID)),
        "commit parent id": lambda: objects.decode_commit("c" * 32, _commit_doc(parents=[NL_ID])),
        "index file pack id": lambda: indexfile.decode_index_file("i" * 32, zstd(dump(listing))),
        "condemned pack id": lambda: gcrecords.decode_condemned("k", gcrecords.encode_condemned("run", {NL_ID: 1}, "t")),
        "condemned run": lambda: gcrecords.decode_condemned("k", gcrecords.encode_condemned("run\n", {}, "t")),
        "pruned commit id": lambda: gcrecords.decode_pruned("k", gcrecords.encode_pruned([NL_ID], "gc", "t")),
        "lineage head segment id": lambda: lineage.decode_head(lineage.encode_head([(NL_ID, 1)]), "u"),
        "lineage node id": lambda: lineage.decode_segment(object_id(bad_id_seg), bad_id_seg),
        "lineage node name": lambda: lineage.decode_segment(object_id(seg), seg),
    }
    accepted = [what for what, decode in cases.items() if decoded(decode) is not None]
    assert not accepted, f"accepted: {accepted}"


# -- zstd frames that claim an enormous size ------------------------------------------------


def _frame_claiming(size: int) -> bytes:
    """A zstd frame header declaring ``size`` bytes of content, followed by one empty raw block."""
    return b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", size) + b"\x01\x00\x00"


def test_zstd_frame_claiming_an_enormous_size_is_refused() -> None:
    # The decoders cap what they decompress (1 GiB for index files, 2 GiB for segments); a
    # 16-byte blob that claims 2**56 bytes must be refused, not allocated.
    frame = _frame_claiming(2**56)
    crashed = []
    for what, decode in [
        ("index file", lambda: indexfile.decode_index_file("i" * 32, frame)),
        ("segment", lambda: lineage.decode_segment(object_id(frame), frame)),
    ]:
        try:
            got = decoded(decode)
        except Exception as exc:  # noqa: BLE001 - which decoders crash, and how
            crashed.append((what, type(exc).__name__))
        else:
            assert got is None, f"the {what} decoded to {got!r}"
    assert not crashed, f"crashed: {crashed}"


# -- the listing (stores read over HTTP) -------------------------------------------------------------

LISTED_KEY = re.compile(r"(index|refs|gc/condemned|gc/pruned)/[^/\\\0]+(/[^/\\\0]+)*")
listed_keys = st.builds(
    lambda prefix, parts: prefix + "/".join(parts),
    st.sampled_from(["index/", "refs/", "gc/condemned/", "gc/pruned/"]),
    st.lists(st.sampled_from(["a", "b0", "x.y", "_z", "ds", "v1.2", "0f3a", "-"]), min_size=1, max_size=3),
)


@settings(SETTINGS, max_examples=60)
@given(st.dictionaries(listed_keys, st.integers(0, 2**40), max_size=12))
def test_listing_round_trips(entries: dict[str, int]) -> None:
    data = listing.encode_listing(entries)
    assert listing.decode_listing(data, "store") == entries
    assert listing.encode_listing(dict(reversed(list(entries.items())))) == data, "the same entries give the same bytes"


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"datactl-listing 1\n" + b)))
def test_listing_of_random_bytes_is_refused_or_valid(data: bytes) -> None:
    try:
        entries = listing.decode_listing(data, "store")
    except StoreFormatError:
        return
    for key, size in entries.items():
        assert LISTED_KEY.fullmatch(key) and ".." not in key.split("/") and "." not in key.split("/"), key
        assert isinstance(size, int) and size >= 0


@pytest.mark.parametrize(
    "text",
    [
        "datactl-listing 2\n",
        "datactl-listing 1\nindex/a 1",  # cut
        "datactl-listing 1\nindex/../../etc/passwd 1\n",
        "datactl-listing 1\n/index/a 1\n",
        "datactl-listing 1\npacks/aa/b 1\n",  # outside the listed prefixes
        "datactl-listing 1\nindex/a -1\n",
        "datactl-listing 1\nindex/a 99999999999999999999\n",
        "datactl-listing 1\nindex/b 1\nindex/a 1\n",  # out of order
        "datactl-listing 1\nindex/a 1\nindex/a 1\n",  # repeated
        "datactl-listing 1\nrefs/tags/x\\y 1\n",
    ],
)
def test_damaged_listing_is_refused_naming_the_store(text: str) -> None:
    with pytest.raises(StoreFormatError, match="the listing of https://host/store is damaged"):
        listing.decode_listing(text.encode(), "https://host/store")
