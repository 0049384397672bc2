"""Walking a commit's history, newest first."""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Container, Iterator

from datactl.format.objects import Commit
from datactl.store.repository import Repository

# What log and lineage say where a shallow workspace's history ends.
HISTORY_CUT = "history cut here (shallow clone; `datactl fetch --unshallow` or `datactl fetch --depth M` fetches more)"


def iter_history(repo: Repository, start: str, limit: int | None = None, cut: Container[str] = frozenset()) -> Iterator[tuple[str, Commit]]:
    """Yield (id, commit) for ``start`` and its ancestors, each once, newest first.

    The parents of commits in ``cut`` (where a shallow history ends) are not followed.
    """
    seen = {start}
    first = repo.read_commit(start)
    heap: list[tuple[float, str, Commit]] = []
    heapq.heappush(heap, (_neg(first.time), start, first))
    n = 0
    while heap and (limit is None or n < limit):
        _, cid, commit = heapq.heappop(heap)
        yield cid, commit
        n += 1
        for parent in commit.parents if cid not in cut else ():
            if parent not in seen:
                seen.add(parent)
                pc = repo.read_commit(parent)
                heapq.heappush(heap, (_neg(pc.time), parent, pc))


def _neg(iso_time: str) -> float:
    return -datetime.fromisoformat(iso_time).timestamp()
