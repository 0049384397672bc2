"""Removing refs: a dataset's or model's head and tags, or one tag. gc frees the space later."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from datactl.core.errors import UnknownRef, UsageError
from datactl.format.layout import HEAD_PREFIX, check_name, head_ref, tag_ref, tags_prefix
from datactl.store.refs import RefStore
from storage_backends import Backend


@dataclass
class DeletedRefs:
    store: str
    name: str
    kind: str | None
    refs: dict[str, str] = field(default_factory=dict)  # ref -> the commit it named

    def to_dict(self) -> dict:
        return asdict(self)


def delete_ref(backend: Backend, ref: str) -> str | None:
    """Remove one ref by compare-and-swap; return the commit it named (None if it was absent)."""
    refs = RefStore(backend)
    current = refs.get(ref)
    if current is None:
        return None
    refs.update(ref, None, expected=current)
    return current


def delete_dataset(backend: Backend, name: str, kind: str | None = None) -> DeletedRefs:
    """Remove a dataset's (or model's) head ref and all its tags. gc reclaims the space later."""
    check_name(name)
    refs = RefStore(backend)
    kinds = [kind] if kind else list(HEAD_PREFIX)
    found = [k for k in kinds if refs.get(head_ref(k, name)) is not None]
    if len(found) > 1:
        raise UsageError(f"{name} is both a dataset and a model in {backend.url}", "say which with --kind dataset or --kind model")
    tags = refs.list(tags_prefix(name))
    if not found and not tags:
        raise UnknownRef(f"{backend.url} has no {kind or 'dataset or model'} named {name}", "`datactl datasets` lists them")
    out = DeletedRefs(backend.url, name, found[0] if found else None)
    for t in tags:
        old = delete_ref(backend, t.ref)
        if old is not None:
            out.refs[t.ref] = old
    if found:
        ref = head_ref(found[0], name)
        old = delete_ref(backend, ref)
        if old is not None:
            out.refs[ref] = old
    return out


def delete_tag(backend: Backend, name: str, tag: str) -> str:
    """Remove tag ``tag`` of ``name``; return the commit it named."""
    ref = tag_ref(name, tag)
    old = delete_ref(backend, ref)
    if old is None:
        raise UnknownRef(f"{name} has no tag {tag} in {backend.url}", "`datactl tag` lists the tags")
    return old
