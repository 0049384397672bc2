"""Per-object compression: one zstd frame each, or raw when that is smaller."""

from __future__ import annotations

import threading

import zstandard

RAW = 0
ZSTD = 1
CODECS = (RAW, ZSTD)

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # ZstdCompressor objects must not be shared between threads.
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def compress(raw: bytes, level: int) -> tuple[int, bytes]:
    """Return (codec, stored bytes); zstandard releases the GIL, so threads scale."""
    packed = _compressor(level).compress(raw)
    if len(packed) < len(raw):
        return ZSTD, packed
    return RAW, raw


def decompress(codec: int, stored: bytes, raw_len: int) -> bytes:
    """Inverse of ``compress``; raises ValueError on a malformed frame."""
    if codec == RAW:
        return stored
    if codec == ZSTD:
        try:
            return _decompressor().decompress(stored, max_output_size=raw_len)
        except zstandard.ZstdError as exc:
            raise ValueError(f"zstd frame does not decode: {exc}") from exc
    raise ValueError(f"unknown compression codec {codec}")
