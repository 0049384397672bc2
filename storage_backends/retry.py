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

import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from storage_backends.base import Backend, ObjectInfo, TransientError, Versioned

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

    ``open_read`` retries only opening the stream; a failure while reading it
    reaches the caller. ``list`` restarts a failed listing after the last key it
    yielded, which relies on the backend listing in key order (S3 and GCS do).
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
    open_read = _retried("open_read")
    stat = _retried("stat")
    get_range_at = _retried("get_range_at")
    open_read_at = _retried("open_read_at")
    open_read_current = _retried("open_read_current")
    put_file = _retried("put_file")
    put_bytes = _retried("put_bytes")
    get_versioned = _retried("get_versioned")
    delete = _retried("delete")
    exists = _retried("exists")

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
