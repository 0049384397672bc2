"""The ``datactl`` command line: the typer app, its command groups, and the entry point.

Each command parses its arguments, calls one library function and prints the
result; errors are turned into what a user reads by one table
(``datactl.cli.errors``).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import traceback
from typing import Any, Optional

import typer
import typer.main
import typer.models

from datactl import __version__
from datactl.cli import cache, ci, lineage, quickstart, remotes, tables, ui, upkeep, workspace
from datactl.cli.errors import EXIT_INTERRUPTED, describe
from datactl.cli.output import err, out
from datactl.cli.usage import name_parameters
from datactl.core.errors import UsageError

DEBUG_ENV = "DATACTL_DEBUG"

app = typer.Typer(
    name="datactl",
    help="Version datasets and models: content-addressed, deduplicated, verifiable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts mention [sections] and must print as written
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        out.print(f"datactl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Version datasets and models: content-addressed, deduplicated, verifiable."""


# The order here is the order of `datactl --help` and docs/cli.md.
for group in (workspace, tables, remotes, quickstart, cache, lineage, ci, upkeep, ui):
    group.register(app)


class _WarningLines(logging.Handler):
    """What the library logs as a warning (an index rebuilt, a lineage index not updated) as ``warning:`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"warning: {record.getMessage()}", style="yellow")


def _show_warnings() -> None:
    logger = logging.getLogger("datactl")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))


@app.command("help")
def help_cmd(
    ctx: typer.Context,
    command: Optional[list[str]] = typer.Argument(None, help="The command (and sub-command, as in `help remote add`) to explain."),
) -> None:
    """Show the help of a command: `datactl help add` is `datactl add --help`."""
    parent = ctx.find_root()
    cmd = parent.command
    for word in command or []:
        sub = cmd.get_command(parent, word) if hasattr(cmd, "get_command") else None
        if sub is None:
            said = " ".join(["datactl", *parent.command_path.split()[1:], word])
            raise UsageError(f"no command `{said}`", f"`{parent.command_path} --help` lists the commands")
        parent = type(parent)(sub, info_name=word, parent=parent)
        cmd = sub
    sys.stdout.write(cmd.get_help(parent) + "\n")


def _command_name(info: typer.models.CommandInfo) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__ if info.callback else "")


def command(only: str | None = None) -> Any:
    """The command tree, its parameters spelled as docs/cli.md writes them.

    ``only``: the top-level command a command line names; the tree then holds just it (and the root's options).
    Building every command's parameters from its signature costs 20-25 ms that a command running alone does
    not need. A name that is no command, or `help` (which looks the others up), gets the whole tree.
    """
    built = app
    if only is not None and only != "help":
        commands = [c for c in app.registered_commands if _command_name(c) == only]
        groups = [g for g in app.registered_groups if g.name == only]
        if commands or groups:
            built = copy.copy(app)
            built.registered_commands, built.registered_groups = commands, groups
    return name_parameters(typer.main.get_command(built))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (docs/cli.md lists them)."""
    _show_warnings()
    args = sys.argv[1:] if argv is None else argv
    try:
        # Standalone mode prints usage errors and exits with 2 by itself.
        command(only=args[0] if args and not args[0].startswith("-") else None)(args=argv, prog_name="datactl")
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err.print("interrupted; nothing half-written was published")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error reaches the user as one line, via the table
        said = describe(exc)
        if said is None:
            err.print(f"error: internal error: {type(exc).__name__}: {exc}", style="red")
            err.print(f"hint: this is a bug in datactl; run again with {DEBUG_ENV}=1 to see where it happened, and report it")
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            return 1
        err.print(f"error: {said.message}", style="red")
        if said.hint:
            err.print(f"hint: {said.hint}")
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        return said.exit_code
