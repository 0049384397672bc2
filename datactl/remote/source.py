"""A version on a remote store, read in place: its files as checks see them, and refs resolved there.

Nothing is written to a workspace or a local store; the only local state is
the cache of the remote's index.
"""

from __future__ import annotations

from datactl.format.layout import head_ref
from datactl.remote.remotestore import RemoteStore
from datactl.store.packread import DEFAULT_JOBS
from datactl.store.reader import ObjectReader
from datactl.store.revparse import RefContext, StoreRefs, resolve_ref
from datactl.store.source import CHUNK_CACHE_BYTES, VersionSource


def resolve_on_remote(rs: RemoteStore, reader: ObjectReader, ref: str, name: str | None = None, kind: str = "dataset") -> str:
    """The commit a REF names on a remote store (``HEAD`` is the remote's head of ``name``)."""
    head = rs.refs.get(head_ref(kind, name)) if name is not None else None
    return resolve_ref(StoreRefs(rs.refs, reader, rs.spec.label), ref, RefContext(name, kind, head))


def remote_source(rs: RemoteStore, ref: str, *, name: str | None = None, kind: str = "dataset", jobs: int = DEFAULT_JOBS) -> VersionSource:
    """Version ``ref`` of a remote store, read by verified ranged reads."""
    rs.sync_index()
    reader = rs.reader(jobs, cache_bytes=CHUNK_CACHE_BYTES)
    try:
        commit_id = resolve_on_remote(rs, reader, ref, name, kind)
        tree_id = reader.read_commit(commit_id).tree
    except BaseException:
        reader.close()
        raise
    return VersionSource(reader, tree_id, commit_id, f"{commit_id[:12]} on {rs.spec.label}")
