"""Stand-ins for ``SourceObject`` and ``SourceChanged`` until storage_backends/base.py defines them.

The Azure and HTTP backends read objects in place (external files) through
``stat``, ``get_range_at`` and ``open_read_at``; the records those return and the
error they raise belong in base.py. This module goes when base.py has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage_backends import base

if hasattr(base, "SourceObject"):  # pragma: no cover - once base.py has them, use those
    SourceObject = base.SourceObject
    SourceChanged = base.SourceChanged
else:

    @dataclass(frozen=True)
    class SourceObject:  # type: ignore[no-redef]
        """What a source says of one object now: enough to pin a read to it and to notice a change."""

        key: str
        size: int
        etag: str | None
        version: str | None
        modified: str | None

    class SourceChanged(base.BackendError):  # type: ignore[no-redef]
        """The object is no longer the pinned version (ETag differs, or the version is gone)."""
