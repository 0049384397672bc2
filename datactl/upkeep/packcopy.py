"""Copying objects, as they are stored, into new packs of the store's target size (gc's repacks, consolidation)."""

from __future__ import annotations

import os

from datactl.core.crashpoints import crash_point
from datactl.core.errors import CorruptObject, StoreDamaged
from datactl.format.indexfile import PackListing
from datactl.format.layout import pack_key
from datactl.format.pack import ObjectType, PackWriter
from datactl.store.packread import Location
from datactl.upkeep.storeview import StoreView
from storage_backends import Backend


def copy_to_packs(view: StoreView, locs: list[Location], backend: Backend, tmp_dir: str, pack_size: int, who: str) -> PackListing:
    """Copy the objects at ``locs`` (each verified) into new packs, data and metadata apart; store them durably.

    Returns the new packs' listing. Nothing is listed in an index file here: until the caller does, the new
    packs are unindexed (an interrupted copy leaves only packs a later gc condemns).
    """
    writers: dict[bool, PackWriter] = {}
    done: PackListing = {}

    def seal(is_data: bool) -> None:
        w = writers.pop(is_data)
        pid, path, entries = w.finish()
        size = os.path.getsize(path)
        try:
            backend.put_file(pack_key(pid), path)
        finally:
            os.unlink(path)
        done[pid] = (size, entries)
        crash_point("during-copy")

    try:
        for obj in view.read_located(locs):
            entry, stored = obj.entry, obj.stored
            is_data = entry.type == ObjectType.CHUNK
            w = writers.get(is_data)
            if w is None:
                w = writers[is_data] = PackWriter(tmp_dir)
            w.add(entry.id, entry.type, entry.codec, stored, entry.raw_len)
            if w.full(pack_size):
                seal(is_data)
        for is_data in list(writers):
            seal(is_data)
    except CorruptObject as exc:
        raise StoreDamaged(f"{exc.message}; {who} deletes nothing", "run `datactl fsck --read-data` to find every damaged pack") from None
    finally:
        for w in writers.values():
            w.abort()
    return done
