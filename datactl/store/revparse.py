"""Turning what a user types into a commit id: the one ref grammar.

::

    REF     := BASE ( "~" [N] | "^" )*        each ~N steps N first parents back, ~ and ^ one
    BASE    := "HEAD"                         the checked-out version (or NAME's head, inside NAME@...)
             | NAME "@" [VERSION]              a version of dataset or model NAME (empty: its latest)
             | TAG                            a tag of the current dataset
             | NAME                           the latest version of dataset or model NAME
             | HEX                            a commit id, or a unique prefix of 6+ hex digits
    VERSION := "HEAD" | TAG | HEX

The grammar and the order of lookups live here once; where the answers come
from is a ``RefLookup``: a store's refs and objects (a workspace's store, a
remote read in place), or the lineage indexes of several stores. In a shallow
workspace (``RefContext.cut``) a ref that steps past the cut, or names a parent
at the cut, is ``BelowShallowCut``: older than the history held, not unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from datactl.core.errors import AmbiguousRef, BelowShallowCut, UnknownRef
from datactl.core.ids import is_hex, is_object_id
from datactl.format.layout import HEAD_PREFIX, head_ref, is_name, tag_ref
from datactl.format.pack import ObjectType
from datactl.store.reader import ObjectReader
from datactl.store.refs import RefStore

MIN_PREFIX = 6
_SUFFIX = re.compile(r"^(.*?)((?:~\d*|\^)*)$")
_STEP = re.compile(r"~\d*|\^")
REF_HINT = "refs are tags, dataset names, HEAD, HEAD~N, NAME@TAG, NAME@ID, or commit ids (6+ hex digits); see `datactl log`"
SHALLOW_HINT = "run `datactl fetch --unshallow` for the whole history, or `datactl fetch --depth N` with a larger N"


@dataclass(frozen=True)
class ParsedRef:
    """A REF split into its base and the number of first-parent steps back."""

    base: str
    back: int


def parse_ref(text: str) -> ParsedRef:
    m = _SUFFIX.match(text.strip())
    assert m is not None  # the pattern matches every string
    base, suffix = m.group(1), m.group(2)
    if not base:
        raise UnknownRef(f"empty ref {text!r}", REF_HINT)
    back = sum(1 if step in ("~", "^") else int(step[1:]) for step in _STEP.findall(suffix))
    return ParsedRef(base, back)


@dataclass(frozen=True)
class HistoryCut:
    """Where a shallow workspace's history ends: the versions it holds at the cut, and their parents it lacks."""

    at: frozenset[str] = frozenset()
    below: frozenset[str] = frozenset()

    @property
    def where(self) -> str:
        return ", ".join(sorted(c[:12] for c in self.at))

    def older(self, text: str) -> BelowShallowCut:
        """The error for a ref that names a version below the cut."""
        return BelowShallowCut(f"{text} is older than this shallow clone's history (cut at {self.where})", SHALLOW_HINT)


@dataclass(frozen=True)
class RefContext:
    """What a bare name means: the current dataset (for its tags and HEAD) and its checked-out commit; and, in a
    shallow workspace, where its history is cut (a ref past the cut is said to be older, not unknown)."""

    name: str | None = None
    kind: str = "dataset"
    head: str | None = None
    cut: HistoryCut = HistoryCut()


class RefLookup(Protocol):
    """Where a ref's answers come from."""

    label: str

    def head(self, kind: str, name: str) -> str | None:
        """The latest version of dataset or model ``name``."""

    def tag(self, name: str, tag: str) -> str | None:
        """The version tagged ``tag`` of ``name``."""

    def commits_with_prefix(self, prefix: str, name: str | None) -> list[str]:
        """Commits whose id starts with ``prefix`` (of ``name`` when given); a few at most."""

    def first_parent(self, commit_id: str) -> str | None:
        """The first parent of a commit (None for a first version)."""


def resolve_ref(lookup: RefLookup, text: str, ctx: RefContext | None = None) -> str:
    """The commit id ``text`` names, or UnknownRef / AmbiguousRef."""
    ctx = ctx or RefContext()
    ref = parse_ref(text)
    commit = _resolve_base(lookup, ref.base, ctx)
    for _ in range(ref.back):
        parent = lookup.first_parent(commit)
        if parent is None:
            raise UnknownRef(f"{text}: {commit[:12]} has no parent", "use `datactl log` to see the history")
        if parent in ctx.cut.below:
            raise ctx.cut.older(text)
        commit = parent
    return commit


def head_of(lookup: RefLookup, name: str, kind: str = "dataset") -> str | None:
    """The head of ``name`` as a ``kind`` first, then as the other kind."""
    if not is_name(name):
        return None
    for k in (kind, *(k for k in HEAD_PREFIX if k != kind)):
        head = lookup.head(k, name)
        if head is not None:
            return head
    return None


def _by_prefix(lookup: RefLookup, prefix: str, name: str | None) -> str | None:
    matches = lookup.commits_with_prefix(prefix, name)
    if len(matches) > 1:
        raise AmbiguousRef(f"{prefix} is ambiguous: it is a prefix of {', '.join(m[:12] for m in matches[:10])}", "give more hex digits")
    return matches[0] if matches else None


def _not_held(cut: HistoryCut, prefix: str, text: str) -> None:
    """In a shallow workspace, an id it does not hold is older than its history (a parent at the cut) or may be."""
    if any(c.startswith(prefix) for c in cut.below):
        raise cut.older(text)
    if cut.at:
        raise UnknownRef(f"unknown ref {text!r}: no version of this shallow clone (its history is cut at {cut.where})", f"if it is older, {SHALLOW_HINT}")


def _resolve_base(lookup: RefLookup, base: str, ctx: RefContext) -> str:
    if base == "HEAD":
        if ctx.head is None:
            raise UnknownRef("HEAD names no version here", "commit something first, or give NAME@VERSION or a commit id")
        return ctx.head
    if "@" in base:
        name, version = base.split("@", 1)
        if not is_name(name):
            raise UnknownRef(f"unknown ref {base!r}", REF_HINT)
        head = head_of(lookup, name, ctx.kind)
        found: str | None = None
        if version in ("", "HEAD"):
            found = head
        elif is_name(version):
            found = lookup.tag(name, version)
        if found is None and is_hex(version) and len(version) >= MIN_PREFIX:
            found = _by_prefix(lookup, version, name)
            if found is None:
                _not_held(ctx.cut, version, base)
        if found is not None:
            return found
        if head is None:
            raise UnknownRef(f"no dataset or model named {name!r} in {lookup.label}", "see `datactl datasets`")
        raise UnknownRef(f"{name} has no version {version!r} in {lookup.label}", "use a tag or a commit id (6+ hex digits)")
    if is_name(base):
        if ctx.name is not None:
            tagged = lookup.tag(ctx.name, base)
            if tagged is not None:
                return tagged
        head = head_of(lookup, base, ctx.kind)
        if head is not None:
            return head
    if is_hex(base) and len(base) >= MIN_PREFIX:
        found = _by_prefix(lookup, base, None)
        if found is not None:
            return found
        _not_held(ctx.cut, base, base)
    hint = f"an id prefix needs at least {MIN_PREFIX} hex digits" if is_hex(base) and len(base) < MIN_PREFIX else REF_HINT
    raise UnknownRef(f"unknown ref {base!r}", hint)


class StoreRefs:
    """A RefLookup over one store: its refs, and its commits found through its object index."""

    def __init__(self, refs: RefStore, objects: ObjectReader, label: str | None = None) -> None:
        self.refs = refs
        self.objects = objects
        self.label = label or objects.label

    def head(self, kind: str, name: str) -> str | None:
        return self.refs.get(head_ref(kind, name))

    def tag(self, name: str, tag: str) -> str | None:
        return self.refs.get(tag_ref(name, tag))

    def commits_with_prefix(self, prefix: str, name: str | None) -> list[str]:
        if is_object_id(prefix):
            found = [prefix] if self.objects.object_type(prefix) == ObjectType.COMMIT else []
        else:
            with self.objects.index_lock:
                found = self.objects.index.ids_with_prefix(prefix, ObjectType.COMMIT, limit=10)
        if name is not None:
            found = [c for c in found if self.objects.read_commit(c).name == name]
        return found

    def first_parent(self, commit_id: str) -> str | None:
        parents = self.objects.read_commit(commit_id).parents
        return parents[0] if parents else None
