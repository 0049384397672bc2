"""Sizes: what a version holds (logical bytes) against what it costs (stored bytes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from datactl.format.objects import FILE
from datactl.store.filedata import chunk_ids_of
from datactl.store.repository import Repository
from datactl.store.walk import BatchReader, walk_files


@dataclass
class VersionStats:
    commit: str
    files: int
    logical_bytes: int
    unique_chunks: int
    chunk_bytes: int
    stored_bytes: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "dedup_ratio": round(self.dedup_ratio, 3)}


@dataclass
class StoreStats:
    packs: int
    pack_bytes: int
    objects: int
    stored_bytes: int
    raw_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def tree_totals(reader: BatchReader, tree_id: str | None) -> tuple[int, int]:
    """(files, bytes) of a tree, read through any ``BatchReader`` (a Repository, a remote's reader)."""
    files = size = 0
    for _, e in walk_files(reader, tree_id) if tree_id is not None else ():
        if e.kind == FILE:
            files += 1
            size += e.size
    return files, size


def version_stats(repo: Repository, commit_id: str) -> VersionStats:
    """Files and bytes of one version; stored bytes count each unique chunk once, compressed."""
    files = logical = chunk_bytes = stored = 0
    seen: set[str] = set()
    for _path, entry in walk_files(repo, repo.read_commit(commit_id).tree):
        if entry.kind != FILE:
            continue
        files += 1
        logical += entry.size
        for chunk in chunk_ids_of(repo, entry):
            if chunk in seen:
                continue
            seen.add(chunk)
            loc = repo.index.lookup(chunk)
            if loc is not None:
                chunk_bytes += loc.entry.raw_len
                stored += loc.entry.stored_len
    return VersionStats(commit_id, files, logical, len(seen), chunk_bytes, stored)


def store_stats(repo: Repository) -> StoreStats:
    packs = repo.index.packs()
    objects, stored, raw = repo.index.stored_bytes()
    return StoreStats(len(packs), sum(packs.values()), objects, stored, raw)
