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


class ShortReads(io.RawIOBase):
    """A stream that gives at most a few bytes per read, as a pipe or a socket may."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data, self._sizes, self._at, self._calls = data, sizes, 0, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        size = self._sizes[self._calls % len(self._sizes)]
        self._calls += 1
        out = self._data[self._at : self._at + min(n, size)]
        self._at += len(out)
        return out


SMALL = ChunkerParams(avg_size=256, min_size=64, max_size=1024)


# Random bytes (by seed) as well as hypothesis's own: its binaries are mostly runs of a few values, which FastCDC
# rarely cuts anywhere but at max_size.
_CONTENTS = st.one_of(
    st.binary(min_size=0, max_size=20_000),
    st.builds(lambda seed, n: random.Random(seed).randbytes(n), st.integers(0, 2**32), st.integers(0, 20_000)),
)


@settings(max_examples=150, deadline=None)
@given(
    _CONTENTS,
    st.one_of(st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=3000)),
    st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=3),
)
def test_a_stream_read_in_blocks_is_cut_as_its_whole_content(data: bytes, block: int, reads: list[int], nc: int) -> None:
    # Cut points must not depend on how the bytes arrive: whatever the block size and however short the reads,
    # the chunks are those of the whole content cut at once (what a file read whole is cut into).
    params = ChunkerParams(avg_size=256, min_size=64, max_size=1024, normalized_chunking=nc)
    whole = [bytes(c.data) for c in Chunker(params)._cdc.cut_buf(data)]
    kept = list(Chunker(params).chunks(ShortReads(data, reads), read_block=block))
    assert [bytes(c) for c in kept] == whole  # each chunk kept as given, unchanged by the ones after it


def test_a_random_stream_larger_than_a_block_keeps_its_cut_points() -> None:
    # One byte at a time, each chunk's end is met in a block of its own, where FastCDC has not yet seen the byte
    # after it that decides a cut (at 387 bytes the first chunk here still looks uncut; the 388th cuts it at 386).
    data = random.Random(7).randbytes(50_000)
    whole = [bytes(c.data) for c in Chunker(SMALL)._cdc.cut_buf(data)]
    for block in (1, 2, 3, 63, 1024, 1025, 4096, 49_999):
        assert [bytes(c) for c in Chunker(SMALL).chunks(io.BytesIO(data), read_block=block)] == whole
