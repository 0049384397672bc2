"""Walking the object graph: files in byte order of path, changes between trees, commits and trees each once."""

from __future__ import annotations

import collections
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datactl.core.errors import CorruptObject, DatactlError, UnsafePath
from datactl.core.ids import object_id
from datactl.format.objects import (
    DIR,
    FILE,
    SYMLINK,
    Commit,
    Tree,
    TreeEntry,
    symlink_entry,
)
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import StoreConfig
from datactl.store.index import ObjectIndex
from datactl.store.packread import META_GAP
from datactl.store.repository import Repository, read_store_config, write_store_config
from datactl.store.trees import build_tree, lookup_path, patch_tree
from datactl.store.walk import (
    present,
    walk_changes,
    walk_commits,
    walk_files,
    walk_trees,
)
from storage_backends import LocalBackend


def open_repo(root: str) -> Repository:
    backend = LocalBackend(os.path.join(root, "store"))
    write_store_config(backend, StoreConfig())
    config = read_store_config(backend)
    return Repository(backend, ObjectIndex(os.path.join(root, "index.db")), config, os.path.join(root, "store", "tmp"), workers=2)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = open_repo(str(tmp_path))
    yield r
    r.close()


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    """One store for property tests (content-addressed: examples share objects harmlessly)."""
    r = open_repo(str(tmp_path_factory.mktemp("walk")))
    yield r
    r.close()


Spec = dict[str, "str | tuple[str, int] | tuple[str]"]  # path -> content, (content, mode), or (link target,)


def entry_for(path: str, spec: str | tuple) -> TreeEntry:
    name = path.rsplit("/", 1)[-1]
    if isinstance(spec, tuple) and len(spec) == 1:
        return symlink_entry(name, spec[0])
    content, mode = (spec, 0o644) if isinstance(spec, str) else spec
    data = content.encode()
    return TreeEntry(name, FILE, mode, len(data), object_id(data), (object_id(data),))


def tree_of(repo: Repository, files: Spec) -> str:
    """Store the trees (and each file's single chunk) for ``files``; return the root tree id."""
    for spec in files.values():
        if not (isinstance(spec, tuple) and len(spec) == 1):
            content = spec if isinstance(spec, str) else spec[0]
            repo.put(ObjectType.CHUNK, content.encode())
    tid = build_tree(repo, [(p, entry_for(p, files[p])) for p in sorted(files, key=str.encode)])
    repo.flush()
    return tid


def byte_order(paths: list[str] | set[str]) -> list[str]:
    return sorted(paths, key=lambda p: p.encode())


class CountingReader:
    """A TreeReader over a repository that counts which trees are read."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.reads: collections.Counter[str] = collections.Counter()

    def read(self, oid: str) -> bytes:
        self.reads[oid] += 1
        return self.repo.read(oid)


def trees_below(repo: Repository, tid: str) -> set[str]:
    return {v.id for v in walk_trees(present(repo), [(tid, None)])}


# -- walk_files ----------------------------------------------------------------------------------

NAMES_THAT_SORT_AROUND_A_SLASH = {
    "a-b": "1", "a.txt": "2", "a/b": "3", "a/a": "4", "a0": "5", "b/a": "6", "b/a.txt": "7",
    "b/a-b": "8", "b/c/a": "9", "x/y/z/deep": "10", "é": "11", "z": "12", "A": "13", "link": ("a.txt",),
}


def test_walk_files_yields_every_file_once_in_byte_order_of_path(repo: Repository) -> None:
    files = NAMES_THAT_SORT_AROUND_A_SLASH
    tid = tree_of(repo, files)
    walked = list(walk_files(repo, tid))
    assert [p for p, _ in walked] == byte_order(files)
    for path, entry in walked:
        assert entry == entry_for(path, files[path])
    assert [e.kind for p, e in walked if p == "link"] == [SYMLINK]


def test_walk_files_prefixes_every_path(repo: Repository) -> None:
    tid = tree_of(repo, {"a/b": "1", "c": "2"})
    assert [p for p, _ in walk_files(repo, tid, prefix="top/")] == ["top/a/b", "top/c"]


def test_walk_files_of_an_empty_tree_yields_nothing(repo: Repository) -> None:
    assert list(walk_files(repo, tree_of(repo, {}))) == []


def test_walk_files_reads_sub_trees_in_few_requests(repo: Repository) -> None:
    files = {f"d{i:03}/f": str(i) for i in range(600)}
    tid = tree_of(repo, files)
    before = repo.objects.stats.requests
    walked = [p for p, _ in walk_files(repo, tid, max_gap=META_GAP)]
    assert walked == byte_order(files)
    # The root, then the 600 folders in batches of 256 read ahead together.
    assert repo.objects.stats.requests - before <= 6


segment = st.sampled_from(["a", "b", "a-b", "a.txt", "a0", "é", "A", "_"])
path_sets = st.lists(st.lists(segment, min_size=1, max_size=4).map("/".join), min_size=0, max_size=25, unique=True)


def consistent(paths: list[str]) -> dict[str, str]:
    """Drop paths that would need a file to also be a folder."""
    kept: dict[str, str] = {}
    for p in sorted(paths, key=lambda p: (p.count("/"), p)):
        parts = p.split("/")
        if any("/".join(parts[:i]) in kept for i in range(1, len(parts))) or any(k.startswith(p + "/") for k in kept):
            continue
        kept[p] = p
    return kept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path_sets)
def test_walk_files_order_property(shared_repo: Repository, paths: list[str]) -> None:
    files = consistent(paths)
    tid = tree_of(shared_repo, files)
    assert [p for p, _ in walk_files(shared_repo, tid)] == byte_order(files)


def test_a_tree_1500_folders_deep_is_walked_without_recursion(repo: Repository) -> None:
    depth = 1500
    assert depth > sys.getrecursionlimit()
    deep = "/".join(["d"] * depth)
    files = {f"{deep}/leaf": "x", "top": "y"}
    tid = tree_of(repo, files)
    assert [p for p, _ in walk_files(repo, tid)] == [f"{deep}/leaf", "top"]
    visits = list(walk_trees(present(repo), [(tid, "root")]))
    assert len(visits) == depth + 1
    assert visits[-1].path == deep + "/"
    changed = tree_of(repo, {f"{deep}/leaf": "x2", "top": "y"})
    assert [p for p, _, _ in walk_changes(repo, tid, changed)] == [f"{deep}/leaf"]


# -- walk_changes --------------------------------------------------------------------------------


def expected_changes(repo: Repository, a: str | None, b: str | None) -> dict[str, tuple]:
    fa = dict(walk_files(repo, a)) if a else {}
    fb = dict(walk_files(repo, b)) if b else {}
    key = lambda e: None if e is None else (e.kind, e.mode, e.digest)
    return {p: (fa.get(p), fb.get(p)) for p in fa.keys() | fb.keys() if key(fa.get(p)) != key(fb.get(p))}


def changes(reader, a: str | None, b: str | None) -> dict[str, tuple]:
    listed = list(walk_changes(reader, a, b))
    paths = [p for p, _, _ in listed]
    assert len(paths) == len(set(paths)), f"a path listed twice: {paths}"
    return {p: (x, y) for p, x, y in listed}


def test_walk_changes_lists_added_removed_and_modified_files(repo: Repository) -> None:
    a = tree_of(repo, {"keep": "k", "gone": "g", "edit": "e1", "chmod": ("c", 0o644), "d/keep": "k", "d/edit": "1", "ln": ("t1",)})
    b = tree_of(repo, {"keep": "k", "new": "n", "edit": "e2", "chmod": ("c", 0o755), "d/keep": "k", "d/edit": "2", "d/new": "n", "ln": ("t2",)})
    got = changes(repo, a, b)
    assert got == expected_changes(repo, a, b)
    assert {p: (x is not None, y is not None) for p, (x, y) in got.items()} == {
        "gone": (True, False), "new": (False, True), "edit": (True, True), "chmod": (True, True),
        "d/edit": (True, True), "d/new": (False, True), "ln": (True, True),
    }
    assert changes(repo, b, a) == {p: (y, x) for p, (x, y) in got.items()}


def test_walk_changes_of_equal_trees_is_empty_and_reads_nothing(repo: Repository) -> None:
    a = tree_of(repo, {"x/y": "1", "z": "2"})
    reader = CountingReader(repo)
    assert list(walk_changes(reader, a, a)) == []
    assert list(walk_changes(reader, None, None)) == []
    assert sum(reader.reads.values()) == 0


def test_walk_changes_from_or_to_nothing_lists_every_file(repo: Repository) -> None:
    files = {"a/b": "1", "a/c/d": "2", "e": "3"}
    t = tree_of(repo, files)
    added = changes(repo, None, t)
    assert sorted(added) == sorted(files) and all(x is None and y is not None for x, y in added.values())
    removed = changes(repo, t, None)
    assert sorted(removed) == sorted(files) and all(x is not None and y is None for x, y in removed.values())


def test_a_file_replaced_by_a_folder_gives_the_file_and_the_folders_files(repo: Repository) -> None:
    a = tree_of(repo, {"p": "file", "q/r": "1", "q/s/t": "2", "z": "z"})
    b = tree_of(repo, {"p/x": "1", "p/y/w": "2", "q": "now a file", "z": "z"})
    got = changes(repo, a, b)
    assert got == expected_changes(repo, a, b)
    assert {p: (x is not None, y is not None) for p, (x, y) in got.items()} == {
        "p": (True, False), "p/x": (False, True), "p/y/w": (False, True),
        "q": (False, True), "q/r": (True, False), "q/s/t": (True, False),
    }
    # Depth first, each folder's names in sorted order; a file comes before the folder replacing it, after the one it replaces.
    assert [p for p, _, _ in walk_changes(repo, a, b)] == ["p", "p/x", "p/y/w", "q/r", "q/s/t", "q"]


def test_walk_changes_does_not_read_unchanged_sub_trees(repo: Repository) -> None:
    big = {f"big/{i}/{j}": f"{i}.{j}" for i in range(5) for j in range(3)}
    a = tree_of(repo, {**big, "small/x": "1", "small/same/y": "s", "top": "t"})
    b = tree_of(repo, {**big, "small/x": "2", "small/same/y": "s", "top": "t"})
    reader = CountingReader(repo)
    assert [(p, x.digest, y.digest) for p, x, y in walk_changes(reader, a, b)] == [
        ("small/x", object_id(b"1"), object_id(b"2"))
    ]
    small_a = repo.read_tree(a).get("small").digest  # type: ignore[union-attr]
    small_b = repo.read_tree(b).get("small").digest  # type: ignore[union-attr]
    assert dict(reader.reads) == {a: 1, b: 1, small_a: 1, small_b: 1}
    unchanged = trees_below(repo, repo.read_tree(a).get("big").digest)  # type: ignore[union-attr]
    assert len(unchanged) == 6 and not unchanged & set(reader.reads)


def test_walk_changes_checks_every_entry_it_yields(repo: Repository) -> None:
    a = tree_of(repo, {"x": "1", "y": "2"})
    fine = repo.read_tree(a).entries
    kept = json.dumps(fine[0].to_dict(), sort_keys=True, separators=(",", ":")).encode()  # "x", as stored in a
    added = b'{"chunks":["%s"],"digest":"%s","kind":"file","mode":420,"name":"..","size":1}' % ((object_id(b"1").encode(),) * 2)
    hostile = b'{"entries":[%s,%s],"format":1}' % (added, kept)
    b = repo.put(ObjectType.TREE, hostile)
    repo.flush()
    with pytest.raises(UnsafePath):
        list(walk_changes(repo, a, b))


flat_files = st.dictionaries(
    st.lists(st.sampled_from(["a", "b", "a.x", "c"]), min_size=1, max_size=3).map("/".join),
    st.sampled_from(["1", "2", ("1", 0o755), ("l",)]),
    max_size=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(flat_files, flat_files)
def test_walk_changes_property(shared_repo: Repository, fa: dict, fb: dict) -> None:
    keep_a, keep_b = consistent(list(fa)), consistent(list(fb))
    a = tree_of(shared_repo, {p: fa[p] for p in keep_a})
    b = tree_of(shared_repo, {p: fb[p] for p in keep_b})
    assert changes(shared_repo, a, b) == expected_changes(shared_repo, a, b)


# -- walk_commits -------------------------------------------------------------------------------


class History:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.tree = tree_of(repo, {"f": "x"})
        self.n = 0

    def commit(self, *parents: str, inputs: tuple[str, ...] = (), name: str = "ds") -> str:
        self.n += 1
        c = Commit(self.tree, tuple(parents), "dataset", name, f"v{self.n}", "me", "2024-01-01T00:00:00Z", inputs=inputs)
        return self.repo.put(ObjectType.COMMIT, c.encode())


def test_walk_commits_visits_each_commit_once_over_merges(repo: Repository) -> None:
    h = History(repo)
    c1 = h.commit()
    c2, c3 = h.commit(c1), h.commit(c1)
    c4 = h.commit(c2, c3)
    c5 = h.commit(c4)
    repo.flush()
    read = present(repo)
    assert [cid for cid, _ in walk_commits(read, [c5])] == [c5, c4, c2, c3, c1]
    assert [cid for cid, _ in walk_commits(read, [c5, c3, c5])] == [c5, c3, c4, c1, c2]
    got = dict(walk_commits(read, [c5]))
    assert got[c4].parents == (c2, c3) and got[c1].parents == ()


def test_walk_commits_stops_at_stop(repo: Repository) -> None:
    h = History(repo)
    c1 = h.commit()
    c2, c3 = h.commit(c1), h.commit(c1)
    c4 = h.commit(c2, c3)
    repo.flush()
    read = present(repo)
    assert [cid for cid, _ in walk_commits(read, [c4], stop=[c4])] == []
    assert [cid for cid, _ in walk_commits(read, [c4], stop=[c2])] == [c4, c3, c1]
    assert [cid for cid, _ in walk_commits(read, [c4], stop=[c1])] == [c4, c2, c3]
    assert [cid for cid, _ in walk_commits(read, [c4], stop=[c2, c3])] == [c4]


def test_walk_commits_reports_absent_commits(repo: Repository) -> None:
    h = History(repo)
    ghost = "0" * 32
    c1 = h.commit(ghost)
    c2 = h.commit(c1)
    repo.flush()
    absent: list[str] = []
    assert [cid for cid, _ in walk_commits(present(repo), [c2, "f" * 32], on_absent=absent.append)] == [c2, c1]
    assert absent == ["f" * 32, ghost]
    # Without on_absent an absent commit is simply not followed.
    assert [cid for cid, _ in walk_commits(present(repo), [c2])] == [c2, c1]


def test_walk_commits_follows_inputs_only_when_asked(repo: Repository) -> None:
    h = History(repo)
    other = h.commit(name="raw")
    c1 = h.commit(inputs=(other,))
    c2 = h.commit(c1)
    repo.flush()
    assert [cid for cid, _ in walk_commits(present(repo), [c2])] == [c2, c1]
    assert [cid for cid, _ in walk_commits(present(repo), [c2], inputs=True)] == [c2, c1, other]


def test_walk_commits_raises_or_reports_a_damaged_commit(repo: Repository) -> None:
    h = History(repo)
    not_a_commit = h.tree  # a tree's bytes do not decode as a commit
    c1 = h.commit(not_a_commit)
    repo.flush()
    with pytest.raises(CorruptObject, match=not_a_commit):
        list(walk_commits(present(repo), [c1]))
    damaged: list[tuple[str, DatactlError]] = []
    assert [cid for cid, _ in walk_commits(present(repo), [c1], on_damaged=lambda c, e: damaged.append((c, e)))] == [c1]
    assert [c for c, _ in damaged] == [not_a_commit] and isinstance(damaged[0][1], CorruptObject)


def test_walk_commits_over_a_long_history(repo: Repository) -> None:
    h = History(repo)
    chain = [h.commit()]
    for _ in range(1500):
        chain.append(h.commit(chain[-1]))
    repo.flush()
    assert [cid for cid, _ in walk_commits(present(repo), [chain[-1]])] == chain[::-1]


# -- walk_trees ----------------------------------------------------------------------------------


def test_walk_trees_visits_each_tree_once_with_its_roots_tag_and_path(repo: Repository) -> None:
    shared = {"common/x/f": "1", "common/g": "2"}
    a = tree_of(repo, {**shared, "only_a/h": "3", "twin1/k": "same", "twin2/k": "same"})
    b = tree_of(repo, {**shared, "only_b/h": "4"})
    visits = list(walk_trees(present(repo), [(a, "A"), (b, "B"), (a, "again")]))
    ids = [v.id for v in visits]
    assert len(ids) == len(set(ids))
    assert set(ids) == trees_below(repo, a) | trees_below(repo, b)
    by_path = {(v.tag, v.path) for v in visits}
    # twin1/ and twin2/ are one tree (same content): visited once, at its first path.
    assert by_path == {
        ("A", ""), ("A", "common/"), ("A", "common/x/"), ("A", "only_a/"), ("A", "twin1/"),
        ("B", ""), ("B", "only_b/"),
    }
    for v in visits:
        assert v.tree is not None and object_id(v.tree.encode()) == v.id
    # Level by level: both roots first.
    assert [v.path for v in visits[:2]] == ["", ""]


def test_walk_trees_shares_seen_between_walks(repo: Repository) -> None:
    a = tree_of(repo, {"s/f": "1", "a": "2"})
    b = tree_of(repo, {"s/f": "1", "b": "3"})
    seen: set[str] = set()
    first = [v.id for v in walk_trees(present(repo), [(a, 1)], seen)]
    second = [v.id for v in walk_trees(present(repo), [(b, 2)], seen)]
    assert len(first) == 2 and second == [b]
    assert seen == set(first) | {b}


def test_walk_trees_visits_an_absent_tree_with_no_tree(repo: Repository) -> None:
    ghost = "0" * 32
    tid = repo.put(ObjectType.TREE, Tree((TreeEntry("f", FILE, 0o644, 0, object_id(b"")), TreeEntry("gone", DIR, 0, 0, ghost))).encode())
    repo.flush()
    visits = {v.path: v for v in walk_trees(present(repo), [(tid, "t")])}
    assert set(visits) == {"", "gone/"}
    assert visits["gone/"].id == ghost and visits["gone/"].tree is None and visits["gone/"].tag == "t"


def test_walk_trees_raises_or_reports_a_damaged_tree(repo: Repository) -> None:
    h = History(repo)
    c = h.commit()  # a commit's bytes do not decode as a tree
    tid = repo.put(ObjectType.TREE, Tree((TreeEntry("bad", DIR, 0, 0, c),)).encode())
    repo.flush()
    with pytest.raises(CorruptObject, match=c):
        list(walk_trees(present(repo), [(tid, None)]))
    damaged: list[str] = []
    assert [v.id for v in walk_trees(present(repo), [(tid, None)], on_damaged=lambda t, e: damaged.append(t))] == [tid]
    assert damaged == [c]


# -- patching a tree ----------------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", "a.txt", "z"])
_paths = st.lists(_names, min_size=1, max_size=4).map("/".join)


def _listing(files: dict[str, bytes]) -> list[tuple[str, TreeEntry]]:
    """A valid listing: no path is both a file and a folder (the shorter one wins)."""
    kept: dict[str, bytes] = {}
    for path in sorted(files, key=len):
        parts = path.split("/")
        if any("/".join(parts[:i]) in kept for i in range(1, len(parts))) or any(k.startswith(path + "/") for k in kept):
            continue
        kept[path] = files[path]
    return sorted(((p, TreeEntry(p.rsplit("/", 1)[-1], FILE, 0o644, len(d), object_id(d))) for p, d in kept.items()), key=lambda kv: kv[0].encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.dictionaries(_paths, st.binary(max_size=3), max_size=12), after=st.dictionaries(_paths, st.binary(max_size=3), max_size=12))
def test_patching_a_tree_with_the_changes_between_two_listings_builds_the_second(shared_repo: Repository, before: dict[str, bytes], after: dict[str, bytes]) -> None:
    a, b = _listing(before), _listing(after)
    da, db = dict(a), dict(b)
    changes = [(p, db.get(p)) for p in sorted(da.keys() | db.keys(), key=str.encode) if da.get(p) != db.get(p)]
    assert patch_tree(shared_repo, build_tree(shared_repo, a), changes) == build_tree(shared_repo, b)


def test_patching_many_folders_reads_and_stores_their_trees_together(repo: Repository) -> None:
    # A commit of a file changed in each of 50 folders: the 50 trees are read in one batch and stored in one, not
    # one index query and one read each (on a remote-backed store, one request each).
    listing = [(f"d{i:02}/f{j:03}", TreeEntry(f"f{j:03}", FILE, 0o644, 1, object_id(f"{i}/{j}".encode()))) for i in range(50) for j in range(20)]
    base = build_tree(repo, listing)
    changes = [(f"d{i:02}/f007", TreeEntry("f007", FILE, 0o644, 2, object_id(f"new {i}".encode()))) for i in range(50)]
    calls: list[str] = []
    read, read_batch, put, put_many = repo.read, repo.read_batch, repo.put, repo.put_many

    def counted(name: str, method):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(name)
            return method(*args, **kwargs)

        return call

    repo.read, repo.read_batch = counted("read", read), counted("read_batch", read_batch)  # type: ignore[method-assign]
    repo.put, repo.put_many = counted("put", put), counted("put_many", put_many)  # type: ignore[method-assign]
    patched = patch_tree(repo, base, changes)
    del repo.read, repo.read_batch, repo.put, repo.put_many
    assert collections.Counter(calls) == {"read_batch": 2, "put_many": 1}  # the root, then its 50 folders; 51 trees stored
    repo.flush()
    assert patched == build_tree(repo, sorted([*(kv for kv in listing if not kv[0].endswith("/f007")), *changes]))


def test_patching_a_big_tree_reads_only_the_folders_along_the_change(repo: Repository) -> None:
    listing = [(f"d{i:02}/f{j:03}", TreeEntry(f"f{j:03}", FILE, 0o644, 1, object_id(f"{i}/{j}".encode()))) for i in range(50) for j in range(100)]
    base = build_tree(repo, listing)
    changed = TreeEntry("f007", FILE, 0o644, 2, object_id(b"new"))
    reads: list[str] = []
    read, read_batch = repo.read, repo.read_batch

    def counted_read(oid: str) -> bytes:
        reads.append(oid)
        return read(oid)

    def counted_read_batch(oids: Iterable[str], max_gap: int = 0) -> dict[str, bytes]:
        oids = list(oids)
        reads.extend(oids)
        return read_batch(oids, max_gap)

    repo.read, repo.read_batch = counted_read, counted_read_batch  # type: ignore[method-assign]
    patched = patch_tree(repo, base, [("d31/f007", changed)])
    del repo.read, repo.read_batch
    d31 = lookup_path(repo, base, "d31")
    assert d31 is not None and sorted(reads) == sorted([base, d31.digest])  # the root and d31, not the other 49 folders
    assert dict(walk_files(repo, patched))["d31/f007"].digest == changed.digest
    assert patched == build_tree(repo, sorted([*(kv for kv in listing if kv[0] != "d31/f007"), ("d31/f007", changed)]))
