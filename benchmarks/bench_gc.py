"""gc on a store of about 1,000 packs: how long it takes, and how many bytes it frees versus the exact figure.

Scripted scenario (fixed seed), built with real commits and pushes:

* ``--datasets`` datasets (default 4) of ``--versions`` versions each (default
  125); every version adds one file of random bytes and deletes the one added
  ten versions earlier, and every push writes a data pack and a metadata pack,
  so the store ends with datasets x versions x 2 packs (1,000 by default), each
  listed by its own index file. Each version also adds a 16 kB file that is the
  same in every dataset (stored once, in the first dataset's pack).
* run 1, no garbage: gc finds nothing to free (and merges the index files).
* run 2: ``dataset delete`` of the last dataset, then gc: expected reclaim is
  the stored bytes of the objects only that dataset reaches.
* run 3: gc ``--keep-last 20`` on what is left: expected reclaim is the stored
  bytes of the chunks only versions older than the last 20 hold.

Expected figures come from the workspaces' own objects and the packs' footers,
not from gc. Times are wall-clock, gc passes included (``--grace 0``, so one
invocation condemns and deletes). Usage::

    python benchmarks/bench_gc.py                       # local store under benchmarks/work/gc
    python benchmarks/bench_gc.py --datasets 2 --versions 25 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from datactl.format.pack import ObjectType  # noqa: E402
from datactl.format.storeconfig import StoreConfig  # noqa: E402
from datactl.remote.locate import RemoteSpec, add_remote
from datactl.remote.publish import publish  # noqa: E402
from datactl.remote.remotestore import RemoteStore  # noqa: E402
from datactl.remote.transfer import local_objects_to_push  # noqa: E402
from datactl.store.packread import read_footer  # noqa: E402
from datactl.upkeep.gc import collect_garbage
from datactl.upkeep.reach import Retention
from datactl.upkeep.refdelete import delete_dataset
from datactl.upkeep.targets import url_target  # noqa: E402
from datactl.workspace.workspace import Workspace  # noqa: E402
from storage_backends import open_backend  # noqa: E402


def footers(backend) -> dict[str, int]:
    """Object id -> stored length, over every pack's footer (payload bytes; duplicates summed)."""
    out: dict[str, int] = {}
    for info in backend.list("packs/"):
        for e in read_footer(backend, info.key.rsplit("/", 1)[-1], info.size):
            out[e.id] = out.get(e.id, 0) + e.stored_len
    return out


def pack_bytes(backend) -> tuple[int, int]:
    infos = list(backend.list("packs/"))
    return len(infos), sum(i.size for i in infos)


def build(work: str, url: str, datasets: int, versions: int, seed: int) -> dict[str, tuple[Workspace, list[str]]]:
    rng = random.Random(seed)
    backend = open_backend(url)
    spaces: dict[str, tuple[Workspace, list[str]]] = {}
    for d in range(datasets):
        root = os.path.join(work, f"d{d}")
        os.makedirs(root)
        ws = Workspace.init(root, name=f"d{d}", store_config=StoreConfig(pack_size=8 * 1024 * 1024))
        add_remote(ws.root, "origin", url)
        spaces[ws.name] = (ws, [])
    rs = {n: RemoteStore(RemoteSpec("origin", url, {}), os.path.join(ws.dotdir, "remotes"), backend=backend) for n, (ws, _) in spaces.items()}
    for v in range(versions):
        shared = rng.randbytes(16_000)  # the same file in every dataset: stored once
        for d, (name, (ws, heads)) in enumerate(spaces.items()):
            for fname, data in ((f"f{v:04d}.bin", rng.randbytes(48_000)), (f"s{v:04d}.bin", shared)):
                with open(os.path.join(ws.root, fname), "wb") as f:
                    f.write(data)
            if v >= 10:
                os.unlink(os.path.join(ws.root, f"f{v - 10:04d}.bin"))
                os.unlink(os.path.join(ws.root, f"s{v - 10:04d}.bin"))
            ws.add([ws.root])
            heads.append(ws.commit(f"v{v}"))
            publish(ws.repo, rs[name], ws.head_ref, ws.head, tmp_dir=os.path.join(ws.dotdir, "store", "tmp"))
    for r in rs.values():
        r.close()
    return spaces


def reach(ws: Workspace, heads: list[str], history: bool) -> set[str]:
    """Objects of ``heads`` (with their history, or each version's own files only)."""
    if history:
        return {o for batch in local_objects_to_push(ws.repo, heads, set(), lambda ids: ids) for o in batch}
    out: set[str] = set()
    for h in heads:
        parents = set(ws.repo.read_commit(h).parents)
        out |= {o for batch in local_objects_to_push(ws.repo, [h], parents, lambda ids: ids) for o in batch}
    return out


def run_gc(url: str, tmp: str, **kw) -> tuple[float, dict]:
    backend = open_backend(url)
    started = time.perf_counter()
    report = collect_garbage(url_target(backend, tmp), grace=0, **kw)
    return time.perf_counter() - started, report.to_dict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=int, default=4)
    ap.add_argument("--versions", type=int, default=125)
    ap.add_argument("--keep-last", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=os.path.join(HERE, "work", "gc"))
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    os.environ.setdefault("DATACTL_AUTHOR", "bench <bench@example.com>")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    url = os.path.join(args.work, "store")
    tmp = os.path.join(args.work, "tmp")
    t0 = time.perf_counter()
    spaces = build(args.work, url, args.datasets, args.versions, args.seed)
    build_s = time.perf_counter() - t0
    backend = open_backend(url)
    packs0, bytes0 = pack_bytes(backend)
    index_files0 = sum(1 for _ in backend.list("index/"))
    figures: dict = {"datasets": args.datasets, "versions": args.versions, "build_seconds": round(build_s, 1),
                     "packs": packs0, "pack_bytes": bytes0, "index_files": index_files0}
    print(f"store: {packs0} packs, {bytes0 / 1e6:.1f} MB, {index_files0} index files (built in {build_s:.0f}s)")

    # 1. nothing to free
    secs, rep = run_gc(url, tmp)
    figures["noop"] = {"seconds": round(secs, 3), "bytes_freed": rep["bytes_freed"], "index_files_after": sum(1 for _ in backend.list("index/"))}
    print(f"gc, nothing to free: {secs:.2f}s, freed {rep['bytes_freed']} B, index files {index_files0} -> {figures['noop']['index_files_after']}")
    secs, rep = run_gc(url, tmp)
    figures["noop_again"] = {"seconds": round(secs, 3)}
    print(f"gc again (one index file): {secs:.2f}s")

    # 2. delete the last dataset
    names = list(spaces)
    gone = names[-1]
    kept = names[:-1]
    objs_gone = reach(spaces[gone][0], [spaces[gone][1][-1]], True)
    objs_kept: set[str] = set()
    for n in kept:
        objs_kept |= reach(spaces[n][0], [spaces[n][1][-1]], True)
    sizes = footers(backend)
    expected = sum(sizes[o] for o in objs_gone - objs_kept)
    payload_before = sum(sizes.values())
    delete_dataset(backend, gone)
    secs, rep = run_gc(url, tmp, repack_threshold=0.0)
    sizes_after = footers(backend)
    packs1, bytes1 = pack_bytes(backend)
    actual = payload_before - sum(sizes_after.values())
    exact = set(sizes_after) == objs_kept
    figures["delete_dataset"] = {
        "seconds": round(secs, 3), "expected_bytes": expected, "reclaimed_payload_bytes": actual,
        "reclaimed_pack_bytes": bytes0 - bytes1, "packs_after": packs1, "store_holds_exactly_what_refs_reach": exact,
        "packs_deleted": rep["packs_deleted"], "objects_copied": rep["objects_copied"],
    }
    print(f"gc after deleting {gone}: {secs:.2f}s; reclaimed {actual} B of object data (expected {expected} B, "
          f"{'exact' if actual == expected else 'MISMATCH'}), {bytes0 - bytes1} B of packs; {packs0} -> {packs1} packs; "
          f"store holds exactly what the refs reach: {exact}")

    # 3. keep the files of the last N versions only
    n = args.keep_last
    full_chunks: set[str] = set()
    all_chunks: set[str] = set()
    for name in kept:
        ws, heads = spaces[name]
        full_chunks |= {o for o in reach(ws, heads[-n:], False) if ws.repo.object_type(o) == ObjectType.CHUNK}
        all_chunks |= {o for o in reach(ws, heads, False) if ws.repo.object_type(o) == ObjectType.CHUNK}
    expected_k = sum(sizes_after[o] for o in all_chunks - full_chunks)
    payload1 = sum(sizes_after.values())
    secs, rep = run_gc(url, tmp, retention=Retention(keep_last=n), repack_threshold=0.0)
    sizes2 = footers(backend)
    packs2, bytes2 = pack_bytes(backend)
    actual_k = payload1 - sum(sizes2.values())
    figures["keep_last"] = {"keep_last": n, "seconds": round(secs, 3), "expected_bytes": expected_k, "reclaimed_payload_bytes": actual_k,
                            "reclaimed_pack_bytes": bytes1 - bytes2, "versions_pruned": rep["versions_pruned"], "packs_after": packs2}
    print(f"gc --keep-last {n}: {secs:.2f}s; reclaimed {actual_k} B of object data (expected {expected_k} B, "
          f"{'exact' if actual_k == expected_k else 'MISMATCH'}), {rep['versions_pruned']} versions pruned to history; {packs1} -> {packs2} packs")
    for ws, _ in spaces.values():
        ws.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    ok = exact and actual == expected and actual_k == expected_k
    print("OK" if ok else "PROBLEM: reclaimed bytes differ from the expected figure")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
