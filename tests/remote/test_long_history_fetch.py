"""Long histories over a remote (issue 18): a history is fetched in a few coalesced reads, and `--depth` clones
and fetches only the newest versions, with `log` and `lineage` saying where the history is cut."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli, build_chain, write
from datactl.core.errors import BelowShallowCut
from datactl.format.pack import ObjectType
from datactl.store.history import iter_history
from datactl.workspace import sync
from datactl.workspace.shallow import shallow_commits
from datactl.workspace.workspace import Workspace

VERSIONS = 2_000


@pytest.fixture
def remote(cli: Cli, ws_dir: Path, tmp_path: Path, two_versions: tuple[str, str]) -> tuple[Path, list[str]]:
    """A folder remote holding a 2,000-version chain of the dataset ``long`` (versions 1 and 2,000 differ)."""
    with Workspace.open(str(ws_dir)) as ws:
        chain = build_chain(ws, VERSIONS, *two_versions)
    cli("push", str(tmp_path / "remote"))
    return tmp_path / "remote", chain


def test_a_fetch_reads_a_long_history_in_a_few_requests(remote: tuple[Path, list[str]], tmp_path: Path, cli: Cli) -> None:
    url, chain = remote
    dest = tmp_path / "clone"
    cli("clone", str(url), "long", str(dest), "--depth", "1", cwd=tmp_path)
    with Workspace.open(str(dest)) as ws:
        result = sync.fetch(ws, unshallow=True)
        assert result.objects >= VERSIONS - 1 and result.shallow == []
        # A walk one commit at a time would make about one request per version.
        assert result.requests <= 10
    log = json.loads(cli("log", "--json", cwd=dest).out)
    assert [e["id"] for e in log] == chain[::-1]


def test_a_shallow_clone_has_the_newest_versions_and_says_where_history_ends(remote: tuple[Path, list[str]], tmp_path: Path, cli: Cli) -> None:
    url, chain = remote
    dest = tmp_path / "clone"
    cli("clone", str(url), "long", str(dest), "--depth", "5", cwd=tmp_path)
    assert (dest / "a.txt").read_bytes() == b"last\n"
    lines = cli("log", "--oneline", cwd=dest).out.splitlines()
    assert [line.split()[0] for line in lines[:5]] == [c[:12] for c in chain[::-1][:5]]
    assert len(lines) == 6 and "history cut here" in lines[5] and "--unshallow" in lines[5]
    log = json.loads(cli("log", "--json", cwd=dest).out)
    assert [e["id"] for e in log] == chain[::-1][:5] and log[-1]["history_cut"] is True
    shown = cli("show", "HEAD~4", cwd=dest).out
    assert "version 1996" in shown and "history cut here" in shown
    assert json.loads(cli("show", "HEAD~4", "--json", cwd=dest).out)["diff"] is None
    # Its own store alone: the lineage ends at the cut, said as such (not a warning of damage).
    up = cli("lineage", "--up", "--local", cwd=dest)
    assert up.out.splitlines()[-1].endswith("history cut here (shallow clone; `datactl fetch --unshallow` or `datactl fetch --depth M` fetches more)")
    assert len(up.out.splitlines()) == 6 and "warning" not in up.err + up.out
    # With its remote, the whole lineage.
    assert len(cli("lineage", "--up", cwd=dest).out.splitlines()) == VERSIONS
    cli("checkout", "HEAD~4", cwd=dest)
    assert (dest / "a.txt").read_bytes() == b"first\n"
    cli("checkout", "long", cwd=dest)
    assert cli("verify", cwd=dest).code == 0
    assert cli("gc", cwd=dest).code == 0
    # A new version pushes: the remote holds the history below the cut.
    write(dest / "c.txt", b"new\n")
    cli("add", "c.txt", cwd=dest)
    cli("commit", "-m", "version 2001", cwd=dest)
    cli("push", cwd=dest)
    r = cli("push", str(tmp_path / "elsewhere"), cwd=dest, ok=False)
    assert r.code == 2 and "lacks the history below this shallow workspace's cut" in r.err and "hint:" in r.err
    check = tmp_path / "check"
    cli("clone", str(url), "long", str(check), cwd=tmp_path)
    assert (check / "c.txt").read_bytes() == b"new\n"
    assert len(json.loads(cli("log", "--json", cwd=check).out)) == VERSIONS + 1
    assert cli("verify", "long", "--remote", str(url), cwd=tmp_path).code == 0
    # A merge finds its base above the cut: a version here, another pushed from the full clone.
    write(dest / "d.txt", b"here\n")
    cli("add", "d.txt", cwd=dest)
    cli("commit", "-m", "version 2002 here", cwd=dest)
    write(check / "e.txt", b"there\n")
    cli("add", "e.txt", cwd=check)
    cli("commit", "-m", "version 2002 there", cwd=check)
    cli("push", cwd=check)
    cli("merge", cwd=dest)
    assert (dest / "d.txt").read_bytes() == b"here\n" and (dest / "e.txt").read_bytes() == b"there\n"
    assert "history cut here" in cli("log", "--oneline", cwd=dest).out
    # Deepening, then the whole history.
    cli("fetch", "--depth", "50", cwd=dest)
    log_json = json.loads(cli("log", "--json", cwd=dest).out)
    assert len(log_json) == 50 + 2 and log_json[-1]["history_cut"] is True  # the merge and its two sides, 50 deep
    cli("fetch", "--unshallow", cwd=dest)
    log = cli("log", "--oneline", cwd=dest).out
    assert len(log.splitlines()) == VERSIONS + 4 and "history cut" not in log
    assert cli("verify", cwd=dest).code == 0


@pytest.fixture
def shallow(cli: Cli, ws_dir: Path, tmp_path: Path, two_versions: tuple[str, str]) -> tuple[Path, list[str]]:
    """A clone with ``--depth 5`` of a 60-version chain (a.txt "first" in versions 1 to 59, "last" in 60)."""
    with Workspace.open(str(ws_dir)) as ws:
        chain = build_chain(ws, 60, *two_versions)
    cli("push", str(tmp_path / "remote"))
    cli("clone", str(tmp_path / "remote"), "long", str(tmp_path / "clone"), "--depth", "5", cwd=tmp_path)
    return tmp_path / "clone", chain


def test_a_ref_older_than_a_shallow_history_says_so(cli: Cli, shallow: tuple[Path, list[str]]) -> None:
    dest, chain = shallow
    cut = chain[-5][:12]
    older = "is older than this shallow clone's history (cut at " + cut + ")"
    for args in (["checkout", "HEAD~50"], ["show", "HEAD~5"], ["diff", chain[-6], "HEAD"], ["ls", "HEAD~50"], ["verify", "HEAD~7"]):
        r = cli(*args, cwd=dest, ok=False)
        assert r.code == 1, args
        lines = r.err.splitlines()
        assert lines[0] == f"error: {args[1]} {older}", args
        assert lines[1] == "hint: run `datactl fetch --unshallow` for the whole history, or `datactl fetch --depth N` with a larger N"
    assert (dest / "a.txt").read_bytes() == b"last\n"  # the refused checkout changed nothing
    assert "version 56" in cli("show", "HEAD~4", cwd=dest).out  # the cut itself is held
    # An id this clone never saw may be older or may not exist: unknown, with the same way out.
    r = cli("show", chain[0], cwd=dest, ok=False)
    assert r.code == 1 and f"unknown ref '{chain[0]}': no version of this shallow clone (its history is cut at {cut})" in r.err
    assert "hint: if it is older, run `datactl fetch --unshallow`" in r.err
    cli("fetch", "--depth", "51", cwd=dest)
    cli("checkout", "HEAD~50", cwd=dest)
    assert (dest / "a.txt").read_bytes() == b"first\n"


def test_verify_in_a_shallow_clone_says_it_stopped_at_the_cut(cli: Cli, shallow: tuple[Path, list[str]]) -> None:
    dest, chain = shallow
    r = cli("verify", cwd=dest)
    assert f"history checked down to this shallow clone's cut at {chain[-5][:12]} and not below" in r.out
    assert "`datactl fetch --unshallow` fetches them; `datactl verify --remote origin` checks the remote's copy" in r.out
    report = json.loads(cli("verify", "--json", cwd=dest).out)
    assert report["ok"] and report["commits"] == 5 and report["history_cut"] == [chain[-5]]
    cli("fetch", "--unshallow", cwd=dest)
    r = cli("verify", cwd=dest)
    assert "cut" not in r.out and "ok: 60 version(s)" in r.out
    assert json.loads(cli("verify", "--json", cwd=dest).out)["history_cut"] == []


def test_depth_must_be_positive(cli: Cli, tmp_path: Path) -> None:
    r = cli("clone", str(tmp_path / "remote"), "long", str(tmp_path / "c"), "--depth", "0", cwd=tmp_path, ok=False)
    assert r.code == 2 and "error: --depth must be at least 1, not 0" in r.err and not (tmp_path / "c").exists()
    cli("init", "--name", "long")
    r = cli("fetch", "--depth", "2", "--unshallow", ok=False)
    assert r.code == 2 and "error: give either --depth or --unshallow, not both" in r.err


def distances(parents: dict[str, tuple[str, ...]], head: str) -> dict[str, int]:
    """Each ancestor of ``head`` and its distance from it (fewest parent steps), by breadth-first search."""
    dist, level = {head: 0}, [head]
    while level:
        below: list[str] = []
        for c in level:
            for p in parents[c]:
                if p not in dist:
                    dist[p] = dist[c] + 1
                    below.append(p)
        level = below
    return dist


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 6)), min_size=1, max_size=25),
    depth=st.integers(1, 8),
    deeper=st.integers(1, 8),
)
def test_depth_fetches_exactly_the_versions_within_it_on_any_history(tmp_path_factory: pytest.TempPathFactory, shape: list[tuple[int, int]], depth: int, deeper: int) -> None:
    """On any graph of merges: --depth N holds the versions fewer than N parent steps from the head, the cut is
    where a parent is left out, a deeper fetch moves it, and --unshallow fetches the rest."""
    base = tmp_path_factory.mktemp("dag")
    with Workspace.init(str(base / "ws"), name="dag") as ws:
        write(base / "ws" / "f.txt", b"data\n")
        ws.add([str(base / "ws" / "f.txt")])
        ids = [ws.commit("root")]
        tree = ws.repo.read_commit(ids[0])
        parents = {ids[0]: ()}
        for n, (fan, back) in enumerate(shape):
            ps = tuple(dict.fromkeys(ids[max(0, len(ids) - 1 - back - k)] for k in range(fan)))
            c = dataclasses.replace(tree, parents=ps, message=f"v{n}")
            ids.append(ws.repo.put(ObjectType.COMMIT, c.encode()))
            parents[ids[-1]] = ps
        ws.repo.flush()
        ws.repo.refs.update(ws.head_ref, ids[-1], expected=ids[0])
        sync.push(ws, str(base / "remote"))
    dist = distances(parents, ids[-1])
    first_parents = [ids[-1]]
    while parents[first_parents[-1]]:
        first_parents.append(parents[first_parents[-1]][0])

    def check(clone: Workspace, n: int | None) -> None:
        held = {c for c in dist if clone.repo.has(c)}
        assert held == {c for c, d in dist.items() if n is None or d < n}
        cut = {c for c, d in dist.items() if n is not None and d == n - 1 and any(dist[p] >= n for p in parents[c])}
        assert shallow_commits(clone.stage) == cut
        assert {c for c, _ in iter_history(clone.repo, ids[-1], cut=cut)} == held
        # HEAD~k is the k-th first parent when the clone holds it and every first parent before it (the walk goes
        # through them: a commit held by another path, below a missing one, is out of reach), else older than the
        # shallow history.
        reachable = True
        for k, commit in enumerate(first_parents):
            reachable = reachable and commit in held
            if reachable:
                assert clone.resolve(f"HEAD~{k}") == commit
            else:
                with pytest.raises(BelowShallowCut):
                    clone.resolve(f"HEAD~{k}")

    with sync.clone(str(base / "remote"), "dag", str(base / "clone"), depth=depth) as clone:
        check(clone, depth)
        sync.fetch(clone, depth=depth + deeper)
        check(clone, depth + deeper)
        sync.fetch(clone, unshallow=True)
        check(clone, None)
