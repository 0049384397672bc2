"""``datactl report``: one version in one self-contained HTML file (no server, no network to open it).

The report holds what the pages show of a version: its summary, file types,
previews of its first tables and images, the diff against its parent (or a
given version), verify and validate results, and its lineage graph. The
style, the scripts (mermaid included) and the images are inside the file.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from datactl.core.errors import UsageError
from datactl.format.objects import FILE
from datactl.ui import pages
from datactl.ui.preview import DELIMITERS, IMAGE_TYPES, JSON_LINES, file_suffix, preview_file
from datactl.ui.render import environment, render
from datactl.ui.session import StoreSession

TABLES = 5  # tables previewed
TABLE_ROWS = 20
IMAGES = 4  # images shown
IMAGE_BYTES = 1024 * 1024  # the largest image put in the report
TABLE_SUFFIXES = (*DELIMITERS, *JSON_LINES, ".parquet")


def report_data(s: StoreSession, name: str, version: str | None, against: str | None = None) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready data."""
    v = s.version(name, version)
    sizes: list[tuple[str, int]] = []
    tables, images = [], []
    for path, e in s.walk(v):  # one streaming pass: only the few files previewed are read
        if e.kind != FILE:
            continue
        sizes.append((e.name, e.size))
        suffix = file_suffix(e.name)
        if suffix in TABLE_SUFFIXES and len(tables) < TABLES:
            with s.open_file(e, path) as f:
                tables.append({"path": path, "preview": preview_file(f, e.name, e.size, 0, TABLE_ROWS).to_dict()})
        elif suffix in IMAGE_TYPES and len(images) < IMAGES and e.size <= IMAGE_BYTES:
            with s.open_file(e, path) as f:
                encoded = base64.b64encode(f.read()).decode("ascii")
            images.append({"path": path, "data": f"data:{IMAGE_TYPES[suffix]};base64,{encoded}"})
    types, pie = pages.types_chart(sizes)
    diff = pages.diff_page(s, name, v.id[:12], against)
    return {
        "page": "report", "store": s.label, "version": pages.version_info(s, v), "files": len(sizes), "bytes": sum(n for _, n in sizes),
        "types": types, "types_chart": pie, "tables": tables, "images": images,
        "diff": {k: diff[k] for k in ("against", "summary", "changes", "truncated")},
        "checks": pages.checks_data(s, v), "lineage": pages.lineage_data(s.lineage(v, "both")),
    }


def write_report(s: StoreSession, ref: str, path: str, against: str | None = None) -> dict[str, Any]:
    """Write the report of ``ref`` (NAME or NAME@VERSION) to ``path``; return its data."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # said before any reading, not after
        raise UsageError(f"cannot write {path}: there is no folder {folder}", "create it, or give another --html FILE")
    name, _, version = ref.partition("@")
    data = report_data(s, name, version or None, against)
    html = render(environment(), "report.html", data, inline=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(tmp, path)
    return data

