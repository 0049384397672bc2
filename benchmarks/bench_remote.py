#!/usr/bin/env python3
"""Benchmark pushing and cloning a dataset through S3: datactl vs boto3 one object per file vs DVC.

The ``small`` workload of ``bench_workflow.py`` (20,000 files, about 170 MB, and
its edited copy with 1% of the files changed and 0.1% added and deleted) goes
through a moto S3 server on 127.0.0.1, behind a proxy (``FaultyProxy`` from the
test suite, with no faults) that counts requests per HTTP method and the body
bytes each way. For each tool:

* push the first version to a fresh bucket (repeated, a fresh bucket each time);
* push the edited version to each of those buckets;
* download the edited version into a fresh folder (``datactl clone`` with a
  fresh ``DATACTL_CACHE_DIR``, a GET per object with boto3, ``dvc pull`` in a
  fresh git clone with an empty DVC cache), and check the files against the
  workload.

The peers: a boto3 script that stores one object per file with 8 worker threads
(datactl's default is 8 parallel transfers) and, for the edited version, is
handed the list of changed files; and ``dvc push`` / ``dvc pull -j 8`` when DVC
with S3 support is installed (``pip install "dvc[s3]"``). Every tool runs as a
subprocess (the S3 server and the proxy live in this process), timed with
``time.perf_counter`` including its start-up.

Usage::

    python benchmarks/bench_remote.py --scale 0.05
    python benchmarks/bench_remote.py --scale 1 --json benchmarks/work/remote.json
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

BENCH_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCH_DIR.parent / "tests"
sys.path.insert(0, str(BENCH_DIR))

import bench_workflow as bw  # standard library only: cheap to import in the boto3 worker

JOBS = 8  # parallel transfers for every tool: datactl's default
REGION = "us-east-1"
DATASET = "bench"  # the datactl dataset name, as in bench_workflow
PROXY_MAX_REQUESTS = 2_000_000  # the proxy answers 503 past this many requests, and ...
PROXY_LIFETIME = 4 * 3600.0  # ... stops by itself after this many seconds
PROXY_MAX_CONNECTIONS = 256
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "NO_PROXY": "127.0.0.1,localhost",
}
AWS_ENV_DROPPED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


# -- the S3 server and the counting proxy ------------------------------------------------------------


@dataclass
class Traffic:
    """What went through the proxy during one step."""

    requests: dict[str, int]
    bytes_up: int  # request bodies
    bytes_down: int  # response bodies

    def count(self, *methods: str) -> int:
        """Requests of these methods (all requests when none is given)."""
        return sum(n for m, n in self.requests.items() if not methods or m in methods)


class TrafficMeter:
    """Adds body-byte counts to a FaultyProxy, whose own ``counts`` hold the requests per method."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        self._lock = threading.Lock()
        self._up = self._down = 0
        forward = proxy._forward

        def counting_forward(method: str, path: str, headers: Any, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
            status, reason, out, payload = forward(method, path, headers, body)
            with self._lock:
                self._up += len(body)
                self._down += len(payload)
            return status, reason, out, payload

        # The proxy calls _forward once per request it passes on: the one place that sees both bodies.
        proxy._forward = counting_forward

    def reset(self) -> None:
        """Start counting from zero."""
        self.proxy.reset_counts()
        with self._lock:
            self._up = self._down = 0

    def read(self) -> Traffic:
        """What was counted since the last reset."""
        with self._lock:
            return Traffic(dict(self.proxy.counts), self._up, self._down)


class S3Servers:
    """A moto S3 server on 127.0.0.1 and a counting proxy in front of it (tests/servers.py)."""

    def __init__(self) -> None:
        sys.path.insert(0, str(TESTS_DIR))
        # tests/servers.py imports pytest: loaded here, so the boto3 worker does not pay for it.
        from servers import FaultyProxy, start_moto  # type: ignore[import-not-found]

        self._moto = start_moto()
        host, port = self._moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        try:
            self._proxy = FaultyProxy(
                self.moto_url, max_requests=PROXY_MAX_REQUESTS, max_connections=PROXY_MAX_CONNECTIONS, lifetime=PROXY_LIFETIME
            ).start()
        except BaseException:
            self._moto.stop()
            raise
        self.endpoint = self._proxy.url  # what every tool talks to
        self.meter = TrafficMeter(self._proxy)
        self._s3 = boto3.client("s3", endpoint_url=self.moto_url, region_name=REGION)  # direct, not counted
        self._buckets = 0

    def new_bucket(self, tool: str) -> str:
        """Create an empty bucket (directly on moto, so the proxy does not count it)."""
        self._buckets += 1
        name = f"bench-{tool}-{self._buckets}"
        self._s3.create_bucket(Bucket=name)
        return name

    def stored_bytes(self, bucket: str) -> int:
        """Sum of the sizes of the objects in ``bucket``."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sum(item["Size"] for page in pages for item in page.get("Contents", ()))

    def reset(self) -> None:
        """Drop every bucket (frees moto's memory between tools)."""
        request = urllib.request.Request(f"{self.moto_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=60):
            pass

    def stop(self) -> None:
        """Stop the proxy and the S3 server."""
        try:
            self._proxy.stop()
        finally:
            self._moto.stop()


def start_servers() -> S3Servers:
    """Set dummy AWS credentials for this process and its subprocesses, then start moto and the proxy."""
    for name in AWS_ENV_DROPPED:
        os.environ.pop(name, None)
    os.environ.update(DUMMY_AWS_ENV)
    servers = S3Servers()
    print(f"moto S3 at {servers.moto_url}, counting proxy at {servers.endpoint}", flush=True)
    return servers


# -- the boto3 peer's worker (runs as a subprocess of this script) --------------------------------------


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client with a connection for each worker thread."""
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, config=Config(max_pool_connections=JOBS))


def files_under(root: Path) -> list[str]:
    """Relative paths (with /) of every file under ``root``."""
    return sorted(str(Path(d, n).relative_to(root)).replace(os.sep, "/") for d, _dirs, names in os.walk(root) for n in names)


def boto3_put(endpoint: str, bucket: str, prefix: str, root: Path, rels: list[str]) -> int:
    """PUT each file of ``rels`` (under ``root``) as its own object, 8 at a time; return the bytes sent."""
    s3 = s3_client(endpoint)

    def put(rel: str) -> int:
        with open(root / rel, "rb") as f:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=f)
            return f.tell()

    with ThreadPoolExecutor(JOBS) as pool:
        return sum(pool.map(put, rels))


def boto3_delete(endpoint: str, bucket: str, prefix: str, rels: list[str]) -> None:
    """DELETE the objects of ``rels``, 8 at a time."""
    s3 = s3_client(endpoint)
    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(lambda rel: s3.delete_object(Bucket=bucket, Key=f"{prefix}/{rel}"), rels))


def boto3_download(endpoint: str, bucket: str, prefix: str, dest: Path) -> int:
    """List the objects under ``prefix`` and GET each into ``dest``, 8 at a time; return the bytes received."""
    s3 = s3_client(endpoint)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", ())]

    def get(key: str) -> int:
        path = dest / key[len(prefix) + 1 :]
        path.parent.mkdir(parents=True, exist_ok=True)
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        path.write_bytes(data)
        return len(data)

    with ThreadPoolExecutor(JOBS) as pool:
        return sum(pool.map(get, keys))


def boto3_worker(spec_path: Path) -> int:
    """Do one boto3 operation described by a JSON file; print what it moved as JSON."""
    spec = json.loads(spec_path.read_text())
    endpoint, bucket, prefix, op = spec["endpoint"], spec["bucket"], spec["prefix"], spec["op"]
    if op == "upload":  # every file under root
        root = Path(spec["root"])
        rels = files_under(root)
        report = {"objects": len(rels), "bytes": boto3_put(endpoint, bucket, prefix, root, rels)}
    elif op == "sync":  # only the changed files, given
        report = {"objects": len(spec["put"]), "bytes": boto3_put(endpoint, bucket, prefix, Path(spec["root"]), spec["put"])}
        boto3_delete(endpoint, bucket, prefix, spec["delete"])
        report["deleted"] = len(spec["delete"])
    elif op == "download":
        report = {"bytes": boto3_download(endpoint, bucket, prefix, Path(spec["dest"]))}
    else:
        raise SystemExit(f"unknown boto3 operation {op!r}")
    print(json.dumps(report))
    return 0


# -- the tools ---------------------------------------------------------------------------------------


class Peer(ABC):
    """One way of moving a dataset's two versions through S3, driven as subprocesses.

    ``buckets[i]`` is the bucket of repeat ``i`` of the first push; the edited
    version is pushed to each of them, and downloads read ``buckets[0]``.
    """

    name: str
    title: str
    prefix: str  # where the tool's objects go in a bucket
    note: str = ""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.buckets: list[str] = []

    @abstractmethod
    def available(self) -> str | None:
        """None when the tool can run; otherwise why not."""

    @abstractmethod
    def version(self) -> str:
        """The tool's version string."""

    def setup(self, wl: bw.Workload, ws: Path) -> None:
        """Record the first version in workspace ``ws`` (not timed)."""
        ws.mkdir(parents=True)

    def attach(self, ws: Path, bucket: str) -> None:
        """Make ``bucket`` the remote of the next repeat (not timed)."""
        self.buckets.append(bucket)

    @abstractmethod
    def push_first(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        """Upload the first version to ``buckets[i]`` (timed); return what the tool reports."""

    def record_edit(self, wl: bw.Workload, ws: Path) -> None:
        """Record the edited version in ``ws`` (not timed)."""

    @abstractmethod
    def push_edited(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        """Upload the edited version to ``buckets[i]``, which holds the first (timed)."""

    def prepare_download(self, ws: Path, dest: Path, cache: Path) -> None:
        """Anything the download needs first (not timed)."""

    @abstractmethod
    def download(self, ws: Path, dest: Path, cache: Path) -> dict[str, Any]:
        """Fetch the edited version from ``buckets[0]`` into the fresh folder ``dest`` (timed)."""

    def data_dir(self, dest: Path) -> Path:
        """Where the downloaded files are, for the check against the workload."""
        return dest / bw.DATA_DIR


class DatactlPeer(Peer):
    """``datactl push`` / ``datactl clone`` (installed command, default 8 transfers)."""

    name = "datactl"
    title = "datactl"
    prefix = "store"

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.tool = bw.Datactl()

    def available(self) -> str | None:
        return None

    def version(self) -> str:
        return self.tool.version()

    def _run(self, args: list[str], cwd: Path, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
        return bw.run([*self.tool.cmd, *args], cwd, self.tool.env | ({"DATACTL_CACHE_DIR": str(cache)} if cache else {}))

    def setup(self, wl: bw.Workload, ws: Path) -> None:
        # The workspace's own cache folder, beside it: nothing from earlier runs, nothing left in the user's cache.
        self.tool.env = self.tool.env | {"DATACTL_CACHE_DIR": str(ws.parent / "ws-cache")}
        bw.fresh_workspace(self.tool, wl, ws)
        self.tool.add_commit(ws, "v1")

    def attach(self, ws: Path, bucket: str) -> None:
        super().attach(ws, bucket)
        remote = f"r{len(self.buckets) - 1}"
        self._run(["remote", "add", remote, f"s3://{bucket}/{self.prefix}", "--endpoint-url", self.endpoint, "--region", REGION], ws)

    def _push(self, ws: Path, i: int) -> dict[str, Any]:
        report = json.loads(self._run(["push", f"r{i}", "--json"], ws).stdout)
        return {k: report[k] for k in ("objects", "packs", "bytes_uploaded")}

    def push_first(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        return self._push(ws, i)

    def record_edit(self, wl: bw.Workload, ws: Path) -> None:
        bw.step_apply_edits(wl, ws)
        self.tool.add_commit(ws, "v2")

    def push_edited(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        return self._push(ws, i)

    def download(self, ws: Path, dest: Path, cache: Path) -> dict[str, Any]:
        url = f"s3://{self.buckets[0]}/{self.prefix}"
        self._run(["clone", url, DATASET, str(dest), "--endpoint-url", self.endpoint, "--region", REGION], dest.parent, cache)
        return {}


class Boto3Peer(Peer):
    """A boto3 script: one object per file, 8 threads; for the edited version it is handed the changed files."""

    name = "boto3"
    title = "boto3 per-object"
    prefix = "files"
    note = "boto3 per-object is given the list of changed files for the edited push (it does not find them itself)"

    def available(self) -> str | None:
        return None

    def version(self) -> str:
        return f"boto3 {boto3.__version__} (one object per file, {JOBS} threads)"

    def _run(self, spec: dict[str, Any], ws: Path) -> dict[str, Any]:
        spec_path = ws / "spec.json"
        spec_path.write_text(json.dumps({"endpoint": self.endpoint, "prefix": self.prefix} | spec))
        proc = bw.run([sys.executable, str(Path(__file__).resolve()), "--boto3-worker", str(spec_path)], ws)
        return dict(json.loads(proc.stdout))

    def push_first(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        return self._run({"op": "upload", "bucket": self.buckets[i], "root": str(wl.v1)}, ws)

    def push_edited(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        spec = {"op": "sync", "bucket": self.buckets[i], "root": str(wl.v2), "put": wl.modified + wl.added, "delete": wl.deleted}
        return self._run(spec, ws)

    def download(self, ws: Path, dest: Path, cache: Path) -> dict[str, Any]:
        dest.mkdir(parents=True)
        return self._run({"op": "download", "bucket": self.buckets[0], "dest": str(dest)}, ws)

    def data_dir(self, dest: Path) -> Path:
        return dest


class DvcPeer(Peer):
    """``dvc push -j 8`` / ``dvc pull -j 8`` with an S3 remote (needs ``dvc[s3]``)."""

    name = "dvc"
    title = "dvc"
    prefix = "dvc"

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.tool = bw.Dvc()
        self._s3_support = "s3"

    def available(self) -> str | None:
        if not self.tool.available():
            return 'dvc (or git) is not installed: `pip install "dvc[s3]"`'
        proc = subprocess.run(["dvc", "version"], check=False, capture_output=True, text=True)
        supports = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("s3 (")]
        if proc.returncode != 0 or not supports:
            return 'dvc has no S3 support: `pip install "dvc[s3]"`'
        self._s3_support = supports[0].rstrip(",")
        return None

    def version(self) -> str:
        return f"{self.tool.version()}, {self._s3_support}"

    def setup(self, wl: bw.Workload, ws: Path) -> None:
        bw.fresh_workspace(self.tool, wl, ws)
        self.tool.add_commit(ws, "v1")

    def attach(self, ws: Path, bucket: str) -> None:
        super().attach(ws, bucket)
        remote = f"r{len(self.buckets) - 1}"
        default = ["-d"] if len(self.buckets) == 1 else []
        bw.run(["dvc", "remote", "add", *default, remote, f"s3://{bucket}/{self.prefix}"], ws)
        bw.run(["dvc", "remote", "modify", remote, "endpointurl", self.endpoint], ws)
        bw.run(["dvc", "remote", "modify", remote, "region", REGION], ws)
        bw.run(["git", "commit", "-q", "-m", f"remote {remote}", ".dvc/config"], ws)

    def push_first(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        bw.run(["dvc", "push", "-q", "-r", f"r{i}", "-j", str(JOBS)], ws)
        return {}

    def record_edit(self, wl: bw.Workload, ws: Path) -> None:
        bw.step_apply_edits(wl, ws)
        self.tool.add_commit(ws, "v2")

    def push_edited(self, wl: bw.Workload, ws: Path, i: int) -> dict[str, Any]:
        return self.push_first(wl, ws, i)

    def prepare_download(self, ws: Path, dest: Path, cache: Path) -> None:
        bw.run(["git", "clone", "-q", str(ws), str(dest)], dest.parent)
        bw.run(["dvc", "config", "--local", "core.site_cache_dir", str(cache)], dest)

    def download(self, ws: Path, dest: Path, cache: Path) -> dict[str, Any]:
        bw.run(["dvc", "pull", "-q", "-r", "r0", "-j", str(JOBS)], dest)
        return {}


PEERS: dict[str, type[Peer]] = {"datactl": DatactlPeer, "boto3": Boto3Peer, "dvc": DvcPeer}


# -- benchmark steps --------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed step: seconds, what went through the proxy, and what the tool reported."""

    seconds: float
    requests: dict[str, int]
    bytes_up: int
    bytes_down: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.requests, self.bytes_up, self.bytes_down)


@dataclass
class PeerResult:
    """Everything measured for one tool (times in seconds, sizes in bytes)."""

    tool: str
    version: str
    push_v1: list[Sample] = field(default_factory=list)
    push_v2: list[Sample] = field(default_factory=list)
    download: list[Sample] = field(default_factory=list)
    stored_v1: int = 0  # bucket bytes after the first push
    stored_v2: int = 0  # bucket bytes after the edited push
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before and after


def measure(meter: TrafficMeter, step: Callable[[], dict[str, Any]]) -> Sample:
    """Run ``step`` once, timed (after a sync), counting its traffic through the proxy."""
    report: dict[str, Any] = {}

    def run_step() -> None:
        report.update(step())

    meter.reset()
    seconds = bw.timed(run_step)
    traffic = meter.read()
    return Sample(seconds, traffic.requests, traffic.bytes_up, traffic.bytes_down, report)


def within_budget(samples: list[Sample], repeat: int, budget: float) -> bool:
    """Whether to take another sample: fewer than ``repeat`` and the next one likely fits in ``budget`` seconds."""
    seconds = [s.seconds for s in samples]
    return len(seconds) < repeat and (not seconds or sum(seconds) + seconds[-1] <= budget)


def step_push_first(peer: Peer, wl: bw.Workload, ws: Path, servers: S3Servers, repeat: int, budget: float) -> list[Sample]:
    """Push the first version, each repeat to a fresh bucket."""
    samples: list[Sample] = []
    while within_budget(samples, repeat, budget):
        peer.attach(ws, servers.new_bucket(peer.name))
        i = len(samples)
        samples.append(measure(servers.meter, partial(peer.push_first, wl, ws, i)))
    return samples


def step_push_edited(peer: Peer, wl: bw.Workload, ws: Path, servers: S3Servers) -> list[Sample]:
    """Record the edited version, then push it to every bucket that holds the first one."""
    peer.record_edit(wl, ws)
    return [measure(servers.meter, partial(peer.push_edited, wl, ws, i)) for i in range(len(peer.buckets))]


def step_download(peer: Peer, ws: Path, runs: Path, servers: S3Servers, repeat: int, budget: float) -> tuple[list[Sample], Path]:
    """Download the edited version into a fresh folder (and a fresh cache) each repeat; return the samples and the last folder."""
    samples: list[Sample] = []
    dest, cache = runs / "download", runs / "download-cache"
    while within_budget(samples, repeat, budget):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        peer.prepare_download(ws, dest, cache)
        samples.append(measure(servers.meter, partial(peer.download, ws, dest, cache)))
    return samples, dest


def step_check(got: Path, wl: bw.Workload) -> list[str]:
    """Compare the downloaded files with the workload's edited version, byte for byte."""
    have, want = set(files_under(got)) if got.exists() else set(), set(files_under(wl.v2))
    problems = []
    if have != want:
        problems.append(f"downloaded {len(have)} files, expected {len(want)}: missing {sorted(want - have)[:3]}, extra {sorted(have - want)[:3]}")
    differ = [rel for rel in sorted(have & want) if not filecmp.cmp(got / rel, wl.v2 / rel, shallow=False)]
    if differ:
        problems.append(f"{len(differ)} downloaded files differ from the edited version, e.g. {differ[:3]}")
    return problems


def bench_peer(peer: Peer, wl: bw.Workload, work: Path, servers: S3Servers, repeat: int, budget: float, keep: bool) -> PeerResult:
    """Run every step for one tool; drop its buckets and (unless ``keep``) its folders afterwards."""
    runs = work / "runs" / "remote" / peer.name
    if runs.exists():
        shutil.rmtree(runs)
    ws = runs / "ws"
    res = PeerResult(peer.name, peer.version(), notes=[peer.note] if peer.note else [])
    res.load.append(os.getloadavg()[0])
    try:
        peer.setup(wl, ws)
        print(f"[{peer.name}] push first version ...", flush=True)
        res.push_v1 = step_push_first(peer, wl, ws, servers, repeat, budget)
        res.stored_v1 = servers.stored_bytes(peer.buckets[0])
        print(f"[{peer.name}] push edited version ...", flush=True)
        res.push_v2 = step_push_edited(peer, wl, ws, servers)
        res.stored_v2 = servers.stored_bytes(peer.buckets[0])
        print(f"[{peer.name}] download ...", flush=True)
        res.download, dest = step_download(peer, ws, runs, servers, repeat, budget)
        res.problems = step_check(peer.data_dir(dest), wl)
    finally:
        servers.reset()
        if not keep:
            shutil.rmtree(runs, ignore_errors=True)
    res.load.append(os.getloadavg()[0])
    print(
        f"[{peer.name}] push {med(res.push_v1, lambda s: s.seconds):.2f} s, edited push {med(res.push_v2, lambda s: s.seconds):.2f} s, "
        f"download {med(res.download, lambda s: s.seconds):.2f} s; load average {res.load[0]:.2f} -> {res.load[1]:.2f}",
        flush=True,
    )
    for p in res.problems:
        print(f"[{peer.name}] PROBLEM: {p}", flush=True)
    return res


# -- report -----------------------------------------------------------------------------------------------


def med(samples: list[Sample], get: Callable[[Sample], float]) -> float:
    """Median of ``get`` over the samples."""
    return float(statistics.median(get(s) for s in samples))


def fmt_count(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_percent(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}%"


Metric = tuple[str, Callable[[PeerResult], float | None], Callable[[float | None], str]]


def metrics() -> list[Metric]:
    """The table's rows: (title, value of a tool's result, formatter)."""

    def on(phase: str, get: Callable[[Sample], float]) -> Callable[[PeerResult], float | None]:
        return lambda r: med(getattr(r, phase), get) if getattr(r, phase) else None

    def share(r: PeerResult) -> float | None:
        first, edited = on("push_v1", lambda s: s.bytes_up)(r), on("push_v2", lambda s: s.bytes_up)(r)
        return None if first is None or edited is None or not first else 100 * edited / first

    return [
        ("push v1: time", on("push_v1", lambda s: s.seconds), bw.fmt_seconds),
        ("push v1: PUT+POST requests", on("push_v1", lambda s: s.traffic.count("PUT", "POST")), fmt_count),
        ("push v1: all requests", on("push_v1", lambda s: s.traffic.count()), fmt_count),
        ("push v1: bytes uploaded", on("push_v1", lambda s: s.bytes_up), bw.fmt_bytes),
        ("push edited: time", on("push_v2", lambda s: s.seconds), bw.fmt_seconds),
        ("push edited: PUT+POST requests", on("push_v2", lambda s: s.traffic.count("PUT", "POST")), fmt_count),
        ("push edited: all requests", on("push_v2", lambda s: s.traffic.count()), fmt_count),
        ("push edited: bytes uploaded", on("push_v2", lambda s: s.bytes_up), bw.fmt_bytes),
        ("push edited: % of push v1 bytes", share, fmt_percent),
        ("stored in bucket, both versions", lambda r: r.stored_v2 or None, bw.fmt_bytes),
        ("clone/download: time", on("download", lambda s: s.seconds), bw.fmt_seconds),
        ("clone/download: GET requests", on("download", lambda s: s.traffic.count("GET")), fmt_count),
        ("clone/download: all requests", on("download", lambda s: s.traffic.count()), fmt_count),
        ("clone/download: bytes downloaded", on("download", lambda s: s.bytes_down), bw.fmt_bytes),
    ]


def results_table(results: list[PeerResult], titles: dict[str, str]) -> str:
    """One Markdown pipe table: a column per tool, then each peer's ratio to datactl."""
    base = next((r for r in results if r.tool == "datactl"), None)
    peers = [r for r in results if r.tool != "datactl"]
    header = ["measure", *(titles[r.tool] for r in results), *(f"{r.tool}/datactl" for r in peers)]
    rows = []
    for title, get, fmt in metrics():
        b = get(base) if base else None
        rows.append([title, *(fmt(get(r)) for r in results), *(bw.fmt_ratio(get(r), b) for r in peers)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def write_json(path: Path, args: argparse.Namespace, wl: bw.Workload, results: list[PeerResult], table: str, info: dict[str, object]) -> None:
    """All samples, medians and the table, for later comparison."""
    doc = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "workload": {k: v for k, v in wl.to_manifest().items() if k not in ("modified", "added", "deleted")}
        | {"modified": len(wl.modified), "added": len(wl.added), "deleted": len(wl.deleted)},
        "results": [asdict(r) | {"median": {title: get(r) for title, get, _ in metrics()}} for r in results],
        "table": table,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    print(f"wrote {path}")


# -- main ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=BENCH_DIR / "work", help="work folder for data and runs (default: benchmarks/work)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the small workload (0.05 for a quick run; default 1)")
    p.add_argument("--repeat", type=int, default=3, help="repeats of the first push and of the download; medians are reported (default 3)")
    p.add_argument("--budget", type=float, default=600.0, help="repeat a step only while its samples stay under this many seconds (default 600)")
    p.add_argument("--seed", type=int, default=20240601, help="random seed of the workload")
    p.add_argument("--tools", default="datactl,boto3,dvc", help="comma list of tools to run when installed")
    p.add_argument("--json", type=Path, default=None, help="also write all samples and medians to this JSON file")
    p.add_argument("--regenerate", action="store_true", help="regenerate the workload even if a matching one exists")
    p.add_argument("--keep", action="store_true", help="keep each tool's workspace and download under WORK/runs/remote")
    p.add_argument("--boto3-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.scale <= 0 or args.repeat < 1:
        p.error("--scale must be > 0 and --repeat >= 1")
    return args


def select_peers(names: list[str], endpoint: str) -> Iterator[Peer]:
    """The tools asked for that can run; print a note for each one skipped."""
    for name in names:
        if name not in PEERS:
            raise SystemExit(f"unknown tool {name!r}; choose from {', '.join(PEERS)}")
        peer = PEERS[name](endpoint)
        why = peer.available()
        if why:
            print(f"note: skipping {name}: {why}", flush=True)
        else:
            yield peer


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.boto3_worker:
        return boto3_worker(args.boto3_worker)
    work: Path = args.work.resolve()
    wl = bw.load_or_generate("small", work / "data" / f"small-scale{args.scale:g}", args.scale, args.seed, args.regenerate)
    servers = start_servers()
    results: list[PeerResult] = []
    try:
        peers = list(select_peers([t.strip() for t in args.tools.split(",") if t.strip()], servers.endpoint))
        titles = {p.name: p.title for p in peers}
        print("tools: " + "; ".join(p.version() for p in peers), flush=True)
        for peer in peers:
            results.append(bench_peer(peer, wl, work, servers, args.repeat, args.budget, args.keep))
    finally:
        servers.stop()
    info = bw.machine_info()
    table = results_table(results, titles)
    print()
    print(
        f"Results: {info['date']}, {info['cpus']} CPUs, {info['platform']}, small workload at scale {args.scale:g} "
        f"({wl.files} files, {wl.bytes / 1e6:.0f} MB; edited: {len(wl.modified)} modified, {len(wl.added)} added, "
        f"{len(wl.deleted)} deleted), repeat {args.repeat} (medians)"
    )
    print(table)
    print("\nratio = peer / datactl: above 1 means datactl is faster (time), or needs fewer requests or bytes.")
    for note in sorted({n for r in results for n in r.notes}):
        print(f"note: {note}")
    problems = [f"{r.tool}: {p}" for r in results for p in r.problems]
    for p in problems:
        print(f"PROBLEM {p}")
    if args.json:
        write_json(args.json, args, wl, results, table, info)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
