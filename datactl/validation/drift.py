"""Gating on drift: limits on how much a diff between two versions may change.

A limit is a count (``10``), a size for bytes (``500MB``), or a percentage of
the old version (``5%``: of its files, or of its bytes for ``changed_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass

from datactl.core.errors import UsageError
from datactl.core.units import parse_size
from datactl.store.diff import ADDED, MODIFIED, REMOVED, RENAMED, DiffResult
from datactl.validation.engine import FAILED, PASSED
from datactl.validation.formats import Case, Suite

METRICS = {
    "changed_files": "files added, removed, modified or renamed",
    "added": "files added",
    "removed": "files removed",
    "modified": "files modified",
    "renamed": "files renamed",
    "changed_bytes": "bytes added, removed or rewritten",
}


@dataclass(frozen=True)
class Limit:
    metric: str
    value: float
    percent: bool
    text: str

    def allowed(self, base: int) -> float:
        return self.value * base / 100 if self.percent else self.value


def parse_limit(metric: str, text: str | int) -> Limit:
    if metric not in METRICS:
        raise UsageError(f"unknown drift limit {metric!r}", f"limits are {', '.join(METRICS)}")
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1])
            percent = True
        elif metric == "changed_bytes":
            value, percent = float(parse_size(raw)), False
        else:
            value, percent = float(int(raw)), False
    except ValueError:
        raise UsageError(f"--max-{metric.replace('_', '-')} {raw!r} is not a number or a percentage like 5%") from None
    if value < 0:
        raise UsageError(f"--max-{metric.replace('_', '-')} must not be negative")
    return Limit(metric, value, percent, raw)


@dataclass
class LimitResult:
    limit: Limit
    actual: int
    base: int

    @property
    def allowed(self) -> float:
        return self.limit.allowed(self.base)

    @property
    def ok(self) -> bool:
        return self.actual <= self.allowed

    def describe(self) -> str:
        what = METRICS[self.limit.metric]
        if self.limit.percent:
            share = (100.0 * self.actual / self.base) if self.base else (0.0 if not self.actual else float("inf"))
            return f"{self.actual} {what} ({share:.2f}% of {self.base}); limit {self.limit.text}"
        return f"{self.actual} {what}; limit {self.limit.text}"

    def to_dict(self) -> dict:
        return {
            "metric": self.limit.metric,
            "limit": self.limit.text,
            "actual": self.actual,
            "allowed": self.allowed,
            "base": self.base,
            "ok": self.ok,
        }


def measure(result: DiffResult, metric: str) -> int:
    if metric == "changed_files":
        return len(result.changes)
    if metric == "changed_bytes":
        return result.bytes_added + result.bytes_removed + result.bytes_modified
    return result.count({"added": ADDED, "removed": REMOVED, "modified": MODIFIED, "renamed": RENAMED}[metric])


def check_drift(result: DiffResult, limits: list[Limit], base_files: int, base_bytes: int) -> list[LimitResult]:
    return [
        LimitResult(lim, measure(result, lim.metric), base_bytes if lim.metric == "changed_bytes" else base_files)
        for lim in limits
    ]


def drift_suite(results: list[LimitResult], label: str) -> Suite:
    cases = [
        Case(f"max {r.limit.metric} {r.limit.text}", "datactl.store.diff", PASSED if r.ok else FAILED, "" if r.ok else r.describe(), [] if r.ok else [r.describe()])
        for r in results
    ]
    return Suite(f"datactl diff {label}", cases, "diff")
