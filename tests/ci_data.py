"""Datasets and helpers for the CI tests (validate, verify, drift): a good and a broken version of one dataset."""

from __future__ import annotations

import io
import os
import random
import shutil
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from conftest import write
from datactl.remote.locate import RemoteSpec
from datactl.remote.publish import publish
from datactl.remote.remotestore import RemoteStore
from datactl.workspace.workspace import Workspace
from storage_backends import Backend, ObjectInfo, Versioned, open_backend


def png(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    im = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(8):
        im.putpixel((rng.randrange(width), rng.randrange(height)), (rng.randrange(256),) * 3)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def parquet(columns: dict[str, list]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def make_good(root: Path) -> None:
    """Every rule in GOOD_RULES passes on this."""
    seed = 0
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("cat", "dog"):
            for i in range(n):
                seed += 1
                write(root / split / cls / f"{i}.png", png(16, 12, seed))
    rows = ["id,label,score"] + [f"{i},{'cat' if i % 2 else 'dog'},{i / 4}" for i in range(20)]
    write(root / "labels.csv", "\n".join(rows) + "\n")
    write(root / "data" / "records.jsonl", "".join(f'{{"id": {i}, "label": "cat"}}\n' for i in range(10)))
    write(root / "data" / "table.parquet", parquet({"id": list(range(50)), "name": [f"n{i}" for i in range(50)]}))
    write(root / "data" / "notes.txt", "notes\n")
    write(root / "README.md", "# dataset\n")


def make_bad(root: Path) -> None:
    """Break every rule in GOOD_RULES once (applied on top of make_good)."""
    shutil.rmtree(root / "train" / "dog")  # a class vanished, fewer train files
    shutil.copy(root / "train" / "cat" / "0.png", root / "test" / "cat" / "leak.png")  # duplicate, split leak
    write(root / "train" / "cat" / "broken.png", b"\x89PNG\r\n\x1a\nthis is not an image")
    rows = ["id,label,scor"] + [f"{i},cat,{i}" for i in range(18)] + ["x,dog,1", "20,dog,2"]
    write(root / "labels.csv", "\n".join(rows) + "\n")
    write(root / "data" / "records.jsonl", '{"id": 1, "label": "cat"}\n{"id": 2, "label": \n')
    write(root / "data" / "table.parquet", parquet({"id": [str(i) for i in range(50)], "name": [f"n{i}" for i in range(50)]}))
    write(root / "data" / "empty.txt", b"")
    write(root / "data" / "huge.bin", random.Random(7).randbytes(200_000))
    write(root / "secrets" / "key.pem", "-----BEGIN KEY-----\n")
    write(root / "tool.exe", b"MZ")
    (root / "README.md").unlink()


# Each rule: (table, a text the broken version's findings must contain).
GOOD_RULES: dict[str, tuple[dict, str]] = {
    "count": ({"type": "count", "glob": "train/**", "min": 6, "max": 100}, "below the minimum 6"),
    "total_size": ({"type": "total_size", "max": "100KB"}, "above the maximum"),
    "file_size": ({"type": "file_size", "max": "50KB"}, "data/huge.bin"),
    "no_empty": ({"type": "no_empty"}, "data/empty.txt"),
    "required": ({"type": "required", "paths": ["README.md", "labels.csv", "train/dog", "data/*.parquet"]}, "README.md"),
    "forbidden": ({"type": "forbidden", "paths": ["*.pem", ".DS_Store"]}, "secrets/key.pem"),
    "extensions": ({"type": "extensions", "allowed": ["png", ".csv", "jsonl", "parquet", "txt", "md", "bin", "pem"]}, "tool.exe"),
    "no_duplicates": ({"type": "no_duplicates", "glob": "*.png"}, "train/cat/0.png: same content as test/cat/leak.png"),
    "split_overlap": ({"type": "split_overlap", "splits": ["train", "test"]}, "test/cat/leak.png"),
    "class_balance_folder": ({"type": "class_balance", "root": "train", "classes": ["cat", "dog"], "min": 2}, "class 'dog' has no files"),
    "class_balance_column": ({"type": "class_balance", "by": "column", "glob": "/labels.csv", "column": "label", "max_ratio": 2}, "largest class 'cat'"),
    "csv": ({"type": "csv", "glob": "/labels.csv", "header": ["id", "label", "score"], "columns": {"id": "int", "label": "str"}}, "'x' is not int"),
    "jsonl": ({"type": "jsonl", "required_keys": ["id", "label"]}, "line 2 is not valid JSON"),
    "parquet": ({"type": "parquet", "schema": {"id": "int64", "name": "string"}}, "column 'id' is string, expected int64"),
    "image": ({"type": "image", "formats": ["PNG"], "max_width": 64, "min_height": 8}, "train/cat/broken.png"),
}


def build_versions(root: Path) -> Workspace:
    """A workspace whose tags ``good`` and ``bad`` are the two versions; HEAD is ``bad``."""
    root.mkdir(parents=True, exist_ok=True)
    make_good(root)
    ws = Workspace.init(str(root), name="ds")
    ws.add([str(root)])
    ws.commit("good", tags=["good"], verify=False)
    make_bad(root)
    ws.add([str(root)])
    ws.commit("bad", tags=["bad"], verify=False)
    return ws


def publish_all(ws: Workspace, url: str, options: dict, cache_dir: str) -> None:
    """Push the head and every tag of ``ws`` to the store at ``url``."""
    with RemoteStore(RemoteSpec(None, url, dict(options)), cache_dir) as rs:
        tags = {f"tags/{ws.name}/{t}": c for t, c in ws.list_tags().items()}
        publish(ws.repo, rs, ws.head_ref, ws.repo.refs.get(ws.head_ref), tags=tags, tmp_dir=os.path.join(ws.dotdir, "store", "tmp"))


class CountingBackend(Backend):
    """Wraps a backend and counts what is read from it."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.bytes_read = 0
        self.requests = 0
        self.by_key: dict[str, int] = {}
        self._lock = threading.Lock()

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.bytes_read += n
            self.requests += 1
            self.by_key[key] = self.by_key.get(key, 0) + n

    def get(self, key: str) -> bytes:
        data = self.inner.get(key)
        self._count(key, len(data))
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        data = self.inner.get_range(key, offset, length)
        self._count(key, len(data))
        return data

    def open_read(self, key: str) -> BinaryIO:
        raise AssertionError("validation must not stream whole blobs")

    def put_file(self, key: str, path: str) -> None:
        raise AssertionError("validation must not write to the store")

    def put_bytes(self, key: str, data: bytes) -> None:
        raise AssertionError("validation must not write to the store")

    def put_if_absent(self, key: str, data: bytes) -> bool:
        raise AssertionError("validation must not write to the store")

    def get_versioned(self, key: str) -> Versioned | None:
        v = self.inner.get_versioned(key)
        self._count(key, len(v.data) if v else 0)
        return v

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        raise AssertionError("validation must not write to the store")

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        raise AssertionError("validation must not write to the store")

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)


def counting_remote(url: str, options: dict, cache_dir: str) -> tuple[RemoteStore, CountingBackend]:
    backend = CountingBackend(open_backend(url, options))
    return RemoteStore(RemoteSpec(None, url, dict(options)), cache_dir, backend=backend), backend


def pack_keys(url: str, options: dict) -> dict[str, int]:
    return {i.key: i.size for i in open_backend(url, options).list("packs/")}
