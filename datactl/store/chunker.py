"""Content-defined chunking (FastCDC 2020 through pyfastcdc).

Cut points depend only on content, so an insert in the middle of a file moves
only the chunks around it. The parameters are part of the store's format: they
are recorded in the store config and never changed silently, since other
parameters would cut the same file differently and defeat dedup.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import BinaryIO, Iterator

from pyfastcdc import FastCDC


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC parameters. pyfastcdc's mean chunk size is about avg_size + min_size."""

    algorithm: str = "fastcdc-2020"
    avg_size: int = 64 * 1024
    min_size: int = 16 * 1024
    max_size: int = 256 * 1024
    normalized_chunking: int = 1
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ChunkerParams":
        return cls(**data)


class Chunker:
    """Cuts a byte stream into chunks; reusable, not thread-safe."""

    def __init__(self, params: ChunkerParams) -> None:
        if params.algorithm != "fastcdc-2020":
            raise ValueError(f"unknown chunker algorithm {params.algorithm!r}")
        self.params = params
        self._cdc = FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalized_chunking,
            seed=params.seed,
        )

    def chunks(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Yield the chunks of ``stream``.

        Each memoryview is valid only until the next one is produced; reading
        through a bounded buffer (never mmap) keeps memory constant for any
        file size.
        """
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data
