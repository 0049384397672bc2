"""Progress reporting, decoupled from any display.

Library calls take a ``ProgressReporter``; the CLI passes one that draws a
rich bar (only on a terminal), training code may pass a tqdm one, and the
default draws nothing.
"""

from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def start(self, description: str, total: int | None) -> None: ...

    def advance(self, amount: int) -> None: ...

    def stop(self) -> None: ...


def draws(progress: ProgressReporter) -> bool:
    """Whether ``progress`` shows anything (``enabled``; a reporter without it does): work done only for a total is skipped when not."""
    return bool(getattr(progress, "enabled", True))


class NullProgress:
    """Reports nothing."""

    enabled = False

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def stop(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar on stderr, for library use outside the CLI."""

    enabled = True

    def __init__(self) -> None:
        self._bar = None

    def start(self, description: str, total: int | None) -> None:
        from tqdm.auto import tqdm

        self.stop()
        self._bar = tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024, leave=False)

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.update(amount)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
