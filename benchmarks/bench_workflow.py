#!/usr/bin/env python3
"""Benchmark the everyday datactl workflow against DVC and restic.

Two workloads are generated with a fixed seed (streamed to disk):

* ``small``: 20,000 files of about 8.5 KB (CSV-like text and random bytes) in
  nested folders, about 170 MB; its edited copy changes a few bytes in 1% of the
  files and adds and deletes 0.1% of them.
* ``big``: 8 files of 128 MiB, each a mix of random and CSV-like 4 MiB
  segments; its edited copy has, in each file, 3 inserts of 100 bytes and 2
  overwrites of 4 KiB at random offsets.

For each workload, datactl and (when installed) DVC and restic are measured:
add+commit of the first version, a no-change status, a no-change re-add, the
stored bytes of the first version, and the extra stored bytes (and time) of
adding and committing the edited version. ``--scale`` shrinks everything for a
quick run. Everything runs as a subprocess, timed with ``time.perf_counter``.

Usage::

    python benchmarks/bench_workflow.py --scale 0.05
    python benchmarks/bench_workflow.py --scale 1 --json benchmarks/work/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

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


class BenchError(RuntimeError):
    """A tool failed or a workload could not be built."""


# -- workload generation ---------------------------------------------------------------


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


def tree_size(root: Path) -> tuple[int, int]:
    """(files, apparent bytes) under ``root``, symlinks not followed."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
    return files, size


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


# -- running tools ---------------------------------------------------------------------------


def tool_env(workspace: Path) -> dict[str, str]:
    """Environment for every tool run: fixed identities, no analytics, restic password and cache."""
    env = dict(os.environ)
    env.update(
        {
            "DATACTL_AUTHOR": "bench <bench@example.invalid>",
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "DVC_NO_ANALYTICS": "1",
            "RESTIC_PASSWORD": "datactl-bench",
            "RESTIC_CACHE_DIR": str(workspace / ".restic-cache"),
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    return env


def run(cmd: Sequence[str], cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in ``cwd``; raise BenchError with its output when it fails."""
    proc = subprocess.run(list(cmd), cwd=cwd, env=tool_env(cwd) | (extra_env or {}), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` in {cwd} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def timed(step: Callable[[], object]) -> float:
    """Seconds ``step`` takes, after flushing dirty pages so earlier writes do not bleed in."""
    os.sync()
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def dir_bytes(path: Path) -> int:
    """Apparent size (sum of file sizes) of everything under ``path``."""
    return tree_size(path)[1] if path.exists() else 0


class Tool(ABC):
    """One versioning tool, driven through its command line inside a workspace folder."""

    name: str
    status_note: str = ""
    readd_note: str = ""

    @abstractmethod
    def available(self) -> bool:
        """Whether the tool is installed."""

    @abstractmethod
    def version(self) -> str:
        """The tool's version string."""

    @abstractmethod
    def init(self, ws: Path) -> None:
        """Make ``ws`` (which holds ``data/``) a repository of this tool."""

    @abstractmethod
    def add_commit(self, ws: Path, message: str) -> None:
        """Record the current ``data/`` as a new version."""

    @abstractmethod
    def status(self, ws: Path) -> None:
        """Check ``data/`` for changes without recording anything."""

    @abstractmethod
    def readd(self, ws: Path) -> None:
        """Add ``data/`` again when nothing changed."""

    @abstractmethod
    def store_path(self, ws: Path) -> Path:
        """Where the tool keeps the stored data."""

    def check(self, ws: Path, wl: Workload) -> list[str]:
        """Sanity checks after the edited version is recorded; return problems found."""
        return []


class Datactl(Tool):
    """The installed ``datactl`` command, or ``python -m datactl`` from a source tree (``--datactl-src``)."""

    name = "datactl"
    status_note = "datactl status"
    readd_note = "datactl add data"

    def __init__(self, src: Path | None = None) -> None:
        self.src = src
        exe = shutil.which("datactl")
        self.cmd = [exe] if exe and src is None else [sys.executable, "-P", "-m", "datactl"]
        self.env = {"PYTHONPATH": str(src)} if src is not None else {}

    def _run(self, args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return run([*self.cmd, *args], cwd, self.env)

    def available(self) -> bool:
        return True

    def source(self) -> str:
        """Which code runs: the git commit of the package's checkout (``-dirty`` when it has local changes)."""
        where = run([sys.executable, "-P", "-c", "import datactl; print(datactl.__file__)"], Path.cwd(), self.env)
        pkg = Path(where.stdout.strip()).parent
        marker = pkg.parent / "GIT_COMMIT"
        if marker.exists():
            return f"git {marker.read_text().strip()} ({pkg.parent})"
        proc = subprocess.run(["git", "-C", str(pkg), "describe", "--always", "--dirty"], capture_output=True, text=True)
        return f"git {proc.stdout.strip()} ({pkg.parent})" if proc.returncode == 0 else str(pkg.parent)

    def version(self) -> str:
        return f"{self._run(['--version'], Path.cwd()).stdout.strip()}, {self.source()}"

    def init(self, ws: Path) -> None:
        self._run(["init", ".", "--name", "bench"], ws)

    def add_commit(self, ws: Path, message: str) -> None:
        self._run(["add", DATA_DIR], ws)
        self._run(["commit", "-m", message], ws)

    def status(self, ws: Path) -> None:
        self._run(["status"], ws)

    def readd(self, ws: Path) -> None:
        self._run(["add", DATA_DIR], ws)

    def store_path(self, ws: Path) -> Path:
        return ws / ".datactl" / "store"

    def check(self, ws: Path, wl: Workload) -> list[str]:
        problems = []
        st = json.loads(self._run(["status", "--json"], ws).stdout)
        if not st["clean"] or st["untracked"]:
            problems.append(f"datactl status not clean after the edited commit: {st}")
        summary = json.loads(self._run(["diff", "HEAD~1", "HEAD", "--json"], ws).stdout)["summary"]
        want = {"added": len(wl.added), "removed": len(wl.deleted), "modified": len(wl.modified), "renamed": 0}
        got = {k: summary[k] for k in want}
        if got != want:
            problems.append(f"datactl diff HEAD~1 HEAD counts {got}, expected {want}")
        du = json.loads(self._run(["du", "--json"], ws).stdout)
        if du["version"]["logical_bytes"] != wl.v2_bytes or du["version"]["files"] != wl.v2_files:
            problems.append(
                f"datactl du reports {du['version']['files']} files / {du['version']['logical_bytes']} B, expected {wl.v2_files} / {wl.v2_bytes}"
            )
        return problems


class Dvc(Tool):
    name = "dvc"
    status_note = "dvc status"
    readd_note = "dvc add data"

    def available(self) -> bool:
        return shutil.which("dvc") is not None and shutil.which("git") is not None

    def version(self) -> str:
        return "dvc " + run(["dvc", "--version"], Path.cwd()).stdout.strip()

    def init(self, ws: Path) -> None:
        run(["git", "init", "-q"], ws)
        run(["dvc", "init", "-q"], ws)
        # Keep DVC's state database (its stat cache) inside the workspace, fresh for every run.
        run(["dvc", "config", "--local", "core.site_cache_dir", str(ws / ".dvc" / "site-cache")], ws)
        run(["git", "commit", "-q", "-m", "dvc init"], ws)

    def add_commit(self, ws: Path, message: str) -> None:
        run(["dvc", "add", "-q", DATA_DIR], ws)
        run(["git", "add", f"{DATA_DIR}.dvc", ".gitignore"], ws)
        run(["git", "commit", "-q", "-m", message], ws)

    def status(self, ws: Path) -> None:
        run(["dvc", "status", "-q"], ws)

    def readd(self, ws: Path) -> None:
        run(["dvc", "add", "-q", DATA_DIR], ws)

    def store_path(self, ws: Path) -> Path:
        return ws / ".dvc" / "cache"

    def check(self, ws: Path, wl: Workload) -> list[str]:
        out = run(["dvc", "status"], ws).stdout
        return [] if "up to date" in out else [f"dvc status not clean after the edited commit: {out.strip()[:300]}"]


class Restic(Tool):
    name = "restic"
    status_note = "restic backup --dry-run"
    readd_note = "restic backup (unchanged tree)"
    repo = "restic-repo"

    def available(self) -> bool:
        return shutil.which("restic") is not None

    def version(self) -> str:
        return run(["restic", "version"], Path.cwd()).stdout.strip().split(" compiled")[0]

    def _cmd(self, *args: str) -> list[str]:
        return ["restic", "--repo", self.repo, "--quiet", *args]

    def init(self, ws: Path) -> None:
        run(self._cmd("init"), ws)

    def add_commit(self, ws: Path, message: str) -> None:
        run(self._cmd("backup", "--tag", message, DATA_DIR), ws)

    def status(self, ws: Path) -> None:
        run(self._cmd("backup", "--dry-run", DATA_DIR), ws)

    def readd(self, ws: Path) -> None:
        run(self._cmd("backup", DATA_DIR), ws)

    def store_path(self, ws: Path) -> Path:
        return ws / self.repo


# -- benchmark steps ---------------------------------------------------------------------------


@dataclass
class ToolResult:
    """What one tool measured on one workload (times in seconds, sizes in bytes)."""

    tool: str
    version: str
    add_commit_v1: list[float] = field(default_factory=list)
    status: list[float] = field(default_factory=list)
    readd: list[float] = field(default_factory=list)
    add_commit_v2: list[float] = field(default_factory=list)
    stored_v1: int = 0
    stored_v2_extra: int = 0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before and after the tool's steps

    def medians(self) -> dict[str, float | None]:
        """Median of every timed step (None when not measured)."""
        return {
            k: (statistics.median(v) if v else None)
            for k, v in (
                ("add_commit_v1", self.add_commit_v1),
                ("status", self.status),
                ("readd", self.readd),
                ("add_commit_v2", self.add_commit_v2),
            )
        }


def fresh_workspace(tool: Tool, wl: Workload, ws: Path) -> None:
    """Recreate ``ws`` with a copy of the first version in ``ws/data`` and the tool initialised (not timed)."""
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    shutil.copytree(wl.v1, ws / DATA_DIR)
    tool.init(ws)


def step_add_commit_v1(tool: Tool, wl: Workload, ws: Path, repeat: int, budget: float) -> list[float]:
    """Time add+commit of the first version, each repeat in a fresh workspace, while within ``budget`` seconds."""
    samples: list[float] = []
    while len(samples) < repeat and (not samples or sum(samples) + samples[-1] <= budget):
        fresh_workspace(tool, wl, ws)
        samples.append(timed(lambda: tool.add_commit(ws, "v1")))
    return samples


def step_stored_bytes(tool: Tool, ws: Path) -> int:
    """Bytes the tool stores now."""
    return dir_bytes(tool.store_path(ws))


def step_status(tool: Tool, ws: Path, repeat: int) -> list[float]:
    """Time a status check of the unchanged workspace, ``repeat`` times."""
    return [timed(lambda: tool.status(ws)) for _ in range(repeat)]


def step_readd(tool: Tool, ws: Path, repeat: int) -> list[float]:
    """Time adding the unchanged data again, ``repeat`` times."""
    return [timed(lambda: tool.readd(ws)) for _ in range(repeat)]


def step_apply_edits(wl: Workload, ws: Path) -> None:
    """Turn ``ws/data`` into the edited copy in place: rewrite modified and added files, delete deleted ones (not timed)."""
    data = ws / DATA_DIR
    for rel in wl.modified + wl.added:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wl.v2 / rel, data / rel)
    for rel in wl.deleted:
        (data / rel).unlink()
    time.sleep(0.2)  # let the edits age past datactl's racy-timestamp window, as a person's edits would


def step_add_commit_v2(tool: Tool, ws: Path) -> float:
    """Time add+commit of the edited version."""
    return timed(lambda: tool.add_commit(ws, "v2"))


def bench_tool(tool: Tool, wl: Workload, work: Path, repeat: int, budget: float, keep: bool) -> ToolResult:
    """Run every step for one tool on one workload."""
    ws = work / "runs" / wl.name / tool.name
    res = ToolResult(tool.name, tool.version())
    res.load.append(os.getloadavg()[0])
    print(f"[{wl.name}] {tool.name}: add+commit v1 ...", flush=True)
    res.add_commit_v1 = step_add_commit_v1(tool, wl, ws, repeat, budget)
    res.stored_v1 = step_stored_bytes(tool, ws)
    print(f"[{wl.name}] {tool.name}: status, re-add ...", flush=True)
    res.status = step_status(tool, ws, repeat)
    res.readd = step_readd(tool, ws, repeat)
    res.notes += [f"status = {tool.status_note}", f"re-add = {tool.readd_note}"]
    before_v2 = step_stored_bytes(tool, ws)
    step_apply_edits(wl, ws)
    print(f"[{wl.name}] {tool.name}: add+commit edited version ...", flush=True)
    res.add_commit_v2 = [step_add_commit_v2(tool, ws)]
    res.stored_v2_extra = step_stored_bytes(tool, ws) - before_v2
    res.problems = tool.check(ws, wl)
    res.load.append(os.getloadavg()[0])
    m = res.medians()
    print(
        f"[{wl.name}] {tool.name}: v1 {m['add_commit_v1']:.2f} s, status {m['status']:.2f} s, re-add {m['readd']:.2f} s, "
        f"edited {m['add_commit_v2']:.2f} s; stored {res.stored_v1 / 1e6:.2f} MB + {res.stored_v2_extra / 1e6:.2f} MB; "
        f"load average {res.load[0]:.2f} -> {res.load[1]:.2f}",
        flush=True,
    )
    for p in res.problems:
        print(f"[{wl.name}] {tool.name}: PROBLEM: {p}", flush=True)
    if not keep:
        shutil.rmtree(ws)
    return res


# -- report ---------------------------------------------------------------------------------------------


def fmt_seconds(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1e6:.2f} MB" if abs(v) < 10e6 else f"{v / 1e6:.1f} MB"


def fmt_ratio(peer: float | None, base: float | None) -> str:
    return "n/a" if peer is None or not base else f"{peer / base:.2f}x"


def results_table(workloads: list[Workload], results: dict[str, list[ToolResult]]) -> str:
    """One plain-text (Markdown pipe) table: datactl, then each peer with its ratio to datactl."""
    peers = sorted({r.tool for rs in results.values() for r in rs if r.tool != "datactl"}, key=["dvc", "restic"].index)
    header = ["workload", "step", "datactl"]
    for p in peers:
        header += [p, f"{p}/datactl"]
    rows: list[list[str]] = []
    steps: list[tuple[str, Callable[[ToolResult], float | int | None], Callable[[float | int | None], str]]] = [
        ("add+commit v1", lambda r: r.medians()["add_commit_v1"], fmt_seconds),
        ("status, no change", lambda r: r.medians()["status"], fmt_seconds),
        ("re-add, no change", lambda r: r.medians()["readd"], fmt_seconds),
        ("add+commit edited", lambda r: r.medians()["add_commit_v2"], fmt_seconds),
        ("stored after v1", lambda r: r.stored_v1, fmt_bytes),
        ("extra stored, edited", lambda r: r.stored_v2_extra, fmt_bytes),
    ]
    for wl in workloads:
        by_tool = {r.tool: r for r in results.get(wl.name, [])}
        base = by_tool.get("datactl")
        label = f"{wl.name} ({wl.files} files, {wl.bytes / 1e6:.0f} MB)"
        for title, get, fmt in steps:
            b = get(base) if base else None
            row = [label, title, fmt(b)]
            label = ""
            for p in peers:
                v = get(by_tool[p]) if p in by_tool else None
                row += [fmt(v), fmt_ratio(v, b)]
            rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + (":" if i >= 2 else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def machine_info() -> dict[str, object]:
    """Where the run happened."""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_end": os.getloadavg(),
    }


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=here / "work", help="work folder for data and runs (default: benchmarks/work)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the workloads (0.05 for a quick run; default 1)")
    p.add_argument("--repeat", type=int, default=3, help="repeats of each timed step; medians are reported (default 3)")
    p.add_argument(
        "--budget",
        type=float,
        default=300.0,
        help="repeat the first add+commit only while its samples stay under this many seconds (default 300)",
    )
    p.add_argument("--seed", type=int, default=20240601, help="random seed of the workloads")
    p.add_argument("--workloads", default="small,big", help="comma list of workloads: small, big")
    p.add_argument("--tools", default="datactl,dvc,restic", help="comma list of tools to run when installed")
    p.add_argument(
        "--datactl-src",
        type=Path,
        default=None,
        help="benchmark `python -m datactl` from this source tree (holding datactl/ and storage_backends/) instead of the installed command",
    )
    p.add_argument("--json", type=Path, default=None, help="also write all samples and medians to this JSON file")
    p.add_argument("--regenerate", action="store_true", help="regenerate the workloads even if matching ones exist")
    p.add_argument("--keep", action="store_true", help="keep each tool's workspace under WORK/runs for inspection")
    args = p.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1:
        p.error("--scale must be > 0 and --repeat >= 1")
    return args


def select_tools(names: list[str], datactl_src: Path | None = None) -> list[Tool]:
    """The tools asked for that are installed; print a note for each one skipped."""
    known: dict[str, Callable[[], Tool]] = {"datactl": lambda: Datactl(datactl_src), "dvc": Dvc, "restic": Restic}
    tools = []
    for name in names:
        if name not in known:
            raise SystemExit(f"unknown tool {name!r}; choose from {', '.join(known)}")
        tool = known[name]()
        if tool.available():
            tools.append(tool)
        else:
            print(f"note: {name} is not installed; skipping it (DVC: `pip install dvc`; restic: `apt-get install restic`)")
    return tools


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work.resolve()
    tools = select_tools([t.strip() for t in args.tools.split(",") if t.strip()], args.datactl_src.resolve() if args.datactl_src else None)
    print("tools: " + ", ".join(t.version() for t in tools), flush=True)
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if any(n not in ("small", "big") for n in names):
        raise SystemExit("--workloads takes small and/or big")
    workloads = [load_or_generate(n, work / "data" / f"{n}-scale{args.scale:g}", args.scale, args.seed, args.regenerate) for n in names]
    results: dict[str, list[ToolResult]] = {}
    for wl in workloads:
        for tool in tools:
            results.setdefault(wl.name, []).append(bench_tool(tool, wl, work, args.repeat, args.budget, args.keep))
    info = machine_info()
    table = results_table(workloads, results)
    print()
    print(f"Results: {info['date']}, {info['cpus']} CPUs, {info['platform']}, scale {args.scale:g}, repeat {args.repeat} (medians)")
    print(table)
    print("\nratio = peer / datactl: above 1 means datactl is faster (time) or smaller (bytes).")
    problems = [f"{wl}/{r.tool}: {p}" for wl, rs in results.items() for r in rs for p in r.problems]
    for p in problems:
        print(f"PROBLEM {p}")
    if args.json:
        doc = {
            "machine": info,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "workloads": {
                wl.name: {k: v for k, v in wl.to_manifest().items() if k not in ("modified", "added", "deleted")}
                | {"modified": len(wl.modified), "added": len(wl.added), "deleted": len(wl.deleted)}
                for wl in workloads
            },
            "results": {name: [asdict(r) | {"median": r.medians()} for r in rs] for name, rs in results.items()},
            "table": table,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"wrote {args.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
