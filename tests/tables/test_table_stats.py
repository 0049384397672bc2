"""``datactl stats`` (per-table column statistics, cached by digest), ``diff --stats``, row diffs on an S3 remote, and a
property test of the positional diff against a plain reading of both files. About 5 s in all (the S3 server included).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli, write
from datactl.format.objects import FILE, TreeEntry
from datactl.format.storeconfig import ChunkerParams, StoreConfig
from datactl.remote.locate import add_remote
from datactl.store.chunker import Chunker
from datactl.store.filedata import store_stream
from datactl.store.index import ObjectIndex
from datactl.store.reader import ObjectReader
from datactl.store.repository import Repository, read_store_config, write_store_config
from datactl.tables.formats import table_format
from datactl.tables.positional import positional_diff
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from storage_backends import LocalBackend


@pytest.fixture(scope="module")
def stats_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("stats")
    ws = Workspace.init(str(root), name="st")
    rows = [["id", "label", "score", "comment"]]
    rows += [[str(i), "cat" if i % 4 else "dog", f"{i / 10:.1f}", "" if i % 10 == 0 else f"c{i}"] for i in range(100)]
    write(root / "train.csv", "".join(",".join(r) + "\n" for r in rows))
    write(root / "img" / "a.jpg", b"\xff" * 1000)
    write(root / "img" / "b.jpg", b"\xff" * 3000)
    write(root / "img" / "c.png", b"\x89" * 10)
    ws.add([str(root)])
    v1 = ws.commit("v1")
    rows2 = rows[:1] + [[r[0], "dog" if int(r[0]) % 2 else r[1], r[2], "" if int(r[0]) % 5 == 0 else r[3]] for r in rows[1:]]
    write(root / "train.csv", "".join(",".join(r) + "\n" for r in rows2))
    ws.add([str(root)])
    v2 = ws.commit("v2")
    ws.close()
    return root, v1, v2


def test_stats_of_a_table_and_of_other_files(cli: Cli, stats_ws) -> None:
    root, v1, _ = stats_ws
    s = json.loads(cli("stats", v1, "--json", cwd=root).out)
    (t,) = s["tables"]
    assert (t["path"], t["format"], t["rows"]) == ("train.csv", "csv", 100)
    cols = {c["name"]: c for c in t["columns"]}
    assert cols["id"]["type"] == "BIGINT" and (cols["id"]["min"], cols["id"]["max"], cols["id"]["mean"]) == (0, 99, 49.5)
    assert cols["score"]["type"] == "DOUBLE" and cols["score"]["max"] == 9.9
    assert cols["label"]["top"] == [["cat", 75], ["dog", 25]] and cols["label"]["distinct"] == 2
    assert cols["comment"]["nulls"] == 10
    assert s["files"]["files"] == 3 and s["files"]["by_type"] == {".jpg": [2, 4000], ".png": [1, 10]}
    assert s["files"]["sizes"] == {"min": 10, "median": 1000, "p90": 3000, "max": 3000}
    shown = cli("stats", v1, "train.csv", cwd=root).out
    assert "train.csv: csv, 100 rows, 4 columns" in shown and "cat:75, dog:25" in shown
    assert "files" in cli("du", v1, cwd=root).out  # du still gives sizes


def test_stats_are_cached_by_digest(cli: Cli, stats_ws) -> None:
    root, v1, _ = stats_ws
    cli("stats", v1, "train.csv", cwd=root)
    (cached,) = [p for p in (root / ".datactl" / "tables").iterdir() if p.name.endswith(".csv.json")][:1]
    entry = json.loads(cached.read_text())
    entry["stats"]["rows"] = 12345  # what the cache says is what a second call reports: nothing is read again
    cached.write_text(json.dumps(entry))
    assert json.loads(cli("stats", v1, "train.csv", "--json", cwd=root).out)["tables"][0]["rows"] == 12345
    cached.write_text("damaged")  # a damaged entry is computed again
    assert json.loads(cli("stats", v1, "train.csv", "--json", cwd=root).out)["tables"][0]["rows"] == 100


def test_diff_stats_shows_how_the_numbers_moved(cli: Cli, stats_ws) -> None:
    root, v1, v2 = stats_ws
    (d,) = json.loads(cli("diff", v1, v2, "--stats", "--json", cwd=root).out)
    assert d["path"] == "train.csv" and d["rows"] == [100, 100]
    cols = {c["name"]: c for c in d["columns"]}
    assert cols["comment"]["null_rate"] == [0.1, 0.2]
    assert cols["label"]["top"] == [[["cat", 75], ["dog", 25]], [["dog", 75], ["cat", 25]]]
    shown = cli("diff", v1, v2, "--stats", cwd=root).out
    assert "comment" in shown and "10.0% -> 20.0%" in shown and "cat:75, dog:25 -> dog:75, cat:25" in shown


def test_diff_stats_gates_on_how_far_a_null_rate_moved(cli: Cli, stats_ws) -> None:
    # The comment column's nulls went from 10% to 20% of the rows: a 10-point move.
    root, v1, v2 = stats_ws
    r = cli("diff", v1, v2, "--stats", "--max-null-rate-change", "5%", ok=False, cwd=root)
    assert r.code == 1 and "limit exceeded: train.csv: column 'comment' nulls 10.00% -> 20.00%, moved 10.00%; limit 5.00%" in r.out
    gate = json.loads(cli("diff", v1, v2, "--stats", "--max-null-rate-change", "0.05", "--json", ok=False, cwd=root).out)
    assert [b.split(":")[0] for b in gate["breaches"]] == ["train.csv"] and gate["tables"][0]["path"] == "train.csv"
    assert cli("diff", v1, v2, "--stats", "--max-null-rate-change", "15%", cwd=root).code == 0
    for bad in ("lots", "150%"):
        r = cli("diff", v1, v2, "--stats", "--max-null-rate-change", bad, ok=False, cwd=root)
        assert r.code == 2 and "--max-null-rate-change" in r.err
    r = cli("diff", v1, v2, "--max-null-rate-change", "5%", ok=False, cwd=root)
    assert r.code == 2 and "goes with --stats" in r.err


def test_row_diff_on_an_s3_remote_reads_only_changed_chunks(cli: Cli, tmp_path: Path, s3_server: str) -> None:
    from servers import new_s3_bucket

    url = f"s3://{new_s3_bucket(s3_server)}/store"
    ws = Workspace.init(str(tmp_path / "w"), name="s3t", store_config=StoreConfig(chunker=ChunkerParams(min_size=256, avg_size=1024, max_size=4096)))
    add_remote(ws.root, "origin", url, {"endpoint_url": s3_server})
    rows = [f"{i},value {i}" for i in range(2000)]
    write(Path(ws.root) / "big.csv", "id,v\n" + "\n".join(rows) + "\n")
    ws.add([ws.root])
    v1 = ws.commit("v1")
    rows[1500] = "1500,edited"
    write(Path(ws.root) / "big.csv", "id,v\n" + "\n".join(rows) + "\n")
    ws.add([ws.root])
    v2 = ws.commit("v2")
    sync.push(ws)
    ws.close()
    out = json.loads(cli("diff", v1, v2, "big.csv", "--remote", "origin", "--json", cwd=Path(ws.root)).out)
    assert out["counts"]["changed"] == 1 and out["rows"][0]["new"] == {"id": "1500", "v": "edited"}
    assert 0 < out["bytes_read"] < out["new_size"] / 10


# -- the positional diff against a plain reading of both files --------------------------------------------

TINY = ChunkerParams(avg_size=256, min_size=64, max_size=1024)
CELL = st.text(alphabet='ab,"\n ', max_size=12)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny")
    backend = LocalBackend(str(root / "store"))
    write_store_config(backend, StoreConfig(chunker=TINY))
    repo = Repository(backend, ObjectIndex(str(root / "index.db")), read_store_config(backend), str(root / "store" / "tmp"), workers=2)
    yield repo
    repo.close()


def encode(rows: list[list[str]]) -> tuple[bytes, list[int]]:
    """The CSV bytes (header a,b) and each row's offset."""
    out, offsets = io.StringIO(), []
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["a", "b"])
    for r in rows:
        offsets.append(len(out.getvalue().encode()))
        w.writerow(r)
    return out.getvalue().encode(), offsets


def store(repo: Repository, data: bytes, name: str) -> TreeEntry:
    c = store_stream(repo, Chunker(repo.config.chunker), io.BytesIO(data))
    return TreeEntry(name, FILE, 0o644, c.size, c.digest, c.chunks, c.chunklist)


@st.composite
def edited(draw):
    rows = draw(st.lists(st.lists(CELL, min_size=2, max_size=2), max_size=80))
    new = [list(r) for r in rows]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "delete", "change", "move"]))
        i = draw(st.integers(0, max(len(new) - 1, 0)))
        if op == "insert" or not new:
            new.insert(i, draw(st.lists(CELL, min_size=2, max_size=2)))
        elif op == "delete":
            del new[i]
        elif op == "change":
            new[i][draw(st.integers(0, 1))] = draw(CELL)
        else:
            new.insert(draw(st.integers(0, len(new) - 1)), new.pop(i))
    return rows, new


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edited())
def test_positional_diff_accounts_for_every_row(tiny_store, case) -> None:
    """Every row the diff names is at the place it names, and old rows minus the removed ones plus the added ones are the new
    rows; no change, no difference. (A plain reading: csv over both whole files.)"""
    old_rows, new_rows = case
    (old_bytes, old_at), (new_bytes, new_at) = encode(old_rows), encode(new_rows)
    old, new = store(tiny_store, old_bytes, "o.csv"), store(tiny_store, new_bytes, "n.csv")
    tiny_store.flush()
    reader = ObjectReader(tiny_store.backend, tiny_store.index)
    fmt = table_format("t.csv")
    assert fmt is not None
    d = positional_diff(reader, old, new, "t.csv", fmt, ("old", "new"))
    by_old = {at: tuple(r) for at, r in zip(old_at, old_rows)}
    by_new = {at: tuple(r) for at, r in zip(new_at, new_rows)}
    left, right = Counter(by_old.values()), Counter(by_new.values())
    for c in d.rows:
        if c.old_at is not None:
            assert by_old[c.old_at] == (c.old["a"], c.old["b"])
            left[by_old[c.old_at]] -= 1
        if c.new_at is not None:
            assert by_new[c.new_at] == (c.new["a"], c.new["b"])
            right[by_new[c.new_at]] -= 1
    assert +left == +right  # the rows the diff leaves alone are the same on both sides
    if old_rows == new_rows:
        assert not d.changed
    reader.close()


def test_stats_of_json_lines_and_parquet(cli: Cli, stats_ws) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, _, _ = stats_ws
    write(root / "more" / "r.jsonl", "".join(json.dumps({"k": i, "tag": "x" if i % 3 else None}) + "\n" for i in range(30)))
    pq.write_table(pa.table({"k": list(range(10)), "f": [i / 4 for i in range(10)]}), root / "more" / "p.parquet")
    with Workspace(str(root)) as ws:
        ws.add([str(root / "more")])
        v3 = ws.commit("v3")
    tables = {t["path"]: t for t in json.loads(cli("stats", v3, "more", "--json", cwd=root).out)["tables"]}
    j = {c["name"]: c for c in tables["more/r.jsonl"]["columns"]}
    assert tables["more/r.jsonl"]["rows"] == 30 and j["tag"]["nulls"] == 10 and j["tag"]["top"] == [["x", 20]]
    p = {c["name"]: c for c in tables["more/p.parquet"]["columns"]}
    assert (p["f"]["type"], p["f"]["min"], p["f"]["max"], p["f"]["mean"]) == ("DOUBLE", 0.0, 2.25, 1.125)


def test_stats_of_columns_named_like_the_engines_aliases(cli: Cli, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "named"
    ws = Workspace.init(str(root), name="named")
    pq.write_table(pa.table({"k": [1, 2, 2], "v": [None, 5, 5], "n": ["a", "a", "b"]}), root / "p.parquet")
    ws.add([str(root)])
    v1 = ws.commit("v1")
    ws.close()
    (t,) = json.loads(cli("stats", v1, "p.parquet", "--json", cwd=root).out)["tables"]
    cols = {c["name"]: c for c in t["columns"]}
    assert cols["v"]["top"] == [[5, 2]] and cols["n"]["top"] == [["a", 2], ["b", 1]] and cols["k"]["top"] == [[2, 2], [1, 1]]


def test_stats_of_a_table_added_as_external(cli: Cli, ws_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its bytes are read from the source folder, pinned and verified, as any other read of an external file."""
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    table = "id,label\n" + "".join(f"{i},{'cat' if i % 4 else 'dog'}\n" for i in range(100))
    write(tmp_path / "src" / "labels.csv", table)
    cli("init", "--name", "ext")
    cli("add", "--external", str(tmp_path / "src" / "labels.csv"))
    cli("commit", "-m", "v1")
    (tmp_path / "src" / "labels.csv").write_text(table.replace("cat", "cow"))  # the source changed after it was recorded
    r = cli("stats", "HEAD", "labels.csv", ok=False)
    assert r.code == 3 and "labels.csv in HEAD" in r.err and "its source file://" in r.err, r.err
    (tmp_path / "src" / "labels.csv").write_text(table)
    (t,) = json.loads(cli("stats", "HEAD", "labels.csv", "--json").out)["tables"]
    assert (t["path"], t["rows"]) == ("labels.csv", 100)
    assert {c["name"]: c["top"] for c in t["columns"]}["label"] == [["cat", 75], ["dog", 25]]
