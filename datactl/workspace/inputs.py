"""What an ``--input REF`` names: a version in the workspace's store, else in one of its remotes.

A version found on a remote (another dataset's ``NAME@VERSION``) has its
commit copied into the local store, so the new version's lineage can be shown
without the network.
"""

from __future__ import annotations

from typing import Protocol

from datactl.core.errors import AmbiguousRef, DatactlError, UnknownRef
from datactl.format.layout import WorkspaceLayout
from datactl.lineage.stores import LineageStore, resolve_in_stores
from datactl.remote.locate import default_remote, list_remotes
from datactl.remote.remotestore import RemoteStore
from datactl.remote.transfer import Downloader
from datactl.store.repository import Repository
from datactl.store.revparse import RefContext
from storage_backends import BackendError


class InputContext(Protocol):
    """What resolving an input needs from a workspace."""

    root: str
    kind: str
    repo: Repository
    layout: WorkspaceLayout

    def resolve(self, ref: str) -> str: ...


def resolve_input(ws: InputContext, text: str) -> str:
    """The commit an input names: in the workspace's store, else in its remotes (default first)."""
    try:
        return ws.resolve(text)
    except UnknownRef as exc:
        first = exc
    remotes = list_remotes(ws.root)
    if not remotes:
        raise first
    default = default_remote(ws.root)
    order = ([default] if default is not None else []) + [r for r in remotes.values() if default is None or r.name != default.name]
    for spec in order:
        try:
            with RemoteStore(spec, ws.layout.remotes_dir) as rs:
                store = LineageStore(rs.lineage_index(), spec.label)
                try:
                    cid = resolve_in_stores([store], text, RefContext(None, ws.kind, None))
                except UnknownRef:
                    continue
                if not ws.repo.has(cid):
                    rs.sync_index()
                    dl = Downloader(rs, ws.repo)
                    try:
                        dl.download([cid])
                    finally:
                        dl.close()
                return cid
        except (BackendError, DatactlError) as exc:
            if isinstance(exc, (UnknownRef, AmbiguousRef)):
                raise
            continue  # an unreachable remote does not hide the others
    raise UnknownRef(first.message, f"{first.hint or ''} (looked in this workspace and in remotes {', '.join(remotes)})".strip())
