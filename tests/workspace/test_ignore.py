"""Which paths are never tracked: datactl's own files, matched by name, and .datactlignore."""

from __future__ import annotations

from pathlib import Path

import pathspec
from hypothesis import given
from hypothesis import strategies as st

from datactl.workspace.ignore import ALWAYS_IGNORED, IgnoreRules

_parts = st.sampled_from([".datactl", "datactl.toml", ".datactlignore", "x.datactl-tmp", "a", "data.csv", ".datactl-x", "datactl.toml.bak"])


@given(parts=st.lists(_parts, min_size=1, max_size=4), is_dir=st.booleans())
def test_datactls_own_files_are_matched_as_their_gitignore_patterns_say(parts: list[str], is_dir: bool) -> None:
    path = "/".join(parts)
    as_patterns = pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED).match_file(path + "/" if is_dir else path)
    assert IgnoreRules.internal(path, is_dir) == as_patterns


def test_no_line_of_datactlignore_makes_datactls_own_files_tracked(tmp_path: Path) -> None:
    (tmp_path / ".datactlignore").write_text("*.log\n!.datactl/\n!datactl.toml\n!*.datactl-tmp\n")
    rules = IgnoreRules(str(tmp_path))
    assert rules.ignored(".datactl", True) and rules.ignored("datactl.toml", False) and rules.ignored("a/b.datactl-tmp", False)
    assert rules.ignored("run/x.log", False)
    assert not rules.ignored("run/x.csv", False)


def test_without_a_datactlignore_only_datactls_own_files_are_ignored(tmp_path: Path) -> None:
    rules = IgnoreRules(str(tmp_path))
    assert rules.ignored("sub/.datactl/index.db", False)
    assert not rules.ignored("sub/data.datactl", False)
