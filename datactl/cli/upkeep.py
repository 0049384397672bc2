"""Store upkeep commands: ``gc``, ``fsck``, ``squash``, ``dataset delete`` (and the library calls behind ``tag --delete``).

Each works on a remote store (a remote's name or a URL) or, with no store
named, on the store of the workspace the command runs in.
"""

from __future__ import annotations

import functools
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import typer

from datactl.cli.output import emit_json, err, out
from datactl.core.units import human_bytes
from datactl.core.errors import StorageError, UsageError
from storage_backends import BackendError

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON.")
ENDPOINT_OPT = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint for a store given as a URL.")
REGION_OPT = typer.Option(None, "--region", help="S3 region for a store given as a URL.")
STORE_HELP = "Remote name, URL or path (default: this workspace's own store)."


def _backend_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn storage errors into a clear message and exit code 1 (not a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BackendError as exc:
            raise StorageError(f"storage error: {exc}", "check the store's URL, credentials and network; nothing was left half-done") from None

    return wrapper


def _workspace_root() -> str | None:
    from datactl.core.errors import NotAWorkspace
    from datactl.remote.locate import find_workspace_root

    try:
        return find_workspace_root()
    except NotAWorkspace:
        return None


def _settings(root: str | None) -> dict:
    if root is None:
        return {}
    from datactl.core.settings import read_settings

    section = read_settings(root).get("gc", {})
    return section if isinstance(section, dict) else {}


@contextmanager
def open_store(remote: str | None, endpoint_url: str | None = None, region: str | None = None, *, lock_workspace: bool = True) -> Iterator[tuple[Any, Any, Any]]:
    """Yield (target, workspace or None, RemoteStore or None) for REMOTE, or the workspace's own store."""
    from datactl.upkeep.targets import remote_target
    from datactl.workspace.upkeep import workspace_target
    from datactl.remote.locate import RemoteSpec, resolve_remote
    from datactl.remote.remotestore import RemoteStore
    from datactl.workspace.workspace import Workspace

    root = _workspace_root()
    if remote is None:
        if root is None:
            raise UsageError("not in a datactl workspace", "name a store: a remote of this workspace, a URL or a path")
        with Workspace(root) as ws:
            if lock_workspace:
                with ws.locked():
                    yield workspace_target(ws), ws, None
            else:
                yield workspace_target(ws), ws, None
        return
    spec = resolve_remote(root, remote)
    opts = {k: v for k, v in {"endpoint_url": endpoint_url, "region": region}.items() if v}
    if opts:
        spec = RemoteSpec(spec.name, spec.url, {**spec.options, **opts})
    if root is not None:
        cache_dir = os.path.join(root, ".datactl", "remotes")
        tmp_dir = os.path.join(root, ".datactl", "store", "tmp")
    else:
        from datactl.remote.locate import default_cache_dir

        cache_dir = os.path.join(default_cache_dir(), "remotes")
        tmp_dir = tempfile.mkdtemp(prefix="datactl-upkeep-")
    with RemoteStore(spec, cache_dir) as rs:
        yield remote_target(rs, tmp_dir), None, rs


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


# -- gc --------------------------------------------------------------------------------------------


@_backend_errors
def gc_cmd(
    remote: Optional[str] = typer.Argument(None, help=STORE_HELP),
    keep_last: Optional[int] = typer.Option(None, "--keep-last", help="Keep the files of only the last N versions of each dataset's history (older versions keep history and trees, not files)."),
    keep_tags: bool = typer.Option(False, "--keep-tags", help="With a retention option: also keep the files of every tagged version."),
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Prune files only of versions older than this (30d, 12h, ...); younger ones are kept."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Report what would be condemned and deleted; change nothing."),
    grace: Optional[str] = typer.Option(None, "--grace", help="Never delete a pack younger than this, or condemned less than this ago (default 24h; [gc] grace in datactl.toml). 0 is safe only with no concurrent writer."),
    repack_threshold: Optional[float] = typer.Option(None, "--repack-threshold", help="Repack a pack once this fraction of it is garbage (default 0.5; 0: any garbage)."),
    json_: bool = JSON_OPT,
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """Free the space of what no ref keeps: delete unreachable packs, repack mostly-garbage ones.

    Keeps every object reachable from every ref in the store (all datasets and
    models, all tags). Safe alongside pushes: a pack younger than the grace
    period is never touched, and garbage is first condemned, then deleted by a
    gc run at least a grace period later. See docs/gc.md.
    """
    from datactl.core.units import format_duration, parse_duration
    from datactl.upkeep.gc import DEFAULT_GRACE, DEFAULT_REPACK_THRESHOLD, collect_garbage
    from datactl.upkeep.reach import Retention

    settings = _settings(_workspace_root())
    retention = Retention(
        keep_last=keep_last,
        keep_tags=keep_tags,
        keep_within=parse_duration(older_than) if older_than is not None else None,
    )
    if keep_tags and keep_last is None and older_than is None:
        err.print("note: --keep-tags alone keeps the files of tagged versions and each head, and prunes every other version")
    grace_s = parse_duration(grace if grace is not None else settings.get("grace", DEFAULT_GRACE))
    try:
        threshold = float(repack_threshold if repack_threshold is not None else settings.get("repack_threshold", DEFAULT_REPACK_THRESHOLD))
    except (TypeError, ValueError):
        raise UsageError("datactl.toml: [gc] repack_threshold must be a number") from None
    with open_store(remote, endpoint_url, region) as (target, _ws, _rs):
        report = collect_garbage(target, retention=retention, grace=grace_s, repack_threshold=threshold, dry_run=dry_run)
    if json_:
        emit_json(report.to_dict())
        return
    would = "would be " if dry_run else ""
    out.print(
        f"gc of {report.store}{' (dry run)' if dry_run else ''}: {report.refs} ref(s), {report.versions} version(s)"
        + (f", {report.versions_pruned} with files pruned (history kept)" if report.versions_pruned else "")
    )
    if report.lock_taken_over:
        err.print(f"note: took over a stale gc lock ({report.lock_taken_over})")
    if report.newly_pruned:
        out.print(f"  {len(report.newly_pruned)} version(s) {would}pruned to history only (commits and trees kept, files not)")
    out.print(f"  freed: {human_bytes(report.bytes_freed)} in {report.packs_deleted} pack(s) {'that would be ' if dry_run else ''}deleted")
    if report.packs_condemned:
        out.print(f"  condemned: {report.packs_condemned} pack(s), {human_bytes(report.bytes_condemned)}" + (f" ({report.packs_repacked} repacked)" if report.packs_repacked else ""))
    if report.objects_copied:
        out.print(f"  copied: {report.objects_copied} live object(s), {human_bytes(report.bytes_copied)}, into {report.packs_written if not dry_run else 'new'} pack(s)"
                  + (f" ({report.objects_rescued} rescued)" if report.objects_rescued else ""))
    if report.packs_pending:
        when = f" after {report.pending_until}" if report.pending_until else ""
        out.print(f"  waiting: {report.packs_pending} condemned pack(s), {human_bytes(report.bytes_pending)}, {would}deleted by a gc run{when} (grace {format_duration(report.grace_seconds)})")
    if report.packs_young:
        out.print(f"  kept: {report.packs_young} pack(s) younger than the grace period ({human_bytes(report.bytes_young)}; pushes may be using them)")
    out.print(
        f"  store: {report.packs_before} packs, {human_bytes(report.bytes_before)} -> {report.packs_after} packs, {human_bytes(report.bytes_after)}"
        f" ({report.seconds:.2f}s)"
    )
    for w in report.warnings:
        err.print(f"warning: {w}")


# -- fsck ------------------------------------------------------------------------------------------


@_backend_errors
def fsck_cmd(
    remote: Optional[str] = typer.Argument(None, help=STORE_HELP),
    repair: bool = typer.Option(False, "--repair", help="Rebuild the index from the packs' footers (under the gc lock)."),
    read_data: bool = typer.Option(False, "--read-data", help="Also download every pack and check it hashes to its id."),
    json_: bool = JSON_OPT,
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """Check a store: index files, index entries pointing nowhere, packs missing from the index, refs to missing objects.

    Exits 1 when it finds an error. With --repair, the index is rebuilt from
    the packs' own footers and the store checked again.
    """
    from datactl.upkeep.fsck import fsck

    with open_store(remote, endpoint_url, region, lock_workspace=repair) as (target, _ws, _rs):
        report = fsck(target, repair=repair, read_data=read_data)
    if json_:
        emit_json(report.to_dict())
    else:
        styles = {"error": "red", "warning": "yellow", "info": None}
        for issue in report.issues:
            fix = " [--repair fixes this]" if issue.repairable and not report.repaired and issue.severity != "info" else ""
            out.print(f"{issue.severity}: [{issue.check}] {issue.message}{fix}", style=styles.get(issue.severity))
        if report.repaired and report.repair:
            r = report.repair
            out.print(f"repaired: index rebuilt from {r['packs_indexed']} pack footer(s): {r['index_files_written']} index file(s) written, {r['index_files_deleted']} deleted")
        verdict = "ok" if report.ok else f"{len(report.errors)} error(s)"
        read = f", {report.packs_read} pack(s) re-hashed" if report.read_data else ""
        out.print(
            f"{verdict}: {report.refs} ref(s), {report.versions} version(s), {report.packs} pack(s) ({human_bytes(report.bytes)}), "
            f"{report.index_files} index file(s), {report.objects_indexed} object(s) indexed{read} ({report.seconds:.2f}s)"
        )
    if not report.ok:
        raise typer.Exit(1)


# -- squash ----------------------------------------------------------------------------------------


@contextmanager
def _store_repo(remote: str | None, endpoint_url: str | None, region: str | None) -> Iterator[tuple[Any, Any]]:
    """A Repository over the store (the workspace's own, or a remote's backend with its index cache)."""
    from datactl.store.index import ObjectIndex
    from datactl.store.repository import Repository

    with open_store(remote, endpoint_url, region) as (target, ws, rs):
        if ws is not None:
            yield ws.repo, ws
            return
        rs.sync_index()
        repo = Repository(rs.backend, ObjectIndex(rs.index.path), rs.config(), target.tmp_dir)
        try:
            yield repo, None
        finally:
            repo.close()


@_backend_errors
def squash_cmd(
    name: str = typer.Argument(..., help="The dataset or model whose versions to squash."),
    remote: Optional[str] = typer.Argument(None, help=STORE_HELP),
    from_: str = typer.Option(..., "--from", help="Oldest version to squash (tag, id prefix, NAME~N ...)."),
    to: str = typer.Option(..., "--to", help="Newest version to squash; the squashed version holds its files."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Message of the squashed version (default: the list of squashed versions)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="dataset or model, when NAME is both."),
    delete_tags: bool = typer.Option(False, "--delete-tags", help="Delete tags that name a version inside the range (refused otherwise)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would change; write nothing."),
    json_: bool = JSON_OPT,
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """Collapse versions FROM..TO of a dataset or model into one (rewrites the later versions on top).

    The squashed version keeps the inputs of every squashed one; versions that
    other datasets or models name as inputs keep their files (gc keeps them).
    Other clones must fetch the new history (`datactl fetch`, then check out NAME).
    """
    from datactl.upkeep.squash import squash

    if kind is not None and kind not in ("dataset", "model"):
        raise UsageError(f"--kind must be dataset or model, not {kind!r}")
    with _store_repo(remote, endpoint_url, region) as (repo, ws):
        result = squash(repo, name, from_, to, kind=kind, message=message, delete_tags=delete_tags, dry_run=dry_run)
        moved = {**result.rewritten, result.squashed[-1]: result.new_commit}
        if ws is not None and not dry_run and ws.name == name and ws.head in moved:
            ws.stage.set_meta("head", moved[ws.head])  # same files: the checkout follows its rewritten version
    if json_:
        emit_json(result.to_dict())
        return
    would = "would squash" if dry_run else "squashed"
    out.print(f"{would} {len(result.squashed)} version(s) of {result.name} ({result.squashed[0][:12]}..{result.squashed[-1][:12]}) into {result.new_commit[:12]}")
    if result.rewritten:
        out.print(f"  {len(result.rewritten)} later version(s) rewritten on top; head {result.old_head[:12]} -> {result.new_head[:12]}")
    for tag, (old, new) in result.tags_moved.items():
        out.print(f"  tag {tag}: {old[:12]} -> {new[:12]}")
    for tag, old in result.tags_deleted.items():
        out.print(f"  tag {tag} ({old[:12]}) deleted")
    if not dry_run:
        out.print("  run `datactl gc` to free the space of the squashed versions")


# -- dataset delete --------------------------------------------------------------------------------

dataset_app = typer.Typer(help="Manage datasets and models in a store.", no_args_is_help=True)


@dataset_app.command("delete")
@_backend_errors
def dataset_delete(
    name: str = typer.Argument(..., help="The dataset or model to delete (its head ref and all its tags)."),
    remote: Optional[str] = typer.Argument(None, help=STORE_HELP),
    kind: Optional[str] = typer.Option(None, "--kind", help="dataset or model, when NAME is both."),
    json_: bool = JSON_OPT,
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """Delete a dataset or model: remove its refs (by compare-and-swap). `datactl gc` frees its space later.

    Until gc runs, a deleted dataset can be restored by pushing it again.
    """
    from datactl.upkeep.refdelete import delete_dataset

    if kind is not None and kind not in ("dataset", "model"):
        raise UsageError(f"--kind must be dataset or model, not {kind!r}")
    with open_store(remote, endpoint_url, region) as (target, ws, _rs):
        if ws is not None and ws.name == name:
            raise UsageError(f"{name} is this workspace's own {ws.kind}", "delete it from a remote (`datactl dataset delete NAME origin`), or remove the workspace folder")
        result = delete_dataset(target.backend, name, kind)
    if json_:
        emit_json(result.to_dict())
        return
    head = next((c for r, c in result.refs.items() if not r.startswith("tags/")), None)
    tags = sorted(r.rsplit("/", 1)[-1] for r in result.refs if r.startswith("tags/"))
    what = result.kind or "dataset"
    out.print(f"deleted {what} {name}" + (f" (head was {head[:12]})" if head else "") + (f" and {len(tags)} tag(s): {', '.join(tags)}" if tags else ""))
    out.print("  `datactl gc` frees the space no other dataset or model uses")


def delete_tag_cmd(name: str, remote: str | None) -> None:
    """``datactl tag --delete NAME [--remote R]``: remove a tag of the workspace's dataset."""
    from datactl.upkeep.refdelete import delete_tag
    from datactl.workspace.workspace import Workspace
    from datactl.remote.locate import find_workspace_root

    root = find_workspace_root()
    with Workspace(root) as ws:
        dataset = ws.name
        if remote is None:
            old = delete_tag(ws.repo.backend, dataset, name)
            where = "this workspace's store"
    if remote is not None:
        with open_store(remote) as (target, _ws, _rs):
            old = _backend_errors(delete_tag)(target.backend, dataset, name)
            where = target.label
    out.print(f"deleted tag {name} (was {old[:12]}) in {where}")


def register(app: typer.Typer) -> None:
    """Add gc, fsck, squash and `dataset delete` to the datactl app."""
    app.command("gc")(gc_cmd)
    app.command("fsck")(fsck_cmd)
    app.command("squash")(squash_cmd)
    app.add_typer(dataset_app, name="dataset")
