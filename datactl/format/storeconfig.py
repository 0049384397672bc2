"""The store's ``config`` blob: format version and the parameters that fix ids.

JSON, written once at init. Chunker parameters decide chunk ids, so they are
read from here on every open and never changed silently.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from datactl.store.chunker import ChunkerParams
from datactl.core.errors import StoreFormatError
from storage_backends import Backend, KeyNotFound

STORE_FORMAT = 1
CONFIG_KEY = "config"
DEFAULT_PACK_SIZE = 32 * 1024 * 1024


@dataclass(frozen=True)
class StoreConfig:
    store_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    pack_size: int = DEFAULT_PACK_SIZE
    compression_level: int = 3
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
            d = json.loads(data)
            if d["format"] != STORE_FORMAT:
                raise StoreFormatError(
                    f"store {where} has format {d['format']}, this datactl reads format {STORE_FORMAT}",
                    "upgrade datactl",
                )
            if d.get("hash") != "xxh3-128" or d["compression"]["algorithm"] != "zstd":
                raise StoreFormatError(f"store {where} uses an unsupported hash or compression")
            return cls(
                store_id=d["id"],
                chunker=ChunkerParams.from_dict(d["chunker"]),
                pack_size=int(d["pack_size"]),
                compression_level=int(d["compression"]["level"]),
                format=d["format"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreFormatError(f"store config in {where} is unreadable: {exc}") from None


def read_store_config(backend: Backend) -> StoreConfig:
    try:
        return StoreConfig.decode(backend.get(CONFIG_KEY), backend.url)
    except KeyNotFound:
        raise StoreFormatError(f"{backend.url} is not a datactl store (no config)") from None


def write_store_config(backend: Backend, config: StoreConfig) -> StoreConfig:
    """Create the config unless one exists; return the config in force."""
    if not backend.put_if_absent(CONFIG_KEY, config.encode()):
        return read_store_config(backend)
    return config
