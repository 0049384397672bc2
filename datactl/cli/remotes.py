"""Commands that move versions between stores: remote, push, fetch, pull, clone, datasets."""

from __future__ import annotations

from typing import Optional

import typer

from datactl.cli.options import ENDPOINT_OPT, JSON_OPT, REGION_OPT, STORE_HELP, store_options
from datactl.cli.output import RichProgress, emit_json, err, out
from datactl.core.units import human_bytes

remote_app = typer.Typer(help="Manage named remote stores (in datactl.toml).", no_args_is_help=True)


@remote_app.command("add")
def remote_add(
    name: str = typer.Argument(..., help="Name for the remote, e.g. origin."),
    url: str = typer.Argument(..., help="A path, file://, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or (read-only) https://host/path."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, R2), an emulator, or an Azure account URL."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile name (credentials stay in the AWS config)."),
) -> None:
    """Add a named remote."""
    from datactl.remote.locate import add_remote
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        spec = add_remote(ws.root, name, url, {"endpoint_url": endpoint_url, "region": region, "profile": profile})
    out.print(f"added remote {spec.name} -> {spec.url}")


@remote_app.command("list")
def remote_list(json_: bool = JSON_OPT) -> None:
    """List the named remotes."""
    from datactl.remote.locate import list_remotes
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        remotes = list_remotes(ws.root)
    if json_:
        emit_json([{"name": r.name, "url": r.url, **r.options} for r in remotes.values()])
        return
    for r in remotes.values():
        extra = "".join(f" {k}={v}" for k, v in r.options.items())
        out.print(f"{r.name}\t{r.url}{extra}")


@remote_app.command("remove")
def remote_remove(name: str = typer.Argument(..., help="The remote to forget (its data is not touched).")) -> None:
    """Remove a named remote from the settings."""
    from datactl.remote.locate import remove_remote
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        remove_remote(ws.root, name)
    out.print(f"removed remote {name}")


def push(
    remote: Optional[str] = typer.Argument(None, help="Remote name or URL (default: origin)."),
    tags: bool = typer.Option(False, "--tags", help="Also push this dataset's tags."),
    json_: bool = JSON_OPT,
) -> None:
    """Upload new versions: only objects the remote lacks, then move its head by compare-and-swap."""
    from datactl.workspace import sync
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        r = sync.push(ws, remote, tags=tags, progress=RichProgress())
    if json_:
        emit_json({**r.__dict__, "up_to_date": r.up_to_date})
        return
    if r.up_to_date:
        out.print(f"{r.remote}: {r.ref} already up to date ({r.new[:12]})")
    else:
        old = r.old[:12] if r.old else "(new)"
        out.print(f"{r.remote}: {r.ref} {old} -> {r.new[:12]}: {r.objects} objects in {r.packs} packs, {human_bytes(r.bytes_uploaded)} uploaded")
    for t in r.tags_pushed:
        out.print(f"  tag {t} pushed")
    for t in r.tags_skipped:
        err.print(f"warning: tag {t} exists on {r.remote} at another version; not changed")


def fetch(
    remote: Optional[str] = typer.Argument(None, help="Remote name or URL (default: origin)."),
    depth: Optional[int] = typer.Option(None, "--depth", metavar="N", help="Only the newest N versions of the history (deepens a shallow workspace)."),
    unshallow: bool = typer.Option(False, "--unshallow", help="Fetch the whole history of a shallow workspace."),
    json_: bool = JSON_OPT,
) -> None:
    """Download the remote's versions of this dataset (history only, not file data)."""
    from datactl.workspace import sync
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        r = sync.fetch(ws, remote, progress=RichProgress(), depth=depth, unshallow=unshallow)
    if json_:
        emit_json(r.__dict__)
        return
    for ref, cid in sorted(r.refs.items()):
        out.print(f"{r.remote}: {ref} = {cid[:12]}")
    out.print(f"{r.objects} objects, {human_bytes(r.bytes_downloaded)} downloaded")


def pull(
    remote: Optional[str] = typer.Argument(None, help="Remote name or URL (default: origin)."),
    paths: list[str] = typer.Argument(None, help="Only these files or folders (the others stay tracked but absent)."),
    json_: bool = JSON_OPT,
) -> None:
    """Fetch, fast-forward to the remote's latest version, and check it out."""
    from datactl.workspace import sync
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        r = sync.pull(ws, remote, paths or (), progress=RichProgress())
    co = r.checkout
    written, deleted = (co.written, co.deleted) if co else (0, 0)
    if json_:
        emit_json(
            {"old": r.old, "new": r.new, "ref_old": r.ref_old, "ref_new": r.ref_new, "bytes_downloaded": r.bytes_downloaded,
             "written": written, "deleted": deleted, "added_paths": r.added_paths}
        )
        return
    if r.old != r.new:
        moved = f"HEAD {r.old[:12] if r.old else '(none)'} -> {r.new[:12]}"
    elif written or deleted:
        moved = f"HEAD stays at {r.new[:12]}"
    else:
        moved = f"already up to date at {r.new[:12]}"
    if r.ref_new != r.ref_old and r.ref_new != r.new:
        moved += f" (the latest version, {r.ref_new[:12] if r.ref_new else '-'}, is not checked out)"
    added = f"; now also holds {', '.join(r.added_paths)}" if r.added_paths else ""
    out.print(f"{r.fetch.remote}: {moved}{added}; {human_bytes(r.bytes_downloaded)} downloaded, {written} file(s) written, {deleted} deleted")


def clone(
    url: str = typer.Argument(..., help="Store URL or path."),
    dataset: str = typer.Argument(..., help="NAME or NAME@VERSION of a dataset or model in that store."),
    directory: Optional[str] = typer.Argument(None, help="Where to put the workspace (default: NAME)."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    path: list[str] = typer.Option([], "--path", help="Only download these files or folders (repeatable)."),
    depth: Optional[int] = typer.Option(None, "--depth", metavar="N", help="Only the newest N versions of the history (a shallow clone)."),
) -> None:
    """Make a workspace of a dataset or model from a store."""
    from datactl.workspace import sync

    options = store_options(endpoint_url, region)
    with sync.clone(url, dataset, directory, options=options, paths=path, progress=RichProgress(), depth=depth) as ws:
        out.print(f"cloned {ws.kind} {ws.name} at {ws.head[:12] if ws.head else '-'} into {ws.root}")


def datasets(
    remote: Optional[str] = typer.Argument(None, help=STORE_HELP),
    json_: bool = JSON_OPT,
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """List the datasets and models in a store, with their heads and tags."""
    from datactl.remote.locate import choose_store
    from datactl.remote.remotestore import list_datasets

    infos = list_datasets(choose_store(remote, options=store_options(endpoint_url, region)).spec)
    if json_:
        emit_json([i.__dict__ for i in infos])
        return
    for i in infos:
        tags = f"  tags: {', '.join(sorted(i.tags))}" if i.tags else ""
        out.print(f"{i.kind:<8} {i.name:<30} {i.head[:12]}{tags}")


def register(app: typer.Typer) -> None:
    """Add the remote commands to ``app``, in the order ``datactl --help`` lists them."""
    app.add_typer(remote_app, name="remote")
    app.command()(push)
    app.command()(fetch)
    app.command()(pull)
    app.command()(clone)
    app.command()(datasets)
