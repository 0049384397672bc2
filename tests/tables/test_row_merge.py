"""``datactl merge`` of a table both sides changed, with a key in datactl.toml: rows merge; real conflicts are a table to edit.

Two workspaces share a local remote; A pushes its edit, B commits its own and
merges A's. About 5 s in all.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Cli, write
from datactl.remote.locate import add_remote
from datactl.workspace import sync
from datactl.workspace.merge import merge_state
from datactl.workspace.workspace import Workspace

BASE_CSV = 'id,label,note\n1,cat,"a, b"\n2,dog,plain\n3,cow,"multi\nline"\n4,emu,x\n'


def commit_all(ws: Workspace, message: str) -> str:
    ws.add([ws.root])
    return ws.commit(message)


def set_key(ws: Workspace, path: str, key: str) -> None:
    toml = Path(ws.root) / "datactl.toml"
    toml.write_text(toml.read_text() + f'\n[tables."{path}"]\nkey = ["{key}"]\n')


@pytest.fixture
def sides(tmp_path: Path):
    """Two workspaces whose version of each file starts from ``files``; call it to set them up."""
    opened: list[Workspace] = []

    def make(files: dict[str, str | bytes], key: dict[str, str]) -> tuple[Workspace, Workspace]:
        a = Workspace.init(str(tmp_path / "a"), name="ds")
        add_remote(a.root, "origin", str(tmp_path / "remote"), {})
        for name, content in files.items():
            write(Path(a.root) / name, content)
        commit_all(a, "base")
        sync.push(a)
        b = sync.clone(str(tmp_path / "remote"), "ds", str(tmp_path / "b"))
        opened.extend([a, b])
        for ws in (a, b):
            for path, k in key.items():
                set_key(ws, path, k)
        return a, b

    yield make
    for ws in opened:
        ws.close()


def test_one_sided_edits_inserts_and_deletes_merge_cleanly(cli: Cli, sides) -> None:
    a, b = sides({"labels.csv": BASE_CSV, "other.txt": "o"}, {"labels.csv": "id"})
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "labels.csv", 'id,label,note\n1,cat,"a, b"\n2,DOG,plain\n3,cow,"multi\nline"\n5,fox,from a\n')  # edit 2, drop 4, add 5
    commit_all(a, "a")
    sync.push(a)
    write(rb / "labels.csv", 'id,label,note\n1,cat,"a, b, c"\n2,dog,plain\n3,cow,"multi\nline"\n4,emu,x\n6,owl,from b\n')  # edit 1, add 6
    b_head = commit_all(b, "b")
    result = json.loads(cli("merge", "origin", "--json", cwd=rb).out)
    assert result["status"] == "merged" and result["conflicts"] == []
    assert (rb / "labels.csv").read_text() == 'id,label,note\n1,cat,"a, b, c"\n2,DOG,plain\n3,cow,"multi\nline"\n6,owl,from b\n5,fox,from a\n'
    assert b.repo.read_commit(result["commit"]).parents[0] == b_head and b.status().clean


def test_the_same_row_edited_both_ways_is_a_conflict_table_then_continue(cli: Cli, sides) -> None:
    a, b = sides({"labels.csv": BASE_CSV}, {"labels.csv": "id"})
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "labels.csv", BASE_CSV.replace("2,dog,plain", "2,wolf,plain").replace("4,emu,x", "4,emu,from a"))
    commit_all(a, "a")
    sync.push(a)
    write(rb / "labels.csv", BASE_CSV.replace("2,dog,plain", "2,hound,plain").replace("1,cat", "1,lynx"))
    b_head = commit_all(b, "b")
    res = cli("merge", "origin", "--json", ok=False, cwd=rb)
    assert res.code == 1
    conflicts = json.loads(res.out)["conflicts"]
    assert conflicts == [{"path": "labels.csv", "reason": "1 row(s) changed differently on both sides (key id)", "sidecar": "labels.csv.conflicts.csv"}]
    # Everything that merged is in the file; the conflicting row keeps ours; both sides are in the conflict table.
    assert (rb / "labels.csv").read_text() == BASE_CSV.replace("2,dog,plain", "2,hound,plain").replace("1,cat", "1,lynx").replace("4,emu,x", "4,emu,from a")
    table = (rb / "labels.csv.conflicts.csv").read_text()
    assert table == "_side,id,label,note\nours,2,hound,plain\ntheirs,2,wolf,plain\n"
    assert b.head == b_head and merge_state(b) is not None
    shown = cli("merge", "origin", ok=False, cwd=rb)
    assert shown.code == 2 and "in progress" in shown.err
    write(rb / "labels.csv.conflicts.csv", "_side,id,label,note\ntheirs,2,wolf (checked),plain\nours,2,hound,plain\n")
    twice = cli("merge", "--continue", ok=False, cwd=rb)
    assert twice.code == 2 and "id='2' still has more than one row" in twice.err and "hint:" in twice.err
    write(rb / "labels.csv.conflicts.csv", "_side,id,label,note\ntheirs,2,wolf (checked),plain\n")
    done = json.loads(cli("merge", "--continue", "--json", cwd=rb).out)
    assert done["status"] == "merged" and not (rb / "labels.csv.conflicts.csv").exists()
    assert (rb / "labels.csv").read_text() == 'id,label,note\n1,lynx,"a, b"\n2,wolf (checked),plain\n3,cow,"multi\nline"\n4,emu,from a\n'
    assert b.status().clean


def test_removed_here_changed_there_and_abort(cli: Cli, sides) -> None:
    a, b = sides({"rows.jsonl": '{"k": 1, "v": "a"}\n{"k": 2, "v": "b"}\n'}, {"rows.jsonl": "k"})
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "rows.jsonl", '{"k": 1, "v": "A"}\n{"k": 2, "v": "b"}\n')
    commit_all(a, "a")
    sync.push(a)
    write(rb / "rows.jsonl", '{"k": 2, "v": "b"}\n{"k": 3, "v": "c"}\n')
    commit_all(b, "b")
    res = cli("merge", "origin", "--json", ok=False, cwd=rb)
    assert json.loads(res.out)["conflicts"][0]["sidecar"] == "rows.jsonl.conflicts.jsonl"
    lines = [json.loads(x) for x in (rb / "rows.jsonl.conflicts.jsonl").read_text().splitlines()]
    assert lines == [{"_side": "ours (deleted)", "k": 1}, {"_side": "theirs", "k": 1, "v": "A"}]
    cli("merge", "--abort", cwd=rb)
    assert not (rb / "rows.jsonl.conflicts.jsonl").exists()
    assert (rb / "rows.jsonl").read_text() == '{"k": 2, "v": "b"}\n{"k": 3, "v": "c"}\n' and b.status().clean


def parquet(table: dict) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(table), buf, compression="gzip")
    return buf.getvalue()


def test_parquet_rows_merge_keeping_schema_and_compression(cli: Cli, sides) -> None:
    a, b = sides({"t.parquet": parquet({"id": [1, 2, 3], "score": [0.5, 0.6, 0.7]})}, {"t.parquet": "id"})
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "t.parquet", parquet({"id": [1, 2, 3], "score": [0.5, 0.9, 0.7]}))
    commit_all(a, "a")
    sync.push(a)
    write(rb / "t.parquet", parquet({"id": [1, 2, 3, 4], "score": [0.1, 0.6, 0.7, 0.8]}))
    commit_all(b, "b")
    assert json.loads(cli("merge", "origin", "--json", cwd=rb).out)["status"] == "merged"
    f = pq.ParquetFile(rb / "t.parquet")
    assert f.read().to_pydict() == {"id": [1, 2, 3, 4], "score": [0.1, 0.9, 0.7, 0.8]}
    assert f.schema_arrow.field("id").type == pa.int64() and f.metadata.row_group(0).column(0).compression == "GZIP"


def test_without_a_key_or_with_a_duplicate_key_the_file_stays_a_whole_file_conflict(cli: Cli, sides) -> None:
    a, b = sides({"plain.csv": "id,v\n1,a\n", "dup.csv": "id,v\n1,a\n"}, {"dup.csv": "id"})
    ra, rb = Path(a.root), Path(b.root)
    write(ra / "plain.csv", "id,v\n1,a\n2,from a\n")
    write(ra / "dup.csv", "id,v\n1,a\n1,again\n")
    commit_all(a, "a")
    sync.push(a)
    write(rb / "plain.csv", "id,v\n1,a\n3,from b\n")
    write(rb / "dup.csv", "id,v\n1,b\n")
    commit_all(b, "b")
    conflicts = {c["path"]: c for c in json.loads(cli("merge", "origin", "--json", ok=False, cwd=rb).out)["conflicts"]}
    assert conflicts["plain.csv"] == {"path": "plain.csv", "reason": "changed on both sides", "sidecar": "plain.csv.theirs"}
    assert conflicts["dup.csv"]["sidecar"] == "dup.csv.theirs"
    assert "rows not merged" in conflicts["dup.csv"]["reason"] and "the key (id) is not unique" in conflicts["dup.csv"]["reason"]
