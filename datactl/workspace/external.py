"""External files in a workspace: ``add --external`` records objects where they live; ``update`` re-records them.

Each object is streamed once from its source: the bytes go through the
chunker (digest and chunk ids) and into the workspace's copy of the file,
never into the store. The stage row gets the copy's stat, so ``status`` sees a
clean file, and the external entry, so a commit records the URL and the
provider's pin instead of chunks. ``--copy`` makes ordinary stored files of
them instead (the copies on disk are then added like any file).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from datactl.core.dirs import make_dirs
from datactl.core.errors import UsageError
from datactl.core.parallel import parallel_map
from datactl.core.safepath import safe_join, temp_name
from datactl.format.objects import TreeEntry
from datactl.store.repository import Repository
from datactl.store.sourceread import SourceBackends, source_moved
from datactl.store.sourcerecord import SOURCE_JOBS, record_source, record_sources
from datactl.workspace.add import AddResult
from datactl.workspace.stage import Stage, StageRow, StatInfo, head_info, same_content

ROW_BATCH = 2_000


class ExternalAdd:
    """Records external objects into a workspace: the copy on disk written as the object streams by."""

    def __init__(self, root: str, stage: Stage, repo: Repository, result: AddResult) -> None:
        self.root = root
        self.stage = stage
        self.repo = repo
        self.result = result
        self._stats: dict[str, StatInfo] = {}
        self._lock = threading.Lock()

    def _record(self, url: str, target: str) -> TreeEntry:
        dest = safe_join(self.root, target)
        make_dirs(os.path.dirname(dest))
        tmp = os.path.join(os.path.dirname(dest), temp_name(os.path.basename(dest)))
        read_at = time.time_ns()
        try:
            entry = record_source(self.repo.sources, self.repo.config.chunker, url, target.rsplit("/", 1)[-1], lambda: open(tmp, "wb"))
            os.chmod(tmp, entry.mode)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        with self._lock:
            self._stats[target] = StatInfo.of(os.lstat(dest), read_at)
        return entry

    def run(self, files: list[tuple[str, str]], stage_rows: bool, on_file: Callable[[int], None] | None = None) -> None:
        """Record every (url, path); with ``stage_rows`` stage them as external entries (else only the copies are written)."""
        rows: list[StageRow] = []
        for target, entry in record_sources(self.repo.sources, self.repo.config.chunker, files, SOURCE_JOBS, self._record):
            self.result.bytes_read += entry.size
            if on_file is not None:
                on_file(entry.size)
            if not stage_rows:
                continue
            row = self.stage.get(target)
            if row is None or row.entry is None:
                self.result.added += 1
            elif same_content(entry, head_info(row.entry)) and row.entry.source == entry.source:
                self.result.unchanged += 1
            else:
                self.result.modified += 1
            with self._lock:
                stat = self._stats.pop(target)
            rows.append(StageRow(target, entry, stat, row.head if row is not None else None))
            if len(rows) >= ROW_BATCH:
                self.stage.write(rows)
                rows = []
        self.stage.write(rows)


def external_paths(stage: Stage, rels: list[str]) -> list[tuple[str, str]]:
    """(url, path) of the tracked external files at or under each of ``rels``."""
    out: list[tuple[str, str]] = []
    for rel in rels:
        rows = [r for r in stage.iter_rows(rel) if r.entry is not None]
        if not rows:
            raise UsageError(f"{rel or '.'} is not tracked", "`datactl status` lists what is tracked")
        external = [(r.entry.source.url, r.path) for r in rows if r.entry is not None and r.entry.source is not None]
        if not external:
            raise UsageError(f"{rel or '.'} holds no external file", "`datactl add` records a changed stored file")
        out.extend(external)
    return out


def changed_sources(sources: SourceBackends, entries: list[tuple[str, TreeEntry]]) -> list[str]:
    """The paths of the external files whose source no longer holds the recorded object (a stat each, in parallel)."""
    moved = parallel_map(lambda item: source_moved(sources, item[1]), entries, SOURCE_JOBS, "datactl-source")
    return [path for (path, _), why in zip(entries, moved) if why is not None]
