"""Versions built through the library, for tests whose data would take too long to write as real files."""

from __future__ import annotations

from typing import Iterator

from datactl.core.ids import object_id
from datactl.format.objects import FILE, Commit, TreeEntry
from datactl.format.pack import ObjectType
from datactl.lineage.index import record_local_commit
from datactl.store.trees import build_tree
from datactl.workspace.workspace import Workspace


def record_version(ws: Workspace, tree: str, parent: str | None, tag: str, time: str) -> str:
    """Commit ``tree`` as the dataset's next version and tag it, as `datactl commit --tag` records one."""
    commit = Commit(tree, (parent,) if parent else (), ws.kind, ws.name, f"version {tag}", "Test <t@example.com>", time, (tag,))
    cid = ws.repo.put(ObjectType.COMMIT, commit.encode())
    ws.repo.flush()  # objects durable before any ref names them
    ws.repo.refs.update(ws.head_ref, cid, expected=parent)
    ws.create_tag(tag, cid)
    record_local_commit(ws.repo, cid)
    return cid


def tiny_file(n: int) -> bytes:
    """The content of the ``n``-th file of a version of distinct tiny files."""
    return b"file number %d\n" % n


def tiny_file_path(n: int, per_folder: int) -> str:
    return f"d{n // per_folder:04d}/f{n:07d}.bin"


def record_tiny_files(ws: Workspace, files: int, per_folder: int, tag: str) -> str:
    """Record a first version of ``files`` distinct tiny files, ``per_folder`` to a folder: each file its own object.

    The chunks go in batches (one chunk is a whole tiny file, its id the file's digest) and the trees are built
    as the paths stream by, so a million files take half a minute and little memory."""
    batch: list[tuple[str, bytes]] = []

    def listing() -> Iterator[tuple[str, TreeEntry]]:
        for n in range(files):
            raw = tiny_file(n)
            oid = object_id(raw)
            batch.append((oid, raw))
            if len(batch) == 20_000:
                ws.repo.put_many(ObjectType.CHUNK, batch)
                ws.repo.settle()
                batch.clear()
            yield tiny_file_path(n, per_folder), TreeEntry("", FILE, 0o644, len(raw), oid, (oid,), None)
        ws.repo.put_many(ObjectType.CHUNK, batch)

    return record_version(ws, build_tree(ws.repo, listing()), None, tag, "2024-01-01T00:00:00+00:00")
