"""What the CLI prints: names exactly as they are, styles on a terminal only, and no rich where nothing needs it.

Output on a pipe is plain text written as it is (a script or CI reads it);
on a terminal it goes through rich, with colours. Either way a file name with
``[...]`` or ``:name:`` in it is not taken for markup or an emoji code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Cli, age_files, on_a_terminal, write

ODD_NAME = ":smile: [red]x[/red].txt"


def _workspace_with_odd_name(cli: Cli, ws_dir: Path) -> None:
    cli("init", ".", "--name", "ds")
    write(ws_dir / ODD_NAME, b"one\n")
    cli("add", ".")
    cli("commit", "-m", ":tada: first [v1]")
    write(ws_dir / ODD_NAME, b"two\n")
    age_files(ws_dir)


def test_names_print_as_they_are_on_a_pipe_and_on_a_terminal(cli: Cli, ws_dir: Path) -> None:
    _workspace_with_odd_name(cli, ws_dir)
    assert f"modified: {ODD_NAME}" in cli("status").out
    assert f"M  {ODD_NAME} (4 B -> 4 B)" in cli("diff").out
    assert ":tada: first [v1]" in cli("log", "--oneline").out
    screen = on_a_terminal(["status"], ws_dir)
    assert f"modified: {ODD_NAME}" in screen, screen
    screen = on_a_terminal(["log", "--oneline"], ws_dir)
    assert ":tada: first [v1]" in screen, screen


def test_styles_reach_a_terminal_and_not_a_pipe(cli: Cli, ws_dir: Path) -> None:
    _workspace_with_odd_name(cli, ws_dir)
    assert "\x1b[" in on_a_terminal(["status"], ws_dir, keep_styles=True)
    assert "\x1b[" not in cli("status").out
    forced = subprocess.run([sys.executable, "-m", "datactl", "status"], cwd=ws_dir, capture_output=True, text=True, env={**os.environ, "FORCE_COLOR": "1"})
    assert forced.returncode == 0, forced.stderr
    assert "\x1b[" in forced.stdout and ODD_NAME in forced.stdout  # the variable rich honours still colours a pipe

