"""Retries for network backends: the one place where a TransientError is tried again.

Every Backend method goes through ``RetryingBackend._call``: up to ``attempts``
tries, exponential backoff with full jitter between them, and only
TransientError is retried (a missing key, a denied permission or a lost race is
an answer, not a failure).

Conditional writes need care. A try whose response was lost (a reset, a 503
from a proxy after the server acted) may have taken effect, and the next try
then sees its own write as "someone else's": ``put_if_absent`` finds the key
present, ``compare_and_swap`` finds the token moved on. So when a conditional
write returns False after an earlier try of the same call failed transiently,
the blob is read back: if it holds exactly what we meant to write (or is gone,
for a delete), the call reports success. The cost of this rule: when another
writer stored byte-identical content in that window, both report success, which
leaves the store in the same state either way. And when another writer changed
the blob again after our lost write, the call reports False although its write
happened once; the caller re-reads and sees that the remote moved on, as it
would have a moment later anyway.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

from storage_backends.base import Backend, ObjectInfo, ShortRead, SourceObject, TransientError, Versioned

T = TypeVar("T")


def _retried(name: str) -> Any:
    """A Backend method that forwards to ``self.inner.<name>`` through the retry loop."""

    def method(self: RetryingBackend, *args: Any, **kwargs: Any) -> Any:
        return self._call(getattr(self.inner, name), *args, **kwargs)[0]

    method.__name__ = name
    method.__doc__ = getattr(Backend, name).__doc__
    return method


class RetryingBackend(Backend):
    """Wraps a backend so that every operation survives throttling and dropped connections.

    A stream (``open_read`` and the pinned reads) that fails midway is opened
    again and read on from the byte it had reached (``ResumingReader``).
    ``list`` restarts a failed listing after the last key it yielded, which
    relies on the backend listing in key order (S3 and GCS do).
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 5.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = inner
        self.url = inner.url
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes RetryingBackend lacks: backend-specific extras, unretried.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"RetryingBackend({self.inner!r}, attempts={self.attempts})"

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, bool]:
        """Run ``fn`` until it does not raise TransientError; return (result, whether a try failed)."""
        for attempt in range(self.attempts):
            try:
                return fn(*args, **kwargs), attempt > 0
            except TransientError:
                self._back_off(attempt)
        raise AssertionError("unreachable")

    def _back_off(self, attempt: int) -> None:
        """Called while handling a TransientError: re-raise it after the last try, else wait."""
        if attempt >= self.attempts - 1:
            raise  # noqa: PLE0704 - re-raises the TransientError being handled by the caller
        self._sleep(random.uniform(0.0, min(self.max_delay, self.base_delay * 2**attempt)))

    get = _retried("get")
    get_range = _retried("get_range")
    stat = _retried("stat")
    get_range_at = _retried("get_range_at")
    put_file = _retried("put_file")
    put_bytes = _retried("put_bytes")
    get_versioned = _retried("get_versioned")
    delete = _retried("delete")
    exists = _retried("exists")

    def open_read(self, key: str) -> BinaryIO:
        # Resumed by opening the key again: for keys whose bytes never change (packs). A read that must not mix
        # two versions of a key takes open_read_at / open_read_current, which resume on the same version.
        stream, _ = self._call(self.inner.open_read, key)
        return ResumingReader(stream, lambda: self.inner.open_read(key), self)  # type: ignore[return-value]

    def open_read_at(self, key: str, version: str | None, etag: str | None = None) -> BinaryIO:
        stream, _ = self._call(self.inner.open_read_at, key, version, etag)
        return ResumingReader(stream, lambda: self.inner.open_read_at(key, version, etag), self)  # type: ignore[return-value]

    def open_read_current(self, key: str) -> tuple[SourceObject, BinaryIO]:
        (obj, stream), _ = self._call(self.inner.open_read_current, key)
        # Carried on from exactly what was recorded, never from a newer object.
        pin = (obj.version, obj.etag if obj.version is None else None)
        return obj, ResumingReader(stream, lambda: self.inner.open_read_at(key, *pin), self)  # type: ignore[return-value]

    def put_if_absent(self, key: str, data: bytes) -> bool:
        stored, ambiguous = self._call(self.inner.put_if_absent, key, data)
        if stored or not ambiguous:
            return stored
        current, _ = self._call(self.inner.get_versioned, key)
        return current is not None and current.data == data

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        swapped, ambiguous = self._call(self.inner.compare_and_swap, key, data, expected)
        if swapped or not ambiguous:
            return swapped
        current, _ = self._call(self.inner.get_versioned, key)
        if data is None:
            return current is None
        return current is not None and current.data == data

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        last: str | None = None
        for attempt in range(self.attempts):
            try:
                for info in self.inner.list(prefix):
                    if last is not None and info.key <= last:
                        continue
                    yield info
                    last = info.key
                return
            except TransientError:
                self._back_off(attempt)


class ResumingReader(io.BufferedIOBase):
    """A streamed read that survives a dropped connection: on a TransientError it opens the object again
    (through ``reopen``, retried as any call) and carries on from the byte it had reached.

    Bytes a failed read had taken in but not returned are simply read again. A stream that cannot seek
    (an S3 body) is read up to that byte and the bytes dropped: a rare cost, against failing a long read.
    """

    _PIECE = 1 << 20

    def __init__(self, stream: BinaryIO, reopen: Callable[[], BinaryIO], retrying: RetryingBackend) -> None:
        super().__init__()
        self._stream: BinaryIO | None = stream
        self._reopen = reopen
        self._retrying = retrying
        self._offset = 0  # bytes returned so far

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(self._PIECE), b""))
        parts: list[bytes] = []
        want = size
        attempt = 0
        while want:
            try:
                if self._stream is None:
                    self._stream = self._resume()
                data = self._stream.read(want)
            except TransientError:
                self._drop()
                self._retrying._back_off(attempt)
                attempt += 1
                continue
            if not data:
                break
            parts.append(data)
            want -= len(data)
            self._offset += len(data)
            attempt = 0
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size if size >= 0 else self._PIECE)

    def _resume(self) -> BinaryIO:
        stream, _ = self._retrying._call(self._reopen)
        try:
            if stream.seekable():
                stream.seek(self._offset)
                return stream
            left = self._offset
            while left:
                skipped = len(stream.read(min(left, self._PIECE)))
                if not skipped:
                    raise ShortRead(f"the object read from {self._retrying.url} came back shorter when read again after a dropped connection")
                left -= skipped
        except BaseException:
            stream.close()
            raise
        return stream

    def _drop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:
                pass  # a broken connection may fail to close; nothing is lost
            self._stream = None

    def close(self) -> None:
        if not self.closed:
            self._drop()
        super().close()
