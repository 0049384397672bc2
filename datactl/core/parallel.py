"""Running one function over many small independent jobs (requests, mostly) on a few threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Iterable[T], jobs: int, name: str = "datactl") -> Iterator[R]:
    """``fn`` over ``items``, at most ``jobs`` at a time, results in the items' order.

    One item (or one job) runs on the calling thread: a thread costs more than
    it saves then. The first exception is raised when its result is reached.
    """
    todo = list(items)
    if len(todo) <= 1 or jobs <= 1:
        yield from map(fn, todo)
        return
    with ThreadPoolExecutor(max_workers=min(jobs, len(todo)), thread_name_prefix=name) as pool:
        yield from pool.map(fn, todo)
