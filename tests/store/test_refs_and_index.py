"""Refs (moved by compare-and-swap), the object index, and gc's records in a store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datactl.core.errors import RefConflict, StoreFormatError
from datactl.format.layout import (
    CONDEMNED_PREFIX,
    PRUNED_PREFIX,
    head_ref,
    ref_key,
    tag_ref,
)
from datactl.format.pack import ObjectType, PackEntry
from datactl.store import records
from datactl.store.index import ObjectIndex, ObjectLocation
from datactl.store.refs import DatasetInfo, RefStore, RefValue
from storage_backends import LocalBackend

C1, C2, C3 = "1" * 32, "2" * 32, "3" * 32


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(str(tmp_path / "store"))


@pytest.fixture
def refs(backend: LocalBackend) -> RefStore:
    return RefStore(backend)


# -- RefStore --------------------------------------------------------------------------------------


def test_a_ref_is_created_moved_and_deleted_by_compare_and_swap(refs: RefStore, backend: LocalBackend) -> None:
    ref = head_ref("dataset", "ds")
    assert refs.get(ref) is None
    refs.update(ref, C1, None)
    assert refs.get(ref) == C1
    assert backend.get(ref_key(ref)) == f"{C1}\n".encode()
    refs.update(ref, C2, C1)
    assert refs.get(ref) == C2
    refs.update(ref, None, C2)
    assert refs.get(ref) is None
    assert not backend.exists(ref_key(ref))


@pytest.mark.parametrize("expected", [None, C1, C3])
def test_a_wrong_expected_value_raises_ref_conflict_and_changes_nothing(refs: RefStore, expected: str | None) -> None:
    ref = head_ref("dataset", "ds")
    refs.update(ref, C2, None)
    with pytest.raises(RefConflict) as exc:
        refs.update(ref, C3, expected)
    assert refs.get(ref) == C2
    assert f"{ref} moved on" in str(exc.value) and C2[:12] in str(exc.value)
    with pytest.raises(RefConflict):
        refs.update(ref, None, expected)  # nor is it deleted
    assert refs.get(ref) == C2


def test_expecting_a_ref_that_does_not_exist_is_a_conflict(refs: RefStore) -> None:
    ref = tag_ref("ds", "v1")
    with pytest.raises(RefConflict, match="expected 111111111111, found nothing"):
        refs.update(ref, C2, C1)
    with pytest.raises(RefConflict):
        refs.update(ref, None, C1)
    assert refs.get(ref) is None


@pytest.mark.parametrize("blob", [b"garbage\n", b"", b"1" * 31 + b"\n", b"A" * 32 + b"\n", C1.encode() + b"\nmore", b"\xff" * 32])
def test_a_damaged_ref_raises_store_format_error_naming_the_ref(refs: RefStore, backend: LocalBackend, blob: bytes) -> None:
    ref = head_ref("dataset", "broken")
    backend.put_bytes(ref_key(ref), blob)
    with pytest.raises(StoreFormatError) as exc:
        refs.get(ref)
    assert f"ref {ref} in {backend.url} is damaged" in str(exc.value)
    with pytest.raises(StoreFormatError, match=ref):
        refs.update(ref, C1, None)
    with pytest.raises(StoreFormatError, match=ref):
        refs.datasets()


def test_a_ref_blob_may_end_in_any_whitespace(refs: RefStore, backend: LocalBackend) -> None:
    ref = head_ref("model", "m")
    backend.put_bytes(ref_key(ref), f"  {C1}\r\n".encode())
    assert refs.get(ref) == C1
    refs.update(ref, C2, C1)
    assert refs.get(ref) == C2


def test_datasets_lists_datasets_and_models_with_heads_and_tags(refs: RefStore, backend: LocalBackend) -> None:
    refs.update(head_ref("dataset", "ds"), C1, None)
    refs.update(head_ref("dataset", "b"), C2, None)
    refs.update(head_ref("model", "m"), C3, None)
    refs.update(tag_ref("ds", "v1"), C1, None)
    refs.update(tag_ref("ds", "v2"), C2, None)
    refs.update(tag_ref("m", "prod"), C3, None)
    refs.update(tag_ref("orphan", "x"), C3, None)  # a tag of nothing listed
    backend.put_bytes("refs/remotes/origin/ds", f"{C1}\n".encode())  # neither a head nor a tag
    assert refs.datasets() == [
        DatasetInfo("b", "dataset", C2, {}),
        DatasetInfo("ds", "dataset", C1, {"v1": C1, "v2": C2}),
        DatasetInfo("m", "model", C3, {"prod": C3}),
    ]


def test_list_gives_refs_in_order(refs: RefStore) -> None:
    refs.update(tag_ref("ds", "v2"), C2, None)
    refs.update(tag_ref("ds", "v1"), C1, None)
    refs.update(head_ref("dataset", "ds"), C3, None)
    assert refs.list() == [RefValue("datasets/ds", C3), RefValue("tags/ds/v1", C1), RefValue("tags/ds/v2", C2)]
    assert refs.list("tags/ds/") == [RefValue("tags/ds/v1", C1), RefValue("tags/ds/v2", C2)]
    assert refs.list("models/") == []
    assert refs.datasets() == [DatasetInfo("ds", "dataset", C3, {"v1": C1, "v2": C2})]


def test_an_empty_store_has_no_datasets(refs: RefStore) -> None:
    assert refs.datasets() == [] and refs.list() == []


# -- ObjectIndex ------------------------------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[ObjectIndex]:
    idx = ObjectIndex(str(tmp_path / "index.db"))
    yield idx
    idx.close()


P1, P2 = "a" * 32, "b" * 32


def entries(*specs: tuple[str, ObjectType, int]) -> list[PackEntry]:
    out, offset = [], 16
    for oid, typ, length in specs:
        out.append(PackEntry(oid, typ, 1, offset, length, length * 2))
        offset += length
    return out


def test_add_pack_then_lookup(index: ObjectIndex) -> None:
    es = entries(("ab" + "0" * 30, ObjectType.CHUNK, 10), ("ab" + "1" * 30, ObjectType.TREE, 5), ("cd" + "0" * 30, ObjectType.COMMIT, 7))
    index.add_pack(P1, 200, es)
    for e in es:
        assert index.lookup(e.id) == ObjectLocation(P1, e)
        assert index.has(e.id)
    assert index.lookup("ef" + "0" * 30) is None and not index.has("ef" + "0" * 30)
    assert index.packs() == {P1: 200}
    assert index.entries_of_pack(P1) == es
    assert sorted(index.iter_ids()) == sorted(e.id for e in es)
    assert list(index.iter_ids(ObjectType.TREE)) == [es[1].id]
    assert index.stored_bytes() == (3, 22, 44)


def test_an_object_in_two_packs_keeps_its_first_home(index: ObjectIndex) -> None:
    shared = "5" * 32
    index.add_pack(P1, 100, entries((shared, ObjectType.CHUNK, 10)))
    index.add_pack(P2, 100, entries(("6" * 32, ObjectType.CHUNK, 3), (shared, ObjectType.CHUNK, 10)))
    loc = index.lookup(shared)
    assert loc is not None and loc.pack == P1 and loc.entry.offset == 16
    assert index.packs() == {P1: 100, P2: 100}


_PACK_IDS = st.sampled_from(["a" * 32, "b" * 32, "c" * 32, "d" * 32])
_OBJECT_IDS = st.sampled_from([f"{i:02x}" * 16 for i in range(12)])
_PACKS = st.lists(st.tuples(_PACK_IDS, st.integers(1, 10**6), st.lists(_OBJECT_IDS, max_size=6)), max_size=5)


def _everything(idx: ObjectIndex) -> tuple[dict[str, int], dict[str, ObjectLocation]]:
    return idx.packs(), idx.lookup_many(sorted(idx.iter_ids()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_PACKS, packs=_PACKS)
def test_add_packs_records_what_add_pack_one_by_one_does(tmp_path_factory: pytest.TempPathFactory, before: list, packs: list) -> None:
    # Into an empty index add_packs takes another road (a scratch table, one sorted insert): same facts, and an
    # object in two packs keeps its first home either way.
    folder = tmp_path_factory.mktemp("idx")
    one, many = ObjectIndex(str(folder / "one.db")), ObjectIndex(str(folder / "many.db"))
    try:
        listing = [(pid, size, entries(*((oid, ObjectType.CHUNK, 3 + k) for k, oid in enumerate(oids)))) for pid, size, oids in packs]
        for pid, size, oids in before:
            es = entries(*((oid, ObjectType.TREE, 1) for oid in oids))
            one.add_pack(pid, size, es)
            many.add_pack(pid, size, es)
        for pid, size, es in listing:
            one.add_pack(pid, size, es)
        assert many.add_packs(iter(listing)) == len(listing)
        assert _everything(many) == _everything(one)
    finally:
        one.close()
        many.close()


@pytest.mark.parametrize("filled", [False, True])
def test_add_packs_is_all_or_nothing(index: ObjectIndex, filled: bool) -> None:
    if filled:
        index.add_pack(P1, 100, entries(("1" * 32, ObjectType.CHUNK, 5)))
    was = _everything(index)

    def packs_then_a_failure() -> Iterator[tuple[str, int, list[PackEntry]]]:
        yield P2, 50, entries(("2" * 32, ObjectType.CHUNK, 5))
        raise OSError("the listing broke off")

    with pytest.raises(OSError):
        index.add_packs(packs_then_a_failure())
    assert _everything(index) == was
    assert index.add_packs(iter([(P2, 50, entries(("2" * 32, ObjectType.CHUNK, 5)))])) == 1  # and it is usable after
    assert index.has("2" * 32)


def test_ids_with_prefix(index: ObjectIndex) -> None:
    ids = ["abc" + "0" * 29, "abc" + "f" * 29, "abd" + "0" * 29, "ab" + "f" * 30, "ac" + "0" * 30]
    index.add_pack(P1, 1000, entries(*((i, ObjectType.COMMIT, 1) for i in ids), ("abc1" + "0" * 28, ObjectType.TREE, 1)))
    assert index.ids_with_prefix("abc", ObjectType.COMMIT, limit=10) == ["abc" + "0" * 29, "abc" + "f" * 29]
    assert index.ids_with_prefix("ab", ObjectType.COMMIT, limit=10) == sorted(ids[:4])
    assert len(index.ids_with_prefix("ab", ObjectType.COMMIT)) == 2  # limit 2 by default: enough to see ambiguity
    assert index.ids_with_prefix("abc1", ObjectType.COMMIT) == []
    assert index.ids_with_prefix("abc1", ObjectType.TREE) == ["abc1" + "0" * 28]
    assert index.ids_with_prefix(ids[4], ObjectType.COMMIT) == [ids[4]]
    assert index.ids_with_prefix("ff", ObjectType.COMMIT) == []


def test_remove_pack_forgets_the_pack_and_its_objects(index: ObjectIndex) -> None:
    e1 = entries(("1" * 32, ObjectType.CHUNK, 5), ("2" * 32, ObjectType.TREE, 5))
    e2 = entries(("3" * 32, ObjectType.CHUNK, 5))
    index.add_pack(P1, 100, e1)
    index.add_pack(P2, 100, e2)
    index.remove_pack(P1)
    assert index.packs() == {P2: 100}
    assert index.lookup("1" * 32) is None and index.lookup("2" * 32) is None
    assert index.lookup("3" * 32) == ObjectLocation(P2, e2[0])
    assert index.entries_of_pack(P1) == []
    index.remove_pack("c" * 32)  # not there: nothing happens
    assert index.packs() == {P2: 100}


def test_clear_forgets_everything_and_the_index_persists(tmp_path: Path) -> None:
    path = str(tmp_path / "i.db")
    idx = ObjectIndex(path)
    idx.add_pack(P1, 100, entries(("1" * 32, ObjectType.CHUNK, 5)))
    idx.mark_index_file("9" * 32)
    idx.mark_index_file("9" * 32)
    idx.close()
    idx = ObjectIndex(path)  # reopened: the same facts
    assert idx.known_index_files() == {"9" * 32}
    assert idx.packs() == {P1: 100} and idx.has("1" * 32)
    idx.clear()
    assert idx.packs() == {} and not idx.has("1" * 32) and idx.known_index_files() == set()
    assert idx.stored_bytes() == (0, 0, 0)
    idx.close()


# -- gc records ------------------------------------------------------------------------------------


def test_condemned_records_round_trip(backend: LocalBackend) -> None:
    r1 = records.CondemnRecord(records.new_run_id(), {P1: 100, P2: 200})
    r2 = records.CondemnRecord("run-2", {"c" * 32: 5})
    records.write_condemned(backend, r1)
    records.write_condemned(backend, r2)
    got = sorted(records.read_condemned(backend), key=lambda r: r.run)
    assert [(r.run, r.packs, r.key) for r in got] == sorted([(r.run, r.packs, r.key) for r in (r1, r2)])
    assert all(r.mtime > 0 for r in got)
    assert records.condemned_packs(backend) == {P1, P2, "c" * 32}
    assert r1.key == CONDEMNED_PREFIX + r1.run


def test_new_run_ids_are_valid_record_names() -> None:
    run = records.new_run_id()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", run)
    assert run != records.new_run_id()


@pytest.mark.parametrize("junk", [b"not json", b"{}", b'{"format": 1, "run": "r", "packs": {"x": 1}}', b"\xff\xfe"])
def test_an_unreadable_condemned_record_is_skipped(backend: LocalBackend, junk: bytes) -> None:
    records.write_condemned(backend, records.CondemnRecord("good", {P1: 1}))
    backend.put_bytes(CONDEMNED_PREFIX + "bad", junk)
    assert [r.run for r in records.read_condemned(backend)] == ["good"]
    assert records.condemned_packs(backend) == {P1}


def test_no_records_means_nothing_condemned_or_pruned(backend: LocalBackend) -> None:
    assert records.read_condemned(backend) == []
    assert records.condemned_packs(backend) == set()
    assert records.read_pruned(backend) == set()


def test_pruned_records_round_trip(backend: LocalBackend) -> None:
    rid1 = records.write_pruned(backend, [C1, C2], "gc")
    rid2 = records.write_pruned(backend, [C3], "squash")
    assert rid1 != rid2
    assert backend.exists(PRUNED_PREFIX + rid1) and backend.exists(PRUNED_PREFIX + rid2)
    assert records.read_pruned(backend) == {C1, C2, C3}


@pytest.mark.parametrize("junk", [b"not json", b'{"format": 1, "commits": ["nope"]}', b'{"format": 2, "commits": []}'])
def test_an_unreadable_pruned_record_is_skipped(backend: LocalBackend, junk: bytes) -> None:
    records.write_pruned(backend, [C1], "gc")
    backend.put_bytes(PRUNED_PREFIX + "bad", junk)
    assert records.read_pruned(backend) == {C1}
