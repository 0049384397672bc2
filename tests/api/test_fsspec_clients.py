"""``datactl://`` read by the clients people use, and the read-only fsspec interface they call.

Every client here is a test-only extra (pyproject.toml ``test``); each test
skips when its client is not installed. The store is a local folder built
once for the module, so nothing leaves the machine; about 10 s in all (most
of it importing the clients).
"""

from __future__ import annotations

import multiprocessing
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import write
from datactl import Dataset
from datactl.core.errors import StoreNotFound

fsspec = pytest.importorskip("fsspec")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

ROWS = 120


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A dataset ``tab`` with tags v1 and v2 (v2 adds a partition), and a model, in a local store."""
    root = tmp_path_factory.mktemp("fsspec-clients")
    src = root / "src"
    frame = pd.DataFrame({"id": range(ROWS), "name": [f"row{i}" for i in range(ROWS)], "score": [i / 10 for i in range(ROWS)]})
    (src / "part").mkdir(parents=True)
    frame.iloc[:60].to_parquet(src / "part" / "p0.parquet", index=False)
    frame.iloc[60:].to_parquet(src / "part" / "p1.parquet", index=False)
    frame.to_csv(src / "table.csv", index=False)
    write(src / "deep" / "a" / "b" / "c.txt", "deep\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
        mp.setenv("DATACTL_CACHE_DIR", str(root / "cache"))
        url = str(root / "store")
        draft = Dataset.create("tab", remote=url)
        draft.add_files(str(src))
        v1 = draft.commit("v1", tags=["v1"])
        draft.push()
        frame.iloc[:10].to_parquet(src / "part" / "p2.parquet", index=False)
        draft = Dataset.create("tab", parents=[v1], remote=url)
        draft.add_files(str(src / "part"), dest="part")
        v2 = draft.commit("v2", tags=["v2"])
        draft.push()
        model = Dataset.create("clf", kind="model", remote=url)
        model.add_files(str(src / "table.csv"))
        model.commit("m")
        model.push()
    return {"url": url, "frame": frame, "v1": v1, "v2": v2}


@pytest.fixture
def options(store: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DATACTL_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    # a fresh filesystem object per test: fsspec caches instances by their options
    return {"remote": store["url"], "cache_dir": str(tmp_path / "cache"), "skip_instance_cache": True}


def fs_of(options: dict):
    return fsspec.filesystem("datactl", **options)


# -- the interface ---------------------------------------------------------------------------------


def test_the_store_root_lists_its_datasets(store: dict, options: dict) -> None:
    fs = fs_of(options)
    assert fs.ls("", detail=False) == ["tab"]
    assert fs.ls("datactl://", detail=True)[0]["type"] == "directory"
    assert fs.info("")["type"] == "directory"
    models = fsspec.filesystem("datactl", kind="model", **options)
    assert models.ls("", detail=False) == ["clf"]
    assert models.cat_file("clf/table.csv") == fs.cat_file("tab@v1/table.csv")


def test_versions_exist_and_are_folders(store: dict, options: dict) -> None:
    fs = fs_of(options)
    assert fs.exists("tab") and fs.exists("tab@v1") and fs.exists(f"tab@{store['v2'][:10]}")
    assert fs.isdir("tab@v1") and not fs.isfile("tab@v1")
    assert not fs.exists("tab@v9") and not fs.exists("nosuch") and not fs.exists("tab@v1/nosuch.csv")
    assert fs.isfile("tab@v1/table.csv")
    assert fs.info("tab@v2")["commit"] == store["v2"]
    with pytest.raises(FileNotFoundError, match="tab@v9"):
        fs.info("tab@v9/table.csv")


def test_info_modified_and_keys(store: dict, options: dict) -> None:
    fs = fs_of(options)
    info = fs.info("tab@v1/table.csv")
    assert info["type"] == "file" and info["size"] == len(store["frame"].to_csv(index=False).encode())
    with Dataset.get("tab", "v1", remote=store["url"], cache_dir=options["cache_dir"]) as v1:
        assert fs.modified("tab@v1/table.csv") == v1.created_at == fs.created("tab@v1/table.csv") == info["mtime"]
    assert fs.modified("tab@v1/table.csv").tzinfo is not None
    assert fs.modified("tab@v1/table.csv") <= datetime.now(timezone.utc)
    # the same bytes in two versions have the same key; other bytes another
    assert fs.ukey("tab@v1/part/p0.parquet") == fs.ukey("tab@v2/part/p0.parquet") == info_digest(fs, "tab@v2/part/p0.parquet")
    assert fs.ukey("tab@v1/part/p0.parquet") != fs.ukey("tab@v1/part/p1.parquet")
    assert fs.checksum("tab@v1/table.csv") == fs.checksum("tab@v2/table.csv") != fs.checksum("tab@v2/part/p2.parquet")


def info_digest(fs, path: str) -> str:
    return fs.info(path)["digest"]


def test_find_walk_and_glob(store: dict, options: dict) -> None:
    fs = fs_of(options)
    everything = ["tab@v1/deep/a/b/c.txt", "tab@v1/part/p0.parquet", "tab@v1/part/p1.parquet", "tab@v1/table.csv"]
    assert fs.find("tab@v1") == everything
    assert fs.find("datactl://tab@v1/part") == everything[1:3]
    assert fs.find("tab@v1", maxdepth=1) == ["tab@v1/table.csv"]
    assert fs.find("tab@v1", maxdepth=2, withdirs=True) == ["tab@v1", "tab@v1/deep", "tab@v1/deep/a", "tab@v1/part", *everything[1:]]
    assert set(fs.find("tab@v1", detail=True)) == set(everything)
    assert fs.glob("tab@v2/part/*.parquet") == ["tab@v2/part/p0.parquet", "tab@v2/part/p1.parquet", "tab@v2/part/p2.parquet"]
    assert fs.glob("tab@v1/**/*.txt") == ["tab@v1/deep/a/b/c.txt"]
    assert fs.du("tab@v1/part") == sum(fs.size(p) for p in everything[1:3])
    assert fs.find("tab@v1/table.csv") == ["tab@v1/table.csv"]
    assert fs.find("tab@v1/nosuch") == []


def test_reads_are_read_only_and_ranged(store: dict, options: dict) -> None:
    fs = fs_of(options)
    csv = store["frame"].to_csv(index=False).encode()
    assert fs.cat_file("tab@v1/table.csv", 5, 25) == csv[5:25]
    assert fs.cat_file("tab@v1/table.csv", -10) == csv[-10:]
    with fs.open("tab@v1/table.csv") as f:
        f.seek(7)
        assert f.read(9) == csv[7:16]
    with pytest.raises(PermissionError):
        fs.open("tab@v1/new.csv", "wb")


def test_a_store_that_is_not_there_is_an_error_not_an_empty_listing(tmp_path: Path, options: dict) -> None:
    fs = fs_of({**options, "remote": str(tmp_path / "typo")})
    with pytest.raises(StoreNotFound):
        fs.ls("")
    with pytest.raises(StoreNotFound):
        fs.exists("tab@v1")


# -- the clients -------------------------------------------------------------------------------------


def test_pandas(store: dict, options: dict) -> None:
    so = {"remote": store["url"], "cache_dir": options["cache_dir"]}
    assert pd.read_csv("datactl://tab@v1/table.csv", storage_options=so).equals(store["frame"])
    assert pd.read_parquet("datactl://tab@v1/part", storage_options=so).sort_values("id").reset_index(drop=True).equals(store["frame"])
    assert len(pd.read_parquet("datactl://tab@v2/part", storage_options=so)) == ROWS + 10


def test_pyarrow_dataset(store: dict, options: dict) -> None:
    import pyarrow.dataset as pads
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs = fs_of(options)
    table = pads.dataset("tab@v2/part", filesystem=fs, format="parquet").to_table()
    assert table.num_rows == ROWS + 10
    wrapped = pads.dataset("tab@v1/part", filesystem=PyFileSystem(FSSpecHandler(fs)), format="parquet")
    assert sorted(wrapped.to_table().column("id").to_pylist()) == list(range(ROWS))


def test_dask(store: dict, options: dict) -> None:
    dd = pytest.importorskip("dask.dataframe")
    so = {"remote": store["url"], "cache_dir": options["cache_dir"]}
    df = dd.read_parquet("datactl://tab@v1/part", storage_options=so)
    assert df.npartitions >= 1 and int(df["id"].sum().compute()) == sum(range(ROWS))
    csv = dd.read_csv("datactl://tab@v1/*.csv", storage_options=so)
    assert len(csv.compute(scheduler="synchronous")) == ROWS


def test_duckdb(store: dict, options: dict) -> None:
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    try:
        con.register_filesystem(fs_of(options))
        assert con.execute("SELECT count(*), sum(id) FROM read_parquet('datactl://tab@v1/part/*.parquet')").fetchone() == (ROWS, sum(range(ROWS)))
        assert con.execute("SELECT count(*) FROM read_csv('datactl://tab@v2/table.csv')").fetchone() == (ROWS,)
        assert con.execute("SELECT count(*) FROM 'datactl://tab@v2/part/p2.parquet'").fetchone() == (10,)
    finally:
        con.close()


def test_polars(store: dict, options: dict) -> None:
    """polars reads only its own cloud schemes natively: an fsspec file, or a pyarrow dataset over the filesystem."""
    pl = pytest.importorskip("polars")
    import pyarrow.dataset as pads

    with fsspec.open("datactl://tab@v1/part/p0.parquet", **options) as f:
        assert pl.read_parquet(f).height == 60
    with fsspec.open("datactl://tab@v1/table.csv", **options) as f:
        assert pl.read_csv(f)["id"].to_list() == list(range(ROWS))
    lazy = pl.scan_pyarrow_dataset(pads.dataset("tab@v2/part", filesystem=fs_of(options), format="parquet"))
    assert lazy.select(pl.len()).collect().item() == ROWS + 10
    assert pl.read_parquet("datactl://tab@v1/part/p1.parquet", use_pyarrow=True, storage_options=options).height == 60


def test_hugging_face_datasets(store: dict, options: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    so = {"remote": store["url"], "cache_dir": options["cache_dir"]}
    ds = datasets.load_dataset(
        "parquet", data_files="datactl://tab@v2/part/*.parquet", storage_options=so, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert ds.num_rows == ROWS + 10
    csv = datasets.load_dataset("csv", data_files={"train": "datactl://tab@v1/table.csv"}, storage_options=so, cache_dir=str(tmp_path / "hf"))
    assert csv["train"]["name"][:2] == ["row0", "row1"]


def _count_rows(url: str, cache_dir: str) -> int:
    return len(pd.read_parquet("datactl://tab@v1/part/p0.parquet", storage_options={"remote": url, "cache_dir": cache_dir}))


def test_worker_processes_read_datactl_urls(store: dict, options: dict) -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.starmap(_count_rows, [(store["url"], options["cache_dir"])] * 2) == [60, 60]
    assert os.path.isdir(options["cache_dir"])
