"""A datactl.toml (or .datactlignore) that is not UTF-8 is one clear error naming the file and the line (issue 12 item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Cli, write


@pytest.mark.parametrize("name", ["datactl.toml", ".datactlignore"])
def test_a_settings_file_that_is_not_utf8_is_named_with_its_line(cli: Cli, ws_dir: Path, name: str) -> None:
    write(ws_dir / "a.txt", "alpha\n")
    cli("init", "--name", "ds")
    path = ws_dir / name
    text = path.read_bytes() if path.exists() else b"# ignored\n*.tmp\n"
    path.write_bytes(text + b"# caf\xe9 in Latin-1\n")
    line = text.count(b"\n") + 1
    for args in (["status"], ["add", "."]) + ((["log"], ["remote", "list"]) if name == "datactl.toml" else ()):
        r = cli(*args, ok=False)
        assert r.code == 2, (args, r.err)
        assert r.err.startswith(f"error: {path}: line {line} is not valid UTF-8"), r.err
        assert "hint: save the file as UTF-8" in r.err and "Traceback" not in r.err
