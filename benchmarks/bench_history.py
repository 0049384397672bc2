#!/usr/bin/env python3
"""Long histories (issue 18): V versions of a small dataset in datactl, and the same history in git.

The dataset: ``--files`` files (default 1,000) of 1 to 8 KiB of random bytes in
``data/``. Version 1 holds them all; every later version rewrites one file
(version v rewrites file (v - 2) mod F). datactl builds the history through the
library in this process (``Workspace.add`` + ``Workspace.commit`` per version,
and ``datactl.workspace.sync.push`` to a folder remote every ``--push-every``
versions); git builds the same history with one ``git commit -q -m MSG -- PATH``
process per version. Then, for both:

* add+commit per version: medians of the first and of the last 100 versions
  (datactl in-process, git a process each) and, on top of the finished
  history, of ``--cli-commits`` more versions through each tool's command line
  (``datactl add`` + ``datactl commit``, ``git commit``): the like-for-like figure;
* push (datactl): medians of the first and last 5 pushes;
* clone of the whole history: ``datactl clone`` from the folder remote (fresh
  cache) against ``git clone --no-local`` (git's pack transport, not hard links);
  and ``clone --depth 10`` of both;
* ``log -n 10`` in the workspace / repository;
* ``datactl lineage --up`` of the latest version against ``git rev-list HEAD``
  (every ancestor, the closest git has);
* how many packs and index files the local, remote and cloned stores hold
  (git: packs and loose objects).

Every command's wall time and peak RSS is measured (``os.wait4``); a command
that fails (e.g. a RecursionError on a deep history) is reported as failed and
the rest goes on.

Usage::

    python benchmarks/bench_history.py --versions 300              # quick check
    python benchmarks/bench_history.py --json benchmarks/work/history.json   # 10,000 versions
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
    BenchError,
    DatactlCommand,
    PeakRss,
    Sample,
    clear_dir,
    compare_trees,
    dir_bytes,
    fmt_bytes,
    fmt_ratio,
    fmt_rss,
    machine_info,
    markdown_table,
    measure,
    run,
    write_json,
)

DATA_DIR = "data"
MIN_SIZE, MAX_SIZE = 1024, 8192
WINDOW = 100  # versions in the "first" and "last" medians
PUSH_WINDOW = 5
CLONE, LINEAGE, CLI_COMMIT = "clone, whole history", "lineage --up (git: rev-list HEAD)", "add+commit through the CLI, at the end"
SHALLOW_CLONE = "clone --depth 10"


def rel_path(i: int) -> str:
    return f"{DATA_DIR}/d{i // 100:03d}/f{i:05d}.bin"


def file_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(MIN_SIZE, MAX_SIZE))


def write_version(root: Path, files: int, version: int, rng: random.Random) -> str:
    """Write version ``version``'s change under ``root`` (version 1: every file); return the one path it changed."""
    if version == 1:
        for i in range(files):
            (root / rel_path(i)).parent.mkdir(parents=True, exist_ok=True)
            (root / rel_path(i)).write_bytes(file_bytes(rng))
        return DATA_DIR
    rel = rel_path((version - 2) % files)
    (root / rel).write_bytes(file_bytes(rng))
    return rel


# -- measurements -------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """A named measurement: samples, or why it failed."""

    samples: list[Sample] = field(default_factory=list)
    failed: str = ""

    @property
    def seconds(self) -> float | None:
        return statistics.median(s.seconds for s in self.samples) if self.samples and not self.failed else None

    @property
    def rss(self) -> float | None:
        return statistics.median(s.peak_rss for s in self.samples) if self.samples and not self.failed else None


@dataclass
class HistoryResult:
    tool: str
    version: str
    build_seconds: float = 0.0
    push_every: int = 0
    commit_ms: list[float] = field(default_factory=list)  # per version, in order
    push_ms: list[float] = field(default_factory=list)  # per push, in order
    steps: dict[str, Measured] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def try_measure(res: HistoryResult, name: str, repeat: int, step: Any, peak: PeakRss, before: Any = None) -> Measured:
    """Take ``repeat`` samples of ``step`` (``before`` runs untimed ahead of each); a failure is recorded, not raised."""
    m = res.steps.setdefault(name, Measured())
    for _ in range(repeat):
        try:
            if before is not None:
                before()
            m.samples.append(measure(step, peak))
        except BenchError as e:
            m.failed = str(e).splitlines()[-1][:200] if str(e).strip() else "failed"
            res.problems.append(f"{name}: {e}"[:2000])
            break
    return m


def try_measure_each(res: HistoryResult, name: str, count: int, prepare: Any, peak: PeakRss) -> Measured:
    """``count`` samples, each of the step ``prepare(k)`` returns after setting it up untimed; a failure is recorded."""
    m = res.steps.setdefault(name, Measured())
    for k in range(count):
        try:
            m.samples.append(measure(prepare(k), peak))
        except BenchError as e:
            m.failed = str(e).splitlines()[-1][:200] if str(e).strip() else "failed"
            res.problems.append(f"{name}: {e}"[:2000])
            break
    return m


def window_for(count: int, window: int) -> int:
    """``window``, or a quarter of ``count`` when that is smaller, so the first and last windows stay apart."""
    return max(1, min(window, count // 4))


def first_last(values: list[float], window: int) -> tuple[float | None, float | None]:
    """Medians of the first and of the last ``window_for(len(values), window)`` values."""
    if not values:
        return None, None
    w = window_for(len(values), window)
    return statistics.median(values[:w]), statistics.median(values[-w:])


def count_files(folder: Path) -> int:
    return sum(len(names) for _d, _s, names in os.walk(folder)) if folder.exists() else 0


def store_counts(prefix: str, store: Path) -> dict[str, int]:
    return {
        f"{prefix} packs": count_files(store / "packs"),
        f"{prefix} index files": count_files(store / "index"),
        f"{prefix} bytes": dir_bytes(store),
    }


# -- datactl --------------------------------------------------------------------------------------------------


def bench_datactl(args: argparse.Namespace, runs: Path) -> HistoryResult:
    from datactl.workspace import sync  # imported here: after --datactl-src has been put first on sys.path
    from datactl.workspace.workspace import Workspace

    command = DatactlCommand(args.datactl_src)
    runs.mkdir(parents=True)
    cache = runs / "cache"
    os.environ["DATACTL_CACHE_DIR"] = str(cache)  # this process's library calls, and the commands below
    command.env = command.env | {"DATACTL_CACHE_DIR": str(cache)}
    res = HistoryResult("datactl", command.version(), push_every=args.push_every)
    root, remote = runs / "ws", runs / "remote"
    root.mkdir()
    rng = random.Random(args.seed)
    peak = PeakRss()

    def dc(*a: str, cwd: Path = root, env: dict[str, str] | None = None) -> None:
        run([*command.cmd, *a], cwd, command.env | (env or {}), peak)

    print(f"datactl: building {args.versions} versions ...", flush=True)
    started = time.perf_counter()
    with Workspace.init(str(root), name="bench") as ws:
        for v in range(1, args.versions + 1):
            rel = write_version(root, args.files, v, rng)
            t0 = time.perf_counter()
            ws.add([str(root / rel)])
            ws.commit(f"version {v}")
            res.commit_ms.append((time.perf_counter() - t0) * 1000)
            if v % args.push_every == 0 or v == args.versions:
                t0 = time.perf_counter()
                sync.push(ws, str(remote))
                res.push_ms.append((time.perf_counter() - t0) * 1000)
            if v % 1000 == 0:
                print(f"datactl: {v} versions, last commit {res.commit_ms[-1]:.0f} ms", flush=True)
    res.build_seconds = time.perf_counter() - started
    res.counts.update(store_counts("local", root / ".datactl" / "store"))
    res.counts.update(store_counts("remote", remote))

    print("datactl: log, lineage, clone, CLI commits ...", flush=True)
    try_measure(res, "log -n 10", args.repeat, lambda: dc("log", "-n", "10"), peak)
    try_measure(res, LINEAGE, args.repeat, lambda: dc("lineage", "--up"), peak)
    dest, clone_cache = runs / "clone", runs / "clone-cache"

    def fresh_clone() -> None:
        clear_dir(dest)
        clear_dir(clone_cache)

    def clone() -> None:
        dc("clone", str(remote), "bench", str(dest), cwd=runs, env={"DATACTL_CACHE_DIR": str(clone_cache)})

    if not try_measure(res, CLONE, args.repeat, clone, peak, fresh_clone).failed:
        res.counts.update(store_counts("clone", dest / ".datactl" / "store"))
        res.problems += [f"clone: {p}" for p in compare_trees(dest / DATA_DIR, root / DATA_DIR)]

    def shallow_clone() -> None:
        dc("clone", str(remote), "bench", str(dest), "--depth", "10", cwd=runs, env={"DATACTL_CACHE_DIR": str(clone_cache)})

    try_measure(res, SHALLOW_CLONE, args.repeat, shallow_clone, peak, fresh_clone)

    def cli_commit(k: int) -> Callable[[], object]:
        rel = write_version(root, args.files, args.versions + 1 + k, rng)
        time.sleep(0.11)  # past datactl's racy-timestamp window, as a person's edit would be
        return lambda: (dc("add", rel), dc("commit", "-m", f"cli {k}"))

    try_measure_each(res, CLI_COMMIT, args.cli_commits, cli_commit, peak)
    return res


# -- git ----------------------------------------------------------------------------------------------------------


def git_counts(prefix: str, repo: Path) -> dict[str, int]:
    """Packs and loose objects (``git count-objects -v``), and the bytes of .git/objects."""
    out = run(["git", "count-objects", "-v"], repo).stdout
    values = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return {
        f"{prefix} packs": int(values.get("packs", 0)),
        f"{prefix} loose objects": int(values.get("count", 0)),
        f"{prefix} bytes": dir_bytes(repo / ".git" / "objects"),
    }


def bench_git(args: argparse.Namespace, runs: Path) -> HistoryResult:
    runs.mkdir(parents=True)
    res = HistoryResult("git", run(["git", "--version"], Path.cwd()).stdout.strip())
    repo = runs / "repo"
    repo.mkdir()
    rng = random.Random(args.seed)  # the same bytes as datactl's
    peak = PeakRss()

    def git(*a: str, cwd: Path = repo) -> None:
        run(["git", *a], cwd, None, peak)

    git("init", "-q")
    print(f"git: building {args.versions} versions ...", flush=True)
    started = time.perf_counter()
    for v in range(1, args.versions + 1):
        rel = write_version(repo, args.files, v, rng)
        t0 = time.perf_counter()
        if v == 1:
            git("add", DATA_DIR)
            git("commit", "-q", "-m", f"version {v}")
        else:
            git("commit", "-q", "-m", f"version {v}", "--", rel)
        res.commit_ms.append((time.perf_counter() - t0) * 1000)
        if v % 1000 == 0:
            print(f"git: {v} versions, last commit {res.commit_ms[-1]:.0f} ms", flush=True)
    res.build_seconds = time.perf_counter() - started
    res.counts.update(git_counts("local", repo))

    try_measure(res, "log -n 10", args.repeat, lambda: git("log", "-n", "10"), peak)
    try_measure(res, LINEAGE, args.repeat, lambda: git("rev-list", "HEAD"), peak)
    dest = runs / "clone"
    if not try_measure(res, CLONE, args.repeat, lambda: git("clone", "-q", "--no-local", str(repo), str(dest), cwd=runs), peak, lambda: clear_dir(dest)).failed:
        res.counts.update(git_counts("clone", dest))
    shallow = lambda: git("clone", "-q", "--depth", "10", f"file://{repo}", str(dest), cwd=runs)  # noqa: E731
    try_measure(res, SHALLOW_CLONE, args.repeat, shallow, peak, lambda: clear_dir(dest))

    def cli_commit(k: int) -> Callable[[], object]:
        rel = write_version(repo, args.files, args.versions + 1 + k, rng)
        return lambda: (git("add", rel), git("commit", "-q", "-m", f"cli {k}"))

    try_measure_each(res, CLI_COMMIT, args.cli_commits, cli_commit, peak)
    return res


# -- report -----------------------------------------------------------------------------------------------------------


def fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def fmt_s(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def fmt_count(v: float | None) -> str:
    return "n/a" if v is None else f"{int(v):,}"


def results_table(dc: HistoryResult | None, git: HistoryResult | None, window: int) -> str:
    """A row per measure: datactl, git, and datactl / git."""
    rows: list[list[str]] = []
    pair = [dc, git]

    def add(title: str, values: list[float | None], fmt: Any, cells: list[str] | None = None) -> None:
        rows.append([title, *(cells or [fmt(v) for v in values]), fmt_ratio(values[0], values[1])])

    commit = [first_last(r.commit_ms, window) if r else (None, None) for r in pair]
    w = window_for(max(len(r.commit_ms) for r in pair if r), window) if any(pair) else window
    add(f"add+commit per version, first {w}", [c[0] for c in commit], fmt_ms)
    add(f"add+commit per version, last {w}", [c[1] for c in commit], fmt_ms)
    add("  last / first", [c[1] / c[0] if c[0] and c[1] else None for c in commit], lambda v: "n/a" if v is None else f"{v:.2f}x")
    for name in ("log -n 10", LINEAGE, CLONE, SHALLOW_CLONE, CLI_COMMIT):
        steps = [r.steps.get(name) if r else None for r in pair]
        failed = ["FAILED" if m is not None and m.failed else None for m in steps]
        times = [m.seconds if m else None for m in steps]
        add(name, times, fmt_s, [f or fmt_s(t) for f, t in zip(failed, times, strict=True)])
        add(f"{name}: peak RSS", [m.rss if m else None for m in steps], fmt_rss)
    if dc is not None and dc.push_ms:
        first, last = first_last(dc.push_ms, PUSH_WINDOW)
        pw = window_for(len(dc.push_ms), PUSH_WINDOW)
        add(f"push every {dc.push_every} versions, first {pw} (datactl in-process)", [first, None], fmt_ms)
        add(f"push, last {pw}", [last, None], fmt_ms)
    places, kinds = ["local", "remote", "clone"], ["packs", "index files", "loose objects", "bytes"]
    keys = sorted({k for r in pair if r for k in r.counts}, key=lambda k: (places.index(k.split(" ", 1)[0]), kinds.index(k.split(" ", 1)[1])))
    for key in keys:
        add(key, [r.counts.get(key) if r else None for r in pair], fmt_bytes if key.endswith("bytes") else fmt_count)
    return markdown_table(["measure", "datactl", "git", "datactl / git"], rows, left=1)


# -- main ------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--versions", type=int, default=10_000, help="versions in the history (default 10000)")
    p.add_argument("--files", type=int, default=1000, help="files in the dataset (default 1000)")
    p.add_argument("--push-every", type=int, default=100, help="datactl pushes to its folder remote every N versions (default 100)")
    p.add_argument("--cli-commits", type=int, default=20, help="versions added through the CLI after the history is built (default 20)")
    p.add_argument("--repeat", type=int, default=3, help="samples of clone, log and lineage (default 3)")
    p.add_argument("--tools", default="datactl,git", help="comma list: datactl, git")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--work", type=Path, default=here / "work", help="work folder (default: benchmarks/work)")
    p.add_argument("--datactl-src", type=Path, default=None, help="use datactl from this source tree (the library in this process and the CLI)")
    p.add_argument("--keep", action="store_true", help="keep the workspaces, remote and clones")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.versions < 2 or args.files < 1 or args.push_every < 1 or args.repeat < 1 or args.cli_commits < 0:
        p.error("--versions >= 2, --files >= 1, --push-every >= 1, --repeat >= 1, --cli-commits >= 0")
    if args.datactl_src:
        args.datactl_src = args.datactl_src.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.datactl_src:
        sys.path.insert(0, str(args.datactl_src))
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    runs = args.work.resolve() / "runs" / "history"
    clear_dir(runs)
    results: dict[str, HistoryResult] = {}
    for name, fn in (("datactl", bench_datactl), ("git", bench_git)):
        if name in tools:
            results[name] = fn(args, runs / name)
            print(f"{name}: built {args.versions} versions in {results[name].build_seconds:.1f} s", flush=True)
    if not args.keep:
        clear_dir(runs)
    info = machine_info()
    table = results_table(results.get("datactl"), results.get("git"), WINDOW)
    print(f"\nResults: {info['date']}, {info['cpus']} CPUs, {args.versions} versions of {args.files} files, repeat {args.repeat} (medians)")
    for r in results.values():
        print(f"  {r.tool}: {r.version}")
    print(table)
    print("\ndatactl / git below 1 means datactl is faster or smaller. datactl's add+commit per version is a library call in this")
    print("process, git's a `git commit` process; the last rows compare command lines on both sides (datactl add + commit, git add + commit).")
    problems = [f"{r.tool}: {p}" for r in results.values() for p in r.problems]
    for p in problems:
        print(f"PROBLEM {p[:500]}")
    if args.json:
        doc = {"machine": info, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "table": table}
        doc["results"] = {k: asdict(r) for k, r in results.items()}
        write_json(args.json, doc)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
