"""A full disk during `add` is one line saying so, where, and that nothing was lost (issue 12 item 8)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Cli, snapshot, write
from fulldisk import small_disk


def test_add_on_a_full_disk_says_so_and_loses_nothing(cli: Cli, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "3m") as disk:
        ws = disk / "ws"
        write(ws / "small.txt", "small\n")
        cli("init", "--name", "ds", cwd=ws)
        cli("add", ".", cwd=ws)
        cli("commit", "-m", "v1", cwd=ws)
        log = cli("log", cwd=ws).out
        write(ws / "big.bin", os.urandom(2_000_000))  # fits on the disk, but not twice (the file and its pack)
        files = snapshot(ws)

        r = cli("add", ".", ok=False, cwd=ws)
        assert r.code == 3
        lines = [line for line in r.err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "the disk is full" in lines[0] and str(ws / ".datactl") in lines[0], r.err
        assert "nothing was lost" in r.err and "Traceback" not in r.err
        assert snapshot(ws) == files
        assert "writing a pack" in lines[0]
        tmp = ws / ".datactl" / "store" / "tmp"
        assert os.listdir(tmp) == [], "the cut pack is gone"
        assert cli("log", cwd=ws).out == log
        assert "big.bin" in cli("status", cwd=ws).out  # still just untracked
        assert cli("fsck", cwd=ws).code == 0

        os.unlink(ws / "big.bin")  # space freed: the next command works
        write(ws / "more.txt", "more\n")
        cli("add", ".", cwd=ws)
        cli("commit", "-m", "v2", cwd=ws)
        assert cli("verify", "--deep", cwd=ws).code == 0
