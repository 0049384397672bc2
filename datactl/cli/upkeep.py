"""Store upkeep commands: ``gc``, ``fsck``, ``squash``, ``dataset delete``.

Each works on a remote store (a remote's name or a URL) or, with no store
named, on the store of the workspace the command runs in.
"""

from __future__ import annotations

from typing import Optional

import typer

from datactl.cli.options import ENDPOINT_OPT, JSON_OPT, REGION_OPT, STORE_HELP, store_options
from datactl.cli.output import emit_json, err, out
from datactl.core.errors import EXIT_FAILURE, UsageError
from datactl.core.units import human_bytes


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


# -- gc --------------------------------------------------------------------------------------------


def gc_cmd(
    remote: Optional[str] = typer.Argument(None, help=STORE_HELP),
    keep_last: Optional[int] = typer.Option(None, "--keep-last", metavar="N", help="Keep the files of only the last N versions of each dataset's history (older versions keep history and trees, not files)."),
    keep_tags: bool = typer.Option(False, "--keep-tags", help="With a retention option: also keep the files of every tagged version."),
    older_than: Optional[str] = typer.Option(None, "--older-than", metavar="AGE", help="Prune files only of versions older than this (30d, 12h, ...); younger ones are kept."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Report what would be condemned and deleted; change nothing."),
    grace: Optional[str] = typer.Option(None, "--grace", metavar="AGE", help="Never delete a pack younger than this, or condemned less than this ago (default 24h; [gc] grace in datactl.toml). 0 is safe only with no concurrent writer."),
    repack_threshold: Optional[float] = typer.Option(None, "--repack-threshold", metavar="FRACTION", help="Repack a pack once this fraction of it is garbage (default 0.5; 0: any garbage)."),
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
    from datactl.remote.locate import workspace_root
    from datactl.upkeep.gc import collect_garbage, gc_settings
    from datactl.upkeep.reach import Retention
    from datactl.workspace.upkeep import open_upkeep_store

    default_grace, default_threshold = gc_settings(workspace_root())
    retention = Retention(
        keep_last=keep_last,
        keep_tags=keep_tags,
        keep_within=parse_duration(older_than) if older_than is not None else None,
    )
    if keep_tags and keep_last is None and older_than is None:
        err.print("note: --keep-tags alone keeps the files of tagged versions and each head, and prunes every other version")
    grace_s = parse_duration(grace) if grace is not None else default_grace
    threshold = repack_threshold if repack_threshold is not None else default_threshold
    with open_upkeep_store(remote, store_options(endpoint_url, region)) as store:
        report = collect_garbage(store.target, retention=retention, grace=grace_s, repack_threshold=threshold, dry_run=dry_run)
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


def fsck_cmd(
    remote: Optional[str] = typer.Argument(None, help=STORE_HELP),
    repair: bool = typer.Option(False, "--repair", help="Rebuild the index from the packs' footers (under the gc lock)."),
    read_data: bool = typer.Option(False, "--read-data", help="Also download every pack and check it hashes to its id."),
    json_: bool = JSON_OPT,
    endpoint_url: Optional[str] = ENDPOINT_OPT,
    region: Optional[str] = REGION_OPT,
) -> None:
    """Check a store: index files, index entries pointing nowhere, packs missing from the index, refs to missing objects.

    In a workspace (no store named) its own databases are checked first. Exits
    1 when it finds an error. With --repair, a workspace's damaged index.db and
    stage.db are rebuilt (from the packs; from HEAD and the files on disk),
    the store's index is rebuilt from the packs' own footers, and the store
    checked again.
    """
    from datactl.workspace.upkeep import fsck_store

    report = fsck_store(remote, store_options(endpoint_url, region), repair=repair, read_data=read_data)
    if json_:
        emit_json(report.to_dict())
    else:
        styles = {"error": "red", "warning": "yellow", "info": None}
        for issue in report.issues:
            fix = " [--repair fixes this]" if issue.repairable and not report.repaired and issue.severity != "info" else ""
            out.print(f"{issue.severity}: [{issue.check}] {issue.message}{fix}", style=styles.get(issue.severity))
        for line in report.rebuilt:
            out.print(f"repaired: {line}")
        for line in report.lost:
            err.print(f"warning: {line}", style="yellow")
        if report.repair and (report.repair["packs_indexed"] or report.repair["index_files_written"] or report.repair["index_files_deleted"]):
            r = report.repair
            out.print(f"repaired: index rebuilt from {r['packs_indexed']} pack footer(s): {r['index_files_written']} index file(s) written, {r['index_files_deleted']} deleted")
        verdict = "ok" if report.ok else f"{len(report.errors)} error(s)"
        if not report.store_checked:
            out.print(f"{verdict} in the workspace's own databases; `datactl fsck --repair` rebuilds them, then checks the store")
            raise typer.Exit(1)
        read = f", {report.packs_read} pack(s) re-hashed" if report.read_data else ""
        out.print(
            f"{verdict}: {report.refs} ref(s), {report.versions} version(s), {report.packs} pack(s) ({human_bytes(report.bytes)}), "
            f"{report.index_files} index file(s), {report.objects_indexed} object(s) indexed{read} ({report.seconds:.2f}s)"
        )
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


# -- squash ----------------------------------------------------------------------------------------


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
    from datactl.workspace.upkeep import open_upkeep_store

    if kind is not None and kind not in ("dataset", "model"):
        raise UsageError(f"--kind must be dataset or model, not {kind!r}")
    with open_upkeep_store(remote, store_options(endpoint_url, region)) as store, store.repository() as repo:
        ws = store.workspace
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
    from datactl.workspace.upkeep import open_upkeep_store

    if kind is not None and kind not in ("dataset", "model"):
        raise UsageError(f"--kind must be dataset or model, not {kind!r}")
    with open_upkeep_store(remote, store_options(endpoint_url, region)) as store:
        ws = store.workspace
        if ws is not None and ws.name == name:
            raise UsageError(f"{name} is this workspace's own {ws.kind}", "delete it from a remote (`datactl dataset delete NAME origin`), or remove the workspace folder")
        result = delete_dataset(store.target.backend, name, kind)
    if json_:
        emit_json(result.to_dict())
        return
    head = next((c for r, c in result.refs.items() if not r.startswith("tags/")), None)
    tags = sorted(r.rsplit("/", 1)[-1] for r in result.refs if r.startswith("tags/"))
    what = result.kind or "dataset"
    out.print(f"deleted {what} {name}" + (f" (head was {head[:12]})" if head else "") + (f" and {len(tags)} tag(s): {', '.join(tags)}" if tags else ""))
    out.print("  `datactl gc` frees the space no other dataset or model uses")


def register(app: typer.Typer) -> None:
    """Add gc, fsck, squash and `dataset delete` to the datactl app."""
    app.command("gc")(gc_cmd)
    app.command("fsck")(fsck_cmd)
    app.command("squash")(squash_cmd)
    app.add_typer(dataset_app, name="dataset")
