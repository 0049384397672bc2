"""Memory stays bounded at a million files: what a user runs between versions does not grow with the file count.

Writing a million real files takes far longer than a test may, so the two
versions are built through the library: a million entries over a thousand
folders, all naming a few tiny stored files. Each command then runs in a
process of its own, whose peak RSS is measured. About 55 s in all (9 s of it
building the versions).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from builtversions import record_version
from conftest import run_datactl
from datactl.format.objects import FILE, TreeEntry
from datactl.store.filedata import store_stream
from datactl.store.trees import build_tree, patch_tree
from datactl.workspace.workspace import Workspace
from peakrss import bounded

FOLDERS = 1_000
PER_FOLDER = 1_000
FILES = FOLDERS * PER_FOLDER
# Version 2 changes 0.1% of the paths: in every 10th folder 8 files get new content, 1 is removed and 1 added.
CHANGED_FOLDERS = range(0, FOLDERS, 10)
MODIFIED_AT = range(PER_FOLDER // 10, PER_FOLDER * 9 // 10, PER_FOLDER // 10)  # 8 positions
REMOVED_AT = PER_FOLDER * 95 // 100
SPARSE = "d0000"  # the one folder a sparse workspace holds (a changed one)


def folder(d: int) -> str:
    return f"d{d:04d}"


def file_path(d: int, i: int) -> str:
    return f"{folder(d)}/f{d * PER_FOLDER + i:06d}.bin"


def added_path(d: int) -> str:
    return f"{folder(d)}/g{d * PER_FOLDER:06d}.bin"  # sorts after the folder's f-files


def stored_file(ws: Workspace, data: bytes) -> TreeEntry:
    """The entry of a file holding ``data``, its bytes stored once (the tree builders set each name)."""
    c = store_stream(ws.repo, ws.chunker, io.BytesIO(data))
    return TreeEntry("", FILE, 0o644, c.size, c.digest, c.chunks, c.chunklist)


def build_versions(root: Path) -> None:
    """Make ``root`` a fresh workspace whose store holds v1 and v2 of a million files each; nothing goes on disk."""
    assert run_datactl(["init", "--name", "million"], root).returncode == 0
    with Workspace.open(str(root)) as ws:
        # Distinct contents for kept, changed and added files, so no removed file pairs with an added one as a rename.
        kept = [stored_file(ws, b"kept, even\n"), stored_file(ws, b"kept, odd\n")]
        changed, added = stored_file(ws, b"changed in v2\n"), stored_file(ws, b"added in v2\n")

        def v1_listing() -> Iterator[tuple[str, TreeEntry]]:  # path order, streamed: build_tree holds one folder at a time
            for d in range(FOLDERS):
                for i in range(PER_FOLDER):
                    yield file_path(d, i), kept[i % 2]

        v1 = record_version(ws, build_tree(ws.repo, v1_listing()), None, "v1", "2024-01-01T00:00:00+00:00")
        # v2 as a commit makes it: v1's tree patched, reading and writing only the changed folders.
        changes: list[tuple[str, TreeEntry | None]] = []
        for d in CHANGED_FOLDERS:
            changes += [(file_path(d, i), changed) for i in MODIFIED_AT]
            changes += [(file_path(d, REMOVED_AT), None), (added_path(d), added)]
        v2_tree = patch_tree(ws.repo, ws.repo.read_commit(v1).tree, changes)
        record_version(ws, v2_tree, v1, "v2", "2024-01-02T00:00:00+00:00")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("million") / "ws"
    root.mkdir()
    build_versions(root)
    return root


def test_diff_of_versions_differing_in_a_thousand_of_a_million_files(big: Path, tmp_path: Path) -> None:
    out = tmp_path / "diff.json"
    with open(out, "w") as f:
        bounded("diff v1 v2 --json", ["-m", "datactl", "diff", "v1", "v2", "--json"], big, stdout=f)
    with open(out) as f:
        result = json.load(f)
    n = len(CHANGED_FOLDERS)
    assert {k: result["summary"][k] for k in ("added", "removed", "modified", "renamed")} == {
        "added": n, "removed": n, "modified": n * len(MODIFIED_AT), "renamed": 0
    }
    assert len(result["changes"]) == n * (len(MODIFIED_AT) + 2)


def test_listing_a_million_files(big: Path, tmp_path: Path) -> None:
    out = tmp_path / "ls.txt"  # a file, not a pipe: the test never holds the listing
    # The listing is streamed as the trees are walked; one held whole would pass the bound within seconds (and be stopped).
    with open(out, "w") as f:
        bounded("ls -r v2", ["-m", "datactl", "ls", "-r", "v2"], big, stdout=f)
    with open(out) as f:
        assert sum(1 for _ in f) == FILES


def test_api_lists_a_million_files(big: Path, tmp_path: Path) -> None:
    code = (
        "import datactl\n"
        "with datactl.Dataset.get('million', version='v2') as ds:\n"
        "    print(sum(1 for _ in ds.files()))\n"
    )
    env = {"DATACTL_CACHE_DIR": str(tmp_path / "cache")}
    m = bounded("Dataset.get(...).files()", ["-c", code], big, env=env)
    assert int(m.stdout) == FILES


def test_log(big: Path) -> None:
    m = bounded("log v2", ["-m", "datactl", "log", "v2"], big)
    assert [line.strip() for line in m.stdout.splitlines() if line.startswith("    ")] == ["version v2", "version v1"]


def on_disk(root: Path) -> set[str]:
    """Every file on disk but the workspace's own."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".datactl"]
        found.update(os.path.relpath(os.path.join(dirpath, n), root) for n in filenames)
    return found - {"datactl.toml", ".datactlignore"}


@pytest.mark.heavy
def test_sparse_checkout_switches_versions_at_the_cost_of_the_change(big: Path) -> None:
    # The first checkout of a one-folder scope walks the whole version once (as a partial clone does) ...
    code = "import datactl\nwith datactl.Workspace.open() as ws:\n    print(ws.checkout('v1', scope=[%r]).written)\n" % SPARSE
    m = bounded("first checkout of v1 into one folder", ["-c", code], big)
    assert int(m.stdout) == PER_FOLDER
    v1_files = {file_path(0, i) for i in range(PER_FOLDER)}
    assert on_disk(big) == v1_files

    # ... then moving between the versions looks only at what differs.
    bounded("checkout v2", ["-m", "datactl", "checkout", "v2"], big)
    assert on_disk(big) == (v1_files - {file_path(0, REMOVED_AT)}) | {added_path(0)}
    assert (big / file_path(0, MODIFIED_AT[0])).read_bytes() == b"changed in v2\n"

    bounded("checkout v1", ["-m", "datactl", "checkout", "v1"], big)
    assert on_disk(big) == v1_files
    assert (big / file_path(0, MODIFIED_AT[0])).read_bytes() == b"kept, even\n"

    # status of the sparse workspace: the 999,000 tracked files outside its one folder are not looked for on disk.
    (big / file_path(0, 1)).write_bytes(b"edited here\n")
    st = bounded("status", ["-m", "datactl", "status", "--json"], big)
    status = json.loads(st.stdout)
    assert [c["path"] for c in status["unstaged"]] == [file_path(0, 1)]
    assert status["untracked"] == []

    # A commit of that one change on the latest version costs what changed: the folder is read, the tree patched.
    bounded("checkout v2 (the edit kept)", ["-m", "datactl", "checkout", "v2"], big)
    bounded("add", ["-m", "datactl", "add", SPARSE], big)
    bounded("commit", ["-m", "datactl", "commit", "-m", "one file edited"], big)
    diff = json.loads(bounded("diff v2 HEAD", ["-m", "datactl", "diff", "v2", "HEAD", "--json"], big).stdout)
    assert [(c["path"], c["status"]) for c in diff["changes"]] == [(file_path(0, 1), "modified")]
