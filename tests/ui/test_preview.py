"""Previews over any table content: the rows shown are the file's rows, and a page shows every cell as its text."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from datactl.ui.preview import CELL_CHARS, preview_file
from datactl.ui.render import environment, render

# Any text but NUL and lone surrogates (a CSV file is UTF-8 text); markup characters and quotes included on purpose.
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40) | st.sampled_from(
    ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><b>', "&amp;", "{{ 7*7 }}", "\r\n", ""]
)
ENV = environment()
tables = st.integers(1, 4).flatmap(lambda width: st.lists(st.lists(cell, min_size=width, max_size=width), min_size=1, max_size=12))


class _Cells(HTMLParser):
    """The text of every cell of the rows table, as a browser would show it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.in_rows = False
        self.cells: list[str] | None = None
        self.rows: list[list[str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "table" and ("class", "rows") in attrs:
            self.in_rows = True
        elif self.in_rows and tag == "tr":
            self.rows.append([])
        elif self.in_rows and tag == "td":
            self.cells = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_rows = False
        elif tag == "td" and self.cells is not None:
            self.rows[-1].append("".join(self.cells))
            self.cells = None

    def handle_data(self, data: str) -> None:
        if self.cells is not None:
            self.cells.append(data)


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8")


@settings(max_examples=60, deadline=None)
@given(tables, st.integers(0, 5), st.integers(1, 6))
def test_csv_pages_are_the_files_rows_and_render_as_text(rows: list[list[str]], offset: int, limit: int) -> None:
    header, body = [f"c{i}" for i in range(len(rows[0]))], rows
    data = _csv_bytes([header, *body])
    p = preview_file(io.BytesIO(data), "t.csv", len(data), offset, limit)
    want = body[offset : offset + limit]
    assert p.kind == "table" and p.columns == header
    assert p.rows == [[c if len(c) <= CELL_CHARS else c[:CELL_CHARS] + "…" for c in r] for r in want]
    assert p.has_more == (offset + limit < len(body))
    assert [s.nulls for s in p.summaries] == [sum(1 for r in want if r[i] == "") for i in range(len(header))]

    page = {"page": "file", "store": "s", "path": "t.csv", "crumbs": [], "kind": "file", "size": len(data), "digest": "0" * 32,
            "raw": "/raw/x", "url": "/d/x", "preview": p.to_dict(),
            "version": {"kind": "dataset", "name": "n", "short": "0" * 12, "tags": [], "history_url": "/", "url": "/", "diff_url": "/",
                        "lineage_url": "/", "checks_url": "/"}}
    parser = _Cells()
    parser.feed(render(ENV, "file.html", page))
    shown = [r[1:] for r in parser.rows[1:]]  # without the header row and the row numbers
    assert shown == p.rows
    assert parser.tags.count("script") == 1 and "b" not in parser.tags and "img" not in parser.tags  # ui.js; no element from a cell
