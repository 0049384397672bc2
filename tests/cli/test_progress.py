"""Progress bars know their totals: add (bytes to read), push (bytes to send), pull, clone, checkout (bytes to fetch and write).

The library is driven with a reporter that records what it is told (the
ProgressReporter protocol training code implements too); the CLI is run on a
pseudo-terminal, where its bar draws, and on a pipe, where it does not. A
local store; about 5 s.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import Cli, age_files, on_a_terminal, write
from datactl.remote.locate import add_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace


@dataclass
class Bar:
    description: str
    total: int | None
    done: int = 0


@dataclass
class Recorder:
    """Records every bar started and what it was advanced by."""

    enabled: bool = True
    bars: list[Bar] = field(default_factory=list)

    def start(self, description: str, total: int | None) -> None:
        self.bars.append(Bar(description, total))

    def advance(self, amount: int) -> None:
        assert self.bars, "advanced before a bar was started"
        self.bars[-1].done += amount

    def stop(self) -> None:
        pass

    def only(self, prefix: str) -> Bar:
        found = [b for b in self.bars if b.description.startswith(prefix)]
        assert len(found) == 1, self.bars
        return found[0]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_add_push_pull_clone_and_checkout_bars_have_totals(env: Path) -> None:
    src = env / "src"
    sizes = {f"data/{i}.bin": 30_000 + 7_000 * i for i in range(8)}
    for path, size in sizes.items():
        write(src / path, os.urandom(size))
    age_files(src)  # files written a while ago: the stat cache can vouch for them
    ws = Workspace.init(str(src), name="ds")
    add_remote(ws.root, "origin", str(env / "store"), {})

    p = Recorder()
    ws.add([str(src)], progress=p)
    assert p.only("adding").total == sum(sizes.values()) == p.only("adding").done
    ws.commit("v1", tags=["v1"])
    write(src / "data" / "3.bin", os.urandom(50_000))
    p = Recorder()
    ws.add([str(src)], progress=p)
    assert p.only("adding").total == 50_000 == p.only("adding").done  # only what the stat cache cannot vouch for
    ws.commit("v2")

    p = Recorder()
    sync.push(ws, tags=True, progress=p)
    push = p.only("push to")
    assert push.total is not None and push.total > sum(sizes.values()) // 2 and push.done == push.total
    ws.close()

    p = Recorder()
    clone = sync.clone(str(env / "store"), "ds", str(env / "clone"), progress=p)
    download, write_out = p.only("pull from"), p.only("checkout")
    assert download.total is not None and download.done == download.total > 0
    assert write_out.total == sum(sizes.values()) - sizes["data/3.bin"] + 50_000 == write_out.done

    p = Recorder()
    sync.checkout(clone, "v1", progress=p)  # v1's 3.bin was never downloaded
    assert p.only("download from").total == p.only("download from").done > 0
    assert p.only("checkout").total == sizes["data/3.bin"] == p.only("checkout").done
    clone.close()


def test_the_cli_draws_totals_on_a_terminal_and_nothing_on_a_pipe(env: Path, cli: Cli, ws_dir: Path) -> None:
    for i in range(4):
        write(ws_dir / f"{i}.bin", os.urandom(512 * 1024))
    cli("init", ".", "--name", "ds")
    cli("remote", "add", "origin", str(env / "store"))
    screen = on_a_terminal(["add", "."], ws_dir)
    assert re.search(r"adding .* 0\.0/2\.0 MiB", screen), screen  # the total, before the first byte is read
    assert re.search(r"2\.0/2\.0 MiB .* \d+:\d\d:\d\d", screen), screen  # and the time left
    cli("commit", "-m", "v1")
    screen = on_a_terminal(["push"], ws_dir)
    assert re.search(r"push to origin .*/2\.0 MiB", screen), screen
    write(ws_dir / "more.bin", os.urandom(1000))
    r = cli("add", ".")  # not a terminal: no bar, only the summary
    assert r.err == "" and r.out.startswith("staged 1 added")


def test_a_big_files_chunk_list_is_fetched_for_the_total_without_moving_any_bar(env: Path) -> None:
    # More than 256 chunks: the file's chunks are named by a chunk list, fetched first to learn the total.
    src = env / "src"
    big = os.urandom(30 * 1024 * 1024)
    write(src / "big.bin", big)
    write(src / "small.txt", b"x" * 5000)
    ws = Workspace.init(str(src), name="ds")
    add_remote(ws.root, "origin", str(env / "store"), {})
    ws.add([str(src)])
    ws.commit("v1", tags=["v1"])
    (src / "big.bin").unlink()
    ws.add([str(src)])
    ws.commit("v2")
    sync.push(ws, tags=True)
    ws.close()

    clone = sync.clone(str(env / "store"), "ds", str(env / "clone"))  # v2: the big file's data stays behind
    p = Recorder()  # no bar yet: the chunk list's download must not advance one (the Recorder refuses)
    sync.checkout(clone, "v1", progress=p)
    download = p.only("download from")
    assert download.total is not None and download.done == download.total >= len(big) * 0.99
    assert (env / "clone" / "big.bin").read_bytes() == big
    clone.close()
