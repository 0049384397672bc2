"""Lineage queries on large synthetic stores: objects read and time.

Two stores of 10,000 commits each are generated (commits over an empty tree,
so the store holds nothing but history):

- ``chain``: one dataset with 10,000 versions, each the parent of the next;
- ``wide``:  100 datasets and models x 100 versions; every version also takes
  1 to 3 earlier versions of other datasets/models as inputs (seeded).

For each, the lineage index is built twice: by ``rebuild`` (reading every
commit once), and incrementally as 200 pushes of 50 versions would (each
appends a segment; HEAD is compacted whenever it lists more than 16), to show
what the index looks like after a store's normal life.

Then queries run on a fresh ``LineageIndex`` (nothing cached in memory), with
a counting wrapper around the backend:

- ``down`` from the very first version (everything derives from it),
- ``up`` from the very last one,
- a brute-force ``down`` that reads every commit, for comparison.

Both store states are measured: *settled* (no ref moved in the last
``REF_CHECK_MARGIN`` seconds before the index's last update: the query reads
no ref) and *fresh* (the refs were written seconds before the index, as in a
store just built: the query re-reads those refs, one small GET each, and
finds every named commit already indexed, so still reads no commit).

    python benchmarks/bench_lineage.py            # about 30 s
    python benchmarks/bench_lineage.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datactl.api.lineage import lineage  # noqa: E402
from datactl.format.objects import Commit, Tree  # noqa: E402
from datactl.format.pack import ObjectType  # noqa: E402
from datactl.format.storeconfig import StoreConfig
from datactl.lineage import index as li  # noqa: E402
from datactl.lineage.commits import StoreCommits  # noqa: E402
from datactl.lineage.stores import LineageStore  # noqa: E402
from datactl.store.index import ObjectIndex  # noqa: E402
from datactl.store.repository import (
    Repository,  # noqa: E402
    write_store_config,  # noqa: E402
)
from storage_backends import Backend, LocalBackend  # noqa: E402

N = 10_000


class CountingBackend(Backend):
    """Counts every request a query makes of the store."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.counts: dict[str, int] = {}
        self.keys: list[str] = []

    def _count(self, op: str, key: str) -> None:
        self.counts[op] = self.counts.get(op, 0) + 1
        self.keys.append(key)

    def reset(self) -> None:
        self.counts = {}
        self.keys = []

    def get(self, key):
        self._count("get", key)
        return self.inner.get(key)

    def get_range(self, key, offset, length):
        self._count("get_range", key)
        return self.inner.get_range(key, offset, length)

    def open_read(self, key):
        self._count("get", key)
        return self.inner.open_read(key)

    def put_file(self, key, path):
        return self.inner.put_file(key, path)

    def put_bytes(self, key, data):
        return self.inner.put_bytes(key, data)

    def put_if_absent(self, key, data):
        return self.inner.put_if_absent(key, data)

    def get_versioned(self, key):
        self._count("get", key)
        return self.inner.get_versioned(key)

    def compare_and_swap(self, key, data, expected):
        return self.inner.compare_and_swap(key, data, expected)

    def list(self, prefix):
        self._count("list", prefix)
        return self.inner.list(prefix)

    def delete(self, key):
        return self.inner.delete(key)

    def exists(self, key):
        return self.inner.exists(key)

    def move_file_in(self, key, path):
        return self.inner.move_file_in(key, path)


def _commit(repo: Repository, tree: str, name: str, kind: str, parents, inputs, n: int) -> str:
    t = time.gmtime(1_700_000_000 + n)
    c = Commit(tree, tuple(parents), kind, name, f"{name} #{n}", "bench <bench@example.com>",
               time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{n % 1_000_000:06d}Z", (f"v{n}",) if n % 50 == 0 else (),
               {}, tuple(inputs))
    return repo.put(ObjectType.COMMIT, c.encode())


def build_store(root: str, shape: str, seed: int) -> dict[str, Any]:
    """Write the commits and refs of one synthetic store; return ids of interest."""
    backend = LocalBackend(os.path.join(root, "store"))
    config = write_store_config(backend, StoreConfig())
    repo = Repository(backend, ObjectIndex(os.path.join(root, "index.db")), config, os.path.join(root, "store", "tmp"))
    tree = repo.put(ObjectType.TREE, Tree(()).encode())
    rng = random.Random(seed)
    order: list[tuple[str, str]] = []  # (commit, head ref) in creation order
    if shape == "chain":
        prev = None
        for n in range(N):
            prev = _commit(repo, tree, "raw", "dataset", [prev] if prev else [], [], n)
            order.append((prev, "datasets/raw"))
    else:
        names = [(f"ds{i:02d}", "dataset") if i < 60 else (f"model{i:02d}", "model") for i in range(100)]
        heads: dict[int, str] = {}
        made: list[str] = []
        for n in range(N):
            i = rng.randrange(100) if n >= 100 else n
            name, kind = names[i]
            parents = [heads[i]] if i in heads else []
            inputs = sorted({made[rng.randrange(len(made))] for _ in range(rng.randint(1, 3))}) if made else []
            inputs = [c for c in inputs if c not in parents]
            cid = _commit(repo, tree, name, kind, parents, inputs, n)
            heads[i] = cid
            made.append(cid)
            order.append((cid, f"{'models' if kind == 'model' else 'datasets'}/{name}"))
    repo.flush()
    latest: dict[str, str] = {}
    for cid, ref in order:
        latest[ref] = cid
    for ref, cid in latest.items():
        repo.refs.update(ref, cid, expected=None)
    return {"repo": repo, "first": order[0][0], "last": order[-1][0], "order": order, "refs": len(latest)}


def brute_force_down(repo: Repository, root: str) -> tuple[int, int]:
    """Down from ``root`` the way it must be done without an index: read every commit."""
    children: dict[str, list[str]] = {}
    n = 0
    ids = list(repo.index.iter_ids(ObjectType.COMMIT))
    for cid, raw in zip(ids, repo.read_many(ids)):
        from datactl.format.objects import decode_commit

        c = decode_commit(cid, raw)
        n += 1
        for p in (*c.parents, *c.inputs):
            children.setdefault(p, []).append(cid)
    seen = {root}
    q = deque([root])
    while q:
        for ch in children.get(q.popleft(), ()):
            if ch not in seen:
                seen.add(ch)
                q.append(ch)
    return len(seen) - 1, n


def age_refs(store_dir: str, seconds: float) -> None:
    for dirpath, _, files in os.walk(os.path.join(store_dir, "refs")):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            os.utime(p, (st.st_atime - seconds, st.st_mtime - seconds))


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    samples = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def query_once(repo: Repository, root: str, direction: str) -> tuple[int, dict, dict]:
    counting = CountingBackend(repo.backend)
    store = LineageStore(li.LineageIndex(counting, StoreCommits(repo.objects)), "bench")
    g = lineage(root, direction, stores=[store])
    commit_reads = sum(1 for k in counting.keys if k.startswith("packs/"))
    requests = dict(counting.counts)
    requests["commit_objects"] = commit_reads + g.stats["commits_read"]
    requests["index_objects"] = sum(1 for k in counting.keys if k.startswith("lineage/") and k != "lineage/")
    requests["refs"] = sum(1 for k in counting.keys if k.startswith("refs/") and k != "refs/")
    return len(g.ids(direction)), requests, g.stats


def bench_shape(shape: str, seed: int, repeat: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix=f"datactl-bench-lineage-{shape}-")
    try:
        t0 = time.perf_counter()
        built = build_store(tmp, shape, seed)
        build_s = time.perf_counter() - t0
        repo: Repository = built["repo"]
        store_dir = os.path.join(tmp, "store")
        out: dict[str, Any] = {"shape": shape, "commits": N, "refs": built["refs"], "build_commits_s": round(build_s, 2)}

        # 1. The index as 200 pushes of 50 versions would leave it.
        index = li.LineageIndex(repo.backend, StoreCommits(repo.objects))
        t0 = time.perf_counter()
        order = built["order"]
        compactions = 0
        for start in range(0, N, 50):
            batch = order[start : start + 50]
            r = index.append([li.Node.from_commit(c, repo.read_commit(c)) for c, _ in batch])
            compactions += r.compacted
        out["incremental_200_pushes_s"] = round(time.perf_counter() - t0, 2)
        _, segs = index.read_head()
        out["incremental_segments"] = len(segs)
        out["incremental_compactions"] = compactions
        seg_bytes = sum(os.path.getsize(os.path.join(store_dir, "lineage", "seg", s)) for s, _ in segs)
        out["index_bytes"] = seg_bytes

        # 2. The same index from scratch.
        shutil.rmtree(os.path.join(store_dir, "lineage"))
        t0 = time.perf_counter()
        li.LineageIndex(repo.backend, StoreCommits(repo.objects)).rebuild()
        out["rebuild_s"] = round(time.perf_counter() - t0, 2)

        queries = {}
        for state in ("fresh", "settled"):
            if state == "settled":
                age_refs(store_dir, li.REF_CHECK_MARGIN + 60)
            for direction, root in (("down", built["first"]), ("up", built["last"])):
                secs, (found, requests, _) = timed(lambda: query_once(repo, root, direction), repeat)
                queries[f"{direction}/{state}"] = {"found": found, "median_s": round(secs, 4), **requests}
        secs, (found, read) = timed(lambda: brute_force_down(repo, built["first"]), 1)
        queries["down/brute-force"] = {"found": found, "median_s": round(secs, 4), "commit_objects": read}
        out["queries"] = queries
        repo.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5, help="query repetitions (median reported)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = [bench_shape(shape, args.seed, args.repeat) for shape in ("chain", "wide")]
    for r in results:
        print(f"\n== {r['shape']}: {r['commits']} commits, {r['refs']} head refs ==")
        print(f"index: {r['index_bytes'] / 1024:.0f} KiB; rebuild {r['rebuild_s']} s; "
              f"200 incremental pushes {r['incremental_200_pushes_s']} s -> {r['incremental_segments']} segment(s), "
              f"{r['incremental_compactions']} compaction(s)")
        print(f"{'query':<20} {'found':>6} {'time':>9} {'commits read':>13} {'index objs':>11} {'refs read':>10} {'LISTs':>6}")
        for name, q in r["queries"].items():
            print(f"{name:<20} {q['found']:>6} {q['median_s'] * 1000:>7.1f}ms {q['commit_objects']:>13} "
                  f"{q.get('index_objects', '-'):>11} {q.get('refs', '-'):>10} {q.get('list', '-'):>6}")
        bad = [n for n, q in r["queries"].items() if n != "down/brute-force" and q["commit_objects"] > 0]
        if bad:
            print(f"PROBLEM: {', '.join(bad)} read commit objects")
            return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
