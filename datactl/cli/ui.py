"""``datactl ui`` (a local, read-only web UI over a store) and ``datactl report`` (one version as a self-contained HTML file)."""

from __future__ import annotations

from typing import Optional

import typer

from datactl.cli.options import ENDPOINT_OPT, REGION_OPT, STORE_HELP, store_options
from datactl.cli.output import err, out


def ui(
    store: Optional[str] = typer.Argument(None, help=STORE_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (the default answers this machine only)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port to listen on; 0 picks a free one. The URL is printed either way."),
    open_: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """Browse a store's datasets, versions, files, diffs and lineage in a web browser (read-only; Ctrl-C stops it)."""
    from datactl.ui import require

    require("datactl ui")
    from datactl.ui.serve import serve
    from datactl.ui.session import StoreSession

    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: listening on {host}: anyone who can reach this port can read the store")
    with StoreSession.open(store, store_options(endpoint_url, region)) as session:
        serve(session, host, port, open_, lambda url: out.print(f"datactl ui: {session.label} at {url} (Ctrl-C stops it)"))


def report(
    ref: str = typer.Argument(..., help="The version: NAME or NAME@VERSION."),
    html: str = typer.Option(..., "--html", metavar="FILE", help="The HTML file to write."),
    against: Optional[str] = typer.Option(None, "--against", metavar="REF", help="Compare with this version (VERSION or NAME@VERSION) instead of the parent."),
    store: Optional[str] = typer.Option(None, "--store", "--remote", "-r", help=STORE_HELP),
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """Write one version's summary, file types, table previews, diff, checks and lineage as one self-contained HTML file."""
    from datactl.ui import REPORT_PACKAGES, require

    require("datactl report", REPORT_PACKAGES)
    from datactl.ui.report import write_report
    from datactl.ui.session import StoreSession

    with StoreSession.open(store, store_options(endpoint_url, region)) as session:
        data = write_report(session, ref, html, against)
    diff, against = data["diff"]["summary"], data["diff"]["against"]
    changes = f"{diff['added']} added, {diff['removed']} removed, {diff['modified']} modified since {against['ref']}" if against else "a first version"
    out.print(f"wrote {html}: {data['version']['ref']}, {data['files']} files, {changes}")


def register(app: typer.Typer) -> None:
    """Add ``ui`` and ``report`` to ``app``."""
    app.command()(ui)
    app.command()(report)
