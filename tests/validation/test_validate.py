"""datactl validate: every rule passing and failing, on a local version and on a remote one read in place."""

from __future__ import annotations

import json
import os
import random
import textwrap
from pathlib import Path

import pytest

import datactl
from ci_data import GOOD_RULES, build_versions, counting_remote, publish_all
from conftest import Cli, write
from datactl.core.errors import UsageError
from datactl.remote.source import remote_source
from datactl.store.filedata import chunk_ids_of
from datactl.store.source import local_source
from datactl.validation import Rule, ValidationReport, run_rules
from datactl.validation.config import RulesConfig, build_rules
from datactl.workspace.workspace import Workspace

SCHEMA = Path(__file__).parent.parent / "data" / "junit-10.xsd"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory):
    ws = build_versions(tmp_path_factory.mktemp("ci") / "ws")
    yield ws
    ws.close()


def _rules(*tables: dict) -> list[Rule]:
    return build_rules(RulesConfig(rules=[dict(t) for t in tables]))


def _run(source, table: dict) -> ValidationReport:
    return run_rules(source, _rules(table), workers=4)


def _check_rule(case: str, good_source, bad_source) -> None:
    table, expected = GOOD_RULES[case]
    good = _run(good_source, table)
    assert good.ok and good.exit_code == 0, good.to_dict()
    bad = _run(bad_source, table)
    result = bad.results[0]
    assert result.status == "failed" and bad.exit_code == 1, bad.to_dict()
    text = "\n".join(f"{f.path}: {f.message}" for f in result.findings)
    assert expected in text, text


@pytest.mark.parametrize("case", sorted(GOOD_RULES))
def test_rule_on_local_version(case: str, versions: Workspace) -> None:
    good = local_source(versions.repo, versions.resolve("good"))
    bad = local_source(versions.repo, versions.resolve("bad"))
    _check_rule(case, good, bad)


@pytest.mark.parametrize("case", sorted(GOOD_RULES))
def test_rule_on_remote_version(case: str, versions: Workspace, tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    publish_all(versions, url, options, str(tmp_path / "push-cache"))
    rs, backend = counting_remote(url, options, str(tmp_path / "cache"))
    with rs:
        good = remote_source(rs, "ds@good")
        bad = remote_source(rs, "ds@bad")
        _check_rule(case, good, bad)
    assert backend.bytes_read > 0  # it really read the remote (and the wrapper forbids any write)


def test_metadata_rules_read_no_file_bytes(versions: Workspace) -> None:
    meta = [t for name, (t, _) in GOOD_RULES.items() if name not in ("csv", "jsonl", "parquet", "image", "class_balance_column")]
    src = local_source(versions.repo, versions.resolve("bad"))
    report = run_rules(src, _rules(*meta))
    assert not report.ok
    assert report.read["data_bytes"] == 0 and report.read["files_opened"] == 0
    assert all(r.files_read == 0 for r in report.results)


def test_content_rules_read_only_the_files_they_match(versions: Workspace) -> None:
    src = local_source(versions.repo, versions.resolve("good"))
    report = run_rules(src, _rules(GOOD_RULES["csv"][0], GOOD_RULES["jsonl"][0]))
    assert report.ok
    assert report.read["files_opened"] == 2  # labels.csv and data/records.jsonl, nothing else


def test_csv_reads_the_header_and_the_first_rows_only(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = ["id,label,blob"] + [f"{i},c{i % 5},{rng.randbytes(40).hex()}" for i in range(60_000)]
    write(tmp_path / "ws" / "big.csv", "\n".join(lines) + "\n")
    with Workspace.init(str(tmp_path / "ws"), name="big") as ws:
        ws.add([str(tmp_path / "ws")])
        cid = ws.commit("v1")
        entry = ws.repo.read_tree(ws.repo.read_commit(cid).tree).get("big.csv")
        size = entry.size
        stored = sum(ws.repo.locate(c).entry.stored_len for c in chunk_ids_of(ws.repo, entry))
        src = local_source(ws.repo, cid)
        report = run_rules(src, _rules({"type": "csv", "header": ["id", "label", "blob"], "columns": {"id": "int"}, "rows": 100}))
        assert report.ok, report.to_dict()
        assert size > 5_000_000
        assert report.read["data_bytes"] < 300_000, report.read  # a chunk or two of a 5+ MB file
        every_row = run_rules(local_source(ws.repo, cid), _rules({"type": "csv", "columns": {"id": "int"}, "rows": 0}))
        assert every_row.ok and every_row.read["data_bytes"] >= stored  # rows = 0 reads every chunk


def test_parquet_schema_reads_the_footer_only(tmp_path: Path) -> None:
    from ci_data import parquet

    rng = random.Random(5)
    write(tmp_path / "ws" / "t.parquet", parquet({"id": list(range(200_000)), "blob": [rng.randbytes(16).hex() for _ in range(200_000)]}))
    with Workspace.init(str(tmp_path / "ws"), name="pq") as ws:
        ws.add([str(tmp_path / "ws")])
        cid = ws.commit("v1")
        size = (tmp_path / "ws" / "t.parquet").stat().st_size
        report = run_rules(local_source(ws.repo, cid), _rules({"type": "parquet", "schema": {"id": "int64", "blob": "string"}, "min_rows": 200_000}))
        assert report.ok, report.to_dict()
        assert report.read["data_bytes"] < size / 4, (report.read, size)


def test_missing_data_is_an_error_with_exit_code_3(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    from datactl.format.layout import pack_key
    from storage_backends import open_backend

    url, options = store_url
    ws = build_versions(tmp_path / "ws")
    try:
        publish_all(ws, url, options, str(tmp_path / "push-cache"))
        labels = ws.repo.read_tree(ws.repo.read_commit(ws.resolve("good")).tree).get("labels.csv")
    finally:
        ws.close()
    rs, _ = counting_remote(url, options, str(tmp_path / "cache"))
    with rs:
        rs.sync_index()
        open_backend(url, options).delete(pack_key(rs.index.lookup(labels.chunks[0]).pack))
        report = run_rules(remote_source(rs, "ds@good"), _rules(GOOD_RULES["csv"][0], GOOD_RULES["count"][0]))
    csv_result, count_result = report.results
    assert csv_result.status == "error" and "labels.csv" in (csv_result.error or ""), csv_result
    assert labels.chunks[0] in (csv_result.error or "")  # names the object
    assert count_result.status == "passed"  # metadata rules still give their verdict
    assert report.exit_code == 3


# -- configuration, plugins ---------------------------------------------------------------


def _config(ws_dir: Path, body: str) -> None:
    with open(ws_dir / "datactl.toml", "a", encoding="utf-8") as f:
        f.write("\n" + textwrap.dedent(body))


def _workspace(cli: Cli, ws_dir: Path) -> None:
    from ci_data import make_good

    make_good(ws_dir)
    cli("init", "--name", "ds")
    cli("add", ".")
    cli("commit", "-m", "v1", "--tag", "v1")


def test_cli_exit_codes_and_formats(cli: Cli, ws_dir: Path) -> None:
    _workspace(cli, ws_dir)
    _config(ws_dir, """
        [validate]
        [[validate.rules]]
        name = "enough training images"
        type = "count"
        glob = "train/**"
        min = 6
    """)
    r = cli("validate")
    assert "PASS" in r.out and "enough training images" in r.out
    report = json.loads(cli("validate", "v1", "--format", "json").out)
    assert report["ok"] and report["rules"][0]["status"] == "passed"

    rules = ws_dir.parent / "strict.toml"
    rules.write_text('[[rules]]\ntype = "count"\nglob = "train/**"\nmin = 7\n')
    r = cli("validate", "--rules", str(rules), ok=False)
    assert r.code == 1 and "FAIL" in r.out and "below the minimum 7" in r.out
    gh = cli("validate", "--rules", str(rules), "--format", "github", ok=False)
    assert gh.code == 1
    assert gh.out.startswith("::error title=datactl validate%3A count train/**::the number of files")
    assert "::notice" in gh.out

    rules.write_text('[[rules]]\ntype = "count"\nglob = "train/**"\nmni = 7\n')
    r = cli("validate", "--rules", str(rules), ok=False)
    assert r.code == 2 and "unknown setting(s) here: mni" in r.err
    rules.write_text('[[rules]]\ntype = "no_such_rule"\n')
    r = cli("validate", "--rules", str(rules), ok=False)
    assert r.code == 2 and "no_such_rule" in r.err
    r = cli("validate", "--rules", str(rules), "--format", "xml", ok=False)
    assert r.code == 2
    assert cli("validate", "--rules", str(ws_dir.parent / "missing.toml"), ok=False).code == 2


@pytest.mark.parametrize(
    "missing, rule, says",
    [
        ("pyarrow", 'type = "parquet"\nmin_rows = 1\nschema = { id = "int64" }', "needs pyarrow, which is not installed\nhint: pip install 'datactl[parquet]'"),
        ("PIL", 'type = "image"\nmax_width = 10\ndecode = false', "needs Pillow, which is not installed\nhint: pip install 'datactl[images]'"),
    ],
)
def test_a_missing_optional_dependency_is_named_alone(tmp_path: Path, missing: str, rule: str, says: str) -> None:
    """In a process where the module cannot be imported, the error names the extra to install and blames no setting."""
    import subprocess
    import sys

    ws = Workspace.init(str(tmp_path / "ws"), name="extras")
    write(tmp_path / "ws" / "a.txt", "a\n")
    ws.add([str(tmp_path / "ws")])
    ws.commit("v1")
    ws.close()
    rules = tmp_path / "rules.toml"
    rules.write_text(f"[[rules]]\n{rule}\n")
    code = f"import sys; sys.modules[{missing!r}] = None; from datactl.cli.entry import run; sys.argv[0] = 'datactl'; run()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(datactl.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code, "validate", "--rules", str(rules)], cwd=tmp_path / "ws", env=env, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().endswith(says) and "unknown setting" not in r.stderr, r.stderr
    rules.write_text(f"[[rules]]\n{rule}\nmni_rows = 1\n")  # a real typo is still reported once the extra is there
    assert "unknown setting(s) mni_rows" in subprocess.run(
        [sys.executable, "-m", "datactl", "validate", "--rules", str(rules)], cwd=tmp_path / "ws", env=env, capture_output=True, text=True
    ).stderr


def test_junit_output_is_valid_against_the_ci_schema(cli: Cli, ws_dir: Path, tmp_path: Path) -> None:
    lxml = pytest.importorskip("lxml.etree")
    _workspace(cli, ws_dir)
    write(ws_dir / "train" / "we<ird> & \"name\".png", b"\x00\x01not an image")
    cli("add", ".")
    cli("commit", "-m", "v2")
    _config(ws_dir, """
        [validate]
        [[validate.rules]]
        type = "image"
        [[validate.rules]]
        type = "count"
        min = 1
        [[validate.rules]]
        type = "no_empty"
        severity = "warning"
    """)
    out_file = tmp_path / "report.xml"
    r = cli("validate", "--format", "junit", "--output", str(out_file), ok=False)
    assert r.code == 1 and "FAIL" in r.out  # the table still goes to stdout
    schema = lxml.XMLSchema(lxml.parse(str(SCHEMA)))
    doc = lxml.parse(str(out_file))
    schema.assertValid(doc)
    cases = doc.findall(".//testcase")
    assert [c.get("classname") for c in cases] == ["datactl.validate.image", "datactl.validate.count", "datactl.validate.no_empty"]
    failure = cases[0].find("failure")
    assert failure is not None and 'we<ird> & "name".png' in failure.text
    assert doc.getroot().get("failures") == "1" and doc.getroot().get("tests") == "3"

    # the verify and diff gate reports too
    verify_xml = cli("verify", "--format", "junit").out
    schema.assertValid(lxml.fromstring(verify_xml.encode()).getroottree())
    diff_xml = cli("diff", "v1", "HEAD", "--max-added", "0", "--format", "junit", ok=False).out
    root = lxml.fromstring(diff_xml.encode())
    schema.assertValid(root.getroottree())
    assert root.find(".//failure") is not None


def test_plugin_rule_from_config_module_path(cli: Cli, ws_dir: Path) -> None:
    _workspace(cli, ws_dir)
    write(ws_dir / "ci_rules.py", textwrap.dedent('''
        from datactl.validation import Finding, Rule

        class NoSpaces(Rule):
            type = "no_spaces"
            description = "file names without spaces"

            def visit(self, entry):
                if " " in entry.path:
                    yield Finding("has a space", entry.path)

        class FirstByte(Rule):
            type = "first_byte"
            reads_content = True

            def configure(self, options):
                self.byte = options.int("byte")

            def check_file(self, entry, stream):
                if stream.read(1) != bytes([self.byte]):
                    return [Finding("wrong first byte", entry.path)]
    '''))
    write(ws_dir / "data" / "a b.txt", "x")
    cli("add", "data")
    cli("commit", "-m", "v2")
    _config(ws_dir, """
        [validate]
        plugins = ["ci_rules:NoSpaces", "ci_rules:FirstByte"]
        [[validate.rules]]
        type = "no_spaces"
        [[validate.rules]]
        type = "first_byte"
        glob = "*.png"
        byte = 0x89
    """)
    report = json.loads(cli("validate", "--format", "json", "--trust-plugins", ok=False).out)
    by_type = {r["type"]: r for r in report["rules"]}
    assert by_type["no_spaces"]["status"] == "failed" and by_type["no_spaces"]["findings"][0]["path"] == "data/a b.txt"
    assert by_type["first_byte"]["status"] == "passed" and by_type["first_byte"]["files_read"] == 8


def test_plugin_rule_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versions: Workspace) -> None:
    site = tmp_path / "site"
    write(site / "datactl_extra_rules.py", textwrap.dedent('''
        from datactl.validation import Finding, Rule

        class MaxDepth(Rule):
            def configure(self, options):
                self.depth = options.int("depth")

            def visit(self, entry):
                if entry.path.count("/") > self.depth:
                    return [Finding("too deep", entry.path)]
    '''))
    dist = site / "datactl_extra_rules-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: datactl-extra-rules\nVersion: 1.0\n")
    write(dist / "entry_points.txt", "[datactl.rules]\nmax_depth = datactl_extra_rules:MaxDepth\n")
    monkeypatch.syspath_prepend(str(site))
    from datactl.validation import config as config_module

    monkeypatch.setattr(config_module, "_entry_points_loaded", False)
    src = local_source(versions.repo, versions.resolve("good"))
    report = run_rules(src, build_rules(RulesConfig(rules=[{"type": "max_depth", "depth": 1}])))
    assert report.results[0].status == "failed"
    assert {f.path for f in report.results[0].findings} == {f"{s}/{c}/{i}.png" for s, n in (("train", 3), ("test", 1)) for c in ("cat", "dog") for i in range(n)}


def test_library_entry_point(cli: Cli, ws_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _workspace(cli, ws_dir)
    monkeypatch.chdir(ws_dir)
    report = datactl.validate("v1", rules=[GOOD_RULES["csv"][0], GOOD_RULES["count"][0]])
    assert isinstance(report, ValidationReport) and report.ok
    report = datactl.validate(rules={"rules": [{"type": "count", "max": 1}]})
    assert report.exit_code == 1 and report.results[0].total_findings == 1
    with pytest.raises(UsageError):
        datactl.validate(rules=[{"type": "csv"}])  # a csv rule with nothing to check


# -- the commit hook ----------------------------------------------------------------------


def test_commit_runs_the_rules_when_asked(cli: Cli, ws_dir: Path) -> None:
    _workspace(cli, ws_dir)
    _config(ws_dir, """
        [validate]
        on_commit = true
        [[validate.rules]]
        type = "no_empty"
    """)
    write(ws_dir / "empty.txt", b"")
    cli("add", ".")
    head = cli("log", "--json").out
    r = cli("commit", "-m", "with an empty file", ok=False)
    assert r.code == 1 and "commit refused" in r.err and "empty.txt" in r.err and "--no-verify" in r.err
    assert cli("log", "--json").out == head, "a refused commit moves nothing"
    assert cli("status", "--json").out.count("empty.txt") >= 1  # still staged
    cli("commit", "-m", "anyway", "--no-verify")
    assert json.loads(cli("log", "--json").out)[0]["message"] == "anyway"

    (ws_dir / "empty.txt").write_text("now with content\n")
    cli("add", ".")
    cli("commit", "-m", "fixed")  # the rules pass: the commit goes through


def test_commit_hook_is_off_by_default(tmp_path: Path) -> None:
    write(tmp_path / "ws" / "empty.txt", b"")
    with Workspace.init(str(tmp_path / "ws"), name="x") as ws:
        with open(os.path.join(ws.root, "datactl.toml"), "a") as f:
            f.write('\n[validate]\n[[validate.rules]]\ntype = "no_empty"\n')
        ws.add([ws.root])
        assert ws.commit("v1")  # on_commit is not set: no rule runs


# -- a CI job: no workspace, a datactl.toml with remotes and rules in the repository ----------


def test_ci_job_without_a_workspace(tmp_path: Path, cli: Cli, store_url: tuple[str, dict], versions: Workspace) -> None:
    url, options = store_url
    publish_all(versions, url, options, str(tmp_path / "push-cache"))
    job = tmp_path / "checkout"
    job.mkdir()
    import tomlkit

    rules = [GOOD_RULES["count"][0], GOOD_RULES["csv"][0], GOOD_RULES["split_overlap"][0]]
    doc = {"dataset": {"name": "ds"}, "remotes": {"origin": {"url": url, **options}}, "validate": {"workers": 4, "rules": rules}}
    (job / "datactl.toml").write_text(tomlkit.dumps(doc))

    assert cli("validate", "good", "--remote", "origin", cwd=job).code == 0
    r = cli("validate", "bad", "--remote", "origin", "--format", "github", cwd=job, ok=False)
    assert r.code == 1 and r.out.count("::error") >= 3
    assert cli("validate", "--remote", "origin", cwd=job, ok=False).code == 1  # HEAD: the remote's head of [dataset] name
    assert cli("verify", "good", "--remote", "origin", cwd=job).code == 0
    r = cli("diff", "good", "bad", "--remote", "origin", "--max-removed", "0", "--max-changed-files", "50%", cwd=job, ok=False)
    assert r.code == 1 and "FAIL" in r.err and "files removed" in r.err
    gate = json.loads(cli("diff", "good", "bad", "--remote", "origin", "--max-added", "100%", "--json", cwd=job).out)
    assert gate["limits"][0]["ok"] and gate["summary"]["added"] > 0
    assert not (job / ".datactl").exists(), "nothing is written into the job's folder"


def test_diff_gates_on_drift(cli: Cli, ws_dir: Path) -> None:
    _workspace(cli, ws_dir)
    (ws_dir / "data" / "notes.txt").unlink()
    write(ws_dir / "data" / "new.txt", "new\n")
    cli("add", ".")
    cli("commit", "-m", "v2", "--tag", "v2")
    assert cli("diff", "v1", "v2", "--exit-code", ok=False).code == 1
    assert cli("diff", "v1", "v1", "--exit-code").code == 0
    assert cli("diff", "v1", "v2", "--max-changed-files", "20%").code == 0  # 2 of 13 files
    r = cli("diff", "v1", "v2", "--max-changed-files", "5%", ok=False)
    assert r.code == 1 and "15.38% of 13" in r.err
    r = cli("diff", "v1", "v2", "--max-removed", "0", "--max-added", "1", ok=False)
    assert r.code == 1 and "FAIL 1 files removed" in r.err and "PASS 1 files added" in r.out
    assert cli("diff", "v1", "v2", "--max-changed-bytes", "1MB", "--exit-code").code == 0  # limits decide, not --exit-code
    assert cli("diff", "v1", "v2", "--max-removed", "lots", ok=False).code == 2
    gh = cli("diff", "v1", "v2", "--max-removed", "0", "--format", "github", ok=False)
    assert gh.out.startswith("::error title=datactl diff%3A max removed 0::1 files removed")


def test_tsv_types_nullable_columns_and_image_headers(tmp_path: Path) -> None:
    from ci_data import png

    root = tmp_path / "ws"
    write(root / "a.tsv", "id\twhen\tscore\tok\n1\t2024-01-02\t\ttrue\n2\t2024-02-30\t0.5\tmaybe\n")
    write(root / "big.png", png(300, 200, 1))
    with Workspace.init(str(root), name="t") as ws:
        ws.add([str(root)])
        cid = ws.commit("v1")
        src = local_source(ws.repo, cid)
        report = run_rules(src, _rules(
            {"type": "csv", "columns": {"id": "int", "when": "date", "score": "float?", "ok": "bool"}},
            {"type": "image", "decode": False, "max_width": 256},
        ))
    csv_result, image_result = report.results
    messages = [f.message for f in csv_result.findings]
    assert messages == ["row 2: column 'when' = '2024-02-30' is not date", "row 2: column 'ok' = 'maybe' is not bool"]
    assert [f.message for f in image_result.findings] == ["the width is 300, above the maximum 256 (300x200)"]
