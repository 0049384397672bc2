"""The per-key lock of a folder store's compare-and-swap: a live writer's lock is waited for, a killed writer's is taken over at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import storage_backends.local as local
from storage_backends import BackendError
from storage_backends.local import LocalBackend

HOLDER = textwrap.dedent(
    """
    import os, signal, sys, time
    from storage_backends.local import LocalBackend
    backend = LocalBackend(sys.argv[1])
    backend._acquire(backend._path("refs/datasets/ds") + ".lock")
    print("held", flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)
    """
)


def start_holder(root: Path, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_writer_killed_holding_the_lock_does_not_block_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "LOCK_WAIT_SECONDS", 1.0)  # far less than the age a lock file once needed to be thought dead
    backend = LocalBackend(str(tmp_path))
    backend.put_bytes("refs/datasets/ds", b"v1")
    holder = start_holder(tmp_path, "die")
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / "refs" / "datasets" / "ds.lock").exists(), "the killed writer left its lock file"

    assert backend.compare_and_swap("refs/datasets/ds", b"v2", backend.get_versioned("refs/datasets/ds"))
    assert backend.get("refs/datasets/ds") == b"v2"
    assert not (tmp_path / "refs" / "datasets" / "ds.lock").exists()


def test_a_live_writers_lock_is_waited_for_and_then_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "LOCK_WAIT_SECONDS", 0.5)
    backend = LocalBackend(str(tmp_path))
    backend.put_bytes("refs/datasets/ds", b"v1")
    holder = start_holder(tmp_path, "hold")
    try:
        with pytest.raises(BackendError, match="held by another writer"):
            backend.compare_and_swap("refs/datasets/ds", b"v2", backend.get_versioned("refs/datasets/ds"))
        assert backend.get("refs/datasets/ds") == b"v1"
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert backend.compare_and_swap("refs/datasets/ds", b"v2", backend.get_versioned("refs/datasets/ds"))
    assert backend.get("refs/datasets/ds") == b"v2"


def test_writers_racing_over_abandoned_locks_each_swap_once(tmp_path: Path) -> None:
    """Eight processes each make 30 increments by compare-and-swap, some killed while holding the lock: no increment is lost."""
    backend = LocalBackend(str(tmp_path))
    backend.put_bytes("refs/counter", b"0")
    script = textwrap.dedent(
        """
        import sys
        from storage_backends.local import LocalBackend
        backend = LocalBackend(sys.argv[1])
        done = 0
        while done < 30:
            current = backend.get_versioned("refs/counter")
            if backend.compare_and_swap("refs/counter", str(int(current.data) + 1).encode(), current):
                done += 1
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)]) for _ in range(8)]
    killed = [start_holder(tmp_path, "die") for _ in range(3)]  # writers that die holding the lock, amid the others
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert all(k.wait(timeout=60) == -signal.SIGKILL for k in killed)
    assert backend.get("refs/counter") == b"240"
    assert not any(name.endswith(".lock") for name in os.listdir(tmp_path / "refs"))
