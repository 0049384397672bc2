"""The ``datactl`` command line: parse, call the library, print."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Optional

import typer
from rich.text import Text

from datactl import __version__
from datactl.cli.output import RichProgress, emit_json, err, out
from datactl.core.units import human_bytes
from datactl.remote.remotestore import list_datasets
from datactl.workspace import sync
from datactl.store.diff import DiffResult, diff_tree_and_entries, diff_trees
from datactl.core.errors import DatactlError, UsageError
from datactl.store.history import iter_history
from datactl.format.objects import DIR, FILE, SYMLINK
from datactl.remote.locate import RemoteSpec, add_remote, list_remotes, remove_remote, resolve_remote
from datactl.cli.quickstart import edit_sample_files, make_sample_files
from datactl.store.stats import store_stats, version_stats
from datactl.store.trees import lookup_path
from datactl.store.walk import walk_files
from datactl.workspace.workspace import Status, Workspace

app = typer.Typer(
    name="datactl",
    help="Version datasets and models: content-addressed, deduplicated, verifiable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts mention [sections] and must print as written
    context_settings={"help_option_names": ["-h", "--help"]},
)

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _version(value: bool) -> None:
    if value:
        out.print(f"datactl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Version datasets and models: content-addressed, deduplicated, verifiable."""


def _open() -> Workspace:
    return Workspace.open()


# -- init / add / rm / commit ----------------------------------------------------


@app.command()
def init(
    path: str = typer.Argument(".", help="Folder to make a workspace (created if missing)."),
    name: Optional[str] = typer.Option(None, "--name", help="Dataset or model name (default: the folder's name)."),
    kind: str = typer.Option("dataset", "--kind", help="dataset or model."),
) -> None:
    """Create a workspace with a local store."""
    with Workspace.init(path, name=name, kind=kind) as ws:
        out.print(f"Initialized {ws.kind} {ws.name} in {ws.root}")


@app.command()
def add(
    paths: list[str] = typer.Argument(..., help="Files or folders to stage."),
    force: bool = typer.Option(False, "--force", "-f", help="Add files even if .datactlignore ignores them."),
) -> None:
    """Stage new, changed and deleted files for the next commit."""
    with _open() as ws:
        result = ws.add(paths, force=force, progress=RichProgress())
    for problem in result.problems:
        err.print(f"warning: {problem.path}: {problem.reason}")
    out.print(
        f"staged {result.added} added, {result.modified} modified, {result.removed} removed "
        f"({result.unchanged} unchanged, {human_bytes(result.bytes_read)} read)"
    )


@app.command()
def rm(
    paths: list[str] = typer.Argument(..., help="Tracked files or folders to remove."),
    cached: bool = typer.Option(False, "--cached", help="Only stop tracking; keep the files on disk."),
) -> None:
    """Stop tracking files and delete them from the workspace."""
    with _open() as ws:
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


@app.command()
def commit(
    message: str = typer.Option(..., "--message", "-m", help="What changed and why."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag the new version (repeatable)."),
    meta: list[str] = typer.Option([], "--meta", help="KEY=VALUE metadata; VALUE is parsed as JSON when it can be (repeatable)."),
    input_: list[str] = typer.Option([], "--input", help="REF of a dataset or model this version derives from (repeatable; NAME@VERSION for another one)."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Commit even if nothing changed."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the [validate] rules that on_commit = true runs first."),
    from_old: bool = typer.Option(False, "--from-old", help="With an older version checked out: make it, plus the staged changes, the latest version (undoing what later versions changed)."),
) -> None:
    """Record the staged files as a new version."""
    with _open() as ws:
        cid = ws.commit(message, tags=tag, metadata=_parse_meta(meta), inputs=input_, allow_empty=allow_empty, verify=not no_verify, from_old=from_old)
        name = ws.name
    out.print(f"[{name} {cid[:12]}] {message}")


# -- status / log / show / ls / diff -------------------------------------------------


def _print_status(st: Status) -> None:
    out.print(f"HEAD: {st.head[:12] if st.head else '(no commits yet)'}")
    if st.latest:
        out.print(f"HEAD is an older version; the latest is {st.latest[:12]} (commits need --from-old)")
    if st.clean and not st.untracked:
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


@app.command()
def status(json_: bool = JSON_OPT) -> None:
    """Show staged changes, unstaged changes and untracked files."""
    with _open() as ws:
        st = ws.status()
    if json_:
        emit_json(
            {
                "head": st.head,
                "latest": st.latest,
                "clean": st.clean,
                "staged": [c.__dict__ for c in st.staged],
                "unstaged": [c.__dict__ for c in st.unstaged],
                "untracked": st.untracked,
                "problems": [p.__dict__ for p in st.problems],
            }
        )
    else:
        _print_status(st)


def _tags_by_commit(ws: Workspace) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for tag, cid in ws.list_tags().items():
        tags.setdefault(cid, []).append(tag)
    return tags


def _print_log(ws: Workspace, start: str, limit: Optional[int], oneline: bool) -> None:
    tags = _tags_by_commit(ws)
    for cid, c in iter_history(ws.repo, start, limit):
        labels = (["HEAD"] if cid == ws.head else []) + [f"tag: {t}" for t in tags.get(cid, [])]
        deco = f" ({', '.join(labels)})" if labels else ""
        if oneline:
            out.print(Text(cid[:12] + deco, style="yellow") + Text(" " + (c.message.splitlines()[0] if c.message else "")))
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


@app.command()
def log(
    ref: str = typer.Argument("HEAD", help="Where to start."),
    n: Optional[int] = typer.Option(None, "-n", "--max-count", help="Show at most N versions."),
    oneline: bool = typer.Option(False, "--oneline", help="One line per version."),
    json_: bool = JSON_OPT,
) -> None:
    """Show the history of a version, newest first."""
    with _open() as ws:
        start = ws.resolve(ref)
        if json_:
            emit_json([c.to_dict(cid) for cid, c in iter_history(ws.repo, start, n)])
        else:
            _print_log(ws, start, n, oneline)


def _print_diff(result: DiffResult, stat: bool) -> None:
    if not stat:
        marks = {"added": ("A", "green"), "removed": ("D", "red"), "modified": ("M", "yellow"), "renamed": ("R", "cyan")}
        for c in result.changes:
            mark, color = marks[c.status]
            if c.status == "renamed":
                out.print(f"{mark}  {c.old_path} -> {c.path}", style=color)
            elif c.status == "modified":
                out.print(Text(f"{mark}  {c.path}", style=color) + Text(f" ({human_bytes(c.old_size)} -> {human_bytes(c.new_size)})"))
            else:
                out.print(Text(f"{mark}  {c.path}", style=color) + Text(f" ({human_bytes(c.new_size or c.old_size)})"))
    s = result.summary()
    out.print(
        f"{s['added']} added (+{human_bytes(s['bytes_added'])}), {s['removed']} removed (-{human_bytes(s['bytes_removed'])}), "
        f"{s['modified']} modified ({human_bytes(s['bytes_modified'])}), {s['renamed']} renamed"
    )


@app.command()
def show(ref: str = typer.Argument("HEAD", help="The version to show."), json_: bool = JSON_OPT) -> None:
    """Show one version: its metadata, lineage inputs and what changed from its parent."""
    with _open() as ws:
        cid = ws.resolve(ref)
        c = ws.repo.read_commit(cid)
        parent_tree = ws.repo.read_commit(c.parents[0]).tree if c.parents else None
        changes = diff_trees(ws.repo, parent_tree, c.tree)
        stats = version_stats(ws.repo, cid)
        if json_:
            emit_json({**c.to_dict(cid), "stats": stats.to_dict(), "diff": changes.to_dict()})
            return
        _print_log(ws, cid, 1, False)
        if c.metadata:
            out.print("Metadata:")
            for k, v in sorted(c.metadata.items()):
                out.print(f"    {k} = {json.dumps(v)}")
        out.print(f"Files:  {stats.files} ({human_bytes(stats.logical_bytes)})")
        _print_diff(changes, stat=True)


@app.command("ls")
def ls_(
    ref: Optional[str] = typer.Argument(None, help="Version (default HEAD); a single argument that is not a ref is taken as PATH."),
    path: str = typer.Argument("", help="Folder or file inside the version."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="List every file below PATH."),
    json_: bool = JSON_OPT,
) -> None:
    """List the files of a version."""
    with _open() as ws:
        if ref is not None and not path:
            try:
                cid = ws.resolve(ref)
            except DatactlError:
                cid, path = ws.resolve("HEAD"), ref
        else:
            cid = ws.resolve(ref or "HEAD")
        tree = ws.repo.read_commit(cid).tree
        path = path.strip("/")
        entry = lookup_path(ws.repo, tree, path)
        if entry is None:
            raise UsageError(f"{path} is not in version {cid[:12]}")
        if entry.kind != DIR:
            rows = [(path, entry)]
        elif recursive:
            rows = list(walk_files(ws.repo, entry.digest, path + "/" if path else ""))
        else:
            rows = [((path + "/" if path else "") + e.name, e) for e in ws.repo.read_tree(entry.digest).entries]
    if json_:
        emit_json(
            [
                {"path": p, "kind": e.kind, "size": e.size, "mode": oct(e.mode) if e.kind == FILE else None, "digest": e.digest, "target": e.target}
                for p, e in rows
            ]
        )
        return
    for p, e in rows:
        if e.kind == DIR:
            out.print(f"{'d':<6} {human_bytes(e.size):>10}  {p}/")
        elif e.kind == SYMLINK:
            out.print(f"{'l':<6} {'':>10}  {p} -> {e.target}")
        else:
            out.print(f"{oct(e.mode)[2:]:<6} {human_bytes(e.size):>10}  {p}")


@app.command()
def diff(
    ref_a: Optional[str] = typer.Argument(None, help="Old version (default HEAD)."),
    ref_b: Optional[str] = typer.Argument(None, help="New version (default: the files in the workspace)."),
    stat: bool = typer.Option(False, "--stat", help="Only the summary."),
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
    """Show files added, removed, modified and renamed between two versions (or a version and the workspace)."""
    from datactl.cli import ci

    limits = ci.drift_limits(
        changed_files=max_changed_files, added=max_added, removed=max_removed, modified=max_modified,
        renamed=max_renamed, changed_bytes=max_changed_bytes,
    )
    if fmt not in (None, "table", "json", "junit", "github"):
        raise UsageError(f"--format must be table, json, junit or github, not {fmt!r}")
    json_ = json_ or fmt == "json"
    base = (0, 0)
    if remote is not None:
        result, base = ci.remote_diff(remote, ref_a, ref_b)
    else:
        with _open() as ws:
            old_tree = ws.repo.read_commit(ws.resolve(ref_a or "HEAD")).tree if (ref_a or ws.head) else None
            if ref_b is None:
                result = diff_tree_and_entries(ws.repo, old_tree, ws.iter_disk_entries())
            else:
                result = diff_trees(ws.repo, old_tree, ws.repo.read_commit(ws.resolve(ref_b)).tree)
            if limits:
                from datactl.validation.drift import tree_totals

                base = tree_totals(ws.repo, old_tree)
    if limits:
        ok = ci.gate_drift(result, limits, base, "json" if json_ else fmt or "table", output, f"{ref_a or 'HEAD'}..{ref_b or '(workspace)'}", lambda: _print_diff(result, stat))
        raise typer.Exit(0 if ok else 1)
    if json_:
        emit_json(result.to_dict())
    else:
        _print_diff(result, stat)
    if exit_code and result.changes:
        raise typer.Exit(1)


# -- checkout / tag -------------------------------------------------------------------


@app.command()
def checkout(
    ref: str = typer.Argument(..., help="The version to restore (a tag, id, HEAD~N, or the dataset name for its latest)."),
    force: bool = typer.Option(False, "--force", "-f", help="Discard local changes and overwrite untracked files in the way."),
) -> None:
    """Make the workspace hold exactly the files of a version (file data it lacks comes from the default remote)."""
    with _open() as ws:
        result = sync.checkout(ws, ref, force=force, progress=RichProgress())
    out.print(
        f"HEAD is now {result.commit[:12]}: {result.written} written ({human_bytes(result.bytes_written)}), "
        f"{result.deleted} deleted, {result.kept} unchanged"
    )


@app.command()
def tag(
    name: Optional[str] = typer.Argument(None, help="Tag to create (omit to list tags)."),
    ref: str = typer.Argument("HEAD", help="Version to tag."),
    force: bool = typer.Option(False, "--force", "-f", help="Move the tag if it exists."),
    delete: bool = typer.Option(False, "--delete", "-d", help="Delete tag NAME (gc frees what only it kept)."),
    remote: Optional[str] = typer.Option(None, "--remote", "-r", help="With --delete: delete the tag on this remote (name or URL)."),
    json_: bool = JSON_OPT,
) -> None:
    """Tag a version, list the tags, or delete a tag."""
    if delete or remote is not None:
        from datactl.cli.upkeep import delete_tag_cmd

        if not delete or name is None:
            raise UsageError("--remote goes with --delete NAME" if not delete else "--delete needs the tag's NAME")
        delete_tag_cmd(name, remote)
        return
    with _open() as ws:
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


@app.command("du")
def du(ref: str = typer.Argument("HEAD", help="The version to measure."), json_: bool = JSON_OPT) -> None:
    """Files, logical bytes, stored bytes and the dedup ratio of a version and of the whole store."""
    with _open() as ws:
        vs = version_stats(ws.repo, ws.resolve(ref))
        ss = store_stats(ws.repo)
    if json_:
        emit_json({"version": vs.to_dict(), "store": ss.to_dict()})
        return
    out.print(f"version {vs.commit[:12]}: {vs.files} files, {human_bytes(vs.logical_bytes)} tracked")
    out.print(f"  unique chunks: {vs.unique_chunks} ({human_bytes(vs.chunk_bytes)}), stored compressed: {human_bytes(vs.stored_bytes)}")
    out.print(f"  dedup+compression ratio: {vs.dedup_ratio:.2f}x")
    out.print(f"store: {ss.packs} packs, {human_bytes(ss.pack_bytes)} on disk, {ss.objects} objects")


app.command("stats", help="Same as du.")(du)


# -- remotes: remote / push / fetch / pull / clone / datasets ------------------------------

remote_app = typer.Typer(help="Manage named remote stores (in datactl.toml).", no_args_is_help=True)
app.add_typer(remote_app, name="remote")


@remote_app.command("add")
def remote_add(
    name: str = typer.Argument(..., help="Name for the remote, e.g. origin."),
    url: str = typer.Argument(..., help="A path, file://, s3://bucket/prefix or gs://bucket/prefix."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, R2)."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile name (credentials stay in the AWS config)."),
) -> None:
    """Add a named remote."""
    with _open() as ws:
        spec = add_remote(ws.root, name, url, {"endpoint_url": endpoint_url, "region": region, "profile": profile})
    out.print(f"added remote {spec.name} -> {spec.url}")


@remote_app.command("list")
def remote_list(json_: bool = JSON_OPT) -> None:
    """List the named remotes."""
    with _open() as ws:
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
    with _open() as ws:
        remove_remote(ws.root, name)
    out.print(f"removed remote {name}")


@app.command()
def push(
    remote: Optional[str] = typer.Argument(None, help="Remote name or URL (default: origin)."),
    tags: bool = typer.Option(False, "--tags", help="Also push this dataset's tags."),
    json_: bool = JSON_OPT,
) -> None:
    """Upload new versions: only objects the remote lacks, then move its head by compare-and-swap."""
    with _open() as ws:
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


@app.command()
def fetch(
    remote: Optional[str] = typer.Argument(None, help="Remote name or URL (default: origin)."),
    json_: bool = JSON_OPT,
) -> None:
    """Download the remote's versions of this dataset (history only, not file data)."""
    with _open() as ws:
        r = sync.fetch(ws, remote, progress=RichProgress())
    if json_:
        emit_json(r.__dict__)
        return
    for ref, cid in sorted(r.refs.items()):
        out.print(f"{r.remote}: {ref} = {cid[:12]}")
    out.print(f"{r.objects} objects, {human_bytes(r.bytes_downloaded)} downloaded")


@app.command()
def pull(
    remote: Optional[str] = typer.Argument(None, help="Remote name or URL (default: origin)."),
    paths: list[str] = typer.Argument(None, help="Only these files or folders (the others stay tracked but absent)."),
    json_: bool = JSON_OPT,
) -> None:
    """Fetch, fast-forward to the remote's latest version, and check it out."""
    with _open() as ws:
        r = sync.pull(ws, remote, paths or (), progress=RichProgress())
    if json_:
        emit_json({"old": r.old, "new": r.new, "bytes_downloaded": r.bytes_downloaded, "written": r.checkout.written if r.checkout else 0})
        return
    moved = f"{r.old[:12] if r.old else '(none)'} -> {r.new[:12]}" if r.old != r.new else f"already at {r.new[:12]}"
    written = r.checkout.written if r.checkout else 0
    out.print(f"{r.fetch.remote}: {moved}; {human_bytes(r.bytes_downloaded)} downloaded, {written} files written")


@app.command()
def clone(
    url: str = typer.Argument(..., help="Store URL or path."),
    dataset: str = typer.Argument(..., help="NAME or NAME@VERSION of a dataset or model in that store."),
    directory: Optional[str] = typer.Argument(None, help="Where to put the workspace (default: NAME)."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    path: list[str] = typer.Option([], "--path", help="Only download these files or folders (repeatable)."),
) -> None:
    """Make a workspace of a dataset or model from a store."""
    options = {k: v for k, v in {"endpoint_url": endpoint_url, "region": region}.items() if v}
    with sync.clone(url, dataset, directory, options=options, paths=path, progress=RichProgress()) as ws:
        out.print(f"cloned {ws.kind} {ws.name} at {ws.head[:12] if ws.head else '-'} into {ws.root}")


@app.command()
def datasets(
    remote: Optional[str] = typer.Argument(None, help="Remote name, URL or path (default: this workspace's own store)."),
    json_: bool = JSON_OPT,
) -> None:
    """List the datasets and models in a store, with their heads and tags."""
    if remote is not None and ("://" in remote or os.sep in remote):
        spec = resolve_remote(None, remote)
    else:
        with _open() as ws:
            spec = resolve_remote(ws.root, remote) if remote else RemoteSpec(None, os.path.join(ws.dotdir, "store"))
    infos = list_datasets(spec)
    if json_:
        emit_json([i.__dict__ for i in infos])
        return
    for i in infos:
        tags = f"  tags: {', '.join(sorted(i.tags))}" if i.tags else ""
        out.print(f"{i.kind:<8} {i.name:<30} {i.head[:12]}{tags}")


# -- quickstart ------------------------------------------------------------------------


@app.command()
def quickstart(
    directory: Optional[str] = typer.Argument(None, help="Where to build the sample (default: a new temporary folder)."),
) -> None:
    """Build a sample dataset, commit two versions, and show status, log, diff and sizes."""
    root = directory or tempfile.mkdtemp(prefix="datactl-quickstart-")
    if os.path.exists(root) and os.listdir(root):
        raise UsageError(f"{root} is not empty", "give an empty or new folder")
    make_sample_files(root)
    out.rule("datactl init, add, commit")
    with Workspace.init(root, name="sample") as ws:
        ws.add([root], progress=RichProgress())
        v1 = ws.commit("first version: 50 images and their labels", tags=["v1"])
        out.print(f"committed v1 = {v1[:12]} in {root}")
        edit_sample_files(root)
        out.rule("datactl status (after editing labels.csv and some images)")
        _print_status(ws.status())
        ws.add([root])
        v2 = ws.commit("fix a label, add, drop and rename images", tags=["v2"])
        out.rule("datactl log")
        _print_log(ws, v2, None, False)
        out.rule("datactl diff v1 v2")
        _print_diff(diff_trees(ws.repo, ws.repo.read_commit(v1).tree, ws.repo.read_commit(v2).tree), stat=False)
        out.rule("datactl du")
        tracked = version_stats(ws.repo, v1).logical_bytes + version_stats(ws.repo, v2).logical_bytes
        ss = store_stats(ws.repo)
        out.print(f"tracked in v1 + v2: {human_bytes(tracked)}; stored: {human_bytes(ss.pack_bytes)} ({tracked / max(ss.pack_bytes, 1):.2f}x smaller)")
        out.print(f"\nTry: cd {root} && datactl log --oneline && datactl checkout v1")


from datactl.cli import cache as _cache_cli  # noqa: E402  (commands register onto app)

_cache_cli.register(app)

from datactl.cli import lineage as _lineage_cli  # noqa: E402  (lineage, merge, models)

_lineage_cli.register(app)

from datactl.cli import ci as _ci_cli  # noqa: E402  (verify, validate)

_ci_cli.register(app)

from datactl.cli import upkeep as _upkeep_cli  # noqa: E402  (gc, fsck, squash, dataset delete)

_upkeep_cli.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 failure, 2 usage error)."""
    try:
        # Standalone mode prints usage errors and exits with 2 by itself.
        app(args=argv, prog_name="datactl")
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except DatactlError as exc:
        err.print(f"error: {exc.message}", style="red")
        if exc.hint:
            err.print(f"hint: {exc.hint}")
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; nothing half-written was published")
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
