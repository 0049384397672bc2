"""Checks that CI runs, as library calls: ``validate`` and ``verify`` a version, compare two versions.

Each works on a version in the current workspace's store, or (``remote``) on
a version read in place on a remote store: outside a workspace (a CI job),
``remote`` is a URL, a path or a remote named in ./datactl.toml, and ``ref``
is ``NAME`` or ``NAME@VERSION`` (or HEAD when ./datactl.toml names the dataset).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datactl.core.errors import DatactlError, NotAWorkspace, UsageError
from datactl.core.progress import ProgressReporter
from datactl.remote.locate import RemoteSpec, default_remote, index_cache_dir, resolve_remote, settings_root, workspace_root
from datactl.remote.remotestore import RemoteStore
from datactl.remote.source import remote_source, resolve_on_remote
from datactl.store.diff import DiffResult, diff_tree_and_entries, diff_trees
from datactl.store.source import VersionSource, local_source
from datactl.store.stats import tree_totals
from datactl.workspace.opening import read_workspace_config, scope_test
from datactl.workspace.shallow import shallow_commits
from datactl.workspace.workspace import Workspace

if TYPE_CHECKING:  # imported by validate and verify: a diff needs neither (rules and table engines are ~70 ms of start-up)
    from datactl.upkeep.verify import MustBeLocal, StoreVerifyReport
    from datactl.validation import Rule, ValidationReport


@dataclass(frozen=True)
class RemoteVersionContext:
    """A remote store to read a version from, and what a bare ref means there."""

    spec: RemoteSpec
    name: str | None  # the dataset that HEAD means (from the workspace, or ./datactl.toml)
    kind: str
    cache_dir: str

    @property
    def tables_dir(self) -> str:
        """Where table statistics of this remote's files are kept, by digest."""
        return os.path.join(self.cache_dir, "tables")


def remote_context(remote: str, root: str | None = None, options: dict[str, Any] | None = None) -> RemoteVersionContext:
    """The store ``remote`` names, and the dataset HEAD means: from the workspace, or ./datactl.toml in a CI job."""
    ws_root = workspace_root(root)
    where = ws_root or settings_root(root)
    spec = resolve_remote(where, remote, options)
    name, kind = None, "dataset"
    if where is not None:
        try:
            cfg = read_workspace_config(where)
            name, kind = cfg.name, cfg.kind
        except DatactlError:
            pass  # a datactl.toml with rules and remotes only
    return RemoteVersionContext(spec.with_options(options), name, kind, index_cache_dir(ws_root))


def _no_head(ref: str | None, ctx: RemoteVersionContext) -> None:
    if (ref is None or ref == "HEAD") and ctx.name is None:
        raise UsageError("name the version to read: NAME or NAME@VERSION", "outside a workspace there is no HEAD")


def open_source(
    ref: str | None = None,
    *,
    remote: str | None = None,
    root: str | None = None,
    options: dict[str, Any] | None = None,
    jobs: int = 8,
    base: str | None = None,
) -> VersionSource:
    """The files of version ``ref``: from the workspace's store, or (``remote``) from a remote store, read in place.

    ``base`` names the version checks compare it with (default: its first parent), resolved in the same store.
    """
    if remote is None:
        ws_root = workspace_root(root)
        if ws_root is None:
            raise NotAWorkspace("not in a datactl workspace", "run it inside a workspace, or name a store with --remote URL")
        ws = Workspace(ws_root)
        try:
            src = local_source(ws.repo, ws.resolve(ref or "HEAD"))
            src.base_id = ws.resolve(base) if base is not None else None
            src.cache_dir = ws.layout.tables_dir
        except BaseException:
            ws.close()
            raise
        src.on_close(ws.close)
        return src
    ctx = remote_context(remote, root, options)
    _no_head(ref, ctx)
    rs = RemoteStore(ctx.spec, ctx.cache_dir)
    try:
        src = remote_source(rs, ref or "HEAD", name=ctx.name, kind=ctx.kind, jobs=jobs)
        try:
            src.base_id = resolve_on_remote(rs, src.reader, base, ctx.name, ctx.kind) if base is not None else None
        except BaseException:
            src.close()
            raise
        src.cache_dir = ctx.tables_dir
    except BaseException:
        rs.close()
        raise
    src.on_close(rs.close)
    return src


def validate(
    ref: str | None = None,
    *,
    rules: list[Rule] | list[dict] | dict | None = None,
    rules_file: str | None = None,
    remote: str | None = None,
    root: str | None = None,
    source: VersionSource | None = None,
    workers: int | None = None,
    progress: ProgressReporter | None = None,
    trust_plugins: bool = False,
    base: str | None = None,
) -> ValidationReport:
    """Check version ``ref`` against rules; return the report (``report.ok``, ``report.exit_code``).

    ``rules`` may be Rule objects, a list of rule tables (as in
    ``[[validate.rules]]``) or a whole ``[validate]`` table; by default they
    come from ``rules_file`` or the workspace's datactl.toml. ``remote`` reads
    the version in place on a remote store; ``source`` checks any VersionSource.
    A configuration mistake raises (UsageError, exit code 2); a broken or
    unreadable version does not: it is in the report. Plugins named in a file
    are imported only with ``trust_plugins`` (or DATACTL_TRUST_PLUGINS=1).
    Rules that compare (``table_stats`` drift limits) compare with ``base``,
    a ref resolved where the version is read, or by default its first parent;
    with ``source``, set ``source.base_id`` to a commit id instead.
    """
    from datactl.validation import prepare_rules, run_rules

    built, config = prepare_rules(rules, rules_file, root, trust_plugins)
    n_workers = workers or (config.workers if config else 8)
    if source is not None:
        if base is not None:
            raise UsageError("base goes with ref or remote; for a VersionSource, set source.base_id to the commit to compare with")
        return run_rules(source, built, workers=n_workers, progress=progress)
    with open_source(ref, remote=remote, root=root, jobs=n_workers, base=base) as src:
        return run_rules(src, built, workers=n_workers, progress=progress)


def verify(
    ref: str = "HEAD",
    *,
    remote: str | None = None,
    options: dict[str, Any] | None = None,
    deep: bool = False,
    sample: float | None = None,
    seed: int | None = None,
    progress: ProgressReporter | None = None,
) -> StoreVerifyReport:
    """Check that every object of version ``ref`` (its history included) is present, and with ``deep`` or ``sample`` intact.

    In a workspace with a remote (a clone), only HEAD's files in its selection must have their data local: the
    data of older versions and of paths a partial clone left out, if it was never fetched, is counted in
    ``not_fetched`` and is not a problem (``verify --remote`` checks the remote's copy).
    """
    if sample is not None and not 0 < sample <= 1:
        raise UsageError(f"--sample must be a fraction in (0, 1], not {sample}")
    from datactl.upkeep.verify import verify_local, verify_remote
    kwargs: dict[str, Any] = {"deep": deep, "sample": sample, "seed": seed, "progress": progress}
    if remote is None:
        root = workspace_root()
        if root is None:
            raise NotAWorkspace("not in a datactl workspace", "run it inside a workspace, or check a store with --remote URL")
        with Workspace(root) as ws:
            remote_spec = default_remote(ws.root)
            report = verify_local(ws.repo, ws.resolve(ref), must_be_local=_fetched_part(ws) if remote_spec else None, cut=shallow_commits(ws.stage), **kwargs)
            report.fetch_from = remote_spec.label if remote_spec else None
            return report
    ctx = remote_context(remote, None, options)
    _no_head(ref, ctx)
    with RemoteStore(ctx.spec, ctx.cache_dir) as rs:
        return verify_remote(rs, ref, name=ctx.name, kind=ctx.kind, **kwargs)


def _fetched_part(ws: Workspace) -> MustBeLocal:
    """Which files a clone must hold the data of: HEAD's, in its selection; the rest is fetched when needed."""
    head, in_scope = ws.head, scope_test(ws.sparse)
    return lambda commit_id, path: commit_id == head and in_scope(path)


@dataclass(frozen=True)
class VersionDiff:
    """What changed between two versions (or a version and the files on disk), and the size of the old one."""

    result: DiffResult
    base_files: int
    base_bytes: int


def diff_versions(
    ref_a: str | None = None, ref_b: str | None = None, *, remote: str | None = None, options: dict[str, Any] | None = None, measure_base: bool = False
) -> VersionDiff:
    """Changes from ``ref_a`` (default HEAD) to ``ref_b`` (default: the workspace's files), or between two versions on ``remote``.

    ``measure_base`` also counts the files and bytes of the old version (drift limits in percent need them).
    """
    if remote is not None:
        if ref_a is None or ref_b is None:
            raise UsageError("with --remote, give both versions: datactl diff A B --remote R")
        return diff_on_remote(remote, ref_a, ref_b, options, measure_base)
    with Workspace.open() as ws:
        old_tree = ws.repo.read_commit(ws.resolve(ref_a or "HEAD")).tree if (ref_a or ws.head) else None
        if ref_b is None:
            result = diff_tree_and_entries(ws.repo, old_tree, ws.iter_disk_entries())
        else:
            result = diff_trees(ws.repo, old_tree, ws.repo.read_commit(ws.resolve(ref_b)).tree)
        return VersionDiff(result, *(tree_totals(ws.repo, old_tree) if measure_base else (0, 0)))


def diff_on_remote(remote: str, ref_a: str, ref_b: str, options: dict[str, Any] | None = None, measure_base: bool = False) -> VersionDiff:
    """The changes from ``ref_a`` to ``ref_b``, two versions on a remote, reading trees only."""
    ctx = remote_context(remote, None, options)
    with RemoteStore(ctx.spec, ctx.cache_dir) as rs:
        rs.sync_index()
        reader = rs.reader()
        try:
            a = reader.read_commit(resolve_on_remote(rs, reader, ref_a, ctx.name, ctx.kind)).tree
            b = reader.read_commit(resolve_on_remote(rs, reader, ref_b, ctx.name, ctx.kind)).tree
            return VersionDiff(diff_trees(reader, a, b), *(tree_totals(reader, a) if measure_base else (0, 0)))
        finally:
            reader.close()
