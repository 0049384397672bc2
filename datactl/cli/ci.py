"""CI commands: ``verify`` (local or remote, --deep, --sample), ``validate``, and the diff drift gate.

Exit codes: 0 pass, 1 a check or rule failed, 2 usage or configuration
error, 3 the data could not be read.
"""

from __future__ import annotations

from typing import Optional

import typer

from datactl.cli.options import store_options
from datactl.cli.output import RichProgress, emit_json, err, out
from datactl.core.errors import EXIT_FAILURE, UsageError
from datactl.core.units import human_bytes

FORMAT_HELP = "table (default, for people), json, junit (JUnit XML: one test case per check) or github (workflow annotations)."
FORMATS = ("table", "json", "junit", "github")
STATUS_STYLE = {"passed": ("PASS", "green"), "failed": ("FAIL", "red"), "warning": ("WARN", "yellow"), "error": ("ERROR", "magenta")}


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def _emit(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        import sys

        sys.stdout.write(text)


def _suite_output(fmt: str, suite, data: dict, output: str | None) -> bool:
    """Write a machine format; return True when the human table should still be printed (on stdout)."""
    from datactl.validation import formats

    if fmt == "json":
        _emit(formats.to_json(data), output)
    elif fmt == "junit":
        _emit(formats.to_junit(suite), output)
    elif fmt == "github":
        _emit(formats.to_github(suite), output)
        formats.write_step_summary(suite)
    return fmt == "table" or output is not None


# -- verify ----------------------------------------------------------------------------


def verify(
    ref: str = typer.Argument("HEAD", help="The version to check (its history included); NAME or NAME@VERSION outside a workspace."),
    remote: Optional[str] = typer.Option(None, "--remote", "-r", help="Check the copy on this remote (name or URL), reading only metadata and pack footers unless --deep/--sample."),
    deep: bool = typer.Option(False, "--deep", help="Re-read and re-hash every byte."),
    sample: Optional[float] = typer.Option(None, "--sample", metavar="F", help="Re-read and re-hash a random fraction of the files (0 < F <= 1)."),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="Random seed for --sample (same seed, same files)."),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the --format report to this file (the table still goes to stdout)."),
    json_: bool = typer.Option(False, "--json", help="Same as --format json."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint for a remote given as a URL."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region for a remote given as a URL."),
) -> None:
    """Check that every object of a version is present (and, with --deep or --sample, intact), locally or on a remote."""
    from datactl.api.checks import verify as verify_version
    from datactl.validation import formats

    fmt = _check_format("json" if json_ else fmt)
    progress = RichProgress() if fmt == "table" else None
    report = verify_version(
        ref, remote=remote, options=store_options(endpoint_url, region), deep=deep, sample=sample, seed=seed, progress=progress
    )
    suite = formats.verify_suite(report)
    if _suite_output(fmt, suite, report.to_dict(), output):
        _print_suite(suite)
        read = ""
        if deep or sample:
            read = f", {report.files_rehashed} file(s) re-hashed ({human_bytes(report.bytes_read)})"
        verdict = "ok" if report.ok else f"{len(report.details)} problem(s)"
        out.print(
            f"{verdict}: {report.commits} version(s), {report.trees} trees, {report.files} files, {report.chunks} chunks "
            f"in {report.packs} pack(s) checked{read}"
        )
        if report.history_cut:
            remote_copy = f"; `datactl verify --remote {report.fetch_from}` checks the remote's copy" if report.fetch_from else ""
            out.print(
                f"history checked down to this shallow clone's cut at {', '.join(c[:12] for c in report.history_cut)} and not below: "
                f"older versions were never fetched (`datactl fetch --unshallow` fetches them{remote_copy})"
            )
        if report.not_fetched:
            where = f" (they are on {report.fetch_from}: `datactl verify --remote` checks its copy)" if report.fetch_from else ""
            out.print(f"not fetched: {report.not_fetched} object(s) of older versions or of paths outside this workspace's selection{where}")
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def _print_suite(suite) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("check")
    table.add_column("result", overflow="fold")
    for c in suite.cases:
        label, style = STATUS_STYLE.get(c.status, (c.status, ""))
        table.add_row(Text(label, style=style), Text(c.name), Text(c.message or ""))
    out.print(table)
    for c in suite.cases:
        if c.status in ("failed", "error", "warning") and c.details:
            err.print_spans((f"{c.name}:", "bold"))
            for d in c.details[:20]:
                err.print(f"  {d}", style="red" if c.status != "warning" else "yellow")
            if len(c.details) > 20:
                err.print(f"  ... and {len(c.details) - 20} more")


# -- validate --------------------------------------------------------------------------


def validate(
    ref: Optional[str] = typer.Argument(None, help="The version to check (default HEAD; NAME or NAME@VERSION with a remote URL outside a workspace)."),
    rules: Optional[str] = typer.Option(None, "--rules", help="A TOML rules file (default: [validate] in datactl.toml)."),
    remote: Optional[str] = typer.Option(None, "--remote", "-r", help="Validate the version on this remote (name or URL) in place, without a checkout."),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the --format report to this file (the table still goes to stdout)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", metavar="N", help="Files read in parallel (default: [validate] workers, or 8)."),
    json_: bool = typer.Option(False, "--json", help="Same as --format json."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint for a remote given as a URL."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region for a remote given as a URL."),
    trust_plugins: bool = typer.Option(False, "--trust-plugins", help="Import the plugin code the rules name ([validate] plugins); also DATACTL_TRUST_PLUGINS=1."),
    base: Optional[str] = typer.Option(
        None, "--base", metavar="REF", help="The version rules compare with (table_stats drift limits; default: the first parent)."
    ),
) -> None:
    """Check a version against the rules in datactl.toml ([validate]) or a rules file."""
    from datactl.api.checks import open_source
    from datactl.validation import formats, load_rules
    from datactl.validation.engine import run_rules

    fmt = _check_format("json" if json_ else fmt)
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    built, config = load_rules(None, rules, trust_plugins)
    if not built:
        raise UsageError(f"no rules in {config.origin}", "add [[validate.rules]] tables (see docs/validate.md)")
    n = workers or config.workers
    with open_source(ref, remote=remote, options=store_options(endpoint_url, region), jobs=n, base=base) as src:
        report = run_rules(src, built, workers=n, progress=RichProgress() if fmt == "table" else None)
    suite = formats.validation_suite(report)
    if _suite_output(fmt, suite, report.to_dict(), output):
        _print_validation(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _print_validation(report) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in ("", "rule", "files", "read", "result"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        label, style = STATUS_STYLE.get(r.status, (r.status, ""))
        if r.status == "error":
            result = r.error or ""
        elif r.total_findings:
            first = r.findings[0]
            result = f"{r.total_findings} finding(s); " + (f"{first.path}: " if first.path else "") + first.message
        else:
            result = "ok" + (f" ({len(r.notes)} note(s) below)" if r.notes else "")
        table.add_row(Text(label, style=style), Text(r.name), str(r.files), str(r.files_read) if r.files_read else "-", Text(result))
    out.print(table)
    for r in report.results:
        if r.status in ("failed", "warning") and r.total_findings > 1:
            out.print_spans((f"{r.name}:", "bold"))
            for f in r.findings[:20]:
                out.print(f"  {f.path + ': ' if f.path else ''}{f.message}")
            if r.total_findings > 20:
                out.print(f"  ... and {r.total_findings - 20} more")
    for r in report.results:
        for note in r.notes[:20]:
            out.print(f"note ({r.name}): {note}")
        if len(r.notes) > 20:
            out.print(f"note ({r.name}): ... and {len(r.notes) - 20} more")
    counts = {s: sum(1 for r in report.results if r.status == s) for s in ("passed", "failed", "warning", "error")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    rd = report.read
    out.print(
        f"{summary}: {report.files} files ({human_bytes(report.bytes)}) in {report.source}; "
        f"read {human_bytes(rd.get('bytes_read', 0))} in {rd.get('requests', 0)} request(s), {rd.get('files_opened', 0)} file(s) opened"
    )


# -- the diff gate (used by the diff command in app.py) -------------------------------


def drift_limits(**given: Optional[str]) -> list:
    named = {metric: text for metric, text in given.items() if text is not None}
    if not named:  # a plain diff: the validation layer (tens of ms to import) is not needed
        return []
    from datactl.validation.drift import parse_limit

    return [parse_limit(metric, text) for metric, text in named.items()]


def gate_drift(result, limits: list, base: tuple[int, int], fmt: str, output: Optional[str], label: str, print_diff) -> bool:
    """Check the drift limits and report them in ``fmt``; return whether every limit held."""
    from datactl.validation.drift import check_drift, drift_suite

    results = check_drift(result, limits, base[0], base[1])
    if fmt == "json":
        emit_json({**result.to_dict(), "limits": [r.to_dict() for r in results]})
        return all(r.ok for r in results)
    suite = drift_suite(results, label)
    machine_on_stdout = fmt in ("junit", "github") and output is None
    if fmt in ("junit", "github"):
        _suite_output(fmt, suite, {}, output)
    if not machine_on_stdout:
        print_diff()
    for r in results:
        (err if machine_on_stdout or not r.ok else out).print_spans(("PASS " if r.ok else "FAIL ", "green" if r.ok else "red"), (r.describe(), None))
    return all(r.ok for r in results)


def register(app: typer.Typer) -> None:
    """Add ``verify`` and ``validate`` to the datactl app."""
    app.command("verify")(verify)
    app.command("validate")(validate)
