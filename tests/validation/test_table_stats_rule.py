"""The ``table_stats`` validate rule: row bounds, columns, null rates and how they moved from the parent (or --base),
on a CSV and a Parquet file, through the CLI and the Python API, in a workspace and on an S3 remote read in place."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datactl
from conftest import Cli, write
from datactl.core.errors import ValidationFailed
from datactl.remote.locate import add_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace

SCHEMA = Path(__file__).parent.parent / "data" / "junit-10.xsd"


def _labels(rows: int, null_every: int | None = None) -> str:
    lines = ["id,label,score"]
    for i in range(rows):
        label = "" if null_every and i % null_every == 0 else ("cat" if i % 2 else "dog")
        lines.append(f"{i},{label},{i / 10}")
    return "\n".join(lines) + "\n"


def _scores(path: Path, rows: int, nulls: int) -> None:
    pq.write_table(pa.table({"k": list(range(rows)), "score": [None if i < nulls else i / 4 for i in range(rows)]}), path)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """v1: labels.csv (100 rows, no nulls) and scores.parquet (100 rows, no nulls); v2: labels.csv 95 rows with 5 empty
    labels (5.3%), scores.parquet with 10 null scores (10%), and a new table extra.csv."""
    root = tmp_path_factory.mktemp("tstats") / "ws"
    ws = Workspace.init(str(root), name="ds")
    write(root / "labels.csv", _labels(100))
    _scores(root / "scores.parquet", 100, 0)
    write(root / "notes.txt", "not a table\n")
    ws.add([str(root)])
    v1 = ws.commit("v1", tags=["v1"])
    write(root / "labels.csv", _labels(95, null_every=19))
    _scores(root / "scores.parquet", 100, 10)
    write(root / "extra.csv", "a,b\n1,2\n")
    ws.add([str(root)])
    v2 = ws.commit("v2", tags=["v2"])
    ws.close()
    return root, {"v1": v1, "v2": v2}


def _rules_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "rules.toml"
    write(path, '[[validate.rules]]\ntype = "table_stats"\n' + body + "\n")
    return str(path)


# -- drift against the parent ----------------------------------------------------------------


def test_a_null_rate_that_moved_beyond_the_limit_fails_and_within_it_passes(cli: Cli, versions, tmp_path: Path) -> None:
    root, _ = versions
    r = cli("validate", "v2", "--rules", _rules_file(tmp_path, 'max_null_rate_change = "2%"'), ok=False, cwd=root)
    assert r.code == 1, r.out
    assert "labels.csv: column label null rate 0.0% -> 5.3% (+5.3 points), limit 2%" in r.out
    assert "scores.parquet: column score null rate 0.0% -> 10.0% (+10.0 points), limit 2%" in r.out
    assert "extra.csv: new in this version" in r.out  # nothing to compare it with, and no failure for it
    r = cli("validate", "v2", "--rules", _rules_file(tmp_path, 'max_null_rate_change = "6%"'), ok=False, cwd=root)
    assert r.code == 1 and "scores.parquet: column score" in r.out and "labels.csv: column label" not in r.out
    assert cli("validate", "v2", "--rules", _rules_file(tmp_path, "max_null_rate_change = 0.2"), cwd=root).code == 0


def test_the_python_api_gives_the_findings_by_file_and_compares_with_a_chosen_base(versions) -> None:
    root, ids = versions
    rule = {"type": "table_stats", "glob": ["*.csv", "*.parquet"], "max_null_rate_change": "2%", "max_row_count_change": "10%"}
    report = datactl.validate("v2", rules=[rule], root=str(root))
    assert not report.ok and report.exit_code == 1
    (result,) = report.results
    found = {(f.path, f.message) for f in result.findings}
    assert found == {
        ("labels.csv", "column label null rate 0.0% -> 5.3% (+5.3 points), limit 2%"),
        ("scores.parquet", "column score null rate 0.0% -> 10.0% (+10.0 points), limit 2%"),
    }
    assert result.notes == [f"extra.csv: new in this version (not in parent {ids['v1'][:12]}): no statistics to compare with"]
    same = datactl.validate("v2", rules=[rule], root=str(root), base="v2")  # against itself nothing moved
    assert same.ok and same.results[0].notes == []
    assert datactl.validate(ids["v2"], rules=[rule], root=str(root), base=ids["v1"]).exit_code == 1


def test_a_renamed_table_is_compared_with_the_file_it_was_renamed_from(cli: Cli, tmp_path: Path) -> None:
    """Renames are those `datactl diff` finds (the same bytes under another path); a table renamed and changed is new."""
    root = tmp_path / "moved"
    ws = Workspace.init(str(root), name="moved")
    write(root / "labels.csv", _labels(100))
    ws.add([str(root)])
    v1 = ws.commit("v1", tags=["v1"])
    (root / "data").mkdir()
    (root / "labels.csv").rename(root / "data" / "labels.csv")
    ws.add([str(root)])
    v2 = ws.commit("v2", tags=["v2"])
    (root / "data" / "labels.csv").rename(root / "data" / "train.csv")
    write(root / "data" / "train.csv", _labels(95, null_every=19))
    ws.add([str(root)])
    ws.commit("v3", tags=["v3"])
    ws.close()
    rule = {"type": "table_stats", "max_null_rate_change": "2%", "max_row_count_change": 0}
    report = datactl.validate("v2", rules=[rule], root=str(root))
    assert report.ok and report.results[0].notes == [f"data/labels.csv: compared with labels.csv in parent {v1[:12]}, renamed"]
    r = cli("validate", "v2", "--rules", _rules_file(tmp_path, "max_row_count_change = 0"), cwd=root)
    assert "compared with labels.csv in parent" in r.out and "new in this version" not in r.out
    changed = datactl.validate("v3", rules=[rule], root=str(root))
    assert changed.ok and changed.results[0].notes == [f"data/train.csv: new in this version (not in parent {v2[:12]}): no statistics to compare with"]


def test_max_null_rate_for_every_column_or_by_column(versions) -> None:
    root, _ = versions
    every = datactl.validate("v2", rules=[{"type": "table_stats", "max_null_rate": "5%"}], root=str(root))
    found = sorted(f"{f.path}: {f.message}" for f in every.results[0].findings)
    assert found == [
        "labels.csv: column label null rate 5.3% (5 of 95 rows), limit 5%",
        "scores.parquet: column score null rate 10.0% (10 of 100 rows), limit 5%",
    ]
    by_column = datactl.validate("v2", rules=[{"type": "table_stats", "glob": "*.csv", "max_null_rate": {"label": "6%"}}], root=str(root))
    assert by_column.ok  # extra.csv has no label column: the limit applies where the column is
    misspelt = datactl.validate("v2", rules=[{"type": "table_stats", "max_null_rate": {"lable": "6%"}}], root=str(root))
    assert [f.message for f in misspelt.results[0].findings] == ["max_null_rate names column lable, which no table matched here has"]


def test_row_bounds_and_how_far_the_row_count_may_move(versions) -> None:
    root, _ = versions

    def findings(**settings) -> list[str]:
        report = datactl.validate("v2", rules=[{"type": "table_stats", "glob": "/labels.csv", **settings}], root=str(root))
        return [f"{f.path}: {f.message}" for r in report.results for f in r.findings]

    assert findings(min_rows=96) == ["labels.csv: the row count is 95, below the minimum 96"]
    assert findings(max_rows=90) == ["labels.csv: the row count is 95, above the maximum 90"]
    assert findings(min_rows=95, max_rows=95) == []
    assert findings(max_row_count_change=4) == ["labels.csv: row count 100 -> 95 (-5, -5.0%), limit 4 rows"]
    assert findings(max_row_count_change="4%") == ["labels.csv: row count 100 -> 95 (-5, -5.0%), limit 4%"]
    assert findings(max_row_count_change=5) == findings(max_row_count_change="5%") == []


def test_a_required_column_that_is_missing(versions) -> None:
    root, _ = versions
    report = datactl.validate("v2", rules=[{"type": "table_stats", "glob": "/labels.csv", "columns": ["id", "label", "weight"]}], root=str(root))
    assert [f"{f.path}: {f.message}" for f in report.results[0].findings] == ["labels.csv: column weight is missing (columns: id, label, score)"]


def test_a_version_without_a_parent_has_nothing_to_compare(cli: Cli, versions, tmp_path: Path) -> None:
    root, ids = versions
    rules = _rules_file(tmp_path, 'max_null_rate_change = "2%"\nmax_row_count_change = 0')
    r = cli("validate", "v1", "--rules", rules, cwd=root)
    assert r.code == 0 and f"{ids['v1'][:12]} has no parent: no statistics to compare with" in r.out
    note = f"{ids['v1'][:12]} has no parent: no statistics to compare with"
    report = json.loads(cli("validate", "v1", "--rules", rules, "--json", cwd=root).out)
    assert report["ok"] and report["rules"][0]["notes"] == [note]
    junit = cli("validate", "v1", "--rules", rules, "--format", "junit", cwd=root).out
    lxml = pytest.importorskip("lxml.etree")
    doc = lxml.fromstring(junit.encode())
    assert lxml.XMLSchema(lxml.parse(str(SCHEMA))).validate(doc) and doc.find(".//system-out").text == f"note: {note}"
    assert f"::notice title=datactl validate%3A table_stats::{note}" in cli("validate", "v1", "--rules", rules, "--format", "github", cwd=root).out


def test_known_statistics_are_not_read_again(versions) -> None:
    root, _ = versions
    rule = {"type": "table_stats", "max_null_rate_change": "50%", "min_rows": 1}
    datactl.validate("v2", rules=[rule], root=str(root))
    again = datactl.validate("v2", rules=[rule], root=str(root))
    assert again.ok and again.read["data_bytes"] == 0 and again.results[0].files_read == 0


# -- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, says",
    [
        ('max_null_rate = "lots"', "max_null_rate must be a fraction"),
        ("max_null_rate = { label = 2 }", "max_null_rate for column 'label' must be a fraction"),
        ('max_null_rate_change = "150%"', "max_null_rate_change must be a fraction"),
        ('max_row_count_change = "ten"', "max_row_count_change must be a number of rows or a percentage"),
        ("max_row_count_change = -3", "max_row_count_change must be a number of rows or a percentage"),
        ("min_rows = 10\nmax_rows = 5", "min_rows (10) is above max_rows (5)"),
        ('columns = "id"\nmax_null_rate_chnage = "2%"', "unknown setting(s) max_null_rate_chnage"),
        ('glob = "*.csv"', "needs min_rows, max_rows, columns, max_null_rate, max_null_rate_change or max_row_count_change"),
    ],
)
def test_bad_settings_are_a_one_line_configuration_error(cli: Cli, versions, tmp_path: Path, body: str, says: str) -> None:
    root, _ = versions
    r = cli("validate", "v2", "--rules", _rules_file(tmp_path, body), ok=False, cwd=root)
    assert r.code == 2 and says in r.err, r.err
    assert r.err.startswith("error: rule 'table_stats") and len([ln for ln in r.err.splitlines() if ln.startswith("error:")]) == 1
    assert "Traceback" not in r.err


def test_without_duckdb_the_rule_names_the_pip_command(cli: Cli, versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = versions
    monkeypatch.setitem(sys.modules, "duckdb", None)  # as if the tables extra were not installed
    r = cli("validate", "v2", "--rules", _rules_file(tmp_path, "min_rows = 1"), ok=False, cwd=root)
    assert r.code == 2 and "needs duckdb, which is not installed" in r.err and "pip install 'datactl[tables]'" in r.err


# -- the pre-commit hook and a remote read in place ---------------------------------------------


def test_the_commit_hook_compares_with_the_commit_s_parent(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "hooked"
    ws = Workspace.init(str(root), name="hooked")
    with open(root / "datactl.toml", "a", encoding="utf-8") as f:
        f.write('\n[validate]\non_commit = true\n\n[[validate.rules]]\ntype = "table_stats"\nmax_null_rate_change = "2%"\n')
    write(root / "labels.csv", _labels(100))
    ws.add([str(root / "labels.csv")])
    ws.commit("v1")
    write(root / "labels.csv", _labels(100, null_every=10))
    ws.add([str(root / "labels.csv")])
    with pytest.raises(ValidationFailed) as failed:
        ws.commit("v2")
    assert "labels.csv: column label null rate 0.0% -> 10.0% (+10.0 points), limit 2%" in failed.value.message
    ws.close()


def test_on_an_s3_remote_read_in_place(cli: Cli, tmp_path: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from servers import new_s3_bucket

    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "user-cache"))
    url = f"s3://{new_s3_bucket(s3_server)}/store"
    root = tmp_path / "w"
    ws = Workspace.init(str(root), name="s3ds")
    add_remote(ws.root, "origin", url, {"endpoint_url": s3_server})
    write(root / "labels.csv", _labels(100))
    _scores(root / "scores.parquet", 100, 0)
    ws.add([str(root)])
    ws.commit("v1")
    write(root / "labels.csv", _labels(95, null_every=19))
    _scores(root / "scores.parquet", 100, 10)
    ws.add([str(root)])
    v2 = ws.commit("v2")
    sync.push(ws)
    ws.close()
    ci = tmp_path / "ci"  # a CI job: no workspace, only the rules
    rules = _rules_file(ci, 'max_null_rate_change = "2%"\nmax_row_count_change = "10%"')
    remote = ("--remote", url, "--endpoint-url", s3_server)
    r = cli("validate", f"s3ds@{v2}", "--rules", rules, *remote, ok=False, cwd=ci)
    assert r.code == 1, r.out + r.err
    assert "labels.csv: column label null rate 0.0% -> 5.3% (+5.3 points), limit 2%" in r.out
    assert "scores.parquet: column score null rate 0.0% -> 10.0% (+10.0 points), limit 2%" in r.out
    again = json.loads(cli("validate", f"s3ds@{v2}", "--rules", rules, *remote, "--json", ok=False, cwd=ci).out)
    assert again["exit_code"] == 1 and again["read"]["data_bytes"] == 0  # the statistics were kept by digest
    assert cli("validate", f"s3ds@{v2}", "--rules", rules, *remote, "--base", f"s3ds@{v2}", cwd=ci).code == 0
