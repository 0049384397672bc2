"""The records gc keeps in a store, and the store lock's content.

``gc/condemned/<run>``: packs a gc run condemned, with their sizes::

    {"format": 1, "run": "<run id>", "time": "<UTC>", "packs": {"<pack id>": size, ...}}

``gc/pruned/<id>``: versions whose files gc may have deleted (their commits and
trees are kept)::

    {"format": 1, "time": "<UTC>", "reason": "gc", "commits": ["<commit id>", ...]}

``locks/gc``: who holds the store lock (informative; the lock itself is the
key's existence, taken by put-if-absent and moved by compare-and-swap)::

    {"format": 1, "id": ..., "command": ..., "host": ..., "pid": ..., "process_start": ..., "time": ..., "seq": N}

A record that does not decode is treated as absent by its readers (an
unreadable condemnation condemns nothing; its packs are condemned again later).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from datactl.core.errors import CorruptObject
from datactl.core.ids import is_object_id
from datactl.format.jsontext import parse_json

FORMAT = 1
_RUN = re.compile(r"[0-9A-Za-z_:-][0-9A-Za-z_.:-]{0,79}")


def encode_condemned(run: str, packs: dict[str, int], time_iso: str) -> bytes:
    return json.dumps({"format": FORMAT, "run": run, "time": time_iso, "packs": dict(sorted(packs.items()))}).encode()


def decode_condemned(key: str, data: bytes) -> tuple[str, dict[str, int]]:
    """(run id, {pack id: size}) of a condemnation record."""
    try:
        doc = parse_json(data)
        run, packs = doc["run"], doc["packs"]
        if (
            doc.get("format") != FORMAT
            or not isinstance(run, str)
            or not _RUN.fullmatch(run)
            or not isinstance(packs, dict)
            or not all(is_object_id(p) and type(n) is int and n >= 0 for p, n in packs.items())
        ):
            raise ValueError("malformed")
        return run, dict(packs)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CorruptObject(f"gc record {key} is malformed") from None


def encode_pruned(commits: Iterable[str], reason: str, time_iso: str) -> bytes:
    return json.dumps({"format": FORMAT, "time": time_iso, "reason": reason, "commits": sorted(commits)}).encode()


def decode_pruned(key: str, data: bytes) -> set[str]:
    """The commit ids a pruned-versions record names."""
    try:
        doc = parse_json(data)
        commits = doc["commits"]
        if doc.get("format") != FORMAT or not isinstance(commits, list) or not all(isinstance(c, str) and is_object_id(c) for c in commits):
            raise ValueError("malformed")
        return set(commits)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CorruptObject(f"gc record {key} is malformed") from None


def encode_lock(fields: dict[str, Any]) -> bytes:
    return json.dumps({"format": FORMAT, **fields}, sort_keys=True).encode()


def decode_lock(data: bytes) -> dict[str, Any]:
    """The lock's fields; {} when they cannot be read (the lock still holds)."""
    try:
        doc = parse_json(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
