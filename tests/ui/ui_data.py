"""The store the UI tests look at, built once per module: two versions of a dataset, a model trained on it, hostile names.

``raw`` v1 -> v2 changes a CSV, removes a text file and adds one; the model
``clf`` (tag m1) has raw@v2 as its input, so lineage crosses the two. Names
and cells hold HTML that must show as text: a file called
``<img src=x onerror=alert(1)>.csv``, a path ``<script>alert(1)</script>.csv``
(a folder ``<script>alert(1)<`` holding ``script>.csv``: a file name cannot
hold a slash) and CSV cells with tags in them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datactl.api.dataset import Dataset, log_model
from datactl.cli.app import main
from datactl.remote.locate import RemoteSpec

HOSTILE_FILE = "<img src=x onerror=alert(1)>.csv"
HOSTILE_PATH = "<script>alert(1)</script>.csv"
HTML_CELL = "<b>bold</b><script>alert(3)</script>"
BIG_ROWS = 70_000
RULES = """
[validate]
[[validate.rules]]
name = "has-table"
type = "required"
paths = ["data/table.csv"]

[[validate.rules]]
name = "has-labels"
type = "required"
paths = ["labels.csv"]
"""


@dataclass
class UiStore:
    """A store to browse: where it is, and the options its backend needs."""

    url: str
    options: dict
    workspace: Path  # holds the rules (datactl.toml) the Checks page validates with


def _run(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"datactl {' '.join(args)} exited {code}"


def _png(path: Path, color: tuple[int, int, int]) -> None:
    from PIL import Image

    Image.new("RGB", (64, 40), color).save(path)


def build_workspace(root: Path) -> Path:
    """The workspace of ``raw`` with its two versions committed (and rules in its datactl.toml)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ws = root / "ws"
    ws.mkdir()
    os.chdir(ws)
    _run("init", "--name", "raw")
    with open(ws / "datactl.toml", "a", encoding="utf-8") as f:
        f.write(RULES)
    (ws / "data").mkdir()
    (ws / "img").mkdir()
    (ws / "data" / "table.csv").write_text(f'id,name,score\n1,alpha,0.5\n2,"{HTML_CELL}",1.5\n3,gamma,\n', encoding="utf-8")
    (ws / "data" / "records.jsonl").write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "<i>y</i>"}\n', encoding="utf-8")
    pq.write_table(pa.table({"x": [1, 2, 3, 4, 5], "y": ["a", "b", None, "d", "e"]}), ws / "data" / "points.parquet", row_group_size=2)
    with open(ws / "data" / "big.csv", "w", encoding="utf-8") as f:  # about 4 MB that do not compress: a preview must not read them all
        f.write("n,hex\n")
        f.writelines(f"{i},{os.urandom(24).hex()}\n" for i in range(BIG_ROWS))
    _png(ws / "img" / "red.png", (200, 40, 40))
    (ws / "readme.txt").write_text("line one\nline two\n", encoding="utf-8")
    (ws / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (ws / HOSTILE_FILE).write_text(f"col\n{HTML_CELL}\n", encoding="utf-8")
    hostile = ws / HOSTILE_PATH
    hostile.parent.mkdir()
    hostile.write_text("a,b\n<img src=y onerror=alert(4)>,2\n", encoding="utf-8")
    _run("add", ".")
    _run("commit", "-m", "first cut", "--tag", "v1")
    with open(ws / "data" / "table.csv", "a", encoding="utf-8") as f:
        f.write("4,delta,2.5\n")
    (ws / "readme.txt").unlink()
    (ws / "data" / "notes.txt").write_text("added in v2\n", encoding="utf-8")
    _run("add", ".")
    _run("commit", "-m", "more rows", "--tag", "v2", "--meta", "owner=ana")
    return ws


def publish_store(ws: Path, url: str, options: dict, cache: Path) -> UiStore:
    """Push ``raw`` (with its tags) to ``url`` and log the model ``clf`` trained on raw@v2 there."""
    os.chdir(ws)
    name = f"r{abs(hash(url)) % 10**8}"
    extra = ["--endpoint-url", options["endpoint_url"]] if "endpoint_url" in options else []
    _run("remote", "add", name, url, *extra)
    _run("push", name, "--tags")
    model = ws.parent / f"model-{name}"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x01\x02" * 100)
    with Dataset.get("raw", "v2", remote=RemoteSpec(None, url, options), cache_dir=str(cache)) as ds:
        log_model(str(model), "clf", inputs=[ds], tags=["m1"], message="trained on raw v2").close()
    return UiStore(url, options, ws)


def open_session(store: UiStore):  # -> StoreSession
    """The UI's view of ``store``, with its index cache in the workspace (never the user's cache)."""
    from datactl.remote.locate import StoreChoice
    from datactl.ui.session import StoreSession

    return StoreSession(StoreChoice(RemoteSpec(None, store.url, store.options), str(store.workspace), False))
