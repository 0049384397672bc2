"""The workloads of bench_workflow.py (and bench_remote.py), generated with a fixed seed and streamed to disk.

* ``small`` (W1): 20,000 files of about 8.5 KB (CSV-like text and random bytes) in
  nested folders, about 170 MB; its edited copy (W1b) changes a few bytes in 1% of
  the files and adds and deletes 0.1% of them.
* ``big`` (W2): 8 files of 128 MiB, each a mix of random and CSV-like 4 MiB
  segments; its edited copy (W2b) has, in each file, 3 inserts of 100 bytes and 2
  overwrites of 4 KiB at random offsets.

A generated workload is kept under ``benchmarks/work/data/`` with a manifest and
reused by later runs of the same scale and seed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

from benchlib import BenchError, tree_size

KiB = 1 << 10
MiB = 1 << 20

GENERATOR_VERSION = 1
SMALL_FILES = 20_000
SMALL_MIN, SMALL_MAX = 512, 16_488  # uniform sizes: mean 8,500 bytes
SMALL_TEXT_SHARE = 0.6
SMALL_EDIT_SHARE = 0.01
SMALL_ADD_DELETE_SHARE = 0.001
FILES_PER_FOLDER = 100
FOLDERS_PER_PART = 10
BIG_FILES = 8
BIG_SIZE = 128 * MiB
BIG_SEGMENT = 4 * MiB
BIG_INSERTS, BIG_INSERT_LEN = 3, 100
BIG_OVERWRITES, BIG_OVERWRITE_LEN = 2, 4 * KiB
COPY_BLOCK = 4 * MiB

DATA_DIR = "data"  # the tracked folder inside every tool's workspace
WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega cat dog bird fish tree rock river cloud sun moon star"
).split()


class TextSource:
    """Endless CSV-like rows from a seeded RNG: compressible (about 2.7x with zstd) but never repeating."""

    HEADER = b"id,timestamp,label,score,value,comment\n"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._row = 0

    def block(self, size: int, header: bool = False) -> bytes:
        """Exactly ``size`` bytes of rows (the last row is cut off)."""
        parts: list[bytes] = [self.HEADER] if header else []
        have = len(parts[0]) if parts else 0
        rnd, choice = self._rng.random, self._rng.choice
        while have < size:
            start = self._row
            rows = "".join(
                f"{i},{1_700_000_000 + 7 * i},{choice(WORDS)},{rnd():.6f},{rnd() * 100:.3f},{choice(WORDS)} {choice(WORDS)}\n"
                for i in range(start, start + 500)
            ).encode()
            self._row += 500
            parts.append(rows)
            have += len(rows)
        return b"".join(parts)[:size]


@dataclass
class Workload:
    """A generated workload: its first version, its edited copy, and what the edit changed."""

    name: str
    root: Path
    files: int
    bytes: int
    v2_files: int
    v2_bytes: int
    modified: list[str]
    added: list[str]
    deleted: list[str]
    params: dict[str, int]

    @property
    def v1(self) -> Path:
        return self.root / "v1"

    @property
    def v2(self) -> Path:
        return self.root / "v2"

    def to_manifest(self) -> dict[str, object]:
        """What ``manifest.json`` holds (paths are relative to the workload folder)."""
        d = asdict(self)
        d.pop("root")
        return d


def small_path(i: int) -> str:
    """Nested location of small file ``i``: partNN/shardN/file_NNNNN."""
    part, shard = divmod(i // FILES_PER_FOLDER, FOLDERS_PER_PART)
    return f"part{part:02d}/shard{shard}/file_{i:05d}"


def write_small_file(path: Path, size: int, text: TextSource | None, rng: random.Random) -> None:
    """One small file: CSV-like text when ``text`` is given, random bytes otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.block(size, header=True) if text is not None else rng.randbytes(size)
    path.write_bytes(data)


def generate_small_v1(dest: Path, count: int, seed: int) -> list[str]:
    """Write ``count`` small files under ``dest``; return their relative paths."""
    rng = random.Random(seed)
    text = TextSource(rng)
    paths = []
    for i in range(count):
        is_text = rng.random() < SMALL_TEXT_SHARE
        rel = small_path(i) + (".csv" if is_text else ".bin")
        write_small_file(dest / rel, rng.randint(SMALL_MIN, SMALL_MAX), text if is_text else None, rng)
        paths.append(rel)
    return paths


def generate_small_v2(v1: Path, v2: Path, paths: list[str], seed: int) -> tuple[list[str], list[str], list[str]]:
    """Copy v1 to v2, change a few bytes in 1% of the files, add and delete 0.1%; return (modified, added, deleted)."""
    rng = random.Random(seed + 1)
    text = TextSource(rng)
    shutil.copytree(v1, v2)
    n_edit = max(1, round(len(paths) * SMALL_EDIT_SHARE))
    n_add_del = max(1, round(len(paths) * SMALL_ADD_DELETE_SHARE))
    picked = rng.sample(paths, n_edit + n_add_del)
    modified, deleted = sorted(picked[:n_edit]), sorted(picked[n_edit:])
    for rel in modified:
        with open(v2 / rel, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            length = rng.randint(1, 8)
            f.seek(rng.randrange(0, max(1, size - length)))
            f.write(rng.randbytes(length))
    for rel in deleted:
        (v2 / rel).unlink()
    added = []
    for k in range(n_add_del):
        # Half go to existing folders, half to a new one.
        folder = str(Path(small_path(rng.randrange(len(paths)))).parent) if k % 2 == 0 else "part_new/shard0"
        rel = f"{folder}/added_{k:04d}.csv"
        write_small_file(v2 / rel, rng.randint(SMALL_MIN, SMALL_MAX), text, rng)
        added.append(rel)
    return modified, sorted(added), deleted


def write_big_file(path: Path, size: int, rng: random.Random, text: TextSource) -> None:
    """Stream one big file to disk: 4 MiB segments, each random or CSV-like text (half and half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    segment = min(BIG_SEGMENT, size)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(segment, left)
            f.write(rng.randbytes(n) if rng.random() < 0.5 else text.block(n))
            left -= n


def plan_big_edits(size: int, rng: random.Random) -> list[tuple[int, bytes, int]]:
    """Non-overlapping edits sorted by offset: (offset in the old file, bytes to write, old bytes replaced)."""
    kinds = [("insert", BIG_INSERT_LEN)] * BIG_INSERTS + [("overwrite", BIG_OVERWRITE_LEN)] * BIG_OVERWRITES
    span = BIG_OVERWRITE_LEN + BIG_INSERT_LEN
    if size < span * len(kinds) * 4:
        raise BenchError(f"big files of {size} bytes are too small for the edits; use a larger --scale")
    while True:
        offsets = sorted(rng.randrange(0, size - span) for _ in kinds)
        if all(b - a > span for a, b in pairwise(offsets)):
            break
    rng.shuffle(kinds)
    return [(off, rng.randbytes(n), n if kind == "overwrite" else 0) for off, (kind, n) in zip(offsets, kinds, strict=True)]


def copy_range(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    """Copy ``length`` bytes from open file ``src`` to open file ``dst`` in bounded blocks."""
    while length:
        block = src.read(min(COPY_BLOCK, length))
        if not block:
            raise BenchError("unexpected end of file while copying")
        dst.write(block)
        length -= len(block)


def write_edited_big_file(src: Path, dst: Path, rng: random.Random) -> None:
    """Stream ``src`` to ``dst`` applying 3 inserts of 100 bytes and 2 overwrites of 4 KiB."""
    size = src.stat().st_size
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        pos = 0
        for offset, data, replaced in plan_big_edits(size, rng):
            copy_range(fin, fout, offset - pos)
            fout.write(data)
            fin.seek(replaced, os.SEEK_CUR)
            pos = offset + replaced
        copy_range(fin, fout, size - pos)


def generate_big(root: Path, count: int, size: int, seed: int) -> list[str]:
    """Write the big files' first version and edited copy; return the relative paths (all modified)."""
    rng, edit_rng = random.Random(seed), random.Random(seed + 1)
    text = TextSource(rng)
    paths = [f"shard_{i:02d}.dat" for i in range(count)]
    for rel in paths:
        write_big_file(root / "v1" / rel, size, rng, text)
        write_edited_big_file(root / "v1" / rel, root / "v2" / rel, edit_rng)
    return paths


def load_or_generate(name: str, root: Path, scale: float, seed: int, regenerate: bool) -> Workload:
    """The workload ``name`` under ``root``, generated unless a matching one is already there."""
    if name == "small":
        params: dict[str, int] = {"files": max(1, round(SMALL_FILES * scale)), "seed": seed, "generator": GENERATOR_VERSION}
    else:
        big_size = max(64 * KiB, round(BIG_SIZE * scale / (4 * KiB)) * 4 * KiB)
        params = {"files": BIG_FILES, "file_size": big_size, "seed": seed, "generator": GENERATOR_VERSION}
    manifest_path = root / "manifest.json"
    if not regenerate and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("params") == params:
            print(f"[{name}] reusing the workload in {root}")
            return Workload(root=root, **manifest)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    print(f"[{name}] generating {params} in {root} ...", flush=True)
    started = time.perf_counter()
    if name == "small":
        paths = generate_small_v1(root / "v1", params["files"], seed)
        modified, added, deleted = generate_small_v2(root / "v1", root / "v2", paths, seed)
    else:
        modified = generate_big(root, params["files"], params["file_size"], seed)
        added, deleted = [], []
    files, size = tree_size(root / "v1")
    v2_files, v2_size = tree_size(root / "v2")
    wl = Workload(name, root, files, size, v2_files, v2_size, modified, added, deleted, params)
    manifest_path.write_text(json.dumps(wl.to_manifest(), indent=1))
    print(f"[{name}] generated {files} files, {size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s", flush=True)
    return wl
