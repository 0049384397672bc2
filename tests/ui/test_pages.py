"""The UI's pages and their JSON twins, over HTTP in-process: content, escaping, read-only, path checks, errors; and `datactl report`."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from datactl.ui import pages
from datactl.ui.app import create_app
from ui.ui_data import HOSTILE_FILE, HOSTILE_PATH, HTML_CELL, UiStore, open_session


def _client(store: UiStore) -> Iterator[TestClient]:
    with open_session(store) as session:
        yield TestClient(create_app(session), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def local_client(ui_local: UiStore) -> Iterator[TestClient]:
    yield from _client(ui_local)


@pytest.fixture(scope="module")
def s3_client(ui_s3: UiStore) -> Iterator[TestClient]:
    yield from _client(ui_s3)


@pytest.fixture
def client(local_client: TestClient) -> TestClient:
    return local_client


def get_json(client: TestClient, url: str, status: int = 200) -> dict:
    r = client.get(url + ("&" if "?" in url else "?") + "format=json")
    assert r.status_code == status, r.text
    return r.json()


def test_store_lists_datasets_and_models_and_searches(client: TestClient) -> None:
    page = get_json(client, "/")
    rows = {d["name"]: d for d in page["datasets"]}
    assert rows["raw"]["kind"] == "dataset" and rows["raw"]["versions"] == 2 and rows["raw"]["tags"] == ["v1", "v2"]
    assert rows["clf"]["kind"] == "model" and rows["clf"]["tags"] == ["m1"]
    assert [d["name"] for d in get_json(client, "/?q=owner=ana")["datasets"]] == ["raw"]
    assert [d["name"] for d in get_json(client, "/?q=m1")["datasets"]] == ["clf"]
    html = client.get("/").text
    assert 'href="/d/raw"' in html and "clf" in html


def test_dataset_history_with_changes_and_graph(client: TestClient) -> None:
    page = get_json(client, "/d/raw")
    v2, v1 = page["versions"]
    assert (v2["tags"], v2["message"], v2["metadata"]) == (["v2"], "more rows", {"owner": "ana"})
    assert v2["changes"]["added"] == 1 and v2["changes"]["removed"] == 1 and v2["changes"]["modified"] == 1
    assert v1["parents"] == [] and v1["changes"] is None  # a first version: everything is new
    assert f"v{v1['id'][:12]} --> v{v2['id'][:12]}" in page["graph"]
    assert page["links"][f"v{v2['id'][:12]}"] == v2["url"]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_version_folders_paginate_and_files_preview(kind: str, request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue(f"{kind}_client")
    root = get_json(client, "/d/raw@v2/")
    names = [e["name"] for e in root["entries"]]
    assert names[:3] == ["<script>alert(1)<", "data", "img"] and HOSTILE_FILE in names and "readme.txt" not in names
    assert {e["name"]: e.get("items") for e in root["entries"]}["data"] == 5
    first = get_json(client, "/d/raw@v2/data/?limit=3")
    rest = get_json(client, "/d/raw@v2/data/?limit=3&offset=3")
    assert first["more"] and first["total"] == 5 and not rest["more"]
    assert [e["name"] for e in first["entries"] + rest["entries"]] == ["big.csv", "notes.txt", "points.parquet", "records.jsonl", "table.csv"]
    assert {t["type"]: t["files"] for t in first["types"]} == {".txt": 1, ".parquet": 1, ".jsonl": 1, ".csv": 2}

    csv = get_json(client, "/d/raw@v2/data/table.csv")["preview"]
    assert csv["columns"] == ["id", "name", "score"] and csv["rows"][1] == ["2", HTML_CELL, "1.5"] and len(csv["rows"]) == 4
    score = csv["summaries"][2]
    assert (score["type"], score["nulls"], score["min"], score["max"]) == ("float", 1, "0.5", "2.5")
    page2 = get_json(client, "/d/raw@v2/data/table.csv?offset=2&limit=1")["preview"]
    assert page2["rows"] == [["3", "gamma", ""]] and page2["has_more"]

    parquet = get_json(client, "/d/raw@v2/data/points.parquet?offset=3&limit=5")["preview"]
    assert parquet["total_rows"] == 5 and parquet["rows"] == [["4", "d"], ["5", "e"]] and parquet["types"] == ["int64", "string"]
    jsonl = get_json(client, "/d/raw@v2/data/records.jsonl")["preview"]
    assert jsonl["columns"] == ["a", "b"] and jsonl["rows"] == [["1", "x"], ["2", "<i>y</i>"]]
    assert get_json(client, "/d/raw@v2/data/notes.txt")["preview"]["lines"] == ["added in v2"]
    blob = get_json(client, "/d/raw@v2/blob.bin")["preview"]
    assert blob["kind"] == "hex" and blob["hex"][0][1].startswith("00 01 02")
    image = get_json(client, "/d/raw@v2/img/red.png")
    assert image["preview"]["kind"] == "image"
    raw = client.get(image["raw"])
    assert raw.headers["content-type"] == "image/png" and raw.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_preview_reads_only_what_it_shows(kind: str, request: pytest.FixtureRequest) -> None:
    with open_session(request.getfixturevalue(f"ui_{kind}")) as session:
        size = session.entry(session.version("raw", "v2"), "data/big.csv").size
        before = session.reader.stats.data_bytes
        page = pages.version_page(session, "raw", "v2", "data/big.csv", offset="1000", limit="20")
        read = session.reader.stats.data_bytes - before
    assert [r[0] for r in page["preview"]["rows"]] == [str(n) for n in range(1000, 1020)] and page["preview"]["has_more"]
    assert size > 3_500_000 and read < 512 * 1024, f"read {read} bytes of {size} to show 20 rows"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_diff_lineage_and_checks(kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = request.getfixturevalue(f"{kind}_client"), request.getfixturevalue(f"ui_{kind}")
    diff = get_json(client, "/diff/raw@v2/")
    assert {c["path"]: c["status"] for c in diff["changes"]} == {"data/notes.txt": "added", "data/table.csv": "modified", "readme.txt": "removed"}
    assert diff["against"]["tags"] == ["v1"]
    back = get_json(client, "/diff/raw@v1/?against=v2")
    assert back["summary"]["added"] == 1 and back["summary"]["removed"] == 1

    lineage = get_json(client, "/lineage/raw@v1/?direction=down")
    labels = {n["label"] for n in lineage["graph"]["nodes"]}
    assert labels == {"raw@v1", "raw@v2", "clf@m1"}
    assert "flowchart LR" in lineage["mermaid"] and all(url.startswith("/d/") for url in lineage["links"].values())

    assert "verify" not in get_json(client, "/checks/raw@v2/")
    monkeypatch.chdir(store.workspace)  # the rules come from the current folder's datactl.toml, as for `datactl validate --remote`
    checks = get_json(client, "/checks/raw@v2/?run=1")
    assert checks["verify"]["ok"] and checks["verify"]["commits"] == 2
    status = {r["name"]: r["status"] for r in checks["validate"]["rules"]}
    assert status == {"has-table": "passed", "has-labels": "failed"}
    assert "has-labels" in client.get("/checks/raw@v2/?run=1").text


def test_names_and_cells_are_escaped(client: TestClient) -> None:
    for url in ["/d/raw@v2/", f"/d/raw@v2/{HOSTILE_FILE}", f"/d/raw@v2/{HOSTILE_PATH}", "/d/raw@v2/data/table.csv", "/diff/raw@v1/"]:
        html = client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<img src=y" not in html and "<b>bold" not in html, url
    html = client.get(f"/d/raw@v2/{HOSTILE_FILE}").text
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert "&lt;img src=y onerror=alert(4)&gt;" in client.get(f"/d/raw@v2/{HOSTILE_PATH}").text


def test_pages_of_a_bucket_hold_no_local_path_or_endpoint(s3_client: TestClient, ui_s3: UiStore) -> None:
    for url in ["/", "/d/raw", "/d/raw@v2/", "/d/raw@v2/data/table.csv", "/lineage/raw@v2/", "/diff/raw@v2/"]:
        html = s3_client.get(url).text
        assert ui_s3.url in html and str(ui_s3.workspace.parent) not in html and ui_s3.options["endpoint_url"] not in html


def test_read_only_and_errors(client: TestClient) -> None:
    assert client.post("/").status_code == 405
    assert client.get("/d/raw@v2/readme.txt", headers={"host": "evil.example"}).status_code == 400  # a rebound name is refused
    missing = get_json(client, "/d/raw@v9/", 404)
    assert "v9" in missing["error"] and missing["hint"]
    assert "not in" in get_json(client, "/d/raw@v2/readme.txt", 404)["error"]
    for unsafe in ["/d/raw@v2/data/%2e%2e/%2e%2e/etc/passwd", "/d/raw@v2/data/..%2f..%2fetc", "/d/raw@v2/data%00x", "/raw/raw@v2/data/%2e%2e/x"]:
        said = client.get(unsafe + "?format=json")
        assert said.status_code == 400 and said.json()["error"].startswith("the address names an unsafe path"), unsafe
    raw = client.get("/raw/raw@v2/data/table.csv")  # not an image: never shown as a page of the UI
    assert raw.headers["content-disposition"] == "attachment" and raw.headers["content-security-policy"].startswith("sandbox")
    assert get_json(client, "/d/nope", 404)["error"].startswith("no dataset or model 'nope'")
    assert "Cannot show this page" in client.get("/d/raw@v9/").text


def test_report_is_one_file_with_everything(cli, ui_local: UiStore, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = cli("report", "raw@v2", "--html", str(out), "--store", ui_local.url)
    assert "1 added, 1 removed, 1 modified since raw@" in r.out
    html = out.read_text(encoding="utf-8")
    assert re.search(r'(src|href)="(https?:)?//', html) is None  # nothing to fetch
    assert "data:text/javascript;base64," in html and "flowchart LR" in html and "pie showData" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold" not in html
    assert cli("report", "raw@v9", "--html", str(tmp_path / "x.html"), "--store", ui_local.url, ok=False).code == 1
    nowhere = cli("report", "raw@v2", "--html", str(tmp_path / "no" / "r.html"), "--store", ui_local.url, ok=False)
    assert nowhere.code == 2 and nowhere.err.startswith("error: cannot write") and "hint: create it" in nowhere.err


def test_missing_extra_is_one_line_with_the_pip_command(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    r = cli("ui", ok=False)
    assert r.code == 1 and r.err.splitlines()[0] == "error: datactl ui needs uvicorn, not installed: pip install 'datactl[ui]'"


def test_ui_port_0_prints_the_url_and_serves(ui_local: UiStore) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "datactl", "ui", ui_local.url, "--port", "0"], stdout=subprocess.PIPE, text=True,
                            cwd=ui_local.workspace)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "?format=json", timeout=10) as resp:
            assert b'"raw"' in resp.read()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with socket.socket() as s:  # bound to the loopback address only
            assert s.connect_ex((socket.gethostbyname(socket.gethostname()), port)) != 0 or socket.gethostbyname(socket.gethostname()).startswith("127.")
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_external_file_is_previewed_from_its_source(cli, ws_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file added with add --external has no chunks in the store: the preview and the raw download read its source, verified."""
    from datactl.ui.serve import bind

    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src" / "labels.csv"
    src.parent.mkdir()
    src.write_text("id,label\n1,cat\n2,dog\n", encoding="utf-8")
    cli("init", "--name", "ext")
    cli("add", "--external", str(src))
    cli("commit", "-m", "in place", "--tag", "v1")

    def get(url: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    with open_session(UiStore(str(ws_dir / ".datactl" / "store"), {}, ws_dir)) as session:
        server = bind(session)
        thread = server.start()
        try:
            status, body = get(server.url + "d/ext@v1/labels.csv?format=json")
            assert status == 200, body
            assert json.loads(body)["preview"]["rows"] == [["1", "cat"], ["2", "dog"]]
            assert get(server.url + "raw/ext@v1/labels.csv") == (200, src.read_bytes())
            src.write_text("id,label\n1,cow\n2,dog\n", encoding="utf-8")  # the same size: only the bytes tell
            status, body = get(server.url + "d/ext@v1/labels.csv?format=json")
            assert status == 500 and json.loads(body)["error"].startswith(f"labels.csv: its source file://{src} no longer holds the recorded bytes"), body
        finally:
            server.stop()
            thread.join(10)
