"""Parameters in help and usage lines as people write them: ``PATHS...``, ``[REMOTE]``, ``--tag TAG``.

Recent typer prints arguments as ``{paths}...`` and option values as
``<list[str]>``; docs/cli.md and every other command-line tool write
``PATHS...`` and ``--tag TAG``. ``name_parameters`` gives the built command
tree that spelling, once, before it runs.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperOption


def _value_name(param: Any) -> str:
    """An option's value as its help calls it: its metavar, else its long name in capitals (``--keep-last KEEP_LAST``)."""
    if param.metavar:
        return param.metavar
    longest = max(param.opts, key=len).lstrip("-")
    return longest.replace("-", "_").upper()


class NamedArgument(TyperArgument):
    """An argument named in capitals, ``[...]`` when optional, ``...`` when it takes several values."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    @property
    def human_readable_name(self) -> str:  # "Missing argument 'PATHS'" (typer 0.28 would say 'paths')
        return self.display_name_raw

    def _rich_display_name(self) -> str:
        return self.display_name_raw + ("..." if self.nargs != 1 else "")

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the name says what it is; the help line says the rest

    def make_metavar(self, ctx: Any = None, usage: bool = False) -> str:  # click, and typer's usage line (0.28: usage=True)
        return self._usage_display_name()


class NamedOption(TyperOption):
    """An option whose value is named in capitals: ``--tag TAG``, ``--max-count N``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return _value_name(self)

    def make_metavar(self, ctx: Any = None) -> str:
        return _value_name(self)


def name_parameters(command: Any) -> Any:
    """Give every parameter of ``command`` and its sub-commands the spelling above; returns ``command``."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = NamedArgument  # same state, other spelling: no attribute to copy
        elif type(param) is TyperOption and not (param.is_flag or param.count):
            param.__class__ = NamedOption
    for sub in getattr(command, "commands", {}).values():
        name_parameters(sub)
    return command
