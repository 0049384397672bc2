"""Where everything lives: every key inside a store, the names of refs, and a workspace's own files.

A store (a local folder or a bucket prefix)::

    config                  format version, chunker parameters, pack size, compression
    packs/xx/<id>           packs (format/pack.py)
    index/<id>              index files (format/indexfile.py)
    refs/datasets/<name>    a dataset's head; refs/models/<name> a model's
    refs/tags/<name>/<tag>  a tagged version
    locks/gc                the store lock (gc, fsck --repair)
    gc/condemned/<run>      packs a gc run condemned (format/gcrecords.py)
    gc/pruned/<id>          versions whose files gc may have deleted
    lineage/HEAD            the lineage index (format/lineage.py)
    lineage/seg/<id>
    listing                 the keys under index/, refs/ and gc/ (format/listing.py), for
                            readers that cannot list: a store served over HTTP

A workspace::

    datactl.toml            settings (core/settings.py)
    .datactlignore          paths never tracked
    .datactl/store/         its own store, in the layout above (tmp/ holds packs being written)
    .datactl/index.db       the object index of that store (SQLite, rebuildable)
    .datactl/stage.db       staging table, stat cache and HEAD
    .datactl/remotes/       local caches of remote stores' indexes
    .datactl/tables/        table statistics cached by file digest (datactl/tables/stats.py)
    .datactl/lock           held by commands that change the workspace
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from datactl.core.errors import UsageError
from datactl.core.safepath import METADATA_DIR

# -- keys inside a store ------------------------------------------------------------------

CONFIG_KEY = "config"
PACKS_PREFIX = "packs/"
INDEX_PREFIX = "index/"
REFS_PREFIX = "refs/"
LOCKS_PREFIX = "locks/"
GC_LOCK_KEY = "locks/gc"
CONDEMNED_PREFIX = "gc/condemned/"
PRUNED_PREFIX = "gc/pruned/"
LINEAGE_PREFIX = "lineage/"
LINEAGE_HEAD_KEY = "lineage/HEAD"
LINEAGE_SEGMENT_PREFIX = "lineage/seg/"
LISTING_KEY = "listing"
# What the listing names: every prefix a reader lists (packs are named by the index files).
LISTED_PREFIXES = (INDEX_PREFIX, REFS_PREFIX, CONDEMNED_PREFIX, PRUNED_PREFIX)


def listed_prefix(key: str) -> str | None:
    """The listed prefix ``key`` is under (a listing section), or None."""
    return next((p for p in LISTED_PREFIXES if key.startswith(p)), None)


def pack_key(pack_id: str) -> str:
    return f"{PACKS_PREFIX}{pack_id[:2]}/{pack_id}"


def index_file_key(index_id: str) -> str:
    return f"{INDEX_PREFIX}{index_id}"


def ref_key(ref: str) -> str:
    return f"{REFS_PREFIX}{ref}"


def lineage_segment_key(segment_id: str) -> str:
    return f"{LINEAGE_SEGMENT_PREFIX}{segment_id}"


def key_name(key: str) -> str:
    """The last part of a key: a pack's, index file's or record's id."""
    return key.rsplit("/", 1)[-1]


# -- refs -----------------------------------------------------------------------------------

KINDS = ("dataset", "model")
HEAD_PREFIX = {"dataset": "datasets", "model": "models"}
TAGS = "tags"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def is_name(text: str) -> bool:
    """Whether ``text`` is a valid dataset, model or tag name."""
    return isinstance(text, str) and _NAME.fullmatch(text) is not None and not text.endswith(".lock")


def check_name(name: str, what: str = "name") -> str:
    """Dataset, model and tag names: letters, digits, '.', '_', '-'; not starting with '.' or '-'."""
    if not isinstance(name, str) or not is_name(name):
        raise UsageError(
            f"invalid {what} {name!r}",
            "use letters, digits, '.', '_' and '-' (up to 128), starting with a letter, digit or '_'",
        )
    return name


def head_ref(kind: str, name: str) -> str:
    """The ref naming the latest version of dataset or model ``name``."""
    return f"{HEAD_PREFIX[kind]}/{check_name(name)}"


def tag_ref(name: str, tag: str) -> str:
    return f"{TAGS}/{check_name(name)}/{check_name(tag, 'tag')}"


def tags_prefix(name: str) -> str:
    """The prefix of every tag ref of ``name``."""
    return f"{TAGS}/{name}/"


def is_tag_ref(ref: str) -> bool:
    return ref.startswith(TAGS + "/")


def parse_tag_ref(ref: str) -> tuple[str, str] | None:
    """(name, tag) of a tag ref, or None."""
    parts = ref.split("/")
    if len(parts) == 3 and parts[0] == TAGS and is_name(parts[1]) and is_name(parts[2]):
        return parts[1], parts[2]
    return None


def parse_head_ref(ref: str) -> tuple[str, str] | None:
    """(kind, name) of a dataset's or model's head ref, or None."""
    prefix, _, name = ref.partition("/")
    for kind, p in HEAD_PREFIX.items():
        if prefix == p and is_name(name):
            return kind, name
    return None


# -- a workspace's own files -------------------------------------------------------------------


@dataclass(frozen=True)
class WorkspaceLayout:
    """The paths of a workspace rooted at ``root``."""

    root: str

    @property
    def dotdir(self) -> str:
        return os.path.join(self.root, METADATA_DIR)

    @property
    def store_dir(self) -> str:
        return os.path.join(self.dotdir, "store")

    @property
    def tmp_dir(self) -> str:
        """Packs being written (inside the store's folder, so a finished one is renamed into place)."""
        return os.path.join(self.store_dir, "tmp")

    @property
    def index_db(self) -> str:
        return os.path.join(self.dotdir, "index.db")

    @property
    def stage_db(self) -> str:
        return os.path.join(self.dotdir, "stage.db")

    @property
    def remotes_dir(self) -> str:
        return os.path.join(self.dotdir, "remotes")

    @property
    def tables_dir(self) -> str:
        return os.path.join(self.dotdir, "tables")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.dotdir, "lock")

    def exists(self) -> bool:
        return os.path.isdir(self.store_dir)
