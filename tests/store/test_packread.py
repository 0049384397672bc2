"""Reading objects out of packs: grouping into ranged reads, verification, and the errors a user sees."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datactl.core import compression
from datactl.core.errors import CorruptObject, ObjectMissing
from datactl.core.ids import object_id
from datactl.format.layout import pack_key
from datactl.format.pack import (
    ENTRY_SIZE,
    HEADER,
    TRAILER_SIZE,
    ObjectType,
    PackEntry,
    PackWriter,
)
from datactl.store.packread import (
    MAX_SPAN,
    META_GAP,
    PackRange,
    PackReader,
    coalesce,
    read_footer,
)
from storage_backends import LocalBackend

LABEL = "the test store"


class Sealed:
    """A pack stored in a LocalBackend, as Repository._seal stores one."""

    def __init__(self, backend: LocalBackend, tmp_dir: str, items: list[tuple[ObjectType, bytes]]) -> None:
        w = PackWriter(tmp_dir)
        self.raw: dict[str, bytes] = {}
        for typ, raw in items:
            codec, stored = compression.compress(raw, 3)
            oid = object_id(raw)
            self.raw[oid] = raw
            w.add(oid, typ, codec, stored, len(raw))
        self.id, path, self.entries = w.finish()
        self.size = os.path.getsize(path)
        backend.move_file_in(pack_key(self.id), path)
        self.path = os.path.join(backend.root, *pack_key(self.id).split("/"))

    def entry(self, i: int) -> PackEntry:
        return self.entries[i]

    def locations(self) -> list[tuple[str, PackEntry]]:
        return [(self.id, e) for e in self.entries]


def incompressible(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def compressible(n: int, seed: int) -> bytes:
    return (f"row {seed}," * n).encode()[:n]


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(str(tmp_path / "store"))


@pytest.fixture
def tmp_dir(tmp_path: Path) -> str:
    return str(tmp_path / "store" / "tmp")


def mixed_items(seed: int = 0) -> list[tuple[ObjectType, bytes]]:
    return [
        (ObjectType.CHUNK, incompressible(3000, seed)),
        (ObjectType.TREE, compressible(2000, seed + 1)),
        (ObjectType.CHUNK, compressible(5000, seed + 2)),
        (ObjectType.COMMIT, incompressible(300, seed + 3)),
        (ObjectType.CHUNKLIST, incompressible(64, seed + 4)),
    ]


def flip_byte(path: str, offset: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


# -- coalesce ----------------------------------------------------------------------------------


def E(oid: str, offset: int, length: int, typ: ObjectType = ObjectType.CHUNK) -> PackEntry:
    return PackEntry(oid * 32 if len(oid) == 1 else oid, typ, compression.RAW, offset, length, length)


def test_adjacent_objects_are_one_read() -> None:
    a, b = E("a", 16, 10), E("b", 26, 10)
    assert coalesce([("p" * 32, a), ("p" * 32, b)]) == [PackRange("p" * 32, 16, 36, (a, b))]


def test_a_gap_wider_than_max_gap_splits_the_read() -> None:
    a, b = E("a", 16, 10), E("b", 31, 10)  # 5 bytes between them
    pid = "p" * 32
    assert coalesce([(pid, a), (pid, b)], max_gap=4) == [PackRange(pid, 16, 26, (a,)), PackRange(pid, 31, 41, (b,))]
    assert coalesce([(pid, a), (pid, b)], max_gap=5) == [PackRange(pid, 16, 41, (a, b))]


def test_a_read_stops_before_exceeding_max_span() -> None:
    pid = "p" * 32
    a, b, c = E("a", 16, 100), E("b", 116, 100), E("c", 216, 100)
    assert coalesce([(pid, a), (pid, b), (pid, c)], max_span=200) == [
        PackRange(pid, 16, 216, (a, b)),
        PackRange(pid, 216, 316, (c,)),
    ]
    assert coalesce([(pid, a), (pid, b), (pid, c)], max_span=300) == [PackRange(pid, 16, 316, (a, b, c))]


def test_an_object_larger_than_max_span_is_read_alone() -> None:
    pid = "p" * 32
    a, big, c = E("a", 16, 10), E("b", 26, 1000), E("c", 1026, 10)
    assert coalesce([(pid, a), (pid, big), (pid, c)], max_span=100) == [
        PackRange(pid, 16, 26, (a,)),
        PackRange(pid, 26, 1026, (big,)),
        PackRange(pid, 1026, 1036, (c,)),
    ]


def test_each_object_is_read_once_in_pack_and_offset_order() -> None:
    p, q = "1" * 32, "2" * 32
    a, b, c, d = E("a", 16, 10), E("b", 500, 10), E("c", 16, 10), E("d", 40, 10)
    got = coalesce([(q, d), (p, b), (q, c), (p, a), (p, b), (q, d), (p, a)], max_gap=100)
    assert got == [PackRange(p, 16, 26, (a,)), PackRange(p, 500, 510, (b,)), PackRange(q, 16, 50, (c, d))]


def test_a_range_never_spans_more_than_asked_even_past_an_object_inside_another() -> None:
    pid = "1" * 32
    long, empty = E("a", 16, 2), E("b", 16, 0)  # an empty object at the same offset: its end is not the range's
    assert coalesce([(pid, long), (pid, empty)], max_span=1) == [PackRange(pid, 16, 18, (long,)), PackRange(pid, 16, 16, (empty,))]


def test_nothing_to_read_is_no_range() -> None:
    assert coalesce([]) == []


@st.composite
def pack_layouts(draw: st.DrawFn) -> list[tuple[str, PackEntry]]:
    out = []
    for p in draw(st.lists(st.sampled_from(["1" * 32, "2" * 32, "3" * 32]), min_size=1, max_size=3, unique=True)):
        offset = len(HEADER)
        for i in range(draw(st.integers(1, 12))):
            offset += draw(st.integers(0, 300))
            length = draw(st.integers(0, 400))
            out.append((p, PackEntry(f"{p[0]}{i:031x}", ObjectType.CHUNK, compression.RAW, offset, length, length)))
            offset += length
    picked = draw(st.lists(st.sampled_from(out), max_size=40))
    return picked


@settings(max_examples=300, deadline=None)
@given(pack_layouts(), st.integers(0, 500), st.integers(1, 1500))
def test_coalesce_properties(locations: list[tuple[str, PackEntry]], max_gap: int, max_span: int) -> None:
    ranges = coalesce(locations, max_gap, max_span)
    listed = [(r.pack, e) for r in ranges for e in r.entries]
    assert sorted(listed, key=lambda x: (x[0], x[1].id)) == sorted(set(locations), key=lambda x: (x[0], x[1].id))
    assert [(r.pack, r.start) for r in ranges] == sorted((r.pack, r.start) for r in ranges)
    for r in ranges:
        offsets = [e.offset for e in r.entries]
        assert offsets == sorted(offsets)
        assert r.start == r.entries[0].offset
        assert r.end == max(e.offset + e.stored_len for e in r.entries)
        assert len(r.entries) == 1 or r.end - r.start <= max_span
        ends = [r.entries[0].offset + r.entries[0].stored_len]
        for e in r.entries[1:]:
            assert e.offset - max(ends) <= max_gap
            ends.append(e.offset + e.stored_len)
    for prev, nxt in itertools.pairwise(ranges):
        if prev.pack == nxt.pack:
            # Split for a reason: the gap was too wide, or joining would have exceeded the span.
            first = nxt.entries[0]
            assert first.offset - prev.end > max_gap or first.offset + first.stored_len - prev.start > max_span


# -- read_range: verification and errors -----------------------------------------------------


@pytest.mark.parametrize("which", [0, 1], ids=["raw object", "zstd object"])
def test_a_flipped_byte_names_the_object_and_the_pack_once(backend: LocalBackend, tmp_dir: str, which: int) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    damaged = pack.entry(which)
    assert damaged.codec == (compression.RAW if which == 0 else compression.ZSTD)
    flip_byte(pack.path, damaged.offset + damaged.stored_len // 2)
    reader = PackReader(backend, LABEL)
    with pytest.raises(CorruptObject) as exc:
        list(reader.read_located(pack.locations()))
    text = str(exc.value)
    assert damaged.id in text
    assert text.count(f"pack {pack.id} on {LABEL}") == 1
    assert "pack pack" not in text
    # The other objects of the pack still read (each object is verified on its own).
    others = [(pack.id, e) for e in pack.entries if e.id != damaged.id]
    assert {o.entry.id: o.raw for o in reader.read_located(others)} == {e.id: pack.raw[e.id] for _, e in others}


def test_a_flipped_byte_in_a_coalesced_read_names_the_damaged_object(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    damaged = pack.entry(3)
    flip_byte(pack.path, damaged.offset)
    (rng,) = coalesce(pack.locations())
    assert len(rng.entries) == 5
    with pytest.raises(CorruptObject, match=f"object {damaged.id} in pack {pack.id} on {LABEL} is corrupt"):
        PackReader(backend, LABEL).read_range(rng)


def test_the_label_defaults_to_the_backend_url(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    flip_byte(pack.path, pack.entry(0).offset)
    with pytest.raises(CorruptObject) as exc:
        list(PackReader(backend).read_located(pack.locations()[:1]))
    assert str(exc.value).count(f"pack {pack.id} on {backend.url}") == 1
    assert "pack pack" not in str(exc.value)


def test_a_missing_pack_raises_object_missing(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    os.unlink(pack.path)
    with pytest.raises(ObjectMissing) as exc:
        list(PackReader(backend, LABEL).read_located(pack.locations()[1:2]))
    text = str(exc.value)
    assert pack.entry(1).id in text
    assert text.count(f"pack {pack.id} on {LABEL}") == 1 and "does not exist" in text
    assert "pack pack" not in text


def test_a_truncated_pack_raises_corrupt_object(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    last = pack.entry(4)
    os.chmod(pack.path, 0o644)
    os.truncate(pack.path, last.offset + last.stored_len // 2)
    reader = PackReader(backend, LABEL)
    with pytest.raises(CorruptObject) as exc:
        list(reader.read_located(pack.locations()[4:]))
    text = str(exc.value)
    assert last.id in text and "truncated" in text
    assert text.count(f"pack {pack.id} on {LABEL}") == 1 and "pack pack" not in text
    # Objects before the cut still read.
    assert [o.raw for o in reader.read_located(pack.locations()[:2])] == [pack.raw[pack.entry(0).id], pack.raw[pack.entry(1).id]]
    # The footer is gone.
    with pytest.raises(CorruptObject, match=f"pack {pack.id} is truncated"):
        reader.read_footer(pack.id, pack.size)
    with pytest.raises(CorruptObject, match=f"pack {pack.id}"):
        reader.read_footer(pack.id, os.path.getsize(pack.path))


def test_a_pack_smaller_than_a_trailer_is_corrupt(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    with pytest.raises(CorruptObject, match="truncated"):
        PackReader(backend, LABEL).read_footer(pack.id, TRAILER_SIZE - 1)


def test_a_damaged_footer_is_corrupt(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    footer_offset = pack.size - TRAILER_SIZE - len(pack.entries) * ENTRY_SIZE
    flip_byte(pack.path, footer_offset + ENTRY_SIZE + 20)  # inside the second entry's offset field
    with pytest.raises(CorruptObject, match=f"pack {pack.id} has a corrupt footer"):
        read_footer(backend, pack.id, pack.size)


# -- read_located, read_footer, stats --------------------------------------------------------


def test_read_located_returns_every_object_once_with_its_bytes(backend: LocalBackend, tmp_dir: str) -> None:
    packs = [Sealed(backend, tmp_dir, mixed_items(seed)) for seed in (0, 10, 20)]
    raw = {oid: data for p in packs for oid, data in p.raw.items()}
    locations = [loc for p in packs for loc in p.locations()]
    wanted = locations[::2] + locations[1::3] + locations[::2]  # repeats, out of order
    random.Random(5).shuffle(wanted)
    for max_gap in (0, 100, META_GAP):
        with PackReader(backend, LABEL, jobs=2) as reader:
            got = list(reader.read_located(wanted, max_gap))
        ids = [o.entry.id for o in got]
        assert sorted(ids) == sorted({e.id for _, e in wanted})
        for o in got:
            assert o.raw == raw[o.entry.id]
            assert compression.decompress(o.entry.codec, o.stored, o.entry.raw_len) == o.raw
        # Pack order: by pack id, then offset.
        home = {e.id: (pid, e.offset) for pid, e in locations}
        assert [home[i] for i in ids] == sorted(home[i] for i in ids)


def test_many_ranges_are_read_ahead_in_order(backend: LocalBackend, tmp_dir: str) -> None:
    items = [(ObjectType.CHUNK, incompressible(50 + i, i)) for i in range(40)]
    pack = Sealed(backend, tmp_dir, items)
    every_other = pack.locations()[::2]  # 20 ranges at max_gap 0, more than 2 x jobs
    with PackReader(backend, LABEL, jobs=2) as reader:
        got = list(reader.read_located(every_other))
        assert [o.entry.id for o in got] == [e.id for _, e in every_other]
        assert [o.raw for o in got] == [pack.raw[e.id] for _, e in every_other]
        assert reader.stats.requests == 20
        assert reader.stats.objects == 20


def test_read_footer_lists_what_the_writer_wrote(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    reader = PackReader(backend, LABEL)
    assert reader.read_footer(pack.id, pack.size) == pack.entries
    assert read_footer(backend, pack.id, pack.size) == pack.entries
    footer_len = len(pack.entries) * ENTRY_SIZE
    assert reader.stats.requests == 2
    assert reader.stats.bytes_read == reader.stats.metadata_bytes == TRAILER_SIZE + footer_len
    assert reader.stats.data_bytes == 0


def test_an_empty_pack_has_an_empty_footer(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, [])
    assert pack.size == len(HEADER) + TRAILER_SIZE
    assert read_footer(backend, pack.id, pack.size) == []


def test_stats_count_requests_bytes_and_kinds(backend: LocalBackend, tmp_dir: str) -> None:
    items = [
        (ObjectType.TREE, incompressible(100, 1)),
        (ObjectType.CHUNK, incompressible(1000, 2)),
        (ObjectType.COMMIT, incompressible(50, 3)),
        (ObjectType.TREE, incompressible(70, 4)),
    ]
    pack = Sealed(backend, tmp_dir, items)
    tree, chunk, commit, tree2 = pack.entries
    reader = PackReader(backend, LABEL)
    # One read of tree + chunk: the chunk's bytes are data, the tree's metadata.
    reader.read_range(PackRange(pack.id, tree.offset, chunk.offset + chunk.stored_len, (tree, chunk)))
    assert reader.stats.to_dict() == {
        "requests": 1, "bytes_read": 1100, "metadata_bytes": 100, "data_bytes": 1000, "objects": 2, "files_opened": 0,
    }
    # One read of commit + tree2 skipping nothing, then a tree with the chunk read between (as a gap).
    reader.read_range(PackRange(pack.id, commit.offset, tree2.offset + tree2.stored_len, (commit, tree2)))
    assert reader.stats.requests == 2 and reader.stats.metadata_bytes == 220 and reader.stats.objects == 4
    reader.read_range(PackRange(pack.id, tree.offset, commit.offset + commit.stored_len, (tree, commit)))
    assert reader.stats.requests == 3
    assert reader.stats.bytes_read == 1100 + 120 + 1150
    assert reader.stats.metadata_bytes == 220 + 1150  # the skipped chunk counts with the metadata it was read for
    assert reader.stats.data_bytes == 1000
    assert reader.stats.objects == 6


def test_stats_count_one_request_per_coalesced_range(backend: LocalBackend, tmp_dir: str) -> None:
    pack = Sealed(backend, tmp_dir, mixed_items())
    wanted = [pack.locations()[i] for i in (0, 2, 4)]
    for max_gap, requests in ((0, 3), (META_GAP, 1)):
        reader = PackReader(backend, LABEL)
        list(reader.read_located(wanted, max_gap))
        assert reader.stats.requests == requests == len(coalesce(wanted, max_gap))
        assert reader.stats.objects == 3
        expected_bytes = sum(r.end - r.start for r in coalesce(wanted, max_gap))
        assert reader.stats.bytes_read == expected_bytes
        assert reader.stats.data_bytes + reader.stats.metadata_bytes == expected_bytes


@pytest.fixture(scope="module")
def shared_packs(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalBackend, list[Sealed]]:
    root = tmp_path_factory.mktemp("packs")
    backend = LocalBackend(str(root / "store"))
    packs = [Sealed(backend, str(root / "tmp"), mixed_items(seed) + mixed_items(seed + 100)) for seed in (0, 50)]
    return backend, packs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), max_gap=st.sampled_from([0, 1, 3000, META_GAP]), jobs=st.integers(1, 3))
def test_read_located_property(shared_packs: tuple[LocalBackend, list[Sealed]], data: st.DataObject, max_gap: int, jobs: int) -> None:
    backend, packs = shared_packs
    all_locations = [loc for p in packs for loc in p.locations()]
    wanted = data.draw(st.lists(st.sampled_from(all_locations), max_size=30))
    raw = {oid: b for p in packs for oid, b in p.raw.items()}
    with PackReader(backend, LABEL, jobs=jobs) as reader:
        got = list(reader.read_located(wanted, max_gap))
        assert reader.stats.requests == len(coalesce(wanted, max_gap))
    assert sorted(o.entry.id for o in got) == sorted({e.id for _, e in wanted})
    assert all(o.raw == raw[o.entry.id] for o in got)


def test_max_span_default_is_a_bound_on_reads() -> None:
    pid = "p" * 32
    entries = [E(f"{i:032x}", 16 + i * (1 << 20), 1 << 20) for i in range(20)]
    ranges = coalesce([(pid, e) for e in entries], max_gap=META_GAP)
    assert all(r.end - r.start <= MAX_SPAN for r in ranges)
    assert sum(len(r.entries) for r in ranges) == 20 and len(ranges) == 3
