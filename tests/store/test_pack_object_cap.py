"""A pack ends at MAX_PACK_OBJECTS objects: packs of tiny files cost no more memory than packs of big chunks.

Before the cap, a million files of 20 bytes went into one 32 MiB pack, whose million entries its writer, an
upload in flight and every reader of its footer held at once (a push of them peaked at 630 MB).
"""

from __future__ import annotations

import os
from pathlib import Path

from builtversions import record_tiny_files, tiny_file, tiny_file_path
from conftest import run_datactl
from datactl.format.pack import MAX_PACK_OBJECTS, TRAILER_SIZE, parse_trailer
from datactl.workspace.workspace import Workspace

FILES = 2 * MAX_PACK_OBJECTS + 500


def objects_per_pack(store: Path) -> list[int]:
    """How many objects each pack file of a folder store holds, read off its trailer."""
    counts = []
    for dirpath, _dirs, names in os.walk(store / "packs"):
        for name in names:
            path = Path(dirpath) / name
            with open(path, "rb") as f:
                f.seek(-TRAILER_SIZE, os.SEEK_END)
                _offset, count, _hash = parse_trailer(name, f.read(), path.stat().st_size)
            counts.append(count)
    return counts


def test_tiny_files_fill_packs_by_count_and_come_back_whole(tmp_path: Path) -> None:
    root, remote, clone = tmp_path / "ws", tmp_path / "remote", tmp_path / "clone"
    root.mkdir()
    assert run_datactl(["init", "--name", "tiny"], root).returncode == 0
    with Workspace.open(str(root)) as ws:
        record_tiny_files(ws, FILES, 1_000, "v1")
        index = ws.repo.index
        full = {p for p in index.packs() if index.count_objects(p, FILES) == MAX_PACK_OBJECTS}
        assert len(full) == 2, "the data went into packs sealed by their count, far below the target size"
        ws.consolidate_packs(max_small=0)
        packs = index.packs()
        assert full <= set(packs), "a pack full by count is not small: merging it would only make it too big"
        assert max(index.count_objects(p, FILES) for p in packs) == MAX_PACK_OBJECTS

    assert run_datactl(["push", str(remote)], root).returncode == 0
    counts = objects_per_pack(remote)
    assert max(counts) == MAX_PACK_OBJECTS and sum(counts) >= FILES, counts

    assert run_datactl(["clone", str(remote), "tiny", str(clone)], tmp_path).returncode == 0
    for n in range(FILES):
        assert (clone / tiny_file_path(n, 1_000)).read_bytes() == tiny_file(n)
    assert run_datactl(["verify"], clone).returncode == 0
