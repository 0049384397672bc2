"""What a rule may use beyond the version's own files: the version it is compared with, and a cache folder.

The engine hands every rule one ``RunContext`` before the listing (``Rule.start``).
The version compared with is the one the source names (``validate --base``),
else the validated version's first parent; it is read through the same reader
as the version itself, and only when a rule asks for it, so rules that never
compare cost nothing more. Which files were renamed since the base is what
``datactl diff`` says (``store.diff``), asked once, when a rule first needs it.
"""

from __future__ import annotations

from datactl.core.errors import ObjectMissing
from datactl.store.diff import RENAMED, diff_trees
from datactl.store.source import VersionSource


class RunContext:
    """The base version (lazily opened) and the cache folder of one validation run."""

    def __init__(self, source: VersionSource) -> None:
        self.source = source
        self.cache_dir = source.cache_dir
        self._opened = False
        self._base: VersionSource | None = None
        self._no_base = ""
        self._renamed: dict[str, str] | None = None  # path in this version -> its path in the base

    def base(self) -> VersionSource | None:
        """The version to compare with, or None (``no_base`` says why). Call it from the listing thread, not workers."""
        if not self._opened:
            self._opened = True
            self._base, self._no_base = self._open_base()
        return self._base

    @property
    def no_base(self) -> str:
        """Why there is no version to compare with, as a sentence fragment ("9f2c3a1b4d5e has no parent")."""
        self.base()
        return self._no_base

    def renamed_from(self, path: str) -> str | None:
        """The path in the base of the file renamed to ``path`` since, or None. Call it from the listing thread, not workers.

        The changes between the two trees are read once, on the first call, and cost what changed.
        """
        base = self.base()
        if base is None:
            return None
        if self._renamed is None:
            changes = diff_trees(self.source.reader, base.tree_id, self.source.tree_id).changes
            self._renamed = {c.path: c.old_path for c in changes if c.status == RENAMED and c.old_path is not None}
        return self._renamed.get(path)

    def _open_base(self) -> tuple[VersionSource | None, str]:
        src = self.source
        if src.base_id is not None:
            return src.other(src.base_id, f"base {src.base_id[:12]}"), ""
        if src.commit_id is None:
            return None, f"{src.label} is not a committed version"
        parents = src.parents()
        if not parents:
            return None, f"{src.commit_id[:12]} has no parent"
        try:
            return src.other(parents[0], f"parent {parents[0][:12]}"), ""
        except ObjectMissing:  # a shallow clone's history stops at its cut
            return None, f"its parent {parents[0][:12]} is not in this store (a shallow clone?)"

    def close(self) -> None:
        if self._base is not None:
            self._base.close()
            self._base = None
