"""Property tests: any set of files, any sequence of edits, every version restores exactly."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import snapshot, write
from datactl.format.objects import Tree, TreeEntry, decode_tree
from datactl.workspace.workspace import Workspace

names = st.text(alphabet="abcdeé日_-.0", min_size=1, max_size=6).filter(lambda s: s not in (".", "..") and not s.startswith("."))
paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "/".join(parts))
contents = st.one_of(st.binary(max_size=3000), st.sampled_from([b"", b"same content", b"x" * 5000]))
file_sets = st.dictionaries(paths, st.tuples(contents, st.sampled_from([0o644, 0o755, 0o600])), min_size=1, max_size=12)


def materialize(root: Path, files: dict[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, int]]:
    """Write ``files``, skipping paths that clash with a file used as a folder; return what was written."""
    for child in root.iterdir():
        if child.name not in (".datactl", "datactl.toml"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    written = {}
    for path, (data, mode) in sorted(files.items()):
        parts = path.split("/")
        if any("/".join(parts[:i]) in written for i in range(1, len(parts))) or any(p.startswith(path + "/") for p in written):
            continue
        write(root / path, data, mode)
        written[path] = (data, mode)
    return written


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(file_sets, min_size=1, max_size=3))
def test_every_version_restores_exactly(versions: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.init(tmp, name="prop")
        expected = []
        commits = []
        for files in versions:
            materialize(root, files)
            ws.add([tmp])
            commits.append(ws.commit("v", allow_empty=True))
            expected.append(snapshot(root))
        for cid, snap in reversed(list(zip(commits, expected))):
            ws.checkout(cid)
            assert snapshot(root) == snap
            assert ws.status().clean
        ws.close()


@given(st.lists(st.tuples(names, st.integers(0, 10**12)), max_size=20, unique_by=lambda t: t[0]))
def test_tree_encoding_round_trips_and_is_canonical(items: list[tuple[str, int]]) -> None:
    entries = tuple(sorted((TreeEntry(n, "file", 0o644, size, "0" * 32, ("1" * 32,)) for n, size in items), key=lambda e: e.name.encode()))
    raw = Tree(entries).encode()
    assert decode_tree("t", raw) == Tree(entries)
    assert Tree(decode_tree("t", raw).entries).encode() == raw
