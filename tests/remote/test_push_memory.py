"""A push of a million distinct tiny files stays under the memory bound.

The files are made through the library (``record_tiny_files``, about 30 s): each is its own object, so the push
packs and uploads a million objects over a thousand trees of a thousand entries. It peaked at 630 MB while one
pack could hold every object and a level of trees was read at once; it is about 100 MB now. About 90 s in all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builtversions import record_tiny_files
from conftest import run_datactl
from datactl.workspace.workspace import Workspace
from peakrss import bounded

FILES = 1_000_000


@pytest.mark.heavy
def test_push_of_a_million_tiny_files(tmp_path: Path) -> None:
    root, remote = tmp_path / "ws", tmp_path / "remote"
    root.mkdir()
    assert run_datactl(["init", "--name", "million"], root).returncode == 0
    with Workspace.open(str(root)) as ws:
        record_tiny_files(ws, FILES, 1_000, "v1")
    m = bounded(f"push of {FILES} tiny files", ["-m", "datactl", "push", str(remote), "--json"], root)
    assert json.loads(m.stdout)["objects"] == FILES + 1_000 + 1 + 1  # the files, their thousand folders, the root, the commit
