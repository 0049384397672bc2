"""Walking a commit's history, newest first."""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Iterator

from datactl.format.objects import Commit
from datactl.store.repository import Repository


def iter_history(repo: Repository, start: str, limit: int | None = None) -> Iterator[tuple[str, Commit]]:
    """Yield (id, commit) for ``start`` and its ancestors, each once, newest first."""
    seen = {start}
    first = repo.read_commit(start)
    heap: list[tuple[float, str, Commit]] = []
    heapq.heappush(heap, (_neg(first.time), start, first))
    n = 0
    while heap and (limit is None or n < limit):
        _, cid, commit = heapq.heappop(heap)
        yield cid, commit
        n += 1
        for parent in commit.parents:
            if parent not in seen:
                seen.add(parent)
                pc = repo.read_commit(parent)
                heapq.heappush(heap, (_neg(pc.time), parent, pc))


def _neg(iso_time: str) -> float:
    return -datetime.fromisoformat(iso_time).timestamp()
