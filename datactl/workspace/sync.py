"""push, fetch, pull, clone: keeping a workspace's store and a remote store in step.

Order is what keeps every invariant: objects first (packs, then their index
files), the ref last and only by compare-and-swap. A writer that loses the
race is told, never silently overwritten; a fast-forward is retried.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator

from datactl.core.dirs import remove_tree
from datactl.core.errors import DatactlError, LocalChanges, PathNotFound, RefConflict, StoreNotFound, UnknownRef, UsageError
from datactl.core.progress import NullProgress, ProgressReporter, draws
from datactl.core.safepath import check_rel_path
from datactl.core.settings import read_settings
from datactl.format.layout import HEAD_PREFIX, check_name, head_ref
from datactl.format.objects import FILE, decode_chunklist
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import StoreConfig
from datactl.remote.locate import RemoteSpec, add_remote, list_remotes, resolve_remote
from datactl.remote.publish import PushResult, publish
from datactl.remote.remotestore import RemoteStore
from datactl.remote.transfer import DEFAULT_JOBS, Downloader, commit_closure, fetch_metadata
from datactl.store.backend import open_store_backend
from datactl.store.filedata import chunk_ids_of
from datactl.store.refs import RefStore
from datactl.store.repository import read_store_config
from datactl.store.trees import lookup_path
from datactl.store.walk import walk_files
from datactl.upkeep.consolidate import consolidate_packs
from datactl.upkeep.smallpacks import needs_consolidation
from datactl.upkeep.targets import remote_target
from datactl.workspace.checkout import CheckoutResult, FileListing
from datactl.workspace.opening import scope_test
from datactl.workspace.shallow import cut_parents, set_shallow_commits, shallow_commits
from datactl.workspace.workspace import RefMove, Workspace
from storage_backends import BackendError

_log = logging.getLogger("datactl.sync")

# Chunk ids are downloaded in batches of this many, to bound memory on huge versions.
CHUNK_BATCH = 20_000
MISSING_BATCH = 5_000  # chunk ids looked up at once when listing what a version lacks


@dataclass
class FetchResult:
    remote: str
    refs: dict[str, str] = field(default_factory=dict)
    objects: int = 0
    bytes_downloaded: int = 0
    requests: int = 0  # reads from the remote's packs
    shallow: list[str] = field(default_factory=list)  # where the workspace's history is cut now (empty: whole)


@dataclass
class PullResult:
    """What a pull did: HEAD ``old`` -> ``new`` (the same when it stayed), the dataset's ref, the files changed."""

    fetch: FetchResult
    old: str | None
    new: str
    bytes_downloaded: int = 0
    checkout: CheckoutResult | None = None
    ref_old: str | None = None
    ref_new: str | None = None
    added_paths: list[str] = field(default_factory=list)  # paths a partial workspace now also holds


def transfer_jobs(ws: Workspace) -> int:
    jobs = read_settings(ws.root).get("transfer", {}).get("jobs", DEFAULT_JOBS)
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError("datactl.toml: [transfer] jobs must be a positive integer")
    return jobs


def open_remote(ws: Workspace, remote: str | None) -> RemoteStore:
    return RemoteStore(resolve_remote(ws.root, remote), ws.layout.remotes_dir)


def _tracking_ref(spec: RemoteSpec, ref: str) -> str | None:
    return f"remotes/{spec.name}/{ref}" if spec.name else None


def _set_tracking(ws: Workspace, spec: RemoteSpec, ref: str, commit: str) -> None:
    tracking = _tracking_ref(spec, ref)
    if tracking is not None:
        ws.repo.refs.update(tracking, commit, expected=ws.repo.refs.get(tracking))


def push(ws: Workspace, remote: str | None = None, *, tags: bool = False, progress: ProgressReporter | None = None) -> PushResult:
    """Upload this dataset's new versions (and with ``tags`` its tags) to a remote."""
    ref = ws.head_ref
    head = ws.repo.refs.get(ref)
    if head is None:
        raise UsageError(f"nothing to push: {ws.name} has no commits yet")
    tag_map = {f"tags/{ws.name}/{t}": c for t, c in ws.list_tags().items()} if tags else {}
    with open_remote(ws, remote) as rs:
        _check_below_cut(ws, rs)
        result = publish(
            ws.repo, rs, ref, head, tags=tag_map, tmp_dir=os.path.join(ws.dotdir, "store", "tmp"),
            jobs=transfer_jobs(ws), progress=progress,
        )
        _set_tracking(ws, rs.spec, ref, head)
        _consolidate_remote(rs, os.path.join(ws.dotdir, "store", "tmp"), jobs=transfer_jobs(ws))
    return result


def _check_below_cut(ws: Workspace, rs: RemoteStore) -> None:
    """A shallow workspace pushes only where the history below its cut already is (else the remote would get a
    version whose parents it lacks)."""
    below = cut_parents(ws.stage, ws.repo)
    if not below:
        return
    try:
        rs.sync_index()
    except StoreNotFound:  # a push that would create the store
        pass
    if not all(rs.has(c) for c in below):
        raise UsageError(
            f"{rs.spec.label} lacks the history below this shallow workspace's cut",
            "push to the remote it was cloned from, or run `datactl fetch --unshallow` first",
        )


def _consolidate_remote(rs: RemoteStore, tmp_dir: str, jobs: int) -> None:
    """After a push: merge the remote's small packs once it holds many (the old ones wait, condemned, for gc).

    Under the store lock, skipped while gc holds it; never fails the push, which is published already.
    """
    try:
        if needs_consolidation(rs.index, rs.config().pack_size):
            consolidate_packs(remote_target(rs, tmp_dir), delete_now=False, jobs=jobs)
    except (DatactlError, BackendError) as exc:
        _log.warning("small packs of %s not merged: %s", rs.spec.label, exc)


def _check_depth(depth: int | None) -> None:
    if depth is not None and depth < 1:
        raise UsageError(f"--depth must be at least 1, not {depth}")


def _fetch_into(ws: Workspace, rs: RemoteStore, progress: ProgressReporter, depth: int | None = None, unshallow: bool = False) -> FetchResult:
    """Fetch the remote's head and tags of this dataset: their whole history, or with ``depth`` the newest versions.

    A shallow workspace (one cut by a ``depth``) takes only the tags of versions it holds; ``depth`` or
    ``unshallow`` there walks again from the remote's head, so the history grows past the old cut.
    """
    config = rs.config()
    if config.chunker != ws.repo.config.chunker:
        raise UsageError(f"{rs.url} chunks files with other parameters than this workspace's store", "clone from it instead")
    rs.sync_index()
    result = FetchResult(rs.spec.label)
    head = rs.refs.get(ws.head_ref)
    if head is not None:
        result.refs[ws.head_ref] = head
    tags = {r.ref: r.commit for r in rs.refs.list(f"tags/{ws.name}/")}
    cut_before = shallow_commits(ws.stage)
    shallow = depth is not None or (bool(cut_before) and not unshallow)
    deepen = bool(cut_before) and (depth is not None or unshallow)
    complete = set() if deepen else commit_closure(ws.repo, [r.commit for r in ws.repo.refs.list("")])
    dl = Downloader(rs, ws.repo, transfer_jobs(ws), progress)
    progress.start(f"fetch from {rs.spec.label}", None)
    try:
        fetched = fetch_metadata(dl, [*result.refs.values(), *(() if shallow else tags.values())], complete, depth)
    finally:
        progress.stop()
        dl.close()
    result.objects, result.bytes_downloaded, result.requests = fetched.objects, dl.bytes_downloaded, dl.requests
    # Before any ref names the new commits: where their history stops, and which old cuts are filled in.
    set_shallow_commits(ws.stage, [*fetched.cut, *(c for c in cut_before if not all(map(ws.repo.has, ws.repo.read_commit(c).parents)))])
    result.shallow = sorted(shallow_commits(ws.stage))
    result.refs.update((ref, cid) for ref, cid in tags.items() if not shallow or ws.repo.has(cid))
    for ref, cid in result.refs.items():
        _set_tracking(ws, rs.spec, ref, cid)
        if ref.startswith("tags/") and ws.repo.refs.get(ref) is None:
            ws.repo.refs.update(ref, cid, expected=None)
    ws.consolidate_packs()
    return result


def fetch(
    ws: Workspace, remote: str | None = None, progress: ProgressReporter | None = None, *, depth: int | None = None, unshallow: bool = False
) -> FetchResult:
    """Download the remote's versions of this dataset (commits and trees, not file data).

    With ``depth``, only the newest ``depth`` versions (the workspace records where its history is cut);
    ``unshallow`` fetches the whole history of a workspace cloned or fetched with a depth.
    """
    if depth is not None and unshallow:
        raise UsageError("give either --depth or --unshallow, not both")
    _check_depth(depth)
    with open_remote(ws, remote) as rs:
        return _fetch_into(ws, rs, progress or NullProgress(), depth, unshallow)


def version_files(ws: Workspace, commit_id: str) -> FileListing:
    """Every file of version ``commit_id``, as a listing a download can walk more than once."""
    return lambda: walk_files(ws.repo, ws.repo.read_commit(commit_id).tree)


def _missing_file_data(ws: Workspace, files: FileListing, in_scope: Callable[[str], bool]) -> Iterator[tuple[str, bool]]:
    """(id, is_chunklist) of what the in-scope ``files`` need and the store lacks."""
    wanted: list[tuple[str, bool]] = []  # asked about together: one index query per few hundred ids

    def lacking() -> Iterator[tuple[str, bool]]:
        missing = set(ws.repo.missing([oid for oid, _ in wanted]))
        yield from ((oid, is_list) for oid, is_list in wanted if oid in missing)
        wanted.clear()

    for path, entry in files():
        if entry.kind != FILE or entry.is_external or not in_scope(path):
            continue
        if entry.chunklist is not None and not ws.repo.has(entry.chunklist):
            wanted.append((entry.chunklist, True))  # its chunks are listed once it is downloaded
        else:
            wanted.extend((c, False) for c in chunk_ids_of(ws.repo, entry))
        if len(wanted) >= MISSING_BATCH:
            yield from lacking()
    yield from lacking()


def download_files(ws: Workspace, dl: Downloader, files: FileListing, in_scope: Callable[[str], bool]) -> None:
    """Make every chunk of the in-scope ``files`` local."""
    batch: list[str] = []
    lists: list[str] = []

    def flush_chunks() -> None:
        dl.download(batch, flush=False)
        ws.repo.settle()  # the packs that filled are kept if the download is cut short; none is cut short per batch
        batch.clear()

    for oid, is_list in _missing_file_data(ws, files, in_scope):
        (lists if is_list else batch).append(oid)
        if len(batch) >= CHUNK_BATCH:
            flush_chunks()
    for i in range(0, len(lists), 1000):
        got = dl.download(lists[i : i + 1000], keep=lambda e: e.type == ObjectType.CHUNKLIST, flush=False)
        for oid, raw in got.items():
            batch.extend(c for c in decode_chunklist(oid, raw) if not ws.repo.has(c))
            if len(batch) >= CHUNK_BATCH:
                flush_chunks()
    flush_chunks()
    ws.repo.flush()


def _fetch_missing(ws: Workspace, files: FileListing, in_scope: Callable[[str], bool], progress: ProgressReporter) -> None:
    """Download from the default remote the file data of the in-scope ``files`` that the store lacks, if there is a remote."""
    if list_remotes(ws.root) and next(_missing_file_data(ws, files, in_scope), None) is not None:
        with open_remote(ws, None) as rs:
            _download_files(ws, rs, files, progress, f"download from {rs.spec.label}", in_scope)


def checkout(ws: Workspace, ref: str, *, force: bool = False, progress: ProgressReporter | None = None) -> CheckoutResult:
    """Check out ``ref``, first downloading from the default remote the file data it needs that the store lacks.

    ``fetch`` brings history without file data, so an older version may have
    files whose chunks were never downloaded; without a remote this is
    ``Workspace.checkout``, which names the missing object.
    """
    progress = progress or NullProgress()
    in_scope = scope_test(ws.sparse)
    # Asked once the checkout is planned, about the files it will write: the cost follows the change.
    return ws.checkout(ws.resolve(ref), force=force, progress=progress, fetch=lambda files: _fetch_missing(ws, files, in_scope, progress))


def restore(ws: Workspace, ref: str, paths: list[str] | tuple[str, ...], *, progress: ProgressReporter | None = None) -> CheckoutResult:
    """``checkout REF -- PATH...``: put the files under ``paths`` of version ``ref`` in the workspace and stage them; HEAD stays.

    File data the store lacks comes from the default remote first.
    """
    progress = progress or NullProgress()
    commit_id = ws.resolve(ref)
    wanted = [ws.rel_path(p) for p in paths]
    _fetch_missing(ws, version_files(ws, commit_id), scope_test(wanted), progress)
    return ws.restore(commit_id, wanted, progress=progress)


def _download_total(ws: Workspace, rs: RemoteStore, dl: Downloader, files: FileListing, in_scope: Callable[[str], bool]) -> int:
    """The stored bytes a download of the missing data of ``files`` fetches, for a progress bar's total: one walk of
    the files, the sizes asked of the remote's index a batch at a time. The chunk lists of big files are fetched
    here (they name the chunks) and stay local, so the download itself does not fetch them again."""
    rs.sync_index()
    total = 0
    seen: set[str] = set()  # a chunk shared by files is fetched once; bounded, so a repeat far away may count twice
    chunks: list[str] = []
    lists: list[str] = []

    def price() -> None:
        nonlocal total
        total += sum(rs.index.stored_lens(chunks).values())
        chunks.clear()

    def count(oid: str) -> None:
        if oid in seen:
            return
        if len(seen) >= CHUNK_BATCH * 4:
            seen.clear()
        seen.add(oid)
        chunks.append(oid)
        if len(chunks) >= MISSING_BATCH:
            price()

    for oid, is_list in _missing_file_data(ws, files, in_scope):
        if is_list:
            lists.append(oid)
        else:
            count(oid)
    for i in range(0, len(lists), 1000):
        for oid, raw in dl.download(lists[i : i + 1000], keep=lambda e: e.type == ObjectType.CHUNKLIST, report=False).items():
            for chunk in ws.repo.missing(list(dict.fromkeys(decode_chunklist(oid, raw)))):
                count(chunk)
    price()
    return total


def _download_files(ws: Workspace, rs: RemoteStore, files: FileListing, progress: ProgressReporter, title: str, in_scope: Callable[[str], bool]) -> int:
    """Download the data of the in-scope ``files`` the workspace lacks; return the bytes downloaded."""
    dl = Downloader(rs, ws.repo, transfer_jobs(ws), progress)
    try:
        progress.start(title, _download_total(ws, rs, dl, files, in_scope) if draws(progress) else None)
        download_files(ws, dl, files, in_scope)
    finally:
        progress.stop()
        dl.close()
    return dl.bytes_downloaded


def _pull_scope(ws: Workspace, paths: list[str] | tuple[str, ...], commit_id: str) -> tuple[list[str] | None, list[str]]:
    """(the sparse paths after pulling ``paths``, those of them new to the workspace); None keeps the scope as it is.

    A workspace with nothing checked out becomes partial; a partial one adds
    the paths to its selection; a full one stays full. "." means everything.
    """
    if not paths:
        return None, []
    wanted = []
    for p in paths:
        rel = p.strip("/")
        if rel in ("", "."):
            return [], []
        check_rel_path(rel)
        if lookup_path(ws.repo, ws.repo.read_commit(commit_id).tree, rel) is None:
            raise PathNotFound(f"{rel} is not in version {commit_id[:12]} of {ws.name}", "`datactl ls -r REF` lists its files")
        wanted.append(rel)
    current = ws.sparse
    if ws.head is not None and not current:
        return None, []  # the workspace holds every path already
    in_scope = scope_test(current) if ws.head is not None else (lambda _p: False)
    added = [p for p in wanted if not in_scope(p)]
    return sorted(set(current) | set(wanted)) if ws.head is not None else sorted(set(wanted)), added


def pull(
    ws: Workspace,
    remote: str | None = None,
    paths: list[str] | tuple[str, ...] = (),
    progress: ProgressReporter | None = None,
    version: str | None = None,
    depth: int | None = None,
) -> PullResult:
    """Fetch, fast-forward this dataset to the remote's head, and check it out.

    With ``version`` (a tag or commit id), that version is downloaded and
    checked out instead of the head. With ``paths`` (inside the dataset, like
    ``ls`` takes them), a partial workspace adds them to the paths it holds
    (a new workspace holds only them: the others are tracked but absent).

    All or nothing: the dataset's ref moves only once the version is checked
    out; if the checkout fails, HEAD, the ref, the stage and the files stay as
    they were (see ``datactl.workspace.checkout``). ``depth`` fetches only
    the newest versions of the history (see ``fetch``).
    """
    _check_depth(depth)
    progress = progress or NullProgress()
    status = ws.status()
    if not status.clean:
        changed = ", ".join(c.path for c in (status.staged + status.unstaged)[:10])
        raise LocalChanges(f"pull would overwrite local changes: {changed}", "commit them first (or check out with --force to drop them)")
    ref = ws.head_ref
    old_head = ws.head
    with open_remote(ws, remote) as rs:
        fetched = _fetch_into(ws, rs, progress, depth)
        remote_head = fetched.refs.get(ref)
        if remote_head is None:
            raise UnknownRef(f"{rs.spec.label} has no {ws.kind} named {ws.name}", "push it there first")
        local_head = ws.repo.refs.get(ref)
        if local_head is None or local_head == remote_head or local_head in commit_closure(ws.repo, [remote_head]):
            target = remote_head
        elif remote_head in commit_closure(ws.repo, [local_head]):
            target = local_head  # we are ahead: nothing to take in
        else:
            raise RefConflict(
                f"{ws.name} has diverged: your head {local_head[:12]} and {rs.spec.label}'s {remote_head[:12]} both have new versions",
                "merge them (`datactl merge`), then push",
            )
        wanted = ws.resolve(version) if version else target
        scope, added = _pull_scope(ws, paths, wanted)
        in_scope = scope_test(ws.sparse if scope is None else scope)
        downloaded = _download_files(ws, rs, version_files(ws, wanted), progress, f"pull from {rs.spec.label}", in_scope)
    result = PullResult(fetched, old_head, wanted, downloaded + fetched.bytes_downloaded, ref_old=local_head, ref_new=target, added_paths=added)
    move = RefMove(target, local_head) if target != local_head else None
    result.checkout = ws.checkout(wanted, progress=progress, scope=scope, move_ref=move)
    return result


def clone(
    url: str,
    dataset: str,
    directory: str | None = None,
    *,
    options: dict | None = None,
    paths: list[str] | tuple[str, ...] = (),
    progress: ProgressReporter | None = None,
    depth: int | None = None,
) -> Workspace:
    """Make a workspace of ``dataset`` (``NAME`` or ``NAME@VERSION``) from the store at ``url``.

    With ``depth``, only the newest ``depth`` versions of its history are fetched (a shallow clone).
    """
    name, _, version = dataset.partition("@")
    check_name(name)
    _check_depth(depth)
    spec = RemoteSpec("origin", url if "://" in url else os.path.abspath(url), dict(options or {}))
    backend = open_store_backend(spec.url, spec.options)
    remote_config = read_store_config(backend)
    refs = RefStore(backend)
    kind = next((k for k in HEAD_PREFIX if refs.get(head_ref(k, name)) is not None), None)
    if kind is None:
        raise UnknownRef(f"{spec.url} has no dataset or model named {name}", f"`datactl datasets {url}` lists them")
    root = os.path.abspath(directory or name)
    if os.path.exists(root) and os.listdir(root):
        raise UsageError(f"{root} exists and is not empty", "give another folder")
    config = StoreConfig(chunker=remote_config.chunker, pack_size=remote_config.pack_size, compression_level=remote_config.compression_level)
    existed = os.path.exists(root)
    try:
        ws = Workspace.init(root, name=name, kind=kind, store_config=config)
    except BaseException:
        _remove_clone(root, existed)
        raise
    try:
        add_remote(ws.root, "origin", spec.url, spec.options)
        pull(ws, "origin", paths=paths, progress=progress, version=version or None, depth=depth)
    except BaseException:
        ws.close()
        _remove_clone(root, existed)
        raise
    return ws


def _remove_clone(root: str, existed: bool) -> None:
    """A failed clone leaves nothing: the folder it made, or what it put in the empty folder it was given."""
    if not existed:
        remove_tree(root)
        return
    for name in os.listdir(root):
        remove_tree(os.path.join(root, name))
