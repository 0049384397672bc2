"""Where a shallow workspace's history is cut (git keeps the same list in .git/shallow).

A clone or fetch with ``--depth N`` brings only the newest N versions; the
oldest of them name parents that stay on the remote. Their ids are kept in the
workspace's stage metadata, never in a version, so every walk of history (log,
lineage, push, gc, verify, merge) stops there instead of reporting the parents
missing; a deeper fetch moves the cut or, unshallowed, removes it.
"""

from __future__ import annotations

from typing import Iterable

from datactl.store.repository import Repository
from datactl.store.revparse import HistoryCut
from datactl.workspace.stage import Stage

SHALLOW_KEY = "shallow"


def shallow_commits(stage: Stage) -> frozenset[str]:
    """The commits whose parents this workspace has not fetched (empty for a full history)."""
    return frozenset((stage.get_meta(SHALLOW_KEY) or "").split())


def set_shallow_commits(stage: Stage, commits: Iterable[str]) -> None:
    stage.set_meta(SHALLOW_KEY, " ".join(sorted(set(commits))) or None)


def cut_parents(stage: Stage, repo: Repository) -> set[str]:
    """The versions a shallow workspace's history leaves out just below its cut (named, not held)."""
    return {p for c in shallow_commits(stage) if repo.has(c) for p in repo.read_commit(c).parents if not repo.has(p)}


def history_cut(stage: Stage, repo: Repository) -> HistoryCut:
    """Where this workspace's history is cut, for resolving refs (empty for a full history)."""
    at = shallow_commits(stage)
    return HistoryCut(at, frozenset(cut_parents(stage, repo))) if at else HistoryCut()
