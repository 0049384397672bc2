"""Two writers pushing to one store at the same moment: what docs/remotes.md promises.

The second writer is a real `datactl push` in another process, held at a named
point of its push (``tests/pausepoint.py``) while the first one acts, so each
interleaving happens every run, without sleeps or mocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import snapshot, write
from datactl.remote.locate import add_remote
from datactl.store.refs import RefStore
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from pausepoint import PausePoint
from servers import WRITABLE_KINDS, new_store
from storage_backends import open_backend


def workspace(root: Path, remotes: dict[str, tuple[str, dict]], files: dict[str, bytes]) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace.init(str(root), name="ds")
    for name, (url, options) in remotes.items():
        add_remote(ws.root, name, url, options)
    return version(ws, files, "v1")


def version(ws: Workspace, files: dict[str, bytes], message: str) -> Workspace:
    for rel, data in files.items():
        write(Path(ws.root) / rel, data)
    ws.add([ws.root])
    ws.commit(message)
    return ws


def start_push(cwd: Path, pause: PausePoint, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DATACTL_AUTHOR": "Test <test@example.com>", **pause.env}
    return subprocess.Popen([sys.executable, "-m", "datactl", "push", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.fixture(params=WRITABLE_KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    """A fresh store on every writable backend, Azure included."""
    return new_store(request.param, request, tmp_path)


def test_push_fast_forwards_again_when_the_remote_moved_to_a_commit_it_already_has(tmp_path: Path, any_store: tuple[str, dict]) -> None:
    url, options = any_store
    mirror = str(tmp_path / "mirror")
    a = workspace(tmp_path / "a", {"origin": (url, options), "mirror": (mirror, {})}, {"one.txt": b"1\n"})
    c1 = a.head
    sync.push(a)
    version(a, {"two.bin": os.urandom(50_000)}, "v2")
    c2 = a.head
    sync.push(a, "mirror")
    # b: another machine that has c2 (from the mirror) and pushes it to origin.
    b = sync.clone(mirror, "ds", str(tmp_path / "b"))
    add_remote(b.root, "up", url, options)
    assert b.head == c2
    b.close()
    version(a, {"three.bin": os.urandom(50_000)}, "v3")
    c3 = a.head
    a.close()

    pause = PausePoint(tmp_path, "before-ref-update")
    proc = start_push(tmp_path / "a", pause)  # a's push of c3 read origin at c1 and uploaded its objects
    pause.wait(proc)
    try:
        pushed_b = subprocess.run([sys.executable, "-m", "datactl", "push", "up"], cwd=tmp_path / "b", capture_output=True, text=True)
        assert pushed_b.returncode == 0, pushed_b.stderr
        assert RefStore(open_backend(url, options)).get("datasets/ds") == c2, "origin moved from c1 to c2 while a was pushing"
    finally:
        pause.release()
    code, out, err = finish(proc)
    assert code == 0, f"c2 is in a's history, so a's push fast-forwards from it: {err}"
    assert RefStore(open_backend(url, options)).get("datasets/ds") == c3
    assert c1 != c2 != c3
    clone = sync.clone(url, "ds", str(tmp_path / "check"), options=options)
    assert clone.head == c3 and snapshot(tmp_path / "check") == snapshot(tmp_path / "a")
    clone.close()


@pytest.mark.parametrize("point", ["before-ref-update", "before-tag-update"])
def test_push_never_moves_a_tag_another_writer_created(tmp_path: Path, point: str) -> None:
    url = str(tmp_path / "remote")
    a = workspace(tmp_path / "a", {"origin": (url, {})}, {"one.txt": b"1\n"})
    sync.push(a)
    b = sync.clone(url, "ds", str(tmp_path / "b"))
    version(b, {"two.txt": b"2\n"}, "v2")
    b.create_tag("v1")  # b's v1 names its c2 ...
    c2 = b.head
    b.close()
    a.create_tag("v1")  # ... a's v1 names c1
    c1 = a.head

    # b's push reads the remote's tags only after the pause: "before-tag-update" holds it once it has seen
    # no v1 there, so a's tag lands between b's read and b's compare-and-swap.
    pause = PausePoint(tmp_path, point)
    proc = start_push(tmp_path / "b", pause, "--tags")
    pause.wait(proc)
    try:
        sync.pull(a)  # (at "before-tag-update" b's head has landed already)
        result = sync.push(a, tags=True)
        assert result.tags_pushed == ["v1"]
    finally:
        pause.release()
    code, out, err = finish(proc)
    a.close()
    refs = RefStore(open_backend(url, {}))
    assert refs.get("tags/ds/v1") == c1, "the tag another writer created stays where it was"
    assert refs.get("datasets/ds") == c2, "b's version itself was pushed"
    assert code == 0 and "warning: tag v1 exists on origin at another version; not changed" in err, err
