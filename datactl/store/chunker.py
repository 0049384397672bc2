"""Content-defined chunking (FastCDC 2020 through pyfastcdc).

Cut points depend only on content, so an insert in the middle of a file moves
only the chunks around it. The parameters are part of the store's format: they
are recorded in the store config and never changed silently, since other
parameters would cut the same file differently and defeat dedup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Iterator

from datactl.format.storeconfig import ChunkerParams

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

    def chunks(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Yield the chunks of ``stream``.

        Each memoryview is valid only until the next one is produced; reading
        through a bounded buffer (never mmap) keeps memory constant for any
        file size.
        """
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data
