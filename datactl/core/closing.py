"""Things that hold files, connections or threads, and are closed by ``with``."""

from __future__ import annotations

from typing import Self


class Closing:
    """A base for objects released by ``close()``: ``with obj:`` closes it on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
