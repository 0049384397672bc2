"""The staging table: rows in path order, staged changes against HEAD, commits, and the stat cache."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datactl.core.ids import object_id
from datactl.format.external import ExternalSource
from datactl.format.objects import FILE, TreeEntry, symlink_entry
from datactl.workspace.stage import (
    COARSE_RACY_WINDOW_NS,
    RACY_WINDOW_NS,
    HeadInfo,
    Stage,
    StageRow,
    StatInfo,
    head_info,
    read_stats,
)


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    s = Stage(str(tmp_path / "stage.db"))
    yield s
    s.close()


def file_entry(path: str, content: str, mode: int = 0o644, chunks: int = 1) -> TreeEntry:
    data = content.encode()
    chunk_ids = tuple(object_id(data + bytes([i])) for i in range(chunks))
    return TreeEntry(path.rsplit("/", 1)[-1], FILE, mode, len(data), object_id(data), chunk_ids)


def row(path: str, content: str | None, head: str | None = None, mode: int = 0o644) -> StageRow:
    """A row staging ``content`` (None: staged for removal) over a HEAD holding ``head``."""
    entry = None if content is None else file_entry(path, content, mode)
    return StageRow(path, entry, None, head_info(None if head is None else file_entry(path, head)))


def paths(rows) -> list[str]:
    return [r.path for r in rows]


# -- writing and reading rows -------------------------------------------------------------------


def test_rows_round_trip(stage: Stage) -> None:
    stat = StatInfo(size=5, mtime_ns=1_700_000_000_123_456_789, ctime_ns=1_700_000_000_123_456_790, ino=42, mode=0o100644, trusted=True)
    rows = [
        StageRow("d/file", file_entry("d/file", "hello", 0o755, chunks=3), stat, HeadInfo(FILE, 0o644, 4, "e" * 32)),
        StageRow("d/listed", TreeEntry("listed", FILE, 0o644, 10**12, "f" * 32, (), "c" * 32), None, None),
        StageRow("link", symlink_entry("link", "d/file"), None, None),
        StageRow("gone", None, None, HeadInfo(FILE, 0o644, 1, "a" * 32)),
    ]
    stage.write(rows)
    for r in rows:
        assert stage.get(r.path) == r
    assert stage.get("nope") is None
    assert stage.count() == 3  # a row staged for removal is not counted
    assert list(stage.iter_staged_dicts()) == [(r.path, r.entry.to_dict()) for r in sorted(rows, key=lambda r: r.path.encode()) if r.entry]


_ids = st.binary(min_size=1, max_size=4).map(object_id)
_staged_entries = st.one_of(
    st.builds(lambda mode, size, digest, chunks: TreeEntry("", FILE, mode, size, digest, tuple(chunks)),
              st.sampled_from([0o644, 0o755, 0o600]), st.integers(0, 2**63 - 1), _ids, st.lists(_ids, max_size=4)),
    st.builds(lambda size, digest, chunklist: TreeEntry("", FILE, 0o644, size, digest, (), chunklist), st.integers(0, 2**40), _ids, _ids),
    st.builds(symlink_entry, st.just(""), st.text(min_size=1, max_size=20)),
    st.builds(lambda size, digest, chunks, url: TreeEntry("", FILE, 0o644, size, digest, tuple(chunks), None, None, ExternalSource(url, etag="e"), (size,) * len(chunks)),
              st.integers(0, 2**40), _ids, st.lists(_ids, max_size=2), st.just("s3://bucket/key")),
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.from_regex(r"[a-z]{1,3}(/[a-z]{1,3}){0,2}", fullmatch=True), _staged_entries, min_size=1, max_size=8))
def test_staged_entries_read_as_a_tree_stores_them(tmp_path: Path, entries: dict[str, TreeEntry]) -> None:
    # A first commit builds its trees from these dicts, made straight from the rows: they must be the entries' own.
    with Stage(str(tmp_path / f"stage-{os.urandom(6).hex()}.db")) as stage:
        rows = [StageRow(path, replace(entry, name=path.rsplit("/", 1)[-1]), None, None) for path, entry in entries.items()]
        stage.write(rows)
        assert list(stage.iter_staged_dicts()) == [(r.path, r.entry.to_dict()) for r in sorted(rows, key=lambda r: r.path.encode()) if r.entry]


def test_rows_without_chunks(stage: Stage) -> None:
    r = StageRow("f", file_entry("f", "x", chunks=2), None, None)
    stage.write([r])
    (got,) = stage.iter_rows(with_chunks=False)
    assert got.entry is not None and got.entry.chunks == () and got.entry.digest == r.entry.digest  # type: ignore[union-attr]
    assert next(stage.iter_rows()) == r


def test_writing_a_path_again_replaces_its_row_and_deletes_remove_rows(stage: Stage) -> None:
    stage.write([row("a", "1"), row("b", "2")])
    stage.write([row("a", "3")], deletes=["b", "never-there"])
    assert [(r.path, r.entry.digest) for r in stage.iter_rows()] == [("a", object_id(b"3"))]  # type: ignore[union-attr]


NAMES = ["a", "a-b", "a.txt", "a/b", "a/b/c", "a/b-c", "a/b.txt", "a/bc", "a/b/d/e", "a0", "b", "é", "z/a", "A", "a/b0"]


def test_iter_rows_is_in_byte_order_of_path(stage: Stage) -> None:
    stage.write([row(p, p) for p in reversed(NAMES)])
    assert paths(stage.iter_rows()) == sorted(NAMES, key=str.encode)


@pytest.mark.parametrize(
    "prefix,expected",
    [
        ("a/b", ["a/b", "a/b/c", "a/b/d/e"]),
        ("a/b/", ["a/b", "a/b/c", "a/b/d/e"]),
        ("/a/b", ["a/b", "a/b/c", "a/b/d/e"]),
        ("a", ["a", "a/b", "a/b-c", "a/b.txt", "a/b/c", "a/b/d/e", "a/b0", "a/bc"]),
        ("z", ["z/a"]),
        ("a/b/c", ["a/b/c"]),
        ("nothing", []),
        ("", sorted(NAMES, key=str.encode)),
    ],
)
def test_iter_rows_under_a_prefix(stage: Stage, prefix: str, expected: list[str]) -> None:
    # Paths under 'a/b' are 'a/b' itself and 'a/b/...', never 'a/bc', 'a/b-c' or 'a/b.txt'.
    stage.write([row(p, p) for p in NAMES])
    assert paths(stage.iter_rows(prefix)) == expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.lists(st.sampled_from(["a", "b", "a-b", "a.c", "a0", "é", "_"]), min_size=1, max_size=3).map("/".join), unique=True, max_size=20),
    st.lists(st.sampled_from(["a", "b", "a-b", "a.c", "é"]), min_size=1, max_size=2).map("/".join),
)
def test_iter_rows_prefix_property(tmp_path: Path, all_paths: list[str], prefix: str) -> None:
    db = tmp_path / f"prop-{time.monotonic_ns()}.db"
    s = Stage(str(db))
    try:
        s.write([row(p, p) for p in all_paths])
        assert paths(s.iter_rows()) == sorted(all_paths, key=str.encode)
        under = [p for p in all_paths if p == prefix or p.startswith(prefix + "/")]
        assert paths(s.iter_rows(prefix)) == sorted(under, key=str.encode)
    finally:
        s.close()


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["", "a", "a/b", "a/b/", "é", "nothing"]),
    st.lists(st.sampled_from(sorted(NAMES) + ["a/b/c0", "a/a", "a/c"]), max_size=4),
)
def test_stat_rows_under_a_folder_read_in_ranges_add_up_to_the_folder(prefix: str, cuts: list[str]) -> None:
    # A scan cut into ranges reads each range apart: together they are the folder's rows, the row at the folder's
    # own path (a file named as the folder) first, each once, in path order.
    with tempfile.TemporaryDirectory() as tmp:
        s = Stage(os.path.join(tmp, "stage.db"))
        try:
            s.write([row(p, p) for p in NAMES])
            folder = prefix.strip("/")
            under = sorted((p for p in NAMES if not folder or p == folder or p.startswith(folder + "/")), key=str.encode)
            bounds = sorted(set(cuts), key=str.encode)
            ranges = list(zip([None, *bounds], [*bounds, None]))
            assert [r[0] for lo, hi in ranges for r in read_stats(s.path, prefix, lo, hi)] == under
        finally:
            s.close()

@pytest.mark.parametrize("prefix", ["a", "a/b", "a/b/", "z", "a/b/c", "a/bc", "nothing", "a/b/c/d", "zz", ""])
def test_has_rows_under_answers_as_iter_rows_does(stage: Stage, prefix: str) -> None:
    stage.write([row(p, p) for p in NAMES])
    assert stage.has_rows_under(prefix) == bool(paths(stage.iter_rows(prefix)))

def test_iter_rows_reads_a_snapshot_while_rows_are_written(stage: Stage) -> None:
    stage.write([row(f"f{i:03}", str(i)) for i in range(50)])
    seen = []
    for i, r in enumerate(stage.iter_rows()):
        seen.append(r.path)
        if i == 0:
            stage.write([row("zzz-late", "x")], deletes=["f049"])
    assert seen == [f"f{i:03}" for i in range(50)]
    assert paths(stage.iter_rows())[-2:] == ["f048", "zzz-late"]


# -- staged changes and commits -----------------------------------------------------------------


def test_staged_changes_are_rows_that_differ_from_head(stage: Stage) -> None:
    stage.write([
        row("same", "x", head="x"),
        row("added", "new"),
        row("modified", "v2", head="v1"),
        row("removed", None, head="old"),
        row("chmod", "c", head="c", mode=0o755),
        row("never", None),  # staged for removal, not in HEAD: no change
    ])
    changed = list(stage.staged_changes())
    assert paths(changed) == ["added", "chmod", "modified", "removed"]
    assert all(r.staged_change for r in changed)
    assert [r.path for r in stage.iter_rows() if r.staged_change] == paths(changed)


def test_finish_commit_makes_head_follow_the_stage(stage: Stage) -> None:
    stage.write([row("keep", "k", head="k"), row("edit", "v2", head="v1"), row("new", "n"), row("removed", None, head="old")])
    stage.set_meta("merge_head", "m" * 32)
    stage.set_meta("pending_commit", "p" * 32)
    stage.set_meta("other", "stays")
    stage.finish_commit("c" * 32)
    assert list(stage.staged_changes()) == []
    assert paths(stage.iter_rows()) == ["edit", "keep", "new"]
    assert stage.get("removed") is None
    for r in stage.iter_rows():
        assert r.head == head_info(r.entry)
    assert stage.get_meta("head") == "c" * 32
    assert stage.get_meta("merge_head") is None and stage.get_meta("pending_commit") is None
    assert stage.get_meta("other") == "stays"
    assert stage.count() == 3


def test_meta_values(stage: Stage) -> None:
    assert stage.get_meta("head") is None
    stage.set_meta("head", "a" * 32)
    stage.set_meta("head", "b" * 32)
    assert stage.get_meta("head") == "b" * 32
    stage.set_meta("head", None)
    assert stage.get_meta("head") is None


def test_the_stage_persists(tmp_path: Path) -> None:
    s = Stage(str(tmp_path / "s.db"))
    s.write([row("a", "1")])
    s.finish_commit("c" * 32)
    s.close()
    s = Stage(str(tmp_path / "s.db"))
    assert paths(s.iter_rows()) == ["a"] and s.get_meta("head") == "c" * 32
    s.close()


# -- the stat cache -----------------------------------------------------------------------------


def test_update_stats_records_stats_of_existing_paths_only(stage: Stage) -> None:
    stage.write([row("a", "1", head="1"), row("b", "2")])
    st1 = StatInfo(1, 10**18, 10**18, 7, 0o100644, True)
    stage.update_stats([("a", st1), ("missing", st1)])
    a = stage.get("a")
    assert a is not None and a.stat == st1
    assert a.entry == file_entry("a", "1") and a.head == head_info(file_entry("a", "1"))  # nothing else changed
    assert stage.get("b").stat is None  # type: ignore[union-attr]
    assert stage.get("missing") is None
    st2 = StatInfo(1, 10**18 + 5, 10**18 + 5, 7, 0o100644, False)
    stage.update_stats([("a", st2)])
    assert stage.get("a").stat == st2  # type: ignore[union-attr]


def test_a_stat_read_right_after_writing_is_not_trusted(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"data")
    st = os.stat(f)
    info = StatInfo.of(st)
    assert not info.trusted
    assert not info.matches(st)  # even the very same stat proves nothing


def test_a_stat_read_well_after_writing_is_trusted_and_matches(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"data")
    past = time.time_ns() - 10 * 10**9
    os.utime(f, ns=(past, past))
    st = os.stat(f)
    info = StatInfo.of(st)
    assert info.trusted and info.matches(st)
    assert (info.size, info.mtime_ns, info.ino, info.mode) == (4, past, st.st_ino, st.st_mode)
    time.sleep(0.05)  # file times tick coarsely: let ctime move
    f.write_bytes(b"DATA")  # same size, new mtime
    assert not info.matches(os.stat(f))
    os.utime(f, ns=(past, past))  # mtime put back: ctime still moved
    assert not info.matches(os.stat(f))


def test_the_racy_window_boundary(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    mtime = 1_700_000_000_500_000_000  # sub-second precision
    os.utime(f, ns=(mtime, mtime))
    st = os.stat(f)
    assert st.st_mtime_ns == mtime
    assert not StatInfo.of(st, read_at_ns=mtime + RACY_WINDOW_NS).trusted
    assert StatInfo.of(st, read_at_ns=mtime + RACY_WINDOW_NS + 1).trusted


def test_whole_second_mtimes_get_a_wider_racy_window(tmp_path: Path) -> None:
    # A file system that keeps whole seconds: a later write within the same second keeps the mtime.
    f = tmp_path / "f"
    f.write_bytes(b"x")
    mtime = 1_700_000_000 * 10**9
    os.utime(f, ns=(mtime, mtime))
    st = os.stat(f)
    read_at = mtime + 1_500_000_000
    assert RACY_WINDOW_NS < 1_500_000_000 < COARSE_RACY_WINDOW_NS
    assert not StatInfo.of(st, read_at_ns=read_at).trusted
    assert StatInfo.of(st, read_at_ns=mtime + COARSE_RACY_WINDOW_NS + 1).trusted
    os.utime(f, ns=(mtime + 1, mtime + 1))  # same time, one nanosecond off a whole second
    assert StatInfo.of(os.stat(f), read_at_ns=read_at).trusted


def test_matches_compares_every_field() -> None:
    class Stat:
        def __init__(self, **kw: int) -> None:
            self.__dict__.update(st_size=1, st_mtime_ns=2, st_ctime_ns=3, st_ino=4, st_mode=5, **kw)

    info = StatInfo(1, 2, 3, 4, 5, True)
    assert info.matches(Stat())  # type: ignore[arg-type]
    for field in ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_mode"):
        other = Stat()
        setattr(other, field, 99)
        assert not info.matches(other), field  # type: ignore[arg-type]
    assert not StatInfo(1, 2, 3, 4, 5, False).matches(Stat())  # type: ignore[arg-type]


def test_a_stat_survives_the_stage(stage: Stage, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"data")
    past = time.time_ns() - 10 * 10**9
    os.utime(f, ns=(past, past))
    info = StatInfo.of(os.stat(f))
    stage.write([StageRow("f", file_entry("f", "data"), info, None)])
    got = stage.get("f")
    assert got is not None and got.stat == info and got.stat.matches(os.stat(f))
    fresh = StatInfo.of(os.stat(f), read_at_ns=past)  # read "at" the write: racy
    stage.update_stats([("f", fresh)])
    assert not stage.get("f").stat.matches(os.stat(f))  # type: ignore[union-attr]


def test_a_change_of_kind_alone_is_a_staged_change(stage: Stage) -> None:
    # HEAD held a symlink to 't'; the stage holds a file whose content is 't': same digest and mode, new kind.
    link = symlink_entry("p", "t")
    as_file = TreeEntry("p", FILE, link.mode, link.size, link.digest, (link.digest,))
    stage.write([StageRow("p", as_file, None, head_info(link)), StageRow("q", link, None, head_info(link))])
    assert paths(stage.staged_changes()) == ["p"]
    stage.finish_commit("c" * 32)
    assert stage.get("p").head == HeadInfo(FILE, link.mode, link.size, link.digest)  # type: ignore[union-attr]


def test_a_written_file_is_judged_against_the_save_of_its_row(tmp_path: Path) -> None:
    # A checkout's stat, taken right after its write, is racy; the same stat is trusted once its row is saved
    # a racy window later, and never before.
    f = tmp_path / "f"
    f.write_bytes(b"x")
    mtime = 1_700_000_000_500_000_000
    os.utime(f, ns=(mtime, mtime))
    written = StatInfo.of(os.stat(f), read_at_ns=mtime + 1)
    assert not written.trusted
    assert not written.judged_at(mtime + RACY_WINDOW_NS).trusted
    assert written.judged_at(mtime + RACY_WINDOW_NS + 1) == replace(written, trusted=True)


def test_a_stage_from_before_external_files_is_upgraded_and_finds_them(tmp_path: Path) -> None:
    path = str(tmp_path / "stage.db")
    old = sqlite3.connect(path)  # the schema of a stage written before external files: no source column, no index
    old.executescript(
        "CREATE TABLE entries (path TEXT PRIMARY KEY, kind TEXT, mode INTEGER, size INTEGER, digest TEXT, chunks TEXT,"
        " chunklist TEXT, target TEXT, st_size INTEGER, st_mtime_ns INTEGER, st_ctime_ns INTEGER, st_ino INTEGER,"
        " st_mode INTEGER, st_trusted INTEGER NOT NULL DEFAULT 0, head_kind TEXT, head_mode INTEGER, head_size INTEGER,"
        " head_digest TEXT) WITHOUT ROWID;"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
    )
    digest = object_id(b"hello")
    old.execute("INSERT INTO entries(path, kind, mode, size, digest, chunks) VALUES ('a', 'file', 420, 5, ?, ?)", (digest, digest))
    old.commit()
    old.close()
    stage = Stage(path)
    try:
        assert paths(stage.iter_rows()) == ["a"] and list(stage.external_rows()) == []
        chunk = object_id(b"remote")
        external = TreeEntry("b", FILE, 0o644, 6, chunk, (chunk,), None, None, ExternalSource("s3://bucket/b", etag="e"), (6,))
        stage.write([StageRow("b", external, None, None), row("c", "stored")])
        assert [(r.path, r.entry.source) for r in stage.external_rows()] == [("b", ExternalSource("s3://bucket/b", etag="e"))]
    finally:
        stage.close()
    again = Stage(path)  # opened again: nothing left to upgrade
    try:
        assert paths(again.external_rows()) == ["b"] and paths(again.iter_rows()) == ["a", "b", "c"]
    finally:
        again.close()


def test_a_stage_from_before_the_staged_index_still_finds_what_was_staged(tmp_path: Path) -> None:
    path = str(tmp_path / "stage.db")
    stage = Stage(path)
    stage.write([row("same", "x", head="x"), row("added", "new"), row("modified", "v2", head="v1"), row("removed", None, head="old")])
    stage.close()
    old = sqlite3.connect(path)  # as a stage written before the index of staged rows
    old.execute("DROP INDEX staged_paths")
    old.commit()
    old.close()
    stage = Stage(path)  # the index is made from the rows already there
    try:
        assert paths(stage.staged_changes()) == ["added", "modified", "removed"]
        stage.finish_commit("c" * 32)
        assert list(stage.staged_changes()) == []
        stage.write([row("same", "y", head="x")])
        assert paths(stage.staged_changes()) == ["same"]
    finally:
        stage.close()
