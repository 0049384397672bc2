"""Validating a 20,000-file version on a remote reads the trees and the few bytes content rules need, nothing else."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

from ci_data import counting_remote, pack_keys
from datactl.format.layout import pack_key
from datactl.format.objects import FILE, Commit, TreeEntry
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import StoreConfig
from datactl.remote.source import remote_source
from datactl.store.chunker import Chunker
from datactl.store.filedata import store_stream
from datactl.store.index import ObjectIndex
from datactl.store.refs import RefStore
from datactl.store.repository import Repository, write_store_config
from datactl.store.trees import build_tree
from datactl.validation import run_rules
from datactl.validation.config import RulesConfig, build_rules
from storage_backends import open_backend

FILES = 20_000
CLASSES = 10


def _build_remote_version(url: str, options: dict, work: Path) -> dict:
    """Write a 20,000-file version straight into the store at ``url`` (no workspace, no push)."""
    backend = open_backend(url, options)
    config = write_store_config(backend, StoreConfig())
    repo = Repository(backend, ObjectIndex(str(work / "build-index.db")), config, str(work / "tmp"))
    chunker = Chunker(config.chunker)
    rng = random.Random(42)
    files: list[tuple[str, TreeEntry]] = []

    def add(path: str, data: bytes) -> None:
        c = store_stream(repo, chunker, io.BytesIO(data))
        files.append((path, TreeEntry(path.rsplit("/", 1)[-1], FILE, 0o644, c.size, c.digest, c.chunks, c.chunklist)))

    labels = ["path,label,width,height"]
    per_split = {"train": FILES * 9 // 10, "test": FILES // 10 - 1}
    for split, n in per_split.items():
        for i in range(n):
            cls = f"class_{i % CLASSES}"
            path = f"{split}/{cls}/img_{i:05d}.jpg"
            add(path, rng.randbytes(rng.randint(600, 1400)))
            labels.append(f"{path},{cls},{rng.randint(32, 512)},{rng.randint(32, 512)}")
    add("labels.csv", ("\n".join(labels) + "\n").encode())
    files.sort(key=lambda f: f[0].encode())
    tree = build_tree(repo, files)
    commit = Commit(tree, (), "dataset", "big", "20k files", "t", "2026-01-01T00:00:00Z")
    cid = repo.put(ObjectType.COMMIT, commit.encode())
    repo.flush()
    RefStore(backend).update("datasets/big", cid, expected=None)
    labels_entry = next(e for p, e in files if p == "labels.csv")
    data_bytes = sum(e.size for _, e in files)
    repo.close()
    return {"commit": cid, "labels": labels_entry, "data_bytes": data_bytes, "files": len(files)}


RULES = [
    {"type": "count", "glob": "train/**", "min": 17_000, "max": 19_000},
    {"type": "count", "glob": "test/**", "min": 1_000},
    {"type": "total_size", "max": "100MB"},
    {"type": "file_size", "glob": "*.jpg", "min": "500B", "max": "2KB"},
    {"type": "no_empty"},
    {"type": "extensions", "allowed": ["jpg", "csv"]},
    {"type": "required", "paths": ["labels.csv", "train", "test"]},
    {"type": "forbidden", "paths": ["*.tmp", ".DS_Store"]},
    {"type": "no_duplicates"},
    {"type": "split_overlap", "splits": ["train", "test"]},
    {"type": "class_balance", "root": "train", "classes": [f"class_{i}" for i in range(CLASSES)], "max_ratio": 1.1},
    {"type": "csv", "glob": "/labels.csv", "header": ["path", "label", "width", "height"], "columns": {"width": "int", "height": "int"}, "rows": 200},
]


def test_validating_20000_remote_files_reads_only_what_the_rules_need(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    t0 = time.monotonic()
    built = _build_remote_version(url, options, tmp_path)
    build_seconds = time.monotonic() - t0
    packs = pack_keys(url, options)
    total_pack_bytes = sum(packs.values())

    rs, backend = counting_remote(url, options, str(tmp_path / "cache"))
    with rs:
        t0 = time.monotonic()
        src = remote_source(rs, "big@HEAD")
        report = run_rules(src, build_rules(RulesConfig(rules=RULES)), workers=8)
        seconds = time.monotonic() - t0
        labels_pack = pack_key(rs.index.lookup(built["labels"].chunks[0]).pack)
        # What a full read would cost: every data chunk of the version.
        data_pack_bytes = sum(size for key, size in packs.items() if key == labels_pack)

    assert report.ok, [r.to_dict() for r in report.results if r.status != "passed"]
    assert report.files == built["files"] == FILES
    read = report.read
    from_packs = sum(n for key, n in backend.by_key.items() if key.startswith("packs/"))
    index_files = sum(n for key, n in backend.by_key.items() if key.startswith("index/"))
    print(
        f"\n20,000-file remote version: {built['data_bytes']:,} bytes of files in {total_pack_bytes:,} bytes of packs "
        f"(built in {build_seconds:.1f}s); validated {len(RULES)} rules in {seconds:.2f}s, reading "
        f"{from_packs:,} bytes from packs ({read['metadata_bytes']:,} trees/commits + {read['data_bytes']:,} file data) "
        f"in {read['requests']} ranged requests, plus {index_files:,} bytes of index files; "
        f"{read['files_opened']} file(s) opened"
    )
    # Only labels.csv was opened, and only its first chunk(s): the header and 200 rows.
    assert read["files_opened"] == 1
    assert read["data_bytes"] <= 2 * 256 * 1024 and read["data_bytes"] < built["labels"].size / 2
    # Everything else read is metadata: the commit and the trees.
    assert from_packs == read["bytes_read"]
    assert from_packs < 0.25 * total_pack_bytes
    assert from_packs < data_pack_bytes / 4
    assert read["requests"] < 40  # trees fetched in batches, not one request per folder or file
