"""push, clone, pull and Dataset.get on S3 through a proxy that breaks about one request in five.

``FaultyProxy`` (tests/faultproxy.py) answers 500 and 503 SlowDown, resets
connections, drops responses after the server acted, cuts bodies (mid-stream or
framed as complete), flips a byte of bodies the client can check, and answers
BadDigest to uploads, each fault one a retry must survive. Everything must
complete with the right bytes within the retry budget; a fault that does not
go away must end in one clear line.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from conftest import Cli, snapshot, write
from datactl import Dataset
from datactl.format.storeconfig import StoreConfig
from datactl.remote.locate import RemoteSpec
from datactl.remote.remotestore import RemoteStore
from datactl.upkeep.fsck import fsck
from datactl.upkeep.targets import url_target
from datactl.upkeep.verify import verify_remote
from datactl.workspace.workspace import Workspace
from faultproxy import MODES, FaultyProxy
from servers import new_s3_bucket
from storage_backends import open_backend

MiB = 1 << 20


def files(root: Path, seed: int, n: int = 40) -> None:
    rng = random.Random(seed)
    for i in range(n):
        write(root / f"part{i % 3}" / f"{i:03d}.bin", rng.randbytes(rng.randint(500, 40_000)))
    write(root / "big.bin", rng.randbytes(3 * MiB))


def test_everything_completes_with_the_right_bytes_through_a_fifth_of_requests_failing(tmp_path: Path, s3_server: str, cli: Cli) -> None:
    url = f"s3://{new_s3_bucket(s3_server)}/store"
    src = tmp_path / "src"
    files(src, 1)
    ws = Workspace.init(str(src), name="ds", store_config=StoreConfig(pack_size=MiB))  # no multipart uploads: one PUT a pack
    ws.close()
    with FaultyProxy(s3_server, probability=0.2, modes=MODES, seed=20) as proxy:
        cli("remote", "add", "origin", url, "--endpoint-url", proxy.url, cwd=src)
        cli("add", ".", cwd=src)
        cli("commit", "-m", "v1", "--tag", "v1", cwd=src)
        cli("push", "--tags", cwd=src)
        cli("clone", url, "ds", str(tmp_path / "clone"), "--endpoint-url", proxy.url, cwd=tmp_path)
        assert snapshot(tmp_path / "clone") == snapshot(src)

        files(src, 2, n=10)  # v2: edits, and a new big file
        cli("add", ".", cwd=src)
        cli("commit", "-m", "v2", cwd=src)
        cli("push", cwd=src)
        cli("pull", cwd=tmp_path / "clone")
        assert snapshot(tmp_path / "clone") == snapshot(src)

        remote = RemoteSpec(None, url, {"endpoint_url": proxy.url})
        with Dataset.get("ds", "v1", remote=remote, cache_dir=str(tmp_path / "cache")) as v1:
            copy = Path(v1.get_local_copy())
        with Dataset.get("ds", remote=remote, cache_dir=str(tmp_path / "cache2")) as latest:
            with latest.open("big.bin") as f:
                f.seek(MiB + 17)
                assert f.read(100_000) == (src / "big.bin").read_bytes()[MiB + 17 : MiB + 100_017]
        injected = dict(proxy.faults)
        requests = sum(proxy.counts.values())

    clone_v1 = tmp_path / "check-v1"
    cli("clone", url, "ds@v1", str(clone_v1), "--endpoint-url", s3_server, cwd=tmp_path)  # straight to the server
    assert {k: v[-1] for k, v in snapshot(copy).items()} == {k: v[-1] for k, v in snapshot(clone_v1).items()}
    assert all(injected.get(m, 0) > 0 for m in MODES), f"every kind of fault happened: {injected}"
    assert 0.1 < sum(injected.values()) / requests < 0.3, f"{sum(injected.values())} faults in {requests} requests"
    # The store itself is sound: nothing damaged was stored, every object verifies.
    backend = open_backend(url, {"endpoint_url": s3_server})
    report = fsck(url_target(backend, str(tmp_path)), read_data=True)
    assert report.ok, [i.message for i in report.issues]
    with RemoteStore(RemoteSpec(None, url, {"endpoint_url": s3_server}), str(tmp_path / "idx"), backend=backend) as rs:
        assert verify_remote(rs, "ds", name="ds", deep=True).ok


def test_a_fault_that_does_not_go_away_ends_in_one_clear_line(tmp_path: Path, s3_server: str, cli: Cli) -> None:
    url = f"s3://{new_s3_bucket(s3_server)}/store"
    src = tmp_path / "src"
    write(src / "a.txt", "a\n")
    ws = Workspace.init(str(src), name="ds")
    ws.close()
    for mode in ("503", "reset"):
        with FaultyProxy(s3_server, fail_every=1, modes=(mode,)) as proxy:
            cli("remote", "add", f"flaky-{mode}", url, "--endpoint-url", proxy.url, cwd=src)
            write(src / f"{mode}.txt", mode)
            cli("add", ".", cwd=src)
            cli("commit", "-m", mode, cwd=src)
            r = cli("push", f"flaky-{mode}", ok=False, cwd=src)
            lines = r.err.strip().splitlines()
            assert r.code == 3 and len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), r.err
            assert url.split("/")[2] in lines[0], "the line says where"
            assert proxy.counts and not proxy.counts.keys() - {"GET", "HEAD", "PUT"}, dict(proxy.counts)
    assert not list(open_backend(url, {"endpoint_url": s3_server}).list("refs/")), "nothing was published"
    assert json.loads(cli("status", "--json", cwd=src).out)["clean"]
