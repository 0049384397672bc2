"""An add writes its stage rows in batches as their objects become durable, without cutting packs short.

Rows name only objects in finished, indexed packs (a kill loses no row's data); waiting rows are written once the
pack holding their objects is finished. The batches are made small here, with a small pack size, to show in a few
hundred files what a million tiny files did: a pack cut short at every batch, merged again by a later commit.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from conftest import run_datactl, snapshot, write
from datactl.core.progress import NullProgress
from datactl.format.storeconfig import StoreConfig
from datactl.upkeep.smallpacks import is_small
from datactl.workspace.add import AddBatch, AddResult
from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.workspace import Workspace

PACK_SIZE = 256 * 1024
FILES = 3000


class CountedBatch(AddBatch):
    """An AddBatch that counts the batches of rows it writes (what each costs is a look at every waiting row)."""

    batches = 0

    def write_durable_rows(self) -> None:
        self.batches += 1
        super().write_durable_rows()


def test_batched_rows_name_only_indexed_objects_and_leave_few_small_packs(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    rng = random.Random(5)
    for i in range(FILES):
        write(root / "data" / f"f{i:04d}.bin", rng.randbytes(rng.randint(100, 300)))
    with Workspace.init(str(root), name="ds", store_config=StoreConfig(pack_size=PACK_SIZE)) as ws:
        result = AddResult()
        with CountedBatch(ws.repo, ws.stage, ws.chunker, ws.disk, result, NullProgress(), row_batch=100, row_limit=2000) as batch:
            batch.add_path("data", IgnoreRules(str(root)), lambda _path: True)
            written = list(ws.stage.iter_rows())
            assert 0 < len(written) < FILES  # batches were written while files were still being added ...
            for row in written:  # ... naming only objects in finished, indexed packs
                assert all(ws.repo.index.has(oid) for oid in row.entry.chunks), row.path
            batch.flush()
        # A batch per 100 new rows (or a pack's worth of bytes), not one per file while rows wait for their pack.
        assert batch.batches <= FILES // 100 + FILES * 300 // PACK_SIZE + 2, batch.batches
        assert result.added == FILES
        packs = ws.repo.index.packs()
        small = [p for p, size in packs.items() if is_small(size, ws.repo.index.count_objects(p, FILES), PACK_SIZE)]
        # Every pack but the last is filled: a pack cut short at each batch of rows would be one more small pack.
        assert len(small) <= 1, sorted(packs.values())
        ws.commit("v1")
    picture = snapshot(root / "data")
    for f in (root / "data").iterdir():
        os.unlink(f)
    assert run_datactl(["checkout", "--force", "HEAD"], root).returncode == 0
    assert snapshot(root / "data") == picture
    assert run_datactl(["verify", "--deep"], root).returncode == 0
