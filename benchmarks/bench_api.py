#!/usr/bin/env python3
"""Training-code reads: time to first byte, streaming throughput, local copies cold and warm.

A dataset of one large file (random and text segments) plus many small files
is pushed to a store (a local folder by default, or any URL with --remote),
then, each with a cold cache unless said otherwise:

* ``open().read(1 MiB)`` at a random offset: time to first byte, bytes fetched;
* ``read_bytes()`` of the whole large file (a full download);
* ``open().read()`` streamed sequentially: throughput;
* ``get_local_copy()`` cold, then warm (a second call in a new process);
* ``read_bytes()`` of up to 1,000 small files one by one, as a data loader
  does: each download is durable in the cache within ``FLUSH_INTERVAL``
  seconds, and a flush costs a pack and an index file written and fsynced, so
  this is what a flush policy costs many small reads.

Usage::

    python benchmarks/bench_api.py                       # 512 MiB file, local store
    python benchmarks/bench_api.py --size-mib 64 --small 2000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MiB = 1 << 20


def make_dataset(root: Path, size_mib: int, small: int) -> None:
    rng = random.Random(7)
    root.mkdir(parents=True)
    with open(root / "big.bin", "wb") as f:
        for i in range(size_mib):
            f.write(rng.randbytes(MiB) if i % 2 else (b"%08d,label,%d\n" % (i, i % 7)) * (MiB // 18) + b"\n" * (MiB % 18))
    for i in range(small):
        p = root / "small" / f"{i // 500}" / f"{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(1000, 16000)))


def run(code: str, env: dict) -> float:
    """Run a snippet in a fresh process; it prints one float."""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--small", type=int, default=5000)
    ap.add_argument("--remote", default=None, help="store URL (default: a temporary local folder)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="datactl-bench-api-"))
    try:
        remote = args.remote or str(work / "store")
        data = work / "data"
        make_dataset(data, args.size_mib, args.small)
        env = {**os.environ, "DATACTL_AUTHOR": "bench"}
        for cmd in (["init", "--name", "bench"], ["remote", "add", "origin", remote], ["add", "."], ["commit", "-m", "v1"], ["push"]):
            subprocess.run([sys.executable, "-m", "datactl", *cmd], cwd=data, env=env, check=True, capture_output=True)

        def cold_env() -> dict:
            cache = work / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            return {**env, "DATACTL_CACHE_DIR": str(cache)}

        pre = f"import time, random; from datactl import Dataset\nds = Dataset.get('bench', remote={remote!r})\n"
        ttfb = (
            pre
            + f"off = random.Random(1).randrange({args.size_mib - 1}) * {MiB}\nt = time.perf_counter()\n"
            + f"f = ds.open('big.bin'); f.seek(off); f.read({MiB}); print(time.perf_counter() - t)"
        )
        whole = pre + "t = time.perf_counter(); ds.read_bytes('big.bin'); print(time.perf_counter() - t)"
        stream = pre + "t = time.perf_counter()\nf = ds.open('big.bin')\nwhile f.read(4 << 20): pass\nprint(time.perf_counter() - t)"
        copy = pre + "t = time.perf_counter(); ds.get_local_copy(); print(time.perf_counter() - t)"
        small = (
            pre
            + "paths = [f.path for f in ds.files('small/*')][:1000]\nt = time.perf_counter()\n"
            + "for p in paths: ds.read_bytes(p)\nprint((time.perf_counter() - t) / max(1, len(paths)))"
        )

        results = {}
        for label, code in (("first MiB at a random offset (TTFB)", ttfb), ("whole file, read_bytes()", whole), ("whole file, streamed open().read()", stream), ("get_local_copy() cold", copy)):
            results[label] = statistics.median(run(code, cold_env()) for _ in range(args.repeat))
        warm_env = cold_env()
        run(copy, warm_env)
        results["get_local_copy() warm (new process)"] = statistics.median(run(copy, warm_env) for _ in range(args.repeat))
        if args.small:
            results["small files, read_bytes() each (per file)"] = statistics.median(run(small, cold_env()) for _ in range(args.repeat))

        total_mib = args.size_mib + args.small * 8500 / MiB
        print(f"dataset: big.bin {args.size_mib} MiB + {args.small} small files; store {remote}")
        print(f"{'measure':<42} {'median s':>9}  note")
        for label, t in results.items():
            note = ""
            if "whole file" in label:
                note = f"{args.size_mib / t:.0f} MiB/s"
            if "TTFB" in label:
                note = f"{results['whole file, read_bytes()'] / t:.0f}x sooner than a full download" if "whole file, read_bytes()" in results else ""
            if "cold" in label:
                note = f"{total_mib / t:.0f} MiB/s"
            if "per file" in label:
                note = f"{1000 * t:.2f} ms per file"
            print(f"{label:<42} {t:>9.3f}  {note}")
        ratio = results["whole file, read_bytes()"] / results["first MiB at a random offset (TTFB)"]
        print(f"TTFB vs full download: {ratio:.0f}x; warm vs cold copy: {results['get_local_copy() cold'] / results['get_local_copy() warm (new process)']:.0f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
