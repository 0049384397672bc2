"""Storing many files at once: the parallel batched path cuts and stores exactly what the streamed path does."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datactl.core.errors import DatactlError
from datactl.format.objects import FILE, TreeEntry
from datactl.format.storeconfig import ChunkerParams, StoreConfig
from datactl.store import ingest as ingest_module
from datactl.store.chunker import Chunker
from datactl.store.filedata import iter_file_bytes, read_ahead, store_file
from datactl.store.index import ObjectIndex
from datactl.store.ingest import SMALL_FILE, FileIngest, StoredFile
from datactl.store.repository import Repository, read_store_config, write_store_config
from storage_backends import LocalBackend

# Tiny chunks, so files of a few KiB have many and the chunk-list case (over 256 chunks) is reached cheaply.
TINY = ChunkerParams(avg_size=256, min_size=64, max_size=1024)


# The two ways of working: small files read and objects compressed by threads, or in the caller's thread (a
# process that is one of several, one per core, as an add's workers are).
WAYS = {"threads": False, "one-thread": True}


def open_repo(root: str, params: ChunkerParams, one_thread: bool = False) -> Repository:
    backend = LocalBackend(os.path.join(root, "store"))
    write_store_config(backend, StoreConfig(chunker=params))
    index = ObjectIndex(os.path.join(root, "index.db"))
    return Repository(backend, index, read_store_config(backend), os.path.join(root, "tmp"), workers=2, compress_here=one_thread)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    repo = open_repo(str(tmp_path_factory.mktemp("ingest")), TINY)
    yield repo
    repo.close()


@pytest.fixture(scope="module", params=list(WAYS), ids=list(WAYS))
def tiny_repo_either_way(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Repository, bool]]:
    repo = open_repo(str(tmp_path_factory.mktemp("ingest")), TINY, one_thread=WAYS[request.param])
    yield repo, WAYS[request.param]
    repo.close()


@pytest.fixture(scope="module")
def tiny_repo_one_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    repo = open_repo(str(tmp_path_factory.mktemp("ingest")), TINY, one_thread=True)
    yield repo
    repo.close()


def ingest_all(repo: Repository, paths: list[str], one_thread: bool = False, sized: bool = True) -> list[tuple[str, StoredFile]]:
    """Store ``paths``, each given with its size (or, not ``sized``, without: the file's own stat decides)."""
    got: list[tuple[str, StoredFile]] = []
    with FileIngest(repo, Chunker(repo.config.chunker), lambda token, stored: got.append((token, stored)), read_small_here=one_thread) as ingest:
        for p in paths:
            ingest.add(p, os.path.getsize(p) if sized else None, p)
        ingest.drain()
    repo.flush()
    return got


def random_files(folder: Path, sizes: list[int], seed: int) -> list[str]:
    """Files f0, f1, ... of random bytes, of ``sizes``; their paths."""
    rng = random.Random(seed)
    paths = []
    for i, size in enumerate(sizes):
        p = folder / f"f{i}"
        p.write_bytes(rng.randbytes(size))
        paths.append(str(p))
    return paths


def restored(repo: Repository, stored: StoredFile) -> bytes:
    c = stored.content
    entry = TreeEntry("f", FILE, 0o644, c.size, c.digest, c.chunks, c.chunklist)
    return b"".join(iter_file_bytes(repo, entry, "f"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.one_of(st.integers(0, 70), st.integers(60, 1100), st.integers(1100, 90_000)), min_size=1, max_size=12), seed=st.integers(0, 2**32))
def test_batched_files_are_cut_and_stored_as_the_streamed_path_does(
    tiny_repo_either_way: tuple[Repository, bool], tmp_path_factory: pytest.TempPathFactory, sizes: list[int], seed: int
) -> None:
    tiny_repo, one_thread = tiny_repo_either_way
    paths = random_files(tmp_path_factory.mktemp("files"), sizes, seed)
    got = ingest_all(tiny_repo, paths, one_thread)
    assert [token for token, _ in got] == paths  # reported in the order given
    for path, stored in got:
        streamed = store_file(tiny_repo, Chunker(TINY), path)
        assert stored.content == streamed
        assert restored(tiny_repo, stored) == Path(path).read_bytes()


@pytest.mark.parametrize("way", list(WAYS))
def test_big_and_small_files_are_reported_in_the_order_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    # Small files read in the caller's thread are stored at once, while big files' pieces come from workers.
    monkeypatch.setattr(ingest_module, "WAITING_BYTES", ingest_module.PIECE_BYTES)  # big files' pieces wait for room
    repo = open_repo(str(tmp_path), ChunkerParams(), one_thread=WAYS[way])
    rng = random.Random(7)
    sizes = [10, SMALL_FILE + 1, 20_000, 0, SMALL_FILE, 3 * SMALL_FILE, 9 * SMALL_FILE, 7, 9 * SMALL_FILE, 1000, 5]
    paths = []
    for i, size in enumerate(sizes):
        p = tmp_path / f"f{i}"
        p.write_bytes(rng.randbytes(size))
        paths.append(str(p))
    try:
        got = ingest_all(repo, paths, WAYS[way])
        assert [token for token, _ in got] == paths
        for path, stored in got:
            assert stored.content.size == os.path.getsize(path)
            assert restored(repo, stored) == Path(path).read_bytes()
    finally:
        repo.close()


def test_a_file_that_grew_past_the_small_limit_after_listing_is_stored_whole(tmp_path: Path) -> None:
    repo = open_repo(str(tmp_path), ChunkerParams())
    p = tmp_path / "growing"
    p.write_bytes(b"x" * 100)
    listed = os.path.getsize(p)
    p.write_bytes(random.Random(3).randbytes(SMALL_FILE + 5000))
    got: list[StoredFile] = []
    try:
        with FileIngest(repo, Chunker(repo.config.chunker), lambda _t, s: got.append(s)) as ingest:
            ingest.add(str(p), listed, None)
            ingest.drain()
        repo.flush()
        assert got[0].content.size == SMALL_FILE + 5000
        assert got[0].stat.st_size == SMALL_FILE + 5000  # the caller sees it changed since listed
        assert restored(repo, got[0]) == p.read_bytes()
    finally:
        repo.close()


def test_a_file_gone_before_it_is_read_is_a_clear_error(tmp_path: Path) -> None:
    repo = open_repo(str(tmp_path), ChunkerParams())
    kept = tmp_path / "kept"
    kept.write_bytes(b"kept")
    try:
        with FileIngest(repo, Chunker(repo.config.chunker), lambda _t, _s: None) as ingest:
            ingest.add(str(kept), 4, None)
            ingest.add(str(tmp_path / "gone"), 10, None)
            with pytest.raises(DatactlError, match=r"cannot read .*gone"):
                ingest.drain()
    finally:
        repo.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.binary(max_size=3_000), st.just(b"x" * 70_000)), max_size=30))
def test_read_ahead_hands_each_small_file_its_chunks_in_order(tiny_repo: Repository, tmp_path: Path, contents: list[bytes | None]) -> None:
    # Restoring reads small files' chunks in batches; every item comes back in order, and the bytes restore exactly.
    items: list[tuple[int, TreeEntry | None]] = []
    for i, data in enumerate(contents):
        if data is None:
            items.append((i, None))  # not a file to restore (out of a sparse scope, say)
            continue
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        content = store_file(tiny_repo, Chunker(TINY), str(path))
        items.append((i, TreeEntry(f"f{i}", FILE, 0o644, content.size, content.digest, content.chunks, content.chunklist)))
    tiny_repo.flush()
    out = list(read_ahead(tiny_repo, items, lambda item: item[1]))
    assert [item for item, _ in out] == items
    for (i, entry), chunks in out:
        if entry is None or entry.chunklist is not None:  # over 256 chunks: listed in a chunk list, and streamed
            assert chunks is None
        else:
            assert chunks is not None
            assert b"".join(iter_file_bytes(tiny_repo, entry, entry.name, chunks)) == contents[i]


def test_big_files_cut_side_by_side_are_stored_as_the_streamed_path_stores_them(tmp_path: Path) -> None:
    # Several big files (handed over in pieces by two workers at once) between small ones: each is described exactly
    # as streaming it alone describes it, reported in the order given, and restores bit for bit.
    repo = open_repo(str(tmp_path), ChunkerParams())
    rng = random.Random(11)
    sizes = [9 * SMALL_FILE + 17, 100, 5 * SMALL_FILE, 7 * SMALL_FILE + 3, 2_000, 9 * SMALL_FILE]
    paths = []
    for i, size in enumerate(sizes):
        p = tmp_path / f"f{i}"
        p.write_bytes(rng.randbytes(size // 2) * 2 + rng.randbytes(size % 2))  # repeats inside: dedup within a file
        paths.append(str(p))
    try:
        got = ingest_all(repo, paths)
        assert [token for token, _ in got] == paths
        for path, stored in got:
            assert stored.content == store_file(repo, Chunker(repo.config.chunker), path)
            assert restored(repo, stored) == Path(path).read_bytes()
    finally:
        repo.close()


def test_a_big_file_gone_before_it_is_read_is_a_clear_error(tmp_path: Path) -> None:
    repo = open_repo(str(tmp_path), ChunkerParams())
    reported: list[str] = []
    kept = tmp_path / "kept"
    kept.write_bytes(b"k" * (2 * SMALL_FILE))
    try:
        with FileIngest(repo, Chunker(repo.config.chunker), lambda token, _s: reported.append(token)) as ingest:
            ingest.add(str(kept), 2 * SMALL_FILE, "kept")
            ingest.add(str(tmp_path / "gone"), 3 * SMALL_FILE, "gone")
            with pytest.raises(DatactlError, match=r"cannot read .*gone"):
                ingest.drain()
        assert reported == ["kept"]  # the file before it was stored and reported first
    finally:
        repo.close()


def test_closing_an_ingest_with_big_files_in_flight_stops_its_workers(tmp_path: Path) -> None:
    # A caller that fails midway closes the ingest without draining it: workers blocked handing pieces over stop.
    repo = open_repo(str(tmp_path), ChunkerParams())
    data = random.Random(5).randbytes(24 * SMALL_FILE)  # two files cut at once hold more than may wait: the workers block
    paths = []
    for i in range(4):
        p = tmp_path / f"big{i}"
        p.write_bytes(data[i:])
        paths.append(str(p))

    def fail_midway() -> None:
        with pytest.raises(RuntimeError), FileIngest(repo, Chunker(repo.config.chunker), lambda _t, _s: None) as ingest:
            for p in paths:
                ingest.add(p, os.path.getsize(p), p)
            raise RuntimeError("the caller failed")

    worker = threading.Thread(target=fail_midway, daemon=True)
    worker.start()
    worker.join(60)
    try:
        assert not worker.is_alive(), "closing the ingest waited for ever"
    finally:
        repo.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.one_of(st.integers(0, 70), st.integers(60, 1100), st.integers(1100, 9_000)), min_size=1, max_size=12), seed=st.integers(0, 2**32))
def test_files_given_without_their_size_are_stored_and_reported_as_listed_ones(
    tiny_repo_one_thread: Repository, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, sizes: list[int], seed: int
) -> None:
    # An add's worker gets new files without a stat: each one's own, as opened, decides how it is read. Small
    # limits, so these files cross them: over 4 KiB a file is big (streamed, a unit of its own between the small
    # ones), and what is read is stored every 8 KiB.
    monkeypatch.setattr(ingest_module, "SMALL_FILE", 4096)
    monkeypatch.setattr(ingest_module, "BATCH_BYTES", 8192)
    paths = random_files(tmp_path_factory.mktemp("files"), sizes, seed)
    listed = ingest_all(tiny_repo_one_thread, paths, one_thread=True)
    unlisted = ingest_all(tiny_repo_one_thread, paths, one_thread=True, sized=False)
    assert [token for token, _ in unlisted] == paths  # reported in the order given
    for (path, sized), (_, found) in zip(listed, unlisted):
        assert found.content == sized.content
        assert sized.opened is None and found.opened is not None and found.opened.st_size == os.path.getsize(path)
        assert restored(tiny_repo_one_thread, found) == Path(path).read_bytes()
