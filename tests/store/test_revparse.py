"""The ref grammar: what a user types (HEAD~2, NAME@TAG, a tag, an id prefix) and the commit it names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from datactl.core.errors import AmbiguousRef, UnknownRef
from datactl.format.layout import head_ref, tag_ref
from datactl.format.objects import FILE, Commit, TreeEntry
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import StoreConfig
from datactl.store.index import ObjectIndex
from datactl.store.repository import Repository, read_store_config, write_store_config
from datactl.store.revparse import (
    MIN_PREFIX,
    ParsedRef,
    RefContext,
    StoreRefs,
    parse_ref,
    resolve_ref,
)
from datactl.store.trees import build_tree
from storage_backends import LocalBackend

# -- parse_ref -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,base,back",
    [
        ("v1~2^", "v1", 3),
        ("HEAD", "HEAD", 0),
        ("HEAD~", "HEAD", 1),
        ("HEAD~0", "HEAD", 0),
        ("HEAD^^", "HEAD", 2),
        ("HEAD~10", "HEAD", 10),
        ("HEAD~2~3", "HEAD", 5),
        ("ds@v1~1", "ds@v1", 1),
        ("ds@", "ds@", 0),
        ("  abc123~1  ", "abc123", 1),
        ("a~b", "a~b", 0),  # not a step: stays in the base
    ],
)
def test_parse_ref(text: str, base: str, back: int) -> None:
    assert parse_ref(text) == ParsedRef(base, back)


@pytest.mark.parametrize("text", ["", "   ", "~", "~2", "^", "^~3"])
def test_a_ref_without_a_base_is_unknown(text: str) -> None:
    with pytest.raises(UnknownRef, match="empty ref"):
        parse_ref(text)


# -- resolve_ref over a RefLookup --------------------------------------------------------------


def cid(n: int) -> str:
    return f"{n:x}".rjust(32, "c")


class FakeLookup:
    """A RefLookup (a Protocol callers implement) answering from dicts."""

    label = "the fake store"

    def __init__(self) -> None:
        self.heads: dict[tuple[str, str], str] = {}
        self.tags: dict[tuple[str, str], str] = {}
        self.commits: dict[str, tuple[str, list[str]]] = {}  # id -> (name, parents)

    def add(self, commit_id: str, name: str, *parents: str) -> str:
        self.commits[commit_id] = (name, list(parents))
        return commit_id

    def head(self, kind: str, name: str) -> str | None:
        return self.heads.get((kind, name))

    def tag(self, name: str, tag: str) -> str | None:
        return self.tags.get((name, tag))

    def commits_with_prefix(self, prefix: str, name: str | None) -> list[str]:
        return sorted(c for c, (n, _) in self.commits.items() if c.startswith(prefix) and (name is None or n == name))

    def first_parent(self, commit_id: str) -> str | None:
        parents = self.commits[commit_id][1]
        return parents[0] if parents else None


@pytest.fixture
def lookup() -> FakeLookup:
    lk = FakeLookup()
    # ds: a1 <- a2 <- a3 (head), a2 tagged v1; a merge a4 of a3 and b1 is not a head
    lk.add("a1" + "0" * 30, "ds")
    lk.add("a2" + "0" * 30, "ds", "a1" + "0" * 30)
    lk.add("a3" + "1" * 30, "ds", "a2" + "0" * 30)
    lk.add("b1" + "0" * 30, "other")
    lk.add("a4" + "2" * 30, "ds", "a3" + "1" * 30, "b1" + "0" * 30)
    lk.add("ee" + "0" * 30, "model1")
    lk.heads[("dataset", "ds")] = "a3" + "1" * 30
    lk.heads[("dataset", "other")] = "b1" + "0" * 30
    lk.heads[("model", "model1")] = "ee" + "0" * 30
    lk.tags[("ds", "v1")] = "a2" + "0" * 30
    lk.tags[("other", "v1")] = "b1" + "0" * 30
    lk.tags[("ds", "other")] = "a1" + "0" * 30  # a tag of ds named like another dataset
    return lk


A1, A2, A3, A4, B1, E1 = "a1" + "0" * 30, "a2" + "0" * 30, "a3" + "1" * 30, "a4" + "2" * 30, "b1" + "0" * 30, "ee" + "0" * 30
DS = RefContext(name="ds", kind="dataset", head=A4)


def test_head_is_the_checked_out_version(lookup: FakeLookup) -> None:
    assert resolve_ref(lookup, "HEAD", DS) == A4
    assert resolve_ref(lookup, "HEAD~1", DS) == A3  # first parent of the merge
    assert resolve_ref(lookup, "HEAD^^", DS) == A2
    assert resolve_ref(lookup, "HEAD~3", DS) == A1


def test_head_without_a_checked_out_version_is_unknown(lookup: FakeLookup) -> None:
    with pytest.raises(UnknownRef, match="HEAD names no version"):
        resolve_ref(lookup, "HEAD")
    with pytest.raises(UnknownRef):
        resolve_ref(lookup, "HEAD", RefContext(name="ds", head=None))


def test_a_name_is_its_latest_version(lookup: FakeLookup) -> None:
    assert resolve_ref(lookup, "ds") == A3
    assert resolve_ref(lookup, "ds~2") == A1
    assert resolve_ref(lookup, "model1") == E1  # a model, found when no dataset has the name
    assert resolve_ref(lookup, "model1", RefContext(kind="model")) == E1


def test_name_at_version(lookup: FakeLookup) -> None:
    assert resolve_ref(lookup, "ds@v1") == A2
    assert resolve_ref(lookup, "other@v1") == B1
    assert resolve_ref(lookup, "ds@") == A3
    assert resolve_ref(lookup, "ds@HEAD") == A3
    assert resolve_ref(lookup, "ds@HEAD~1") == A2
    assert resolve_ref(lookup, "ds@v1^") == A1
    assert resolve_ref(lookup, "ds@a4" + "2222") == A4  # an id prefix of ds's
    assert resolve_ref(lookup, "model1@") == E1


def test_name_at_a_prefix_of_another_datasets_commit_is_unknown(lookup: FakeLookup) -> None:
    with pytest.raises(UnknownRef, match=r"ds has no version 'b10000' in the fake store"):
        resolve_ref(lookup, "ds@b10000")


def test_name_at_an_unknown_tag_or_name(lookup: FakeLookup) -> None:
    with pytest.raises(UnknownRef, match="ds has no version 'v9'"):
        resolve_ref(lookup, "ds@v9")
    with pytest.raises(UnknownRef, match="no dataset or model named 'nope' in the fake store"):
        resolve_ref(lookup, "nope@v1")
    with pytest.raises(UnknownRef, match="unknown ref"):
        resolve_ref(lookup, "../x@v1")


def test_a_tag_of_the_current_dataset(lookup: FakeLookup) -> None:
    assert resolve_ref(lookup, "v1", DS) == A2
    assert resolve_ref(lookup, "v1~1", DS) == A1
    assert resolve_ref(lookup, "v1", RefContext(name="other", head=B1)) == B1
    # Without a current dataset a tag means nothing.
    with pytest.raises(UnknownRef, match="unknown ref 'v1'"):
        resolve_ref(lookup, "v1")


def test_a_tag_of_the_current_dataset_wins_over_a_dataset_name(lookup: FakeLookup) -> None:
    assert resolve_ref(lookup, "other", DS) == A1
    assert resolve_ref(lookup, "other") == B1


def test_id_prefixes(lookup: FakeLookup) -> None:
    assert resolve_ref(lookup, A3) == A3
    assert resolve_ref(lookup, A3[:MIN_PREFIX]) == A3
    assert resolve_ref(lookup, "b10000~0") == B1
    assert resolve_ref(lookup, A4[:8] + "~1") == A3


def test_a_short_prefix_gets_a_hint_about_six_digits(lookup: FakeLookup) -> None:
    with pytest.raises(UnknownRef) as exc:
        resolve_ref(lookup, A3[:5])
    assert exc.value.hint is not None and "6 hex digits" in exc.value.hint
    assert f"unknown ref '{A3[:5]}'" in str(exc.value)


def test_a_prefix_of_two_commits_is_ambiguous(lookup: FakeLookup) -> None:
    lookup.add("a1" + "0" * 29 + "9", "ds")
    with pytest.raises(AmbiguousRef, match="a10000 is ambiguous") as exc:
        resolve_ref(lookup, "a10000")
    assert exc.value.hint == "give more hex digits"
    with pytest.raises(AmbiguousRef):
        resolve_ref(lookup, "ds@a10000")


def test_a_prefix_that_matches_nothing_is_unknown(lookup: FakeLookup) -> None:
    with pytest.raises(UnknownRef, match="unknown ref 'dddddd'"):
        resolve_ref(lookup, "dddddd")


def test_stepping_past_the_first_version_has_no_parent(lookup: FakeLookup) -> None:
    with pytest.raises(UnknownRef, match=f"ds~3: {A1[:12]} has no parent"):
        resolve_ref(lookup, "ds~3")
    with pytest.raises(UnknownRef, match="has no parent"):
        resolve_ref(lookup, "HEAD~4", DS)
    with pytest.raises(UnknownRef, match="has no parent"):
        resolve_ref(lookup, "b10000^")


@pytest.mark.parametrize("text", ["", "~1", "nope", "x y", "ds@@v1", "../ds"])
def test_unknown_refs(lookup: FakeLookup, text: str) -> None:
    with pytest.raises(UnknownRef):
        resolve_ref(lookup, text, DS)


# -- StoreRefs over a real store ----------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Repository, dict[str, str]]]:
    backend = LocalBackend(os.path.join(tmp_path, "store"))
    write_store_config(backend, StoreConfig())
    repo = Repository(backend, ObjectIndex(str(tmp_path / "index.db")), read_store_config(backend), str(tmp_path / "tmp"), workers=2)
    tree = build_tree(repo, [("f", TreeEntry("f", FILE, 0o644, 0, "0" * 32))])

    def commit(name: str, *parents: str, msg: str) -> str:
        return repo.put(ObjectType.COMMIT, Commit(tree, parents, "dataset", name, msg, "me", "2024-01-01T00:00:00Z").encode())

    c1 = commit("ds", msg="one")
    c2 = commit("ds", c1, msg="two")
    o1 = commit("other", msg="other one")
    repo.flush()
    repo.refs.update(head_ref("dataset", "ds"), c2, None)
    repo.refs.update(tag_ref("ds", "v1"), c1, None)
    repo.refs.update(head_ref("dataset", "other"), o1, None)
    yield repo, {"c1": c1, "c2": c2, "o1": o1, "tree": tree}
    repo.close()


def test_store_refs_resolve_names_tags_steps_and_ids(store: tuple[Repository, dict[str, str]]) -> None:
    repo, ids = store
    refs = repo.ref_lookup()
    assert isinstance(refs, StoreRefs) and refs.label == repo.backend.url
    c1, c2, o1 = ids["c1"], ids["c2"], ids["o1"]
    assert resolve_ref(refs, "ds") == c2
    assert resolve_ref(refs, "ds~1") == c1
    assert resolve_ref(refs, "ds@v1") == c1
    assert resolve_ref(refs, "ds@") == c2
    assert resolve_ref(refs, "v1", RefContext(name="ds", head=c2)) == c1
    assert resolve_ref(refs, "HEAD^", RefContext(name="ds", head=c2)) == c1
    assert resolve_ref(refs, c2) == c2
    assert resolve_ref(refs, c2[:8]) == c2
    assert resolve_ref(refs, f"ds@{c1[:10]}") == c1
    assert resolve_ref(refs, "other") == o1


def test_store_refs_errors(store: tuple[Repository, dict[str, str]]) -> None:
    repo, ids = store
    refs = repo.ref_lookup()
    with pytest.raises(UnknownRef, match="has no parent"):
        resolve_ref(refs, "ds~2")
    with pytest.raises(UnknownRef, match="ds has no version"):
        resolve_ref(refs, f"ds@{ids['o1'][:10]}")  # a commit of another dataset
    with pytest.raises(UnknownRef, match="no dataset or model named 'nope'"):
        resolve_ref(refs, "nope@v1")
    # A tree is an object but not a commit: neither its id nor its prefix names a version.
    with pytest.raises(UnknownRef):
        resolve_ref(refs, ids["tree"])
    with pytest.raises(UnknownRef):
        resolve_ref(refs, ids["tree"][:10])


def test_store_refs_lookups(store: tuple[Repository, dict[str, str]]) -> None:
    repo, ids = store
    refs = StoreRefs(repo.refs, repo.objects, label="mine")
    assert refs.label == "mine"
    assert refs.head("dataset", "ds") == ids["c2"]
    assert refs.head("model", "ds") is None
    assert refs.tag("ds", "v1") == ids["c1"] and refs.tag("ds", "v2") is None
    assert refs.first_parent(ids["c2"]) == ids["c1"] and refs.first_parent(ids["c1"]) is None
    assert ids["c1"] in refs.commits_with_prefix(ids["c1"][:6], None)
    assert refs.commits_with_prefix(ids["c1"], "ds") == [ids["c1"]]
    assert refs.commits_with_prefix(ids["c1"], "other") == []
    assert refs.commits_with_prefix(ids["tree"], None) == []
