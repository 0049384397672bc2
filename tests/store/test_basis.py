"""Building a file of a version on the file it replaces (datactl.store.basis): the bytes come out identical
whatever the basis holds, and only what changed is read from the store."""

from __future__ import annotations

import errno
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Cli, snapshot, write
from datactl.core.progress import NullProgress
from datactl.format.layout import pack_key
from datactl.format.objects import TreeEntry
from datactl.store.basis import MIN_BASIS_SIZE, Basis, plan_pieces, write_from_basis
from datactl.store.trees import lookup_path
from datactl.workspace.checkout import prepare_entry
from datactl.workspace.workspace import Workspace

SIZE = MIN_BASIS_SIZE + (2 << 20)


def _versions(cli: Cli, ws_dir: Path) -> tuple[bytes, bytes]:
    """Commit ``big.bin`` twice (tagged v1 and v2): v2 has an insert and an overwrite in v1's bytes."""
    rng = random.Random(7)
    v1 = rng.randbytes(SIZE)
    v2 = v1[: SIZE // 3] + b"an insert shifts the rest" + v1[SIZE // 3 : SIZE // 2] + b"X" * 5000 + v1[SIZE // 2 + 5000 :]
    write(ws_dir / "big.bin", v1)
    write(ws_dir / "small.txt", "small\n")
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")
    write(ws_dir / "big.bin", v2)
    cli("add", ".")
    cli("commit", "-m", "v2", "--tag", "v2")
    return v1, v2


def _entry(ws: Workspace, ref: str, path: str) -> TreeEntry:
    entry = lookup_path(ws.repo, ws.repo.read_commit(ws.resolve(ref)).tree, path)
    assert entry is not None
    return entry


def test_checkout_copies_what_the_versions_share_and_reads_only_the_rest(cli: Cli, ws_dir: Path) -> None:
    v1, v2 = _versions(cli, ws_dir)
    with Workspace.open(str(ws_dir)) as ws:
        before = ws.repo.objects.stats.data_bytes
        result = ws.checkout(ws.resolve("v1"))
        read = ws.repo.objects.stats.data_bytes - before
    assert (ws_dir / "big.bin").read_bytes() == v1
    assert result.written == 1 and result.bytes_reused > 0.9 * SIZE
    assert read < 0.1 * SIZE, f"read {read} bytes of the store for a {SIZE}-byte file that differs in a few chunks"
    out = cli("checkout", "v2").out
    assert "reused from the files replaced" in out
    assert (ws_dir / "big.bin").read_bytes() == v2
    assert "nothing to commit, workspace clean" in cli("status").out
    assert "reused from the files replaced" in cli("checkout", "--force", "v1").out  # the full plan, too
    assert (ws_dir / "big.bin").read_bytes() == v1
    assert [p for p in os.listdir(ws_dir) if p.startswith(".")] == [".datactl"], "no temporary file left"


def test_a_file_system_that_refuses_kernel_copies_gets_the_bytes_through_a_buffer(cli: Cli, ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1, _ = _versions(cli, ws_dir)

    def refused(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refused, raising=False)
    with Workspace.open(str(ws_dir)) as ws:
        result = ws.checkout(ws.resolve("v1"))
    assert (ws_dir / "big.bin").read_bytes() == v1
    assert result.bytes_reused > 0.9 * SIZE


@pytest.mark.parametrize("damage", ["same size, other bytes", "cut short", "a folder", "gone", "a fifo"])
def test_a_basis_that_is_not_what_its_entry_says_leaves_nothing(cli: Cli, ws_dir: Path, tmp_path: Path, damage: str) -> None:
    _, v2_bytes = _versions(cli, ws_dir)
    basis = tmp_path / "basis"
    if damage == "same size, other bytes":
        basis.write_bytes(bytes(len(v2_bytes)))
    elif damage == "cut short":
        basis.write_bytes(v2_bytes[: SIZE // 2])
    elif damage == "a folder":
        basis.mkdir()
    elif damage == "a fifo":
        os.mkfifo(basis)  # opening it must not wait for a writer
    target = tmp_path / "out.bin"
    with Workspace.open(str(ws_dir)) as ws:
        v1, v2 = _entry(ws, "v1", "big.bin"), _entry(ws, "v2", "big.bin")
        assert write_from_basis(ws.repo, v1, Basis(str(basis), v2), str(target)) is None
    assert not target.exists()


def test_a_basis_whose_chunks_the_store_does_not_know_leaves_nothing(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    """The old entry's layout comes from the store; without it there is nothing to build on (and no error)."""
    _versions(cli, ws_dir)
    target = tmp_path / "out.bin"
    with Workspace.open(str(ws_dir)) as ws:
        v1, v2 = _entry(ws, "v1", "big.bin"), _entry(ws, "v2", "big.bin")
        unknown = replace(v2, chunks=("0" * 32,), chunklist=None)
        assert write_from_basis(ws.repo, v1, Basis(str(ws_dir / "big.bin"), unknown), str(target)) is None
    assert not target.exists()


def test_a_file_that_does_not_hold_its_basis_entry_is_written_from_the_store(cli: Cli, ws_dir: Path) -> None:
    """The stat only says a basis is worth trying; what is built on it is checked against the digest."""
    v1_bytes, v2_bytes = _versions(cli, ws_dir)
    with Workspace.open(str(ws_dir)) as ws:
        v1, v2 = _entry(ws, "v1", "big.bin"), _entry(ws, "v2", "big.bin")
        # big.bin holds v2; said to hold v1, its chunks sit at other offsets than v1's layout says.
        p = prepare_entry(ws.repo, str(ws_dir), "big.bin", v2, NullProgress(), set(), set(), basis=v1)
    try:
        assert Path(p.tmp).read_bytes() == v2_bytes and p.reused == 0
    finally:
        os.unlink(p.tmp)
    assert (ws_dir / "big.bin").read_bytes() == v2_bytes


def test_a_checkout_that_meets_a_damaged_chunk_while_building_on_a_basis_changes_nothing(cli: Cli, ws_dir: Path) -> None:
    _versions(cli, ws_dir)
    with Workspace.open(str(ws_dir)) as ws:
        only_v1 = set(ws.repo.objects.chunk_ids(_entry(ws, "v1", "big.bin"))) - set(ws.repo.objects.chunk_ids(_entry(ws, "v2", "big.bin")))
        loc = ws.repo.locate(sorted(only_v1)[0])
    pack = ws_dir / ".datactl" / "store" / pack_key(loc.pack)
    raw = bytearray(pack.read_bytes())
    raw[loc.entry.offset + loc.entry.stored_len // 2] ^= 0xFF
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(raw))
    before = snapshot(ws_dir)
    r = cli("checkout", "v1", ok=False)
    assert r.code == 1 and "corrupt" in r.err and "Traceback" not in r.err
    assert snapshot(ws_dir) == before, "v2's file is as it was, no temporary file left"


chunk_contents = st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=8, unique=True)


@settings(max_examples=300, deadline=None)
@given(chunk_contents, st.data())
def test_pieces_rebuild_the_new_file_from_the_old_one_and_the_store(contents: list[bytes], data: st.DataObject) -> None:
    ids = [f"{i:032x}" for i in range(len(contents))]
    by_id = dict(zip(ids, contents))
    old_ids = data.draw(st.lists(st.sampled_from(ids), max_size=12))
    new_ids = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=12))
    old = b"".join(by_id[i] for i in old_ids)
    pieces = plan_pieces(new_ids, [len(by_id[i]) for i in new_ids], old_ids, [len(by_id[i]) for i in old_ids])
    rebuilt = b""
    for p in pieces:
        if p.source_offset is None:
            assert p.ids and p.length == sum(len(by_id[i]) for i in p.ids)
            assert not set(p.ids) & set(old_ids), "a chunk the old file has is copied, not read"
            rebuilt += b"".join(by_id[i] for i in p.ids)
        else:
            assert not p.ids and p.source_offset + p.length <= len(old)
            rebuilt += old[p.source_offset : p.source_offset + p.length]
    assert rebuilt == b"".join(by_id[i] for i in new_ids)
    for a, b in zip(pieces, pieces[1:]):
        assert not (a.source_offset is None and b.source_offset is None), "runs read from the store are merged"
        assert a.source_offset is None or b.source_offset is None or a.source_offset + a.length != b.source_offset, "adjacent copies are merged"
