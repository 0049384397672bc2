"""A damaged or missing .datactl/index.db or stage.db is named by every command, and `fsck --repair` rebuilds it
(issue 12 items 6 and 7)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from conftest import Cli, snapshot, write


def _flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(0, len(raw), 97):  # every page, header included
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2 + 100])


def _zero_header(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[:100] = b"\0" * 100
    path.write_bytes(bytes(raw))


DAMAGE: dict[str, Callable[[Path], None]] = {"flipped": _flip, "truncated": _truncate, "header zeroed": _zero_header}


def _workspace(cli: Cli, ws_dir: Path) -> None:
    for v in range(2):
        for i in range(30):
            write(ws_dir / "data" / f"{i}.txt", f"version {v} file {i}\n" * 50)
        cli("add", ".") if v else (cli("init", "--name", "ds"), cli("add", "."))
        cli("commit", "-m", f"v{v}")


@pytest.mark.parametrize("db", ["index.db", "stage.db"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_database_is_named_and_fsck_repair_rebuilds_it(cli: Cli, ws_dir: Path, db: str, damage: str) -> None:
    _workspace(cli, ws_dir)
    files = snapshot(ws_dir)
    log = cli("log").out
    path = ws_dir / ".datactl" / db
    DAMAGE[damage](path)

    for args in (["status"], ["log"], ["add", "."], ["verify"], ["checkout", "HEAD~1"], ["fsck"]):
        r = cli(*args, ok=False)
        assert r.code == 1, args
        said = r.err + r.out  # fsck reports what it finds on stdout; the others fail with an error line
        assert str(path) in said and "datactl fsck --repair" in said and "Traceback" not in said, (args, said)
    assert snapshot(ws_dir) == files, "no command changed a file"

    r = cli("fsck", "--repair")
    assert f"repaired: {path}" in r.out and "rebuilt it from" in r.out
    assert cli("log").out == log
    assert cli("verify", "--deep").code == 0
    assert "nothing to commit, workspace clean" in cli("status").out
    assert cli("fsck").code == 0
    assert snapshot(ws_dir) == files


@pytest.mark.parametrize("db", ["index.db", "stage.db"])
def test_a_missing_database_is_rebuilt(cli: Cli, ws_dir: Path, db: str) -> None:
    _workspace(cli, ws_dir)
    log = cli("log").out
    path = ws_dir / ".datactl" / db
    os.unlink(path)
    if db == "stage.db":
        r = cli("status", ok=False)
        assert r.code == 1 and f"{path} is missing" in r.err and "datactl fsck --repair" in r.err
        r = cli("fsck", ok=False)
        assert r.code == 1 and f"{path} is missing" in r.out
    r = cli("fsck", "--repair")
    assert f"repaired: {path}" in r.out or "rebuilt" in r.err  # a missing index is rebuilt when the store opens
    assert cli("log").out == log
    assert cli("verify", "--deep").code == 0
    assert "nothing to commit, workspace clean" in cli("status").out


def test_a_rebuilt_stage_keeps_the_files_and_says_what_was_lost(cli: Cli, ws_dir: Path) -> None:
    _workspace(cli, ws_dir)
    write(ws_dir / "data" / "0.txt", "staged change\n")
    cli("add", ".")
    write(ws_dir / "data" / "1.txt", "unstaged change\n")
    _zero_header(ws_dir / ".datactl" / "stage.db")
    r = cli("fsck", "--repair")
    assert "2 file(s) differ from HEAD" in r.out
    assert "changes that were staged are now changes not staged" in r.err
    st = cli("status").out
    assert "data/0.txt" in st and "data/1.txt" in st
    assert (ws_dir / "data" / "0.txt").read_text() == "staged change\n"
