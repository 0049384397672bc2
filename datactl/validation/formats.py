"""Machine-readable reports for CI: JSON, JUnit XML, GitHub Actions workflow annotations.

JUnit: one ``<testsuite>`` per run, one ``<testcase>`` per rule (or per verify
check, or per diff limit), a ``<failure>`` holding its findings, an
``<error>`` when the data could not be read. The layout follows the JUnit XML
that Jenkins, GitLab, GitHub test reporters and Azure read (the Jenkins
xunit ``junit-10.xsd``).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Iterable

from datactl.validation.engine import ERROR, FAILED, PASSED, WARNING, ValidationReport

FORMATS = ("table", "json", "junit", "github")
# Findings written into one failure's text / one annotation run.
SHOWN = 50


@dataclass
class Case:
    """One test case in CI terms: a rule, a verify check or a diff limit."""

    name: str
    classname: str
    status: str  # passed / failed / warning / error
    message: str = ""
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0
    paths: list[str | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure


@dataclass
class Suite:
    name: str
    cases: list[Case]
    kind: str = "validate"
    seconds: float = 0.0
    timestamp: str | None = None
    hostname: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


def validation_suite(report: ValidationReport) -> Suite:
    cases = []
    for r in report.results:
        if r.status == ERROR:
            msg = r.error or "error"
        elif r.total_findings:
            msg = f"{r.total_findings} finding(s)"
        else:
            msg = ""
        details = [f"{f.path}: {f.message}" if f.path else f.message for f in r.findings]
        if r.total_findings > len(r.findings):
            details.append(f"... and {r.total_findings - len(r.findings)} more")
        cases.append(Case(r.name, f"datactl.validate.{r.type}", r.status, msg, details, r.seconds, [f.path for f in r.findings], list(r.notes)))
    props = {"commit": report.commit or "", "source": report.source, "files": str(report.files), "bytes": str(report.bytes)}
    props.update({f"read.{k}": str(v) for k, v in report.read.items()})
    return Suite(f"datactl validate {report.source}", cases, "validate", report.seconds, report.timestamp, report.hostname, props)


def verify_suite(report) -> Suite:
    """A StoreVerifyReport as a suite: one case per check (history, trees, packs, footers, re-hash)."""
    cases = []
    for check, problems in report.checks().items():
        status = FAILED if problems else PASSED
        msg = f"{len(problems)} problem(s)" if problems else ""
        if check == "history" and report.history_cut:
            msg = ", ".join(filter(None, [msg, f"checked down to the shallow clone's cut at {', '.join(c[:12] for c in report.history_cut)}"]))
        details = [p.message for p in problems]
        cases.append(Case(check, "datactl.verify", status, msg, details, 0.0, [p.path for p in problems]))
    props = {
        "commit": report.commit,
        "store": report.store,
        "deep": str(report.deep).lower(),
        "sample": "" if report.sample is None else str(report.sample),
        "commits": str(report.commits),
        "files": str(report.files),
        "chunks": str(report.chunks),
        "packs": str(report.packs),
        "bytes_read": str(report.bytes_read),
        "not_fetched": str(report.not_fetched),
        "history_cut": " ".join(report.history_cut),
    }
    return Suite(f"datactl verify {report.commit[:12]} in {report.store}", cases, "verify", report.seconds, None, None, props)


def _fmt_time(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot hold (file names may contain anything)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or (ord(ch) >= 0x20 and ord(ch) not in (0xFFFE, 0xFFFF) and not 0xD800 <= ord(ch) <= 0xDFFF))


def to_junit(suites: Suite | Iterable[Suite]) -> str:
    """JUnit XML text (with an XML declaration) for one or more suites."""
    suites = [suites] if isinstance(suites, Suite) else list(suites)
    root = ET.Element("testsuites", name="datactl")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for s in suites:
        failures = sum(1 for c in s.cases if c.status == FAILED)
        errors = sum(1 for c in s.cases if c.status == ERROR)
        attrs = {
            "name": _clean(s.name),
            "tests": str(len(s.cases)),
            "failures": str(failures),
            "errors": str(errors),
            "skipped": "0",
            "time": _fmt_time(s.seconds),
        }
        if s.timestamp:
            attrs["timestamp"] = s.timestamp
        if s.hostname:
            attrs["hostname"] = _clean(s.hostname)
        suite = ET.SubElement(root, "testsuite", attrs)
        if s.properties:
            props = ET.SubElement(suite, "properties")
            for k, v in s.properties.items():
                ET.SubElement(props, "property", name=_clean(k), value=_clean(v))
        for c in s.cases:
            case = ET.SubElement(suite, "testcase", name=_clean(c.name), classname=_clean(c.classname), time=_fmt_time(c.seconds))
            body = "\n".join(_clean(d) for d in c.details[:SHOWN])
            if len(c.details) > SHOWN:
                body += f"\n... and {len(c.details) - SHOWN} more"
            if c.status == FAILED:
                el = ET.SubElement(case, "failure", message=_clean(c.message), type="datactl.RuleFailed")
                el.text = body
            elif c.status == ERROR:
                el = ET.SubElement(case, "error", message=_clean(c.message), type="datactl.DataUnreadable")
                el.text = body or _clean(c.message)
            said = ["warning: " + _clean(c.message) + ("\n" + body if body else "")] if c.status == WARNING else []
            said += ["note: " + _clean(n) for n in c.notes[:SHOWN]]
            if said:
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(said)
        totals["tests"] += len(s.cases)
        totals["failures"] += failures
        totals["errors"] += errors
        total_time += s.seconds
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", _fmt_time(total_time))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(suites: Suite | Iterable[Suite]) -> str:
    """GitHub Actions workflow commands: an ``::error`` per failed finding, ``::warning`` for warnings, a notice per suite."""
    suites = [suites] if isinstance(suites, Suite) else list(suites)
    lines = []
    for s in suites:
        for c in s.cases:
            title = _escape_property(f"datactl {s.kind}: {c.name}")
            for note in c.notes[:SHOWN]:
                lines.append(f"::notice title={title}::{_escape_data(note)}")
            if c.status == PASSED:
                continue
            level = "warning" if c.status == WARNING else "error"
            items = c.details[:SHOWN] or [c.message]
            for item in items:
                lines.append(f"::{level} title={title}::{_escape_data(item)}")
            if len(c.details) > SHOWN:
                lines.append(f"::{level} title={title}::{_escape_data(f'... and {len(c.details) - SHOWN} more')}")
        bad = sum(1 for c in s.cases if c.status in (FAILED, ERROR))
        verdict = "passed" if not bad else f"{bad} of {len(s.cases)} failed"
        lines.append(f"::notice title={_escape_property(s.name)}::{_escape_data(f'{len(s.cases)} checks, {verdict}')}")
    return "\n".join(lines) + "\n"


def github_step_summary(suites: Suite | Iterable[Suite]) -> str:
    """A Markdown table for ``$GITHUB_STEP_SUMMARY``."""
    suites = [suites] if isinstance(suites, Suite) else list(suites)
    icon = {PASSED: "✅", FAILED: "❌", WARNING: "⚠️", ERROR: "💥"}
    out = []
    for s in suites:
        out.append(f"### {s.name}\n\n| | check | result |\n| --- | --- | --- |")
        for c in s.cases:
            msg = (c.message or c.status).replace("|", "\\|").replace("\n", " ")
            out.append(f"| {icon.get(c.status, '')} | {c.name.replace('|', '/')} | {msg} |")
        out.append("")
    return "\n".join(out) + "\n"


def write_step_summary(suites: Suite | Iterable[Suite]) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(github_step_summary(suites))
        except OSError:
            pass


def to_json(value: dict) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
