"""Readers for training loops: a map-style dataset of files, safe to use from worker processes.

``FileReader`` has ``__len__`` and ``__getitem__``, so it is a
``torch.utils.data.Dataset`` in all but name (pass it to a DataLoader with
``num_workers > 0``); torch is not needed to use it. It pickles as its
address (name, commit id, remote, cache folder) and each process opens the
version itself, sharing the on-disk cache.
"""

from __future__ import annotations

from typing import Any, Callable

from datactl.api.dataset import Dataset
from datactl.remote.locate import RemoteSpec


class FileReader:
    """Files of one version, by index: ``reader[i]`` is ``transform(path, bytes)`` (default: the bytes)."""

    def __init__(
        self,
        name: str,
        version: str | None = None,
        *,
        remote: str | RemoteSpec | None = None,
        kind: str = "dataset",
        pattern: str | None = None,
        cache_dir: str | None = None,
        transform: Callable[[str, bytes], Any] | None = None,
    ) -> None:
        with Dataset.get(name, version, remote=remote, kind=kind, cache_dir=cache_dir) as ds:
            self.commit_id = ds.id
            self.paths = [f.path for f in ds.files(pattern)]
        self.name, self.remote, self.kind, self.cache_dir, self.transform = name, remote, kind, cache_dir, transform
        self._ds: Dataset | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Any:
        if self._ds is None:
            self._ds = Dataset.get(self.name, self.commit_id, remote=self.remote, kind=self.kind, cache_dir=self.cache_dir)
        data = self._ds.read_bytes(self.paths[i])
        return self.transform(self.paths[i], data) if self.transform else data

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_ds"] = None  # each worker process opens its own
        return state
