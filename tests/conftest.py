"""Shared fixtures: a CLI runner that behaves like a user's terminal session, and file helpers."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pty
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from datactl.cli.app import main
from datactl.format.pack import ObjectType
from datactl.lineage.index import record_local_commit
from datactl.workspace.workspace import Workspace

# Session fixtures that start the S3 (moto) and GCS (fake-gcs-server) servers on 127.0.0.1.
pytest_plugins = ["servers"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run modules with a ``heavy`` test first (in collection order), then the others by their number of tests,
    most first.

    The run spreads whole modules over the workers (``--dist loadscope``); a module that takes minutes and starts
    last would finish the run alone, one core idle. ``--no-loadscope-reorder`` keeps this order.
    """
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    def rank(tests: list[pytest.Item]) -> tuple[int, int]:
        return (0, 0) if any(t.get_closest_marker("heavy") for t in tests) else (1, -len(tests))

    ordered = sorted(modules.values(), key=rank)
    items[:] = [item for tests in ordered for item in tests]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


class Cli:
    """Runs ``datactl ARGS`` in-process, in a given folder, capturing what a user would see."""

    def __init__(self, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
        self._capsys = capsys
        self._monkeypatch = monkeypatch
        self.cwd = cwd

    def __call__(self, *args: str, ok: bool = True, cwd: Path | None = None) -> CliResult:
        self._capsys.readouterr()
        self._monkeypatch.chdir(cwd or self.cwd)
        code = main(list(args))
        captured = self._capsys.readouterr()
        result = CliResult(code, captured.out, captured.err)
        if ok and code != 0:
            raise AssertionError(f"datactl {' '.join(args)} exited {code}\nstdout: {result.out}\nstderr: {result.err}")
        return result


def on_a_terminal(args: list[str], cwd: Path, keep_styles: bool = False) -> str:
    """datactl ARGS with stdout and stderr on a pseudo-terminal; what it wrote there (styles removed unless kept)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "datactl", *args], cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 0, b"".join(chunks)
    screen = b"".join(chunks).decode(errors="replace")
    return screen if keep_styles else re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)


@pytest.fixture
def ws_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ws"
    d.mkdir()
    return d


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, ws_dir: Path) -> Cli:
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    return Cli(capsys, monkeypatch, ws_dir)


@pytest.fixture
def two_versions(cli: Cli, ws_dir: Path) -> tuple[str, str]:
    """A workspace of the dataset ``long`` with two versions made by `add` + `commit` (a.txt "first", then
    "last"; b.txt "kept" in both): their ids, oldest first, the ends ``build_chain`` puts a long history between."""
    cli("init", "--name", "long")
    write(ws_dir / "a.txt", b"first\n")
    write(ws_dir / "b.txt", b"kept\n")
    cli("add", ".")
    cli("commit", "-m", "version 1")
    write(ws_dir / "a.txt", b"last\n")
    cli("add", "a.txt")
    cli("commit", "-m", "version 2")
    with Workspace.open(str(ws_dir)) as ws:
        return ws.resolve("HEAD~1"), ws.head  # type: ignore[return-value]


def snapshot(root: Path) -> dict[str, tuple]:
    """Independent picture of a folder: path -> (kind, permission bits, sha256 or link target).

    Uses hashlib, not datactl's own hashing, so a datactl bug cannot hide itself.
    """
    result: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".datactl"]
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in ("datactl.toml", ".datactlignore"):
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                result[rel] = ("file", stat.S_IMODE(st.st_mode), h.hexdigest())
    return result


def write(path: Path, data: bytes | str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)


def age_files(root: Path, seconds: float = 10.0) -> None:
    """Move every mtime into the past, as if the files were written a while ago."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".datactl"]
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if not stat.S_ISLNK(st.st_mode):
                past = st.st_mtime_ns - int(seconds * 1e9)
                os.utime(full, ns=(past, past))


def run_datactl(args: list[str], cwd: Path, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """datactl as a separate process (for kills and memory measurements), with ``env`` added to the environment."""
    env = {**os.environ, "DATACTL_AUTHOR": "Test <test@example.com>", **(env or {})}
    return subprocess.run([sys.executable, "-m", "datactl", *args], cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


def build_chain(ws: Workspace, versions: int, first: str, last: str) -> list[str]:
    """Append ``versions - 2`` commits between the workspace's two real versions' trees; return every id, oldest first.

    The workspace holds two versions (``first`` and ``last``, made by `add` + `commit`); the chain copies the
    first one's tree into versions 2 .. versions-1 and ends with the last one's, all written as commit objects in
    one flush (one pack), the ref moved once, so thousands of versions cost about a second.
    """
    repo = ws.repo
    c_first, c_last = repo.read_commit(first), repo.read_commit(last)
    ids = [first]
    for n in range(2, versions + 1):
        tree = c_last.tree if n == versions else c_first.tree
        c = dataclasses.replace(c_last, tree=tree, parents=(ids[-1],), message=f"version {n}", time=f"2024-01-01T00:00:00.{n:06d}+00:00")
        ids.append(repo.put(ObjectType.COMMIT, c.encode()))
    repo.flush()
    repo.refs.update(ws.head_ref, ids[-1], expected=last)
    ws.stage.finish_commit(ids[-1])
    record_local_commit(repo, ids[-1])
    return ids
