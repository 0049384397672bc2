"""The gc records of a store: packs condemned by gc, and versions whose files gc pruned.

Writers read them too: a push must never rely on an object that only a
condemned pack holds, since gc deletes such a pack once its grace period is
over (``RemoteStore.has``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Iterable

from datactl.core.errors import CorruptObject
from datactl.core.ids import object_id
from datactl.core.units import iso_seconds
from datactl.format.gcrecords import decode_condemned, decode_pruned, encode_condemned, encode_pruned
from datactl.format.layout import CONDEMNED_PREFIX, PRUNED_PREFIX
from storage_backends import Backend, KeyNotFound


@dataclass
class CondemnRecord:
    """``gc/condemned/<run>``: packs a gc run condemned; the record's modification time is when.

    A condemned pack stays in the store, and in the index with its garbage
    objects, for at least the grace period; writers must not rely on its objects
    from the moment they can see the record.
    """

    run: str
    packs: dict[str, int]
    mtime: float = 0.0
    listed_key: str | None = None  # the key it was read from (a record's content never names a key)

    @property
    def key(self) -> str:
        return self.listed_key or CONDEMNED_PREFIX + self.run


def new_run_id() -> str:
    """A gc run's id: its UTC time (sortable) and a random suffix."""
    return f"{iso_seconds(time.time()).replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"


def write_condemned(backend: Backend, record: CondemnRecord) -> None:
    backend.put_bytes(record.key, encode_condemned(record.run, record.packs, iso_seconds(time.time())))


def read_condemned(backend: Backend) -> list[CondemnRecord]:
    """Every readable condemnation record (an unreadable one condemns nothing: its packs are condemned again later)."""
    out = []
    for info in backend.list(CONDEMNED_PREFIX):
        try:
            run, packs = decode_condemned(info.key, backend.get(info.key))
        except (KeyNotFound, CorruptObject):
            continue
        out.append(CondemnRecord(run, packs, info.mtime, info.key))
    return out


def condemned_packs(backend: Backend) -> set[str]:
    """Packs a gc condemned (deleted once the grace period is over): never to be indexed again or relied on."""
    out: set[str] = set()
    for rec in read_condemned(backend):
        out.update(rec.packs)
    return out


def read_pruned(backend: Backend) -> set[str]:
    """Versions whose files gc may have deleted (their commits and trees are kept)."""
    out: set[str] = set()
    for info in backend.list(PRUNED_PREFIX):
        try:
            out |= decode_pruned(info.key, backend.get(info.key))
        except (KeyNotFound, CorruptObject):
            continue
    return out


def write_pruned(backend: Backend, commits: Iterable[str], reason: str) -> str:
    data = encode_pruned(commits, reason, iso_seconds(time.time()))
    rid = object_id(data)
    backend.put_if_absent(PRUNED_PREFIX + rid, data)
    return rid
