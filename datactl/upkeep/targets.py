"""The store an upkeep command works on, and what the local side must know about it.

gc, fsck and squash work on a store's own files. What differs between a
remote store and a workspace's own store is passed in, not looked up: the
extra roots a workspace holds besides refs (its HEAD, a pending commit, a
merge in progress, its staged files), whether file data may be absent (a
partial clone), and how to bring local caches of the store's index up to date
after a change. ``datactl.workspace.upkeep`` builds the target for a workspace.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Callable

from datactl.format.indexfile import PackListing
from datactl.format.objects import TreeEntry
from datactl.remote.remotestore import RemoteStore
from datactl.store.backend import guarded
from datactl.store.repository import read_store_config
from storage_backends import Backend, BackendError


@dataclass
class ExtraRoots:
    """Roots besides refs: a workspace's checked-out, pending and merge commits and its staged files."""

    commits: list[str] = field(default_factory=list)
    entries: list[TreeEntry] = field(default_factory=list)
    cut: frozenset[str] = frozenset()  # a shallow workspace's commits whose parents it never fetched


@dataclass
class StoreTarget:
    """A store to gc, check or rewrite: its backend plus what the local side must know.

    ``extra_roots`` (a workspace's store): what the workspace holds besides refs.
    ``after_change``: refresh local caches of the store's index once it changed.
    """

    backend: Backend
    label: str
    tmp_dir: str
    pack_size: int
    extra_roots: Callable[[], ExtraRoots] | None = None
    after_change: Callable[["IndexChange"], None] | None = None
    partial: bool = False  # file data may be absent (a workspace's store holds what was pulled)


@dataclass
class IndexChange:
    """What a gc or repair did to the index, for local caches of it."""

    removed_packs: set[str] = field(default_factory=set)
    added_packs: PackListing = field(default_factory=dict)
    relocated: PackListing = field(default_factory=dict)  # kept packs holding objects of removed ones
    rebuilt: bool = False  # the whole index was rewritten


def remote_target(rs: RemoteStore, tmp_dir: str) -> StoreTarget:
    """A remote store; its local index cache (``rs``) is refreshed after a change."""

    def after(change: IndexChange) -> None:
        try:
            rs.sync_index()
        except BackendError:
            pass

    return StoreTarget(rs.backend, rs.spec.label, tmp_dir, rs.config().pack_size, None, after)


def url_target(backend: Backend, tmp_dir: str | None = None) -> StoreTarget:
    """A store by URL, with no local cache."""
    backend = guarded(backend)
    return StoreTarget(backend, backend.url, tmp_dir or tempfile.gettempdir(), read_store_config(backend).pack_size)
