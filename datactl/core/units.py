"""Sizes, durations and times as people write them, and back."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from datactl.core.errors import UsageError

_SIZE_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1024, "M": 10**6, "MB": 10**6, "MIB": 2**20,
               "G": 10**9, "GB": 10**9, "GIB": 2**30, "T": 10**12, "TB": 10**12, "TIB": 2**40}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")


def parse_size(text: str | int) -> int:
    """'50GB', '512MiB', '1000' -> bytes."""
    if isinstance(text, int):
        return text
    t = text.strip().upper().replace(" ", "")
    num = t.rstrip("KMGTIB")
    unit = t[len(num):]
    if not num or unit not in _SIZE_UNITS:
        raise UsageError(f"cannot read size {text!r}", "write it like 500MB, 20GiB or 1000000")
    try:
        return int(float(num) * _SIZE_UNITS[unit])
    except ValueError:
        raise UsageError(f"cannot read size {text!r}", "write it like 500MB, 20GiB or 1000000") from None


def parse_fraction(text: str | float | int) -> float:
    """A share written as a fraction (``0.05``) or a percentage (``"5%"``), between 0 and 1; ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a fraction")
    if isinstance(text, str):
        raw = text.strip()
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    else:
        value = float(text)
    if not 0 <= value <= 1:  # NaN fails this too
        raise ValueError(f"{text!r} is not between 0 and 1 (0% and 100%)")
    return value


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_duration(text: str | float | int) -> float:
    """'24h', '7d', '90m', '1d12h', '30' (seconds) -> seconds."""
    if isinstance(text, (int, float)):
        if text < 0:
            raise UsageError(f"a duration cannot be negative ({text})")
        return float(text)
    t = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not t or pos != len(t):
        raise UsageError(f"cannot read duration {text!r}", "write it like 30s, 15m, 24h, 7d, 2w or 1d12h")
    return total


def format_duration(seconds: float) -> str:
    """86400 -> '1d', 5400 -> '1.5h', 42 -> '42s'."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:g}s"


def iso_seconds(ts: float) -> str:
    """A timestamp as UTC ISO 8601 to the second: '2026-01-31T12:00:00Z'."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def now_iso() -> str:
    """Now, as UTC ISO 8601 to the microsecond (the time a commit records)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
