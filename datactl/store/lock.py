"""The store lock, ``locks/gc``: keeps two gcs (and fsck --repair) apart. Writers never take it.

Created with put-if-absent, refreshed by compare-and-swap every
``refresh_every`` seconds from a background thread, removed by
compare-and-swap. A lock is stale when its process is gone (same host) or it
was not refreshed for ``stale_after`` seconds; a stale lock is taken over by
compare-and-swap, so two processes cannot both take it over.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

from datactl.core.errors import DatactlError, StoreLocked
from datactl.core.units import format_duration, iso_seconds
from datactl.format.gcrecords import decode_lock, encode_lock
from datactl.format.layout import GC_LOCK_KEY, LOCKS_PREFIX
from storage_backends import Backend, BackendError, Versioned

# A lock not refreshed for this long belongs to a process that died (its owner refreshes it every LOCK_REFRESH).
LOCK_STALE = 30 * 60.0
LOCK_REFRESH = 60.0


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


class StoreLock:
    """The store lock of ``backend``, held by ``command`` (see the module doc)."""

    def __init__(self, backend: Backend, command: str = "gc", stale_after: float = LOCK_STALE, refresh_every: float = LOCK_REFRESH) -> None:
        self.backend = backend
        self.command = command
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.id = uuid.uuid4().hex
        self.took_over: str | None = None
        self._seq = 0
        self._version: Versioned | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    def _doc(self) -> bytes:
        self._seq += 1
        pid = os.getpid()
        return encode_lock(
            {
                "id": self.id, "command": self.command, "host": socket.gethostname(), "pid": pid,
                "process_start": _process_start(pid), "time": iso_seconds(time.time()), "seq": self._seq,
            }
        )

    def _age(self) -> float | None:
        for info in self.backend.list(LOCKS_PREFIX):
            if info.key == GC_LOCK_KEY:
                return time.time() - info.mtime
        return None

    def _stale_reason(self, doc: dict) -> str | None:
        pid = doc.get("pid")
        if doc.get("host") == socket.gethostname() and type(pid) is int and 0 < pid < 2**31:
            if not _process_alive(doc["pid"], doc.get("process_start")):
                return f"its process {doc['pid']} on {doc['host']} is gone"
        age = self._age()
        if age is not None and age > self.stale_after:
            return f"it was not refreshed for {format_duration(round(age))}"
        return None

    def acquire(self) -> "StoreLock":
        for _ in range(5):
            data = self._doc()
            if self.backend.put_if_absent(GC_LOCK_KEY, data):
                current = self.backend.get_versioned(GC_LOCK_KEY)
                if current is not None and decode_lock(current.data).get("id") == self.id:
                    self._version = current
                    break
                continue
            current = self.backend.get_versioned(GC_LOCK_KEY)
            if current is None:
                continue
            doc = decode_lock(current.data)
            if doc.get("id") == self.id:  # our put went through but its answer was lost
                self._version = current
                break
            reason = self._stale_reason(doc)
            if reason is None:
                who = f"{doc.get('command', 'gc')} by pid {doc.get('pid', '?')} on {doc.get('host', '?')} since {doc.get('time', '?')}"
                raise StoreLocked(
                    f"{self.backend.url} is locked ({GC_LOCK_KEY}: {who})",
                    "another gc or fsck --repair is running; wait for it (a lock from a dead process is taken over "
                    f"automatically, one from another host after {format_duration(self.stale_after)} without refresh)",
                )
            if self.backend.compare_and_swap(GC_LOCK_KEY, data, current):
                self.took_over = reason
                self._version = self.backend.get_versioned(GC_LOCK_KEY)
                break
        else:
            raise StoreLocked(f"could not take {GC_LOCK_KEY} in {self.backend.url}: it keeps changing", "try again")
        if self.refresh_every > 0:
            self._thread = threading.Thread(target=self._beat, name="datactl-gc-lock", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                self.refresh()
            except DatactlError:
                return
            except BackendError:
                continue  # try again at the next beat; a lock stays valid for LOCK_STALE

    def refresh(self) -> None:
        with self._mutex:
            if self.lost:
                raise StoreLocked(self.lost)
            data = self._doc()
            if not self.backend.compare_and_swap(GC_LOCK_KEY, data, self._version):
                current = self.backend.get_versioned(GC_LOCK_KEY)
                if current is not None and decode_lock(current.data).get("id") == self.id and current.data == data:
                    self._version = current  # our write landed, its answer was lost
                    return
                self.lost = f"the gc lock of {self.backend.url} was taken over by another process"
                raise StoreLocked(self.lost, "nothing more was changed; run gc again")
            self._version = self.backend.get_versioned(GC_LOCK_KEY)

    def check(self) -> None:
        """Raise if the lock was lost (before every destructive step)."""
        if self.lost:
            raise StoreLocked(self.lost, "nothing more was changed; run gc again")

    def server_time(self) -> float:
        """The store's clock: refresh the lock, then read its modification time."""
        self.refresh()
        for info in self.backend.list(LOCKS_PREFIX):
            if info.key == GC_LOCK_KEY:
                return info.mtime
        return time.time()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._mutex:
            try:
                current = self.backend.get_versioned(GC_LOCK_KEY)
                if current is not None and decode_lock(current.data).get("id") == self.id:
                    self.backend.compare_and_swap(GC_LOCK_KEY, None, current)
            except BackendError:
                pass  # a lock left behind goes stale

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
