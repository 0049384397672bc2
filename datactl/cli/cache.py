"""``datactl cache``: the shared cache that ``Dataset.get`` reads through."""

from __future__ import annotations

from typing import Optional

import typer

from datactl.cli.options import JSON_OPT
from datactl.cli.output import emit_json, out
from datactl.core.units import human_bytes, parse_size

cache_app = typer.Typer(help="Inspect and trim the shared cache (DATACTL_CACHE_DIR).", no_args_is_help=True)


@cache_app.command("info")
def info(json_: bool = JSON_OPT) -> None:
    """Where the cache is and how much it holds."""
    from datactl.remote.cache import Cache

    cache = Cache()
    try:
        i = cache.info()
    finally:
        cache.close()
    if json_:
        emit_json({**i.__dict__, "total_bytes": i.total_bytes})
        return
    out.print(f"cache: {i.root}")
    out.print(f"  local copies: {i.copies}")
    out.print(f"  file contents: {human_bytes(i.file_bytes)}, cached objects: {human_bytes(i.object_bytes)}")
    out.print(f"  limit: {human_bytes(i.max_size) if i.max_size else 'none (set DATACTL_CACHE_SIZE)'}")


@cache_app.command("prune")
def prune(max_size: Optional[str] = typer.Option(None, "--max-size", metavar="SIZE", help="Trim to this size, e.g. 20GB (default: DATACTL_CACHE_SIZE).")) -> None:
    """Evict least-recently-used copies (never one a running process holds) down to the limit."""
    from datactl.remote.cache import Cache

    cache = Cache()
    try:
        freed = cache.prune(parse_size(max_size) if max_size else None)
    finally:
        cache.close()
    out.print(f"freed {human_bytes(freed)}")


@cache_app.command("clear")
def clear() -> None:
    """Remove everything from the cache that no running process holds."""
    from datactl.remote.cache import Cache

    cache = Cache()
    try:
        cache.clear()
        left = cache.info().total_bytes
    finally:
        cache.close()
    out.print(f"cleared; {human_bytes(left)} left (held by running processes)")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
