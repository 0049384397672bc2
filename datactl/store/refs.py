"""Refs: the only mutable names in a store, moved by compare-and-swap.

``datasets/<name>`` and ``models/<name>`` name the head commit of a dataset or
model; ``tags/<name>/<tag>`` name a tagged version. A ref blob holds the commit
id and a newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datactl.core.errors import RefConflict, StoreFormatError, UsageError
from datactl.core.ids import is_object_id
from storage_backends import Backend

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
HEAD_PREFIX = {"dataset": "datasets", "model": "models"}


def check_name(name: str, what: str = "name") -> str:
    """Dataset, model and tag names: letters, digits, '.', '_', '-'; not starting with '.' or '-'."""
    if not _NAME.match(name) or name.endswith(".lock"):
        raise UsageError(
            f"invalid {what} {name!r}",
            "use letters, digits, '.', '_' and '-' (up to 128), starting with a letter, digit or '_'",
        )
    return name


def head_ref(kind: str, name: str) -> str:
    return f"{HEAD_PREFIX[kind]}/{check_name(name)}"


def tag_ref(name: str, tag: str) -> str:
    return f"tags/{check_name(name)}/{check_name(tag, 'tag')}"


@dataclass(frozen=True)
class RefValue:
    ref: str
    commit: str


class RefStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def _key(self, ref: str) -> str:
        return f"refs/{ref}"

    def _parse(self, ref: str, data: bytes) -> str:
        text = data.decode("ascii", "replace").strip()
        if not is_object_id(text):
            raise StoreFormatError(f"ref {ref} in {self._backend.url} is damaged ({text[:40]!r})")
        return text

    def get(self, ref: str) -> str | None:
        v = self._backend.get_versioned(self._key(ref))
        return None if v is None else self._parse(ref, v.data)

    def update(self, ref: str, new: str | None, expected: str | None) -> None:
        """Move ``ref`` from ``expected`` to ``new`` (None: absent), or raise RefConflict."""
        key = self._key(ref)
        current = self._backend.get_versioned(key)
        current_id = None if current is None else self._parse(ref, current.data)
        if current_id != expected:
            raise self._conflict(ref, expected, current_id)
        data = None if new is None else f"{new}\n".encode()
        if not self._backend.compare_and_swap(key, data, current):
            raise self._conflict(ref, expected, self.get(ref))

    def _conflict(self, ref: str, expected: str | None, found: str | None) -> RefConflict:
        return RefConflict(
            f"{ref} moved on: expected {expected[:12] if expected else 'nothing'}, found {found[:12] if found else 'nothing'}",
            "another writer updated it first; nothing was overwritten",
        )

    def list(self, prefix: str = "") -> list[RefValue]:
        out = []
        for info in self._backend.list(self._key(prefix)):
            ref = info.key[len("refs/") :]
            commit = self.get(ref)
            if commit is not None:
                out.append(RefValue(ref, commit))
        return sorted(out, key=lambda r: r.ref)
