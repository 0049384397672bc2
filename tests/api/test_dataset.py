"""The Python API training code uses: get, stream, local copies, a shared cache, drafts, fsspec."""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import snapshot, write
from datactl import Dataset, log_model
from datactl.api.readers import FileReader
from datactl.core.errors import StoreNotFound
from datactl.remote.locate import add_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace

MiB = 1024 * 1024


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    d = str(tmp_path / "cache")
    monkeypatch.setenv("DATACTL_CACHE_DIR", d)
    monkeypatch.chdir(tmp_path)  # not inside a workspace
    return d


def publish_dataset(root: Path, url: str, options: dict, name: str = "ds", tag: str | None = "v1") -> str:
    ws = Workspace.init(str(root), name=name)
    add_remote(ws.root, "origin", url, options)
    ws.add([str(root)])
    cid = ws.commit("v1", tags=[tag] if tag else [])
    sync.push(ws, tags=True)
    ws.close()
    return cid


def remote_arg(url: str, options: dict):
    from datactl.remote.locate import RemoteSpec

    return RemoteSpec(None, url, options) if options else url


@pytest.fixture
def published(tmp_path: Path, store_url: tuple[str, dict]) -> tuple[Path, object, str]:
    url, options = store_url
    src = tmp_path / "src"
    rng = random.Random(42)
    write(src / "big.bin", rng.randbytes(12 * MiB))
    for i in range(30):
        write(src / ("train" if i % 3 else "test") / f"{i:02d}.bin", rng.randbytes(rng.randint(100, 30_000)))
    write(src / "labels.csv", "path,label\n" + "".join(f"{i:02d}.bin,{i % 3}\n" for i in range(30)))
    os.symlink("labels.csv", src / "labels_link.csv")
    cid = publish_dataset(src, url, options)
    return src, remote_arg(url, options), cid


def test_get_resolves_versions_and_exposes_metadata(cache_dir: str, published) -> None:
    src, remote, cid = published
    with Dataset.get("ds", remote=remote) as latest, Dataset.get("ds", "v1", remote=remote) as tagged, Dataset.get("ds", cid[:8], remote=remote) as by_id:
        assert latest.id == tagged.id == by_id.id == cid
        assert latest.name == "ds" and latest.kind == "dataset" and latest.version == ["v1"]
        assert latest.message == "v1" and latest.parents == [] and latest.created_at.tzinfo is not None
        files = {f.path: f for f in latest.files()}
        assert files["big.bin"].size == 12 * MiB
        assert sorted(f.path for f in latest.files("test/*")) == sorted(f"test/{i:02d}.bin" for i in range(0, 30, 3))
        assert latest.read_bytes("labels.csv") == (src / "labels.csv").read_bytes()
    with pytest.raises(Exception, match="no version"):
        Dataset.get("ds", "v9", remote=remote)
    with pytest.raises(Exception, match="no dataset or model named .nope."):
        Dataset.get("nope", remote=remote)


def test_open_seek_partial_read_fetches_only_needed_bytes(cache_dir: str, published) -> None:
    src, remote, _ = published
    expected = (src / "big.bin").read_bytes()
    with Dataset.get("ds", remote=remote) as ds:
        before = ds.bytes_downloaded
        with ds.open("big.bin") as f:
            f.seek(7 * MiB + 123)
            part = f.read(5000)
            assert part == expected[7 * MiB + 123 : 7 * MiB + 5123]
            assert f.tell() == 7 * MiB + 5123
            f.seek(-10, io.SEEK_END)
            assert f.read() == expected[-10:]
        fetched = ds.bytes_downloaded - before
    assert fetched < 1 * MiB, f"two small reads of a 12 MiB file fetched {fetched} bytes"


def test_local_copy_is_exact_read_only_and_reused(cache_dir: str, published) -> None:
    src, remote, _ = published
    with Dataset.get("ds", remote=remote) as ds:
        path = ds.get_local_copy()
        assert snapshot(Path(path)) == {k: (v[0], 0o444, *v[2:]) if v[0] == "file" else v for k, v in snapshot(src).items()}
        assert not os.stat(os.path.join(path, "big.bin")).st_mode & stat.S_IWUSR
        downloaded = ds.bytes_downloaded
    with Dataset.get("ds", remote=remote) as again:
        assert again.get_local_copy() == path
        assert again.bytes_downloaded == 0, "a second get_local_copy downloads nothing"
    target = Path(cache_dir).parent / "mutable"
    with Dataset.get("ds", remote=remote) as ds:
        ds.get_mutable_local_copy(str(target))
        (target / "labels.csv").write_text("edited")  # writable, and the cache is untouched
        assert (Path(path) / "labels.csv").read_bytes() == (src / "labels.csv").read_bytes()
        with pytest.raises(Exception, match="not empty"):
            ds.get_mutable_local_copy(str(target))
    assert downloaded > 12 * MiB * 0.9


COPY_SCRIPT = """
import sys
from datactl import Dataset
from datactl.remote.locate import RemoteSpec
import json
url, options = sys.argv[1], json.loads(sys.argv[2])
remote = RemoteSpec(None, url, options) if options else url
with Dataset.get("ds", remote=remote) as ds:
    print(ds.get_local_copy())
"""


def test_concurrent_get_local_copy_from_four_processes(cache_dir: str, published, store_url) -> None:
    src, _, _ = published
    url, options = store_url
    import json

    procs = [
        subprocess.Popen([sys.executable, "-c", COPY_SCRIPT, url, json.dumps(options)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    paths = {o[0].strip() for o in outputs}
    assert len(paths) == 1
    copy = Path(paths.pop())
    assert {k: v[-1] for k, v in snapshot(copy).items()} == {k: v[-1] for k, v in snapshot(src).items()}
    assert [p for p in os.listdir(copy.parent) if p.startswith(".tmp")] == []


def test_corrupted_cached_file_is_detected_and_refetched(cache_dir: str, published) -> None:
    src, remote, _ = published
    with Dataset.get("ds", remote=remote) as ds:
        path = Path(ds.get_local_copy())
    victim = path / "train" / "01.bin"
    os.chmod(victim, 0o644)
    victim.write_bytes(b"rotten" + victim.read_bytes()[6:])
    with Dataset.get("ds", remote=remote) as ds:
        assert ds.get_local_copy() == str(path)
    assert victim.read_bytes() == (src / "train" / "01.bin").read_bytes()


def test_cache_eviction_keeps_what_is_held(cache_dir: str, tmp_path: Path, store_url) -> None:
    url, options = store_url
    remote = remote_arg(url, options)
    rng = random.Random(1)
    for name in ("a", "b"):
        write(tmp_path / name / "data.bin", rng.randbytes(3 * MiB))
        publish_dataset(tmp_path / name, url, options, name=name, tag=None)
    held = Dataset.get("a", remote=remote, cache_dir=cache_dir)
    a_path = held.get_local_copy()
    with Dataset.get("b", remote=remote, cache_dir=cache_dir) as b:
        b_path = b.get_local_copy()
    from datactl.remote.cache import Cache

    cache = Cache(cache_dir)
    freed = cache.prune(1 * MiB)
    assert os.path.isdir(a_path), "a copy held by a running process is never evicted"
    assert not os.path.isdir(b_path), "the released copy was evicted"
    assert freed > 2 * MiB
    held.close()
    cache.prune(0)
    assert not os.path.isdir(a_path)
    cache.close()


def test_offline_use_of_a_cached_version(cache_dir: str, tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    write(tmp_path / "src" / "x.txt", "hello\n")
    publish_dataset(tmp_path / "src", str(remote_dir), {})
    with Dataset.get("ds", "v1", remote=str(remote_dir)) as ds:
        path = ds.get_local_copy()
    os.rename(remote_dir, tmp_path / "gone")  # the remote is down
    with Dataset.get("ds", "v1", remote=str(remote_dir)) as ds:
        assert ds.get_local_copy() == path
        assert ds.read_bytes("x.txt") == b"hello\n"
    with pytest.raises(StoreNotFound, match="no datactl store at"):  # nothing answers there, and v2 was never fetched
        Dataset.get("ds", "v2", remote=str(remote_dir))


def test_reader_works_from_several_worker_processes(cache_dir: str, published) -> None:
    src, remote, _ = published
    reader = FileReader("ds", "v1", remote=remote, pattern="train/*")
    assert reader[1] == (src / reader.paths[1]).read_bytes()
    # spawn: each worker gets the reader pickled (its address, with the store's options) and opens the version itself.
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        got = pool.map(reader.__getitem__, range(len(reader)))
    assert len(got) == 20 and got == [(src / p).read_bytes() for p in reader.paths]


def test_reader_works_in_a_torch_dataloader(cache_dir: str, tmp_path: Path) -> None:
    import torch.utils.data as tud  # a test dependency (pyproject.toml), not one of datactl's

    src = tmp_path / "src"
    rng = random.Random(6)
    for i in range(12):
        write(src / f"{i:02d}.bin", rng.randbytes(rng.randint(100, 30_000)))
    publish_dataset(src, str(tmp_path / "remote"), {})
    reader = FileReader("ds", "v1", remote=str(tmp_path / "remote"))
    assert reader[0] == (src / reader.paths[0]).read_bytes()  # opened here: the workers must still open their own
    loader = tud.DataLoader(reader, num_workers=2, batch_size=None, multiprocessing_context="spawn")
    assert list(loader) == [(src / p).read_bytes() for p in reader.paths] and len(reader) == 12


def test_draft_from_a_parent_and_log_model(cache_dir: str, published, tmp_path: Path) -> None:
    src, remote, v1 = published
    draft = Dataset.create("ds", parents=[v1], remote=remote)
    assert "big.bin" in draft.list_files()
    draft.remove_files("test/*")
    write(tmp_path / "extra" / "new.txt", "new\n")
    draft.add_files(str(tmp_path / "extra"), dest="extra")
    draft.set_metadata({"cleaned": True})
    draft.commit("drop test split", tags=["v2"])
    draft.push()
    with Dataset.get("ds", "v2", remote=remote) as v2:
        assert v2.parents == [v1] and v2.metadata == {"cleaned": True}
        summary = v2.diff(v1).summary()
        assert summary["removed"] == 10 and summary["added"] == 1
        assert v2.read_bytes("extra/new.txt") == b"new\n"
        write(tmp_path / "model" / "weights.bin", os.urandom(1000))
        model = log_model(str(tmp_path / "model"), "clf", inputs=[v2], metadata={"acc": 0.91}, remote=remote)
        assert model.kind == "model" and model.inputs == [v2.id]
        up = model.lineage()
        assert up.ids("up") >= {v2.id, v1}
        assert {(e.source, e.target, e.type) for e in up.edges} >= {(v2.id, model.id, "input"), (v1, v2.id, "parent")}
        assert model.id in v2.lineage("down").ids("down")
        assert v2.lineage("up", depth=1).ids("up") == {v1}
        model.close()
    with Dataset.get("clf", kind="model", remote=remote) as m:
        assert m.read_bytes("weights.bin") == (tmp_path / "model" / "weights.bin").read_bytes()


def test_fsspec_and_pandas_read_any_version(cache_dir: str, published) -> None:
    fsspec = pytest.importorskip("fsspec")
    pd = pytest.importorskip("pandas")
    src, remote, _ = published
    options = {"remote": remote} if isinstance(remote, str) else {"remote": remote.url, "remote_options": remote.options}
    fs = fsspec.filesystem("datactl", **options)
    assert {e["name"] for e in fs.ls("ds@v1")} >= {"ds@v1/big.bin", "ds@v1/train", "ds@v1/labels.csv"}
    assert fs.info("ds@v1/big.bin")["size"] == 12 * MiB
    assert len(fs.glob("ds@v1/train/*.bin")) == 20
    assert fs.cat_file("ds@v1/big.bin", 100, 200) == (src / "big.bin").read_bytes()[100:200]
    df = pd.read_csv("datactl://ds@v1/labels.csv", storage_options=options)
    assert list(df.columns) == ["path", "label"] and len(df) == 30
