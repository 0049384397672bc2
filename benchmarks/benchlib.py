"""What every benchmark script shares: running a tool with its time and peak memory, and printing the results.

Standard library only, so a script's subprocess workers import it cheaply.

Peak memory: each command runs as a child process reaped with ``os.wait4``, whose
``ru_maxrss`` is the largest resident set of that process and of the processes it
waited for itself (Linux reports the maximum of the two). A tool whose processes
run side by side (datactl's add workers, DVC and git) holds their sum at once, so
the resident sets of the whole process tree are also summed from /proc every
20 ms while it runs, and the larger of the two figures is reported. A step made
of several commands reports the largest of theirs. Python code timed in this process (``Dataset.get`` in bench_scale) is
run in a child process for the same reason.
"""

from __future__ import annotations

import filecmp
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path


class BenchError(RuntimeError):
    """A tool failed or a workload could not be built."""


# -- running a command: wall time and peak RSS -------------------------------------------------------------


@dataclass
class PeakRss:
    """The largest resident set (bytes) of the commands run since the last ``reset``."""

    bytes: int = 0

    def reset(self) -> None:
        self.bytes = 0

    def add(self, rss: int) -> None:
        self.bytes = max(self.bytes, rss)


class TreeRss:
    """The largest sum of the resident sets of a process and all its descendants, sampled every 20 ms from /proc
    (0 where /proc cannot tell a process's children).

    A child caught between its fork and its exec still runs its parent's program in its parent's pages (shared
    outright after a vfork, copy-on-write after a fork): it counts nothing, or the sum counts the parent twice.
    A command starting its worker processes at its peak read up to its own size too high (307 MB for a clone
    whose processes held 160 + 2 x 25 MB). None of the measured tools keeps a forked copy of itself running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(self.pid)))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, less those not yet past the exec after their fork (see ``TreeRss``)."""
    found = [pid]
    try:
        program = _cmdline(pid)
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in map(int, f.read().split()):
                    if _cmdline(child) != program:
                        found += _tree(child)
    except OSError:  # gone meanwhile, or no /proc
        pass
    return found


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


class Finished(subprocess.CompletedProcess[str]):
    """A command that ran: its output, exit code and peak resident set (bytes)."""

    peak_rss: int = 0


def tool_env(workspace: Path) -> dict[str, str]:
    """Environment for every tool run: fixed identities, no analytics, restic and borg kept inside ``workspace``."""
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
            # borg keeps its caches, keys and security records under BORG_BASE_DIR (default: the home folder).
            "BORG_BASE_DIR": str(workspace / ".borg-base"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    return env


def run(cmd: Sequence[str], cwd: Path, extra_env: dict[str, str] | None = None, peak: PeakRss | None = None) -> Finished:
    """Run ``cmd`` in ``cwd``; add its peak RSS to ``peak``; raise BenchError with its output when it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # Output goes to files, not pipes, so the child can be reaped with wait4 (which reports its rusage)
        # without a reader thread.
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=tool_env(cwd) | (extra_env or {}), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        tree = TreeRss(proc.pid)
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            tree.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = Finished(list(cmd), proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    done.peak_rss = max(usage.ru_maxrss * 1024, tree.peak)  # ru_maxrss is in KiB on Linux
    if peak is not None:
        peak.add(done.peak_rss)
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` in {cwd} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


@dataclass
class Sample:
    """One timed step: wall seconds and the peak RSS (bytes) of the processes it ran."""

    seconds: float
    peak_rss: int


def measure(step: Callable[[], object], peak: PeakRss) -> Sample:
    """Time ``step`` (whose commands report into ``peak``), after flushing dirty pages so earlier writes do not bleed in."""
    os.sync()
    peak.reset()
    started = time.perf_counter()
    step()
    return Sample(time.perf_counter() - started, peak.bytes)


def timed(step: Callable[[], object]) -> float:
    """Seconds ``step`` takes, after a sync (for steps whose memory is not measured)."""
    return measure(step, PeakRss()).seconds


def median_seconds(samples: Sequence[Sample]) -> float | None:
    return statistics.median(s.seconds for s in samples) if samples else None


def median_rss(samples: Sequence[Sample]) -> float | None:
    return statistics.median(s.peak_rss for s in samples) if samples else None


# -- the code under test ----------------------------------------------------------------------------------------


def compile_bytecode(root: Path) -> None:
    """Compile the modules of the datactl tree at ``root``, as installing a package does: a source tree (an editable
    install, a ``--compare-src``) where PYTHONDONTWRITEBYTECODE is set would otherwise compile every module again on
    every start-up, 0.1-0.2 s that no installed datactl pays."""
    packages = [str(root / name) for name in ("datactl", "storage_backends") if (root / name).is_dir()]
    run([sys.executable, "-m", "compileall", "-q", *packages], Path.cwd())


@dataclass
class DatactlCommand:
    """How to run datactl: the installed command, or ``python -m datactl`` from a source tree."""

    src: Path | None = None
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The console script beside this Python first: a `datactl` found on PATH may be a version manager's shim,
        # a shell script that adds its own start-up time to every command.
        beside = Path(sys.executable).parent / "datactl"
        exe = str(beside) if beside.exists() else shutil.which("datactl")
        if not self.cmd:
            self.cmd = [exe] if exe and self.src is None else [sys.executable, "-P", "-m", "datactl"]
        if self.src is not None:
            self.env = {"PYTHONPATH": str(self.src)} | self.env
        self.compile_bytecode()

    def root(self) -> Path:
        """The folder holding the ``datactl`` package that runs."""
        where = run([sys.executable, "-P", "-c", "import datactl; print(datactl.__file__)"], Path.cwd(), self.env)
        return Path(where.stdout.strip()).parent.parent

    def compile_bytecode(self) -> None:
        compile_bytecode(self.root())

    def commit_id(self) -> str:
        """The git commit of the code that runs (``-dirty`` with local changes), or '' when unknown."""
        root = self.root()
        marker = root / "GIT_COMMIT"
        if marker.exists():
            return marker.read_text().strip()
        proc = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def source(self) -> str:
        """Which code runs: its commit and folder."""
        root = self.root()
        commit = self.commit_id()
        return f"git {commit} ({root})" if commit else str(root)

    def version(self) -> str:
        return f"{run([*self.cmd, '--version'], Path.cwd(), self.env).stdout.strip()}, {self.source()}"


def compare_label(src: Path) -> str:
    """The name of a second datactl tree in the tables: ``datactl@<commit>``."""
    commit = DatactlCommand(src).commit_id()
    return f"datactl@{commit[:12] or src.name}"


# -- files ----------------------------------------------------------------------------------------------------


def walk_files(root: Path, prefix: str = "") -> Iterator[str]:
    """Relative paths (with /) of every file under ``root``, ordered by their components, one folder listed at a time."""
    with os.scandir(root) as it:
        entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
    for name, is_dir in entries:
        if is_dir:
            yield from walk_files(root / name, f"{prefix}{name}/")
        else:
            yield prefix + name


def tree_size(root: Path) -> tuple[int, int]:
    """(files, apparent bytes) under ``root``, symlinks not followed."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
    return files, size


def dir_bytes(path: Path) -> int:
    """Apparent size (sum of file sizes) of everything under ``path``."""
    return tree_size(path)[1] if path.exists() else 0


def compare_trees(got: Path, want: Path, limit: int = 3) -> list[str]:
    """Differences between two folders (names, and bytes of every file); empty when identical.

    Walks both in the same sorted order, so memory stays bounded by one folder's listing.
    """
    if not got.is_dir():
        return [f"{got} does not exist"]
    counts = {"missing": 0, "extra": 0, "differ": 0}
    examples: dict[str, list[str]] = {k: [] for k in counts}

    def note(what: str, rel: str) -> None:
        counts[what] += 1
        if len(examples[what]) < limit:
            examples[what].append(rel)

    g, w = walk_files(got), walk_files(want)
    a, b = next(g, None), next(w, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.split("/") < b.split("/")):
            note("extra", a)
            a = next(g, None)
        elif a is None or b.split("/") < a.split("/"):
            note("missing", b)
            b = next(w, None)
        else:
            if not filecmp.cmp(got / a, want / b, shallow=False):
                note("differ", a)
            a, b = next(g, None), next(w, None)
    return [f"{n} files {what} in {got} (compared with {want}), e.g. {examples[what]}" for what, n in counts.items() if n]


def clear_dir(path: Path) -> None:
    """Remove ``path`` and everything in it, if it exists."""
    if path.exists():
        shutil.rmtree(path)


# -- reporting ------------------------------------------------------------------------------------------------


def fmt_seconds(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s" if v < 100 else f"{v:.0f} s"


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1e6:.2f} MB" if abs(v) < 10e6 else f"{v / 1e6:.1f} MB" if abs(v) < 10e9 else f"{v / 1e9:.2f} GB"


def fmt_rss(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 1e6:.0f} MB"


def fmt_ratio(peer: float | None, base: float | None) -> str:
    """``peer / base`` as '1.23x'."""
    return "n/a" if peer is None or not base else f"{peer / base:.2f}x"


def best_of(values: dict[str, float | None], names: Sequence[str]) -> tuple[str, float] | None:
    """The smallest value among ``names`` (fastest or smallest peer), with its name; None when none has one."""
    have = [(v, n) for n in names if (v := values.get(n)) is not None]
    if not have:
        return None
    v, n = min(have)
    return n, v


def markdown_table(header: list[str], rows: list[list[str]], left: int = 2) -> str:
    """A Markdown pipe table; the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + (":" if i >= left else "-") for i, w in enumerate(widths)) + "|"
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


def write_json(path: Path, doc: dict[str, object]) -> None:
    """Write a run's results (``--json``) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    print(f"wrote {path}")
