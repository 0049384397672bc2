"""A workspace: checked-out files, their staging table, and the local store.

Layout of a workspace root::

    datactl.toml          settings ([dataset] name and kind, later remotes and rules)
    .datactlignore        paths never tracked (gitignore syntax)
    .datactl/store/       the local store (config, packs/, index/, refs/)
    .datactl/index.db     the object index of that store (SQLite, rebuildable)
    .datactl/stage.db     staging table, stat cache and HEAD
    .datactl/lock         held by commands that change the workspace
"""

from __future__ import annotations

import fcntl
import json
import os
import stat as statmod
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from datactl.store.chunker import Chunker
from datactl.core.errors import DatactlError, LocalChanges, NothingToCommit, NotAtLatest, UsageError
from datactl.store.filedata import restore_file, store_file
from datactl.core.ids import hash_file
from datactl.workspace.ignore import IgnoreRules
from datactl.store.index import ObjectIndex
from datactl.lineage.index import record_local_commit
from datactl.validation.hook import run_commit_rules
from datactl.workspace.inputs import resolve_input
from datactl.core.author import default_author
from datactl.core.units import now_iso
from datactl.format.objects import FILE, SYMLINK, Commit, TreeEntry, symlink_entry
from datactl.format.layout import KINDS, WorkspaceLayout
from datactl.format.pack import ObjectType
from datactl.core.progress import NullProgress, ProgressReporter
from datactl.format.layout import check_name, head_ref, tag_ref
from datactl.remote.locate import find_workspace_root
from datactl.store.repository import Repository
from datactl.store.revparse import RefContext, resolve_ref
from datactl.core.safepath import TEMP_SUFFIX, safe_join
from datactl.core.settings import read_settings, settings_path
from datactl.workspace.scan import DiskEntry, ScanProblem, walk
from datactl.core.sortedmerge import merge_by_path
from datactl.workspace.stage import Stage, StageRow, StatInfo, head_info, same_content
from datactl.format.storeconfig import StoreConfig
from datactl.store.repository import read_store_config, write_store_config
from datactl.store.trees import build_tree
from datactl.store.walk import walk_files
from datactl.store.backend import local_store_backend

# Stage rows are written only after the objects they name are durable, so
# rows wait in memory until the next flush; these bound that wait.
ROW_BATCH = 20_000


@dataclass(frozen=True)
class WorkspaceConfig:
    name: str
    kind: str


@dataclass(frozen=True)
class PathChange:
    """One path that differs between two states."""

    path: str
    change: str  # "added", "modified", "deleted"
    size: int = 0


@dataclass
class Status:
    head: str | None
    latest: str | None = None  # the dataset's latest version, when HEAD is an older one
    staged: list[PathChange] = field(default_factory=list)
    unstaged: list[PathChange] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No staged and no unstaged change (untracked files do not count)."""
        return not self.staged and not self.unstaged


@dataclass
class AddResult:
    added: int = 0
    modified: int = 0
    removed: int = 0
    unchanged: int = 0
    bytes_read: int = 0
    problems: list[ScanProblem] = field(default_factory=list)


@dataclass
class CheckoutResult:
    commit: str
    written: int = 0
    deleted: int = 0
    kept: int = 0
    bytes_written: int = 0


def _read_link(abs_path: str, rel: str) -> str:
    target = os.readlink(abs_path)
    try:
        target.encode("utf-8")
    except UnicodeEncodeError:
        raise DatactlError(f"{rel}: symlink target is not valid UTF-8", "fix the link or add it to .datactlignore") from None
    return target


def _perm(st: os.stat_result) -> int:
    return statmod.S_IMODE(st.st_mode)


def read_workspace_config(root: str) -> WorkspaceConfig:
    section = read_settings(root).get("dataset", {})
    name, kind = section.get("name"), section.get("kind", "dataset")
    if not isinstance(name, str) or kind not in KINDS:
        raise UsageError(f"{settings_path(root)}: [dataset] needs name = \"...\" and kind = \"dataset\" or \"model\"")
    return WorkspaceConfig(check_name(name), kind)


CONFIG_TEMPLATE = """\
# datactl workspace settings
[dataset]
name = "{name}"
kind = "{kind}"   # "dataset" or "model"
"""


class Workspace:
    """A checked-out dataset or model with its staging table and local store."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.layout = WorkspaceLayout(self.root)
        self.dotdir = self.layout.dotdir
        self.config = read_workspace_config(self.root)
        backend = local_store_backend(self.layout.store_dir)
        self.repo = Repository(
            backend,
            ObjectIndex(self.layout.index_db),
            read_store_config(backend),
            tmp_dir=self.layout.tmp_dir,
        )
        self.stage = Stage(self.layout.stage_db)
        self.chunker = Chunker(self.repo.config.chunker)
        # Files found unchanged by hashing during a scan; their fresh stats are saved after it.
        self._refresh: list[tuple[StageRow, os.stat_result, int]] = []
        self._recover_pending_commit()

    # -- life cycle ----------------------------------------------------------

    @classmethod
    def init(
        cls, path: str = ".", name: str | None = None, kind: str = "dataset", store_config: StoreConfig | None = None
    ) -> "Workspace":
        """Create a workspace (and its local store) at ``path``; ``store_config`` sets the chunking."""
        root = os.path.abspath(path)
        if kind not in KINDS:
            raise UsageError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        layout = WorkspaceLayout(root)
        if layout.exists():
            raise UsageError(f"{root} is already a datactl workspace")
        name = check_name(name or os.path.basename(root) or "dataset")
        os.makedirs(layout.dotdir, exist_ok=True)
        write_store_config(local_store_backend(layout.store_dir), store_config or StoreConfig())
        config_path = settings_path(root)
        if not os.path.exists(config_path):
            with open(config_path, "w", encoding="utf-8") as f:
                f.write(CONFIG_TEMPLATE.format(name=name, kind=kind))
        return cls(root)

    @classmethod
    def open(cls, path: str | None = None) -> "Workspace":
        """Open the workspace that contains ``path`` (default: the current folder)."""
        return cls(find_workspace_root(path))

    def close(self) -> None:
        self.repo.close()
        self.stage.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the workspace lock (one changing command at a time)."""
        fd = os.open(self.layout.lock_file, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatactlError(
                    "another datactl command is changing this workspace", "wait for it to finish, then retry"
                ) from None
            yield
        finally:
            os.close(fd)

    # -- names ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def head(self) -> str | None:
        """The checked-out commit, or None before the first commit."""
        return self.stage.get_meta("head")

    @property
    def head_ref(self) -> str:
        return head_ref(self.kind, self.name)

    @property
    def sparse(self) -> list[str]:
        """Paths (files or folders) this workspace holds on disk; empty means all."""
        raw = self.stage.get_meta("sparse")
        return json.loads(raw) if raw else []

    def set_sparse(self, paths: list[str]) -> None:
        self.stage.set_meta("sparse", json.dumps(sorted(set(p.strip("/") for p in paths))) if paths else None)

    def in_scope(self, path: str) -> bool:
        """Whether ``path`` is materialized on disk (always, unless the workspace is sparse)."""
        scope = self.sparse
        return not scope or any(p == "" or path == p or path.startswith(p + "/") for p in scope)

    def ref_context(self) -> RefContext:
        return RefContext(self.name, self.kind, self.head)

    def resolve(self, ref: str) -> str:
        """The commit id a REF names (see ``datactl.store.revparse``)."""
        return resolve_ref(self.repo.ref_lookup(), ref, self.ref_context())

    def rel_path(self, path: str) -> str:
        """``path`` (absolute or relative to the current folder) as a workspace-relative '/' path."""
        abs_path = os.path.abspath(path)
        rel = os.path.relpath(abs_path, self.root)
        if rel == os.curdir:
            return ""
        if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
            raise UsageError(f"{path} is outside the workspace {self.root}")
        return rel.replace(os.sep, "/")

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/")) if rel else self.root

    # -- reading the disk ----------------------------------------------------

    def _disk_matches(self, row: StageRow | None, d: DiskEntry) -> bool:
        """Whether the file on disk is exactly the staged entry, hashing only when the stat cache cannot tell."""
        if row is None or row.entry is None or row.entry.kind != d.kind:
            return False
        if row.stat is not None and row.stat.matches(d.st):
            return True
        abs_path = self._abs(d.path)
        if d.kind == SYMLINK:
            return symlink_entry("", _read_link(abs_path, d.path)).digest == row.entry.digest
        if d.st.st_size != row.entry.size or _perm(d.st) != row.entry.mode:
            return False
        read_at = time.time_ns()
        try:
            same = hash_file(abs_path) == row.entry.digest
        except OSError:
            return False
        if same:
            self._refresh.append((row, d.st, read_at))
            if len(self._refresh) >= ROW_BATCH:
                self._flush_refresh()
        return same

    def _flush_refresh(self) -> None:
        """Record fresh stats for files found unchanged by hashing, so the next scan skips them."""
        if self._refresh:
            self.stage.update_stats((row.path, StatInfo.of(st, read_at)) for row, st, read_at in self._refresh)
        self._refresh = []

    def _tracked_on_disk(self, path: str, row: StageRow | None) -> DiskEntry | None:
        """A tracked file the walk skipped (ignore rules apply to untracked files only)."""
        if row is None or row.entry is None:
            return None
        try:
            st = os.lstat(self._abs(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if statmod.S_ISREG(st.st_mode):
            return DiskEntry(path, FILE, st)
        if statmod.S_ISLNK(st.st_mode):
            return DiskEntry(path, SYMLINK, st)
        return None

    def disk_entry(self, d: DiskEntry) -> TreeEntry:
        """The entry a disk file would get, hashing it (without storing anything)."""
        name = d.path.rsplit("/", 1)[-1]
        abs_path = self._abs(d.path)
        if d.kind == SYMLINK:
            return symlink_entry(name, _read_link(abs_path, d.path))
        return TreeEntry(name, FILE, _perm(d.st), d.st.st_size, hash_file(abs_path))

    def iter_disk_entries(self, problems: list[ScanProblem] | None = None) -> Iterator[tuple[str, TreeEntry]]:
        """(path, entry) for every tracked-or-not file on disk, in path order, using the stat cache."""
        rules = IgnoreRules(self.root)
        self._refresh = []
        disk = walk(self.root, rules, on_problem=problems.append if problems is not None else None)
        rows = self.stage.iter_rows(with_chunks=False)
        for path, d, row in merge_by_path(disk, rows, lambda x: x.path, lambda r: r.path):
            d = d or self._tracked_on_disk(path, row)
            if d is None:
                continue
            if row is not None and row.entry is not None and self._disk_matches(row, d):
                yield path, row.entry
            else:
                yield path, self.disk_entry(d)
        self._flush_refresh()

    def status(self) -> Status:
        """Stage versus HEAD, and disk versus stage."""
        latest = self.repo.refs.get(self.head_ref)
        result = Status(head=self.head, latest=latest if latest != self.head else None)
        for row in self.stage.staged_changes():
            if row.entry is None:
                result.staged.append(PathChange(row.path, "deleted", row.head.size if row.head else 0))
            else:
                result.staged.append(PathChange(row.path, "added" if row.head is None else "modified", row.entry.size))
        rules = IgnoreRules(self.root)
        self._refresh = []
        disk = walk(self.root, rules, on_problem=result.problems.append)
        rows = self.stage.iter_rows(with_chunks=False)
        for path, d, row in merge_by_path(disk, rows, lambda x: x.path, lambda r: r.path):
            d = d or self._tracked_on_disk(path, row)
            tracked = row is not None and row.entry is not None
            if d is None:
                if tracked and self.in_scope(path):
                    result.unstaged.append(PathChange(path, "deleted", row.entry.size))  # type: ignore[union-attr]
            elif not tracked:
                result.untracked.append(path)
            elif not self._disk_matches(row, d):
                result.unstaged.append(PathChange(path, "modified", d.st.st_size))
        self._flush_refresh()
        return result

    # -- add / rm ------------------------------------------------------------

    def add(self, paths: list[str], force: bool = False, progress: ProgressReporter | None = None) -> AddResult:
        """Stage files and folders (new, changed and deleted files under each)."""
        progress = progress or NullProgress()
        result = AddResult()
        rules = IgnoreRules(self.root)
        targets = []
        for p in paths:
            rel = self.rel_path(p)
            abs_path = self._abs(rel)
            if rel and rules.internal(rel, os.path.isdir(abs_path)):
                raise UsageError(f"{p} is datactl's own file and cannot be tracked")
            exists = os.path.lexists(abs_path)
            if not exists and self.stage.get(rel) is None and not any(True for _ in self.stage.iter_rows(rel)):
                raise UsageError(f"{p} did not match any file", "check the path; `datactl status` lists what is tracked")
            if exists and rel and not force and rules.ignored(rel, os.path.isdir(abs_path)):
                raise UsageError(f"{p} is ignored by .datactlignore", "use --force to add it anyway")
            targets.append(rel)
        with self.locked():
            progress.start("adding", None)
            try:
                batch = _AddBatch(self, result, progress)
                for rel in targets:
                    self._add_one(rel, rules, batch, force)
                batch.flush()
            except BaseException:
                self.repo.abort()
                raise
            finally:
                progress.stop()
        return result

    def _add_one(self, rel: str, rules: IgnoreRules, batch: "_AddBatch", force: bool) -> None:
        abs_path = self._abs(rel)
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
                    batch.remove(row)
            parts = rel.split("/")
            for i in range(1, len(parts)):
                parent_row = self.stage.get("/".join(parts[:i]))
                if parent_row is not None:
                    batch.remove(parent_row)
            batch.consider(DiskEntry(rel, kind, st), self.stage.get(rel))
            return
        disk = walk(self.root, rules, start=rel, on_problem=batch.result.problems.append)
        rows = self.stage.iter_rows(rel, with_chunks=False)
        for path, d, row in merge_by_path(disk, rows, lambda x: x.path, lambda r: r.path):
            d = d or self._tracked_on_disk(path, row)
            if d is None:
                if row is not None and self.in_scope(path):
                    batch.remove(row)
            else:
                batch.consider(d, row)

    def remove(self, paths: list[str], cached: bool = False) -> list[str]:
        """Stop tracking paths (and delete them from disk unless ``cached``); return what was removed."""
        removed: list[str] = []
        with self.locked():
            rows_out: list[StageRow] = []
            deletes: list[str] = []
            for p in paths:
                rel = self.rel_path(p)
                matched = [r for r in self.stage.iter_rows(rel)] if rel else list(self.stage.iter_rows())
                own = self.stage.get(rel) if rel else None
                if own is not None and own not in matched:
                    matched.append(own)
                matched = [r for r in matched if r.entry is not None]
                if not matched:
                    raise UsageError(f"{p} is not tracked", "`datactl status` lists what is tracked")
                for row in matched:
                    if not cached:
                        abs_path = self._abs(row.path)
                        if os.path.lexists(abs_path) and not self._disk_matches(row, DiskEntry(row.path, row.entry.kind, os.lstat(abs_path))):  # type: ignore[union-attr]
                            raise LocalChanges(
                                f"{row.path} has changes that were not added",
                                "use --cached to keep the file and only stop tracking it",
                            )
                    if row.head is None:
                        deletes.append(row.path)
                    else:
                        rows_out.append(StageRow(row.path, None, None, row.head))
                    removed.append(row.path)
            self._refresh = []
            self.stage.write(rows_out, deletes)
            if not cached:
                for path in removed:
                    abs_path = self._abs(path)
                    if os.path.lexists(abs_path):
                        os.unlink(abs_path)
                    self._prune_empty_dirs(path)
        return removed

    def _prune_empty_dirs(self, rel: str) -> None:
        parts = rel.split("/")[:-1]
        while parts:
            d = self._abs("/".join(parts))
            try:
                os.rmdir(d)
            except OSError:
                return
            parts.pop()

    # -- commit --------------------------------------------------------------

    def _recover_pending_commit(self) -> None:
        """Finish a commit whose ref moved but whose stage update was cut short."""
        pending = self.stage.get_meta("pending_commit")
        if pending is None:
            return
        if self.repo.refs.get(self.head_ref) == pending:
            self.stage.finish_commit(pending)
        else:
            self.stage.set_meta("pending_commit", None)

    def commit(
        self,
        message: str,
        *,
        tags: tuple[str, ...] | list[str] = (),
        metadata: dict[str, Any] | None = None,
        inputs: tuple[str, ...] | list[str] = (),
        author: str | None = None,
        allow_empty: bool = False,
        verify: bool = True,
        from_old: bool = False,
    ) -> str:
        """Record the staged files as a new version; return its commit id.

        The new version follows the dataset's latest one. When an older
        version is checked out this is refused (``NotAtLatest``), since the
        commit would silently undo what the later versions changed, unless
        ``from_old`` says that is the intent.

        With ``[validate] on_commit = true`` in datactl.toml the rules run on
        the staged files first and a failure refuses the commit
        (``ValidationFailed``); ``verify=False`` skips them.
        """
        input_ids = tuple(dict.fromkeys(resolve_input(self, r) for r in inputs))
        tag_refs = [tag_ref(self.name, t) for t in tags]
        merge_head = self.stage.get_meta("merge_head")  # set by `datactl merge` until it is committed
        with self.locked():
            for ref in tag_refs:
                if self.repo.refs.get(ref) is not None:
                    raise UsageError(f"tag {ref.rsplit('/', 1)[-1]} already exists", "pick another tag name")
            if self.stage.count() == 0 and self.head is None and not allow_empty:
                raise NothingToCommit("nothing to commit: no files are staged", "add files with `datactl add PATH`")
            try:
                tree_id = build_tree(self.repo, self.stage.iter_staged())
                current = self.repo.refs.get(self.head_ref)
                if current is not None and self.head is not None and current != self.head and merge_head is None and not from_old:
                    raise NotAtLatest(
                        f"HEAD {self.head[:12]} is an older version of {self.name}, whose latest is {current[:12]}: "
                        "a commit would undo what the later versions changed",
                        f"run `datactl checkout {self.name}` and redo your changes there, or commit with --from-old "
                        "to make this old version plus your changes the latest",
                    )
                if not allow_empty and merge_head is None and self.head is not None and self.repo.read_commit(self.head).tree == tree_id:
                    raise NothingToCommit("nothing to commit: the staged files equal HEAD", "`datactl add` your changes first")
                if verify:
                    run_commit_rules(self.repo, self.root, tree_id)
                commit = Commit(
                    tree=tree_id,
                    parents=tuple(p for p in (current, merge_head) if p),
                    kind=self.kind,
                    name=self.name,
                    message=message,
                    author=author or default_author(),
                    time=now_iso(),
                    tags=tuple(tags),
                    metadata=dict(metadata or {}),
                    inputs=input_ids,
                )
                commit_id = self.repo.put(ObjectType.COMMIT, commit.encode())
                self.repo.flush()
            except BaseException:
                self.repo.abort()
                raise
            self.stage.set_meta("pending_commit", commit_id)
            self.repo.refs.update(self.head_ref, commit_id, expected=current)
            self.stage.finish_commit(commit_id)
            for ref in tag_refs:
                self.repo.refs.update(ref, commit_id, expected=None)
            record_local_commit(self.repo, commit_id)  # the store's lineage index; never fails the commit
        return commit_id

    def create_tag(self, tag: str, ref: str = "HEAD", force: bool = False) -> str:
        """Point tag ``tag`` of this dataset at ``ref``; return the commit id."""
        commit_id = self.resolve(ref)
        name = tag_ref(self.name, tag)
        current = self.repo.refs.get(name)
        if current is not None and not force:
            raise UsageError(f"tag {tag} already exists (at {current[:12]})", "use --force to move it")
        self.repo.refs.update(name, commit_id, expected=current)
        return commit_id

    def list_tags(self) -> dict[str, str]:
        prefix = f"tags/{self.name}/"
        return {r.ref[len(prefix) :]: r.commit for r in self.repo.refs.list(prefix)}

    # -- checkout ------------------------------------------------------------

    def checkout(self, ref: str, force: bool = False, progress: ProgressReporter | None = None) -> CheckoutResult:
        """Make the workspace hold version ``ref`` exactly; untracked files are never touched."""
        progress = progress or NullProgress()
        commit_id = self.resolve(ref)
        tree_id = self.repo.read_commit(commit_id).tree
        with self.locked():
            if not force:
                st = self.status()
                if not st.clean:
                    changed = [c.path for c in (st.staged + st.unstaged)][:10]
                    raise LocalChanges(
                        f"checkout would overwrite local changes: {', '.join(changed)}",
                        "commit them, or use --force to discard them",
                    )
            plan = self._plan_checkout(tree_id, force)
            result = CheckoutResult(commit_id, kept=plan.kept)
            progress.start("checkout", plan.bytes)
            try:
                for row in plan.deletes:
                    abs_path = self._abs(row.path)
                    if os.path.islink(abs_path) or os.path.isfile(abs_path):
                        os.unlink(abs_path)
                    self._prune_empty_dirs(row.path)
                    result.deleted += 1
                self.stage.write([], [r.path for r in plan.deletes])
                rows: list[StageRow] = []
                for path, entry in plan.writes:
                    st = self._write_entry(path, entry, progress)
                    rows.append(StageRow(path, entry, st, head_info(entry)))
                    result.written += 1
                    result.bytes_written += entry.size
                    if len(rows) >= 1000:
                        self.stage.write(rows)
                        rows = []
                self.stage.write(rows + plan.head_updates)
                self.stage.set_meta("head", commit_id)
            finally:
                progress.stop()
        return result

    def _plan_checkout(self, tree_id: str, force: bool) -> "_CheckoutPlan":
        plan = _CheckoutPlan()
        conflicts: list[str] = []
        dir_collisions: list[str] = []
        target = walk_files(self.repo, tree_id)
        for path, t, row in merge_by_path(target, self.stage.iter_rows(), lambda x: x[0], lambda r: r.path):
            staged = row.entry if row is not None else None
            if t is None:
                if staged is not None:
                    plan.deletes.append(row)  # type: ignore[arg-type]
                else:
                    plan.stale_rows.append(row.path)  # type: ignore[union-attr]
                continue
            entry = t[1]
            abs_path = self._abs(path)
            if not self.in_scope(path):
                # Tracked but not materialized: the row follows the version, the disk is left alone.
                plan.head_updates.append(StageRow(path, entry, None, head_info(entry)))
                continue
            if staged is not None:
                on_disk = os.path.lexists(abs_path)
                if same_content(staged, head_info(entry)) and on_disk and self._disk_matches(row, DiskEntry(path, staged.kind, os.lstat(abs_path))):
                    plan.kept += 1
                    plan.head_updates.append(StageRow(path, row.entry, row.stat, head_info(entry)))  # type: ignore[union-attr]
                    continue
            elif os.path.isdir(abs_path) and not os.path.islink(abs_path):
                dir_collisions.append(path)
            elif os.path.lexists(abs_path) and not force:
                conflicts.append(path)
                continue
            plan.writes.append((path, entry))
            plan.bytes += entry.size if entry.kind == FILE else 0
        self._refresh = []
        # A folder where the version has a file is fine only if it holds nothing but tracked files being deleted.
        leaving = {row.path for row in plan.deletes}
        for path in dir_collisions:
            for dirpath, _dirs, files in os.walk(self._abs(path)):
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                if any(f"{rel_dir}/{f}" not in leaving for f in files):
                    conflicts.append(path + "/")
                    break
        if conflicts:
            raise LocalChanges(
                f"checkout would overwrite untracked files: {', '.join(conflicts[:10])}",
                "move them away, or use --force to overwrite them",
            )
        if plan.stale_rows:
            self.stage.write([], plan.stale_rows)
        return plan

    def _write_entry(self, path: str, entry: TreeEntry, progress: ProgressReporter) -> StatInfo:
        dest = safe_join(self.root, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.isdir(dest) and not os.path.islink(dest):
            try:
                os.rmdir(dest)
            except OSError:
                raise LocalChanges(f"{path} is a folder with untracked files where the version has a file", "move it away and retry") from None
        if entry.kind == SYMLINK:
            tmp = f"{dest}{TEMP_SUFFIX}"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(entry.target or "", tmp)
            os.replace(tmp, dest)
        else:
            restore_file(self.repo, entry, dest, path, progress.advance)
        read_at = time.time_ns()
        return StatInfo.of(os.lstat(dest), read_at)


@dataclass
class _CheckoutPlan:
    writes: list[tuple[str, TreeEntry]] = field(default_factory=list)
    deletes: list[StageRow] = field(default_factory=list)
    head_updates: list[StageRow] = field(default_factory=list)
    stale_rows: list[str] = field(default_factory=list)
    kept: int = 0
    bytes: int = 0


class _AddBatch:
    """Stages files, writing rows only once the objects they name are durable."""

    def __init__(self, ws: Workspace, result: AddResult, progress: ProgressReporter) -> None:
        self.ws = ws
        self.result = result
        self.progress = progress
        self.rows: list[StageRow] = []
        self.deletes: list[str] = []
        self._bytes_since_flush = 0

    def consider(self, d: DiskEntry, row: StageRow | None) -> None:
        if row is not None and row.entry is not None and row.entry.kind == d.kind and row.stat is not None and row.stat.matches(d.st):
            self.result.unchanged += 1
            return
        abs_path = self.ws._abs(d.path)
        name = d.path.rsplit("/", 1)[-1]
        read_at = time.time_ns()
        if d.kind == SYMLINK:
            entry = symlink_entry(name, _read_link(abs_path, d.path))
        else:
            content = store_file(self.ws.repo, self.ws.chunker, abs_path, self.progress.advance)
            entry = TreeEntry(name, FILE, _perm(d.st), content.size, content.digest, content.chunks, content.chunklist)
            self.result.bytes_read += content.size
            self._bytes_since_flush += content.size
        after = os.lstat(abs_path)
        st = StatInfo.of(after, read_at)
        if after.st_size != d.st.st_size or after.st_mtime_ns != d.st.st_mtime_ns:
            st = StatInfo(st.size, st.mtime_ns, st.ctime_ns, st.ino, st.mode, trusted=False)  # changed while read
        head = row.head if row is not None else None
        if row is None or row.entry is None:
            self.result.added += 1
        elif same_content(entry, head_info(row.entry)):
            self.result.unchanged += 1
        else:
            self.result.modified += 1
        self.rows.append(StageRow(d.path, entry, st, head))
        if len(self.rows) >= ROW_BATCH or self._bytes_since_flush >= self.ws.repo.config.pack_size:
            self.flush()

    def remove(self, row: StageRow) -> None:
        if row.entry is None:
            return
        self.result.removed += 1
        if row.head is None:
            self.deletes.append(row.path)
        else:
            self.rows.append(StageRow(row.path, None, None, row.head))

    def flush(self) -> None:
        self.ws.repo.flush()
        self.ws.stage.write(self.rows, self.deletes)
        self.rows, self.deletes = [], []
        self._bytes_since_flush = 0
