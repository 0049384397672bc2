"""What people type first: git's habits, --json on every read command, help, exit codes from one table.

In-process through the ``cli`` fixture; about 5 s in all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Cli, write
from datactl.cli.app import command
from datactl.cli.errors import EXIT_CODES
from datactl.core.settings import CONFIG_FILE

# Commands that report without changing anything (or report what they changed): each takes --json.
READ_COMMANDS = (
    "status", "log", "show", "ls", "diff", "tag", "du", "stats", "remote list", "fetch", "pull", "push",
    "datasets", "models", "lineage", "verify", "validate", "gc", "fsck", "squash", "merge", "cache info", "dataset delete",
)


def leaf_commands() -> dict[str, object]:
    found: dict[str, object] = {}

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = cmd

    walk(command(), [])
    return found


@pytest.fixture
def ws(cli: Cli, ws_dir: Path) -> Path:
    """A workspace with two versions (v1, v2) and then: one staged change, one unstaged change, one untracked file."""
    write(ws_dir / "keep.txt", "keep\n")
    write(ws_dir / "data" / "a.csv", "a\n")
    write(ws_dir / "data" / "b.csv", "b\n")
    write(ws_dir / "old.txt", "old\n")
    cli("init", ".", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "one", "-t", "v1")
    write(ws_dir / "data" / "a.csv", "a, changed\n")
    (ws_dir / "old.txt").rename(ws_dir / "moved.txt")
    (ws_dir / "data" / "b.csv").unlink()
    write(ws_dir / "new.bin", b"\x00new")
    cli("add", ".")
    cli("commit", "-m", "two", "-t", "v2")
    write(ws_dir / "staged.txt", "staged\n")
    cli("add", "staged.txt")
    write(ws_dir / "keep.txt", "keep, edited\n")
    write(ws_dir / "untracked.txt", "?\n")
    return ws_dir


# -- git's habits -------------------------------------------------------------------------------


def test_status_short(cli: Cli, ws: Path) -> None:
    write(ws / "staged.txt", "staged, then edited\n")
    for flag in ("-s", "--short"):
        r = cli("status", flag)
        assert r.out.splitlines() == [" M keep.txt", "AM staged.txt", "?? untracked.txt"], r.out
    (ws / "keep.txt").unlink()
    assert " D keep.txt" in cli("status", "-s").out.splitlines()


def test_diff_name_only_and_name_status(cli: Cli, ws: Path) -> None:
    assert cli("diff", "v1", "v2", "--name-only").out.splitlines() == ["data/a.csv", "data/b.csv", "moved.txt", "new.bin"]
    assert cli("diff", "v1", "v2", "--name-status").out.splitlines() == [
        "M\tdata/a.csv", "D\tdata/b.csv", "R\told.txt\tmoved.txt", "A\tnew.bin",
    ]
    assert cli("diff", "--name-only").out.splitlines() == ["keep.txt", "staged.txt", "untracked.txt"]  # HEAD against the files
    r = cli("diff", "v1", "v2", "--name-only", "--stat", ok=False)
    assert r.code == 2 and "only one of" in r.err


def test_help_command_is_command_help(cli: Cli, ws: Path) -> None:
    for words in (["add"], ["remote", "add"], ["cache", "info"], []):
        assert cli("help", *words).out == cli(*words, "--help").out, words
    r = cli("help", "nosuch", ok=False)
    assert r.code == 2 and r.err.startswith("error: no command `datactl nosuch`")
    r = cli("help", "remote", "nosuch", ok=False)
    assert r.code == 2 and "`datactl remote nosuch`" in r.err


def test_usage_lines_name_parameters_as_people_write_them(cli: Cli, ws: Path) -> None:
    assert cli("add", "--help").out.startswith("Usage: datactl add [OPTIONS] PATHS...\n")
    assert cli("rm", "--help").out.startswith("Usage: datactl rm [OPTIONS] PATHS...\n")
    assert cli("pull", "--help").out.startswith("Usage: datactl pull [OPTIONS] [REMOTE] [PATHS]...\n")
    assert cli("clone", "--help").out.startswith("Usage: datactl clone [OPTIONS] URL DATASET [DIRECTORY]\n")
    commit = cli("commit", "--help").out
    assert "-t, --tag TAG " in commit and "--meta KEY=VALUE " in commit and "--input REF " in commit
    for name in leaf_commands():
        text = cli(*name.split(), "--help").out
        for bad in ("{", "<str>", "<int>", "<float>", "<list["):
            assert bad not in text.split("\n\n", 1)[0] + "".join(line for line in text.splitlines() if line.startswith("  -")), (name, bad, text)
    r = cli("add", ok=False)
    assert r.code == 2 and "Missing argument 'PATHS'" in r.err


# -- --json on every read command -------------------------------------------------------------------


def test_every_read_command_takes_json() -> None:
    commands = leaf_commands()
    for name in READ_COMMANDS:
        opts = {o for p in commands[name].params for o in getattr(p, "opts", ())}  # type: ignore[attr-defined]
        assert "--json" in opts, f"datactl {name} has no --json"


def test_lineage_and_validate_json(cli: Cli, ws: Path) -> None:
    graph = json.loads(cli("lineage", "v2", "--json").out)
    assert json.loads(cli("lineage", "v2", "--format", "json").out) == graph
    v1 = json.loads(cli("log", "v1", "--json").out)[0]["id"]
    assert v1 in json.dumps(graph)
    rules = ws / "rules.toml"
    rules.write_text('[[validate.rules]]\nname = "some files"\ntype = "count"\nmin = 1\n')
    report = json.loads(cli("validate", "v2", "--rules", str(rules), "--json").out)
    assert report["ok"] and report["rules"][0]["status"] == "passed"


# -- exit codes: one table ------------------------------------------------------------------------------


WRONG_REF = (
    ("show", "nosuchref"), ("log", "nosuchref"), ("ls", "nosuchref"), ("ls", "nosuchref", "data"), ("diff", "nosuchref"),
    ("diff", "v1", "nosuchref"), ("checkout", "nosuchref"), ("du", "nosuchref"), ("tag", "t", "nosuchref"),
    ("lineage", "nosuchref"), ("verify", "nosuchref"), ("merge", "nosuchref"),
)


def test_exit_codes(cli: Cli, ws: Path, tmp_path: Path) -> None:
    documented = {code for code, _ in EXIT_CODES}
    for argv in WRONG_REF:
        r = cli(*argv, ok=False)
        assert r.code == 1 and r.err.startswith("error: "), (argv, r)
    r = cli("ls", "v2", "nosuch/path", ok=False)
    assert r.code == 1 and "nosuch/path is not in version" in r.err
    assert cli("ls", "data").out.split()[-1] == "data/a.csv"  # one argument, not a ref: a path
    for name in leaf_commands():  # a flag no command has
        r = cli(*name.split(), "--no-such-flag", ok=False)
        assert r.code == 2, (name, r)
    outside = tmp_path / "outside"
    outside.mkdir()
    for argv in (("status",), ("verify",), ("log",), ("ls",), ("push",), ("lineage",), ("datasets",)):
        r = cli(*argv, ok=False, cwd=outside)
        assert r.code == 1 and "not in a datactl workspace" in r.err.replace("not a datactl workspace", "not in a datactl workspace"), (argv, r)
    assert {1, 2} <= documented


# -- remotes only where a backend exists -------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://host/store", "hdfs://namenode/store", "sftp://host/store"])
def test_remote_add_refuses_a_scheme_no_backend_serves(cli: Cli, ws: Path, url: str) -> None:
    before = (ws / CONFIG_FILE).read_text()
    r = cli("remote", "add", "elsewhere", url, ok=False)
    assert r.code == 2, r
    scheme = url.split("://")[0]
    assert r.err.startswith(f"error: datactl cannot store data at {scheme}:// URLs")
    assert "hint: " in r.err and "s3://" in r.err and "gs://" in r.err
    assert (ws / CONFIG_FILE).read_text() == before
    r = cli("push", url, ok=False)
    assert r.code == 2 and "cannot store data at" in r.err and "Traceback" not in r.err
    r = cli("clone", url, "ds", str(ws.parent / "dest"), ok=False)
    assert r.code == 2 and "cannot store data at" in r.err and not (ws.parent / "dest").exists()
    cli("remote", "add", "fine", "s3://bucket/prefix")  # the schemes that work are still accepted
