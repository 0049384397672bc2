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

import functools
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from datactl.core.author import default_author
from datactl.core.closing import Closing
from datactl.core.errors import DatabaseDamaged, DatactlError, LocalChanges, NotAtLatest, NothingToCommit, UsageError
from datactl.core.progress import NullProgress, ProgressReporter, draws
from datactl.core.settings import settings_path
from datactl.core.units import now_iso
from datactl.format.layout import KINDS, WorkspaceLayout, check_name, head_ref, tag_ref, tags_prefix
from datactl.format.objects import FILE, Commit, TreeEntry
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import StoreConfig
from datactl.remote.locate import find_workspace_root
from datactl.store.backend import local_store_backend
from datactl.store.chunker import Chunker
from datactl.store.repository import write_store_config
from datactl.store.revparse import RefContext, resolve_ref
from datactl.store.sourcerecord import source_targets
from datactl.store.trees import build_tree_from_dicts, patch_tree
from datactl.store.walk import walk_files
from datactl.workspace.add import AddBatch, AddResult
from datactl.workspace.checkout import (
    CheckoutResult,
    FileListing,
    already_there,
    apply_checkout,
    apply_restore,
    plan_checkout,
    plan_restore,
    plan_switch,
    prune_empty_dirs,
)
from datactl.workspace.disk import DiskState
from datactl.workspace.external import ExternalAdd, changed_sources, external_paths
from datactl.workspace.fresh import apply_fresh, plan_fresh
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.opening import commit_rules_may_be_on, database_present, open_store, read_workspace_config, scope_test, workspace_lock
from datactl.workspace.scan import DiskEntry, ScanProblem
from datactl.workspace.shallow import history_cut
from datactl.workspace.stage import STAGE_HINT, Stage, StageRow
from datactl.workspace.status import PathChange, Status
from storage_backends import BackendError

if TYPE_CHECKING:
    from datactl.upkeep.consolidate import ConsolidateReport

_log = logging.getLogger("datactl.workspace")


@dataclass(frozen=True)
class RefMove:
    """Move the dataset's ref from ``expected`` (None: it does not exist yet) to ``to``."""

    to: str
    expected: str | None


CONFIG_TEMPLATE = """\
# datactl workspace settings
[dataset]
name = "{name}"
kind = "{kind}"   # "dataset" or "model"
"""


class Workspace(Closing):
    """A checked-out dataset or model with its staging table and local store."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.layout = WorkspaceLayout(self.root)
        self.dotdir = self.layout.dotdir
        self.config = read_workspace_config(self.root)
        if not database_present(self.layout.stage_db):
            raise DatabaseDamaged(f"{self.layout.stage_db} is missing", STAGE_HINT)
        self.repo = open_store(self.layout)
        try:
            self.stage = Stage(self.layout.stage_db)
        except BaseException:
            self.repo.close()
            raise
        self.disk = DiskState(self.root, self.stage)
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
        Stage(layout.stage_db).close()  # from now on a missing stage.db is damage, not a new workspace
        return cls(root)

    @classmethod
    def open(cls, path: str | None = None) -> "Workspace":
        """Open the workspace that contains ``path`` (default: the current folder)."""
        return cls(find_workspace_root(path))

    def close(self) -> None:
        self.repo.close()
        self.stage.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the workspace lock (one changing command at a time)."""
        with workspace_lock(self.layout):
            yield

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
        return self.stage.get_sparse()

    def in_scope(self, path: str) -> bool:
        """Whether ``path`` is materialized on disk (always, unless the workspace is sparse)."""
        return scope_test(self.sparse)(path)

    def ref_context(self) -> RefContext:
        return RefContext(self.name, self.kind, self.head)

    def resolve(self, ref: str) -> str:
        """The commit id a REF names (see ``datactl.store.revparse``); past a shallow history's cut, BelowShallowCut."""
        ctx = RefContext(self.name, self.kind, self.head, history_cut(self.stage, self.repo))
        return resolve_ref(self.repo.ref_lookup(), ref, ctx)

    def rel_path(self, path: str) -> str:
        """``path`` (absolute or relative to the current folder) as a workspace-relative '/' path."""
        abs_path = os.path.abspath(path)
        rel = os.path.relpath(abs_path, self.root)
        if rel == os.curdir:
            return ""
        if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
            raise UsageError(f"{path} is outside the workspace {self.root}")
        return rel.replace(os.sep, "/")

    # -- reading the disk ----------------------------------------------------

    def iter_disk_entries(self, problems: list[ScanProblem] | None = None) -> Iterator[tuple[str, TreeEntry]]:
        """(path, entry) for every tracked-or-not file on disk, in path order, using the stat cache."""
        return self.disk.entries(problems)

    def status(self) -> Status:
        """Stage versus HEAD, and disk versus stage."""
        latest = self.repo.refs.get(self.head_ref)
        result = Status(head=self.head, latest=latest if latest != self.head else None, interrupted=self.interrupted_checkout)
        in_scope = scope_test(self.sparse)
        external: list[tuple[str, TreeEntry]] = []

        def read_stage() -> None:  # the staged changes (a read of the whole stage), while the scan's workers start
            result.staged.extend(PathChange.of_staged_row(row) for row in self.stage.staged_changes())
            # External files are checked against their sources whether or not their stat vouches for the local copy.
            external.extend((row.path, row.entry) for row in self.stage.external_rows() if row.entry is not None)

        self.disk.forget_refreshed()
        scan = self.disk.scan(IgnoreRules(self.root), on_problem=result.problems.append, vouched=lambda _d: None, in_scope=in_scope, meanwhile=read_stage)
        for path, d, row in scan:
            tracked = row is not None and row.entry is not None
            if d is None:
                if tracked and in_scope(path):
                    result.unstaged.append(PathChange(path, "deleted", row.entry.size))  # type: ignore[union-attr]
            elif not tracked:
                result.untracked.append(path)
            elif not self.disk.matches(row, d):
                result.unstaged.append(PathChange(path, "modified", d.st.st_size))
        self.disk.save_refreshed()
        moved = changed_sources(self.repo.sources, external)
        result.unstaged = sorted(result.unstaged + [PathChange(p, "source changed", 0) for p in moved], key=lambda c: c.path)
        return result

    # -- add / rm ------------------------------------------------------------

    @functools.cached_property
    def chunker(self) -> Chunker:
        """The store's chunker, made when a command first stores a file."""
        return Chunker(self.repo.config.chunker)

    def add(self, paths: list[str], force: bool = False, progress: ProgressReporter | None = None) -> AddResult:
        """Stage files and folders (new, changed and deleted files under each)."""
        progress = progress or NullProgress()
        result = AddResult()
        rules = IgnoreRules(self.root)
        targets = []
        for p in paths:
            rel = self.rel_path(p)
            abs_path = self.disk.abs_path(rel)
            if rel and rules.internal(rel, os.path.isdir(abs_path)):
                raise UsageError(f"{p} is datactl's own file and cannot be tracked")
            exists = os.path.lexists(abs_path)
            if not exists and not self.stage.has_rows_under(rel):
                raise UsageError(f"{p} did not match any file", "check the path; `datactl status` lists what is tracked")
            if exists and rel and not force and rules.ignored(rel, os.path.isdir(abs_path)):
                raise UsageError(f"{p} is ignored by .datactlignore", "use --force to add it anyway")
            targets.append(rel)
        with self.locked():
            from datactl.workspace.addworkers import IngestWorkers  # only an add needs it: not at every command's start
            offload = functools.partial(IngestWorkers.start, self.root, self.stage, progress)  # for many files
            with AddBatch(self.repo, self.stage, self.chunker, self.disk, result, progress, offload=offload) as batch:
                progress.start("adding", batch.bytes_to_read(targets, rules) if draws(progress) else None)
                try:
                    for rel in targets:
                        batch.add_path(rel, rules, scope_test(self.sparse))
                    batch.finish()
                except BaseException:
                    self.repo.abort()
                    raise
                finally:
                    progress.stop()
        return result

    def add_external(self, urls: list[str], dest: str | None = None, copy: bool = False, progress: ProgressReporter | None = None) -> AddResult:
        """Record the objects the URLs (objects, prefixes, globs) name as external files under ``dest``; with
        ``copy``, as ordinary stored files."""
        progress, result = progress or NullProgress(), AddResult()
        files = source_targets(self.repo.sources, urls, self.rel_path(dest) if dest else "")
        with self.locked():
            progress.start("recording", None)
            try:
                ExternalAdd(self.root, self.stage, self.repo, result).run(files, stage_rows=not copy, on_file=progress.advance)
            finally:
                progress.stop()
        return self.add([self.disk.abs_path(t) for _, t in files], force=True, progress=progress) if copy else result

    def update(self, paths: list[str], progress: ProgressReporter | None = None) -> AddResult:
        """Re-record external files from their sources as they are now (staged for the next commit)."""
        progress, result = progress or NullProgress(), AddResult()
        files = external_paths(self.stage, [self.rel_path(p) for p in paths])
        with self.locked():
            ExternalAdd(self.root, self.stage, self.repo, result).run(files, stage_rows=True, on_file=progress.advance)
        return result

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
                        abs_path = self.disk.abs_path(row.path)
                        if os.path.lexists(abs_path) and not self.disk.matches(row, DiskEntry(row.path, row.entry.kind, os.lstat(abs_path))):  # type: ignore[union-attr]
                            raise LocalChanges(
                                f"{row.path} has changes that were not added",
                                "use --cached to keep the file and only stop tracking it",
                            )
                    if row.head is None:
                        deletes.append(row.path)
                    else:
                        rows_out.append(StageRow(row.path, None, None, row.head))
                    removed.append(row.path)
            self.disk.forget_refreshed()
            self.stage.write(rows_out, deletes)
            if not cached:
                for path in removed:
                    abs_path = self.disk.abs_path(path)
                    if os.path.lexists(abs_path):
                        os.unlink(abs_path)
                    prune_empty_dirs(self.root, path)
        return removed

    # -- commit --------------------------------------------------------------

    def _recover_pending_commit(self) -> None:
        """Finish a commit whose ref moved but whose stage update was cut short, and a ref move a pull or merge
        left undone after its checkout."""
        pending = self.stage.get_meta("pending_commit")
        if pending is not None:
            if self.repo.refs.get(self.head_ref) == pending:
                self.stage.finish_commit(pending)
            else:
                self.stage.set_meta("pending_commit", None)
        move = self.stage.get_meta("pending_ref")
        if move is not None:
            want = json.loads(move)
            if self.head == want["head"] and self.repo.refs.get(self.head_ref) == want["expected"]:
                self.repo.refs.update(self.head_ref, want["commit"], expected=want["expected"])
            elif self.interrupted_checkout == want["head"]:
                return  # checking that version out again finishes the checkout, then this
            self.stage.set_meta("pending_ref", None)

    @property
    def interrupted_checkout(self) -> str | None:
        """The version whose checkout was cut short after it started changing files, or None."""
        return self.stage.get_meta("checkout")

    def _refuse_if_interrupted(self, what: str) -> None:
        pending = self.interrupted_checkout
        if pending is not None:
            raise LocalChanges(
                f"the checkout of {pending[:12]} was cut short, so the workspace holds a mix of two versions; {what} would record that mix",
                f"finish it with `datactl checkout {pending[:12]}` (or go back with `datactl checkout {(self.head or pending)[:12]} --force`)",
            )

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
        trust_plugins: bool = False,
    ) -> str:
        """Record the staged files as a new version; return its commit id.

        The new version follows the dataset's latest one. When an older
        version is checked out this is refused (``NotAtLatest``), since the
        commit would silently undo what the later versions changed, unless
        ``from_old`` says that is the intent.

        With ``[validate] on_commit = true`` in datactl.toml the rules run on
        the staged files first and a failure refuses the commit
        (``ValidationFailed``); ``verify=False`` skips them. Plugin rules
        named there are imported only with ``trust_plugins`` (or
        DATACTL_TRUST_PLUGINS=1; see docs/security.md).
        """
        input_ids: tuple[str, ...] = ()
        if inputs:
            from datactl.workspace.inputs import resolve_input  # the lineage layer: only a commit naming inputs needs it

            input_ids = tuple(dict.fromkeys(resolve_input(self, r) for r in inputs))
        tag_refs = [tag_ref(self.name, t) for t in tags]
        merge_head = self.stage.get_meta("merge_head")  # set by `datactl merge` until it is committed
        self._refuse_if_interrupted("a commit")
        with self.locked():
            for ref in tag_refs:
                if self.repo.refs.get(ref) is not None:
                    raise UsageError(f"tag {ref.rsplit('/', 1)[-1]} already exists", "pick another tag name")
            if self.head is None and not allow_empty and self.stage.count() == 0:  # counted only then: a scan of every row
                raise NothingToCommit("nothing to commit: no files are staged", "add files with `datactl add PATH`")
            current = self.repo.refs.get(self.head_ref)
            if current is not None and self.head is not None and current != self.head and merge_head is None and not from_old:
                raise NotAtLatest(
                    f"HEAD {self.head[:12]} is an older version of {self.name}, whose latest is {current[:12]}: "
                    "a commit would undo what the later versions changed",
                    f"run `datactl checkout {self.name}` and redo your changes there, or commit with --from-old "
                    "to make this old version plus your changes the latest",
                )
            try:
                if self.head is None:
                    tree_id = build_tree_from_dicts(self.repo, self.stage.iter_staged_dicts())
                else:  # HEAD's tree with the staged changes: the cost of a commit follows what changed
                    base = self.repo.read_commit(self.head).tree
                    tree_id = patch_tree(self.repo, base, ((row.path, row.entry) for row in self.stage.staged_changes()))
                if not allow_empty and merge_head is None and self.head is not None and self.repo.read_commit(self.head).tree == tree_id:
                    raise NothingToCommit("nothing to commit: the staged files equal HEAD", "`datactl add` your changes first")
                if verify and commit_rules_may_be_on(self.root):
                    # Imported here: the rules and their table engines are ~70 ms that a commit without them never pays.
                    from datactl.validation.hook import run_commit_rules

                    run_commit_rules(self.repo, self.root, tree_id, trust_plugins=trust_plugins, parent=current, cache_dir=self.layout.tables_dir)
                commit = Commit(
                    tree=tree_id, parents=tuple(p for p in (current, merge_head) if p), kind=self.kind, name=self.name, message=message,
                    author=author or default_author(), time=now_iso(), tags=tuple(tags), metadata=dict(metadata or {}), inputs=input_ids,
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
            from datactl.lineage.index import record_local_commit

            record_local_commit(self.repo, commit_id)  # the store's lineage index; never fails the commit
            self.consolidate_packs()
        return commit_id

    def consolidate_packs(self, max_small: int | None = None) -> "ConsolidateReport | None":
        """Merge the store's small packs once it holds more than ``max_small`` (under the store lock, skipped while gc holds it).

        Runs after every commit and fetch; it never fails them (the version is committed whatever happens
        here, and the next one tries again). Returns None when there was nothing to do or it failed.
        """
        from datactl.upkeep.smallpacks import MAX_SMALL_PACKS, needs_consolidation

        max_small = MAX_SMALL_PACKS if max_small is None else max_small
        if not needs_consolidation(self.repo.index, self.repo.config.pack_size, max_small):
            return None
        # Imported only now: merging packs pulls in gc's planning (10-20 ms), which almost no commit needs.
        from datactl.upkeep.consolidate import consolidate_packs
        from datactl.upkeep.targets import StoreTarget

        index = self.repo.index
        target = StoreTarget(
            self.repo.backend, f"the store of {self.root}", self.layout.tmp_dir, self.repo.config.pack_size,
            after_change=lambda change: index.replace_packs(change.removed_packs, change.added_packs),
        )
        try:
            return consolidate_packs(target, delete_now=True, max_small=max_small)
        except (DatactlError, BackendError) as exc:
            _log.warning("small packs of %s not merged: %s", self.root, exc)
            return None

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
        prefix = tags_prefix(self.name)
        return {r.ref[len(prefix) :]: r.commit for r in self.repo.refs.list(prefix)}

    # -- checkout ------------------------------------------------------------

    def checkout(
        self,
        ref: str,
        force: bool = False,
        progress: ProgressReporter | None = None,
        *,
        scope: list[str] | None = None,
        move_ref: RefMove | None = None,
        fetch: Callable[[FileListing], None] | None = None,
    ) -> CheckoutResult:
        """Make the workspace hold version ``ref`` exactly; untracked files are never touched.

        ``scope`` replaces the sparse paths (None keeps them). ``move_ref`` moves the dataset's ref once the version is
        checked out (as a pull or a fast-forward does), and only then; a crash in between is finished on the next open.
        ``fetch`` gets the files to write once planned, before any is written. All or nothing (``checkout`` module)."""
        fetch = fetch or (lambda _files: None)
        progress = progress or NullProgress()
        commit_id = self.resolve(ref)
        tree_id = self.repo.read_commit(commit_id).tree
        with self.locked():
            # Moving between versions with nothing pending (no interrupted checkout, the same sparse paths) looks
            # only at the paths that differ between HEAD and the version: its cost follows the change.
            head = self.head
            if not force and head is not None and scope is None and self.interrupted_checkout is None:
                head_tree = self.repo.read_commit(head).tree
                plan = plan_switch(self.repo, self.stage, self.disk, head_tree, tree_id, scope_test(self.sparse), f"version {commit_id[:12]}")
                fetch(lambda: plan.writes)
                return self._carry_out(lambda: apply_checkout(self.repo, self.stage, self.disk, plan, commit_id, progress), plan.bytes, commit_id, progress, move_ref)
            if not force:
                st = self.status()
                changed = [c.path for c in (st.staged + st.unstaged)]
                if changed and self.interrupted_checkout == commit_id:
                    # Finishing a checkout that was cut short: what it already placed or deleted is not a change.
                    done = already_there(self.repo, self.disk, tree_id, changed)
                    changed = [p for p in changed if p not in done]
                if changed:
                    changed = changed[:10]
                    raise LocalChanges(
                        f"checkout would overwrite local changes: {', '.join(changed)}",
                        "commit them, or use --force to discard them",
                    )
            in_scope = scope_test(self.sparse if scope is None else scope)
            label = f"version {commit_id[:12]}"
            # Finishing a clone's checkout cut short: a file it placed but did not record yet is its own to overwrite.
            overwrite = force or self.stage.interrupted_fresh_checkout() == commit_id
            # A workspace that tracks nothing yet (a clone) has nothing to lose: its checkout streams, in constant memory.
            if self.head is None and self.stage.count() == 0:
                total = plan_fresh(self.repo, self.disk, tree_id, overwrite, in_scope, label)
                fetch(lambda: walk_files(self.repo, tree_id))
                from datactl.workspace.checkoutworkers import CheckoutWorkers  # only a big fresh checkout needs it
                offload = functools.partial(CheckoutWorkers.start, self.root, progress)
                fresh = functools.partial(apply_fresh, self.repo, self.stage, self.disk, tree_id, commit_id, in_scope, progress, scope, offload)
                return self._carry_out(fresh, total, commit_id, progress, move_ref)
            full = plan_checkout(self.repo, self.stage, self.disk, tree_id, overwrite, in_scope, label)
            fetch(lambda: full.writes)
            return self._carry_out(lambda: apply_checkout(self.repo, self.stage, self.disk, full, commit_id, progress, scope), full.bytes, commit_id, progress, move_ref)

    def _carry_out(
        self, run: Callable[[], CheckoutResult], total: int, commit_id: str, progress: ProgressReporter, move_ref: RefMove | None
    ) -> CheckoutResult:
        """Run a planned checkout (``run`` writes ``total`` bytes), then move the dataset's ref when asked."""
        if move_ref is not None:
            self.stage.set_meta("pending_ref", json.dumps({"head": commit_id, "commit": move_ref.to, "expected": move_ref.expected}))
        progress.start("checkout", total)
        try:
            result = run()
        except BaseException:
            if self.interrupted_checkout is None:
                self.stage.set_meta("pending_ref", None)  # nothing moved
            raise
        finally:
            progress.stop()
        if move_ref is not None:
            self.repo.refs.update(self.head_ref, move_ref.to, expected=move_ref.expected)
            self.stage.set_meta("pending_ref", None)
        return result

    def restore(self, ref: str, paths: list[str], progress: ProgressReporter | None = None) -> CheckoutResult:
        """Put the files under ``paths`` (workspace-relative files or folders) of version ``ref`` on disk and in
        the stage, as git's ``checkout REF -- PATH`` does; HEAD stays.

        What is at those paths is overwritten, as asked; other files are left
        alone. A partial workspace adds the paths to those it holds.
        """
        progress = progress or NullProgress()
        commit_id = self.resolve(ref)
        writes = plan_restore(self.repo, self.repo.read_commit(commit_id).tree, paths, f"version {commit_id[:12]}")
        with self.locked():
            self.disk.forget_refreshed()
            progress.start("checkout", sum(e.size for _, e in writes if e.kind == FILE))
            try:
                result = apply_restore(self.repo, self.stage, self.root, writes, commit_id, progress)
            finally:
                progress.stop()
            scope = self.sparse
            if scope and not all(scope_test(scope)(p) for p in paths):
                self.stage.set_sparse(scope + list(paths))
        return result
