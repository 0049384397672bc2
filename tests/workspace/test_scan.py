"""The workspace walk (``datactl.workspace.scan``) when the disk changes under it."""

from __future__ import annotations

import os
from pathlib import Path

from datactl.workspace.ignore import IgnoreRules
from datactl.workspace.scan import FILE, SYMLINK, walk


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "b" / "inner.txt").write_bytes(b"inner")
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not in the workspace")
    return root, outside


def test_a_folder_swapped_for_a_link_while_walking_is_not_walked_into(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    files = walk(str(root), IgnoreRules(str(root)))
    assert next(files)[:2] == ("a.txt", FILE)  # the root is listed: b is a folder there
    os.rename(root / "b", tmp_path / "b-moved")
    os.symlink(outside, root / "b")
    assert list(files) == []  # neither b/secret.txt (outside) nor b/inner.txt (moved away)


def test_a_folder_swapped_for_a_file_or_removed_while_walking_is_skipped(tmp_path: Path) -> None:
    for k, replace in enumerate((lambda p: p.write_bytes(b"now a file"), lambda p: None)):
        root, _ = _tree(tmp_path / f"case{k}")
        files = walk(str(root), IgnoreRules(str(root)))
        assert next(files)[0] == "a.txt"
        os.rename(root / "b", root.parent / "b-moved")
        replace(root / "b")
        assert list(files) == []


def test_a_link_to_a_folder_is_a_link_and_the_root_may_be_a_link(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    os.symlink(outside, root / "c")
    via = tmp_path / "via"
    os.symlink(root, via)
    assert [(p, k) for p, k, _ in walk(str(via), IgnoreRules(str(via)))] == [("a.txt", FILE), ("b/inner.txt", FILE), ("c", SYMLINK)]


def test_files_of_folders_said_new_come_without_a_stat_and_everything_else_as_before(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    (root / "b" / "deep").mkdir()
    (root / "b" / "deep" / "d.txt").write_bytes(b"d")
    os.symlink(outside, root / "b" / "link")
    os.mkfifo(root / "b" / "pipe")
    problems: list = []
    with_stats = list(walk(str(root), IgnoreRules(str(root))))
    asked: list[str] = []

    def stat_files(rel_dir: str) -> bool:
        asked.append(rel_dir)
        return rel_dir != "b/"

    lazy = list(walk(str(root), IgnoreRules(str(root)), on_problem=problems.append, stat_files=stat_files))
    assert asked == ["", "b/", "b/deep/"], "asked once for each folder, as it is listed"
    assert [(p, k) for p, k, _ in lazy] == [(p, k) for p, k, _ in with_stats] == [
        ("a.txt", FILE), ("b/deep/d.txt", FILE), ("b/inner.txt", FILE), ("b/link", SYMLINK)]
    stats = {p: st for p, _, st in lazy}
    assert stats["b/inner.txt"] is None, "a regular file of a folder said new: no stat"
    assert stats["b/link"] is not None and stats["a.txt"] is not None and stats["b/deep/d.txt"] is not None
    assert [p.path for p in problems] == ["b/pipe"], "the odd kinds are still looked at, and reported"
