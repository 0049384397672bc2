"""The library entry points: ``validate`` a version, open a version's source, the commit hook."""

from __future__ import annotations

import os
from typing import Any

from datactl.core.errors import DatactlError, NotAWorkspace, UsageError
from datactl.core.progress import ProgressReporter
from datactl.store.source import RemoteSource, RepositorySource, VersionSource
from datactl.validation.config import RulesConfig, build_rules, parse_config, read_rules_file, read_workspace_rules
from datactl.validation.engine import ValidationReport, run_rules
from datactl.validation.rules import Rule


class ValidationFailed(DatactlError):
    """The rules failed (raised by the commit hook; ``report`` has the details)."""

    def __init__(self, report: ValidationReport, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.report = report
        self.exit_code = report.exit_code or 1


def _workspace_root(root: str | None) -> str | None:
    from datactl.workspace.workspace import find_root

    try:
        return find_root(root)
    except NotAWorkspace:
        return None


def config_root(root: str | None = None) -> str | None:
    """Where ``datactl.toml`` is: the workspace root, or the given/current folder if it has one."""
    ws_root = _workspace_root(root)
    if ws_root is not None:
        return ws_root
    here = os.path.abspath(root or os.getcwd())
    return here if os.path.exists(os.path.join(here, "datactl.toml")) else None


def remote_context(remote: str, root: str | None = None, options: dict[str, Any] | None = None):
    """(RemoteSpec, dataset name or None, kind, index cache folder) for a remote named or given as a URL.

    Inside a workspace, names come from its datactl.toml and HEAD means the
    remote's head of its dataset. Outside one (a CI job), a datactl.toml in
    the current folder still supplies ``[remotes.NAME]`` and ``[dataset]``.
    """
    from datactl.remote.remotestore import RemoteSpec, resolve_remote
    from datactl.workspace.workspace import read_workspace_config

    ws_root = _workspace_root(root)
    settings_root = ws_root or config_root(root)
    spec = resolve_remote(settings_root, remote)
    name, kind = None, "dataset"
    if settings_root is not None:
        try:
            cfg = read_workspace_config(settings_root)
            name, kind = cfg.name, cfg.kind
        except DatactlError:
            pass  # a datactl.toml with rules and remotes only
    if ws_root is not None:
        cache_dir = os.path.join(ws_root, ".datactl", "remotes")
    else:
        from datactl.remote.cache import default_cache_dir

        cache_dir = os.path.join(default_cache_dir(), "remotes")
    if options:
        spec = RemoteSpec(spec.name, spec.url, {**spec.options, **options})
    return spec, name, kind, cache_dir


def open_source(
    ref: str | None = None,
    *,
    remote: str | None = None,
    root: str | None = None,
    options: dict[str, Any] | None = None,
    jobs: int = 8,
) -> VersionSource:
    """The files of version ``ref``: from the workspace's store, or (``remote``) from a remote store, read in place.

    Outside a workspace, ``remote`` is a URL, a path or a remote named in
    ./datactl.toml, and ``ref`` is ``NAME`` or ``NAME@VERSION`` (or HEAD when
    ./datactl.toml names the dataset).
    """
    from datactl.remote.remotestore import RemoteStore
    from datactl.workspace.workspace import Workspace

    if remote is None:
        ws_root = _workspace_root(root)
        if ws_root is None:
            raise UsageError("not in a datactl workspace", "run it inside a workspace, or name a store with --remote URL")
        ws = Workspace(ws_root)
        try:
            commit_id = ws.resolve(ref or "HEAD")
            src = RepositorySource(ws.repo, commit_id)
        except BaseException:
            ws.close()
            raise
        src.on_close(ws.close)
        return src
    spec, name, kind, cache_dir = remote_context(remote, root, options)
    if (ref is None or ref == "HEAD") and name is None:
        raise UsageError("name the version to read: NAME or NAME@VERSION", "outside a workspace there is no HEAD")
    rs = RemoteStore(spec, cache_dir)
    try:
        src = RemoteSource(rs, ref or "HEAD", name=name, kind=kind, jobs=jobs)
    except BaseException:
        rs.close()
        raise
    src.on_close(rs.close)
    return src


def load_rules(root: str | None = None, rules_file: str | None = None) -> tuple[list[Rule], RulesConfig]:
    """Rules from ``rules_file``, or from ``[validate]`` in the workspace's (or current folder's) datactl.toml."""
    if rules_file is not None:
        config = read_rules_file(rules_file)
    else:
        where = config_root(root)
        if where is None:
            raise UsageError("no rules: no datactl.toml here and no rules file given", "pass --rules FILE")
        config = read_workspace_rules(where)
    return build_rules(config), config


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
) -> ValidationReport:
    """Check version ``ref`` against rules; return the report (``report.ok``, ``report.exit_code``).

    ``rules`` may be Rule objects, a list of rule tables (as in
    ``[[validate.rules]]``) or a whole ``[validate]`` table; by default they
    come from ``rules_file`` or the workspace's datactl.toml. ``remote`` reads
    the version in place on a remote store; ``source`` checks any VersionSource.
    A configuration mistake raises (UsageError, exit code 2); a broken or
    unreadable version does not: it is in the report.
    """
    config: RulesConfig | None = None
    if rules is None:
        built, config = load_rules(root, rules_file)
    elif isinstance(rules, dict):
        config = parse_config(rules, "(given)", os.path.abspath(root or os.getcwd()))
        built = build_rules(config)
    elif all(isinstance(r, Rule) for r in rules):
        built = list(rules)  # type: ignore[arg-type]
    else:
        config = RulesConfig(rules=list(rules), base_dir=os.path.abspath(root or os.getcwd()))  # type: ignore[arg-type]
        built = build_rules(config)
    n_workers = workers or (config.workers if config else 8)
    if source is not None:
        return run_rules(source, built, workers=n_workers, progress=progress)
    with open_source(ref, remote=remote, root=root, jobs=n_workers) as src:
        return run_rules(src, built, workers=n_workers, progress=progress)


def run_commit_rules(repo, root: str, tree_id: str, progress: ProgressReporter | None = None) -> ValidationReport | None:
    """The pre-commit hook: with ``[validate] on_commit = true``, check the tree about to be committed.

    Raises ValidationFailed when a rule fails; returns None when the hook is off.
    """
    config = read_workspace_rules(root)
    if not config.on_commit:
        return None
    rules = build_rules(config)
    repo.flush()  # the new trees must be readable from the packs
    src = RepositorySource(repo, tree_id=tree_id, label="the staged files")
    try:
        report = run_rules(src, rules, workers=config.workers, progress=progress)
    finally:
        src.reader.close()
    if report.ok:
        return report
    lines = []
    for r in report.results:
        if r.status in ("failed", "error"):
            first = r.error or (f"{r.findings[0].path}: {r.findings[0].message}" if r.findings and r.findings[0].path else r.findings[0].message if r.findings else "")
            lines.append(f"  {r.name}: {first}" + (f" (+{r.total_findings - 1} more)" if r.total_findings > 1 else ""))
    bad = len(report.failed) + len(report.errors)
    raise ValidationFailed(
        report,
        f"commit refused: {bad} validation rule(s) failed\n" + "\n".join(lines),
        "fix the data, or commit with --no-verify to skip the rules; `datactl validate` shows the details",
    )
