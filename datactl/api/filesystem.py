"""An fsspec filesystem for reading any version: ``datactl://NAME@VERSION/path``.

    import fsspec, pandas
    with fsspec.open("datactl://imagenet-mini@v3/labels.csv", remote="s3://bucket/store") as f: ...
    pandas.read_csv("datactl://imagenet-mini@v3/labels.csv", storage_options={"remote": "s3://bucket/store"})

Read-only. ``ls``, ``info``, ``glob``, ``find`` and ranged reads work; file
reads stream only the chunks they touch, through the shared cache.
"""

from __future__ import annotations

from typing import Any

from fsspec.spec import AbstractFileSystem

from datactl.api.dataset import Dataset
from datactl.format.objects import DIR, FILE
from datactl.remote.locate import RemoteSpec
from datactl.store.trees import lookup_path


class DatactlFileSystem(AbstractFileSystem):
    """Paths are ``NAME@VERSION/inside/the/version`` (``NAME`` alone is the latest version)."""

    protocol = "datactl"
    root_marker = ""

    def __init__(
        self,
        remote: str | None = None,
        kind: str = "dataset",
        cache_dir: str | None = None,
        remote_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """``remote`` is a store URL or remote name; ``remote_options`` its backend options (e.g. endpoint_url)."""
        super().__init__(**kwargs)
        self.remote: str | RemoteSpec | None = RemoteSpec(None, remote, remote_options) if remote and remote_options else remote
        self.kind = kind
        self.cache_dir = cache_dir
        self._versions: dict[str, Dataset] = {}

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        if path.startswith("datactl://"):
            path = path[len("datactl://") :]
        return path.rstrip("/")

    def _split(self, path: str) -> tuple[Dataset, str]:
        path = self._strip_protocol(path)
        head, _, inner = path.partition("/")
        if head not in self._versions:
            name, _, version = head.partition("@")
            self._versions[head] = Dataset.get(name, version or None, remote=self.remote, kind=self.kind, cache_dir=self.cache_dir)
        return self._versions[head], inner

    def _info_of(self, ds: Dataset, head: str, inner: str) -> dict[str, Any]:
        entry = lookup_path(ds._loc.store, ds._commit.tree, inner)  # type: ignore[arg-type]
        if entry is None:
            raise FileNotFoundError(f"{head}/{inner}")
        name = f"{head}/{inner}" if inner else head
        kind = "directory" if entry.kind == DIR else "file"
        return {"name": name, "size": entry.size, "type": kind, "digest": entry.digest if entry.kind == FILE else None}

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        ds, inner = self._split(path)
        return self._info_of(ds, self._strip_protocol(path).partition("/")[0], inner)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        ds, inner = self._split(path)
        head = self._strip_protocol(path).partition("/")[0]
        entry = lookup_path(ds._loc.store, ds._commit.tree, inner)  # type: ignore[arg-type]
        if entry is None:
            raise FileNotFoundError(path)
        if entry.kind != DIR:
            out = [self._info_of(ds, head, inner)]
        else:
            prefix = f"{head}/{inner}/" if inner else f"{head}/"
            out = [
                {"name": prefix + e.name, "size": e.size, "type": "directory" if e.kind == DIR else "file"}
                for e in ds._loc.store.read_tree(entry.digest).entries
            ]
        return out if detail else [o["name"] for o in out]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any):  # type: ignore[override]
        if mode != "rb":
            raise PermissionError("datactl:// is read-only")
        ds, inner = self._split(path)
        return ds.open(inner)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        with self._open(path) as f:
            size = self.size(path)
            start = 0 if start is None else (start if start >= 0 else size + start)
            end = size if end is None else (end if end >= 0 else size + end)
            f.seek(start)
            return f.read(max(0, end - start))
