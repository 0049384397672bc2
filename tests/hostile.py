"""Versions written by hand, as a faulty or hostile tool could write them, with datactl's own encoders."""

from __future__ import annotations

from pathlib import Path

from datactl.core.ids import object_id
from datactl.format.layout import tag_ref
from datactl.format.objects import FILE, Commit, TreeEntry
from datactl.format.pack import ObjectType
from datactl.store.trees import build_tree
from datactl.workspace.workspace import Workspace


def plant_version(ws_dir: Path, files: dict[str, bytes], tag: str, message: str = "planted", latest: bool = False) -> str:
    """Commit ``files`` (path -> bytes) on top of HEAD without any of datactl's checks; tag it ``tag`` (with
    ``latest``, also make it the dataset's latest version, as a push would publish it); return its id."""
    with Workspace.open(str(ws_dir)) as ws:
        entries = []
        for path in sorted(files, key=lambda p: p.encode()):
            data = files[path]
            oid = object_id(data)
            ws.repo.put(ObjectType.CHUNK, data, oid)
            entries.append((path, TreeEntry(path.rsplit("/", 1)[-1], FILE, 0o644, len(data), oid, (oid,))))
        tree_id = build_tree(ws.repo, entries)
        commit = Commit(tree_id, (ws.head,) if ws.head else (), ws.kind, ws.name, message, "x", "2026-01-01T00:00:00Z")
        cid = ws.repo.put(ObjectType.COMMIT, commit.encode())
        ws.repo.flush()
        ws.repo.refs.update(tag_ref(ws.name, tag), cid, None)
        if latest:
            ws.repo.refs.update(ws.head_ref, cid, expected=ws.head)
    return cid
