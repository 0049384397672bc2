"""The ``listing`` file: kept true by every writer, read instead of a listing where the server cannot list.

``ListedBackend`` wraps the backend of a store opened by URL. On a store that
can be written, a write that adds or removes a key under a listed prefix (an
index file, a new or deleted ref, a gc record) marks that prefix stale; stale
prefixes are refreshed (listed, merged into the listing, compare-and-swapped,
and started over if another writer swapped first) before the next write of a
ref and before a store lock is released, so a push refreshes once, before its
head moves, and a gc once, before it lets go of the store. A new or deleted ref
is refreshed at once. Each successful swap listed after the swap before it, so
the last one is true of every write made before it, and every later write is
followed by its own refresh. Index files are listed before the refs that need
them move, so a reader never finds a ref whose objects the listing cannot lead
to. A store written before the listing existed gets a whole one on its first
refresh; a writer killed before its refresh leaves the next one to catch up.

On a store that cannot list (``listable = False``: HTTP), ``list`` answers
from the listing, and writes are refused (``read_only``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

from datactl.core.errors import RefConflict, StoreFormatError, StoreNotListable, StoreReadOnly
from datactl.format.layout import LISTED_PREFIXES, LISTING_KEY, LOCKS_PREFIX, REFS_PREFIX, listed_prefix
from datactl.format.listing import decode_listing, encode_listing
from storage_backends import Backend, KeyNotFound, ObjectInfo, Versioned

SWAP_ATTEMPTS = 30


class ListedBackend(Backend):
    """``inner`` with its ``listing`` file kept true on writes, and used for ``list`` when ``inner`` cannot list."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.read_only = bool(getattr(inner, "read_only", False))
        self.listable = bool(getattr(inner, "listable", True))
        self._stale: set[str] = set()  # listed prefixes written since the last refresh
        self._stale_lock = threading.Lock()  # packs and their index files go up from several threads

    # -- reads ------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def open_read(self, key: str) -> BinaryIO:
        return self.inner.open_read(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def get_versioned(self, key: str) -> Versioned | None:
        if key.startswith(REFS_PREFIX):
            self.flush()  # a writer reads a ref before it swaps it, and may stop there (the remote moved on)
        return self.inner.get_versioned(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if self.listable:
            yield from self.inner.list(prefix)
            return
        if not any(prefix.startswith(p) for p in LISTED_PREFIXES):
            raise StoreNotListable(
                f"cannot list {prefix or '/'} in {self.url}: its server cannot list, and the store's listing names only "
                f"{', '.join(LISTED_PREFIXES)}",
                "run this on the store behind the web server",
            )
        for key, size in sorted(read_listing(self.inner).items()):
            if key.startswith(prefix):
                yield ObjectInfo(key=key, size=size, mtime=0.0)  # unknown: readers of mtimes take 0 as "long ago"

    # -- writes -----------------------------------------------------------------------

    def put_file(self, key: str, path: str) -> None:
        self._before(key)
        self.inner.put_file(key, path)
        self._after(key)

    def move_file_in(self, key: str, path: str) -> None:
        self._before(key)
        self.inner.move_file_in(key, path)
        self._after(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._before(key)
        self.inner.put_bytes(key, data)
        self._after(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._before(key)
        stored = self.inner.put_if_absent(key, data)
        self._after(key)  # also when another writer stored it: its refresh may not have happened yet
        return stored

    def compare_and_swap(self, key: str, data: bytes | None, expected: Versioned | None) -> bool:
        self._before(key)
        swapped = self.inner.compare_and_swap(key, data, expected)
        if swapped and (expected is None or data is None):  # a key made or removed; a moved ref keeps its name
            self._after(key)
        return swapped

    def delete(self, key: str) -> None:
        self._before(key)
        self.inner.delete(key)
        self._after(key)

    def _before(self, key: str) -> None:
        """Refuse writes to a read-only store; refresh what is stale before a ref moves or a lock is let go."""
        if self.read_only:
            raise StoreReadOnly(
                f"cannot write {key} to {self.url}: it is served over HTTP, which is read-only",
                "push to the store behind it (the folder or bucket the web server serves)",
            )
        if key.startswith((REFS_PREFIX, LOCKS_PREFIX)):
            self.flush()

    def _after(self, key: str) -> None:
        prefix = listed_prefix(key)
        if prefix == REFS_PREFIX:
            refresh_listing(self.inner, (REFS_PREFIX,))  # nothing else may follow a new tag: list it now
        elif prefix is not None:
            with self._stale_lock:
                self._stale.add(prefix)

    def flush(self) -> None:
        """Bring the listing up to date with the writes made through this backend."""
        with self._stale_lock:
            stale, self._stale = tuple(sorted(self._stale)), set()
        if stale:
            refresh_listing(self.inner, stale)


def read_listing(backend: Backend) -> dict[str, int]:
    """key -> size from the store's listing; StoreNotListable when it has none."""
    try:
        data = backend.get(LISTING_KEY)
    except KeyNotFound:
        raise StoreNotListable(
            f"{backend.url} has no listing file, which a store served over HTTP needs (stores written before it existed lack it)",
            "push to the store behind the web server once (or run `datactl fsck --repair` on it): that writes one",
        ) from None
    return decode_listing(data, backend.url)


def refresh_listing(backend: Backend, prefixes: tuple[str, ...] = LISTED_PREFIXES) -> None:
    """List ``prefixes`` of ``backend`` (every listed prefix when there is no listing yet) into its listing, by compare-and-swap."""
    for _ in range(SWAP_ATTEMPTS):
        current = backend.get_versioned(LISTING_KEY)
        entries: dict[str, int] = {}
        relist = prefixes
        if current is None:
            relist = LISTED_PREFIXES
        else:
            try:
                entries = decode_listing(current.data, backend.url)
            except StoreFormatError:
                relist = LISTED_PREFIXES  # a damaged listing is replaced whole
        entries = {k: v for k, v in entries.items() if listed_prefix(k) not in relist}
        for prefix in relist:
            entries.update((info.key, info.size) for info in backend.list(prefix))
        data = encode_listing(entries)
        if current is not None and current.data == data:
            return
        if backend.compare_and_swap(LISTING_KEY, data, current):
            return
        time.sleep(random.uniform(0, 0.02))
    raise RefConflict(f"the listing of {backend.url} kept moving under other writers", "run the command again")
