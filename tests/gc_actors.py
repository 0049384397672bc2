"""Long-lived processes for the gc concurrency tests, driven line by line on stdin.

``python gc_actors.py writer URL OPTIONS_JSON WORKDIR PREFIX SEED``
    each ``step R`` line: make a new version of two datasets, ``PREFIX-b`` (never
    deleted) and ``PREFIX-a`` (shares files with b; deleted from the remote every
    third step and pushed again, whole history, on the next), push them, and
    print ``{"heads": {name: commit or null}}``. A re-push of ``a`` relies on
    objects the remote index lists although no ref reaches them: the case gc must
    not break.

``python gc_actors.py collector URL OPTIONS_JSON TMPDIR GRACE THRESHOLD``
    ``go``: run gc passes back to back until ``stop``, then print the totals.

Both answer ``quit`` by exiting.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback


def _say(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def writer(url: str, options: dict, workdir: str, prefix: str, seed: int) -> None:
    from datactl.format.storeconfig import StoreConfig
    from datactl.remote.locate import RemoteSpec, add_remote
    from datactl.remote.publish import publish
    from datactl.remote.remotestore import RemoteStore
    from datactl.upkeep.refdelete import delete_dataset
    from datactl.workspace.workspace import Workspace
    from storage_backends import open_backend

    rng = random.Random(seed)
    backend = open_backend(url, options)
    spaces = {}
    remotes = {}
    for suffix in ("a", "b"):
        root = os.path.join(workdir, f"{prefix}-{suffix}")
        os.makedirs(root, exist_ok=True)
        ws = Workspace.init(root, name=f"{prefix}-{suffix}", store_config=StoreConfig(pack_size=48 * 1024))
        add_remote(ws.root, "origin", url, options)
        spaces[suffix] = ws
        # One client for the whole run (what `sync.push` does, minus making an S3 client per push).
        remotes[suffix] = RemoteStore(RemoteSpec("origin", url, options), os.path.join(ws.dotdir, "remotes"), backend=backend)

    longest = 0.0

    def push(suffix: str) -> None:
        nonlocal longest
        ws = spaces[suffix]
        started = time.monotonic()
        publish(ws.repo, remotes[suffix], ws.head_ref, ws.head, tmp_dir=os.path.join(ws.dotdir, "store", "tmp"))
        longest = max(longest, time.monotonic() - started)
    on_remote = {"a": False, "b": False}
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        step = int(cmd[1])
        try:
            shared = rng.randbytes(rng.randint(8_000, 30_000))
            for suffix, ws in spaces.items():
                with open(os.path.join(ws.root, f"s{step}.bin"), "wb") as f:
                    f.write(shared)
                if suffix == "a":
                    with open(os.path.join(ws.root, f"a{step}.bin"), "wb") as f:
                        f.write(rng.randbytes(rng.randint(8_000, 30_000)))
                    if step >= 2 and step % 2 == 0:
                        os.unlink(os.path.join(ws.root, f"a{step - 2}.bin"))
                ws.add([ws.root])
                ws.commit(f"step {step}")
            push("b")
            on_remote["b"] = True
            if step % 3 == 1 and on_remote["a"]:
                delete_dataset(backend, f"{prefix}-a")
                on_remote["a"] = False
            else:
                push("a")
                on_remote["a"] = True
            _say({"heads": {ws.name: (ws.head if on_remote[s] else None) for s, ws in spaces.items()}, "longest_push": longest})
        except Exception as exc:  # reported to the test, which fails with it
            _say({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def collector(url: str, options: dict, tmp_dir: str, grace: float, threshold: float) -> None:
    from datactl.core.errors import StoreNotFound
    from datactl.upkeep.gc import collect_garbage
    from datactl.upkeep.targets import url_target
    from storage_backends import open_backend

    backend = open_backend(url, options)
    totals = {"passes": 0, "runs": 0, "packs_deleted": 0, "bytes_freed": 0, "packs_condemned": 0, "objects_rescued": 0, "objects_copied": 0}
    stop = threading.Event()
    errors: list[str] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                r = collect_garbage(url_target(backend, tmp_dir), grace=grace, repack_threshold=threshold, lock_stale_after=60)
            except StoreNotFound:
                time.sleep(0.05)  # the first push has not created the store yet
                continue
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                return
            totals["runs"] += 1
            stop.wait(0.1)  # leave the test servers some room for the writers
            for k in ("passes", "packs_deleted", "bytes_freed", "packs_condemned", "objects_rescued", "objects_copied"):
                totals[k] += getattr(r, k)

    thread = None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "go":
            stop.clear()
            thread = threading.Thread(target=loop)
            thread.start()
        elif cmd == "stop":
            stop.set()
            if thread is not None:
                thread.join()
            _say({"totals": totals, "errors": errors})
        else:
            break


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "writer":
        writer(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
    elif role == "collector":
        collector(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
    else:
        raise SystemExit(f"unknown role {role}")
