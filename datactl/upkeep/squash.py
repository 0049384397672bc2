"""Squash: collapse a range of a dataset's (or model's) versions into one.

``squash(repo, NAME, A, B)`` replaces the versions A..B of NAME's first-parent
history (A an ancestor of B, both included) by one version S holding B's files:

- S has A's parents, B's files, message, author and time; its inputs are the
  union of the inputs of every squashed version, and its metadata records the
  squashed ids (``metadata["squashed"]``), so lineage keeps every edge *from*
  the squashed versions;
- the versions after B are rewritten on top of S (same files and fields, a
  new parent; ``metadata["rewritten_from"]`` names the old id);
- tags on B move to S, tags on later versions to their rewrites; a tag inside
  the range is refused unless ``delete_tags``;
- the head ref moves last, by compare-and-swap: a concurrent push makes the
  squash fail with nothing changed (the new commits are garbage for gc).

Edges *to* the squashed versions (a model trained on one of them) are kept by
gc: a version that a kept version names as an input keeps its files. The old
versions' other files are freed by the next gc runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from datactl.core.author import default_author
from datactl.core.errors import UnknownRef, UsageError
from datactl.core.ids import object_id
from datactl.core.units import now_iso
from datactl.format.layout import HEAD_PREFIX, check_name, head_ref
from datactl.format.objects import Commit
from datactl.format.pack import ObjectType
from datactl.lineage.index import record_local_commit
from datactl.store.repository import Repository
from datactl.store.revparse import RefContext, resolve_ref


@dataclass
class SquashResult:
    store: str
    name: str
    kind: str
    dry_run: bool
    old_head: str
    new_head: str
    squashed: list[str] = field(default_factory=list)  # oldest first
    new_commit: str = ""
    rewritten: dict[str, str] = field(default_factory=dict)  # old id -> new id, versions after the range
    tags_moved: dict[str, list[str]] = field(default_factory=dict)  # tag -> [old, new]
    tags_deleted: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _find_kind(repo: Repository, name: str, kind: str | None) -> tuple[str, str]:
    kinds = [kind] if kind else list(HEAD_PREFIX)
    found = [(k, repo.refs.get(head_ref(k, name))) for k in kinds]
    found = [(k, h) for k, h in found if h is not None]
    if not found:
        raise UnknownRef(f"{repo.backend.url} has no {kind or 'dataset or model'} named {name}", "`datactl datasets` lists them")
    if len(found) > 1:
        raise UsageError(f"{name} is both a dataset and a model", "say which with --kind")
    return found[0]  # type: ignore[return-value]


def squash(
    repo: Repository,
    name: str,
    from_ref: str,
    to_ref: str,
    *,
    kind: str | None = None,
    message: str | None = None,
    delete_tags: bool = False,
    dry_run: bool = False,
    author: str | None = None,
) -> SquashResult:
    """Collapse versions ``from_ref``..``to_ref`` of ``name`` in the store ``repo`` into one (see the module doc)."""
    check_name(name)
    kind, head = _find_kind(repo, name, kind)
    ctx = RefContext(name, kind, head)
    a = resolve_ref(repo.ref_lookup(), from_ref, ctx)
    b = resolve_ref(repo.ref_lookup(), to_ref, ctx)
    chain: list[str] = []
    commits: dict[str, Commit] = {}
    cid: str | None = head
    while cid is not None:
        c = repo.read_commit(cid)
        commits[cid] = c
        chain.append(cid)
        if cid == a:
            break
        cid = c.parents[0] if c.parents else None
    if b not in commits:
        raise UsageError(f"{to_ref} ({b[:12]}) is not in the first-parent history of {name}", "`datactl log` shows it")
    if a not in commits:
        raise UsageError(f"{from_ref} ({a[:12]}) is not in the first-parent history of {name}", "`datactl log` shows it")
    ia, ib = chain.index(a), chain.index(b)
    if ia < ib:
        raise UsageError(f"{from_ref} is newer than {to_ref}", "--from names the oldest version to squash, --to the newest")
    if ia == ib:
        raise UsageError("--from and --to name the same version: nothing to squash")
    rng = list(reversed(chain[ib : ia + 1]))  # oldest first
    after = list(reversed(chain[:ib]))  # versions after B, oldest first
    first, last = commits[rng[0]], commits[rng[-1]]
    inputs = list(dict.fromkeys(i for c in rng for i in commits[c].inputs))

    lines = [f"- {c[:12]} {commits[c].message.splitlines()[0] if commits[c].message else ''}".rstrip() for c in rng]
    text = message or f"Squash of {len(rng)} versions\n\n" + "\n".join(lines)
    meta = dict(last.metadata)
    meta["squashed"] = {"versions": rng, "by": author or default_author(), "at": now_iso()}
    s = dataclasses.replace(last, parents=first.parents, message=text, metadata=meta, inputs=tuple(inputs))
    new_objects: list[tuple[str, bytes]] = []
    raw = s.encode()
    s_id = object_id(raw)
    new_objects.append((s_id, raw))
    mapping = {b: s_id}
    parent = s_id
    for old in after:
        c = commits[old]
        meta = {**c.metadata, "rewritten_from": old}
        rc = dataclasses.replace(c, parents=(parent, *c.parents[1:]), metadata=meta)
        raw = rc.encode()
        parent = object_id(raw)
        new_objects.append((parent, raw))
        mapping[old] = parent
    new_head = mapping[head]
    result = SquashResult(repo.backend.url, name, kind, dry_run, head, new_head, rng, s_id, {o: n for o, n in mapping.items() if o != b}, inputs=inputs)
    tag_moves: dict[str, tuple[str, str]] = {}
    inside: dict[str, str] = {}
    for t in repo.refs.list(f"tags/{name}/"):
        if t.commit in mapping:
            tag_moves[t.ref] = (t.commit, mapping[t.commit])
        elif t.commit in rng:
            inside[t.ref] = t.commit
    if inside and not delete_tags:
        names = ", ".join(f"{r.rsplit('/', 1)[-1]} ({c[:12]})" for r, c in sorted(inside.items()))
        raise UsageError(
            f"tags inside the range would lose their version: {names}",
            "squash a range without them, delete them first (`datactl tag --delete`), or pass --delete-tags",
        )
    result.tags_moved = {r.rsplit("/", 1)[-1]: [o, n] for r, (o, n) in sorted(tag_moves.items())}
    result.tags_deleted = {r.rsplit("/", 1)[-1]: c for r, c in sorted(inside.items())}
    if dry_run:
        return result
    for oid, raw in new_objects:
        repo.put(ObjectType.COMMIT, raw, oid)
    repo.flush()  # the new commits are durable (and indexed) before any ref names them
    repo.refs.update(head_ref(kind, name), new_head, expected=head)
    for ref, (old, new) in sorted(tag_moves.items()):
        repo.refs.update(ref, new, expected=old)
    for ref, old in sorted(inside.items()):
        repo.refs.update(ref, None, expected=old)
    record_local_commit(repo, new_head, {r: n for r, (_, n) in tag_moves.items()})
    return result
