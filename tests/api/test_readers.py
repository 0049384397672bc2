"""FileReader's transform in worker processes started with spawn: a module-level function works, a lambda is told.

A local store; about 5 s (two spawned pools).
"""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import pytest

from conftest import write
from datactl import Dataset
from datactl.api.readers import FileReader, TransformNotPicklable
from datactl.core.errors import DatactlError


def upper_with_path(path: str, data: bytes) -> tuple[str, bytes]:
    """A transform defined at module level, as docs/training.md shows: workers import it by name."""
    return path, data.upper()


def load(reader: FileReader, i: int):
    return reader[i]


@pytest.fixture
def reader_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    monkeypatch.chdir(tmp_path)
    for i in range(4):
        write(tmp_path / "src" / f"{i}.txt", f"file {i}\n")
    draft = Dataset.create("ds", remote=str(tmp_path / "store"))
    draft.add_files(str(tmp_path / "src"))
    draft.commit("v1", tags=["v1"])
    draft.push()
    return {"name": "ds", "version": "v1", "remote": str(tmp_path / "store")}


def test_a_module_level_transform_runs_in_spawned_workers(reader_args: dict) -> None:
    reader = FileReader(**reader_args, transform=upper_with_path)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.starmap(load, [(reader, i) for i in range(len(reader))])
    assert got == [(f"{i}.txt", f"FILE {i}\n".encode()) for i in range(4)]


def test_a_lambda_transform_is_refused_with_what_to_do(reader_args: dict) -> None:
    reader = FileReader(**reader_args, transform=lambda path, data: data.upper())
    assert reader[0] == b"FILE 0\n"  # in this process it works
    with pytest.raises(TransformNotPicklable) as exc:
        pickle.dumps(reader)
    assert isinstance(exc.value, pickle.PicklingError) and isinstance(exc.value, DatactlError)
    assert "<lambda>" in exc.value.message and "module level" in (exc.value.hint or "")
    with multiprocessing.get_context("spawn").Pool(1) as pool, pytest.raises(TransformNotPicklable, match="cannot be pickled"):
        pool.starmap(load, [(reader, 0)])
