"""Turning what a user types into a commit id.

A REF is ``HEAD``; a tag of the current dataset; the name of a dataset or
model (its head); ``NAME@VERSION`` (a tag or id prefix within NAME); a commit
id or a unique prefix of at least 6 hex digits; any of these followed by
``~N`` (N first-parent steps back) or ``^``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datactl.core.errors import AmbiguousRef, UnknownRef
from datactl.core.ids import is_hex, is_object_id
from datactl.format.pack import ObjectType
from datactl.store.refs import HEAD_PREFIX
from datactl.store.repository import Repository

MIN_PREFIX = 6
_SUFFIX = re.compile(r"^(.*?)((?:~\d*|\^)*)$")


@dataclass(frozen=True)
class RefContext:
    """What a bare name means: the workspace's dataset and its checked-out commit."""

    name: str | None = None
    kind: str = "dataset"
    head: str | None = None


def resolve_ref(repo: Repository, text: str, ctx: RefContext) -> str:
    """Return the commit id that ``text`` names, or raise UnknownRef / AmbiguousRef."""
    m = _SUFFIX.match(text.strip())
    assert m is not None
    base, suffix = m.group(1), m.group(2)
    commit = _resolve_base(repo, base, ctx)
    for step in re.findall(r"~\d*|\^", suffix):
        n = 1 if step in ("~", "^") else int(step[1:])
        for _ in range(n):
            parents = repo.read_commit(commit).parents
            if not parents:
                raise UnknownRef(f"{text}: {commit[:12]} has no parent", "use `datactl log` to see the history")
            commit = parents[0]
    return commit


def _resolve_base(repo: Repository, base: str, ctx: RefContext) -> str:
    if not base:
        raise UnknownRef("empty ref")
    if base == "HEAD":
        if ctx.head is None:
            raise UnknownRef("HEAD has no commit yet", "commit something first with `datactl commit -m MSG`")
        return ctx.head
    if "@" in base:
        name, version = base.split("@", 1)
        head = _head_of(repo, name, ctx)
        if head is None:
            raise UnknownRef(f"no dataset or model named {name!r} in this store", "see `datactl datasets`")
        return _resolve_base(repo, version or "HEAD", RefContext(name, ctx.kind, head))
    if ctx.name is not None:
        tagged = repo.refs.get(f"tags/{ctx.name}/{base}") if _plain(base) else None
        if tagged is not None:
            return tagged
    if _plain(base):
        head = _head_of(repo, base, ctx)
        if head is not None:
            return head
    if is_hex(base) and len(base) >= MIN_PREFIX:
        if is_object_id(base) and repo.object_type(base) == ObjectType.COMMIT:
            return base
        matches = repo.index.ids_with_prefix(base, ObjectType.COMMIT, limit=10)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AmbiguousRef(
                f"{base} is ambiguous: it is a prefix of {', '.join(m[:12] for m in matches)}",
                "give more hex digits",
            )
    hint = "refs are tags, dataset names, HEAD, HEAD~N, NAME@TAG, or commit ids (6+ hex digits); see `datactl log`"
    if is_hex(base) and len(base) < MIN_PREFIX:
        hint = f"an id prefix needs at least {MIN_PREFIX} hex digits"
    raise UnknownRef(f"unknown ref {base!r}", hint)


def _plain(name: str) -> bool:
    return bool(re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", name))


def _head_of(repo: Repository, name: str, ctx: RefContext) -> str | None:
    if not _plain(name):
        return None
    for kind in (ctx.kind, *(k for k in HEAD_PREFIX if k != ctx.kind)):
        head = repo.refs.get(f"{HEAD_PREFIX[kind]}/{name}")
        if head is not None:
            return head
    return None
