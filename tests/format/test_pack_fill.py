"""PackWriter.fill: runs of objects appended at once land exactly as one ``add`` each would put them."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from datactl.core.ids import object_id
from datactl.format.pack import HEADER, ObjectType, PackEntry, PackWriter

objects = st.lists(st.binary(max_size=200), max_size=30)


def _packs(obj_type: ObjectType, items: list[tuple[str, int, int, bytes]], pack_size: int, runs: list[int]) -> list[tuple[bytes, list[PackEntry]]]:
    """The packs ``fill`` writes when handed ``items`` in runs of the given lengths: (body after the header, entries) each."""
    packs: list[tuple[bytes, list[PackEntry]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        writer = PackWriter(tmp)
        start = 0
        for length in [*runs, len(items)]:
            run, start = items[start : start + length], start + length
            done = 0
            while done < len(run):
                done = writer.fill(obj_type, run, done, pack_size)
                writer = _seal_if_full(writer, pack_size, packs, tmp)
        _seal_last(writer, packs)
    return packs


def _packs_one_by_one(obj_type: ObjectType, items: list[tuple[str, int, int, bytes]], pack_size: int) -> list[tuple[bytes, list[PackEntry]]]:
    packs: list[tuple[bytes, list[PackEntry]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        writer = PackWriter(tmp)
        for oid, raw_len, codec, stored in items:
            writer.add(oid, obj_type, codec, stored, raw_len)
            writer = _seal_if_full(writer, pack_size, packs, tmp)
        _seal_last(writer, packs)
    return packs


def _seal_if_full(writer: PackWriter, pack_size: int, packs: list[tuple[bytes, list[PackEntry]]], tmp: str) -> PackWriter:
    """The writer to go on with: a new one once ``writer`` is full (sealed into ``packs``)."""
    if not writer.full(pack_size):
        return writer
    packs.append(_seal(writer))
    return PackWriter(tmp)


def _seal_last(writer: PackWriter, packs: list[tuple[bytes, list[PackEntry]]]) -> None:
    if writer.entries:
        packs.append(_seal(writer))
    else:
        writer.abort()


def _seal(writer: PackWriter) -> tuple[bytes, list[PackEntry]]:
    _pack_id, path, entries = writer.finish()
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data[len(HEADER) :], entries  # the header holds random bytes


@settings(max_examples=200, deadline=None)
@given(objects, st.integers(len(HEADER) + 1, len(HEADER) + 600), st.lists(st.integers(0, 10), max_size=6))
def test_filling_runs_of_objects_gives_the_packs_adding_them_one_by_one_gives(raws: list[bytes], pack_size: int, runs: list[int]) -> None:
    items = [(object_id(raw), len(raw), 0, raw) for raw in raws]
    filled = _packs(ObjectType.CHUNK, items, pack_size, runs)
    assert filled == _packs_one_by_one(ObjectType.CHUNK, items, pack_size)
    assert [e.id for _, entries in filled for e in entries] == [oid for oid, _, _, _ in items]
