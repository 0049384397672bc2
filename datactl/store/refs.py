"""Refs: the only mutable names in a store, moved by compare-and-swap.

``datasets/<name>`` and ``models/<name>`` name the head commit of a dataset or
model; ``tags/<name>/<tag>`` name a tagged version. A ref blob holds the commit
id and a newline.
"""

from __future__ import annotations

from dataclasses import dataclass

from datactl.core.errors import RefConflict, StoreFormatError
from datactl.core.ids import is_object_id
from datactl.format.layout import REFS_PREFIX, parse_head_ref, parse_tag_ref, ref_key
from storage_backends import Backend


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset or model in a store: its head and its tags."""

    name: str
    kind: str
    head: str
    tags: dict[str, str]


@dataclass(frozen=True)
class RefValue:
    ref: str
    commit: str


class RefStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def _parse(self, ref: str, data: bytes) -> str:
        text = data.decode("ascii", "replace").strip()
        if not is_object_id(text):
            raise StoreFormatError(f"ref {ref} in {self._backend.url} is damaged ({text[:40]!r})")
        return text

    def get(self, ref: str) -> str | None:
        v = self._backend.get_versioned(ref_key(ref))
        return None if v is None else self._parse(ref, v.data)

    def update(self, ref: str, new: str | None, expected: str | None) -> None:
        """Move ``ref`` from ``expected`` to ``new`` (None: absent), or raise RefConflict."""
        key = ref_key(ref)
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
        for info in self._backend.list(ref_key(prefix)):
            ref = info.key[len(REFS_PREFIX) :]
            commit = self.get(ref)
            if commit is not None:
                out.append(RefValue(ref, commit))
        return sorted(out, key=lambda r: r.ref)

    def datasets(self) -> list[DatasetInfo]:
        """The datasets and models of the store, with heads and tags (one listing of ``refs/``)."""
        heads: dict[tuple[str, str], str] = {}
        tags: dict[str, dict[str, str]] = {}
        for r in self.list(""):
            tag = parse_tag_ref(r.ref)
            if tag is not None:
                tags.setdefault(tag[0], {})[tag[1]] = r.commit
                continue
            head = parse_head_ref(r.ref)
            if head is not None:
                heads[head] = r.commit
        return sorted((DatasetInfo(name, kind, commit, tags.get(name, {})) for (kind, name), commit in heads.items()), key=lambda d: (d.kind, d.name))
