"""What ``status`` reports: the staged changes, the unstaged ones, untracked files and problems met."""

from __future__ import annotations

from dataclasses import dataclass, field

from datactl.workspace.scan import ScanProblem
from datactl.workspace.stage import StageRow


@dataclass(frozen=True)
class PathChange:
    """One path that differs between two states."""

    path: str
    change: str  # "added", "modified", "deleted", "source changed" (an external file's source moved on)
    size: int = 0

    @classmethod
    def of_staged_row(cls, row: StageRow) -> "PathChange":
        """The change a stage row that differs from HEAD's entry stages."""
        if row.entry is None:
            return cls(row.path, "deleted", row.head.size if row.head else 0)
        return cls(row.path, "added" if row.head is None else "modified", row.entry.size)


@dataclass
class Status:
    head: str | None
    latest: str | None = None  # the dataset's latest version, when HEAD is an older one
    staged: list[PathChange] = field(default_factory=list)
    unstaged: list[PathChange] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    interrupted: str | None = None  # a checkout of this version was cut short; checking it out again finishes it

    @property
    def clean(self) -> bool:
        """No staged and no unstaged change (untracked files do not count)."""
        return not self.staged and not self.unstaged
