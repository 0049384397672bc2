"""Only new chunks are stored: a few edits in a large file cost a few chunks."""

from __future__ import annotations

import random
from pathlib import Path

from conftest import Cli
from datactl.workspace.workspace import Workspace

MiB = 1024 * 1024


def stored_bytes(root: Path) -> int:
    ws = Workspace.open(str(root))
    try:
        return sum(ws.repo.index.packs().values())
    finally:
        ws.close()


def test_edits_in_a_128_mib_file_store_under_2_mib(cli: Cli, ws_dir: Path) -> None:
    rng = random.Random(128)
    path = ws_dir / "model.bin"
    with open(path, "wb") as f:
        for _ in range(128):
            f.write(rng.randbytes(MiB))
    cli("init")
    cli("add", ".")
    cli("commit", "-m", "v1")
    before = stored_bytes(ws_dir)
    assert before > 128 * MiB * 0.99

    size = 128 * MiB
    with open(path, "r+b") as f:
        for _ in range(2):  # two 4 KiB overwrites
            f.seek(rng.randrange(size - 4096))
            f.write(rng.randbytes(4096))
    data = bytearray(path.read_bytes())
    for _ in range(3):  # three 100-byte inserts
        at = rng.randrange(len(data))
        data[at:at] = rng.randbytes(100)
    path.write_bytes(bytes(data))
    del data

    cli("add", ".")
    cli("commit", "-m", "v2")
    extra = stored_bytes(ws_dir) - before
    assert extra < 2 * MiB, f"5 small edits stored {extra / MiB:.2f} MiB of new data"
    cli("checkout", "HEAD~1")
    cli("verify", "--deep")
