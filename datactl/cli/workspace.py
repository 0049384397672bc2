"""Commands on the workspace and its versions: init, add, rm, commit, status, log, show, ls, diff, checkout, tag, du."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Iterable, Optional

import typer

from datactl.cli.options import JSON_OPT
from datactl.cli.output import RichProgress, emit_json, emit_json_array, err, out, print_lines
from datactl.core.errors import EXIT_FAILURE, BelowShallowCut, PathNotFound, UnknownRef, UsageError
from datactl.core.units import human_bytes, parse_fraction

if TYPE_CHECKING:
    from datactl.format.objects import TreeEntry
    from datactl.store.diff import DiffResult
    from datactl.workspace.status import Status
    from datactl.workspace.workspace import Workspace

# -- init / add / rm / commit ----------------------------------------------------


def init(
    path: str = typer.Argument(".", help="Folder to make a workspace (created if missing)."),
    name: Optional[str] = typer.Option(None, "--name", help="Dataset or model name (default: the folder's name)."),
    kind: str = typer.Option("dataset", "--kind", help="dataset or model."),
) -> None:
    """Create a workspace with a local store."""
    from datactl.workspace.workspace import Workspace

    with Workspace.init(path, name=name, kind=kind) as ws:
        out.print(f"Initialized {ws.kind} {ws.name} in {ws.root}")


def add(
    paths: list[str] = typer.Argument(..., help="Files or folders to stage (with --external: URLs, prefixes or globs)."),
    force: bool = typer.Option(False, "--force", "-f", help="Add files even if .datactlignore ignores them."),
    external: bool = typer.Option(False, "--external", help="Record objects where they live (s3://, gs://, file://, https:// URLs; prefixes and globs) without storing them."),
    dest: Optional[str] = typer.Option(None, "--dest", help="With --external: the workspace folder the objects go under."),
    copy: bool = typer.Option(False, "--copy", help="With --external: store the objects' bytes, as ordinary files."),
) -> None:
    """Stage new, changed and deleted files for the next commit."""
    from datactl.workspace.workspace import Workspace

    if (dest is not None or copy) and not external:
        raise UsageError("--dest and --copy apply to --external only", "add --external URL... --dest FOLDER")
    with Workspace.open() as ws:
        result = ws.add_external(paths, dest, copy, progress=RichProgress()) if external else ws.add(paths, force=force, progress=RichProgress())
    for problem in result.problems:
        err.print(f"warning: {problem.path}: {problem.reason}")
    out.print(
        f"staged {result.added} added, {result.modified} modified, {result.removed} removed "
        f"({result.unchanged} unchanged, {human_bytes(result.bytes_read)} read)"
    )


def update(paths: list[str] = typer.Argument(..., help="Tracked external files or folders holding them.")) -> None:
    """Record the current content of external files' sources (staged for the next commit)."""
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        result = ws.update(paths, progress=RichProgress())
    out.print(f"staged {result.modified} changed external file(s) ({result.unchanged} unchanged, {human_bytes(result.bytes_read)} read)")


def rm(
    paths: list[str] = typer.Argument(..., help="Tracked files or folders to remove."),
    cached: bool = typer.Option(False, "--cached", help="Only stop tracking; keep the files on disk."),
) -> None:
    """Stop tracking files and delete them from the workspace."""
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        removed = ws.remove(paths, cached=cached)
    out.print(f"removed {len(removed)} file(s)")


def _parse_meta(items: list[str]) -> dict[str, object]:
    meta: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--meta {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta


def commit(
    message: str = typer.Option(..., "--message", "-m", help="What changed and why."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag the new version (repeatable)."),
    meta: list[str] = typer.Option([], "--meta", metavar="KEY=VALUE", help="KEY=VALUE metadata; VALUE is parsed as JSON when it can be (repeatable)."),
    input_: list[str] = typer.Option([], "--input", metavar="REF", help="REF of a dataset or model this version derives from (repeatable; NAME@VERSION for another one)."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Commit even if nothing changed."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the [validate] rules that on_commit = true runs first."),
    from_old: bool = typer.Option(False, "--from-old", help="With an older version checked out: make it, plus the staged changes, the latest version (undoing what later versions changed)."),
    trust_plugins: bool = typer.Option(False, "--trust-plugins", help="Let the [validate] rules import the plugin code datactl.toml names (also: DATACTL_TRUST_PLUGINS=1)."),
) -> None:
    """Record the staged files as a new version."""
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        cid = ws.commit(message, tags=tag, metadata=_parse_meta(meta), inputs=input_, allow_empty=allow_empty, verify=not no_verify, from_old=from_old, trust_plugins=trust_plugins)
        name = ws.name
    out.print(f"[{name} {cid[:12]}] {message}")


# -- status / log / show / ls / diff -------------------------------------------------


def print_status(st: Status) -> None:
    out.print(f"HEAD: {st.head[:12] if st.head else '(no commits yet)'}")
    if st.interrupted:
        out.print(
            f"the checkout of {st.interrupted[:12]} was cut short: the workspace holds a mix of two versions; "
            f"`datactl checkout {st.interrupted[:12]}` finishes it",
            style="red",
        )
    if st.latest:
        out.print(f"HEAD is an older version; the latest is {st.latest[:12]} (commits need --from-old)")
    if st.clean and not st.untracked and not st.interrupted:
        out.print("nothing to commit, workspace clean")
    sections = (("Changes to be committed", st.staged, "green"), ("Changes not staged", st.unstaged, "red"))
    for title, changes, color in sections:
        if changes:
            out.print(f"{title}:")
            for c in changes:
                out.print(f"  {c.change:>9}: {c.path}", style=color)
    if st.untracked:
        out.print("Untracked files:")
        for p in st.untracked[:200]:
            out.print(f"  {p}", style="red")
        if len(st.untracked) > 200:
            out.print(f"  ... and {len(st.untracked) - 200} more")
    for problem in st.problems:
        err.print(f"warning: {problem.path}: {problem.reason}")


STATUS_CODES = {"added": "A", "modified": "M", "deleted": "D", "source changed": "S"}


def print_short_status(st: Status) -> None:
    """git's short format: a column for the stage, one for the files, then the path; ``??`` untracked."""
    rows: dict[str, list[str]] = {}
    for column, changes in enumerate((st.staged, st.unstaged)):
        for c in changes:
            rows.setdefault(c.path, [" ", " "])[column] = STATUS_CODES[c.change]
    for path in sorted(rows):
        out.print(f"{''.join(rows[path])} {path}")
    for path in st.untracked:
        out.print(f"?? {path}")
    for problem in st.problems:
        err.print(f"warning: {problem.path}: {problem.reason}")


def status(
    short: bool = typer.Option(False, "--short", "-s", help="One line per path: stage and workspace columns (A, M, D), ?? for untracked."),
    json_: bool = JSON_OPT,
) -> None:
    """Show staged changes, unstaged changes and untracked files."""
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        st = ws.status()
    if short and not json_:
        print_short_status(st)
    elif json_:
        emit_json(
            {
                "head": st.head,
                "latest": st.latest,
                "interrupted_checkout": st.interrupted,
                "clean": st.clean,
                "staged": [c.__dict__ for c in st.staged],
                "unstaged": [c.__dict__ for c in st.unstaged],
                "untracked": st.untracked,
                "problems": [p.__dict__ for p in st.problems],
            }
        )
    else:
        print_status(st)


def _tags_by_commit(ws: Workspace) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for tag, cid in ws.list_tags().items():
        tags.setdefault(cid, []).append(tag)
    return tags


def print_log(ws: Workspace, start: str, limit: Optional[int], oneline: bool) -> None:
    from datactl.store.history import HISTORY_CUT, iter_history
    from datactl.workspace.shallow import shallow_commits

    tags = _tags_by_commit(ws)
    cut = shallow_commits(ws.stage)
    for cid, c in iter_history(ws.repo, start, limit, cut):
        labels = (["HEAD"] if cid == ws.head else []) + [f"tag: {t}" for t in tags.get(cid, [])]
        deco = f" ({', '.join(labels)})" if labels else ""
        cut_line = HISTORY_CUT if cid in cut and c.parents else None
        if oneline:
            out.print_spans((cid[:12] + deco, "yellow"), (" " + (c.message.splitlines()[0] if c.message else ""), None))
            if cut_line:
                out.print(cut_line)
            continue
        out.print(f"commit {cid}{deco}", style="yellow")
        if len(c.parents) > 1:
            out.print("Merge:  " + " ".join(p[:12] for p in c.parents))
        out.print(f"Author: {c.author}")
        out.print(f"Date:   {c.time}")
        if c.inputs:
            out.print("Inputs: " + " ".join(i[:12] for i in c.inputs))
        out.print("")
        for line in c.message.splitlines() or [""]:
            out.print(f"    {line}")
        out.print("")
        if cut_line:
            out.print(cut_line)


def log(
    ref: str = typer.Argument("HEAD", help="Where to start."),
    n: Optional[int] = typer.Option(None, "-n", "--max-count", metavar="N", help="Show at most N versions."),
    oneline: bool = typer.Option(False, "--oneline", help="One line per version."),
    json_: bool = JSON_OPT,
) -> None:
    """Show the history of a version, newest first."""
    from datactl.store.history import iter_history
    from datactl.workspace.shallow import shallow_commits
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        start = ws.resolve(ref)
        if json_:
            cut = shallow_commits(ws.stage)
            emit_json([{**c.to_dict(cid), **({"history_cut": True} if cid in cut else {})} for cid, c in iter_history(ws.repo, start, n, cut)])
        else:
            print_log(ws, start, n, oneline)


def print_names(result: DiffResult, with_status: bool) -> None:
    """``--name-only``: one changed path a line; ``--name-status``: its letter (A, D, M, R), a tab, the path(s)."""
    letters = {"added": "A", "removed": "D", "modified": "M", "renamed": "R"}
    for c in result.changes:  # plain writes: tabs must stay tabs for scripts
        if not with_status:
            sys.stdout.write(f"{c.path}\n")
        elif c.status == "renamed":
            sys.stdout.write(f"R\t{c.old_path}\t{c.path}\n")
        else:
            sys.stdout.write(f"{letters[c.status]}\t{c.path}\n")


def print_diff(result: DiffResult, stat: bool) -> None:
    if not stat:
        marks = {"added": ("A", "green"), "removed": ("D", "red"), "modified": ("M", "yellow"), "renamed": ("R", "cyan")}
        for c in result.changes:
            mark, color = marks[c.status]
            if c.status == "renamed":
                out.print(f"{mark}  {c.old_path} -> {c.path}", style=color)
            elif c.status == "modified":
                out.print_spans((f"{mark}  {c.path}", color), (f" ({human_bytes(c.old_size)} -> {human_bytes(c.new_size)})", None))
            else:
                out.print_spans((f"{mark}  {c.path}", color), (f" ({human_bytes(c.new_size or c.old_size)})", None))
    s = result.summary()
    out.print(
        f"{s['added']} added (+{human_bytes(s['bytes_added'])}), {s['removed']} removed (-{human_bytes(s['bytes_removed'])}), "
        f"{s['modified']} modified ({human_bytes(s['bytes_modified'])}), {s['renamed']} renamed"
    )


def show(ref: str = typer.Argument("HEAD", help="The version to show."), json_: bool = JSON_OPT) -> None:
    """Show one version: its metadata, lineage inputs and what changed from its parent."""
    from datactl.store.diff import diff_trees
    from datactl.store.stats import version_stats
    from datactl.workspace.shallow import shallow_commits
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        cid = ws.resolve(ref)
        c = ws.repo.read_commit(cid)
        # At a shallow workspace's cut the parent was never fetched: what changed from it is unknown here.
        at_cut = cid in shallow_commits(ws.stage) and bool(c.parents) and not ws.repo.has(c.parents[0])
        parent_tree = ws.repo.read_commit(c.parents[0]).tree if c.parents and not at_cut else None
        changes = None if at_cut else diff_trees(ws.repo, parent_tree, c.tree)
        stats = version_stats(ws.repo, cid)
        if json_:
            cut = {"history_cut": True} if at_cut else {}
            emit_json({**c.to_dict(cid), **cut, "stats": stats.to_dict(), "diff": changes.to_dict() if changes else None})
            return
        print_log(ws, cid, 1, False)
        if c.metadata:
            out.print("Metadata:")
            for k, v in sorted(c.metadata.items()):
                out.print(f"    {k} = {json.dumps(v)}")
        out.print(f"Files:  {stats.files} ({human_bytes(stats.logical_bytes)})")
        if changes is not None:
            print_diff(changes, stat=True)


def ls_(
    ref: Optional[str] = typer.Argument(None, help="Version (default HEAD); a single argument that is not a ref is taken as PATH."),
    path: str = typer.Argument("", help="Folder or file inside the version."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="List every file below PATH."),
    json_: bool = JSON_OPT,
) -> None:
    """List the files of a version."""
    from datactl.format.objects import DIR, FILE
    from datactl.store.trees import lookup_path
    from datactl.store.walk import walk_files
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        alone = ref is not None and not path  # REF, or a PATH in HEAD
        not_a_ref: UnknownRef | None = None
        if alone:
            try:
                cid = ws.resolve(ref)  # type: ignore[arg-type]
            except UnknownRef as exc:
                cid, path, not_a_ref = ws.resolve("HEAD"), ref, exc  # type: ignore[assignment]
        else:
            cid = ws.resolve(ref or "HEAD")
        tree = ws.repo.read_commit(cid).tree
        path = path.strip("/")
        entry = lookup_path(ws.repo, tree, path)
        if entry is None and isinstance(not_a_ref, BelowShallowCut):
            raise not_a_ref
        if entry is None and alone:
            raise UnknownRef(f"{path!r} is neither a version nor a path in HEAD ({cid[:12]})", "`datactl log` lists the versions, `datactl ls` the files")
        if entry is None:
            raise PathNotFound(f"{path} is not in version {cid[:12]}", f"`datactl ls {ref or 'HEAD'}` lists what it holds")
        if entry.kind != DIR:
            rows: Iterable[tuple[str, TreeEntry]] = [(path, entry)]
        elif recursive:
            rows = walk_files(ws.repo, entry.digest, path + "/" if path else "")  # streamed: a million files need no memory
        else:
            rows = [((path + "/" if path else "") + e.name, e) for e in ws.repo.read_tree(entry.digest).entries]
        if json_:
            emit_json_array(
                {"path": p, "kind": e.kind, "size": e.size, "mode": oct(e.mode) if e.kind == FILE else None, "digest": e.digest, "target": e.target}
                for p, e in rows
            )
            return
        print_lines(_ls_line(p, e) for p, e in rows)


def _ls_line(path: str, e: TreeEntry) -> str:
    from datactl.format.objects import DIR, SYMLINK

    if e.kind == DIR:
        return f"{'d':<6} {human_bytes(e.size):>10}  {path}/"
    if e.kind == SYMLINK:
        return f"{'l':<6} {'':>10}  {path} -> {e.target}"
    return f"{oct(e.mode)[2:]:<6} {human_bytes(e.size):>10}  {path}"


def diff(
    ref_a: Optional[str] = typer.Argument(None, help="Old version (default HEAD)."),
    ref_b: Optional[str] = typer.Argument(None, help="New version (default: the files in the workspace)."),
    path: Optional[str] = typer.Argument(None, help="A table (CSV, TSV, JSON Lines, Parquet): show its rows added, removed, changed and moved."),
    rows: bool = typer.Option(False, "--rows", help="Also show the row diff of every table that changed."),
    key: Optional[str] = typer.Option(None, "--key", help="Match rows by these columns (COL[,COL]); default: [tables.\"PATH\"] key in datactl.toml, else by position."),
    limit: int = typer.Option(50, "--limit", help="Show at most N changed rows per table (0: all)."),
    table_stats: bool = typer.Option(False, "--stats", help="How each changed table's statistics moved: rows, null rates, distinct counts, means, top values."),
    max_null_rate_change: Optional[str] = typer.Option(
        None, "--max-null-rate-change", help="With --stats: fail (exit 1) if a column's share of nulls moved by more than this (2% or 0.02)."
    ),
    stat: bool = typer.Option(False, "--stat", help="Only the summary."),
    name_only: bool = typer.Option(False, "--name-only", help="Only the paths that changed, one a line."),
    name_status: bool = typer.Option(False, "--name-status", help="The paths that changed with A, D, M or R (renamed: old and new path), tab-separated."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit with 1 when there are differences (with --max-* limits: only when a limit is exceeded)."),
    json_: bool = JSON_OPT,
    max_changed_files: Optional[str] = typer.Option(None, "--max-changed-files", help="Fail (exit 1) if more files changed than N or P% of the old version's files."),
    max_added: Optional[str] = typer.Option(None, "--max-added", help="Fail if more files were added than N or P%."),
    max_removed: Optional[str] = typer.Option(None, "--max-removed", help="Fail if more files were removed than N or P%."),
    max_modified: Optional[str] = typer.Option(None, "--max-modified", help="Fail if more files were modified than N or P%."),
    max_renamed: Optional[str] = typer.Option(None, "--max-renamed", help="Fail if more files were renamed than N or P%."),
    max_changed_bytes: Optional[str] = typer.Option(None, "--max-changed-bytes", help="Fail if more bytes changed than a size (500MB) or P% of the old version's bytes."),
    remote: Optional[str] = typer.Option(None, "--remote", "-r", help="Compare two versions on this remote (name or URL), reading trees only."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Report the limits as junit or github (annotations); json is --json."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the --format limits report to this file."),
) -> None:
    """Show files added, removed, modified and renamed between two versions (or a version and the workspace).

    With PATH, or --rows, the rows of tables (docs/tables.md); with --stats, how their statistics moved.
    """
    from datactl.api.checks import diff_versions
    from datactl.cli.ci import drift_limits, gate_drift

    if max_null_rate_change is not None and not table_stats:
        raise UsageError("--max-null-rate-change goes with --stats", "datactl diff A B --stats --max-null-rate-change 2%")
    if path is not None or rows or table_stats:
        _diff_tables(ref_a, ref_b, path, rows, key, limit, table_stats, json_, exit_code, remote, max_null_rate_change)
        return

    limits = drift_limits(
        changed_files=max_changed_files, added=max_added, removed=max_removed, modified=max_modified,
        renamed=max_renamed, changed_bytes=max_changed_bytes,
    )
    if fmt not in (None, "table", "json", "junit", "github"):
        raise UsageError(f"--format must be table, json, junit or github, not {fmt!r}")
    json_ = json_ or fmt == "json"
    if sum((stat, name_only, name_status, json_)) > 1:
        raise UsageError("give only one of --stat, --name-only, --name-status and --json")

    def show(result: DiffResult) -> None:
        if name_only or name_status:
            print_names(result, with_status=name_status)
        else:
            print_diff(result, stat)

    d = diff_versions(ref_a, ref_b, remote=remote, measure_base=bool(limits))
    if limits:
        label = f"{ref_a or 'HEAD'}..{ref_b or '(workspace)'}"
        ok = gate_drift(d.result, limits, (d.base_files, d.base_bytes), "json" if json_ else fmt or "table", output, label, lambda: show(d.result))
        raise typer.Exit(0 if ok else EXIT_FAILURE)
    if json_:
        emit_json(d.result.to_dict())
    else:
        show(d.result)
    if exit_code and d.result.changes:
        raise typer.Exit(EXIT_FAILURE)


def _diff_tables(
    ref_a: str | None, ref_b: str | None, path: str | None, rows: bool, key: str | None, limit: int, stats: bool, json_: bool, exit_code: bool, remote: str | None,
    max_null_rate_change: str | None = None,
) -> None:
    """``diff A B PATH``, ``diff A B --rows`` and ``diff A B --stats``."""
    from datactl.api import tables
    from datactl.cli.tables import print_stats_diff, print_table_diff
    from datactl.tables.stats import null_rate_breaches

    if ref_a is None or ref_b is None:
        raise UsageError("a row or statistics diff compares two versions: datactl diff A B [PATH]", "name both versions, e.g. datactl diff HEAD~1 HEAD labels.csv")
    if limit < 0:
        raise UsageError(f"--limit must be 0 (all) or more, not {limit}")
    columns = [c.strip() for c in key.split(",") if c.strip()] if key else None
    if key is not None and path is None:
        raise UsageError("--key goes with one table: datactl diff A B PATH --key COL[,COL]", 'for --rows, set each table\'s key in datactl.toml: [tables."PATH"] key = ["COL"]')
    if stats:
        null_limit = None
        if max_null_rate_change is not None:
            try:
                null_limit = parse_fraction(max_null_rate_change)
            except ValueError:
                raise UsageError(f"--max-null-rate-change {max_null_rate_change!r} is not a share like 2% or 0.02") from None
        moved = tables.diff_table_stats(ref_a, ref_b, path or "", remote=remote)
        breaches = null_rate_breaches(moved, null_limit) if null_limit is not None else []
        if json_:
            emit_json([d.to_dict() for d in moved] if null_limit is None else {"tables": [d.to_dict() for d in moved], "breaches": breaches})
        else:
            print_stats_diff(moved)
            for line in breaches:
                out.print(f"limit exceeded: {line}")
        if breaches or (exit_code and moved and null_limit is None):
            raise typer.Exit(EXIT_FAILURE)
        return
    if path is not None:
        diffs = [tables.diff_table_versions(ref_a, ref_b, path, key=columns, limit=limit or None, remote=remote)]
    else:
        diffs = tables.diff_changed_tables(ref_a, ref_b, limit=limit or None, remote=remote)
    if json_:
        emit_json(diffs[0].to_dict() if path is not None else [d.to_dict() for d in diffs])
    else:
        if path is None:
            print_diff(diff_versions_for_rows(ref_a, ref_b, remote), stat=False)
        for d in diffs:
            print_table_diff(d)
    if exit_code and any(d.changed for d in diffs):
        raise typer.Exit(EXIT_FAILURE)


def diff_versions_for_rows(ref_a: str, ref_b: str, remote: str | None) -> DiffResult:
    from datactl.api.checks import diff_versions

    return diff_versions(ref_a, ref_b, remote=remote).result


# -- checkout / tag -------------------------------------------------------------------


def checkout(
    ref: str = typer.Argument(..., help="The version to restore (a tag, id, HEAD~N, or the dataset name for its latest)."),
    paths: Optional[list[str]] = typer.Argument(None, metavar="-- PATHS", help="Only restore these files or folders from REF, and stage them; HEAD stays where it is."),
    force: bool = typer.Option(False, "--force", "-f", help="Discard local changes and overwrite untracked files in the way."),
) -> None:
    """Make the workspace hold exactly the files of a version (file data it lacks comes from the default remote).

    With PATHS (`datactl checkout v1 -- labels.csv`), only those files are put
    back as they are in REF, and staged; HEAD and every other file stay.
    """
    from datactl.workspace import sync
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        if paths:
            result = sync.restore(ws, ref, paths, progress=RichProgress())
            out.print(f"restored {result.written} file(s) ({human_bytes(result.bytes_written)}) from {result.commit[:12]}; HEAD stays at {ws.head[:12] if ws.head else '(none)'}")
            return
        old = ws.head
        result = sync.checkout(ws, ref, force=force, progress=RichProgress())
    moved = f"HEAD {old[:12]} -> {result.commit[:12]}" if old and old != result.commit else f"HEAD is now {result.commit[:12]}"
    reused = f", {human_bytes(result.bytes_reused)} of it reused from the files replaced" if result.bytes_reused else ""
    out.print(
        f"{moved}: {result.written} written ({human_bytes(result.bytes_written)}{reused}), "
        f"{result.deleted} deleted, {result.kept} unchanged"
    )


def _delete_tag(name: str, remote: str | None) -> None:
    """``datactl tag --delete NAME [--remote R]``: remove a tag of the workspace's dataset, here or on a remote."""
    from datactl.upkeep.refdelete import delete_tag
    from datactl.workspace.upkeep import open_upkeep_store
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        dataset = ws.name
        if remote is None:
            old = delete_tag(ws.repo.backend, dataset, name)
            where = "this workspace's store"
    if remote is not None:
        with open_upkeep_store(remote) as store:
            old = delete_tag(store.target.backend, dataset, name)
            where = store.target.label
    out.print(f"deleted tag {name} (was {old[:12]}) in {where}")


def tag(
    name: Optional[str] = typer.Argument(None, help="Tag to create (omit to list tags)."),
    ref: str = typer.Argument("HEAD", help="Version to tag."),
    force: bool = typer.Option(False, "--force", "-f", help="Move the tag if it exists."),
    delete: bool = typer.Option(False, "--delete", "-d", help="Delete tag NAME (gc frees what only it kept)."),
    remote: Optional[str] = typer.Option(None, "--remote", "-r", help="With --delete: delete the tag on this remote (name or URL)."),
    json_: bool = JSON_OPT,
) -> None:
    """Tag a version, list the tags, or delete a tag."""
    from datactl.workspace.workspace import Workspace

    if delete or remote is not None:
        if not delete or name is None:
            raise UsageError("--remote goes with --delete NAME" if not delete else "--delete needs the tag's NAME")
        _delete_tag(name, remote)
        return
    with Workspace.open() as ws:
        if name is None:
            tags = ws.list_tags()
            if json_:
                emit_json(tags)
            else:
                for t, cid in tags.items():
                    out.print(f"{t}\t{cid[:12]}")
            return
        cid = ws.create_tag(name, ref, force=force)
    out.print(f"tagged {cid[:12]} as {name}")


# -- du (verify and validate: datactl/cli/ci.py) -------------------------------------


def du(ref: str = typer.Argument("HEAD", help="The version to measure."), json_: bool = JSON_OPT) -> None:
    """Files, logical bytes, stored bytes and the dedup ratio of a version and of the whole store."""
    from datactl.store.stats import store_stats, version_stats
    from datactl.workspace.workspace import Workspace

    with Workspace.open() as ws:
        vs = version_stats(ws.repo, ws.resolve(ref))
        ss = store_stats(ws.repo)
    if json_:
        emit_json({"version": vs.to_dict(), "store": ss.to_dict()})
        return
    out.print(f"version {vs.commit[:12]}: {vs.files} files, {human_bytes(vs.logical_bytes)} tracked")
    out.print(f"  unique chunks: {vs.unique_chunks} ({human_bytes(vs.chunk_bytes)}), stored compressed: {human_bytes(vs.stored_bytes)}")
    out.print(f"  dedup+compression ratio: {vs.dedup_ratio:.2f}x")
    out.print(f"store: {ss.packs} packs, {human_bytes(ss.pack_bytes)} on disk, {ss.objects} objects")


def register(app: typer.Typer) -> None:
    """Add the workspace commands to ``app``, in the order ``datactl --help`` lists them."""
    app.command()(init)
    app.command()(add)
    app.command()(update)
    app.command()(rm)
    app.command()(commit)
    app.command()(status)
    app.command()(log)
    app.command()(show)
    app.command("ls")(ls_)
    app.command()(diff)
    app.command()(checkout)
    app.command()(tag)
    app.command("du")(du)
