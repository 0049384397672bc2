"""Which packs are small, and when a store holds too many of them: the policy `consolidate` acts on.

Kept apart from the merging itself, which pulls in gc's planning: every
commit, fetch and push asks `needs_consolidation`, and almost always the
answer is no.
"""

from __future__ import annotations

from datactl.format.pack import MAX_PACK_OBJECTS
from datactl.store.index import ObjectIndex

# A pack under this share of the target size, and of the most objects a pack holds, is small.
SMALL_SHARE = 0.5
SMALL_OBJECTS = int(MAX_PACK_OBJECTS * SMALL_SHARE)
# More small packs than this are merged; so a store holds at most this many small packs (plus what one
# merge leaves), and packs and index files grow with the data, not with the number of versions.
MAX_SMALL_PACKS = 32


def is_small(size: int, objects: int, pack_size: int) -> bool:
    """A pack of ``size`` bytes holding ``objects`` objects: small unless near the target size or full by count
    (a pack of tiny files is sealed at ``MAX_PACK_OBJECTS`` far below the target size, and merging it gains nothing)."""
    return size < pack_size * SMALL_SHARE and objects < SMALL_OBJECTS


def needs_consolidation(index: ObjectIndex, pack_size: int, max_small: int = MAX_SMALL_PACKS) -> bool:
    """Whether the packs ``index`` lists (a local index's view of a store) hold more than ``max_small`` small ones.

    Cheap enough for every commit and push: objects are counted only in packs small by size, and only up to
    the count that makes a pack not small."""
    small = 0
    for pid, size in index.packs().items():
        if size < pack_size * SMALL_SHARE and is_small(size, index.count_objects(pid, SMALL_OBJECTS), pack_size):
            small += 1
            if small > max_small:
                return True
    return False
