"""A handle on one remote store: its backend, refs, config, and the local cache of its index.

A remote store has the same layout as the local one. What it holds is known
from its ``index/`` files, cached locally in SQLite so a push asks "does the
remote have this object?" without a request per object.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

from datactl.core.closing import Closing
from datactl.core.errors import CorruptObject, StoreFormatError, StoreNotFound, StoreNotListable
from datactl.core.ids import object_id
from datactl.format.indexfile import PackListing
from datactl.format.layout import PACKS_PREFIX, key_name
from datactl.format.pack import PackEntry
from datactl.format.storeconfig import StoreConfig
from datactl.lineage.commits import StoreCommits
from datactl.lineage.index import LineageIndex
from datactl.remote.locate import RemoteSpec
from datactl.store.backend import guarded, open_store_backend
from datactl.store.index import ObjectIndex
from datactl.store.indexfiles import list_index_files, read_index_files, write_index_file
from datactl.store.packread import DEFAULT_JOBS, PackReader
from datactl.store.reader import ObjectReader
from datactl.store.records import condemned_packs
from datactl.store.refs import DatasetInfo, RefStore
from datactl.store.repository import read_store_config, write_store_config
from storage_backends import Backend, KeyNotFound


def cache_path(cache_dir: str, url: str) -> str:
    return os.path.join(cache_dir, f"{object_id(url.encode())[:16]}.db")


class RemoteStore(Closing):
    """A remote store: backend, refs, config and the local cache of its index."""

    def __init__(self, spec: RemoteSpec, cache_dir: str, backend: Backend | None = None) -> None:
        self.spec = spec
        self.backend = guarded(backend) if backend is not None else open_store_backend(spec.url, spec.options)
        self.refs = RefStore(self.backend)
        os.makedirs(cache_dir, exist_ok=True)
        self.index = ObjectIndex(cache_path(cache_dir, spec.url), "delete it: it is a local copy of the remote's index, made again when needed")
        self._config: StoreConfig | None = None
        self.condemned: set[str] = set()  # packs gc condemned, as of the last sync_index

    def close(self) -> None:
        self.index.close()


    @property
    def url(self) -> str:
        return self.backend.url

    def config(self) -> StoreConfig:
        if self._config is None:
            self._config = read_store_config(self.backend)
        return self._config

    def ensure_config(self, local: StoreConfig) -> StoreConfig:
        """Create the remote store on first use; refuse one that chunks differently."""
        try:
            remote = self.config()
        except StoreNotFound:  # no store there yet (or no bucket: creating the config then says so)
            remote = write_store_config(self.backend, StoreConfig(chunker=local.chunker, pack_size=local.pack_size, compression_level=local.compression_level))
            self._config = remote
        if remote.chunker != local.chunker:
            raise StoreFormatError(
                f"{self.url} chunks files with other parameters than this workspace's store",
                "clone from that remote instead, so both sides deduplicate against each other",
            )
        return remote

    def sync_index(self) -> int:
        """Load index files written since the last sync; return how many were read.

        When an index file read before is gone (gc or fsck --repair rewrote the
        index), the cache starts over from the files listed now, so it never
        keeps listing objects that were deleted. A location without a store
        raises StoreNotFound here, rather than look like an empty store.
        """
        # Three independent reads in one round trip's time; the config's failure (no store there) is the one raised.
        with ThreadPoolExecutor(2, thread_name_prefix="datactl-sync") as pool:
            index_files = pool.submit(list_index_files, self.backend)
            condemned = pool.submit(condemned_packs, self.backend)
            self.config()
            listed = index_files.result()
        known = self.index.known_index_files()
        if known - set(listed):
            self.forget_index()
            known = set()
        read: list[str] = []

        def packs() -> Iterator[tuple[str, int, list[PackEntry]]]:
            # Fetched a few at a time (a cold cache of a store with many index files waits on each round trip
            # otherwise), recorded in the listing's order.
            for index_id, listing, problem in read_index_files(self.backend, [i for i in listed if i not in known], DEFAULT_JOBS):
                if problem is not None:
                    raise problem
                if listing is None:
                    continue  # removed by a concurrent gc
                for pack_id, (size, entries) in listing.items():
                    yield pack_id, size, entries
                read.append(index_id)

        self.index.add_packs(packs())
        self.index.mark_index_files(read)  # after their packs: a file marked is one whose packs are all in
        self.condemned = condemned.result()
        return len(read)

    def forget_index(self) -> None:
        """Drop the cached index (the next ``sync_index`` reads every index file again)."""
        self.index.clear()

    def adopt_orphan_packs(self) -> int:
        """Index packs that no index file names (left by a push cut short); return how many.

        Reading their footers lets a resumed push skip what is already up,
        and writing an index file for them keeps gc from taking them as
        garbage once a ref relies on their objects.
        """
        indexed = self.index.packs()
        condemned = condemned_packs(self.backend)  # gc deletes these after its grace period: never rely on them
        adopted: PackListing = {}
        packs = PackReader(self.backend, self.spec.label)
        try:
            listed = list(self.backend.list(PACKS_PREFIX))
        except StoreNotListable:  # an HTTP store, which cannot be written either: the first write says so
            return 0
        for info in listed:
            pack_id = key_name(info.key)
            if pack_id in indexed or pack_id in condemned:
                continue
            try:
                adopted[pack_id] = (info.size, packs.read_footer(pack_id, info.size))
            except (CorruptObject, KeyNotFound):
                continue  # damaged or just deleted: not something to rely on
        if adopted:
            index_id = write_index_file(self.backend, adopted)
            self.index.add_packs((pack_id, size, entries) for pack_id, (size, entries) in adopted.items())
            self.index.mark_index_file(index_id)  # after its packs, as sync_index marks them
        return len(adopted)

    def has(self, oid: str) -> bool:
        """Whether a push may count on the remote holding ``oid`` (not if only a condemned pack has it)."""
        if not self.condemned:
            return self.index.has(oid)
        loc = self.index.lookup(oid)
        return loc is not None and loc.pack not in self.condemned

    def lacking(self, oids: Sequence[str]) -> list[str]:
        """Those of ``oids`` a push may not count on the remote holding (``has``), in order, asked together."""
        if not self.condemned:
            present = self.index.present(oids)
            return [oid for oid in oids if oid not in present]
        found = self.index.lookup_many(oids)
        return [oid for oid in oids if oid not in found or found[oid].pack in self.condemned]

    @property
    def lineage_cache_dir(self) -> str:
        """Where segments of this store's lineage index are kept locally (next to its index cache)."""
        base = os.path.dirname(self.index.path)
        return os.path.join(base, "lineage", os.path.basename(self.index.path)[: -len(".db")])

    def commits(self, jobs: int = DEFAULT_JOBS) -> StoreCommits:
        """This store's commits, for its lineage index."""
        return StoreCommits(self.reader(jobs), self.sync_index)

    def lineage_index(self) -> LineageIndex:
        return LineageIndex(self.backend, self.commits(), self.lineage_cache_dir)

    def reader(self, jobs: int = DEFAULT_JOBS, cache_bytes: int = 0) -> ObjectReader:
        """A reader of this store's objects in place; an id missing from the index cache syncs it (once)."""
        synced = False

        def on_miss(_oid: str) -> bool:
            nonlocal synced
            if synced:
                return False
            synced = True
            self.sync_index()
            return True

        return ObjectReader(self.backend, self.index, self.spec.label, jobs=jobs, on_miss=on_miss, cache_bytes=cache_bytes)


def list_datasets(spec: RemoteSpec) -> list[DatasetInfo]:
    """The datasets and models in the store ``spec`` names, with heads and tags.

    A location without a store (a mistyped path or prefix) is an error
    (StoreNotFound), not an empty list.
    """
    backend = open_store_backend(spec.url, spec.options)
    read_store_config(backend)
    return RefStore(backend).datasets()
