"""Running rules over a version: one metadata pass, content reads in a thread pool."""

from __future__ import annotations

import collections
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from datactl.core.errors import CorruptObject, DatactlError, ObjectMissing, StorageError
from datactl.core.progress import NullProgress, ProgressReporter
from datactl.format.objects import FILE
from datactl.store.source import SourceEntry, VersionSource
from datactl.validation.context import RunContext
from datactl.validation.rules import Finding, Rule
from storage_backends import BackendError

# Findings kept per rule (the count is always exact).
MAX_FINDINGS = 200
PASSED, FAILED, WARNING, ERROR = "passed", "failed", "warning", "error"
# Reading problems: the data could not be read, so the verdict is unknown.
READ_ERRORS = (ObjectMissing, CorruptObject, StorageError, BackendError)


@dataclass
class RuleResult:
    name: str
    type: str
    description: str
    severity: str = "error"
    status: str = PASSED
    findings: list[Finding] = field(default_factory=list)
    total_findings: int = 0
    files: int = 0
    files_read: int = 0
    seconds: float = 0.0
    error: str | None = None
    unreadable: bool = False
    notes: list[str] = field(default_factory=list)  # what is worth knowing but not a failure

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "severity": self.severity,
            "status": self.status,
            "files": self.files,
            "files_read": self.files_read,
            "seconds": round(self.seconds, 3),
            "total_findings": self.total_findings,
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
            "notes": self.notes,
        }


@dataclass
class ValidationReport:
    """The verdict of every rule on one version, with what it cost to read."""

    commit: str | None
    source: str
    results: list[RuleResult] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"))
    hostname: str = field(default_factory=socket.gethostname)
    read: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def errors(self) -> list[RuleResult]:
        return [r for r in self.results if r.status == ERROR]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors

    @property
    def exit_code(self) -> int:
        """0 every rule passed, 1 a rule failed (or crashed), 3 the data could not be read."""
        if any(r.unreadable for r in self.results):
            return 3
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "commit": self.commit,
            "source": self.source,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "timestamp": self.timestamp,
            "read": self.read,
            "summary": {s: sum(1 for r in self.results if r.status == s) for s in (PASSED, FAILED, WARNING, ERROR)},
            "rules": [r.to_dict() for r in self.results],
        }


class _Run:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.result = RuleResult(rule.name, rule.type, rule.describe(), rule.severity)
        self.stopped = False  # after an error, the rule gets nothing more

    def add(self, findings: Iterable[Finding] | None) -> None:
        for f in findings or ():
            self.result.total_findings += 1
            if len(self.result.findings) < MAX_FINDINGS:
                self.result.findings.append(f)

    def fail(self, exc: BaseException, path: str | None = None) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.result.status = ERROR
        self.result.unreadable = isinstance(exc, READ_ERRORS)
        message = exc.message if isinstance(exc, DatactlError) else f"{type(exc).__name__}: {exc}"
        where = f"{path}: " if path and (not isinstance(exc, DatactlError) or path not in message) else ""
        self.result.error = where + message


def run_rules(
    source: VersionSource,
    rules: list[Rule],
    *,
    workers: int = 8,
    progress: ProgressReporter | None = None,
) -> ValidationReport:
    """Run ``rules`` over the version ``source`` reads; never raises for a broken version (see the report)."""
    started = time.monotonic()
    progress = progress or NullProgress()
    report = ValidationReport(source.commit_id, source.label)
    runs = [_Run(r) for r in rules]
    context = RunContext(source)
    window: collections.deque[tuple[Future, _Run, SourceEntry, float]] = collections.deque()

    def read_one(run: _Run, entry: SourceEntry) -> tuple[list[Finding], float]:
        t0 = time.monotonic()
        with source.open(entry) as stream:
            found = list(run.rule.check_file(entry, stream) or ())
        return found, time.monotonic() - t0

    def settle(item: tuple[Future, _Run, SourceEntry, float]) -> None:
        fut, run, entry, _ = item
        try:
            found, took = fut.result()
        except Exception as exc:  # a read error, or a bug in a (plugin) rule: reported, not raised
            run.fail(exc, entry.path)
            return
        run.result.files_read += 1
        run.result.seconds += took
        progress.advance(entry.size)
        if not run.stopped:
            run.add(found)

    progress.start(f"validating {source.label}", None)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="datactl-validate")
    try:
        for run in runs:
            run.rule.notes = []
            try:
                run.rule.start(context)
            except Exception as exc:
                run.fail(exc)
        try:
            for entry in source.entries():
                if entry.kind != FILE:
                    continue
                report.files += 1
                report.bytes += entry.size
                for run in runs:
                    if run.stopped:
                        continue
                    t0 = time.monotonic()
                    try:
                        if not run.rule.selects(entry):
                            continue
                        run.result.files += 1
                        run.add(run.rule.visit(entry))
                        wants = run.rule.wants_content(entry)
                    except Exception as exc:
                        run.fail(exc, entry.path)
                        continue
                    finally:
                        run.result.seconds += time.monotonic() - t0
                    if wants:
                        window.append((pool.submit(read_one, run, entry), run, entry, t0))
                        while len(window) > 4 * max(1, workers):
                            settle(window.popleft())
            while window:
                settle(window.popleft())
        except READ_ERRORS as exc:  # the file list itself could not be read
            for run in runs:
                run.fail(exc)
        for run in runs:
            if run.stopped:
                continue
            t0 = time.monotonic()
            try:
                run.add(run.rule.finish())
            except Exception as exc:
                run.fail(exc)
            run.result.seconds += time.monotonic() - t0
    finally:
        for fut, *_ in window:
            fut.cancel()
        pool.shutdown(wait=True)
        for run in runs:
            try:
                run.rule.close()
            except Exception as exc:
                run.fail(exc)
        context.close()
        progress.stop()
    for run in runs:
        r = run.result
        r.notes = run.rule.notes[:MAX_FINDINGS]
        if r.status != ERROR and r.total_findings:
            r.status = WARNING if r.severity == "warning" else FAILED
        r.findings.sort(key=lambda f: f.path or "")
        report.results.append(r)
    report.seconds = time.monotonic() - started
    report.read = source.stats.to_dict()
    return report
