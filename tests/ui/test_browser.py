"""The UI in a real browser: Debian's chromium, headless, driven by Playwright (no browser is downloaded).

One browser and one server per store kind (a local folder, the S3 test
server). The tests click through store -> dataset -> version -> file preview
-> diff -> lineage and check what is shown, check hostile names and cells
show as text (no script runs), and open the report with the network cut.
Screenshots of each page go to the test's output folder; with
DATACTL_UI_DOC_SCREENSHOTS=docs/img the local store's are written there too
(the ones docs/ui.md shows).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from ui.ui_data import HOSTILE_FILE, HOSTILE_PATH, HTML_CELL, UiStore, open_session

CHROMIUM = os.environ.get("DATACTL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DOC_SHOTS = os.path.abspath(os.environ["DATACTL_UI_DOC_SCREENSHOTS"]) if os.environ.get("DATACTL_UI_DOC_SCREENSHOTS") else None

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright; it is in the test extra)")
if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it): the browser tests need a real browser", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _serve(store: UiStore) -> Iterator[tuple[str, UiStore]]:
    from datactl.ui.serve import bind

    with open_session(store) as session:
        server = bind(session)
        thread = server.start()
        yield server.url, store
        server.stop()
        thread.join(10)


@pytest.fixture(scope="module")
def served_local(ui_local: UiStore) -> Iterator[tuple[str, UiStore]]:
    yield from _serve(ui_local)


@pytest.fixture(scope="module")
def served_s3(ui_s3: UiStore) -> Iterator[tuple[str, UiStore]]:
    yield from _serve(ui_s3)


@pytest.fixture
def served(served_local: tuple[str, UiStore]) -> tuple[str, UiStore]:
    """The local store's server (the S3 one is clicked through once: the pages are the same code over another backend)."""
    return served_local


@pytest.fixture
def page(browser, tmp_path: Path) -> Iterator:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    pg = context.new_page()
    pg.dialogs = []  # a script that ran would show itself here (every hostile payload calls alert)
    pg.errors = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def shot(page, tmp_path: Path, name: str, store: UiStore | None = None) -> None:
    """A screenshot in the test's output folder (and, for the docs, of the local store in DATACTL_UI_DOC_SCREENSHOTS)."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if DOC_SHOTS and (store is None or not store.url.startswith("s3://")):
        os.makedirs(DOC_SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(DOC_SHOTS, f"ui-{name}.png"), full_page=True)


def drawn(page) -> None:
    """Wait for ui.js to have drawn the page's graphs (it marks the body when done)."""
    page.wait_for_selector("body[data-graphs=drawn]", timeout=15000)
    assert page.evaluate("document.body.dataset.graphError") is None


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_click_through_store_dataset_version_file_diff_lineage(page, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url, store = request.getfixturevalue(f"served_{kind}")
    page.goto(url)
    drawn(page)
    rows = page.locator("table.datasets tr")
    assert rows.count() == 3
    assert "raw" in rows.nth(2).inner_text() or "raw" in rows.nth(1).inner_text()
    shot(page, tmp_path, "store", store)

    page.get_by_role("link", name="raw", exact=True).click()
    drawn(page)
    assert page.locator("h1").inner_text().endswith("raw")
    assert page.locator(".graph g.node").count() == 2  # the two versions, drawn by mermaid
    assert page.locator("table.versions").inner_text().count("more rows") == 1
    shot(page, tmp_path, "dataset", store)

    page.locator("table.versions a.mono").first.click()
    drawn(page)
    files = page.locator("table.files").inner_text()
    assert "data/" in files and HOSTILE_FILE in files and "readme.txt" not in files
    assert page.locator(".types-chart svg").count() == 1
    shot(page, tmp_path, "version", store)

    page.get_by_role("link", name="data/").click()
    page.get_by_role("link", name="table.csv").click()
    drawn(page)
    cells = page.locator("table.rows td").all_inner_texts()
    assert HTML_CELL in cells and "delta" in cells
    assert page.locator(".summary h3").all_inner_texts() == ["id", "name", "score"]
    shot(page, tmp_path, "preview-csv", store)

    page.get_by_role("link", name="Diff").click()
    drawn(page)
    changes = page.locator("table.changes").inner_text()
    assert "data/table.csv" in changes and "readme.txt" in changes and "data/notes.txt" in changes
    assert "1 added" in page.locator(".diff-summary").inner_text()
    shot(page, tmp_path, "diff", store)

    page.get_by_role("link", name="Lineage").click()
    drawn(page)
    graph = page.locator(".graph svg").text_content()
    assert "raw@v2" in graph and "clf@m1" in graph and "raw@v1" in graph
    shot(page, tmp_path, "lineage", store)
    if kind == "local":  # the node links are the same code on any store
        page.locator(".graph g.node", has_text="clf@m1").click()  # each node is a link to its version
        page.wait_for_url("**/d/clf@**")
        drawn(page)
        assert "clf" in page.locator("h1").inner_text() and "weights.bin" in page.locator("table.files").inner_text()
    assert page.dialogs == [] and page.errors == []


def test_previews_and_checks(page, served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, store = served
    page.goto(url + "d/raw@v2/data/points.parquet")
    drawn(page)
    assert "5 rows in the file" in page.content() and page.locator("table.rows td").all_inner_texts()[:3] == ["1", "1", "a"]
    shot(page, tmp_path, "preview-parquet", store)
    page.goto(url + "d/raw@v2/img/red.png")
    drawn(page)
    assert page.evaluate("document.querySelector('img.thumb').naturalWidth") == 64
    shot(page, tmp_path, "preview-image", store)

    monkeypatch.chdir(store.workspace)  # the rules come from the current folder's datactl.toml
    page.goto(url + "checks/raw@v2/")
    page.locator("#run-checks").click()
    drawn(page)
    assert page.locator("#verify-result").inner_text() == "every object present"
    rules = page.locator("table.rules").inner_text()
    assert "has-table" in rules and "has-labels" in rules and "failed" in rules
    shot(page, tmp_path, "checks", store)


def test_hostile_names_and_cells_show_as_text(page, served, tmp_path: Path) -> None:
    url, store = served
    page.goto(url + "d/raw@v2/")
    drawn(page)
    page.get_by_role("link", name=HOSTILE_FILE).click()
    drawn(page)
    assert HOSTILE_FILE in page.locator(".crumbs").inner_text()
    assert HTML_CELL in page.locator("table.rows td").all_inner_texts()
    page.goto(url + "d/raw@v2/")
    page.get_by_role("link", name="<script>alert(1)</").click()
    page.get_by_role("link", name="script>.csv").click()
    drawn(page)
    assert HOSTILE_PATH.replace("/", "") in page.locator(".crumbs").inner_text().replace("/", "").replace(" ", "").replace("\n", "")
    assert "<img src=y onerror=alert(4)>" in page.locator("table.rows td").all_inner_texts()
    assert page.locator("img[src=x], img[src=y], b").count() == 0  # no element was made of a name or a cell
    shot(page, tmp_path, "hostile", None if store.url.startswith("s3://") else store)
    assert page.dialogs == [] and page.errors == []


def test_report_opens_offline_and_shows_everything(browser, ui_local: UiStore, tmp_path: Path) -> None:
    from datactl.ui.report import write_report

    out = tmp_path / "report.html"
    with open_session(ui_local) as session:
        write_report(session, "raw@v2", str(out), against="v1")
    context = browser.new_context(offline=True)
    requests: list[str] = []
    context.route("**/*", lambda route: (requests.append(route.request.url), route.continue_() if route.request.url.startswith(("file:", "data:")) else route.abort()))
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(out.as_uri())
    drawn(pg)
    assert all(r.startswith(("file:", "data:")) for r in requests), requests
    assert "raw@v2" in pg.locator("#lineage svg").text_content() and "clf@m1" in pg.locator("#lineage svg").text_content()
    assert pg.locator("#types svg").count() == 1
    assert HTML_CELL in pg.locator("#tables table.rows td").all_inner_texts()
    assert pg.evaluate("document.querySelector('#images img').naturalWidth") == 64
    assert "data/table.csv" in pg.locator("#diff").inner_text()
    assert "has-labels" in pg.locator("#checks").inner_text() or "no rules" in pg.locator("#checks").inner_text()
    assert pg.locator("#verify-result").inner_text() == "every object present"
    pg.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    if DOC_SHOTS:
        pg.screenshot(path=os.path.join(DOC_SHOTS, "ui-report.png"), full_page=True)
    assert dialogs == []
    context.close()
