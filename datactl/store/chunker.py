"""Content-defined chunking (FastCDC 2020 through pyfastcdc).

Cut points depend only on content, so an insert in the middle of a file moves
only the chunks around it. The parameters are part of the store's format: they
are recorded in the store config and never changed silently, since other
parameters would cut the same file differently and defeat dedup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Iterator

from datactl.format.storeconfig import ChunkerParams

READ_BLOCK = 4 << 20  # bytes read at a time: chunks are views of these blocks

if TYPE_CHECKING:
    from pyfastcdc import FastCDC


def new_fastcdc(params: ChunkerParams) -> FastCDC:
    """A FastCDC cutter with the store's parameters (pyfastcdc is imported here: only commands that store need it)."""
    if params.algorithm != "fastcdc-2020":
        raise ValueError(f"unknown chunker algorithm {params.algorithm!r}")
    from pyfastcdc import FastCDC

    return FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size, normalized_chunking=params.normalized_chunking, seed=params.seed)


class Chunker:
    """Cuts a byte stream into chunks; reusable, not thread-safe."""

    def __init__(self, params: ChunkerParams) -> None:
        self.params = params
        self._cdc = new_fastcdc(params)

    def chunks(self, stream: BinaryIO, read_block: int = READ_BLOCK) -> Iterator[memoryview]:
        """Yield the chunks of ``stream``: the same cuts as of its whole content at once.

        Each chunk is a view of bytes nothing changes, which the caller may keep: the stream is read in blocks
        of ``read_block`` bytes, each a new bytes object, and cut where it lies. Only what spans two blocks is
        copied (the start of a chunk a block ends in, and the next block's first ``max_size`` bytes), so memory
        stays bounded for any file size and the bytes go from the read to the hash and the compressor uncopied
        (a chunker with a buffer of its own moved or copied each of them twice, holding the GIL).
        """
        max_size = self.params.max_size
        carry = b""  # the start of a chunk the last block ended in: it may go on in this one
        while block := stream.read(read_block):
            view = memoryview(block)
            while carry:
                # FastCDC looks at most max_size bytes from a chunk's start: these decide where the carried one ends.
                seam = carry + view[:max_size]
                first = next(iter(self._cdc.cut_buf(memoryview(seam))))
                if first.length == len(seam) and first.length < max_size:  # it goes on past this block too
                    carry, view = seam, view[:0]
                    break
                yield first.data
                if first.length < len(carry):  # a cut is decided with the byte after it, which the carried bytes lacked
                    carry = carry[first.length :]
                else:
                    carry, view = b"", view[first.length - len(carry) :]
            last = None
            for chunk in self._cdc.cut_buf(view):
                if last is not None:
                    yield last
                last = chunk.data
            if last is not None:
                carry = bytes(last)  # it may go on in the next block
        if carry:
            yield memoryview(carry)  # the stream's end ends it
