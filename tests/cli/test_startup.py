"""Start-up: a command imports what it needs. A status, log, diff or listing read by a script loads no terminal
rendering (rich), no chunker (pyfastcdc), no TOML editor (tomlkit), no validation rules or table engines and, with
no ``.datactlignore`` patterns, no gitignore matcher (pathspec), no add workers: together 60-130 ms of such a command
before. A commit that leaves few small packs does not load the pack merge (gc's planning: 10-20 ms)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Cli, write
from datactl.cli.app import command

NOT_AT_START_UP = (
    "rich", "pyfastcdc", "tomlkit", "pathspec", "datactl.validation", "datactl.tables", "datactl.workspace.addworkers", "datactl.upkeep.consolidate",
)
PROBE = (
    "import sys; from datactl.cli.app import main; code = main(sys.argv[1:]); "
    f"print(sorted({{p for p in {NOT_AT_START_UP!r} for m in sys.modules if m == p or m.startswith(p + '.')}})); sys.exit(code)"
)


def _imported(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE")}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.rstrip().splitlines()[-1]


def test_read_commands_import_only_what_they_need(cli: Cli, ws_dir: Path) -> None:
    cli("init", ".", "--name", "ds")
    write(ws_dir / "a.csv", b"x\n1\n")
    cli("add", ".")
    cli("commit", "-m", "one")
    write(ws_dir / "a.csv", b"x\n2\n")
    for args in (["status"], ["log"], ["diff"], ["ls", "-r"], ["status", "--json"]):
        assert _imported(args, ws_dir) == "[]", args
    assert _imported(["add", "a.csv"], ws_dir) == "['datactl.workspace.addworkers', 'pyfastcdc']"  # storing a file cuts it
    assert _imported(["commit", "-m", "two"], ws_dir) == "[]"  # no [validate] on_commit: no rules to load
    write(ws_dir / ".datactlignore", b"# comments alone match nothing\n")
    assert _imported(["status"], ws_dir) == "[]"
    write(ws_dir / ".datactlignore", b"*.tmp\n")
    assert _imported(["status"], ws_dir) == "['pathspec']"  # patterns to match: now it is needed


def _printed(tree: Any, args: list[str]) -> str:
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        try:
            tree(args=args, prog_name="datactl")
        except SystemExit:
            pass
    return printed.getvalue()


def test_a_command_built_alone_helps_as_it_does_in_the_whole_tree() -> None:
    # A command line builds only the command it names; its help, usage and parameters must be those of the whole tree.
    whole = command()
    names = list(whole.commands)
    assert len(names) > 30 and "add" in names and "remote" in names
    for name in names:
        alone = command(only=name)
        assert list(alone.commands) == ([name] if name != "help" else names)
        assert _printed(alone, [name, "--help"]) == _printed(whole, [name, "--help"]), name
    assert _printed(command(only="remote"), ["remote", "add", "--help"]) == _printed(whole, ["remote", "add", "--help"])
    assert list(command(only="no-such-command").commands) == names  # click's own error, with the whole list to suggest from
