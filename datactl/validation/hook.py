"""The pre-commit hook: with ``[validate] on_commit = true``, the rules check the tree about to be committed."""

from __future__ import annotations

from datactl.core.errors import ValidationFailed
from datactl.core.progress import ProgressReporter
from datactl.store.repository import Repository
from datactl.store.source import local_source
from datactl.validation.config import build_rules, read_workspace_rules
from datactl.validation.engine import ValidationReport, run_rules


def run_commit_rules(
    repo: Repository,
    root: str,
    tree_id: str,
    progress: ProgressReporter | None = None,
    trust_plugins: bool = False,
    *,
    parent: str | None = None,
    cache_dir: str | None = None,
) -> ValidationReport | None:
    """The pre-commit hook: with ``[validate] on_commit = true``, check the tree about to be committed.

    Rules that compare do so with ``parent`` (the commit-to-be's first parent); ``cache_dir`` keeps what rules
    compute from files' bytes. Raises ValidationFailed when a rule fails; returns None when the hook is off.
    """
    config = read_workspace_rules(root)
    if not config.on_commit:
        return None
    rules = build_rules(config, trust_plugins)
    repo.flush()  # the new trees must be readable from the packs
    with local_source(repo, tree_id=tree_id, label="the staged files") as src:
        src.base_id, src.cache_dir = parent, cache_dir
        report = run_rules(src, rules, workers=config.workers, progress=progress)
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
