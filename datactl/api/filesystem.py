"""An fsspec filesystem for reading any version: ``datactl://NAME@VERSION/path``.

    import fsspec, pandas
    with fsspec.open("datactl://imagenet-mini@v3/labels.csv", remote="s3://bucket/store") as f: ...
    pandas.read_csv("datactl://imagenet-mini@v3/labels.csv", storage_options={"remote": "s3://bucket/store"})

Read-only. The root (``datactl://``) lists the store's datasets, ``NAME`` is
the latest version of one and ``NAME@VERSION`` a tagged or identified one.
``ls``, ``info``, ``exists``, ``glob``, ``find``, ``modified`` and ranged
reads work; file reads stream only the chunks they touch, through the shared
cache. A version never changes, so a file's modification time is its
version's commit time and its checksum is its content digest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fsspec.spec import AbstractFileSystem

from datactl.api.dataset import Dataset
from datactl.core.errors import UnknownRef, UsageError
from datactl.format.objects import DIR, FILE, SYMLINK, TreeEntry
from datactl.remote.locate import RemoteSpec, choose_read_store
from datactl.remote.remotestore import list_datasets
from datactl.store.trees import lookup_path
from datactl.store.walk import walk_files

# fsspec's own instance settings, passed through to AbstractFileSystem.
FSSPEC_OPTIONS = frozenset({"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous", "loop"})
# Credentials never go in storage options: the cloud SDKs' own chains supply them.
SECRET_OPTIONS = frozenset({"key", "secret", "token", "access_key", "secret_key", "aws_access_key_id", "aws_secret_access_key", "session_token"})


def backend_options(storage_options: dict[str, Any]) -> dict[str, Any]:
    """Store options (endpoint_url, region, profile, project) from the keys fsspec users know from s3fs and gcsfs.

    ``endpoint_url``, ``region`` (or ``region_name``), ``profile``, ``project``
    and ``client_kwargs={"endpoint_url": ..., "region_name": ...}`` are
    accepted; ``remote_options`` (a dict of the same) too. Anything else is an
    error rather than silently ignored.
    """
    given = dict(storage_options)
    options: dict[str, Any] = dict(given.pop("remote_options", None) or {})
    client = given.pop("client_kwargs", None) or {}
    if not isinstance(client, dict):
        raise UsageError("datactl://: client_kwargs must be a dict")
    for key, value in client.items():
        if key not in ("endpoint_url", "region_name"):
            raise UsageError(f"datactl://: client_kwargs[{key!r}] is not supported", "client_kwargs takes endpoint_url and region_name")
        options["endpoint_url" if key == "endpoint_url" else "region"] = value
    for key, value in given.items():
        if key in ("endpoint_url", "profile", "project"):
            options[key] = value
        elif key in ("region", "region_name"):
            options["region"] = value
        elif key in SECRET_OPTIONS:
            raise UsageError(
                f"datactl://: {key!r} is not taken in storage options",
                "credentials come from the cloud SDK's usual chain: environment variables, a profile (profile=...), or the machine's role",
            )
        elif key == "anon":
            if value:
                raise UsageError("datactl://: anonymous access is not supported", "give credentials through the SDK's usual chain")
        else:
            raise UsageError(
                f"datactl://: unknown storage option {key!r}",
                "use remote, kind, cache_dir, endpoint_url, region, profile, project or client_kwargs",
            )
    return {k: v for k, v in options.items() if v is not None}


class DatactlFileSystem(AbstractFileSystem):
    """Paths are ``NAME@VERSION/inside/the/version`` (``NAME`` alone is the latest version; ``""`` the store)."""

    protocol = "datactl"
    root_marker = ""

    def __init__(self, remote: str | None = None, kind: str = "dataset", cache_dir: str | None = None, **storage_options: Any) -> None:
        """``remote`` is a store URL, path or remote name (default: as ``Dataset.get``); other options: see ``backend_options``."""
        passed = {k: v for k, v in storage_options.items() if k in FSSPEC_OPTIONS}
        super().__init__(**passed)
        options = backend_options({k: v for k, v in storage_options.items() if k not in FSSPEC_OPTIONS})
        self.remote: str | RemoteSpec | None = remote
        if options:
            choice = choose_read_store(remote, options=options)
            self.remote = choice.spec if not choice.own else remote
        self.kind = kind
        self.cache_dir = cache_dir
        self._versions: dict[str, Dataset] = {}

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        if path.startswith("datactl://"):
            path = path[len("datactl://") :]
        return path.strip("/")

    # -- versions ----------------------------------------------------------------------

    def _version(self, head: str) -> Dataset:
        """The version ``NAME[@VERSION]`` names (FileNotFoundError when the store has no such version)."""
        if head not in self._versions:
            name, _, version = head.partition("@")
            try:
                self._versions[head] = Dataset.get(name, version or None, remote=self.remote, kind=self.kind, cache_dir=self.cache_dir)
            except UnknownRef as exc:
                raise FileNotFoundError(f"datactl://{head}: {exc.message}") from exc
            except UsageError as exc:  # not a valid name: nothing by that name
                raise FileNotFoundError(f"datactl://{head}: {exc.message}") from exc
        return self._versions[head]

    def _split(self, path: str) -> tuple[str, Dataset, str]:
        head, _, inner = self._strip_protocol(path).partition("/")
        return head, self._version(head), inner

    def _entry_info(self, ds: Dataset, name: str, entry: TreeEntry) -> dict[str, Any]:
        kind = "directory" if entry.kind == DIR else "file"
        info: dict[str, Any] = {"name": name, "size": entry.size if entry.kind != DIR else 0, "type": kind, "mtime": ds.created_at, "created": ds.created_at}
        if entry.kind == FILE:
            info["digest"] = entry.digest
        elif entry.kind == SYMLINK:
            info["islink"], info["destination"] = True, entry.target
        else:
            info["commit"] = ds.id
        return info

    # -- the read-only fsspec interface ----------------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        if not self._strip_protocol(path):
            return {"name": "", "size": 0, "type": "directory"}
        head, ds, inner = self._split(path)
        entry = lookup_path(ds._loc.store, ds._commit.tree, inner)  # type: ignore[arg-type]
        if entry is None:
            raise FileNotFoundError(f"datactl://{head}/{inner}")
        return self._entry_info(ds, f"{head}/{inner}" if inner else head, entry)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        if not self._strip_protocol(path):
            out = self._datasets()
        else:
            head, ds, inner = self._split(path)
            entry = lookup_path(ds._loc.store, ds._commit.tree, inner)  # type: ignore[arg-type]
            if entry is None:
                raise FileNotFoundError(f"datactl://{head}/{inner}")
            if entry.kind != DIR:
                out = [self._entry_info(ds, f"{head}/{inner}", entry)]
            else:
                prefix = f"{head}/{inner}/" if inner else f"{head}/"
                out = [self._entry_info(ds, prefix + e.name, e) for e in ds._loc.store.read_tree(entry.digest).entries]
        return out if detail else [o["name"] for o in out]

    def _datasets(self) -> list[dict[str, Any]]:
        """The store's datasets (or models, for kind="model"), as folders named after them."""
        spec = self.remote if isinstance(self.remote, RemoteSpec) else choose_read_store(self.remote).spec
        return [
            {"name": d.name, "size": 0, "type": "directory", "commit": d.head, "tags": sorted(d.tags)}
            for d in list_datasets(spec)
            if d.kind == self.kind
        ]

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Whether ``path`` names something; a store that cannot be read raises (it is not a "no")."""
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def modified(self, path: str) -> datetime:
        """The commit time of the version (its files never change after it)."""
        return self.info(path)["mtime"]

    def created(self, path: str) -> datetime:
        return self.info(path)["created"]

    def ukey(self, path: str) -> str:
        """The content digest of a file (the commit id for a folder of a version): equal keys, equal bytes."""
        info = self.info(path)
        return info.get("digest") or f"{info.get('commit', '')}:{info['name']}"

    def checksum(self, path: str) -> int:
        return int(self.ukey(path).split(":")[0] or "0", 16)

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any) -> Any:
        stripped = self._strip_protocol(path)
        if not stripped or maxdepth is not None or withdirs:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        # Every file of a version below a folder: one walk, trees fetched a level at a time.
        head, ds, inner = self._split(stripped)
        entry = lookup_path(ds._loc.store, ds._commit.tree, inner)  # type: ignore[arg-type]
        if entry is None:
            return {} if detail else []
        if entry.kind != DIR:
            found = {stripped: self._entry_info(ds, stripped, entry)}
        else:
            prefix = f"{head}/{inner}/" if inner else f"{head}/"
            walk = walk_files(ds._loc.store, entry.digest, prefix)  # type: ignore[arg-type]
            found = {p: self._entry_info(ds, p, e) for p, e in walk}
        return found if detail else sorted(found)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any):  # type: ignore[override]
        if mode != "rb":
            raise PermissionError("datactl:// is read-only")
        _, ds, inner = self._split(path)
        return ds.open(inner)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        with self._open(path) as f:
            size = self.size(path)
            start = 0 if start is None else (start if start >= 0 else size + start)
            end = size if end is None else (end if end >= 0 else size + end)
            f.seek(start)
            return f.read(max(0, end - start))
