"""Adding files for the next commit (`datactl add`): chunk and store what changed, and record it in the stage.

Stage rows are written only after the objects they name are durable (the
repository flushed), so a crash leaves the stage pointing at nothing missing.
"""

from __future__ import annotations

import itertools
import os
import stat as statmod
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from datactl.core.closing import Closing
from datactl.core.errors import UsageError
from datactl.core.progress import ProgressReporter
from datactl.format.objects import FILE, SYMLINK, TreeEntry, symlink_entry
from datactl.store.chunker import Chunker
from datactl.store.filedata import read_error
from datactl.store.ingest import FileIngest, StoredFile
from datactl.store.repository import Repository
from datactl.workspace.disk import DiskState, permissions, read_link
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.scan import DiskEntry, ScanProblem, walk
from datactl.workspace.stage import Stage, StageRow, StatInfo, head_info, same_content

# Stage rows wait in memory until their objects are durable. Every ROW_BATCH rows (or a pack's worth of bytes)
# those whose objects are in finished packs are written; past ROW_LIMIT waiting rows (about 750 bytes each) the
# open pack is finished early too. Finishing it at every batch left a small pack per 20,000 tiny files, which a
# later commit had to merge again.
ROW_BATCH = 20_000
ROW_LIMIT = 60_000
# Past this many files stored here, other processes are started (``Offload``), and the files after they are up
# go to them: each file costs tens of microseconds of Python, which threads of one process cannot share between
# cores. Until they are up (about 0.1 s), files are stored here.
OFFLOAD_AFTER = 1_000
# A folder the stage has nothing under (a first add, where every file is read) that lists at least this many
# files starts them before its walk, so that their start-up overlaps it. Not for fewer: with workers, an add of
# 1,000 files took 0.05 s longer (their start, claims, flushes and side files cost more than they gave back).
OFFLOAD_AT_ONCE = 2_000


@dataclass
class AddResult:
    added: int = 0
    modified: int = 0
    removed: int = 0
    unchanged: int = 0
    bytes_read: int = 0
    workers: int = 0  # processes besides this one that added files (``datactl.workspace.addworkers``)
    problems: list[ScanProblem] = field(default_factory=list)


def many_new_files(root: str, stage: Stage, rel: str, rules: IgnoreRules, at_least: int = OFFLOAD_AT_ONCE) -> bool:
    """Whether the folder ``rel`` of the workspace at ``root`` holds ``at_least`` files (not ignored) and ``stage``
    nothing under it, so that an add reads them all: a listing of its first folders, no file statted."""
    if stage.has_rows_under(rel):
        return False  # tracked files: most are likely vouched for by their stats, not read
    listed = walk(root, rules, start=rel, stat_files=lambda _folder: False)
    return sum(1 for _ in itertools.islice(listed, at_least)) >= at_least


class Offload(Protocol):
    """Files handed to other processes to store and stage (``datactl.workspace.addworkers``)."""

    def add(self, d: DiskEntry, row: StageRow | None) -> None:
        """Hand over the file ``d`` (``row``: its stage row, if any)."""
        ...

    def ready(self) -> bool | None:
        """Whether a process is up to take files (None: not yet; False: none could start, and the caller stores the
        files itself)."""
        ...

    def leave_to_caller(self, oids: list[str]) -> None:
        """The objects the caller has put but not made durable: the other processes leave them to it (a file of
        theirs naming one is staged once the caller has flushed)."""
        ...

    def end_input(self) -> None:
        """No more files: the other processes finish theirs and flush, while the caller flushes its own."""
        ...

    def finish(self, result: AddResult) -> None:
        """Wait until every file handed over is stored and staged (``end_input`` first, if not yet); count them
        into ``result``."""
        ...

    def close(self) -> None:
        """Stop the other processes (what they staged stays: it names durable objects only)."""
        ...


class AddBatch(Closing):
    """Stages files, writing rows only once the objects they name are durable.

    File contents go through a ``FileIngest``, which reads small files in
    parallel batches; their rows are made when the ingest reports them. Given
    ``offload``, the files after the first ``OFFLOAD_AFTER`` go to the
    ``Offload`` it starts instead, once it is up. Rows naming objects another writer claimed
    (``ObjectClaims``) are not durable when this batch flushes: they go to
    ``spill``, for the caller to write once that writer has flushed too.
    ``read_small_here``: see ``FileIngest``.
    """

    def __init__(
        self, repo: Repository, stage: Stage, chunker: Chunker, disk: DiskState, result: AddResult, progress: ProgressReporter,
        row_batch: int = ROW_BATCH, row_limit: int = ROW_LIMIT,
        offload: Callable[[], Offload | None] | None = None,
        spill: Callable[[list[StageRow]], None] | None = None,
        read_small_here: bool = False,
    ) -> None:
        self.repo = repo
        self.row_batch, self.row_limit = row_batch, row_limit
        self.stage = stage
        self.disk = disk
        self.result = result
        self.progress = progress
        self.rows: list[StageRow] = []
        self.deletes: list[str] = []
        self._rows_waited = 0  # rows still waiting after the last batch was written
        self._bytes_since_flush = 0
        self._start_offload = offload
        self._starting: Offload | None = None
        self._offload: Offload | None = None
        self._stored_here = 0
        self._spill = spill
        self.ingest: FileIngest[tuple[DiskEntry, StageRow | None]] = FileIngest(repo, chunker, self._stored, progress.advance, read_small_here=read_small_here)

    @staticmethod
    def _vouched(d: DiskEntry, row: StageRow | None) -> bool:
        """Whether the stat cache proves ``d`` unchanged since it was staged (so it is not read)."""
        return row is not None and row.entry is not None and row.entry.kind == d.kind and row.stat is not None and d.st is not None and row.stat.matches(d.st)

    def _unchanged(self, files: int) -> None:
        self.result.unchanged += files

    def consider(self, d: DiskEntry, row: StageRow | None) -> None:
        """Stage the file ``d`` unless the stat cache proves it unchanged."""
        if self._vouched(d, row):
            self.result.unchanged += 1
            return
        if d.kind == SYMLINK:
            abs_path = self.disk.abs_path(d.path)
            read_at = time.time_ns()
            entry = symlink_entry(d.path.rsplit("/", 1)[-1], read_link(abs_path, d.path))
            assert d.st is not None, "a link is always listed with its stat"
            self._staged(d, row, entry, d.st, os.lstat(abs_path), read_at)
        elif self._offloaded(d, row):  # a worker finds the file from its path itself
            return
        else:
            self._stored_here += 1
            abs_path = self.disk.abs_path(d.path)
            if d.st is None and not self.ingest.takes_unsized:  # listed without its stat: threads read it by its size
                try:
                    d = DiskEntry(d.path, d.kind, os.lstat(abs_path))
                except OSError as exc:
                    raise read_error(abs_path, exc) from None
            self.ingest.add(abs_path, d.st.st_size if d.st is not None else None, (d, row))
        if len(self.rows) - self._rows_waited >= self.row_batch or self._bytes_since_flush >= self.repo.config.pack_size:
            self.write_durable_rows()
            if len(self.rows) >= self.row_limit:
                self.flush()

    def _start_offloading(self) -> None:
        """Start the offload's processes (once); files are stored here until they are up."""
        if self._start_offload is not None:
            start, self._start_offload = self._start_offload, None
            self._starting = start()

    def _offloaded(self, d: DiskEntry, row: StageRow | None) -> bool:
        """Hand ``d`` to the offload (started once enough files were stored here); False to store it here."""
        if self._stored_here >= OFFLOAD_AFTER:
            self._start_offloading()
        if self._starting is not None:  # files are stored here until it is up
            up = self._starting.ready()
            if up:
                # What is stored here is not in the index yet: the other processes must not store it again. Claimed
                # for this process rather than flushed, so they start at once instead of waiting for the fsyncs.
                self.ingest.drain()
                self._starting.leave_to_caller(self.repo.undurable())
                self._offload = self._starting
            elif up is False:
                self._starting.close()
            if up is not None:
                self._starting = None
        if self._offload is None:
            return False
        self._offload.add(d, row)
        return True

    def _stored(self, token: tuple[DiskEntry, StageRow | None], stored: StoredFile) -> None:
        d, row = token
        listed = d.st if d.st is not None else stored.opened
        assert listed is not None, "a file given without its stat comes back with the one it was opened with"
        content = stored.content
        entry = TreeEntry(d.path.rsplit("/", 1)[-1], FILE, permissions(listed), content.size, content.digest, content.chunks, content.chunklist)
        if row is not None and row.entry is not None and row.entry.is_external and same_content(entry, head_info(row.entry)):
            entry = row.entry  # a touched copy of an external file: still the source's bytes, still external
        self.result.bytes_read += content.size
        self._bytes_since_flush += content.size
        self._staged(d, row, entry, listed, stored.stat, stored.read_at)

    def _staged(self, d: DiskEntry, row: StageRow | None, entry: TreeEntry, listed: os.stat_result, after: os.stat_result, read_at: int) -> None:
        """Stage ``entry`` for ``d``, with the stat read ``after`` it; ``listed``: the one from before the read."""
        st = StatInfo.of(after, read_at)
        if after.st_size != listed.st_size or after.st_mtime_ns != listed.st_mtime_ns:
            st = StatInfo(st.size, st.mtime_ns, st.ctime_ns, st.ino, st.mode, trusted=False)  # changed while read
        head = row.head if row is not None else None
        if row is None or row.entry is None:
            self.result.added += 1
        elif same_content(entry, head_info(row.entry)):
            self.result.unchanged += 1
        else:
            self.result.modified += 1
        self.rows.append(StageRow(d.path, entry, st, head))

    def remove(self, row: StageRow) -> None:
        """Stage the removal of a tracked path."""
        if row.entry is None:
            return
        self.result.removed += 1
        if row.head is None:
            self.deletes.append(row.path)
        else:
            self.rows.append(StageRow(row.path, None, None, row.head))

    def flush(self) -> None:
        """Make every object stored here durable and write every row (those waiting for another writer's objects
        to ``spill``)."""
        self.ingest.drain()
        self.repo.flush()
        waiting = self._write_durable()
        if waiting:
            assert self._spill is not None, "objects claimed by another writer, and nowhere to keep the rows naming them"
            self._spill(waiting)
        self.rows = []
        self._rows_waited = 0

    def finish(self) -> None:
        """``flush``, and wait for the files handed to the offload (which flushes its own meanwhile)."""
        if self._offload is not None:
            self._offload.end_input()
        self.flush()
        if self._offload is not None:
            self._offload.finish(self.result)

    def write_durable_rows(self) -> None:
        """Write the rows whose objects are in finished packs; the others wait for the pack that holds theirs."""
        self.ingest.drain()
        self.repo.settle()
        self.rows = self._write_durable()
        self._rows_waited = len(self.rows)  # the next batch counts from here, or each file would look at them all again

    def _write_durable(self) -> list[StageRow]:
        """Write the removals and the rows whose objects are durable; return the other rows."""
        ready: list[StageRow] = []
        waiting: list[StageRow] = []
        for row in self.rows:
            (ready if self._durable(row) else waiting).append(row)
        self.stage.write(ready, self.deletes)
        self.deletes = []
        self._bytes_since_flush = 0
        return waiting

    def _durable(self, row: StageRow) -> bool:
        entry = row.entry
        if entry is None or entry.is_external:  # a removal, or bytes that stay at their source
            return True
        return all(self.repo.durable(oid) for oid in entry.chunks) and (entry.chunklist is None or self.repo.durable(entry.chunklist))

    def close(self) -> None:
        self.ingest.close()
        for offload in (self._starting, self._offload):
            if offload is not None:
                offload.close()

    def bytes_to_read(self, rels: list[str], rules: IgnoreRules) -> int:
        """The bytes ``add_path`` will read for ``rels`` (files the stat cache does not vouch for): a scan that reads no file."""
        total = 0
        for rel in rels:
            try:
                st = os.lstat(self.disk.abs_path(rel))
            except FileNotFoundError:
                st = None
            if st is not None and not statmod.S_ISDIR(st.st_mode):
                found = [(rel, DiskEntry(rel, FILE, st), self.stage.get(rel))] if statmod.S_ISREG(st.st_mode) else []
            else:
                found = self.disk.scan(rules, start=rel, vouched=lambda _d: None)  # type: ignore[assignment]
            for _, d, row in found:
                if d is not None and d.kind == FILE and not self._vouched(d, row):
                    total += d.st.st_size
        return total

    def add_path(self, rel: str, rules: IgnoreRules, in_scope: Callable[[str], bool]) -> None:
        """Stage ``rel``: a file or symlink, or every new, changed and deleted file under a folder."""
        abs_path = self.disk.abs_path(rel)
        try:
            st = os.lstat(abs_path)
        except FileNotFoundError:
            st = None
        if st is not None and not statmod.S_ISDIR(st.st_mode):
            kind = SYMLINK if statmod.S_ISLNK(st.st_mode) else FILE
            if kind == FILE and not statmod.S_ISREG(st.st_mode):
                raise UsageError(f"{rel} is not a regular file, folder or symlink")
            # A path that was a folder (or is under a former file) must drop the old rows.
            for row in self.stage.iter_rows(rel):
                if row.path != rel:
                    self.remove(row)
            parts = rel.split("/")
            for i in range(1, len(parts)):
                parent_row = self.stage.get("/".join(parts[:i]))
                if parent_row is not None:
                    self.remove(parent_row)
            self.consider(DiskEntry(rel, kind, st), self.stage.get(rel))
            return
        if self._start_offload is not None and many_new_files(self.disk.root, self.stage, rel, rules):
            self._start_offloading()
        # Files of folders the stage has nothing under are new: they are listed without a stat, and the process
        # that reads one takes it from the file it opens (a lookup of each path fewer, and less to hand over).
        for path, d, row in self.disk.scan(rules, start=rel, on_problem=self.result.problems.append, vouched=self._unchanged, stat_new_folders=False):
            if d is None:
                if row is not None and in_scope(path):
                    self.remove(row)
            else:
                self.consider(d, row)
