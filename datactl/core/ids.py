"""Object ids: xxh3-128 of the content, as 32 lowercase hex characters."""

from __future__ import annotations

import re
from typing import Protocol

import xxhash

ID_HEX_LEN = 32
ID_BYTES = 16
_HEX = re.compile(r"[0-9a-f]+")


def object_id(data: bytes | memoryview) -> str:
    """The id of ``data``."""
    return xxhash.xxh3_128_hexdigest(data)


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def new_hasher() -> Hasher:
    """A streaming hasher whose ``hexdigest()`` equals ``object_id`` of all fed bytes."""
    return xxhash.xxh3_128()


def is_hex(text: str) -> bool:
    return isinstance(text, str) and _HEX.fullmatch(text) is not None


def is_object_id(text: object) -> bool:
    return isinstance(text, str) and len(text) == ID_HEX_LEN and is_hex(text)


def all_object_ids(values: list) -> bool:
    """Whether every item of ``values`` is an object id: one regex over all of them, for the thousands a tree holds."""
    try:
        joined = "".join(values)
    except TypeError:  # an item that is not a string
        return False
    return not values or (set(map(len, values)) == {ID_HEX_LEN} and _HEX.fullmatch(joined) is not None)


def hash_file(path: str, block_size: int = 1 << 20) -> str:
    """The id of a file's whole content, read in blocks."""
    h = new_hasher()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(block_size):
            h.update(block)
    return h.hexdigest()
