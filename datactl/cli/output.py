"""Printing for the CLI: rich on a terminal, plain text or JSON otherwise.

rich is imported only when something needs it (a terminal, a table, styled
text, a progress bar): it is about 35 ms of every command's start-up, and
output read by a script or CI is plain lines.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, Iterable, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

_FORCING_RICH = ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE")  # rich styles output that is not a terminal when set


class Printer:
    """stdout or stderr: plain strings written as they are when it is not a terminal, anything else through rich."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._stderr else sys.stdout  # looked up each time: tests and callers swap them

    @property
    def plain(self) -> bool:
        """Whether rich would print plain text here: not a terminal, and no variable asking for colour anyway."""
        return not self.stream.isatty() and not any(os.environ.get(name) for name in _FORCING_RICH)

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # markup and emoji off: file names and messages may contain "[...]" or ":name:" and print as they are.
            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)
        return self._console

    def print(self, *objects: Any, style: str | None = None) -> None:
        """Print like rich's ``Console.print`` (``style`` applies on a terminal only)."""
        if self.plain and all(isinstance(o, str) for o in objects):
            self.stream.write(" ".join(objects) + "\n")
            return
        self.console.print(*objects, style=style)

    def print_spans(self, *spans: tuple[str, str | None]) -> None:
        """One line of (text, style) spans: styled on a terminal, the texts joined elsewhere."""
        if self.plain:
            self.stream.write("".join(text for text, _ in spans) + "\n")
            return
        from rich.text import Text

        self.console.print(Text.assemble(*((text, style or "") for text, style in spans)))

    def rule(self, title: str = "") -> None:
        self.console.rule(title)


out = Printer()
err = Printer(stderr=True)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def emit_json_array(items: Iterable[Any]) -> None:
    """A JSON array written as its items come (one per line), so a listing of any length needs no memory for it."""
    sys.stdout.write("[")
    for i, item in enumerate(items):
        sys.stdout.write(("\n  " if i == 0 else ",\n  ") + json.dumps(item, ensure_ascii=False))
    sys.stdout.write("\n]\n")


def print_lines(lines: Iterable[str]) -> None:
    """Plain lines as they come: through rich on a terminal, else written as they are (rich costs 0.1 ms a line)."""
    if not out.plain:
        for line in lines:
            out.print(line)
        return
    sys.stdout.writelines(line + "\n" for line in lines)


class RichProgress:
    """A transient byte-progress bar on stderr, drawn only when stdout and stderr are terminals."""

    def __init__(self) -> None:
        self.enabled = sys.stdout.isatty() and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._task: Any = None

    def start(self, description: str, total: int | None) -> None:
        if not self.enabled:
            return
        self.stop()
        from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
