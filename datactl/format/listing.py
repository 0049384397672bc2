"""The ``listing`` blob: the keys a reader would list, for stores whose server cannot list (HTTP).

Text, ASCII::

    datactl-listing 1
    index/<id> <size>
    refs/datasets/<name> <size>
    ...

one key and its size in bytes per line, in byte order, each under one of
``LISTED_PREFIXES`` (format/layout.py). Writers keep it true (store/listing.py);
a reader trusts nothing in it: a key that is not there any more reads as
missing, like a key deleted after a real listing.
"""

from __future__ import annotations

from datactl.core.errors import StoreFormatError
from datactl.format.layout import listed_prefix
from storage_backends import validate_key

MAGIC = "datactl-listing 1"
MAX_SIZE = 1 << 60


def encode_listing(entries: dict[str, int]) -> bytes:
    """The listing of ``entries`` (key -> size); the same entries give the same bytes."""
    lines = [MAGIC, *(f"{key} {entries[key]}" for key in sorted(entries))]
    return ("\n".join(lines) + "\n").encode("ascii")


def decode_listing(data: bytes, where: str) -> dict[str, int]:
    """key -> size from a listing blob, every line checked; StoreFormatError naming ``where`` otherwise."""
    def bad(why: str) -> StoreFormatError:
        return StoreFormatError(f"the listing of {where} is damaged: {why}", "any push to the store behind it writes it again")

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise bad("it is not ASCII text") from None
    lines = text.split("\n")
    if lines[0] != MAGIC:
        raise bad(f"it starts with {lines[0][:40]!r}, not {MAGIC!r}")
    if lines[-1] != "":
        raise bad("its last line is cut")
    out: dict[str, int] = {}
    previous = ""
    for line in lines[1:-1]:
        key, _, size = line.partition(" ")
        try:
            validate_key(key)
        except ValueError:
            raise bad(f"{key[:80]!r} is not a store key") from None
        if listed_prefix(key) is None:
            raise bad(f"{key[:80]!r} is outside the listed prefixes")
        if not size.isdigit() or len(size) > 19 or int(size) > MAX_SIZE:
            raise bad(f"the size of {key} is {size[:40]!r}")
        if key <= previous:
            raise bad(f"{key} is out of order or repeated")
        out[key] = int(size)
        previous = key
    return out
