"""Per-object compression: one zstd frame each, or raw when that is smaller."""

from __future__ import annotations

import io
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


def compress(raw: bytes | memoryview, level: int) -> tuple[int, bytes | memoryview]:
    """Return (codec, stored bytes); zstandard releases the GIL, so threads scale."""
    return _smaller(raw, _compressor(level).compress(raw))


def _smaller(raw: bytes | memoryview, packed: bytes) -> tuple[int, bytes | memoryview]:
    return (ZSTD, packed) if len(packed) < len(raw) else (RAW, raw)


def compress_many(raws: list[bytes | memoryview], level: int) -> list[tuple[int, bytes | memoryview]]:
    """``compress`` of each, in one task: a thread pool pays its hand-off once for a batch of small objects."""
    compressor = _compressor(level)  # once for the batch: the lookup cost as much as compressing a tiny object
    return [_smaller(raw, compressor.compress(raw)) for raw in raws]


def _declared_size(frame: bytes) -> int:
    """The size a zstd frame's header declares (-1 when it does not say); ValueError if it is no frame."""
    try:
        return zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a zstd frame: {exc}") from exc


def decompress(codec: int, stored: bytes, raw_len: int) -> bytes:
    """Inverse of ``compress``; raises ValueError on a malformed frame or one that is not ``raw_len`` bytes."""
    if codec == RAW:
        return stored
    if codec == ZSTD:
        declared = _declared_size(stored)
        if declared not in (-1, raw_len):  # checked first: zstd allocates what the header declares
            raise ValueError(f"zstd frame declares {declared} bytes, the object is {raw_len}")
        try:
            return _decompressor().decompress(stored, max_output_size=raw_len)
        except zstandard.ZstdError as exc:
            raise ValueError(f"zstd frame does not decode: {exc}") from exc
    raise ValueError(f"unknown compression codec {codec}")


def decompress_bounded(frame: bytes, limit: int) -> bytes:
    """A whole zstd frame that must decode to at most ``limit`` bytes; ValueError otherwise."""
    declared = _declared_size(frame)
    if declared > limit:
        raise ValueError(f"zstd frame declares {declared} bytes, more than the {limit} allowed")
    try:
        if declared >= 0:
            out = _decompressor().decompress(frame, max_output_size=max(declared, 1))
        else:  # no declared size: read at most one byte past the limit
            with _decompressor().stream_reader(io.BytesIO(frame)) as reader:
                out = reader.read(limit + 1)
        if len(out) > limit:
            raise ValueError(f"zstd frame decodes to more than the {limit} bytes allowed")
        return out
    except zstandard.ZstdError as exc:
        raise ValueError(f"zstd frame does not decode: {exc}") from exc
