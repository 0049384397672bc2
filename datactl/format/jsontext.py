"""JSON as datactl stores it: canonical when it names an object, and parsed defensively.

Canonical JSON (sorted keys, no spaces, UTF-8) makes the same content give
the same bytes, hence the same id, on every machine. Parsing takes bytes from
a store, which may be hostile: any way the text fails to be JSON (including
nesting deep enough to exhaust the parser, or numbers too large) is a
``ValueError`` for the caller to turn into its own error.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_plain_json(value: Any) -> bytes:
    """``canonical_json`` of a plain value: strings, integers within 64 bits, booleans, None, lists and dicts with
    string keys (a tree's entries). The same bytes (a property test holds the two to it), written by orjson, about
    13 times faster; a bigger integer, a key that is not a string or a string that is not UTF-8 raises TypeError.
    (A float is written, but not promised the json module's bytes: trees hold none.)"""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"not plain JSON: {exc}") from None


def parse_plain_json(data: bytes) -> Any:
    """``parse_json`` of what ``canonical_plain_json`` writes, by orjson (about twice as fast): ValueError for any
    text that is not JSON, nests too deep or holds a string that is not UTF-8. An integer beyond 64 bits comes back
    as a float, which a decoder refuses where it wants an integer."""
    return orjson.loads(data)  # orjson.JSONDecodeError is a ValueError


def parse_json(data: bytes | str) -> Any:
    """The value ``data`` encodes; ValueError when it is not JSON, or nests too deep to parse."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nests too deep") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None
