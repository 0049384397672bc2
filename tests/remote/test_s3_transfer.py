"""Against the S3 server, through a counting, fault-injecting proxy: few PUTs, and faults survived."""

from __future__ import annotations

import random
from pathlib import Path

from conftest import snapshot, write
from datactl.remote.locate import add_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from servers import FaultyProxy, new_s3_bucket


def small_files(root: Path, n: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    for i in range(n):
        size = rng.randint(512, 16_000)
        data = rng.randbytes(size) if i % 3 == 0 else (f"{i},{rng.random()}\n" * (size // 20)).encode()
        write(root / f"part{i // 1000}" / f"{i % 1000:03d}.csv", data)


def test_thousands_of_small_files_take_a_handful_of_puts(tmp_path: Path, s3_server: str) -> None:
    url = f"s3://{new_s3_bucket(s3_server)}/store"
    src = tmp_path / "src"
    small_files(src, 5000)
    with FaultyProxy(s3_server) as proxy:
        ws = Workspace.init(str(src), name="many")
        add_remote(ws.root, "origin", url, {"endpoint_url": proxy.url})
        ws.add([str(src)])
        ws.commit("v1")
        result = sync.push(ws)
        puts = proxy.counts["PUT"] + proxy.counts["POST"]
        # The store's listing (for readers over HTTP) costs a first push two of them: new index files, the new head's name.
        assert puts <= 14, f"5,000 files took {puts} PUT/POST requests ({dict(proxy.counts)})"
        assert result.packs <= 4

        # Editing 1% of the files uploads about 1% of the bytes.
        for i in range(0, 5000, 100):
            p = src / f"part{i // 1000}" / f"{i % 1000:03d}.csv"
            p.write_bytes(p.read_bytes()[:-10] + b"edited!!!\n")
        ws.add([str(src)])
        ws.commit("v2")
        second = sync.push(ws)
        ws.close()
    assert second.bytes_uploaded < 0.05 * result.bytes_uploaded


def test_push_and_clone_survive_throttling_resets_and_lost_replies(tmp_path: Path, s3_server: str) -> None:
    url = f"s3://{new_s3_bucket(s3_server)}/store"
    src = tmp_path / "src"
    small_files(src, 300, seed=9)
    write(src / "big.bin", random.Random(1).randbytes(3_000_000))
    with FaultyProxy(s3_server, fail_every=4, modes=("503", "reset", "lost")) as proxy:
        options = {"endpoint_url": proxy.url}
        ws = Workspace.init(str(src), name="flaky")
        add_remote(ws.root, "origin", url, options)
        ws.add([str(src)])
        ws.commit("v1", tags=["v1"])
        sync.push(ws, tags=True)
        ws.close()
        clone = sync.clone(url, "flaky", str(tmp_path / "clone"), options=options)
        clone.close()
        assert sum(proxy.faults.values()) > 10, "faults were injected"
    assert snapshot(tmp_path / "clone") == snapshot(src)
