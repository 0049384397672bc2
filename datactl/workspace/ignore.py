"""Which workspace paths are never tracked: ``.datactlignore`` (gitignore syntax) plus our own files."""

from __future__ import annotations

import os

import pathspec

from datactl.core.safepath import TEMP_SUFFIX
from datactl.core.settings import CONFIG_FILE, IGNORE_FILE, read_text

ALWAYS_IGNORED = (".datactl/", CONFIG_FILE, IGNORE_FILE, f"*{TEMP_SUFFIX}")


class IgnoreRules:
    """Matches workspace-relative '/'-separated paths; folders are tested with a trailing '/'."""

    def __init__(self, root: str) -> None:
        lines = list(ALWAYS_IGNORED)
        path = os.path.join(root, IGNORE_FILE)
        if os.path.exists(path):
            lines += read_text(path).splitlines()
        self._fixed = pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED)
        self._spec = pathspec.GitIgnoreSpec.from_lines(lines)

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        return self._spec.match_file(rel_path + "/" if is_dir else rel_path)

    def internal(self, rel_path: str, is_dir: bool) -> bool:
        """Paths datactl itself owns; never tracked even when named explicitly."""
        return self._fixed.match_file(rel_path + "/" if is_dir else rel_path)
