"""PackWriter.abort never raises, even when the disk refuses the bytes still buffered (issue 12 item 8)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datactl.core.ids import object_id
from datactl.format.pack import ObjectType, PackWriter
from fulldisk import fill, small_disk


def test_abort_on_a_full_disk_discards_the_pack_without_raising(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        writer = PackWriter(str(disk / "tmp"))
        data = os.urandom(4000)
        writer.add(object_id(data), ObjectType.CHUNK, 0, data, len(data))  # still in the write buffer
        fill(disk)
        with pytest.raises(OSError):  # the buffered bytes meet the full disk when they are written out
            writer.add(object_id(data[::-1]), ObjectType.CHUNK, 0, data[::-1], len(data))
            writer.finish()
        writer.abort()
        assert os.listdir(disk / "tmp") == []
