"""The chunker's cut points are part of the store format: pinned, and content-defined."""

from __future__ import annotations

import io
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from datactl.core.ids import object_id
from datactl.format.storeconfig import ChunkerParams
from datactl.store.chunker import Chunker

DEFAULT = ChunkerParams()


def lengths(data: bytes, params: ChunkerParams = DEFAULT) -> list[int]:
    return [len(c) for c in Chunker(params).chunks(io.BytesIO(data))]


def test_boundaries_of_a_fixed_input_are_pinned() -> None:
    # If this fails after a dependency upgrade, the upgrade moved cut points:
    # existing stores would stop deduplicating against new data. Do not just
    # update the digest; pin the dependency or add a new chunker version.
    data = random.Random(20261123).randbytes(8 * 1024 * 1024)
    cuts = lengths(data)
    assert sum(cuts) == len(data)
    assert len(cuts) == 105
    assert object_id(",".join(map(str, cuts)).encode()) == "6f0f59ee3e743ea3765f61c4eb89328f"


def test_an_insert_changes_only_nearby_chunks() -> None:
    data = random.Random(1).randbytes(4 * 1024 * 1024)
    edited = data[:2_000_000] + b"x" * 100 + data[2_000_000:]
    before = {object_id(bytes(c)) for c in Chunker(DEFAULT).chunks(io.BytesIO(data))}
    after = [object_id(bytes(c)) for c in Chunker(DEFAULT).chunks(io.BytesIO(edited))]
    new = [c for c in after if c not in before]
    assert 1 <= len(new) <= 3


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=600_000), st.integers(min_value=0, max_value=3))
def test_chunks_cover_the_input_within_size_bounds(data: bytes, nc: int) -> None:
    params = ChunkerParams(avg_size=4096, min_size=1024, max_size=16384, normalized_chunking=nc)
    pieces = [bytes(c) for c in Chunker(params).chunks(io.BytesIO(data))]
    assert b"".join(pieces) == data
    for p in pieces[:-1]:
        assert params.min_size <= len(p) <= params.max_size
    if pieces:
        assert 0 < len(pieces[-1]) <= params.max_size
