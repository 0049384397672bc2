#!/usr/bin/env python3
"""Row-level table diffs: bytes read and time against pandas, on a local store and through S3 (moto), and a keyed diff
of a table larger than the memory the process may use.

A CSV of ``--size-mib`` (default 1 GiB) is committed, then ``--edits`` rows
spread over it are edited (same row count) and committed again. Then:

* ``datactl diff v1 v2 big.csv --json`` (positional: only the chunks that differ
  are read), on the workspace's store, then read in place on an S3 server
  (moto) after a push: wall time (a fresh process each, start-up included) and
  the file data it read, against the file's size;
* the pandas baseline: ``read_csv`` of both versions and a row-by-row compare
  (the versions as files on disk: no store read counted), and the ratio;
* ``datactl diff v1 v2 big.csv --key id`` under ``ulimit -v`` (``--ulimit-mib``,
  default 1.5 GiB: less than the two versions' 2 GiB) with the engine's memory
  limit set below it (``DATACTL_TABLES_MEMORY``) and ``MALLOC_ARENA_MAX=2`` (an
  address-space limit otherwise counts glibc's per-thread arena reservations):
  it completes, spilling to disk; its peak RSS is printed.

Usage::

    python benchmarks/bench_tables.py                          # 1 GiB
    python benchmarks/bench_tables.py --size-mib 256 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import PeakRss, compile_bytecode, fmt_bytes, fmt_rss, fmt_seconds, machine_info, markdown_table, run, tool_env, write_json  # noqa: E402

MiB = 1 << 20
DATACTL = [sys.executable, "-m", "datactl"]

PANDAS_DIFF = """
import sys, time
import pandas as pd
t = time.perf_counter()
a = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
b = pd.read_csv(sys.argv[2], dtype=str, keep_default_na=False)
changed = int((a != b).any(axis=1).sum()) if a.shape == b.shape else -1
print(changed, time.perf_counter() - t)
"""


API_S3_DIFF = """
import json, time
import boto3
boto3.session.Session().client("s3")  # loaded and set up once, as in a process that has used S3 before
from datactl.api.tables import diff_table_versions
t = time.perf_counter()
d = diff_table_versions("v1", "v2", "big.csv", remote="origin")
print(json.dumps({"seconds": time.perf_counter() - t, "bytes_read": d.bytes_read, "changed": d.counts["changed"]}))
"""


def make_csv(path: Path, size_mib: int) -> int:
    """A CSV of about ``size_mib`` MiB (id, name, value, label); returns its row count."""
    rng = random.Random(11)
    labels = ["cat", "dog", "cow", "emu", "fox"]
    n = 0
    target = size_mib * MiB
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id,name,value,label\n")
        written = 0
        while written < target:
            block = "".join(f"{n + i},name {n + i},{rng.random():.6f},{labels[(n + i) % 5]}\n" for i in range(10000))
            f.write(block)
            written += len(block)
            n += 10000
    return n


def edit_rows(src: Path, dest: Path, rows: int, edits: int) -> list[int]:
    """Copy ``src`` to ``dest`` with ``edits`` rows spread over it changed (their label), streaming."""
    step = rows // (edits + 1)
    targets = {step * (i + 1) for i in range(edits)}
    with open(src, encoding="utf-8", newline="") as fi, open(dest, "w", encoding="utf-8", newline="") as fo:
        fo.write(fi.readline())
        for i, line in enumerate(fi):
            if i in targets:
                line = line.rsplit(",", 1)[0] + ",EDITED\n"
            fo.write(line)
    return sorted(targets)


def timed_json(cmd: list[str], cwd: Path, env: dict[str, str], peak: PeakRss | None = None) -> tuple[dict, float]:
    t = time.perf_counter()
    done = run(cmd, cwd, env, peak)
    took = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout), took


def start_moto() -> tuple[object, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--edits", type=int, default=10)
    ap.add_argument("--ulimit-mib", type=int, default=1536, help="address-space limit of the keyed diff (ulimit -v)")
    ap.add_argument("--engine-mib", type=int, default=256, help="the engine's memory limit in the keyed diff")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-tables-"))
    ws = tmp / "ws"
    ws.mkdir()
    env = tool_env(tmp)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    compile_bytecode(Path(env["PYTHONPATH"]))
    results: dict[str, object] = {"machine": machine_info(), "size_mib": args.size_mib, "edits": args.edits}
    try:
        v1_copy = tmp / "v1.csv"
        rows = make_csv(v1_copy, args.size_mib)
        size = v1_copy.stat().st_size
        shutil.copyfile(v1_copy, ws / "big.csv")
        for cmd in (["init", ".", "--name", "tables"], ["add", "big.csv"], ["commit", "-m", "v1", "-t", "v1"]):
            run(DATACTL + cmd, ws, env).check_returncode()
        edit_rows(v1_copy, ws / "big.csv", rows, args.edits)
        for cmd in (["add", "big.csv"], ["commit", "-m", "v2", "-t", "v2"]):
            run(DATACTL + cmd, ws, env).check_returncode()

        table: list[list[str]] = []

        def note(row: list[str]) -> None:
            table.append(row)
            print(" | ".join(row), flush=True)  # as it comes, so a late failure loses nothing
        local, local_s = timed_json(DATACTL + ["diff", "v1", "v2", "big.csv", "--json", "--limit", "0"], ws, env)
        assert local["counts"]["changed"] == args.edits, local["counts"]
        note(["datactl diff (local store)", fmt_seconds(local_s), fmt_bytes(local["bytes_read"]), f"{local['bytes_read'] / size:.3%}"])
        results["local"] = {"seconds": local_s, "bytes_read": local["bytes_read"], "file_bytes": size}

        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PANDAS_DIFF, str(v1_copy), str(ws / "big.csv")], capture_output=True, text=True, env=env, check=True)
        pandas_s = time.perf_counter() - t
        changed = int(done.stdout.split()[0])
        assert changed == args.edits, done.stdout
        note(["pandas read_csv x2 + compare", fmt_seconds(pandas_s), fmt_bytes(2 * size), "200%"])
        results["pandas"] = {"seconds": pandas_s}

        if not args.no_s3:
            server, endpoint = start_moto()
            try:
                import boto3

                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x").create_bucket(Bucket="bench")
                s3env = {**env, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
                for cmd in (["remote", "add", "origin", "s3://bench/store", "--endpoint-url", endpoint], ["push", "--tags"]):
                    run(DATACTL + cmd, ws, s3env).check_returncode()
                shutil.rmtree(ws / ".datactl" / "remotes", ignore_errors=True)  # a cold index cache: the diff syncs it
                remote, remote_s = timed_json(DATACTL + ["diff", "v1", "v2", "big.csv", "--remote", "origin", "--json"], ws, s3env)
                assert remote["counts"]["changed"] == args.edits
                note(["datactl diff (S3, moto, in place)", fmt_seconds(remote_s), fmt_bytes(remote["bytes_read"]), f"{remote['bytes_read'] / size:.3%}"])
                results["s3"] = {"seconds": remote_s, "bytes_read": remote["bytes_read"]}
                # The same diff as a library call in a process that has boto3 loaded already (training code, a
                # notebook): what is left once the 0.5-0.7 s of starting Python, datactl and boto3 is not counted.
                shutil.rmtree(ws / ".datactl" / "remotes", ignore_errors=True)
                api = json.loads(run([sys.executable, "-c", API_S3_DIFF], ws, s3env).stdout)
                assert api["changed"] == args.edits, api
                note(["datactl diff_table_versions() (S3, moto, boto3 loaded)", fmt_seconds(api["seconds"]), fmt_bytes(api["bytes_read"]), f"{api['bytes_read'] / size:.3%}"])
                results["s3_api"] = api
            finally:
                server.stop()  # type: ignore[attr-defined]

        limit_kib = args.ulimit_mib * 1024
        # ulimit -v bounds address space, not memory: glibc reserves 64 MiB of it per thread arena, so arenas are capped.
        keyed_env = {**env, "DATACTL_TABLES_MEMORY": f"{args.engine_mib}MB", "MALLOC_ARENA_MAX": "2"}
        peak = PeakRss()
        keyed_cmd = ["bash", "-c", f"ulimit -v {limit_kib} && exec {' '.join(DATACTL)} diff v1 v2 big.csv --key id --json --limit 20"]
        keyed, keyed_s = timed_json(keyed_cmd, ws, keyed_env, peak)
        assert keyed["counts"]["changed"] == args.edits, keyed["counts"]
        note([f"datactl diff --key id (ulimit -v {args.ulimit_mib} MiB)", fmt_seconds(keyed_s), "whole file", f"peak RSS {fmt_rss(peak.bytes)}"])
        results["keyed"] = {"seconds": keyed_s, "peak_rss": peak.bytes, "ulimit_mib": args.ulimit_mib, "engine_mib": args.engine_mib}

        print(f"\n{args.size_mib} MiB CSV ({rows:,} rows, {fmt_bytes(size)}), {args.edits} rows edited; load average {os.getloadavg()[0]:.2f}\n")
        print(markdown_table(["step", "time", "file data read", "of the file"], table))
        print(f"\npositional diff vs pandas: {pandas_s / local_s:.1f}x faster, reading {local['bytes_read'] / size:.3%} of the file")
        if args.json:
            write_json(args.json, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
