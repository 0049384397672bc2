"""Where a ``Dataset`` reads versions from, and which version a name and version string mean there.

Versions of a remote store are read through a local cache store of the same
format (one per remote URL, in the shared cache); the remote is used when it
answers, and when it does not, what is cached still reads (offline). Inside a
workspace without a remote, versions are read from the workspace's own store.
"""

from __future__ import annotations

from dataclasses import dataclass

from datactl.core.errors import DatactlError, StoreFormatError, UnknownRef
from datactl.core.ids import is_object_id
from datactl.format.layout import WorkspaceLayout
from datactl.format.storeconfig import StoreConfig
from datactl.remote.cache import Cache
from datactl.remote.locate import RemoteSpec, choose_read_store
from datactl.remote.readthrough import ReadThroughStore
from datactl.remote.remotestore import RemoteStore
from datactl.store.index import ObjectIndex
from datactl.store.refs import RefStore
from datactl.store.repository import Repository, read_store_config
from datactl.store.revparse import RefContext, StoreRefs, resolve_ref
from datactl.store.backend import local_store_backend
from storage_backends import BackendError


@dataclass
class Location:
    """A cache store (or a workspace's own store), the remote behind it when reachable, and its refs."""

    url: str
    store: ReadThroughStore
    refs: RefStore | None  # None when offline
    remote: RemoteStore | None
    tmp_dir: str

    def close(self) -> None:
        self.store.close()


def open_location(remote: str | RemoteSpec | None, cache: Cache) -> Location:
    """The place versions are read from for ``remote`` (a name, URL or spec; None: the default, see remote.locate)."""
    if isinstance(remote, RemoteSpec):
        spec, own, root = remote, False, None
    else:
        choice = choose_read_store(remote)
        spec, own, root = choice.spec, choice.own, choice.root
    if own:
        assert root is not None
        layout = WorkspaceLayout(root)
        backend = local_store_backend(layout.store_dir)
        repo = Repository(backend, ObjectIndex(layout.index_db), read_store_config(backend), layout.tmp_dir)
        return Location(backend.url, ReadThroughStore(repo, None), RefStore(backend), None, layout.tmp_dir)
    rs: RemoteStore | None = RemoteStore(spec, cache.remotes_dir)
    config = StoreConfig()  # offline: an existing cache store keeps its own config
    try:
        config = rs.config()  # type: ignore[union-attr]
        rs.sync_index()  # type: ignore[union-attr]
    except (BackendError, StoreFormatError):
        rs.close()  # type: ignore[union-attr]
        rs = None  # offline: only what is cached can be read
    repo = cache.store_for(spec.url, config)
    return Location(spec.url, ReadThroughStore(repo, rs), rs.refs if rs else None, rs, repo.tmp_dir)


def resolve_version(loc: Location, cache: Cache, name: str, version: str | None, kind: str) -> str:
    """The commit ``name`` at ``version`` (a tag, an id or a prefix; None: the latest) is, remembered for offline use."""
    key = version or ""
    if loc.refs is None:
        if version and is_object_id(version) and loc.store.cache.has(version):
            return version
        remembered = cache.recall(loc.url, kind, name, key)
        if remembered is None:
            raise DatactlError(
                f"{loc.url} is unreachable and {name}@{version or 'latest'} was never fetched on this machine",
                "connect to the remote, or use a version that is cached",
            )
        return remembered
    objects = loc.remote.reader() if loc.remote is not None else loc.store.cache.objects
    try:
        cid = resolve_ref(StoreRefs(loc.refs, objects, loc.url), f"{name}@{key}", RefContext(name, kind))
    finally:
        if loc.remote is not None:
            objects.close()
    cache.remember(loc.url, kind, name, key, cid)
    return cid


def resolve_any(loc: Location, cache: Cache, ref: str) -> str:
    """A commit id, or ``NAME[@VERSION]`` of a dataset or model, in ``loc``."""
    if is_object_id(ref):
        return ref
    name, _, version = ref.partition("@")
    try:
        return resolve_version(loc, cache, name, version or None, "dataset")
    except UnknownRef:
        raise UnknownRef(f"unknown dataset or model {ref!r} in {loc.url}", "`datactl datasets URL` lists them") from None
