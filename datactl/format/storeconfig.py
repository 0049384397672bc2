"""The store's ``config`` blob: format version and the parameters that fix ids.

JSON, written once at init. Chunker parameters decide chunk ids, so they are
read from here on every open and never changed silently.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field

from datactl.core.errors import StoreFormatError
from datactl.format.jsontext import parse_json

STORE_FORMAT = 1
DEFAULT_PACK_SIZE = 32 * 1024 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
PACK_SIZES = range(4096, 4 * 1024**3 + 1)
COMPRESSION_LEVELS = range(-7, 23)  # zstd


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
        """Parameters read from a store's config, each checked (ValueError names what is wrong)."""
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise ValueError(f"chunker parameters must be exactly {sorted(cls.__dataclass_fields__)}")
        params = cls(**data)
        ints = (params.avg_size, params.min_size, params.max_size, params.normalized_chunking, params.seed)
        if params.algorithm != "fastcdc-2020" or not all(type(v) is int for v in ints):
            raise ValueError("unknown chunker algorithm or non-integer parameters")
        if not (64 <= params.min_size <= params.avg_size <= params.max_size <= MAX_CHUNK_SIZE):
            raise ValueError("chunk sizes out of range (64 <= min <= avg <= max <= 64 MiB)")
        if not (0 <= params.normalized_chunking <= 3 and 0 <= params.seed < 2**32):
            raise ValueError("normalized_chunking or seed out of range")
        return params


@dataclass(frozen=True)
class StoreConfig:
    store_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    pack_size: int = DEFAULT_PACK_SIZE
    # Level 1: on CSV-like text and mixed data it compresses as well as 3 (small chunks leave level 3 little to find) at about twice the speed.
    compression_level: int = 1
    format: int = STORE_FORMAT

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": self.format,
                "id": self.store_id,
                "hash": "xxh3-128",
                "chunker": self.chunker.to_dict(),
                "pack_size": self.pack_size,
                "compression": {"algorithm": "zstd", "level": self.compression_level},
            },
            indent=2,
            sort_keys=True,
        ).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes, where: str) -> "StoreConfig":
        try:
            d = parse_json(data)
            if d["format"] != STORE_FORMAT:
                raise StoreFormatError(
                    f"store {where} has format {d['format']}, this datactl reads format {STORE_FORMAT}",
                    "upgrade datactl",
                )
            if d.get("hash") != "xxh3-128" or d["compression"]["algorithm"] != "zstd":
                raise StoreFormatError(f"store {where} uses an unsupported hash or compression")
            config = cls(
                store_id=d["id"],
                chunker=ChunkerParams.from_dict(d["chunker"]),
                pack_size=d["pack_size"],
                compression_level=d["compression"]["level"],
                format=d["format"],
            )
            if not isinstance(config.store_id, str) or not 0 < len(config.store_id) <= 64 or not config.store_id.isalnum():
                raise ValueError("malformed store id")
            if type(config.pack_size) is not int or config.pack_size not in PACK_SIZES:
                raise ValueError(f"pack size {config.pack_size!r} out of range")
            if type(config.compression_level) is not int or config.compression_level not in COMPRESSION_LEVELS:
                raise ValueError(f"compression level {config.compression_level!r} out of range")
            return config
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreFormatError(f"store config in {where} is unreadable: {exc}") from None
