#!/usr/bin/env python3
"""CLI start-up: ``datactl --version`` and ``datactl status`` in a small workspace, and what their imports cost.

Each command runs ``--runs`` times (default 20) as a new process; the table
gives the median and minimum wall time and the median peak RSS, next to
``python -c pass`` (the interpreter alone, the floor). Then each command runs
once more under ``python -X importtime`` and the summary lists the total import
time, the modules imported, the 10 packages whose modules cost the most (sum of
their own import times) and the 10 modules with the largest cumulative time.

The installed command is the console script beside this Python (not a version
manager's shim on PATH); ``--datactl-src DIR`` runs ``python -m datactl`` from a
source tree instead, and ``--compare-src DIR`` adds a second tree side by side.

Usage::

    python benchmarks/bench_startup.py                 # about 30 s
    python benchmarks/bench_startup.py --compare-src /tmp/datactl-before
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import DatactlCommand, PeakRss, Sample, compare_label, fmt_ratio, fmt_rss, machine_info, markdown_table, measure, run, write_json  # noqa: E402

SMALL_FILES = 100


@dataclass
class ImportSummary:
    """What ``python -X importtime`` reported for one command."""

    total_ms: float
    modules: int
    packages: list[tuple[str, float]]  # top packages by the sum of their modules' own time (ms)
    cumulative: list[tuple[str, float]]  # top modules by cumulative time (ms)


@dataclass
class StartupResult:
    name: str
    version: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    imports: dict[str, ImportSummary] = field(default_factory=dict)


def parse_importtime(stderr: str, top: int = 10) -> ImportSummary:
    """Summarise ``-X importtime`` lines: ``import time: SELF | CUMULATIVE | <indent>module``."""
    self_by_package: dict[str, float] = defaultdict(float)
    cumulative: list[tuple[str, float]] = []
    total = 0.0
    modules = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cum, name = (part for part in line[len("import time:") :].split("|", 2))
        module = name.strip()
        own_ms, cum_ms = int(own) / 1000, int(cum) / 1000
        total += own_ms
        modules += 1
        self_by_package[module.split(".")[0]] += own_ms
        cumulative.append((module, cum_ms))
    packages = sorted(self_by_package.items(), key=lambda kv: -kv[1])[:top]
    return ImportSummary(total, modules, packages, sorted(cumulative, key=lambda kv: -kv[1])[:top])


def make_workspace(command: DatactlCommand, root: Path) -> Path:
    """A workspace of ``SMALL_FILES`` small files, committed (not timed)."""
    ws = root / "ws"
    (ws / "data").mkdir(parents=True)
    for i in range(SMALL_FILES):
        (ws / "data" / f"f{i:03d}.csv").write_text(f"id,value\n{i},{i * i}\n" * 20)
    for args in (["init", ".", "--name", "bench"], ["add", "data"], ["commit", "-m", "v1"]):
        run([*command.cmd, *args], ws, command.env)
    return ws


def bench(name: str, command: DatactlCommand, work: Path, runs: int) -> StartupResult:
    res = StartupResult(name, command.version())
    ws = make_workspace(command, work / name.replace("@", "-"))
    peak = PeakRss()
    python = [sys.executable, "-X", "importtime", "-P", "-m", "datactl"]
    for label, args, cwd in (("--version", ["--version"], work), ("status", ["status"], ws)):
        print(f"{name}: datactl {label} x {runs} ...", flush=True)
        run([*command.cmd, *args], cwd, command.env)  # warm the page cache and the bytecode cache
        res.samples[label] = [measure(lambda: run([*command.cmd, *args], cwd, command.env, peak), peak) for _ in range(runs)]
        res.imports[label] = parse_importtime(run([*python, *args], cwd, command.env).stderr)
    return res


def baseline(work: Path, runs: int) -> list[Sample]:
    peak = PeakRss()
    run([sys.executable, "-c", "pass"], work)
    return [measure(lambda: run([sys.executable, "-c", "pass"], work, None, peak), peak) for _ in range(runs)]


def report(results: list[StartupResult], floor: list[Sample]) -> str:
    header = ["command"]
    for r in results:
        header += [f"{r.name} median", "min", "peak RSS"]
    if len(results) > 1:
        header.append(f"{results[0].name} / {results[1].name}")
    rows = [["python -c pass (floor)", *[c for _ in results for c in _cells(floor)]]]
    if len(results) > 1:
        rows[0].append("")
    for label in ("--version", "status"):
        row = [f"datactl {label}"]
        for r in results:
            row += _cells(r.samples[label])
        if len(results) > 1:
            row.append(fmt_ratio(*(statistics.median(s.seconds for s in r.samples[label]) for r in results[:2])))
        rows.append(row)
    return markdown_table(header, rows, left=1)


def _cells(samples: list[Sample]) -> list[str]:
    secs = [s.seconds for s in samples]
    return [f"{statistics.median(secs) * 1000:.0f} ms", f"{min(secs) * 1000:.0f} ms", fmt_rss(statistics.median(s.peak_rss for s in samples))]


def import_report(r: StartupResult) -> str:
    lines = []
    for label, imp in r.imports.items():
        lines.append(f"{r.name} {label}: imports take {imp.total_ms:.0f} ms over {imp.modules} modules")
        lines.append("  packages (own time): " + ", ".join(f"{p} {ms:.1f} ms" for p, ms in imp.packages))
        lines.append("  modules (cumulative): " + ", ".join(f"{m} {ms:.1f} ms" for m, ms in imp.cumulative))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="runs of each command (default 20)")
    p.add_argument("--datactl-src", type=Path, default=None, help="run `python -m datactl` from this source tree instead of the installed command")
    p.add_argument("--compare-src", type=Path, default=None, help="also measure this source tree, as datactl@<commit>")
    p.add_argument("--json", type=Path, default=None, help="also write the samples and import summaries here")
    args = p.parse_args(argv)
    trees = [("datactl", DatactlCommand(args.datactl_src.resolve() if args.datactl_src else None))]
    if args.compare_src:
        src = args.compare_src.resolve()
        trees.append((compare_label(src), DatactlCommand(src)))
    with tempfile.TemporaryDirectory(prefix="datactl-bench-startup-") as tmp:
        work = Path(tmp)
        floor = baseline(work, args.runs)
        results = [bench(name, command, work, args.runs) for name, command in trees]
    info = machine_info()
    print(f"\nResults: {info['date']}, {info['cpus']} CPUs, Python {info['python']}, {args.runs} runs each, load average {info['load_average_at_end'][0]:.2f}")
    for r in results:
        print(f"  {r.name}: {r.version}")
    table = report(results, floor)
    print(table)
    print()
    for r in results:
        print(import_report(r))
    if args.json:
        doc = {"machine": info, "floor": [asdict(s) for s in floor], "results": [asdict(r) for r in results], "table": table}
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
