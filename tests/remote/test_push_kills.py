"""A push killed (kill -9) at any point, to a folder and to S3: the store stays sound and nothing committed is lost.

Each round commits a new version and pushes it in another process that dies:
at each named point of a push (``datactl.core.crashpoints``: after a pack is
uploaded, before the ref moves, right after it moved, before a tag is created),
and at random moments (seeded). After every kill the remote passes fsck, its
head (if any) is a version we committed and reads back whole, and the workspace
is intact; at the end a plain push publishes everything and a clone is exact.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Cli, snapshot, write
from datactl.core.crashpoints import CRASH_ENV, STEP_DELAY_ENV
from datactl.format.storeconfig import StoreConfig
from datactl.remote.locate import RemoteSpec, add_remote
from datactl.remote.remotestore import RemoteStore
from datactl.store.history import iter_history
from datactl.store.refs import RefStore
from datactl.upkeep.fsck import fsck
from datactl.upkeep.targets import url_target
from datactl.upkeep.verify import verify_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from servers import new_store
from storage_backends import open_backend

POINTS = ["after-pack-upload#1", "after-pack-upload#3", "before-ref-update", "after-ref-moved", "before-tag-update"]
# A process talking to the S3 test server takes a few seconds: S3 runs its share of the points (a folder runs them all).
S3_POINTS = ["after-pack-upload#3", "before-ref-update", "after-ref-moved"]


def new_version(root: Path, rng: random.Random, n: int, tag: str) -> str:
    for i in range(3):
        write(root / f"v{n}" / f"{i}.bin", rng.randbytes(rng.randint(100_000, 150_000)))
    ws = Workspace.open(str(root))
    try:
        ws.add([str(root)])
        return ws.commit(f"v{n}", tags=[tag])
    finally:
        ws.close()


def push_process(root: Path, env_extra: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "DATACTL_AUTHOR": "Test <test@example.com>", **env_extra}
    return subprocess.Popen([sys.executable, "-m", "datactl", "push", "--tags"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_push_killed_at_any_point_loses_nothing(kind: str, request: pytest.FixtureRequest, tmp_path: Path, cli: Cli) -> None:
    url, options = new_store(kind, request, tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    ws = Workspace.init(str(src), name="ds", store_config=StoreConfig(pack_size=128 * 1024))  # several packs a push
    add_remote(ws.root, "origin", url, options)
    ws.close()
    rng = random.Random(17)
    committed = [new_version(src, rng, 1, "t1")]
    sync_push(src)
    backend = open_backend(url, options)
    runs: list[tuple[str | None, float | None]] = [(p, None) for p in (POINTS if kind == "local" else S3_POINTS)]
    runs += [(None, rng.uniform(0.4, 1.2)) for _ in range(2 if kind == "local" else 1)]
    for n, (point, kill_after) in enumerate(runs, start=2):
        committed.append(new_version(src, rng, n, f"t{n}"))
        if point is not None:
            proc = push_process(src, {CRASH_ENV: point})
            proc.wait(timeout=120)
            assert proc.returncode == 137, f"the push did not reach {point}: {proc.stderr.read() if proc.stderr else ''}"
            what = point
        else:
            proc = push_process(src, {STEP_DELAY_ENV: "0.05"})
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=120)
            what = f"SIGKILL after {kill_after:.2f}s (exit {proc.returncode})"

        report = fsck(url_target(backend, str(tmp_path / "fsck")), grace=0)
        assert report.ok, f"{what}: {[i.message for i in report.errors]}"
        head = RefStore(backend).get("datasets/ds")
        assert head in committed, f"{what}: the remote names a version we committed"
        with RemoteStore(RemoteSpec(None, url, options), str(tmp_path / f"verify{n}"), backend=backend) as rs:
            result = verify_remote(rs, "ds", name="ds", deep=True)
        assert result.ok, f"{what}: {result.problems[:3]}"
        assert cli("verify", "--deep", cwd=src).code == 0, what

    sync_push(src)
    refs = RefStore(backend)
    assert refs.get("datasets/ds") == committed[-1]
    assert {f"t{n}" for n in range(1, len(committed) + 1)} == {r.ref.rsplit("/", 1)[-1] for r in refs.list("tags/ds/")}
    clone = sync.clone(url, "ds", str(tmp_path / "clone"), options=options)
    try:
        assert snapshot(tmp_path / "clone") == snapshot(src)
        assert [cid for cid, _ in iter_history(clone.repo, clone.head)] == committed[::-1], "every version committed is on the remote"
    finally:
        clone.close()


def sync_push(root: Path) -> None:
    ws = Workspace.open(str(root))
    try:
        sync.push(ws, tags=True)
    finally:
        ws.close()
