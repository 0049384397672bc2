#!/usr/bin/env python3
"""Benchmark the everyday datactl workflow against borg (lz4 and zstd,3), restic and DVC.

The workloads (see workloads.py): W1 = ``small``, 20,000 files of about 8.5 KB;
W1b its edited copy (1% of the files changed, 0.1% added and deleted); W2 =
``big``, 8 files of 128 MiB; W2b its edited copy (3 inserts and 2 overwrites per
file). ``--scale`` shrinks them for a quick run.

For each workload and tool, one round is: a fresh workspace holding W1 (or W2);
add+commit of it; a no-change status and a no-change re-add; the edits applied
in place; add+commit of the edited version; then, with both versions recorded,
the first version restored into the workspace and compared byte for byte with
the generated tree. Stored bytes are measured after the first version and
around the edited one. Rounds repeat (``--repeat``, within ``--budget``), the
tools taking turns round by round, and medians are reported, each timed step with its wall time and the peak RSS of
the processes it ran, with datactl's ratio to the best peer.

Usage::

    bash benchmarks/setup_peers.sh
    python benchmarks/bench_workflow.py --scale 0.02 --repeat 1          # quick check
    python benchmarks/bench_workflow.py --json benchmarks/work/workflow.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
    BenchError,
    DatactlCommand,
    Finished,
    PeakRss,
    Sample,
    best_of,
    clear_dir,
    compare_label,
    compare_trees,
    dir_bytes,
    fmt_bytes,
    fmt_ratio,
    fmt_rss,
    fmt_seconds,
    machine_info,
    markdown_table,
    measure,
    median_rss,
    median_seconds,
    run,
    timed,
    write_json,
)
from workloads import DATA_DIR, Workload, load_or_generate  # noqa: E402

# Re-exported for bench_remote.py, which drives these tools too.
__all__ = ["BenchError", "DATA_DIR", "Datactl", "Dvc", "Workload", "fmt_bytes", "fmt_ratio", "fmt_seconds", "fresh_workspace"]
__all__ += ["load_or_generate", "machine_info", "run", "step_apply_edits", "timed"]

PEER_ORDER = ("borg-lz4", "borg-zstd", "restic", "dvc")
WORKLOAD_LABELS = {"small": ("W1", "W1b"), "big": ("W2", "W2b")}


# -- the tools ------------------------------------------------------------------------------------------


class Tool(ABC):
    """One versioning tool, driven through its command line inside a workspace folder."""

    name: str
    status_note = ""  # the command timed as the no-change status; "" when the tool has none
    readd_note = ""
    restore_note = ""

    def __init__(self) -> None:
        self.peak = PeakRss()  # every command the tool runs reports its peak RSS here

    def _run(self, cmd: Sequence[str], cwd: Path, extra_env: dict[str, str] | None = None) -> Finished:
        return run(cmd, cwd, extra_env, self.peak)

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
        """Record the current ``data/`` as a new version named ``message`` (v1 or v2)."""

    def status(self, ws: Path) -> None:
        """Check ``data/`` for changes without recording anything (only when ``status_note`` is set)."""
        raise NotImplementedError

    @abstractmethod
    def readd(self, ws: Path) -> None:
        """Add ``data/`` again when nothing changed."""

    @abstractmethod
    def store_path(self, ws: Path) -> Path:
        """Where the tool keeps the stored data."""

    def prepare_restore(self, ws: Path) -> None:
        """Anything the restore needs first (not timed)."""

    @abstractmethod
    def restore_v1(self, ws: Path) -> None:
        """Make ``data/`` hold the first version again, with the edited one recorded after it."""

    def check(self, ws: Path, wl: Workload) -> list[str]:
        """Sanity checks after the edited version is recorded; return problems found."""
        return []


class Datactl(Tool):
    """The installed ``datactl`` command, or ``python -m datactl`` from a source tree (``--datactl-src``, ``--compare-src``)."""

    status_note = "datactl status"
    readd_note = "datactl add data"
    restore_note = "datactl checkout HEAD~1, in place"

    def __init__(self, src: Path | None = None, name: str = "datactl") -> None:
        super().__init__()
        self.name = name
        self.command = DatactlCommand(src)
        self.cmd = self.command.cmd
        self.env = self.command.env  # bench_remote.py adds DATACTL_CACHE_DIR here

    def _dc(self, args: Sequence[str], cwd: Path) -> Finished:
        return self._run([*self.cmd, *args], cwd, self.env)

    def available(self) -> bool:
        return True

    def version(self) -> str:
        return f"{self.name}: {self.command.version()}"

    def init(self, ws: Path) -> None:
        self._dc(["init", ".", "--name", "bench"], ws)

    def add_commit(self, ws: Path, message: str) -> None:
        self._dc(["add", DATA_DIR], ws)
        self._dc(["commit", "-m", message], ws)

    def status(self, ws: Path) -> None:
        self._dc(["status"], ws)

    def readd(self, ws: Path) -> None:
        self._dc(["add", DATA_DIR], ws)

    def store_path(self, ws: Path) -> Path:
        return ws / ".datactl" / "store"

    def restore_v1(self, ws: Path) -> None:
        self._dc(["checkout", "HEAD~1"], ws)

    def check(self, ws: Path, wl: Workload) -> list[str]:
        problems = []
        st = json.loads(self._dc(["status", "--json"], ws).stdout)
        if not st["clean"] or st["untracked"]:
            problems.append(f"datactl status not clean after the edited commit: {st}")
        summary = json.loads(self._dc(["diff", "HEAD~1", "HEAD", "--json"], ws).stdout)["summary"]
        want = {"added": len(wl.added), "removed": len(wl.deleted), "modified": len(wl.modified), "renamed": 0}
        got = {k: summary[k] for k in want}
        if got != want:
            problems.append(f"datactl diff HEAD~1 HEAD counts {got}, expected {want}")
        du = json.loads(self._dc(["du", "--json"], ws).stdout)
        if du["version"]["logical_bytes"] != wl.v2_bytes or du["version"]["files"] != wl.v2_files:
            problems.append(
                f"datactl du reports {du['version']['files']} files / {du['version']['logical_bytes']} B, expected {wl.v2_files} / {wl.v2_bytes}"
            )
        return problems


class Dvc(Tool):
    name = "dvc"
    status_note = "dvc status"
    readd_note = "dvc add data"
    restore_note = "git checkout HEAD~1 -- data.dvc + dvc checkout, in place"

    def available(self) -> bool:
        return shutil.which("dvc") is not None and shutil.which("git") is not None

    def version(self) -> str:
        return "dvc " + run(["dvc", "--version"], Path.cwd()).stdout.strip()

    def init(self, ws: Path) -> None:
        self._run(["git", "init", "-q"], ws)
        self._run(["dvc", "init", "-q"], ws)
        # Keep DVC's state database (its stat cache) inside the workspace, fresh for every run.
        self._run(["dvc", "config", "--local", "core.site_cache_dir", str(ws / ".dvc" / "site-cache")], ws)
        self._run(["git", "commit", "-q", "-m", "dvc init"], ws)

    def add_commit(self, ws: Path, message: str) -> None:
        self._run(["dvc", "add", "-q", DATA_DIR], ws)
        self._run(["git", "add", f"{DATA_DIR}.dvc", ".gitignore"], ws)
        self._run(["git", "commit", "-q", "-m", message], ws)

    def status(self, ws: Path) -> None:
        self._run(["dvc", "status", "-q"], ws)

    def readd(self, ws: Path) -> None:
        self._run(["dvc", "add", "-q", DATA_DIR], ws)

    def store_path(self, ws: Path) -> Path:
        return ws / ".dvc" / "cache"

    def restore_v1(self, ws: Path) -> None:
        self._run(["git", "checkout", "-q", "HEAD~1", "--", f"{DATA_DIR}.dvc"], ws)
        self._run(["dvc", "checkout", "-q"], ws)

    def check(self, ws: Path, wl: Workload) -> list[str]:
        out = run(["dvc", "status"], ws).stdout
        return [] if "up to date" in out else [f"dvc status not clean after the edited commit: {out.strip()[:300]}"]


class Restic(Tool):
    name = "restic"
    status_note = "restic backup --dry-run"
    readd_note = "restic backup (unchanged tree)"
    restore_note = "restic restore of the v1 snapshot into an emptied data/ (the deletion not timed)"
    repo = "restic-repo"

    def available(self) -> bool:
        return shutil.which("restic") is not None

    def version(self) -> str:
        return run(["restic", "version"], Path.cwd()).stdout.strip().split(" compiled")[0]

    def _restic(self, ws: Path, *args: str) -> None:
        self._run(["restic", "--repo", self.repo, "--quiet", *args], ws)

    def init(self, ws: Path) -> None:
        self._restic(ws, "init")

    def add_commit(self, ws: Path, message: str) -> None:
        self._restic(ws, "backup", "--tag", message, DATA_DIR)

    def status(self, ws: Path) -> None:
        self._restic(ws, "backup", "--dry-run", DATA_DIR)

    def readd(self, ws: Path) -> None:
        self._restic(ws, "backup", DATA_DIR)

    def store_path(self, ws: Path) -> Path:
        return ws / self.repo

    def prepare_restore(self, ws: Path) -> None:
        clear_dir(ws / DATA_DIR)  # restic 0.14 restores whole files and never deletes: an exact v1 needs an empty target

    def restore_v1(self, ws: Path) -> None:
        # The snapshot's tree starts at data/ (restic keeps the absolute path only as metadata).
        self._restic(ws, "restore", "latest", "--tag", "v1", "--target", ".")


class Borg(Tool):
    """``borg create`` with one compression (borg 1.2 from Debian, unencrypted repository)."""

    readd_note = "borg create (unchanged tree)"
    restore_note = "borg extract of the v1 archive into an emptied data/ (the deletion not timed)"
    repo = "borg-repo"

    def __init__(self, name: str, compression: str) -> None:
        super().__init__()
        self.name = name
        self.compression = compression
        self._archives = 0

    def available(self) -> bool:
        return shutil.which("borg") is not None

    def version(self) -> str:
        return f"{self.name}: {run(['borg', '--version'], Path.cwd()).stdout.strip()}, --compression {self.compression}"

    def _create(self, ws: Path, archive: str) -> None:
        self._run(["borg", "create", "--compression", self.compression, f"{self.repo}::{archive}", DATA_DIR], ws)

    def init(self, ws: Path) -> None:
        self._run(["borg", "init", "-e", "none", self.repo], ws)

    def add_commit(self, ws: Path, message: str) -> None:
        self._create(ws, message)

    def readd(self, ws: Path) -> None:
        self._archives += 1
        self._create(ws, f"readd-{self._archives}")

    def store_path(self, ws: Path) -> Path:
        return ws / self.repo

    def prepare_restore(self, ws: Path) -> None:
        clear_dir(ws / DATA_DIR)  # borg extract never deletes: an exact v1 needs an empty target

    def restore_v1(self, ws: Path) -> None:
        self._run(["borg", "extract", f"{self.repo}::v1"], ws)


# -- benchmark steps ---------------------------------------------------------------------------


TIMED_STEPS = ("add_commit_v1", "status", "readd", "add_commit_v2", "restore")


@dataclass
class ToolResult:
    """What one tool measured on one workload: samples of every timed step, stored bytes of every round."""

    tool: str
    version: str
    add_commit_v1: list[Sample] = field(default_factory=list)
    status: list[Sample] = field(default_factory=list)
    readd: list[Sample] = field(default_factory=list)
    add_commit_v2: list[Sample] = field(default_factory=list)
    restore: list[Sample] = field(default_factory=list)
    stored_v1: list[int] = field(default_factory=list)
    stored_v2_extra: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before and after the tool's rounds

    def samples(self, step: str) -> list[Sample]:
        return list(getattr(self, step))

    def medians(self) -> dict[str, float | None]:
        """Median seconds and peak RSS of every timed step, and median stored bytes (None when not measured)."""
        out: dict[str, float | None] = {}
        for step in TIMED_STEPS:
            out[step] = median_seconds(self.samples(step))
            out[f"{step}_rss"] = median_rss(self.samples(step))
        for key in ("stored_v1", "stored_v2_extra"):
            values = getattr(self, key)
            out[key] = statistics.median(values) if values else None
        return out


def fresh_workspace(tool: Tool, wl: Workload, ws: Path) -> None:
    """Recreate ``ws`` with a copy of the first version in ``ws/data`` and the tool initialised (not timed)."""
    clear_dir(ws)
    ws.mkdir(parents=True)
    shutil.copytree(wl.v1, ws / DATA_DIR)
    tool.init(ws)
    time.sleep(0.2)  # the copies age past datactl's racy-timestamp window, as files made earlier would


def step_apply_edits(wl: Workload, ws: Path) -> None:
    """Turn ``ws/data`` into the edited copy in place: rewrite modified and added files, delete deleted ones (not timed)."""
    data = ws / DATA_DIR
    for rel in wl.modified + wl.added:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wl.v2 / rel, data / rel)
    for rel in wl.deleted:
        (data / rel).unlink()
    time.sleep(0.2)  # let the edits age past datactl's racy-timestamp window, as a person's edits would


def bench_round(tool: Tool, wl: Workload, ws: Path, res: ToolResult, short_repeat: int, first: bool) -> None:
    """One round: v1, status and re-add (``short_repeat`` times each), edits, v2, restore of v1 and its check."""
    fresh_workspace(tool, wl, ws)
    # Untimed: the copy just made is written out first, or the timed step pays for its write-back (datactl's and
    # borg's fsyncs wait on it) as the data a user adds, long on disk, never makes anyone pay.
    os.sync()
    res.add_commit_v1.append(measure(lambda: tool.add_commit(ws, "v1"), tool.peak))
    res.stored_v1.append(dir_bytes(tool.store_path(ws)))
    for _ in range(short_repeat):
        if tool.status_note:
            res.status.append(measure(lambda: tool.status(ws), tool.peak))
        res.readd.append(measure(lambda: tool.readd(ws), tool.peak))
    before_v2 = dir_bytes(tool.store_path(ws))
    step_apply_edits(wl, ws)
    os.sync()  # untimed, as above: the edits are on disk first
    res.add_commit_v2.append(measure(lambda: tool.add_commit(ws, "v2"), tool.peak))
    res.stored_v2_extra.append(dir_bytes(tool.store_path(ws)) - before_v2)
    if first:
        try:
            res.problems += tool.check(ws, wl)
        except BenchError as e:
            res.problems.append(f"check failed: {e}")
    tool.prepare_restore(ws)
    os.sync()  # untimed, as above: the second version written just before is on disk first
    res.restore.append(measure(lambda: tool.restore_v1(ws), tool.peak))
    res.problems += [f"after the restore of v1: {p}" for p in compare_trees(ws / DATA_DIR, wl.v1)]


class ToolRun:
    """One tool's rounds on one workload, run a round at a time (``bench_tools`` interleaves the tools)."""

    def __init__(self, tool: Tool, wl: Workload, work: Path) -> None:
        self.tool, self.wl = tool, wl
        self.ws = work / "runs" / wl.name / tool.name
        self.res = ToolResult(tool.name, tool.version())
        self.res.notes = [f"status = {tool.status_note or 'n/a (no such command)'}", f"re-add = {tool.readd_note}", f"restore = {tool.restore_note}"]
        self.res.load.append(os.getloadavg()[0])
        self.rounds: list[float] = []
        self.failed = False

    def wants_another(self, repeat: int, budget: float) -> bool:
        """Whether to run another round: ``repeat`` of them while the next one likely fits in ``budget`` seconds."""
        rounds = self.rounds
        return not self.failed and len(rounds) < repeat and (not rounds or sum(rounds) + rounds[-1] <= budget)

    def round(self, repeat: int) -> None:
        wl, tool, res = self.wl, self.tool, self.res
        print(f"[{wl.name}] {tool.name}: round {len(self.rounds) + 1} ...", flush=True)
        started = time.perf_counter()
        try:
            bench_round(tool, wl, self.ws, res, repeat, first=not self.rounds)
        except BenchError as e:
            res.problems.append(str(e))
            print(f"[{wl.name}] {tool.name}: FAILED: {e}", flush=True)
            self.failed = True
            return
        self.rounds.append(time.perf_counter() - started)

    def finish(self, keep: bool) -> ToolResult:
        wl, tool, res = self.wl, self.tool, self.res
        res.load.append(os.getloadavg()[0])
        m = res.medians()
        print(
            f"[{wl.name}] {tool.name}: v1 {fmt_seconds(m['add_commit_v1'])}, status {fmt_seconds(m['status'])}, "
            f"re-add {fmt_seconds(m['readd'])}, edited {fmt_seconds(m['add_commit_v2'])}, restore {fmt_seconds(m['restore'])}; "
            f"stored {fmt_bytes(m['stored_v1'])} + {fmt_bytes(m['stored_v2_extra'])}; "
            f"peak RSS {fmt_rss(max((s.peak_rss for st in TIMED_STEPS for s in res.samples(st)), default=None))}; "
            f"load average {res.load[0]:.2f} -> {res.load[1]:.2f}",
            flush=True,
        )
        for p in res.problems:
            print(f"[{wl.name}] {tool.name}: PROBLEM: {p}", flush=True)
        if not keep:
            clear_dir(self.ws)
        return res


def bench_tools(tools: list[Tool], wl: Workload, work: Path, repeat: int, budget: float, keep: bool) -> list[ToolResult]:
    """Every tool's rounds on one workload, interleaved: round 1 of each tool, then round 2 of each, and so on. On a
    shared machine whose speed drifts over minutes, the drift then weighs on every tool alike, not on whichever
    ran its rounds first (tool by tool, the same code measured 14% faster and 7% slower than itself an hour apart)."""
    tool_runs = [ToolRun(tool, wl, work) for tool in tools]
    while any(r.wants_another(repeat, budget) for r in tool_runs):
        for r in tool_runs:
            if r.wants_another(repeat, budget):
                r.round(repeat)
    return [r.finish(keep) for r in tool_runs]


# -- report ---------------------------------------------------------------------------------------------

# (median key, row title; {w} is W1/W2, {wb} W1b/W2b, formatter)
METRICS: list[tuple[str, str, Callable[[float | None], str]]] = [
    ("add_commit_v1", "{w} add+commit", fmt_seconds),
    ("add_commit_v1_rss", "{w} add+commit: peak RSS", fmt_rss),
    ("status", "{w} no-change status", fmt_seconds),
    ("status_rss", "{w} no-change status: peak RSS", fmt_rss),
    ("readd", "{w} no-change re-add", fmt_seconds),
    ("readd_rss", "{w} no-change re-add: peak RSS", fmt_rss),
    ("add_commit_v2", "{wb} incremental add+commit", fmt_seconds),
    ("add_commit_v2_rss", "{wb} incremental: peak RSS", fmt_rss),
    ("restore", "{w} restore of v1 after v2", fmt_seconds),
    ("restore_rss", "{w} restore: peak RSS", fmt_rss),
    ("stored_v1", "{w} stored bytes", fmt_bytes),
    ("stored_v2_extra", "{wb} extra stored bytes", fmt_bytes),
]


def results_table(workloads: list[Workload], results: dict[str, list[ToolResult]], compare: str | None) -> str:
    """One Markdown table: a row per metric, a column per tool, the best peer and datactl's ratio to it."""
    present = {r.tool for rs in results.values() for r in rs}
    peers = [p for p in PEER_ORDER if p in present]
    ours = ["datactl"] + ([compare] if compare and compare in present else [])
    header = ["metric", *ours, *peers, "best peer", "datactl / best"]
    if len(ours) > 1:
        header.append(f"datactl / {ours[1]}")
    rows: list[list[str]] = []
    for wl in workloads:
        w, wb = WORKLOAD_LABELS[wl.name]
        medians = {r.tool: r.medians() for r in results.get(wl.name, [])}
        for key, title, fmt in METRICS:
            values = {tool: m[key] for tool, m in medians.items()}
            best = best_of(values, peers)
            row = [title.format(w=w, wb=wb), *(fmt(values.get(t)) for t in ours), *(fmt(values.get(p)) for p in peers)]
            row += [best[0] if best else "n/a", fmt_ratio(values.get("datactl"), best[1] if best else None)]
            if len(ours) > 1:
                row.append(fmt_ratio(values.get("datactl"), values.get(ours[1])))
            rows.append(row)
    return markdown_table(header, rows, left=1)


def workload_legend(workloads: list[Workload]) -> str:
    parts = []
    for wl in workloads:
        w, wb = WORKLOAD_LABELS[wl.name]
        edits = f"{len(wl.modified)} modified, {len(wl.added)} added, {len(wl.deleted)} deleted"
        parts.append(f"{w} = {wl.name}: {wl.files} files, {wl.bytes / 1e6:.0f} MB; {wb} = {edits}")
    return "; ".join(parts)


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=here / "work", help="work folder for data and runs (default: benchmarks/work)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the workloads (0.02 for a quick run; default 1)")
    p.add_argument("--repeat", type=int, default=3, help="rounds per tool and workload, and repeats of the short steps in each; medians are reported (default 3)")
    p.add_argument("--budget", type=float, default=300.0, help="start another round only while the rounds so far stay under this many seconds (default 300)")
    p.add_argument("--seed", type=int, default=20240601, help="random seed of the workloads")
    p.add_argument("--workloads", default="small,big", help="comma list of workloads: small (W1), big (W2)")
    p.add_argument("--tools", default="datactl,borg,restic,dvc", help="comma list: datactl, borg (= borg-lz4,borg-zstd), borg-lz4, borg-zstd, restic, dvc")
    p.add_argument(
        "--datactl-src",
        type=Path,
        default=None,
        help="benchmark `python -m datactl` from this source tree (holding datactl/ and storage_backends/) instead of the installed command",
    )
    p.add_argument("--compare-src", type=Path, default=None, help="also time `python -m datactl` from this source tree, as the pseudo-peer datactl@<commit>")
    p.add_argument("--json", type=Path, default=None, help="also write all samples and medians to this JSON file")
    p.add_argument("--regenerate", action="store_true", help="regenerate the workloads even if matching ones exist")
    p.add_argument("--keep", action="store_true", help="keep each tool's workspace under WORK/runs for inspection")
    args = p.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1:
        p.error("--scale must be > 0 and --repeat >= 1")
    return args


def select_tools(names: list[str], datactl_src: Path | None = None, compare_src: Path | None = None) -> list[Tool]:
    """The tools asked for that are installed; print a note for each one skipped."""
    known: dict[str, Callable[[], Tool]] = {
        "datactl": lambda: Datactl(datactl_src),
        "borg-lz4": lambda: Borg("borg-lz4", "lz4"),
        "borg-zstd": lambda: Borg("borg-zstd", "zstd,3"),
        "restic": Restic,
        "dvc": Dvc,
    }
    expanded = [n for name in names for n in (("borg-lz4", "borg-zstd") if name == "borg" else (name,))]
    tools: list[Tool] = []
    for name in expanded:
        if name not in known:
            raise SystemExit(f"unknown tool {name!r}; choose from borg, {', '.join(known)}")
        tool = known[name]()
        if tool.available():
            tools.append(tool)
        else:
            print(f"note: {name} is not installed; skipping it (install the peers with `bash benchmarks/setup_peers.sh`)")
    if compare_src is not None:
        tools.insert(1, Datactl(compare_src, compare_label(compare_src)))
    return tools


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work.resolve()
    tools = select_tools(
        [t.strip() for t in args.tools.split(",") if t.strip()],
        args.datactl_src.resolve() if args.datactl_src else None,
        args.compare_src.resolve() if args.compare_src else None,
    )
    print("tools:\n  " + "\n  ".join(t.version() for t in tools), flush=True)
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if any(n not in WORKLOAD_LABELS for n in names):
        raise SystemExit("--workloads takes small and/or big")
    workloads = [load_or_generate(n, work / "data" / f"{n}-scale{args.scale:g}", args.scale, args.seed, args.regenerate) for n in names]
    results: dict[str, list[ToolResult]] = {}
    for wl in workloads:
        results[wl.name] = bench_tools(tools, wl, work, args.repeat, args.budget, args.keep)
    info = machine_info()
    compare = next((t.name for t in tools if t.name.startswith("datactl@")), None)
    table = results_table(workloads, results, compare)
    print()
    print(f"Results: {info['date']}, {info['cpus']} CPUs, {info['platform']}, scale {args.scale:g}, repeat {args.repeat} (medians)")
    print(table)
    print(f"\n{workload_legend(workloads)}.")
    print("best = the fastest (or smallest) of the peers present; datactl / best below 1 means datactl is faster or smaller.")
    for tool in tools:
        print(f"  {tool.name}: status = {tool.status_note or 'n/a (no such command)'}; re-add = {tool.readd_note}; restore = {tool.restore_note}")
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
        write_json(args.json, doc)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
