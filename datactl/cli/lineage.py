"""``datactl lineage``, ``datactl merge`` and ``datactl models``."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from datactl.cli.options import JSON_OPT, store_options
from datactl.cli.output import RichProgress, emit_json, err, out
from datactl.core.errors import EXIT_FAILURE, UsageError


def lineage_cmd(
    ref: Optional[str] = typer.Argument(None, help="The version: NAME, NAME@VERSION, a tag, a commit id (6+ hex digits), HEAD~N."),
    up: bool = typer.Option(False, "--up", help="Every version REF derives from, through parents and inputs (the default)."),
    down: bool = typer.Option(False, "--down", help="Every version that derives from REF, in any dataset or model of the store."),
    both: bool = typer.Option(False, "--both", help="Up and down."),
    depth: Optional[int] = typer.Option(None, "--depth", min=0, metavar="N", help="Follow at most N edges from REF."),
    format_: str = typer.Option("tree", "--format", help="tree, json, mermaid or dot."),
    json_: bool = typer.Option(False, "--json", help="Same as --format json."),
    remote: list[str] = typer.Option(
        [], "--remote", "-r",
        help="A store to search: remote name, URL or path (repeatable; indexes are merged). Outside a workspace, the store to read.",
    ),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (or GCS emulator) for stores given as URLs."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region for stores given as URLs."),
    local: bool = typer.Option(False, "--local", help="Inside a workspace: search only its own store, not also its default remote."),
    rebuild_index: bool = typer.Option(False, "--rebuild-index", help="Recreate the lineage index of the store(s) from their commits, then exit."),
) -> None:
    """Show which versions a version derives from (--up) or which derive from it (--down), across datasets and models."""
    from datactl.api.lineage import lineage, open_sources
    from datactl.lineage.graph import BOTH, DOWN, FORMATS, UP

    if json_:
        format_ = "json"
    if format_ not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    if sum((up, down, both)) > 1:
        raise UsageError("give only one of --up, --down and --both")
    direction = BOTH if both else DOWN if down else UP
    with open_sources(remote, options=store_options(endpoint_url, region), local=local, with_default=not rebuild_index) as sources:
        for warning in sources.warnings:
            err.print(f"warning: {warning}")
        if rebuild_index:
            # Named stores are rebuilt on their own; with none named, the workspace's store.
            for s in sources.stores[1:] if remote and sources.workspace is not None else sources.stores:
                r = s.index.rebuild()
                out.print(f"{s.label}: lineage index rebuilt: {r.nodes} versions, {r.tags} tags ({s.stats.commits_read} commits read)")
            return
        if ref is None:
            if sources.workspace is None:
                raise UsageError("which version?", "give a REF such as NAME@VERSION")
            ref = "HEAD"
        graph = lineage(ref, direction, depth, workspace=sources.workspace, stores=sources.stores)
    sys.stdout.write(graph.render(format_))
    if graph.unresolved and format_ != "tree":
        err.print(f"warning: {len(graph.unresolved)} version(s) named by refs could not be read; see `datactl lineage --rebuild-index`")


def merge_cmd(
    ref: Optional[str] = typer.Argument(
        None, help="The version to merge in: a REF, or a remote's name for its latest version (default: the default remote's, fetched first)."
    ),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Message of the merge version."),
    no_ff: bool = typer.Option(False, "--no-ff", help="Record a merge version even when a fast-forward would do."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="ours or theirs: settle every conflict for that side."),
    continue_: bool = typer.Option(False, "--continue", help="Commit a merge whose conflicts you resolved (and added)."),
    abort: bool = typer.Option(False, "--abort", help="Give up a merge with conflicts; the workspace holds your version again."),
    json_: bool = JSON_OPT,
) -> None:
    """Join another line of this dataset's history: changes to different files merge, a file changed on both sides is a conflict."""
    from datactl.workspace import merge as m
    from datactl.workspace.workspace import Workspace

    if continue_ and abort:
        raise UsageError("give only one of --continue and --abort")
    if (continue_ or abort) and (ref or strategy or no_ff):
        raise UsageError("--continue and --abort take no REF, --strategy or --no-ff")
    with Workspace.open() as ws:
        if continue_:
            result = m.merge_continue(ws, message)
        elif abort:
            result = m.merge_abort(ws, progress=RichProgress())
        else:
            result = m.merge(ws, ref, message=message, no_ff=no_ff, strategy=strategy, progress=RichProgress())
    if json_:
        emit_json(result.to_dict())
    else:
        _print_merge(result)
    if result.status == m.CONFLICTS:
        raise typer.Exit(EXIT_FAILURE)

def _paths(n: int) -> str:
    return f"{n} path" if n == 1 else f"{n} paths"

def _print_merge(result) -> None:
    if result.status == "up-to-date":
        out.print(f"already up to date: {result.theirs[:12]} is in the history of {result.ours[:12]}")
    elif result.status == "fast-forward":
        out.print(f"fast-forward {result.ours[:12]} -> {result.theirs[:12]} ({_paths(result.updated)} updated)")
    elif result.status == "merged":
        updated = f" ({_paths(result.updated)} updated)" if result.updated else ""
        out.print(f"merged {result.theirs[:12]} into {result.ours[:12]}: version {result.commit[:12]}{updated}")
        for path, side in sorted(result.resolved.items()):
            out.print(f"  conflict in {path} settled: took {side}")
    elif result.status == "aborted":
        out.print(f"merge aborted; the workspace holds {result.ours[:12]} again")
    else:
        out.print(
            f"merge of {result.theirs[:12]} into {result.ours[:12]}: {_paths(result.updated)} merged and staged, "
            f"{len(result.conflicts)} conflict(s); nothing committed"
        )
        from datactl.tables.rowmerge import is_conflict_table

        rows = False
        for c in result.conflicts:
            table = bool(c.sidecar) and is_conflict_table(c.sidecar)
            rows = rows or table
            extra = f" (both sides' rows in {c.sidecar})" if table else f" (theirs in {c.sidecar})" if c.sidecar else ""
            out.print(f"  CONFLICT {c.path}: {c.reason}{extra}")
        if rows:
            out.print("resolve rows: in each conflict table keep one row per key (edit it if needed), then `datactl merge --continue`")
        out.print("resolve: put the content you want at each path, `datactl add` it, then `datactl merge --continue` (or `--abort`)")


def models_cmd(
    remote: Optional[str] = typer.Argument(None, help="Remote name, URL or path (default: this workspace's own store)."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (or GCS emulator) when REMOTE is a URL."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region when REMOTE is a URL."),
    json_: bool = JSON_OPT,
) -> None:
    """List the models in a store, with their latest versions and tags."""
    from datactl.remote.locate import choose_store
    from datactl.remote.remotestore import list_datasets

    infos = [i for i in list_datasets(choose_store(remote, options=store_options(endpoint_url, region)).spec) if i.kind == "model"]
    if json_:
        emit_json([i.__dict__ for i in infos])
        return
    if not infos:
        out.print("no models")
    for i in infos:
        tags = f"  tags: {', '.join(sorted(i.tags))}" if i.tags else ""
        out.print(f"{i.name:<30} {i.head[:12]}{tags}")


def register(app: typer.Typer) -> None:
    """Add the lineage, merge and models commands to ``app``."""
    app.command("lineage")(lineage_cmd)
    app.command("merge")(merge_cmd)
    app.command("models")(models_cmd)
