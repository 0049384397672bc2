"""Running one function over many small independent jobs (requests, mostly) on a few threads."""

from __future__ import annotations

import collections
import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Iterable[T], jobs: int, name: str = "datactl") -> Iterator[R]:
    """``fn`` over ``items``, at most ``jobs`` at a time, results in the items' order.

    Items are taken as results are consumed, at most ``2 x jobs`` ahead of the
    consumer, so a long stream of items (or large results) is never all in
    memory. One item (or one job) runs on the calling thread: a thread costs
    more than it saves then. The first exception is raised when its result is
    reached; items not started by then are not run.
    """
    it = iter(items)
    head = list(itertools.islice(it, 2))
    if len(head) <= 1 or jobs <= 1:
        yield from map(fn, itertools.chain(head, it))
        return
    window: collections.deque[Future[R]] = collections.deque()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix=name) as pool:
        try:
            for item in itertools.chain(head, it):
                window.append(pool.submit(fn, item))
                if len(window) > 2 * jobs:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()
