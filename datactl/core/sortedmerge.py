"""Merging two path-sorted streams in one pass (the core of status, add, checkout, diff)."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

A = TypeVar("A")
B = TypeVar("B")
_END = object()


def merge_by_path(
    left: Iterable[A], right: Iterable[B], left_path: Callable[[A], str], right_path: Callable[[B], str]
) -> Iterator[tuple[str, A | None, B | None]]:
    """Yield (path, left item or None, right item or None) in path order.

    Both inputs must be sorted by path (code-point order equals UTF-8 byte order).
    """
    li, ri = iter(left), iter(right)
    a, b = next(li, _END), next(ri, _END)
    while a is not _END or b is not _END:
        pa = left_path(a) if a is not _END else None  # type: ignore[arg-type]
        pb = right_path(b) if b is not _END else None  # type: ignore[arg-type]
        if pb is None or (pa is not None and pa < pb):
            yield pa, a, None  # type: ignore[misc]
            a = next(li, _END)
        elif pa is None or pb < pa:
            yield pb, None, b  # type: ignore[misc]
            b = next(ri, _END)
        else:
            yield pa, a, b  # type: ignore[misc]
            a, b = next(li, _END), next(ri, _END)
