"""Checking that a version can be restored: every object present, and (deep) every byte right."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from datactl.errors import CorruptObject, DatactlError, ObjectMissing
from datactl.filedata import chunk_ids_of, iter_file_bytes
from datactl.history import iter_history
from datactl.objects import DIR, FILE
from datactl.pack import pack_key
from datactl.progress import NullProgress, ProgressReporter
from datactl.repository import Repository


@dataclass
class VerifyReport:
    commit: str
    deep: bool
    commits: int = 0
    trees: int = 0
    files: int = 0
    chunks: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def verify_commit(repo: Repository, commit_id: str, deep: bool = False, progress: ProgressReporter | None = None) -> VerifyReport:
    """Check every object reachable from ``commit_id`` (its history included).

    Without ``deep``, commits, trees and chunk lists are read and verified and
    every chunk must be indexed in a pack that exists. With ``deep``, every
    file's bytes are read back, each chunk re-hashed and each file's digest
    checked.
    """
    progress = progress or NullProgress()
    report = VerifyReport(commit_id, deep)
    seen_trees: set[str] = set()
    seen_chunks: set[str] = set()
    seen_files: set[str] = set()
    packs_needed: set[str] = set()
    progress.start("verifying", None)
    try:
        for cid, commit in iter_history(repo, commit_id):
            report.commits += 1
            stack = [(commit.tree, "")]
            while stack:
                tree_id, prefix = stack.pop()
                if tree_id in seen_trees:
                    continue
                seen_trees.add(tree_id)
                try:
                    tree = repo.read_tree(tree_id)
                except DatactlError as exc:
                    report.problems.append(f"tree of {prefix or '/'} in commit {cid[:12]}: {exc.message}")
                    continue
                report.trees += 1
                for entry in tree.entries:
                    path = prefix + entry.name
                    if entry.kind == DIR:
                        stack.append((entry.digest, path + "/"))
                        continue
                    if entry.kind != FILE or entry.digest in seen_files:
                        continue
                    seen_files.add(entry.digest)
                    report.files += 1
                    try:
                        chunks = chunk_ids_of(repo, entry)
                    except DatactlError as exc:
                        report.problems.append(f"{path} in commit {cid[:12]}: {exc.message}")
                        continue
                    for chunk in chunks:
                        if chunk in seen_chunks:
                            continue
                        seen_chunks.add(chunk)
                        loc = repo.index.lookup(chunk)
                        if loc is None:
                            report.problems.append(f"{path} in commit {cid[:12]}: chunk {chunk} is missing")
                        else:
                            packs_needed.add(loc.pack)
                    if deep:
                        try:
                            for data in iter_file_bytes(repo, entry, path):
                                report.bytes_read += len(data)
                                progress.advance(len(data))
                        except (CorruptObject, ObjectMissing) as exc:
                            report.problems.append(f"{path} in commit {cid[:12]}: {exc.message}")
        report.chunks = len(seen_chunks)
        present = {info.key for info in repo.backend.list("packs/")}
        for pack in sorted(packs_needed):
            if pack_key(pack) not in present:
                report.problems.append(f"pack {pack} is missing from {repo.backend.url}")
    finally:
        progress.stop()
    return report
