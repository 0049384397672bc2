"""Where a ``Dataset`` reads versions from, and which version a name and version string mean there.

Versions of a remote store are read through a local cache store of the same
format (one per remote URL, in the shared cache); the remote is used when it
answers, and when it does not, what is cached still reads (offline). Inside a
workspace without a remote, versions are read from the workspace's own store.
"""

from __future__ import annotations

from dataclasses import dataclass

from datactl.core.errors import StorageError, StoreNotFound, UnknownRef
from datactl.core.ids import is_object_id
from datactl.format.layout import WorkspaceLayout
from datactl.format.storeconfig import StoreConfig
from datactl.remote.cache import Cache
from datactl.remote.locate import RemoteSpec, choose_read_store
from datactl.remote.readthrough import ReadThroughStore
from datactl.remote.remotestore import RemoteStore
from datactl.store.backend import local_store_backend
from datactl.store.index import ObjectIndex
from datactl.store.refs import RefStore
from datactl.store.repository import Repository, read_store_config
from datactl.store.revparse import RefContext, StoreRefs, resolve_ref


@dataclass
class Location:
    """A cache store (or a workspace's own store), the remote behind it when reachable, and its refs.

    ``unreachable`` says why the remote could not be used (unreachable, access
    refused: reads then come from the cache only); ``missing`` that there is no
    store at the URL (no config, or no bucket: a read of what was never cached
    says so, a draft's push creates the store).
    """

    url: str
    store: ReadThroughStore
    refs: RefStore | None  # None when offline
    remote: RemoteStore | None
    tmp_dir: str
    unreachable: StorageError | None = None
    missing: StoreNotFound | None = None
    spec: RemoteSpec | None = None  # the remote's address; None for a workspace's own store

    def close(self) -> None:
        self.store.close()
        if self.remote is not None and self.store.remote is None:
            self.remote.close()  # kept for a draft's push only (no store there yet)


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
    unreachable: StorageError | None = None
    missing: StoreNotFound | None = None
    try:
        config = rs.config()  # type: ignore[union-attr]
        rs.sync_index()  # type: ignore[union-attr]
    except StoreNotFound as exc:
        missing = exc  # nothing there yet: reading fails, pushing creates the store
    except StorageError as exc:
        rs.close()  # type: ignore[union-attr]
        rs, unreachable = None, exc  # offline: only what is cached can be read
    repo = cache.store_for(spec.url, config)
    refs = rs.refs if rs is not None and missing is None else None
    # With no store there, reads come from the cache only; the remote is kept for a draft's push, which creates it.
    store = ReadThroughStore(repo, rs if missing is None else None, unavailable=unreachable or missing)
    return Location(spec.url, store, refs, rs, repo.tmp_dir, unreachable, missing, spec)


def resolve_version(loc: Location, cache: Cache, name: str, version: str | None, kind: str) -> str:
    """The commit ``name`` at ``version`` (a tag, an id or a prefix; None: the latest) is, remembered for offline use."""
    key = version or ""
    if loc.refs is None:  # offline, or the store is gone: what was fetched before still reads
        if version and is_object_id(version) and loc.store.cache.has(version):
            return version
        remembered = cache.recall(loc.url, kind, name, key)
        if remembered is not None:
            return remembered
        if loc.missing is not None:
            raise StoreNotFound(loc.missing.message, loc.missing.hint) from loc.missing.__cause__
        why = loc.unreachable
        assert why is not None
        raise type(why)(f"{why.message}; and {name}@{version or 'latest'} was never fetched on this machine", why.hint) from why
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
