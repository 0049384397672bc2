"""Merge: two lines of one dataset's history joined into a version with two parents.

Changes to different files merge on their own; a file changed on both sides
is a conflict, and nothing is committed until it is resolved (or aborted).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli, snapshot, write
from datactl.core.errors import RefConflict
from datactl.core.ids import object_id
from datactl.format.objects import FILE, TreeEntry
from datactl.format.storeconfig import StoreConfig
from datactl.remote.locate import add_remote
from datactl.store.index import ObjectIndex
from datactl.store.repository import Repository, write_store_config
from datactl.store.trees import build_tree
from datactl.store.walk import walk_files
from datactl.workspace import sync
from datactl.workspace.merge import MERGED, merge_base, merge_state, merge_trees
from datactl.workspace.workspace import Workspace
from storage_backends import LocalBackend

# -- the three-way rule, on trees --------------------------------------------------------------------

PATHS = ["a.csv", "b.csv", "d/x", "d/y", "d/z/w", "e/f", "g"]
CONTENT = ["one", "two", "three"]


def _repo(root: str) -> Repository:
    backend = LocalBackend(os.path.join(root, "store"))
    config = write_store_config(backend, StoreConfig())
    return Repository(backend, ObjectIndex(os.path.join(root, "index.db")), config, os.path.join(root, "store", "tmp"), workers=2)


def _tree(repo: Repository, files: dict[str, str]) -> str:
    entries = []
    for path in sorted(files):
        data = files[path].encode()
        entries.append((path, TreeEntry(path.rsplit("/", 1)[-1], FILE, 0o644, len(data), object_id(data))))
    return build_tree(repo, entries)


@st.composite
def three_sides(draw):
    base = {p: draw(st.sampled_from(CONTENT)) for p in PATHS if draw(st.booleans())}

    def side() -> dict[str, str]:
        out = dict(base)
        for p in PATHS:
            op = draw(st.sampled_from(["keep", "keep", "change", "delete"]))
            if op == "change":
                out[p] = draw(st.sampled_from(CONTENT))
            elif op == "delete":
                out.pop(p, None)
        return out

    return base, side(), side()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(three_sides())
def test_merge_takes_each_sides_changes_and_reports_only_true_conflicts(sides) -> None:
    base, ours, theirs = sides
    expected, conflicts = {}, set()
    for p in PATHS:
        b, o, t = base.get(p), ours.get(p), theirs.get(p)
        if o == t:
            value = o
        elif b == o:
            value = t
        elif b == t:
            value = o
        else:
            conflicts.add(p)
            value = o  # ours is kept until resolved
        if value is not None:
            expected[p] = object_id(value.encode())
    with tempfile.TemporaryDirectory() as tmp:
        repo = _repo(tmp)
        merged, found, _ = merge_trees(repo, _tree(repo, base), _tree(repo, ours), _tree(repo, theirs))
        assert {c.path for c in found} == conflicts
        assert {p: e.digest for p, e in walk_files(repo, merged)} == expected
        if not conflicts:
            # The same files always give the same tree: what a commit of the merged workspace would record.
            assert merged == _tree(repo, {p: v for p, v in _apply(ours, theirs, base).items()})
        repo.close()


def _apply(ours: dict, theirs: dict, base: dict) -> dict:
    out = {}
    for p in PATHS:
        b, o, t = base.get(p), ours.get(p), theirs.get(p)
        v = o if o == t or b == t else t
        if v is not None:
            out[p] = v
    return out


def test_file_turning_into_a_folder(tmp_path: Path) -> None:
    repo = _repo(str(tmp_path))
    base = _tree(repo, {"m": "file", "n": "1"})
    theirs = _tree(repo, {"m/inner": "now a folder", "n": "1"})
    merged, conflicts, _ = merge_trees(repo, base, _tree(repo, {"m": "file", "n": "2"}), theirs)
    assert not conflicts
    assert sorted(p for p, _ in walk_files(repo, merged)) == ["m/inner", "n"]
    _, conflicts, _ = merge_trees(repo, base, _tree(repo, {"m": "edited", "n": "1"}), theirs)
    assert [(c.path, c.reason) for c in conflicts] == [("m", "a file on one side, a folder on the other")]
    _, conflicts, resolved = merge_trees(repo, base, _tree(repo, {"m": "edited", "n": "1"}), theirs, strategy="theirs")
    assert not conflicts and resolved == {"m": "theirs"}
    repo.close()


# -- in workspaces, through the CLI ----------------------------------------------------------------------


@pytest.fixture
def diverged(tmp_path: Path, store_url: tuple[str, dict]):
    """A and B start from the same pushed version; A pushes a change, B commits another."""
    url, options = store_url
    a = Workspace.init(str(tmp_path / "a"), name="ds")
    add_remote(a.root, "origin", url, options)
    root_a = Path(a.root)
    for name in ("x.csv", "y.csv", "gone.csv"):
        write(root_a / name, f"{name} base\n")
    write(root_a / "sub" / "s.bin", os.urandom(3000))
    a.add([a.root])
    base = a.commit("base", tags=["v1"])
    sync.push(a, tags=True)
    b = sync.clone(url, "ds", str(tmp_path / "b"), options=options)
    yield a, b, base
    a.close()
    b.close()


def commit_all(ws: Workspace, message: str) -> str:
    ws.add([ws.root])
    return ws.commit(message)


def test_changes_to_different_files_merge_and_push(cli: Cli, diverged) -> None:
    a, b, base = diverged
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "x.csv", "x from a\n")
    write(ra / "new.csv", "added by a\n")
    a_head = commit_all(a, "a edits x")
    sync.push(a)
    write(rb / "y.csv", "y from b\n")
    (rb / "gone.csv").unlink()
    b_head = commit_all(b, "b edits y")
    with pytest.raises(RefConflict):
        sync.push(b)

    result = json.loads(cli("merge", "--json", cwd=rb).out)  # fetches origin, then merges its version
    assert result["status"] == MERGED and result["conflicts"] == []
    merged = b.repo.read_commit(result["commit"])
    assert merged.parents == (b_head, a_head)
    assert merge_base(b.repo, b_head, a_head) == base
    assert (rb / "x.csv").read_text() == "x from a\n" and (rb / "y.csv").read_text() == "y from b\n"
    assert (rb / "new.csv").read_text() == "added by a\n" and not (rb / "gone.csv").exists()
    assert b.status().clean and b.head == result["commit"]
    sync.push(b)  # the merge contains the remote's head: a fast-forward for it
    sync.pull(a)
    assert snapshot(ra) == snapshot(rb)
    up = json.loads(cli("lineage", "HEAD", "--up", "--depth", "1", "--format", "json", cwd=ra).out)
    assert {(e["from"], e["type"]) for e in up["edges"]} == {(b_head, "parent"), (a_head, "parent")}


def test_a_file_changed_on_both_sides_is_a_conflict_until_resolved(cli: Cli, diverged) -> None:
    a, b, base = diverged
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "x.csv", "x from a\n")
    write(ra / "other.csv", "a also added this\n")
    a_head = commit_all(a, "a edits x")
    sync.push(a)
    write(rb / "x.csv", "x from b\n")
    b_head = commit_all(b, "b edits x")

    res = cli("merge", "origin", "--json", ok=False, cwd=rb)
    assert res.code == 1
    result = json.loads(res.out)
    assert result["status"] == "conflicts"
    assert result["conflicts"] == [{"path": "x.csv", "reason": "changed on both sides", "sidecar": "x.csv.theirs"}]
    assert b.repo.refs.get(b.head_ref) == b_head and b.head == b_head, "nothing committed"
    assert (rb / "x.csv").read_text() == "x from b\n" and (rb / "x.csv.theirs").read_text() == "x from a\n"
    assert (rb / "other.csv").exists()
    assert [c.path for c in b.status().staged] == ["other.csv"]  # the clean part is merged and staged
    again = cli("merge", "origin", ok=False, cwd=rb)
    assert again.code == 2 and "in progress" in again.err
    write(rb / "x.csv", "x from a and b\n")
    unadded = cli("merge", "--continue", ok=False, cwd=rb)
    assert unadded.code == 1 and "not added" in unadded.err
    cli("add", "x.csv", cwd=rb)
    cid = cli("merge", "--continue", "--json", cwd=rb)
    done = json.loads(cid.out)
    assert done["status"] == MERGED
    assert b.repo.read_commit(done["commit"]).parents == (b_head, a_head)
    assert (rb / "x.csv").read_text() == "x from a and b\n"
    assert not (rb / "x.csv.theirs").exists(), "the sidecar merge wrote is cleaned up"
    assert merge_state(b) is None and b.status().clean
    sync.push(b)


def test_abort_puts_back_our_version(cli: Cli, diverged) -> None:
    a, b, base = diverged
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "x.csv", "x from a\n")
    write(ra / "y.csv", "y from a\n")
    commit_all(a, "a")
    sync.push(a)
    write(rb / "x.csv", "x from b\n")
    b_head = commit_all(b, "b")
    before = snapshot(rb)
    assert cli("merge", ok=False, cwd=rb).code == 1
    assert (rb / "y.csv").read_text() == "y from a\n"
    cli("merge", "--abort", cwd=rb)
    assert snapshot(rb) == before
    assert merge_state(b) is None and b.status().clean and b.head == b_head


def test_strategy_and_plain_commit_finish_a_merge(cli: Cli, diverged) -> None:
    a, b, base = diverged
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "x.csv", "x from a\n")
    a_head = commit_all(a, "a")
    sync.push(a)
    write(rb / "x.csv", "x from b\n")
    b_head = commit_all(b, "b")
    out = json.loads(cli("merge", "--strategy", "theirs", "--json", cwd=rb).out)
    assert out["status"] == MERGED and out["resolved"] == {"x.csv": "theirs"}
    assert (out["ours"], out["theirs"]) == (b_head, a_head)
    assert (rb / "x.csv").read_text() == "x from a\n"

    # Another round, resolved by keeping ours and committing the ordinary way.
    sync.push(b)
    sync.pull(a)
    write(ra / "y.csv", "y from a\n")
    a2 = commit_all(a, "a2")
    sync.push(a)
    write(rb / "y.csv", "y from b\n")
    b2 = commit_all(b, "b2")
    assert cli("merge", ok=False, cwd=rb).code == 1
    os.unlink(rb / "y.csv.theirs")
    cid = b.commit("keep ours")  # a commit during a merge is the merge commit
    assert b.repo.read_commit(cid).parents == (b2, a2)
    assert (rb / "y.csv").read_text() == "y from b\n"


def test_fast_forward_and_up_to_date(cli: Cli, diverged) -> None:
    a, b, base = diverged
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "x.csv", "x from a\n")
    a_head = commit_all(a, "a")
    sync.push(a)
    out = json.loads(cli("merge", "--json", cwd=rb).out)
    assert out["status"] == "fast-forward" and b.head == a_head
    assert (rb / "x.csv").read_text() == "x from a\n"
    out = json.loads(cli("merge", "v1", "--json", cwd=rb).out)
    assert out["status"] == "up-to-date"
    wrong = cli("merge", "--continue", ok=False, cwd=rb)
    assert wrong.code == 2 and "no merge in progress" in wrong.err
