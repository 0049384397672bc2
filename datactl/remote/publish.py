"""Publishing a version to a store: upload what it lacks, then move its ref by compare-and-swap.

Order is what keeps every invariant: objects first (packs, then their index
files), the ref last and only by compare-and-swap, and only then the store's
lineage index. A writer that loses the race is told, never silently
overwritten; when the other writer's version is already in our history, the
fast-forward is retried. Used by ``datactl push`` and by ``DatasetDraft.push``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datactl.core.crashpoints import crash_point
from datactl.core.errors import RefConflict
from datactl.core.progress import NullProgress, ProgressReporter, draws
from datactl.lineage.commits import StoreCommits
from datactl.lineage.index import record_commits
from datactl.remote.remotestore import RemoteStore
from datactl.remote.transfer import DEFAULT_JOBS, Uploader, commit_closure, local_objects_to_push
from datactl.store.repository import Repository


@dataclass
class PushResult:
    remote: str
    ref: str
    old: str | None
    new: str
    objects: int = 0
    packs: int = 0
    bytes_uploaded: int = 0
    tags_pushed: list[str] = field(default_factory=list)
    tags_skipped: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.old == self.new and not self.objects



def _bytes_to_push(repo: Repository, roots: list[str], complete: set[str], rs: RemoteStore) -> int:
    """A first walk for a progress bar's total (the index has every object's stored size), only when a bar shows it.
    It remembers the ids it counted, 16 bytes each: a terminal's bar costs memory that a push itself does not."""
    counted: set[bytes] = set()

    def lacking(oids: list[str]) -> list[str]:
        new = [oid for oid in oids if bytes.fromhex(oid) not in counted]
        counted.update(bytes.fromhex(oid) for oid in new)
        return rs.lacking(new)

    return sum(sum(repo.index.stored_lens(batch).values()) for batch in local_objects_to_push(repo, roots, complete, lacking))


def publish(
    repo: Repository,
    rs: RemoteStore,
    ref: str,
    head: str,
    *,
    tags: dict[str, str] | None = None,
    tmp_dir: str,
    jobs: int = DEFAULT_JOBS,
    progress: ProgressReporter | None = None,
) -> PushResult:
    """Make ``ref`` on the remote name ``head``: upload what it lacks, then compare-and-swap the ref.

    ``tags`` maps tag refs (``tags/NAME/TAG``) to commits; each is created on
    the remote if absent and reported as skipped if it names another commit.
    """
    progress = progress or NullProgress()
    tags = tags or {}
    rs.ensure_config(repo.config)
    rs.sync_index()
    rs.adopt_orphan_packs()
    remote_head = rs.refs.get(ref)
    history = commit_closure(repo, [head])
    if remote_head is not None and remote_head not in history:
        raise RefConflict(
            f"{rs.spec.label} has {ref} at {remote_head[:12]}, which is not in your history",
            "run `datactl pull` first, then push again",
        )
    result = PushResult(rs.spec.label, ref, remote_head, head)
    complete = commit_closure(repo, [remote_head]) if remote_head else set()
    roots = [head, *tags.values()]
    progress.start(f"push to {rs.spec.label}", _bytes_to_push(repo, roots, complete, rs) if draws(progress) else None)
    try:
        uploader = Uploader(rs, repo, tmp_dir, jobs, progress)
        try:

            def lacking(oids: list[str]) -> list[str]:
                return [oid for oid in rs.lacking(oids) if not uploader.queued(oid)]

            for batch in local_objects_to_push(repo, roots, complete, lacking):
                uploader.add_many(batch)
        except BaseException:
            uploader.close()
            raise
        uploader.finish()
    finally:
        progress.stop()
    result.objects, result.packs, result.bytes_uploaded = uploader.objects, uploader.packs, uploader.bytes_uploaded

    crash_point("before-ref-update")
    expected = remote_head
    while expected != head:
        try:
            rs.refs.update(ref, head, expected=expected)
            break
        except RefConflict:
            now = rs.refs.get(ref)
            if now is not None and now in history:
                expected = now  # the other writer's commit is already ours: fast-forward again
                continue
            raise RefConflict(
                f"{rs.spec.label} moved on while pushing: {ref} is now {now[:12] if now else 'deleted'}",
                "run `datactl pull` to take in the other writer's version, then push again; nothing was overwritten",
            ) from None
    crash_point("after-ref-moved")
    for tref, cid in sorted(tags.items()):
        tag = tref.rsplit("/", 1)[-1]
        current = rs.refs.get(tref)
        if current == cid:
            continue
        if current is None:
            crash_point("before-tag-update")
            try:
                rs.refs.update(tref, cid, expected=None)
                result.tags_pushed.append(tag)
                continue
            except RefConflict:
                pass
        result.tags_skipped.append(tag)
    # Only now that the ref names them: add the versions (and tags) to the remote's lineage index.
    published_tags = {t: c for t, c in tags.items() if t.rsplit("/", 1)[-1] not in result.tags_skipped}
    record_commits(rs.backend, rs.commits(), [head], StoreCommits(repo.objects), published_tags, rs.lineage_cache_dir)
    return result
