"""What each page shows, as plain data: the HTML pages render it, ``?format=json`` returns it as it is.

Every builder takes a ``StoreSession`` and returns a JSON-ready dict. URLs in
it are relative to the server's root (``/d/NAME@VERSION/path``); names and
paths are data here and are escaped where they are rendered.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from datactl.core.errors import UsageError
from datactl.format.objects import DIR, FILE, Commit, TreeEntry
from datactl.lineage.graph import BOTH, DIRECTIONS, LineageGraph
from datactl.store.diff import DiffResult
from datactl.store.refs import DatasetInfo
from datactl.ui.preview import TABLE_ROWS, file_suffix, preview_file
from datactl.ui.session import StoreSession, Version

HISTORY_PAGE = 50  # versions on a dataset page
COUNT_CAP = 1000  # versions counted on the store page ("1000+" beyond)
FOLDER_PAGE = 200  # entries on a folder page
DIFF_SHOWN = 1000  # changes listed on a diff page (the summary counts all)
_SAFE_LABEL = re.compile(r"[^A-Za-z0-9._+-]")


def version_url(ref: str, path: str = "", page: str = "d") -> str:
    """``/d/NAME@VERSION/path`` (and the diff, lineage and checks pages of a version under their own prefix)."""
    tail = quote(path, safe="/") if path else ""
    return f"/{page}/{quote(ref, safe='@')}/{tail}"


def raw_url(ref: str, path: str) -> str:
    return version_url(ref, path, "raw")


def _mermaid_id(cid: str) -> str:
    """The node id lineage's mermaid drawing gives a version (``datactl.lineage.graph``)."""
    return f"v{cid[:12]}"


def _int(value: str | None, default: int, top: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise UsageError(f"expected a whole number, not {value!r}")
    return min(int(value), top)


# -- the store -------------------------------------------------------------------------------------


def _matches(words: list[str], info: DatasetInfo, commit: Commit | None) -> bool:
    """Every word is in the name or a tag, or (``key=value``) a metadata value of the head."""
    for w in words:
        key, eq, value = w.partition("=")
        if eq:
            meta = commit.metadata if commit else {}
            if key not in meta or str(meta[key]) != value:
                return False
        elif w.lower() not in info.name.lower() and not any(w.lower() in t.lower() for t in info.tags):
            return False
    return True


def store_page(s: StoreSession, q: str = "") -> dict[str, Any]:
    infos = s.datasets()
    s.prefetch_commits()
    heads = s.commits([i.head for i in infos])
    words = q.split()
    rows = []
    for i in infos:
        c = heads.get(i.head)
        if not _matches(words, i, c):
            continue
        n = len(s.history(i.head, COUNT_CAP + 1))
        rows.append({
            "name": i.name, "kind": i.kind, "head": i.head, "tags": sorted(i.tags),
            "time": c.time if c else None, "message": c.message if c else None,
            "bytes": _tree_bytes(s, c) if c else None,
            "versions": n if n <= COUNT_CAP else f"{COUNT_CAP}+",
            "url": f"/d/{quote(i.name)}",
        })
    return {"page": "store", "store": s.label, "query": q, "datasets": rows, "total": len(infos)}


def _tree_bytes(s: StoreSession, c: Commit) -> int:
    """Bytes of a version: a folder's entry carries the size below it, so the root tree alone tells."""
    return sum(e.size for e in s.objects.read_tree(c.tree).entries)


# -- a dataset or model ------------------------------------------------------------------------------


def version_info(s: StoreSession, v: Version, tags: dict[str, list[str]] | None = None) -> dict[str, Any]:
    c = v.commit
    if tags is None:
        tags = s.tags_of(s.info(c.name))
    return {
        "id": v.id, "short": v.id[:12], "ref": v.ref, "name": c.name, "kind": c.kind, "tags": tags.get(v.id, []),
        "author": c.author, "time": c.time, "message": c.message, "metadata": c.metadata,
        "parents": list(c.parents), "inputs": list(c.inputs), "bytes": _tree_bytes(s, c),
        "url": version_url(v.ref), "history_url": f"/d/{quote(c.name)}",
        "diff_url": version_url(v.ref, page="diff"), "lineage_url": version_url(v.ref, page="lineage"), "checks_url": version_url(v.ref, page="checks"),
    }


def dataset_page(s: StoreSession, name: str, limit: str | None = None) -> dict[str, Any]:
    info = s.info(name)
    tags = s.tags_of(info)
    s.prefetch_commits()
    history = s.history(info.head, _int(limit, HISTORY_PAGE, 10_000))
    versions = []
    for cid, c in history:
        v = Version(cid, c)
        row = version_info(s, v, tags)
        # Against its first parent, reading only what differs; a first version (or a cut history) is all new, and
        # counting its files would read every folder of it.
        first = c.parents[0] if c.parents and s.objects.has(c.parents[0]) else None
        row["changes"] = s.diff(Version(first, s.objects.read_commit(first)), v).summary() if first else None
        versions.append(row)
    shown = {cid for cid, _ in history}
    lines = ["flowchart BT"]
    for row in versions:
        label = " ".join([row["short"][:8], *row["tags"]]) + f"<br/>{row['time'][:10]}"
        lines.append(f'    {_mermaid_id(row["id"])}["{_graph_text(label)}"]')
    for row in versions:
        for p in row["parents"]:
            if p in shown:
                lines.append(f"    {_mermaid_id(p)} --> {_mermaid_id(row['id'])}")
    return {
        "page": "dataset", "store": s.label, "name": info.name, "kind": info.kind, "head": info.head,
        "tags": dict(sorted(info.tags.items())), "versions": versions, "more": len(history) == _int(limit, HISTORY_PAGE, 10_000),
        "graph": "\n".join(lines) + "\n", "links": {_mermaid_id(r["id"]): r["url"] for r in versions},
    }


def _graph_text(text: str) -> str:
    """Text for a mermaid label: its quote is the one character the label syntax reserves."""
    return text.replace('"', "#quot;")


# -- a version: folders and files ----------------------------------------------------------------------


def _entry_row(ref: str, path: str, e: TreeEntry) -> dict[str, Any]:
    return {"name": e.name, "kind": e.kind, "size": e.size, "digest": e.digest, "path": path,
            "url": version_url(ref, path + ("/" if e.kind == DIR else ""))}


def types_chart(files: list[tuple[str, int]]) -> tuple[list[dict[str, Any]], str]:
    """Files by type (suffix): counts and bytes, and a mermaid pie of the counts."""
    by: dict[str, list[int]] = {}
    for name, size in files:
        suffix = file_suffix(name) or "(none)"
        key = suffix if not _SAFE_LABEL.search(suffix) else "(other)"  # the chart's labels are never a file's raw text
        by.setdefault(key, [0, 0])
        by[key][0] += 1
        by[key][1] += size
    rows = [{"type": k, "files": n, "bytes": b} for k, (n, b) in sorted(by.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    pie = "pie showData\n" + "".join(f'    "{r["type"]}" : {r["files"]}\n' for r in rows) if rows else ""
    return rows, pie


def version_page(s: StoreSession, name: str, version: str, path: str = "", offset: str | None = None, limit: str | None = None) -> dict[str, Any]:
    v = s.version(name, version)
    path = path.strip("/")
    entry = s.entry(v, path)
    if entry.kind != DIR:
        return file_page(s, v, path, entry, offset, limit)
    entries = sorted(s.folder(entry), key=lambda e: (e.kind != DIR, e.name))
    start, count = _int(offset, 0, 10**9), _int(limit, FOLDER_PAGE, 5000)
    shown = entries[start : start + count]
    prefix = f"{path}/" if path else ""
    s.objects.read_batch([e.digest for e in shown if e.kind == DIR])  # one read for the page's folders
    rows = [_entry_row(v.ref, prefix + e.name, e) for e in shown]
    for row in rows:
        if row["kind"] == DIR:
            row["items"] = len(s.objects.read_tree(row["digest"]).entries)
    types, pie = types_chart([(e.name, e.size) for e in entries if e.kind == FILE])
    return {
        "page": "version", "store": s.label, "version": version_info(s, v), "path": path, "crumbs": _crumbs(v.ref, path),
        "entries": rows, "total": len(entries),
        "folders": sum(1 for e in entries if e.kind == DIR), "files": sum(1 for e in entries if e.kind != DIR),
        "offset": start, "limit": count, "more": start + count < len(entries), "types": types, "types_chart": pie,
        "bytes": entry.size if path else sum(e.size for e in entries),
    }


def _crumbs(ref: str, path: str) -> list[dict[str, str]]:
    crumbs = [{"name": ref, "url": version_url(ref)}]
    parts = path.split("/") if path else []
    for i, part in enumerate(parts):
        sub = "/".join(parts[: i + 1])
        crumbs.append({"name": part, "url": version_url(ref, sub + ("/" if i < len(parts) - 1 else ""))})
    return crumbs


def file_page(s: StoreSession, v: Version, path: str, entry: TreeEntry, offset: str | None = None, limit: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "page": "file", "store": s.label, "version": version_info(s, v), "path": path, "crumbs": _crumbs(v.ref, path),
        "kind": entry.kind, "size": entry.size, "digest": entry.digest, "raw": raw_url(v.ref, path), "url": version_url(v.ref, path),
    }
    if entry.kind != FILE:
        data["target"] = entry.target
        return data
    with s.open_file(entry, path) as f:
        data["preview"] = preview_file(f, entry.name, entry.size, _int(offset, 0, 10**9), _int(limit, TABLE_ROWS, 500)).to_dict()
    return data


# -- diff, lineage, checks --------------------------------------------------------------------------------


def diff_page(s: StoreSession, name: str, version: str, against: str | None = None) -> dict[str, Any]:
    new = s.version(name, version)
    if against:
        other, _, other_version = against.partition("@") if "@" in against else (name, "", against)
        old: Version | None = s.version(other, other_version or None)
    else:
        old = Version(new.commit.parents[0], s.objects.read_commit(new.commit.parents[0])) if new.commit.parents else None
    result = s.diff(old, new)
    return {
        "page": "diff", "store": s.label, "version": version_info(s, new), "against": version_info(s, old) if old else None,
        **diff_data(new.ref, result),
    }


def diff_data(ref: str, result: DiffResult) -> dict[str, Any]:
    changes = [{**c.to_dict(), "url": version_url(ref, c.path) if c.status != "removed" else None} for c in result.changes[:DIFF_SHOWN]]
    return {"summary": result.summary(), "changes": changes, "truncated": len(result.changes) > DIFF_SHOWN}


def lineage_page(s: StoreSession, name: str, version: str, direction: str | None = None) -> dict[str, Any]:
    direction = direction or BOTH
    if direction not in DIRECTIONS:
        raise UsageError(f"direction must be one of {', '.join(DIRECTIONS)}")
    v = s.version(name, version)
    return {"page": "lineage", "store": s.label, "version": version_info(s, v), "direction": direction, **lineage_data(s.lineage(v, direction))}


def lineage_data(graph: LineageGraph) -> dict[str, Any]:
    """The graph as JSON, as mermaid (what ``datactl lineage --format mermaid`` prints), and each node's page."""
    links = {_mermaid_id(n.id): version_url(f"{n.name}@{n.id[:12]}") for n in graph.nodes.values() if n.name is not None}
    return {"graph": graph.to_dict(), "mermaid": graph.render("mermaid"), "links": links}


def checks_page(s: StoreSession, name: str, version: str, run: bool = False) -> dict[str, Any]:
    v = s.version(name, version)
    data: dict[str, Any] = {"page": "checks", "store": s.label, "version": version_info(s, v), "ran": run}
    if run:
        data.update(checks_data(s, v))
    return data


def checks_data(s: StoreSession, v: Version) -> dict[str, Any]:
    """``verify`` and ``validate`` of the version; a missing rule set is said, not an error."""
    out: dict[str, Any] = {"verify": s.verify(v).to_dict()}
    try:
        out["validate"] = s.validate(v).to_dict()
    except UsageError as exc:
        out["validate"], out["validate_note"] = None, f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")
    return out
