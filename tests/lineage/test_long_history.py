"""Long histories (issue 18): a 5,000-version chain, built through the library in seconds, works everywhere.

Nothing that walks history or the lineage graph may recurse on its depth: lineage up and down, log, diff of the
first and the last version, squash, gc and merge all run on the chain without error, and say the right thing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from conftest import Cli, build_chain, write
from datactl.format.pack import ObjectType
from datactl.lineage.commits import StoreCommits
from datactl.lineage.index import LineageIndex
from datactl.workspace.workspace import Workspace

VERSIONS = 5_000


@pytest.fixture
def chain(ws_dir: Path, two_versions: tuple[str, str]) -> list[str]:
    with Workspace.open(str(ws_dir)) as ws:
        return build_chain(ws, VERSIONS, *two_versions)


def test_lineage_up_and_down_of_a_long_chain(cli: Cli, chain: list[str]) -> None:
    up = json.loads(cli("lineage", "--up", "--json").out)
    assert {n["id"] for n in up["nodes"]} == set(chain)
    assert max(n["distance"] for n in up["nodes"]) == VERSIONS - 1
    tree = cli("lineage", "--up").out.splitlines()
    assert len(tree) == VERSIONS
    # A chain of single parents is drawn flat: no line is indented deeper than the first step.
    assert max(len(line) - len(line.lstrip("└─ ")) for line in tree) <= 4
    # Down from the first version: the chain, and the real second version the chain replaced at the head.
    down = {n["id"] for n in json.loads(cli("lineage", chain[0], "--down", "--json").out)["nodes"]}
    assert down > set(chain) and len(down) == VERSIONS + 1
    assert len(cli("lineage", chain[0], "--down").out.splitlines()) == VERSIONS + 1
    assert len(json.loads(cli("lineage", "--up", "--depth", "3", "--json").out)["nodes"]) == 4


def test_log_diff_and_revparse_on_a_long_chain(cli: Cli, chain: list[str]) -> None:
    log = json.loads(cli("log", "-n", "10", "--json").out)
    assert [e["id"] for e in log] == chain[::-1][:10]
    assert chain[0][:12] in cli("log", "--oneline").out.splitlines()[-1]
    assert cli("diff", chain[0], chain[-1], "--name-status").out.split() == ["M", "a.txt"]
    assert cli("diff", f"HEAD~{VERSIONS - 1}", "HEAD", "--name-only").out.split() == ["a.txt"]


def test_squash_and_gc_on_a_long_chain(cli: Cli, ws_dir: Path, chain: list[str]) -> None:
    cli("squash", "long", "--from", chain[1], "--to", chain[-2])
    cli("checkout", "long")
    log = json.loads(cli("log", "--json").out)
    assert len(log) == 3
    assert log[-1]["id"] == chain[0]
    cli("gc", "--grace", "0")
    cli("gc", "--grace", "0")  # the second run deletes what the first condemned
    assert (ws_dir / "a.txt").read_bytes() == b"last\n"
    cli("checkout", log[-1]["id"])
    assert (ws_dir / "a.txt").read_bytes() == b"first\n"
    assert cli("fsck").code == 0


def test_merge_on_a_long_chain(cli: Cli, ws_dir: Path, chain: list[str]) -> None:
    # A line from the middle of the chain adds a file; merging the chain's head into it is a clean merge whose
    # base (found by walking both histories, thousands of versions deep) is that middle version.
    mid = chain[VERSIONS // 2]
    cli("checkout", mid)
    write(ws_dir / "side.txt", b"side\n")
    cli("add", "side.txt")
    cli("commit", "-m", "side", "--from-old")  # on top of the head; moved onto the middle version below
    with Workspace.open(str(ws_dir)) as ws:
        on_head = ws.head
        side = ws.repo.put(ObjectType.COMMIT, dataclasses.replace(ws.repo.read_commit(on_head), parents=(mid,)).encode())
        ws.repo.flush()
        ws.repo.refs.update(ws.head_ref, side, expected=on_head)
        ws.stage.finish_commit(side)
    result = json.loads(cli("merge", chain[-1], "--json").out)
    assert result["status"] == "merged"
    assert (ws_dir / "side.txt").read_bytes() == b"side\n"
    assert (ws_dir / "a.txt").read_bytes() == b"last\n"
    parents = json.loads(cli("log", "-n", "1", "--json").out)[0]["parents"]
    assert parents == [side, chain[-1]]


def test_recording_a_commit_reads_the_newest_segments_not_the_whole_index(ws_dir: Path, chain: list[str]) -> None:
    # A commit costs the same at any length: learning that a new commit is unknown must not read every segment.
    with Workspace.open(str(ws_dir)) as ws:
        for n in range(3):  # a few commits after the long chain, each indexed in a segment of its own
            write(ws_dir / "a.txt", f"after the chain {n}\n")
            ws.add([str(ws_dir)])
            ws.commit(f"after {n}")
        tip = ws.repo.read_commit(ws.head)
        new = ws.repo.put(ObjectType.COMMIT, dataclasses.replace(tip, parents=(ws.head,), message="not indexed yet").encode())
        ws.repo.flush()
        ws.repo.refs.update(ws.head_ref, new, expected=ws.head)
        index = LineageIndex(ws.repo.backend, StoreCommits(ws.repo.objects))
        segments = len(index.read_head()[1])
        index.stats.index_objects_read = 0
        assert index.record([new]).nodes == 1
        assert segments >= 5 and index.stats.index_objects_read <= 3  # HEAD, and the segment holding the parent
