"""Row-level diffs of CSV/TSV, JSON Lines and Parquet tables, as a user runs them (``datactl diff A B PATH``, the API).

One workspace with small chunks (1 KiB on average, so every table spans many
chunks) is built once for the module; each test commits the versions it
compares. About 4 s in all.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Cli
from datactl.api.tables import diff_table_versions, open_versions
from datactl.format.storeconfig import ChunkerParams, StoreConfig
from datactl.workspace.workspace import Workspace

SMALL_CHUNKS = StoreConfig(chunker=ChunkerParams(min_size=256, avg_size=1024, max_size=4096))


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def base_rows(n: int = 2000) -> list[list[str]]:
    """Rows with commas, quotes and newlines inside quoted cells."""
    rows = []
    for i in range(n):
        note = f'note {i}, with a comma' if i % 7 == 0 else (f'say "hi" {i}' if i % 11 == 0 else (f"two\nlines {i}" if i % 13 == 0 else f"plain {i}"))
        rows.append([str(i), f"name{i}", note, str(i % 5)])
    return rows


HEADER = ["id", "name", "note", "label"]


class Versions:
    """Commits files into the module's workspace and remembers the commit ids."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def commit(self, files: dict[str, str | bytes | None], message: str) -> str:
        paths = []
        for rel, content in files.items():
            p = self.root / rel
            if content is None:
                p.unlink()
            elif isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8", newline="")
            paths.append(str(p))
        with Workspace(str(self.root)) as ws:
            ws.add(paths)
            return ws.commit(message)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    root = tmp_path_factory.mktemp("tables")
    Workspace.init(str(root), name="tables", store_config=SMALL_CHUNKS).close()
    return Versions(root)


@pytest.fixture
def in_ws(versions: Versions, monkeypatch: pytest.MonkeyPatch) -> Versions:
    monkeypatch.chdir(versions.root)
    return versions


# -- CSV: positional ------------------------------------------------------------------------------


def test_edits_inserts_deletes_and_moves_by_position(in_ws: Versions, cli: Cli) -> None:
    rows = base_rows()
    v1 = in_ws.commit({"t.csv": csv_text(HEADER, rows)}, "v1")
    new = [list(r) for r in rows]
    new[13][2] = "edited\nacross lines"  # a quoted cell with a newline, edited
    new[900][1] = "renamed, quoted"
    new.insert(500, ["9001", "inserted", "x", "1"])
    del new[1501]  # was row 1500
    block = new[1700:1703]
    del new[1700:1703]
    new[200:200] = block  # three rows moved up
    v2 = in_ws.commit({"t.csv": csv_text(HEADER, new)}, "v2")
    d = diff_table_versions(v1, v2, "t.csv")
    assert (d.mode, d.counts) == ("positional", {"added": 1, "removed": 1, "changed": 2, "moved": 3})
    changed = {r.old["id"]: r for r in d.rows if r.kind == "changed"}
    assert changed["13"].cells == ("note",) and changed["13"].new["note"] == "edited\nacross lines"
    assert changed["900"].cells == ("name",) and changed["900"].old["name"] == "name900"
    assert [r.new["id"] for r in d.rows if r.kind == "added"] == ["9001"]
    assert [r.old["id"] for r in d.rows if r.kind == "removed"] == ["1500"]
    assert sorted(r.new["id"] for r in d.rows if r.kind == "moved") == ["1700", "1701", "1702"]
    old_bytes, new_bytes = csv_text(HEADER, rows).encode(), (in_ws.root / "t.csv").read_bytes()
    for r in d.rows:  # every position names the row it reports
        if r.new_at is not None:
            assert new_bytes[r.new_at :].startswith(r.new["id"].encode() + b",")
        if r.old_at is not None:
            assert old_bytes[r.old_at :].startswith(r.old["id"].encode() + b",")
    # Only the chunks around the changes were read, not the whole file.
    assert 0 < d.bytes_read < d.new_size / 2

    shown = cli("diff", v1, v2, "t.csv", cwd=in_ws.root).out
    assert "rows compared by position" in shown and "1 added, 1 removed, 2 changed, 3 moved" in shown
    assert "name: name900 -> renamed, quoted" in shown
    as_json = json.loads(cli("diff", v1, v2, "t.csv", "--json", "--limit", "2", cwd=in_ws.root).out)
    assert as_json["counts"]["moved"] == 3 and len(as_json["rows"]) == 2 and as_json["truncated"]
    assert cli("diff", v1, v2, "t.csv", "--exit-code", ok=False, cwd=in_ws.root).code == 1


def test_same_changes_by_key_and_the_frames(in_ws: Versions, cli: Cli) -> None:
    rows = base_rows(300)
    v1 = in_ws.commit({"k.csv": csv_text(HEADER, rows)}, "k1")
    new = [list(r) for r in rows]
    new[5][3] = "9"
    new.reverse()  # a reorder is no change by key
    new.append(["500", "new", "n", "0"])
    del new[0]  # id 299
    v2 = in_ws.commit({"k.csv": csv_text(HEADER, new)}, "k2")
    d = diff_table_versions(v1, v2, "k.csv", key=["id"])
    assert (d.mode, d.key, d.counts) == ("keyed", ("id",), {"added": 1, "removed": 1, "changed": 1, "moved": 0})
    assert [(r.kind, r.key) for r in d.rows] == [("removed", ("299",)), ("changed", ("5",)), ("added", ("500",))]  # keys are text in a CSV
    frame = d.to_pandas()
    assert list(frame["_change"]) == ["removed", "changed", "added"] and frame.loc[1, "label:old"] == "0" and frame.loc[1, "label"] == "9"
    assert d.to_arrow().num_rows == 3
    shown = cli("diff", v1, v2, "k.csv", "--key", "id", cwd=in_ws.root).out
    assert "rows matched by key (id)" in shown and "label: 0 -> 9" in shown


def test_configured_key_and_whole_diff_rows(in_ws: Versions, cli: Cli) -> None:
    v1 = in_ws.commit({"c.csv": "id,v\n1,a\n2,b\n", "other.txt": "x"}, "c1")
    v2 = in_ws.commit({"c.csv": "id,v\n2,B\n1,a\n", "other.txt": "y"}, "c2")
    (in_ws.root / "datactl.toml").write_text((in_ws.root / "datactl.toml").read_text() + '\n[tables."c.csv"]\nkey = ["id"]\n')
    shown = cli("diff", v1, v2, "--rows", cwd=in_ws.root).out
    assert "M  c.csv" in shown and "M  other.txt" in shown
    assert "c.csv: csv, rows matched by key (id)" in shown and "v: b -> B" in shown
    tables = json.loads(cli("diff", v1, v2, "--rows", "--json", cwd=in_ws.root).out)
    assert [t["path"] for t in tables] == ["c.csv"] and tables[0]["counts"]["changed"] == 1


def test_schema_changes(in_ws: Versions) -> None:
    v1 = in_ws.commit({"s.csv": "id,a,b\n1,x,y\n2,z,w\n"}, "s1")
    v2 = in_ws.commit({"s.csv": "id,a,c,d\n1,x,y,new\n2,Z,w,new\n"}, "s2")  # b renamed to c (same place), d added, one cell changed
    for key in (None, ["id"]):
        d = diff_table_versions(v1, v2, "s.csv", key=key)
        assert {(s.kind, s.column, s.old) for s in d.schema} == {("renamed", "c", "b"), ("added", "d", None)}
        assert d.counts["changed"] == 1 and d.rows[0].cells == ("a",)
    j1 = in_ws.commit({"s.jsonl": '{"id": 1, "n": 1}\n'}, "j1")
    j2 = in_ws.commit({"s.jsonl": '{"id": 1, "n": "1"}\n'}, "j2")
    d = diff_table_versions(j1, j2, "s.jsonl", key=["id"])
    assert [(s.kind, s.column, s.old, s.new) for s in d.schema] == [("type", "n", "BIGINT", "VARCHAR")]


def test_tsv_quoting_and_crlf(in_ws: Versions) -> None:
    rows = [[str(i), f"a\tb {i}" if i % 3 == 0 else f"v{i}"] for i in range(400)]
    text = csv_text(["id", "v"], rows, "\t").replace("\n", "\r\n")
    v1 = in_ws.commit({"t.tsv": text}, "tsv1")
    rows[250][1] = "changed"
    v2 = in_ws.commit({"t.tsv": csv_text(["id", "v"], rows, "\t").replace("\n", "\r\n")}, "tsv2")
    d = diff_table_versions(v1, v2, "t.tsv")
    assert d.counts == {"added": 0, "removed": 0, "changed": 1, "moved": 0}
    assert d.rows[0].old == {"id": "250", "v": "v250"} and d.rows[0].new["v"] == "changed"


def test_a_long_row_over_chunk_boundaries(in_ws: Versions) -> None:
    """A row several chunks long (a quoted cell with many newlines), edited at its end."""
    big = "\n".join(f"line {i}, quoted" for i in range(600))
    rows = [["1", "short"], ["2", big], ["3", "short"]]
    v1 = in_ws.commit({"long.csv": csv_text(["id", "v"], rows)}, "l1")
    rows[1][1] = big + " (edited)"
    v2 = in_ws.commit({"long.csv": csv_text(["id", "v"], rows)}, "l2")
    d = diff_table_versions(v1, v2, "long.csv")
    assert d.counts["changed"] == 1 and d.rows[0].old["id"] == "2" and d.rows[0].new["v"].endswith("(edited)")


def test_empty_and_missing_files(in_ws: Versions) -> None:
    v1 = in_ws.commit({"e.csv": ""}, "e1")
    v2 = in_ws.commit({"e.csv": "id,v\n1,a\n2,b\n"}, "e2")
    v3 = in_ws.commit({"e.csv": None}, "e3")
    assert diff_table_versions(v1, v2, "e.csv").counts["added"] == 2
    assert diff_table_versions(v1, v2, "e.csv", key=["id"]).counts["added"] == 2
    d = diff_table_versions(v2, v3, "e.csv")
    assert d.counts["removed"] == 2 and d.new_size == 0
    assert not diff_table_versions(v1, v1, "e.csv").changed


# -- JSON Lines and Parquet --------------------------------------------------------------------


def test_json_lines(in_ws: Versions) -> None:
    lines = [json.dumps({"id": i, "text": f"t {i}", "tags": [i % 3]}) for i in range(800)]
    v1 = in_ws.commit({"j.jsonl": "\n".join(lines) + "\n"}, "j1")
    lines[100] = json.dumps({"id": 100, "text": "changed", "tags": [1]})
    lines.insert(400, json.dumps({"id": 9000, "text": "new", "tags": []}))
    moved = lines.pop(700)
    lines.insert(10, moved)
    v2 = in_ws.commit({"j.jsonl": "\n".join(lines) + "\n"}, "j2")
    d = diff_table_versions(v1, v2, "j.jsonl")
    assert d.counts == {"added": 1, "removed": 0, "changed": 1, "moved": 1}
    changed = next(r for r in d.rows if r.kind == "changed")
    assert changed.cells == ("text",) and changed.old["text"] == "t 100"
    keyed = diff_table_versions(v1, v2, "j.jsonl", key=["id"])
    assert keyed.counts == {"added": 1, "removed": 0, "changed": 1, "moved": 0}


def parquet_bytes(ids: list[int], labels: list[str], compression: str = "zstd") -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "label": labels}), buf, compression=compression)
    return buf.getvalue()


def test_parquet_by_position_and_by_key(in_ws: Versions) -> None:
    ids = list(range(1000))
    labels = [f"l{i % 4}" for i in ids]
    v1 = in_ws.commit({"p.parquet": parquet_bytes(ids, labels)}, "p1")
    labels2 = list(labels)
    labels2[10] = "edited"
    ids2, labels2 = ids[:500] + [5000] + ids[500:], labels2[:500] + ["new"] + labels2[500:]
    v2 = in_ws.commit({"p.parquet": parquet_bytes(ids2, labels2)}, "p2")
    d = diff_table_versions(v1, v2, "p.parquet")
    assert (d.position, d.counts) == ("row", {"added": 1, "removed": 0, "changed": 1, "moved": 0})
    changed = next(r for r in d.rows if r.kind == "changed")
    assert (changed.old_at, changed.new_at, changed.cells, changed.new) == (10, 10, ("label",), {"id": 10, "label": "edited"})
    keyed = diff_table_versions(v1, v2, "p.parquet", key=["id"])
    assert [(r.kind, r.key) for r in keyed.rows] == [("changed", (10,)), ("added", (5000,))]


def test_external_table_by_position(in_ws: Versions, cli: Cli, tmp_path: Path) -> None:
    """A table added with add --external is diffed from its source (ranged reads, each chunk verified), stored or not on the other side.

    A local file keeps no old versions: v1 and v2 are recorded from two folders so that both stay readable, and v3
    (``update`` after an edit in place) makes v2's recorded bytes unreadable.
    """
    rows = base_rows(1500)
    new = [list(r) for r in rows]
    new[700][1] = "edited at the source"
    first, second = tmp_path / "a" / "ext.csv", tmp_path / "b" / "ext.csv"
    for f, content in ((first, rows), (second, new)):
        f.parent.mkdir()
        f.write_text(csv_text(HEADER, content), newline="")
    with Workspace(str(in_ws.root)) as ws:
        ws.add_external([str(first)])
        v1 = ws.commit("e1")
        ws.add_external([str(second)])
        v2 = ws.commit("e2")
    d = diff_table_versions(v1, v2, "ext.csv")
    assert (d.mode, d.counts) == ("positional", {"added": 0, "removed": 0, "changed": 1, "moved": 0})
    (row,) = d.rows
    assert row.old["id"] == "700" and row.cells == ("name",) and row.new["name"] == "edited at the source"
    assert second.read_bytes()[row.new_at :].startswith(b"700,")
    shown = cli("diff", v1, v2, "ext.csv", cwd=in_ws.root).out
    assert "0 added, 0 removed, 1 changed, 0 moved" in shown and "name: name700 -> edited at the source" in shown

    # Edited in place and updated: the new version reads; v2's bytes are gone from the source, which is an error naming
    # the file, never a diff of other bytes.
    new[1200][3] = "7"
    second.write_text(csv_text(HEADER, new), newline="")
    with Workspace(str(in_ws.root)) as ws:
        ws.update(["ext.csv"])
        v3 = ws.commit("e3")
    d = diff_table_versions(v1, v3, "ext.csv")
    assert d.counts["changed"] == 2 and [r.old["id"] for r in d.rows] == ["700", "1200"]
    r = cli("diff", v2, v3, "ext.csv", ok=False, cwd=in_ws.root)
    assert r.code == 3 and r.err.startswith("error: ext.csv in ") and f"its source file://{second}" in r.err, r.err

    # One side stored, the other external: the stored side from the store, the external one from its source.
    new[100][3] = "9"
    in_ws.root.joinpath("ext.csv").write_text(csv_text(HEADER, new), newline="")
    with Workspace(str(in_ws.root)) as ws:
        ws.add([str(in_ws.root / "ext.csv")])
        v4 = ws.commit("e4")
    with open_versions((v3, v4)) as v:
        assert [v.entry(side, "ext.csv").is_external for side in (0, 1)] == [True, False]  # type: ignore[union-attr]
    for a, b in ((v3, v4), (v4, v3)):
        d = diff_table_versions(a, b, "ext.csv")
        assert d.counts == {"added": 0, "removed": 0, "changed": 1, "moved": 0} and d.rows[0].old["id"] == "100"


# -- errors a user can hit --------------------------------------------------------------------------


def test_malformed_row_names_file_and_line(in_ws: Versions, cli: Cli) -> None:
    rows = base_rows(600)
    v1 = in_ws.commit({"m.csv": csv_text(HEADER, rows)}, "m1")
    text = csv_text(HEADER, rows)
    lines = text.split("\n")
    bad_line = next(i for i in range(300, 400) if "," in lines[i] and '"' not in lines[i]) + 1
    lines[bad_line - 1] += ",extra"
    v2 = in_ws.commit({"m.csv": "\n".join(lines)}, "m2")
    for extra in ([], ["--key", "id"]):
        r = cli("diff", v1, v2, "m.csv", *extra, ok=False, cwd=in_ws.root)
        assert r.code == 1 and "Traceback" not in r.err
        first = r.err.splitlines()[0]
        assert first.startswith("error: m.csv in ") and f"line {bad_line}" in first, r.err
        assert "hint:" in r.err


def test_duplicate_key_is_a_clear_error(in_ws: Versions, cli: Cli) -> None:
    v1 = in_ws.commit({"d.csv": "id,v\n1,a\n2,b\n"}, "d1")
    v2 = in_ws.commit({"d.csv": "id,v\n1,a\n1,c\n"}, "d2")
    r = cli("diff", v1, v2, "d.csv", "--key", "id", ok=False, cwd=in_ws.root)
    assert r.code == 1 and "the key (id) is not unique: id='1' is on 2 rows" in r.err and "hint:" in r.err
    r = cli("diff", v1, v2, "d.csv", "--key", "nope", ok=False, cwd=in_ws.root)
    assert r.code == 2 and "no column 'nope'" in r.err
    r = cli("diff", v1, v2, "notes.txt", ok=False, cwd=in_ws.root)
    assert r.code == 2 and "not a table" in r.err


def test_python_api_on_a_dataset(in_ws: Versions) -> None:
    from datactl.api.dataset import Dataset

    v1 = in_ws.commit({"api.csv": "id,v\n1,a\n2,b\n"}, "a1")
    v2 = in_ws.commit({"api.csv": "id,v\n1,a\n2,c\n3,d\n"}, "a2")
    store = str(in_ws.root / ".datactl" / "store")
    with Dataset.get("tables", version=v2, remote=store, cache_dir=str(in_ws.root.parent / "cache")) as ds:
        d = ds.diff(v1, "api.csv", key=["id"])
        assert d.counts == {"added": 1, "removed": 0, "changed": 1, "moved": 0}
        assert list(d.to_pandas()["id"]) == ["2", "3"]
        positional = ds.diff(v1, "api.csv")
        assert positional.counts["changed"] == 1 and positional.counts["added"] == 1
    assert os.path.isdir(store)
