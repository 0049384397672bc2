#!/usr/bin/env python3
"""Benchmark registering objects where they live: ``datactl add --external`` vs ``dvc import-url``.

N small objects (1 to 4 KiB of random bytes each) are put under one prefix of
a bucket on a moto S3 server on 127.0.0.1. Then, each in a fresh workspace,
as a subprocess timed with its start-up:

* datactl: ``datactl add --external s3://bucket/data/ --dest data`` and
  ``datactl commit`` (every object streamed once, pinned to its ETag, hashed
  and cut into chunks; nothing stored);
* datactl ``--copy``: the same, storing the bytes as ordinary files;
* DVC: ``dvc import-url s3://bucket/data data`` in a fresh git + DVC repo
  (DVC downloads the objects into its cache and the workspace), when DVC with
  S3 support is installed (``pip install "dvc[s3]"``).

Reported: wall time, objects per second and the ratio of datactl's rate to
each tool's; the bytes of file content each put in its store (datactl: the
chunks its index lists, which must be 0 without ``--copy``; DVC: its cache).
DVC gets ``--dvc-budget`` times datactl's time (default 3); stopped then, it
is compared by the objects it had fetched in that time. ``--no-copy-run``
skips the ``--copy`` run. The S3 server is moto, in this process: its
request rate bounds every tool, so the ratio says more than the rates.

Usage::

    python benchmarks/bench_external.py --objects 2000
    python benchmarks/bench_external.py --objects 10000 --json benchmarks/work/external.json
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

import benchlib as bl  # noqa: E402

REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def fill_bucket(endpoint: str, n: int) -> tuple[str, int]:
    """A new bucket with ``n`` small objects under ``data/``; returns (bucket, total bytes)."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, config=Config(max_pool_connections=32), **{
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
    bucket = f"ext-{os.getpid()}-{int(time.time())}"
    client.create_bucket(Bucket=bucket)
    sizes = [1024 + (i * 7919) % 3072 for i in range(n)]

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"data/{i // 1000:03d}/{i:06d}.bin", Body=os.urandom(sizes[i]))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))
    return bucket, sum(sizes)


def stored_chunk_bytes(ws: Path) -> int:
    """Bytes of file content in the workspace's store: the chunks its object index lists."""
    db = sqlite3.connect(ws / ".datactl" / "index.db")
    try:
        return int(db.execute("SELECT COALESCE(SUM(raw_len), 0) FROM objects WHERE type = 1").fetchone()[0])
    finally:
        db.close()


def run_datactl(endpoint: str, bucket: str, root: Path, copy: bool) -> dict[str, float | int]:
    ws = root / ("datactl-copy" if copy else "datactl")
    ws.mkdir()
    env = AWS_ENV | {"AWS_ENDPOINT_URL": endpoint, "DATACTL_AUTHOR": "Bench <bench@example.com>"}
    datactl = [sys.executable, "-m", "datactl"]
    bl.run([*datactl, "init", "--name", "ext"], ws, env)
    started = time.perf_counter()
    bl.run([*datactl, "add", "--external", f"s3://{bucket}/data/", "--dest", "data", *(["--copy"] if copy else [])], ws, env)
    bl.run([*datactl, "commit", "-m", "registered"], ws, env)
    seconds = time.perf_counter() - started
    files = sum(1 for _ in bl.walk_files(ws / "data"))
    return {"seconds": seconds, "files": files, "store_content_bytes": stored_chunk_bytes(ws), "store_bytes": bl.dir_bytes(ws / ".datactl" / "store")}


def run_dvc(endpoint: str, bucket: str, root: Path, timeout: float) -> dict[str, float | int | bool] | None:
    try:
        subprocess.run(["dvc", "version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    ws = root / "dvc"
    ws.mkdir()
    env = bl.tool_env(ws) | AWS_ENV
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True, env=env)
    subprocess.run(["dvc", "init", "-q"], cwd=ws, check=True, env=env)
    started = time.perf_counter()
    cmd = ["dvc", "import-url", f"s3://{bucket}/data", "data", "--fs-config", f"endpointurl={endpoint}"]
    proc = subprocess.Popen(cmd, cwd=ws, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        finished = True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        finished, err = False, ""
    seconds = time.perf_counter() - started
    if finished and proc.returncode != 0:
        raise bl.BenchError(f"dvc import-url failed: {err[-2000:]}")
    cache = ws / ".dvc" / "cache"
    in_cache = sum(1 for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".dir")) if cache.exists() else 0
    fetched = max(in_cache, sum(1 for p in (ws / "data").rglob("*") if p.is_file()) if (ws / "data").exists() else 0)
    return {"seconds": seconds, "finished": finished, "files": fetched, "store_content_bytes": bl.dir_bytes(cache) if cache.exists() else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--dvc-budget", type=float, default=3.0, help="DVC may take this many times datactl's time")
    parser.add_argument("--no-copy-run", action="store_true", help="skip the datactl --copy run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from servers import start_moto  # type: ignore[import-not-found]

    server = start_moto()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-external-") as tmp:
            root = Path(tmp)
            bucket, total = fill_bucket(endpoint, args.objects)
            results: dict[str, dict | None] = {"datactl": run_datactl(endpoint, bucket, root, copy=False)}
            if not args.no_copy_run:
                results["datactl --copy"] = run_datactl(endpoint, bucket, root, copy=True)
            results["dvc import-url"] = run_dvc(endpoint, bucket, root, args.dvc_budget * results["datactl"]["seconds"])  # type: ignore[index]
    finally:
        server.stop()

    base = results["datactl"]["files"] / results["datactl"]["seconds"]  # type: ignore[index]
    rows = []
    for name, r in results.items():
        if r is None:
            rows.append([name, "not installed", "", "", ""])
            continue
        rate = r["files"] / r["seconds"] if r["seconds"] else 0
        rows.append([name, bl.fmt_seconds(r["seconds"]) + ("" if r.get("finished", True) else " (stopped)"), f"{r['files']} ({rate:.1f}/s)",
                     f"{base / rate:.2f}x" if rate else "n/a", bl.fmt_bytes(r["store_content_bytes"])])
    print(f"{args.objects} objects, {bl.fmt_bytes(total)} under one prefix of the moto S3 server")
    print(bl.markdown_table(["tool", "register + commit", "files", "time per object vs datactl", "file bytes in its store"], rows, left=1))
    if args.json:
        bl.write_json(args.json, {"objects": args.objects, "bytes": total, "results": results, "machine": bl.machine_info()})


if __name__ == "__main__":
    main()
