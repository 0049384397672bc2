"""Fixtures of the UI tests: the store to browse (built once per run), on a local folder and on the S3 test server."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import pytest

from servers import new_s3_bucket
from ui.ui_data import UiStore, build_workspace, publish_store

pytest.importorskip("starlette")
pytest.importorskip("jinja2")


@contextlib.contextmanager
def _building(root: Path) -> Iterator[None]:
    """While the data is built: an author, a cache under ``root``, and the caller's folder back afterwards."""
    here = os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACTL_AUTHOR", "Ana Lyst <ana@example.com>")
        mp.setenv("DATACTL_CACHE_DIR", str(root / "cache"))
        try:
            yield
        finally:
            os.chdir(here)


@pytest.fixture(scope="session")
def ui_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui")
    with _building(root):
        return build_workspace(root)


@pytest.fixture(scope="session")
def ui_local(ui_workspace: Path) -> UiStore:
    with _building(ui_workspace.parent):
        return publish_store(ui_workspace, str(ui_workspace.parent / "store"), {}, ui_workspace.parent / "cache")


@pytest.fixture(scope="session")
def ui_s3(ui_workspace: Path, s3_server: str) -> UiStore:
    with _building(ui_workspace.parent):
        return publish_store(ui_workspace, f"s3://{new_s3_bucket(s3_server)}/store", {"endpoint_url": s3_server}, ui_workspace.parent / "cache")
