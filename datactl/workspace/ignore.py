"""Which workspace paths are never tracked: ``.datactlignore`` (gitignore syntax) plus our own files."""

from __future__ import annotations

import os

from datactl.core.safepath import METADATA_DIR, TEMP_SUFFIX
from datactl.core.settings import CONFIG_FILE, IGNORE_FILE, read_text

ALWAYS_IGNORED = (f"{METADATA_DIR}/", CONFIG_FILE, IGNORE_FILE, f"*{TEMP_SUFFIX}")  # as gitignore patterns, for the docs


class IgnoreRules:
    """Matches workspace-relative '/'-separated paths against datactl's own files and ``.datactlignore``.

    datactl's own files (ALWAYS_IGNORED) are matched by name, which is what
    their gitignore patterns mean, without a pattern per file; no line of
    ``.datactlignore`` (a ``!`` pattern included) can make them tracked.
    """

    def __init__(self, root: str) -> None:
        path = os.path.join(root, IGNORE_FILE)
        lines: list[str] = []
        if os.path.exists(path):
            lines = read_text(path).splitlines()
        self._user = None
        if any(line.strip() and not line.startswith("#") for line in lines):
            import pathspec  # ~9 ms: imported only for a workspace that has patterns

            self._user = pathspec.GitIgnoreSpec.from_lines(lines)

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        if self.internal(rel_path, is_dir):
            return True
        return self._user is not None and self._user.match_file(rel_path + "/" if is_dir else rel_path)

    def ignored_in_walk(self, rel_path: str, name: str, is_dir: bool) -> bool:
        """``ignored`` for a walk, which never enters an ignored folder: of datactl's own files only the last
        name can match (they are matched by name), so the folders above are not looked at again."""
        if (is_dir and name == METADATA_DIR) or name in (CONFIG_FILE, IGNORE_FILE) or name.endswith(TEMP_SUFFIX):
            return True
        return self._user is not None and self._user.match_file(rel_path + "/" if is_dir else rel_path)

    @staticmethod
    def internal(rel_path: str, is_dir: bool) -> bool:
        """Paths datactl itself owns (ALWAYS_IGNORED); never tracked even when named explicitly."""
        parts = rel_path.split("/")
        if METADATA_DIR in (parts if is_dir else parts[:-1]):  # a folder pattern: the folder and all below it
            return True
        return any(p in (CONFIG_FILE, IGNORE_FILE) or p.endswith(TEMP_SUFFIX) for p in parts)
