"""``datactl quickstart``: a small sample dataset with two versions, to see datactl work in seconds."""

from __future__ import annotations

import os
import random
import tempfile
from typing import Optional

import typer

from datactl.cli.output import RichProgress, out
from datactl.cli.workspace import print_diff, print_log, print_status
from datactl.core.errors import UsageError
from datactl.core.units import human_bytes


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_sample_files(root: str, seed: int = 7) -> None:
    """Write a small image-classification-like dataset: CSV labels and binary 'images'."""
    rng = random.Random(seed)
    rows = ["id,label,split"] + [f"{i},{rng.choice(['cat', 'dog', 'bird'])},{'train' if i % 5 else 'test'}" for i in range(20_000)]
    _write(os.path.join(root, "labels.csv"), ("\n".join(rows) + "\n").encode())
    for split, count in (("train", 40), ("test", 10)):
        for i in range(count):
            _write(os.path.join(root, "images", split, f"img_{i:04d}.bin"), rng.randbytes(rng.randint(20_000, 120_000)))
    _write(os.path.join(root, "README.txt"), "Sample dataset made by `datactl quickstart`.\n".encode())


def edit_sample_files(root: str, seed: int = 8) -> None:
    """A second version: a label fixed mid-file, an image added, one deleted, one renamed."""
    rng = random.Random(seed)
    labels = os.path.join(root, "labels.csv")
    with open(labels, "rb") as f:
        data = f.read()
    mid = data.index(b"\n", len(data) // 2) + 1
    _write(labels, data[:mid] + b"99999,fox,train\n" + data[mid:])
    _write(os.path.join(root, "images", "train", "img_9000.bin"), rng.randbytes(50_000))
    os.unlink(os.path.join(root, "images", "test", "img_0003.bin"))
    os.rename(os.path.join(root, "images", "train", "img_0001.bin"), os.path.join(root, "images", "train", "img_0001_renamed.bin"))


def quickstart(
    directory: Optional[str] = typer.Argument(None, help="Where to build the sample (default: a new temporary folder)."),
) -> None:
    """Build a sample dataset, commit two versions, and show status, log, diff and sizes."""
    from datactl.store.diff import diff_trees
    from datactl.store.stats import store_stats, version_stats
    from datactl.workspace.workspace import Workspace

    root = directory or tempfile.mkdtemp(prefix="datactl-quickstart-")
    if os.path.exists(root) and os.listdir(root):
        raise UsageError(f"{root} is not empty", "give an empty or new folder")
    make_sample_files(root)
    out.rule("datactl init, add, commit")
    with Workspace.init(root, name="sample") as ws:
        ws.add([root], progress=RichProgress())
        v1 = ws.commit("first version: 50 images and their labels", tags=["v1"])
        out.print(f"committed v1 = {v1[:12]} in {root}")
        edit_sample_files(root)
        out.rule("datactl status (after editing labels.csv and some images)")
        print_status(ws.status())
        ws.add([root])
        v2 = ws.commit("fix a label, add, drop and rename images", tags=["v2"])
        out.rule("datactl log")
        print_log(ws, v2, None, False)
        out.rule("datactl diff v1 v2")
        print_diff(diff_trees(ws.repo, ws.repo.read_commit(v1).tree, ws.repo.read_commit(v2).tree), stat=False)
        out.rule("datactl du")
        tracked = version_stats(ws.repo, v1).logical_bytes + version_stats(ws.repo, v2).logical_bytes
        ss = store_stats(ws.repo)
        out.print(f"tracked in v1 + v2: {human_bytes(tracked)}; stored: {human_bytes(ss.pack_bytes)} ({tracked / max(ss.pack_bytes, 1):.2f}x smaller)")
        out.print(f"\nTry: cd {root} && datactl log --oneline && datactl checkout v1")


def register(app: typer.Typer) -> None:
    app.command()(quickstart)
