"""Remotes: named store URLs in datactl.toml, and a handle on one remote store.

A remote store has the same layout as the local one. What it holds is known
from its ``index/`` files, cached locally in SQLite so a push asks "does the
remote have this object?" without a request per object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import tomlkit

from datactl.core.errors import CorruptObject, ObjectMissing, StoreFormatError, UsageError
from datactl.core.ids import object_id
from datactl.store.index import ObjectIndex
from datactl.format.pack import PackEntry, pack_key
from datactl.store.refs import RefStore, check_name
from datactl.store.repository import decode_index_file, read_footer, verify_stored, write_index_file
from datactl.core.settings import edit_settings, read_settings
from datactl.format.storeconfig import StoreConfig, read_store_config, write_store_config
from storage_backends import Backend, KeyNotFound, open_backend

# Settings a remote may carry besides its URL (no secrets: credentials come from the SDK chains).
REMOTE_OPTIONS = ("endpoint_url", "region", "profile", "project")


@dataclass(frozen=True)
class RemoteSpec:
    """Where a remote is: its name (None when given as a bare URL), URL and backend options."""

    name: str | None
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.url


def _normalize_url(url: str) -> str:
    if "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def list_remotes(root: str) -> dict[str, RemoteSpec]:
    remotes = read_settings(root).get("remotes", {})
    out = {}
    for name, table in remotes.items():
        if not isinstance(table, dict) or "url" not in table:
            raise UsageError(f"datactl.toml: [remotes.{name}] needs url = \"...\"")
        out[name] = RemoteSpec(name, table["url"], {k: table[k] for k in REMOTE_OPTIONS if k in table})
    return out


def add_remote(root: str, name: str, url: str, options: dict[str, Any] | None = None) -> RemoteSpec:
    check_name(name, "remote name")
    if name in list_remotes(root):
        raise UsageError(f"remote {name} already exists", "remove it first with `datactl remote remove`")
    spec = RemoteSpec(name, _normalize_url(url), {k: v for k, v in (options or {}).items() if v is not None})

    def change(doc: tomlkit.TOMLDocument) -> None:
        if "remotes" not in doc:
            doc["remotes"] = tomlkit.table(is_super_table=True)
        table = tomlkit.table()
        table["url"] = spec.url
        for k, v in spec.options.items():
            table[k] = v
        doc["remotes"][name] = table  # type: ignore[index]

    edit_settings(root, change)
    return spec


def remove_remote(root: str, name: str) -> None:
    if name not in list_remotes(root):
        raise UsageError(f"no remote named {name}", "`datactl remote list` shows the remotes")

    def change(doc: tomlkit.TOMLDocument) -> None:
        del doc["remotes"][name]  # type: ignore[union-attr]

    edit_settings(root, change)


def resolve_remote(root: str | None, text: str | None) -> RemoteSpec:
    """A remote named in datactl.toml, or a URL/path; None means 'origin' or the only remote."""
    remotes = list_remotes(root) if root else {}
    if text is None:
        if "origin" in remotes:
            return remotes["origin"]
        if len(remotes) == 1:
            return next(iter(remotes.values()))
        env = os.environ.get("DATACTL_REMOTE")
        if env:
            return resolve_remote(root, env)
        raise UsageError(
            "no remote given and no default remote",
            "add one with `datactl remote add origin URL`, or name a remote or URL",
        )
    if text in remotes:
        return remotes[text]
    if "://" in text or os.sep in text or text.startswith("."):
        return RemoteSpec(None, _normalize_url(text))
    raise UsageError(f"no remote named {text}", "`datactl remote list` shows the remotes; a URL or path works too")


def cache_path(cache_dir: str, url: str) -> str:
    return os.path.join(cache_dir, f"{object_id(url.encode())[:16]}.db")


class RemoteStore:
    """A remote store: backend, refs, config and the local cache of its index."""

    def __init__(self, spec: RemoteSpec, cache_dir: str, backend: Backend | None = None) -> None:
        self.spec = spec
        self.backend = backend or open_backend(spec.url, spec.options)
        self.refs = RefStore(self.backend)
        os.makedirs(cache_dir, exist_ok=True)
        self.index = ObjectIndex(cache_path(cache_dir, spec.url))
        self._config: StoreConfig | None = None
        self.condemned: set[str] = set()  # packs gc condemned, as of the last sync_index

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "RemoteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        except StoreFormatError:
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
        keeps listing objects that were deleted.
        """
        known = self.index.known_index_files()
        listed = list(self.backend.list("index/"))
        if known - {info.key.rsplit("/", 1)[-1] for info in listed}:
            self.forget_index()
            known = set()
        n = 0
        for info in listed:
            index_id = info.key.rsplit("/", 1)[-1]
            if index_id in known:
                continue
            try:
                data = self.backend.get(info.key)
            except KeyNotFound:
                continue  # removed by a concurrent gc
            for pack_id, (size, entries) in decode_index_file(index_id, data).items():
                self.index.add_pack(pack_id, size, entries)
            self.index.mark_index_file(index_id)
            n += 1
        from datactl.upkeep.gc import condemned_packs  # local: gc imports the repository layer

        self.condemned = condemned_packs(self.backend)
        return n

    def forget_index(self) -> None:
        """Drop the cached index (the next ``sync_index`` reads every index file again)."""
        self.index.clear()

    def adopt_orphan_packs(self) -> int:
        """Index packs that no index file names (left by a push cut short); return how many.

        Reading their footers lets a resumed push skip what is already up,
        and writing an index file for them keeps gc from taking them as
        garbage once a ref relies on their objects.
        """
        from datactl.upkeep.gc import condemned_packs  # local: gc imports the repository layer

        indexed = self.index.packs()
        condemned = condemned_packs(self.backend)  # gc deletes these after its grace period: never rely on them
        adopted: dict[str, tuple[int, list[PackEntry]]] = {}
        for info in self.backend.list("packs/"):
            pack_id = info.key.rsplit("/", 1)[-1]
            if pack_id in indexed or pack_id in condemned:
                continue
            try:
                adopted[pack_id] = (info.size, read_footer(self.backend, pack_id, info.size))
            except (CorruptObject, KeyNotFound):
                continue  # damaged or just deleted: not something to rely on
        if adopted:
            self.index.mark_index_file(write_index_file(self.backend, adopted))
            for pack_id, (size, entries) in adopted.items():
                self.index.add_pack(pack_id, size, entries)
        return len(adopted)

    def has(self, oid: str) -> bool:
        """Whether a push may count on the remote holding ``oid`` (not if only a condemned pack has it)."""
        if not self.condemned:
            return self.index.has(oid)
        loc = self.index.lookup(oid)
        return loc is not None and loc.pack not in self.condemned

    def read_object(self, oid: str) -> bytes:
        """One object by a ranged GET, verified (for small reads such as a head commit)."""
        loc = self.index.lookup(oid)
        if loc is None:
            self.sync_index()
            loc = self.index.lookup(oid)
        if loc is None:
            raise ObjectMissing(f"object {oid} is not on the remote {self.url}", "the remote may be incomplete; run `datactl fsck` there")
        stored = self.backend.get_range(pack_key(loc.pack), loc.entry.offset, loc.entry.stored_len)
        return verify_stored(oid, loc.entry, stored, f"{loc.pack} on {self.url}")
