#!/usr/bin/env python3
"""datactl, restic and DVC on N tiny files (default N = 10,000, 100,000 and 1,000,000).

The data: N files of 100 to 2,000 bytes (half random bytes, half CSV-like text),
1,000 to a folder (``dNNNN/fNNNNNNN.bin|.csv``), generated once per N and seed
under ``WORK/scale/`` and reused. A *change set* k rewrites the files whose
index is k modulo 1,000: 0.1% of the files, a different 0.1% for every k. Each
file's bytes are a function of (seed, index, change set), so any version can be
checked without keeping it on disk.

For each N and tool, in one workspace holding a copy of the data (``cp -a``,
not timed), these steps are timed (wall time, and the peak RSS of the processes
they ran), each repeated ``--repeat`` times while the samples stay within
``--budget`` seconds:

=================  ==========================  ============================  ===================================
step               datactl                     restic                        dvc
=================  ==========================  ============================  ===================================
add+commit         add data + commit           backup                        dvc add + git add + git commit
                   (each repeat after the tool's store is deleted and re-initialised)
status             status (nothing changed)    backup --dry-run              dvc status
commit 0.1%        add data + commit           backup                        dvc add + git add + git commit
                   (each repeat after applying the next change set: each commit changes 0.1% of the files)
checkout 0.1%      checkout HEAD~1, then the   n/a: restic 0.14 restores     git checkout HEAD~1 -- data.dvc +
                   latest again (both timed)   whole trees only              dvc checkout, and back
push               push to a fresh folder      copy to a fresh repository    dvc push to a fresh folder remote
                   store (all versions)        (all snapshots)               (the checked-out version)
clone              clone from that folder,     restore latest from the       dvc fetch + dvc checkout in a fresh
                   fresh cache                 copied repository, fresh dir  git clone (the clone not timed)
files() cold       Dataset.get(...).files()    n/a                           n/a
                   in a new process, fresh cache
=================  ==========================  ============================  ===================================

After the checkout steps the changed files are compared with the bytes each
version should have, and the first clone is compared, file by file, with the
workspace. The table gives medians, and datactl's ratio to the best (fastest,
or smallest RSS) of restic and DVC.

Disk: the data once, plus per tool a workspace and a clone (DVC: also two cache
copies): about 25 GB and 6 million inodes at N = 1,000,000. Each tool's folders
are deleted when it is done (unless ``--keep``).

Usage::

    bash benchmarks/setup_peers.sh
    python benchmarks/bench_scale.py --sizes 1000 --repeat 1        # quick check, under a minute
    python benchmarks/bench_scale.py --json benchmarks/work/scale.json  # 10k, 100k, 1M: hours
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_workflow import Datactl, Dvc, Restic, Tool  # noqa: E402
from benchlib import (  # noqa: E402
    BenchError,
    Sample,
    best_of,
    clear_dir,
    compare_label,
    compare_trees,
    fmt_ratio,
    fmt_rss,
    fmt_seconds,
    machine_info,
    markdown_table,
    measure,
    median_rss,
    median_seconds,
    write_json,
)

GENERATOR_VERSION = 1
FILES_PER_FOLDER = 1000
CHANGE_PERIOD = 1000  # change set k = the files whose index is k modulo this: 0.1%
MIN_SIZE, MAX_SIZE = 100, 2000
DATA_DIR = "data"
PEERS = ("restic", "dvc")
STEPS = ("add_commit", "status", "commit_changed", "checkout", "push", "clone", "files_cold")
STEP_TITLES = {
    "add_commit": "add+commit",
    "status": "no-change status",
    "commit_changed": "commit of 0.1% changed",
    "checkout": "checkout of a version 0.1% apart",
    "push": "push, whole dataset, folder remote",
    "clone": "clone",
    "files_cold": "Dataset.get().files() cold",
}
_TEXT = b"".join(b"%d,%d,label%d,%.5f,row %d of the csv\n" % (i, 1_700_000_000 + i * 7, i % 13, (i * 0.618) % 1, i) for i in range(2000))


# -- the data --------------------------------------------------------------------------------------------


def rel_path(i: int) -> str:
    """Where file ``i`` lives: 1,000 files to a folder; half of them text."""
    return f"d{i // FILES_PER_FOLDER:04d}/f{i:07d}.{'csv' if i % 2 else 'bin'}"


def content(i: int, change_set: int, seed: int) -> bytes:
    """The bytes of file ``i`` as change set ``change_set`` leaves it (0 = first version)."""
    rng = random.Random((seed * 1_000_003 + i) * 1_009 + change_set)
    size = rng.randint(MIN_SIZE, MAX_SIZE)
    if i % 2 == 0:
        return rng.randbytes(size)
    head = b"id=%d,version=%d\n" % (i, change_set)
    start = rng.randrange(len(_TEXT) - MAX_SIZE)
    return (head + _TEXT[start : start + size])[:size]


def changed_files(n: int, change_set: int) -> range:
    """Indexes of the files that change set ``change_set`` rewrites (a range: no list of them is built)."""
    return range(change_set % CHANGE_PERIOD, n, CHANGE_PERIOD)


def write_file(root: Path, i: int, change_set: int, seed: int) -> None:
    (root / rel_path(i)).write_bytes(content(i, change_set, seed))


def load_or_generate(work: Path, n: int, seed: int, regenerate: bool) -> Path:
    """The folder holding the first version of the N-file data (generated, streamed to disk, unless already there)."""
    root = work / "scale" / f"n{n}-seed{seed}"
    manifest = root / "manifest.json"
    params = {"files": n, "seed": seed, "generator": GENERATOR_VERSION}
    if not regenerate and manifest.exists() and json.loads(manifest.read_text()) == params:
        print(f"[{n}] reusing the data in {root}", flush=True)
        return root / "v1"
    clear_dir(root)
    print(f"[{n}] generating {n} files in {root} ...", flush=True)
    started = time.perf_counter()
    v1 = root / "v1"
    for i in range(n):
        if i % FILES_PER_FOLDER == 0:
            (v1 / rel_path(i)).parent.mkdir(parents=True)
        write_file(v1, i, 0, seed)
    manifest.write_text(json.dumps(params))
    print(f"[{n}] generated in {time.perf_counter() - started:.1f} s", flush=True)
    return v1


def apply_change_set(data: Path, n: int, change_set: int, seed: int) -> None:
    """Rewrite the files of ``change_set`` in ``data`` (not timed)."""
    for i in changed_files(n, change_set):
        write_file(data, i, change_set, seed)
    time.sleep(0.2)  # the edits age past datactl's racy-timestamp window, as a person's edits would


def check_change_set(data: Path, n: int, change_set: int, expect: int, seed: int) -> list[str]:
    """Problems if the files of ``change_set`` do not hold the bytes of change set ``expect`` (0: the first version)."""
    wrong = [rel_path(i) for i in changed_files(n, change_set) if (data / rel_path(i)).read_bytes() != content(i, expect, seed)]
    return [f"{len(wrong)} files of change set {change_set} do not hold version {expect}'s bytes, e.g. {wrong[:3]}"] if wrong else []


# -- the tools: what each does for the steps beyond bench_workflow's ------------------------------------


class ScaleOps:
    """The extra steps of this benchmark, for one tool (mixed into bench_workflow's tool classes)."""

    def reset(self, ws: Path) -> None:
        """Delete the tool's repository in ``ws`` (keeping data/) and initialise a new one (not timed)."""
        raise NotImplementedError

    can_checkout = True

    def checkout_previous(self, ws: Path) -> None:
        raise NotImplementedError

    def checkout_latest(self, ws: Path) -> None:
        raise NotImplementedError

    def prepare_push(self, ws: Path, remote: Path) -> None:
        """Make ``remote`` (a fresh folder) the target of the next push (not timed)."""

    def push(self, ws: Path, remote: Path) -> None:
        raise NotImplementedError

    def prepare_clone(self, ws: Path, remote: Path, dest: Path, cache: Path) -> None:
        """Anything a clone into ``dest`` needs first (not timed)."""

    def clone(self, ws: Path, remote: Path, dest: Path, cache: Path) -> None:
        """Make ``dest/data`` hold the latest version, from ``remote`` (timed)."""
        raise NotImplementedError


class DatactlScale(ScaleOps, Datactl):
    def reset(self, ws: Path) -> None:
        clear_dir(ws / ".datactl")
        self.init(ws)

    def checkout_previous(self, ws: Path) -> None:
        self._dc(["checkout", "HEAD~1"], ws)

    def checkout_latest(self, ws: Path) -> None:
        self._dc(["checkout", "bench"], ws)  # the dataset's name: its latest version

    def push(self, ws: Path, remote: Path) -> None:
        self._dc(["push", str(remote)], ws)

    def clone(self, ws: Path, remote: Path, dest: Path, cache: Path) -> None:
        self._run([*self.cmd, "clone", str(remote), "bench", str(dest)], dest.parent, self.env | {"DATACTL_CACHE_DIR": str(cache)})

    def files_cold(self, remote: Path, cache: Path, n: int) -> None:
        """``Dataset.get(...).files()`` in a new process with an empty cache; checks that it lists ``n`` files."""
        code = (
            "import sys\nfrom datactl import Dataset\n"
            "with Dataset.get('bench', remote=sys.argv[1], cache_dir=sys.argv[2]) as ds:\n"
            "    print(sum(1 for _ in ds.files()))\n"
        )
        out = self._run([sys.executable, "-P", "-c", code, str(remote), str(cache)], cache.parent, self.env)
        if out.stdout.split()[-1:] != [str(n)]:
            raise BenchError(f"Dataset.get(...).files() listed {out.stdout.strip()[-200:]!r}, expected {n} files")


class ResticScale(ScaleOps, Restic):
    can_checkout = False

    def reset(self, ws: Path) -> None:
        clear_dir(ws / self.repo)
        clear_dir(ws / ".restic-cache")
        self.init(ws)

    def prepare_push(self, ws: Path, remote: Path) -> None:
        # restic copy keeps deduplication only between repositories with the same chunker parameters.
        self._run(["restic", "--repo", str(remote), "--quiet", "init", "--from-repo", self.repo, "--copy-chunker-params"], ws, self._from_env())

    def _from_env(self) -> dict[str, str]:
        return {"RESTIC_FROM_PASSWORD": "datactl-bench"}  # the same password as tool_env's RESTIC_PASSWORD

    def push(self, ws: Path, remote: Path) -> None:
        self._run(["restic", "--repo", str(remote), "--quiet", "copy", "--from-repo", self.repo], ws, self._from_env())

    def clone(self, ws: Path, remote: Path, dest: Path, cache: Path) -> None:
        dest.mkdir(parents=True)
        self._run(["restic", "--repo", str(remote), "--quiet", "restore", "latest", "--target", str(dest)], dest, {"RESTIC_CACHE_DIR": str(cache)})


class DvcScale(ScaleOps, Dvc):
    def reset(self, ws: Path) -> None:
        for name in (".git", ".dvc", ".dvcignore", f"{DATA_DIR}.dvc", ".gitignore"):
            path = ws / name
            if path.is_dir():
                clear_dir(path)
            else:
                path.unlink(missing_ok=True)
        self.init(ws)

    def checkout_previous(self, ws: Path) -> None:
        self._run(["git", "checkout", "-q", "HEAD~1", "--", f"{DATA_DIR}.dvc"], ws)
        self._run(["dvc", "checkout", "-q"], ws)

    def checkout_latest(self, ws: Path) -> None:
        self._run(["git", "checkout", "-q", "HEAD", "--", f"{DATA_DIR}.dvc"], ws)
        self._run(["dvc", "checkout", "-q"], ws)

    def prepare_push(self, ws: Path, remote: Path) -> None:
        # --local: the remote lives in .dvc/config.local, so no git commit moves HEAD.
        self._run(["dvc", "remote", "add", "--local", "-d", "-f", "bench", str(remote)], ws)

    def push(self, ws: Path, remote: Path) -> None:
        self._run(["dvc", "push", "-q"], ws)

    def prepare_clone(self, ws: Path, remote: Path, dest: Path, cache: Path) -> None:
        self._run(["git", "clone", "-q", str(ws), str(dest)], dest.parent)
        self._run(["dvc", "remote", "add", "--local", "-d", "bench", str(remote)], dest)
        self._run(["dvc", "config", "--local", "core.site_cache_dir", str(cache)], dest)

    def clone(self, ws: Path, remote: Path, dest: Path, cache: Path) -> None:
        self._run(["dvc", "fetch", "-q"], dest)
        self._run(["dvc", "checkout", "-q"], dest)


# -- running the steps ------------------------------------------------------------------------------------


@dataclass
class ScaleResult:
    """What one tool measured at one N."""

    tool: str
    n: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)

    def medians(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for step in STEPS:
            out[step] = median_seconds(self.samples.get(step, []))
            out[f"{step}_rss"] = median_rss(self.samples.get(step, []))
        return out


def sample_while(repeat: int, budget: float, take: Callable[[int], Sample]) -> list[Sample]:
    """Call ``take(k)`` for k = 0, 1, ...: ``repeat`` samples, fewer when the next one likely overruns ``budget`` seconds."""
    samples: list[Sample] = []
    while len(samples) < repeat and (not samples or sum(s.seconds for s in samples) + samples[-1].seconds <= budget):
        samples.append(take(len(samples)))
    return samples


def bench_tool(tool: Tool, src: Path, n: int, work: Path, args: argparse.Namespace) -> ScaleResult:
    """Every step for one tool on the N-file data."""
    assert isinstance(tool, ScaleOps)
    runs = work / "runs" / "scale" / f"n{n}" / tool.name
    ws, res = runs / "ws", ScaleResult(tool.name, n)
    res.load.append(os.getloadavg()[0])
    clear_dir(runs)
    ws.mkdir(parents=True)
    if isinstance(tool, Datactl):
        tool.env = tool.env | {"DATACTL_CACHE_DIR": str(runs / "cache")}  # nothing from, or left in, the user's cache
    print(f"[{n}] {tool.name}: copying the data ...", flush=True)
    subprocess.run(["cp", "-a", str(src), str(ws / DATA_DIR)], check=True)
    time.sleep(0.2)
    repeat, budget, seed = args.repeat, args.budget, args.seed
    rec = res.samples

    def say(step: str) -> None:
        print(f"[{n}] {tool.name}: {STEP_TITLES[step]} ...", flush=True)

    def add_commit(k: int) -> Sample:
        if k:
            tool.reset(ws)
        return measure(lambda: tool.add_commit(ws, "v1"), tool.peak)

    say("add_commit")
    tool.init(ws)
    rec["add_commit"] = sample_while(repeat, budget, add_commit)
    if tool.status_note:
        say("status")
        rec["status"] = sample_while(repeat, budget, lambda k: measure(lambda: tool.status(ws), tool.peak))

    def commit_changed(k: int) -> Sample:
        apply_change_set(ws / DATA_DIR, n, k + 1, seed)
        return measure(lambda: tool.add_commit(ws, f"change set {k + 1}"), tool.peak)

    say("commit_changed")
    rec["commit_changed"] = sample_while(repeat, budget, commit_changed)
    last = len(rec["commit_changed"])  # the change set of the latest version

    say("push")

    def push(k: int) -> Sample:
        # A new folder each time: datactl remembers what a store URL holds, so a store deleted and made again at
        # the same place would not be a fresh remote to it.
        clear_dir(runs / f"remote-{k - 1}")
        tool.prepare_push(ws, runs / f"remote-{k}")
        return measure(lambda: tool.push(ws, runs / f"remote-{k}"), tool.peak)

    rec["push"] = sample_while(repeat, budget, push)
    remote = runs / f"remote-{len(rec['push']) - 1}"

    if tool.can_checkout:
        say("checkout")

        def checkout(k: int) -> Sample:
            # Even samples go back one version, odd ones forward again; the last pair ends on the latest.
            back = k % 2 == 0
            sample = measure(lambda: tool.checkout_previous(ws) if back else tool.checkout_latest(ws), tool.peak)
            if k < 2:
                res.problems.extend(check_change_set(ws / DATA_DIR, n, last, 0 if back else last, seed))
            return sample

        rec["checkout"] = sample_while(2 * repeat, budget, checkout)
        if len(rec["checkout"]) % 2:
            tool.checkout_latest(ws)

    say("clone")
    cache = runs / "clone-cache"

    # Each sample clones into a folder of its own, deleted after the last: ext4 does part of an `rm -rf` of many
    # files later, inside whoever creates files next, which would charge one sample's deletion to the next.
    def clone(k: int) -> Sample:
        dest = runs / f"clone-{k}"
        clear_dir(cache)
        tool.prepare_clone(ws, remote, dest, cache)
        sample = measure(lambda: tool.clone(ws, remote, dest, cache), tool.peak)
        if k == 0 and args.verify:
            res.problems.extend(f"clone: {p}" for p in compare_trees(dest / DATA_DIR, ws / DATA_DIR))
        return sample

    rec["clone"] = sample_while(repeat, budget, clone)
    for dest in runs.glob("clone-[0-9]*"):
        clear_dir(dest)

    if isinstance(tool, DatactlScale):
        say("files_cold")

        def files_cold(k: int) -> Sample:
            clear_dir(cache)
            cache.mkdir(parents=True)
            return measure(lambda: tool.files_cold(remote, cache, n), tool.peak)

        rec["files_cold"] = sample_while(repeat, budget, files_cold)

    res.load.append(os.getloadavg()[0])
    m = res.medians()
    done = ", ".join(f"{STEP_TITLES[s]} {fmt_seconds(m[s])} ({fmt_rss(m[s + '_rss'])})" for s in STEPS if m[s] is not None)
    print(f"[{n}] {tool.name}: {done}; load average {res.load[0]:.2f} -> {res.load[1]:.2f}", flush=True)
    if not args.keep:
        clear_dir(runs)
    return res


# -- report -------------------------------------------------------------------------------------------------


def size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def results_table(sizes: list[int], results: list[ScaleResult], tools: list[str]) -> str:
    """A row per (N, step) for the time and one for the peak RSS; a column per tool; datactl's ratio to the best peer."""
    ours = [t for t in tools if t.startswith("datactl")]
    peers = [p for p in PEERS if p in tools]
    header = ["N, step", *ours, *peers, "best peer", "datactl / best"]
    if len(ours) > 1:
        header.append(f"datactl / {ours[1]}")
    rows = []
    for n in sizes:
        medians = {r.tool: r.medians() for r in results if r.n == n}
        for step in STEPS:
            for key, suffix, fmt in ((step, "", fmt_seconds), (f"{step}_rss", ": peak RSS", fmt_rss)):
                values = {t: m[key] for t, m in medians.items()}
                if all(v is None for v in values.values()):
                    continue
                best = best_of(values, peers)
                row = [f"{size_label(n)} {STEP_TITLES[step]}{suffix}", *(fmt(values.get(t)) for t in ours), *(fmt(values.get(p)) for p in peers)]
                row += [best[0] if best else "n/a", fmt_ratio(values.get("datactl"), best[1] if best else None)]
                if len(ours) > 1:
                    row.append(fmt_ratio(values.get("datactl"), values.get(ours[1])))
                rows.append(row)
    return markdown_table(header, rows, left=1)


# -- main ------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000", help="comma list of file counts N (default 10000,100000,1000000)")
    p.add_argument("--tools", default="datactl,restic,dvc", help="comma list: datactl, restic, dvc (peers not installed are skipped)")
    p.add_argument("--repeat", type=int, default=3, help="samples of each step; medians are reported (default 3)")
    p.add_argument("--budget", type=float, default=600.0, help="take another sample of a step only while its samples stay under this many seconds (default 600)")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--work", type=Path, default=here / "work", help="work folder (default: benchmarks/work)")
    p.add_argument("--datactl-src", type=Path, default=None, help="time `python -m datactl` from this source tree instead of the installed command")
    p.add_argument("--compare-src", type=Path, default=None, help="also time `python -m datactl` from this source tree, as datactl@<commit>")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the file-by-file check of the first clone (minutes at 1M files)")
    p.add_argument("--regenerate", action="store_true", help="regenerate the data even if it exists")
    p.add_argument("--keep", action="store_true", help="keep each tool's workspace, remote and clone")
    p.add_argument("--json", type=Path, default=None, help="also write every sample to this JSON file")
    args = p.parse_args(argv)
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error("--sizes takes a comma list of integers")
    if not args.size_list or min(args.size_list) < 1 or args.repeat < 1:
        p.error("--sizes must be positive and --repeat >= 1")
    return args


def select_tools(args: argparse.Namespace) -> list[Tool]:
    known: dict[str, Callable[[], Tool]] = {
        "datactl": lambda: DatactlScale(args.datactl_src.resolve() if args.datactl_src else None),
        "restic": ResticScale,
        "dvc": DvcScale,
    }
    tools: list[Tool] = []
    for name in [t.strip() for t in args.tools.split(",") if t.strip()]:
        if name not in known:
            raise SystemExit(f"unknown tool {name!r}; choose from {', '.join(known)}")
        tool = known[name]()
        if tool.available():
            tools.append(tool)
        else:
            print(f"note: {name} is not installed; skipping it (install the peers with `bash benchmarks/setup_peers.sh`)")
    if args.compare_src is not None:
        src = args.compare_src.resolve()
        tools.insert(1, DatactlScale(src, compare_label(src)))
    return tools


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work.resolve()
    tools = select_tools(args)
    print("tools:\n  " + "\n  ".join(t.version() for t in tools), flush=True)
    results: list[ScaleResult] = []
    for n in args.size_list:
        src = load_or_generate(work, n, args.seed, args.regenerate)
        for tool in tools:
            try:
                results.append(bench_tool(tool, src, n, work, args))
            except BenchError as e:
                print(f"[{n}] {tool.name}: FAILED: {e}", flush=True)
                results.append(ScaleResult(tool.name, n, problems=[str(e)]))
            for p in results[-1].problems:
                print(f"[{n}] {tool.name}: PROBLEM: {p}", flush=True)
    info = machine_info()
    table = results_table(args.size_list, results, [t.name for t in tools])
    print(f"\nResults: {info['date']}, {info['cpus']} CPUs, {info['platform']}, repeat {args.repeat} (medians)")
    print(table)
    print("\nbest = the fastest (or smallest RSS) of restic and DVC; datactl / best below 1 means datactl is faster or smaller.")
    print("restic: no checkout (0.14 restores whole trees only); push = `restic copy` to a fresh repository; clone = `restic restore latest`.")
    problems = [f"{r.n}/{r.tool}: {p}" for r in results for p in r.problems]
    for p in problems:
        print(f"PROBLEM {p}")
    if args.json:
        doc = {
            "machine": info,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "results": [asdict(r) | {"median": r.medians()} for r in results],
            "table": table,
        }
        write_json(args.json, doc)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
