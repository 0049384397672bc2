"""Options several commands share, spelled and explained one way."""

from __future__ import annotations

from typing import Any

import typer

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON.")
ENDPOINT_OPT = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint for a store given as a URL.")
REGION_OPT = typer.Option(None, "--region", help="S3 region for a store given as a URL.")
STORE_HELP = "Remote name, URL or path (default: this workspace's own store)."


def store_options(endpoint_url: str | None, region: str | None) -> dict[str, Any]:
    """Backend options given on the command line (for a store named by URL)."""
    return {k: v for k, v in {"endpoint_url": endpoint_url, "region": region}.items() if v}
