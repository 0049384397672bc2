"""Write docs/cli.md from the typer app, so the CLI reference never drifts from the code.

Usage::

    python docs/generate_cli_reference.py            # rewrite docs/cli.md
    python docs/generate_cli_reference.py --check    # exit 1 if docs/cli.md is stale

The output depends only on the command tree (names, help texts, parameters):
no terminal width, no colours, no rich boxes. Types are derived from the
parameters' Python annotations (typer >= 0.25 keeps them on
``type_descriptor``) or from click's ``ParamType`` (older typer), and are
spelled the same way in both cases.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "cli.md")
PROG = "datactl"

# click ParamType names and Python annotations, spelled one way.
# Click's type names, and the shorter ones typer 0.28's own click copy uses ("str", "int", "int range").
_CLICK_TYPE_NAMES = {
    "text": "TEXT", "integer": "INTEGER", "float": "FLOAT", "boolean": "BOOLEAN", "path": "PATH",
    "str": "TEXT", "int": "INTEGER", "int range": "INTEGER", "integer range": "INTEGER", "bool": "BOOLEAN",
}
_PY_TYPE_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


def _import_app() -> Any:
    root = os.path.dirname(HERE)
    if root not in sys.path:
        sys.path.insert(0, root)
    from datactl.cli.app import app

    return app


def _exit_codes() -> tuple[tuple[int, str], ...]:
    from datactl.cli.errors import EXIT_CODES

    return EXIT_CODES


def _root_command(app: Any) -> Any:
    import typer.main

    return typer.main.get_command(app)


# -- reading the command tree ------------------------------------------------------


def _help_text(text: str | None) -> str:
    """Click's help conventions: text after \\f is hidden, a line holding only \\b is a marker."""
    if not text:
        return ""
    text = inspect.cleandoc(text.split("\f", 1)[0])
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def _is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False)) and not getattr(param, "count", False)


def _repeatable(param: Any) -> bool:
    return bool(getattr(param, "multiple", False)) or getattr(param, "nargs", 1) == -1


def _type_name(param: Any) -> str:
    if _is_flag(param):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        annotation = descriptor.annotation
        args = getattr(annotation, "__args__", None)
        if getattr(annotation, "__origin__", None) in (list, tuple) and args:
            annotation = args[0]
        if annotation in _PY_TYPE_NAMES:
            name = _PY_TYPE_NAMES[annotation]
        else:
            name = getattr(annotation, "__name__", str(annotation)).upper()
    else:
        ptype = getattr(param, "type", None)
        raw = getattr(ptype, "name", None) or type(ptype).__name__
        name = _CLICK_TYPE_NAMES.get(raw.lower(), raw.upper())
    return f"{name}, repeatable" if _repeatable(param) else name


def _default(param: Any) -> str:
    if getattr(param, "required", False):
        return "required"
    if _is_flag(param):
        return "off" if not param.default else "on"
    value = param.default
    if value is None or value == () or value == []:
        return ""
    if callable(value):
        return "(computed)"
    return f"`{value!r}`" if value == "" else f"`{value}`"


def _metavar(param: Any) -> str:
    name = (getattr(param, "metavar", None) or param.name).upper()
    return f"{name}..." if getattr(param, "nargs", 1) == -1 else name


def _usage(path: list[str], cmd: Any) -> str:
    pieces = [*path, "[OPTIONS]"]
    if hasattr(cmd, "commands"):
        pieces.append("COMMAND [ARGS]...")
    for param in cmd.params:
        if _kind(param) != "argument" or getattr(param, "hidden", False):
            continue
        pieces.append(_metavar(param) if param.required else f"[{_metavar(param)}]")
    return " ".join(pieces)


def _kind(param: Any) -> str:
    return getattr(param, "param_type_name", "")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _commands(cmd: Any) -> list[tuple[str, Any]]:
    """Sub-commands in the order they were registered (typer keeps that order)."""
    return [(name, sub) for name, sub in getattr(cmd, "commands", {}).items() if not getattr(sub, "hidden", False)]


def _anchor(path: list[str]) -> str:
    return "-".join(path).lower()


# -- rendering ---------------------------------------------------------------------


def _param_tables(cmd: Any, help_names: list[str], include_help: bool) -> Iterator[str]:
    arguments = [p for p in cmd.params if _kind(p) == "argument" and not getattr(p, "hidden", False)]
    options = [p for p in cmd.params if _kind(p) == "option" and not getattr(p, "hidden", False)]
    if arguments:
        yield "**Arguments**"
        yield ""
        yield "| Argument | Type | Default | Description |"
        yield "| --- | --- | --- | --- |"
        for p in arguments:
            yield f"| `{_metavar(p)}` | {_type_name(p)} | {_default(p)} | {_cell(_help_text(getattr(p, 'help', None)))} |"
        yield ""
    if options or include_help:
        yield "**Options**"
        yield ""
        yield "| Option | Type | Default | Description |"
        yield "| --- | --- | --- | --- |"
        for p in options:
            names = ", ".join(f"`{o}`" for o in [*p.opts, *getattr(p, "secondary_opts", [])])
            yield f"| {names} | {_type_name(p)} | {_default(p)} | {_cell(_help_text(getattr(p, 'help', None)))} |"
        if include_help:
            names = ", ".join(f"`{o}`" for o in help_names)
            yield f"| {names} | flag | off | Show the command's help and exit. |"
        yield ""


def _render_command(path: list[str], cmd: Any, help_names: list[str], depth: int) -> Iterator[str]:
    yield f"{'#' * depth} {' '.join(path)}"
    yield ""
    yield "```"
    yield _usage(path, cmd)
    yield "```"
    yield ""
    text = _help_text(cmd.help)
    if text:
        yield text
        yield ""
    yield from _param_tables(cmd, help_names, include_help=depth == 2 and len(path) == 1)
    subs = _commands(cmd)
    if subs:
        yield "**Commands**"
        yield ""
        yield "| Command | Summary |"
        yield "| --- | --- |"
        for name, sub in subs:
            first = _help_text(sub.short_help or sub.help).split("\n\n", 1)[0]
            yield f"| [`{name}`](#{_anchor([*path, name])}) | {_cell(first)} |"
        yield ""
        for name, sub in subs:
            yield from _render_command([*path, name], sub, help_names, 2)


def render() -> str:
    """The full text of docs/cli.md."""
    root = _root_command(_import_app())
    settings = getattr(root, "context_settings", None) or {}
    help_names = list(settings.get("help_option_names", ["--help"]))
    lines = [
        "# CLI reference",
        "",
        "<!-- Generated by docs/generate_cli_reference.py from datactl.cli.app. Do not edit by hand. -->",
        "",
        "This page is generated from the typer application in `datactl/cli/app.py`.",
        "After changing a command, run `python docs/generate_cli_reference.py`;",
        "`tests/test_docs.py` fails while this page is out of date.",
        "",
        f"Every command accepts {' and '.join(f'`{n}`' for n in help_names)} to print its help.",
        "A REF argument accepts the forms described in [concepts.md](concepts.md#refs-naming-a-version).",
        "Every error is one line on stderr starting with `error:` (what is wrong, and where), usually followed by",
        "a `hint:` line (what to do); no command prints a traceback unless `DATACTL_DEBUG=1` is set.",
        "What each command leaves behind when it fails half-way (a crash, a full disk, damaged data), and what it",
        "trusts and checks, is in [security.md](security.md).",
        "Row-level diffs of tables (`diff A B PATH`, `--rows`, `--key`), `stats` and row merges are explained in [tables.md](tables.md).",
        "",
        "## Exit codes",
        "",
        "The same for every command (from `datactl/cli/errors.py`):",
        "",
        "| code | meaning |",
        "| --- | --- |",
        *(f"| {code} | {meaning} |" for code, meaning in _exit_codes()),
        "",
    ]
    lines += list(_render_command([PROG], root, help_names, 2))
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        try:
            with open(OUTPUT, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{OUTPUT} is out of date; run `python docs/generate_cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
