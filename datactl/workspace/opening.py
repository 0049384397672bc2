"""Opening a workspace's parts: its settings, its lock, its local store, and what its sparse paths hold."""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from datactl.core.errors import DatactlError, UsageError
from datactl.core.settings import read_settings, settings_path
from datactl.format.layout import KINDS, WorkspaceLayout, check_name
from datactl.store.backend import local_store_backend
from datactl.store.index import ObjectIndex
from datactl.store.repository import ObjectClaims, Repository, read_store_config

_log = logging.getLogger("datactl.workspace")


@dataclass(frozen=True)
class WorkspaceConfig:
    name: str
    kind: str


def scope_test(scope: list[str]) -> Callable[[str], bool]:
    """Whether a path is inside ``scope`` (sparse paths: files or folders; empty means everything)."""
    if not scope or "" in scope:
        return lambda path: True
    return lambda path: any(path == p or path.startswith(p + "/") for p in scope)


def read_workspace_config(root: str) -> WorkspaceConfig:
    section = read_settings(root).get("dataset", {})
    name, kind = section.get("name"), section.get("kind", "dataset")
    if not isinstance(name, str) or kind not in KINDS:
        raise UsageError(f"{settings_path(root)}: [dataset] needs name = \"...\" and kind = \"dataset\" or \"model\"")
    return WorkspaceConfig(check_name(name), kind)


def commit_rules_may_be_on(root: str) -> bool:
    """False only when datactl.toml plainly leaves ``[validate] on_commit`` off; anything else is for the hook to read
    (which imports the rules, tens of milliseconds a commit without them need not pay)."""
    table = read_settings(root).get("validate", {})
    return not isinstance(table, dict) or table.get("on_commit", False) is not False


@contextmanager
def workspace_lock(layout: WorkspaceLayout) -> Iterator[None]:
    """Hold a workspace's lock (one changing command at a time); refused at once when another holds it."""
    fd = os.open(layout.lock_file, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatactlError("another datactl command is changing this workspace", "wait for it to finish, then retry") from None
        yield
    finally:
        os.close(fd)


def database_present(path: str) -> bool:
    """Whether the SQLite file ``path`` exists with content (in it, or still in its write-ahead log)."""
    for name in (path, path + "-wal"):
        try:
            if os.path.getsize(name) > 0:
                return True
        except FileNotFoundError:
            pass
    return False


def open_store(layout: WorkspaceLayout, announce: bool = True, claims: ObjectClaims | None = None, compress_here: bool = False) -> Repository:
    """A workspace's local store; its object index (index.db, derived from the packs) is rebuilt when missing
    (and, with ``announce``, a warning says so). ``claims``, ``compress_here``: see ``Repository``."""
    backend = local_store_backend(layout.store_dir)
    missing = not database_present(layout.index_db)
    repo = Repository(
        backend, ObjectIndex(layout.index_db), read_store_config(backend), tmp_dir=layout.tmp_dir, claims=claims, compress_here=compress_here
    )
    if missing:
        try:
            rebuilt = repo.rebuild_index()
        except BaseException:
            repo.close()
            raise
        if announce and (rebuilt.packs or rebuilt.damaged):
            _log.warning("%s was missing; rebuilt it from the footers of %d pack(s)", layout.index_db, rebuilt.packs)
        for pack_id, why in rebuilt.damaged.items():
            _log.warning("pack %s left out of the index: %s (`datactl fsck` checks the store)", pack_id, why)
    return repo
