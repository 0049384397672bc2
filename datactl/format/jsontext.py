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


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_json(data: bytes | str) -> Any:
    """The value ``data`` encodes; ValueError when it is not JSON, or nests too deep to parse."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nests too deep") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None
