"""Design invariant 1 on a folder: data fsynced, then renamed into place (its folder fsynced), then the ref written.

A spy on the standard library's ``os.fsync``, ``os.replace``, ``os.rename`` and
``os.link`` records what ``add`` + ``commit`` and a ``push`` to a folder remote
ask of the operating system, in order; the test then checks that order for
every pack and index file the command created, against the first ref it wrote.
(The kill -9 tests in tests/workspace/test_crash.py and tests/remote/test_push_kills.py
check the outcome; this checks what makes it survive a power cut.)
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Cli, write


@dataclass(frozen=True)
class Event:
    kind: str  # "fsync", "rename" (os.replace, os.rename and os.link all give a file its final name)
    path: str  # fsync: what the descriptor was open on; rename: the final name
    source: str = ""  # rename: the name the data was written under


class OsSpy:
    """Records fsync / replace / rename / link calls (from any thread), then calls the real function."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        real_fsync, real_replace, real_rename, real_link = os.fsync, os.replace, os.rename, os.link

        def fsync(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            real_fsync(fd)
            self._add(Event("fsync", path))

        def renamer(real):
            def rename(src, dst, *args, **kwargs):
                real(src, dst, *args, **kwargs)
                self._add(Event("rename", os.path.realpath(dst), os.path.realpath(src)))

            return rename

        self._patch = pytest.MonkeyPatch()
        self._patch.setattr(os, "fsync", fsync)
        self._patch.setattr(os, "replace", renamer(real_replace))
        self._patch.setattr(os, "rename", renamer(real_rename))
        self._patch.setattr(os, "link", renamer(real_link))

    def __enter__(self) -> "OsSpy":
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.undo()

    def _add(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)



def store_files(store: Path) -> set[str]:
    return {os.path.realpath(p) for sub in ("packs", "index") for p in (store / sub).rglob("*") if p.is_file()}


def check_order(events: list[Event], store: Path, new_files: set[str], ref: str) -> None:
    """Every new file: its bytes fsynced, then renamed into place, then its folder fsynced; all before ``ref`` moved."""
    assert new_files, "the command wrote packs and index files"
    ref_path = os.path.realpath(store / "refs" / ref)
    ref_moves = [i for i, e in enumerate(events) if e.kind == "rename" and e.path == ref_path]
    assert ref_moves, f"{ref} was written by a rename into place"
    ref_at = ref_moves[0]
    for final in sorted(new_files) + [ref_path]:
        before = ref_at if final != ref_path else len(events)
        named = [i for i, e in enumerate(events[:before]) if e.kind == "rename" and e.path == final]
        assert named, f"{final} got its name before {ref} moved"
        at = named[0]
        source = events[at].source
        assert any(e.kind == "fsync" and e.path == source for e in events[:at]), f"{source} was fsynced before it became {final}"
        folder = os.path.dirname(final)
        assert any(e.kind == "fsync" and e.path == folder for e in events[at + 1 : before + 1 if final == ref_path else before]), (
            f"the folder of {final} was fsynced after the rename" + ("" if final == ref_path else f" and before {ref} moved")
        )


def files(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(30):
        write(root / f"d{i % 3}" / f"{i}.bin", rng.randbytes(rng.randint(1_000, 60_000)))
    write(root / "big.bin", rng.randbytes(3_000_000))


def test_add_and_commit_make_packs_durable_before_the_ref_moves(cli: Cli, ws_dir: Path) -> None:
    cli("init", "--name", "ds")
    store = ws_dir / ".datactl" / "store"
    for seed in (1, 2):  # the second time, new packs and the ref replaced rather than created
        files(ws_dir, seed)
        before = store_files(store)
        with OsSpy() as spy:
            cli("add", ".")
            cli("commit", "-m", f"v{seed}")
        check_order(spy.events, store, store_files(store) - before, "datasets/ds")


def test_push_to_a_folder_makes_packs_durable_before_the_ref_moves(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    cli("init", "--name", "ds")
    cli("remote", "add", "origin", str(remote))
    for seed in (1, 2):
        files(ws_dir, seed)
        cli("add", ".")
        cli("commit", "-m", f"v{seed}")
        before = store_files(remote)
        with OsSpy() as spy:
            cli("push")
        check_order(spy.events, remote, store_files(remote) - before, "datasets/ds")
