"""Readers for training loops: a map-style dataset of files, safe to use from worker processes.

``FileReader`` has ``__len__`` and ``__getitem__``, so it is a
``torch.utils.data.Dataset`` in all but name (pass it to a DataLoader with
``num_workers > 0``); torch is not needed to use it. It pickles as its
address (name, commit id, remote, cache folder) and its ``transform``, and
each process opens the version itself, sharing the on-disk cache. Worker
processes started with ``spawn`` (the default on macOS and Windows) receive
it pickled, so the transform must be a function defined at module level: a
lambda or a nested function is refused with a ``TransformNotPicklable``
error saying so.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from datactl.api.dataset import Dataset
from datactl.core.errors import UsageError
from datactl.remote.locate import RemoteSpec


class TransformNotPicklable(UsageError, pickle.PicklingError):
    """A FileReader's transform cannot be sent to worker processes."""


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
        if self.transform is not None:
            try:
                pickle.dumps(self.transform)
            except Exception as exc:  # pickle raises PicklingError, AttributeError or TypeError, depending on the object
                name = getattr(self.transform, "__qualname__", repr(self.transform))
                raise TransformNotPicklable(
                    f"FileReader's transform {name} cannot be pickled, so worker processes (spawn) cannot receive it: {exc}",
                    "define the transform as a function at module level (not a lambda or a nested function), "
                    "or use functools.partial of one",
                ) from exc
        return state
