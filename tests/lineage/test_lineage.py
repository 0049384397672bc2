"""Lineage: recorded on commit and push, queried up and down from the store's index, drawn.

The index answers must equal a brute-force walk over every commit, whatever
the DAG (hypothesis), however the index was written (many pushes,
compaction, concurrent writers, a writer that died before updating it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli, write
from datactl.api.lineage import lineage, remote_lineage_store
from datactl.core.crashpoints import CRASH_ENV
from datactl.core.errors import CorruptObject
from datactl.format.objects import Commit, Tree
from datactl.format.pack import ObjectType
from datactl.format.storeconfig import StoreConfig
from datactl.lineage import index as li
from datactl.lineage.commits import StoreCommits
from datactl.lineage.query import query
from datactl.lineage.stores import LineageStore
from datactl.remote.locate import RemoteSpec, add_remote
from datactl.remote.remotestore import RemoteStore
from datactl.store.index import ObjectIndex
from datactl.store.refs import RefStore
from datactl.store.repository import Repository, write_store_config
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace
from pausepoint import PausePoint
from storage_backends import LocalBackend, open_backend

# -- helpers ---------------------------------------------------------------------------------------


def new_repo(root: str) -> Repository:
    backend = LocalBackend(os.path.join(root, "store"))
    config = write_store_config(backend, StoreConfig())
    return Repository(backend, ObjectIndex(os.path.join(root, "index.db")), config, os.path.join(root, "store", "tmp"), workers=2)


def put_commit(repo: Repository, name: str, kind: str, parents=(), inputs=(), n: int = 0, tags=()) -> str:
    tree = repo.put(ObjectType.TREE, Tree(()).encode())
    c = Commit(tree, tuple(parents), kind, name, f"{name} #{n}", "bench", f"2024-01-01T00:00:{n % 60:02d}.{n:06d}+00:00",
               tuple(tags), {}, tuple(inputs))
    return repo.put(ObjectType.COMMIT, c.encode())


def brute_force(repo: Repository, root: str, direction: str, depth: int | None) -> tuple[dict[str, int], set]:
    """Read every commit of the store, then walk: {id: distance}, {(from, to, type)}."""
    commits = {cid: repo.read_commit(cid) for cid in repo.index.iter_ids(ObjectType.COMMIT)}
    up: dict[str, list[tuple[str, str]]] = {}
    down: dict[str, list[tuple[str, str]]] = {}
    for cid, c in commits.items():
        for p in c.parents:
            up.setdefault(cid, []).append((p, "parent"))
            down.setdefault(p, []).append((cid, "parent"))
        for i in c.inputs:
            up.setdefault(cid, []).append((i, "input"))
            down.setdefault(i, []).append((cid, "input"))
    dist = {root: 0}
    edges = set()
    q = deque([root])
    adj = up if direction == "up" else down
    while q:
        x = q.popleft()
        if depth is not None and dist[x] >= depth:
            continue
        for y, kind in adj.get(x, ()):
            edges.add((y, x, kind) if direction == "up" else (x, y, kind))
            if y not in dist:
                dist[y] = dist[x] + 1
                q.append(y)
    return dist, edges


def graph_sets(g, direction: str) -> tuple[dict[str, int], set]:
    dist = {g.root: 0} | {n.id: n.distance for n in g.nodes.values() if n.direction == direction}
    edges = {(e.source, e.target, e.type) for e in g.edges if e.direction == direction}
    return dist, edges


NAMES = [("raw", "dataset"), ("clean", "dataset"), ("feat", "dataset"), ("clf", "model"), ("ft", "model")]


@st.composite
def dags(draw):
    """A history: each step a new version of some dataset/model, with parents and inputs among earlier ones."""
    n = draw(st.integers(1, 28))
    steps = []
    for i in range(n):
        name_i = draw(st.integers(0, len(NAMES) - 1))
        same = [j for j, s in enumerate(steps) if s[0] == name_i]
        other = [j for j, s in enumerate(steps) if s[0] != name_i]
        parents = []
        if same:
            parents = [same[-1]]
            if len(same) > 1 and draw(st.booleans()) and draw(st.booleans()):
                parents.append(draw(st.sampled_from(same[:-1])))  # a merge
        inputs = sorted(set(draw(st.lists(st.sampled_from(other), max_size=3)))) if other else []
        steps.append((name_i, parents, inputs))
    batches = draw(st.lists(st.integers(1, 6), min_size=1, max_size=10))
    root = draw(st.integers(0, n - 1))
    depth = draw(st.one_of(st.none(), st.integers(0, 4)))
    return steps, batches, root, depth


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_index_answers_equal_a_brute_force_walk(monkeypatch_module, data) -> None:
    steps, batches, root_i, depth = data
    monkeypatch_module.setattr(li, "MAX_SEGMENTS", 3)  # compaction happens in most examples
    with tempfile.TemporaryDirectory() as tmp:
        repo = new_repo(tmp)
        ids: list[str] = []
        heads: dict[str, str] = {}
        index = li.LineageIndex(repo.backend, StoreCommits(repo.objects))
        pos = k = 0
        while pos < len(steps):  # publish in batches, as pushes would
            b = batches[k % len(batches)]
            k += 1
            for name_i, parents, inputs in steps[pos : pos + b]:
                name, kind = NAMES[name_i]
                cid = put_commit(repo, name, kind, [ids[p] for p in parents], [ids[i] for i in inputs], len(ids), tags=[f"t{len(ids)}"])
                ids.append(cid)
                heads[f"{'models' if kind == 'model' else 'datasets'}/{name}"] = cid
            pos += b
            repo.flush()
            for ref, cid in heads.items():
                repo.refs.update(ref, cid, expected=repo.refs.get(ref))
            index.record(list(heads.values()))
        view = li.LineageIndex(repo.backend).load(check_refs=False)  # the index alone
        assert set(view.nodes) == set(ids)
        root = ids[root_i]
        for direction in ("up", "down"):
            expected = brute_force(repo, root, direction, depth)
            assert graph_sets(query(view, root, direction, depth), direction) == expected
        both = query(view, root, "both", depth)
        assert graph_sets(both, "up") == brute_force(repo, root, "up", depth)
        assert graph_sets(both, "down") == brute_force(repo, root, "down", depth)
        rebuilt = li.LineageIndex(repo.backend, StoreCommits(repo.objects))
        rebuilt.rebuild()
        again = li.LineageIndex(repo.backend).load(check_refs=False)
        assert {k: (n.parents, n.inputs) for k, n in again.nodes.items()} == {k: (n.parents, n.inputs) for k, n in view.nodes.items()}
        repo.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


# -- index mechanics -----------------------------------------------------------------------------------


def test_concurrent_appenders_lose_no_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(li, "MAX_SEGMENTS", 4)
    backend = LocalBackend(str(tmp_path / "store"))
    barrier = threading.Barrier(6)
    errors = []

    def writer(w: int) -> None:
        try:
            idx = li.LineageIndex(backend)
            barrier.wait()
            for k in range(6):
                cid = f"{w:02x}{k:02x}".ljust(32, "0")
                idx.append([li.Node(cid, "dataset", f"d{w}", "2024-01-01T00:00:00+00:00")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    view = li.LineageIndex(backend).load(check_refs=False)
    assert len(view.nodes) == 36
    _, segs = li.LineageIndex(backend).read_head()
    assert len(segs) <= 4


def test_down_query_reads_the_index_not_the_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo(str(tmp_path))
    prev = None
    chain = []
    for n in range(400):
        prev = put_commit(repo, "raw", "dataset", [prev] if prev else [], n=n)
        chain.append(prev)
    models = [put_commit(repo, f"m{k}", "model", [], [chain[k * 40]], n=k) for k in range(10)]
    repo.flush()
    repo.refs.update("datasets/raw", chain[-1], expected=None)
    for k, m in enumerate(models):
        repo.refs.update(f"models/m{k}", m, expected=None)
    li.LineageIndex(repo.backend, StoreCommits(repo.objects)).rebuild()
    # A settled store: nothing moved since the index was written.
    for dirpath, _, files in os.walk(tmp_path / "store" / "refs"):
        for f in files:
            os.utime(os.path.join(dirpath, f), (time.time() - 7200,) * 2)
    store = LineageStore.for_repository(repo)
    g = lineage(chain[0], "down", stores=[store])
    assert len(g.ids("down")) == 399 + 10
    assert g.stats["commits_read"] == 0 and g.stats["refs_read"] == 0
    assert g.stats["index_objects_read"] == 2  # HEAD and one segment
    repo.close()


def test_a_damaged_segment_is_reported_and_a_rebuild_repairs_it(tmp_path: Path) -> None:
    repo = new_repo(str(tmp_path))
    a = put_commit(repo, "raw", "dataset")
    b = put_commit(repo, "clf", "model", inputs=[a], n=1)
    repo.flush()
    repo.refs.update("datasets/raw", a, expected=None)
    repo.refs.update("models/clf", b, expected=None)
    idx = li.LineageIndex(repo.backend, StoreCommits(repo.objects))
    idx.record([a, b])
    seg = next((tmp_path / "store" / "lineage" / "seg").iterdir())
    seg.write_bytes(seg.read_bytes()[:-3] + b"xyz")
    with pytest.raises(CorruptObject, match="rebuild-index"):
        li.LineageIndex(repo.backend).load(check_refs=False)
    li.LineageIndex(repo.backend, StoreCommits(repo.objects)).rebuild()
    view = li.LineageIndex(repo.backend).load(check_refs=False)
    assert set(query(view, a, "down").ids("down")) == {b}
    repo.close()


def test_a_moved_tag_names_only_its_new_version(tmp_path: Path) -> None:
    repo = new_repo(str(tmp_path))
    a = put_commit(repo, "raw", "dataset", tags=["v3"])
    b = put_commit(repo, "raw", "dataset", [a], n=1)
    repo.flush()
    repo.refs.update("datasets/raw", b, expected=None)
    idx = li.LineageIndex(repo.backend, StoreCommits(repo.objects))
    idx.record([b], tags=[li.TagRecord(a, "raw", "v3")])
    assert li.LineageIndex(repo.backend).load(check_refs=False).tags_of(a) == ["v3"]
    idx.record([b], tags=[li.TagRecord(b, "raw", "v3")])  # e.g. a squash moved it
    view = li.LineageIndex(repo.backend).load(check_refs=False)
    assert (view.tags_of(a), view.tags_of(b), view.tagged("raw", "v3")) == ([], ["v3"], [b])
    li.LineageIndex(repo.backend, StoreCommits(repo.objects)).compact()
    assert li.LineageIndex(repo.backend).load(check_refs=False).tags_of(b) == ["v3"]
    repo.close()


# -- workspaces, remotes, the CLI ------------------------------------------------------------------------


def endpoint(options: dict) -> list[str]:
    """CLI options that reach a store given by URL (the test servers' endpoints)."""
    return ["--endpoint-url", options["endpoint_url"]] if options.get("endpoint_url") else []


def workspace(root: Path, name: str, kind: str = "dataset", remotes: dict[str, tuple[str, dict]] | None = None) -> Workspace:
    ws = Workspace.init(str(root / name), name=name, kind=kind)
    for rname, (url, options) in (remotes or {}).items():
        add_remote(ws.root, rname, url, options)
    return ws


def version(ws: Workspace, content: str, message: str, tags=(), inputs=(), metadata=None) -> str:
    write(Path(ws.root) / "data.txt", content)
    ws.add([ws.root])
    return ws.commit(message, tags=tags, inputs=inputs, metadata=metadata)


@pytest.fixture
def pipeline(tmp_path: Path, store_url: tuple[str, dict]):
    """raw -> cleaned -> features -> model -> fine-tuned model, all pushed to one store."""
    url, options = store_url
    remotes = {"origin": (url, options)}
    ws = {}
    ids = {}
    ws["raw"] = workspace(tmp_path, "raw", remotes=remotes)
    ids["raw1"] = version(ws["raw"], "raw 1\n", "raw v1", ["v1"])
    sync.push(ws["raw"], tags=True)
    ws["cleaned"] = workspace(tmp_path, "cleaned", remotes=remotes)
    ids["cleaned1"] = version(ws["cleaned"], "clean 1\n", "dedup", ["v1"], inputs=["raw@v1"])
    sync.push(ws["cleaned"], tags=True)
    ws["features"] = workspace(tmp_path, "features", remotes=remotes)
    ids["features1"] = version(ws["features"], "feat 1\n", "tf-idf", ["v1"], inputs=["cleaned@v1"])
    sync.push(ws["features"], tags=True)
    ws["clf"] = workspace(tmp_path, "clf", "model", remotes=remotes)
    ids["clf1"] = version(ws["clf"], "weights 1\n", "train", ["v1"], inputs=["features@v1"], metadata={"acc": 0.9})
    sync.push(ws["clf"], tags=True)
    ws["clf-ft"] = workspace(tmp_path, "clf-ft", "model", remotes=remotes)
    ids["ft1"] = version(ws["clf-ft"], "ft 1\n", "fine-tune", ["v1"], inputs=["clf@v1", "features@v1"])
    sync.push(ws["clf-ft"], tags=True)
    # Later versions: raw v2 (the leak fixed), and cleaned v2 built from it.
    ids["raw2"] = version(ws["raw"], "raw 2\n", "raw v2", ["v2"])
    sync.push(ws["raw"], tags=True)
    ids["cleaned2"] = version(ws["cleaned"], "clean 2\n", "dedup again", ["v2"], inputs=["raw@v2"])
    sync.push(ws["cleaned"], tags=True)
    yield ws, ids, url, options
    for w in ws.values():
        w.close()


def test_up_and_down_across_datasets_and_models(cli: Cli, pipeline) -> None:
    ws, ids, url, options = pipeline
    ft_dir = Path(ws["clf-ft"].root)
    up = json.loads(cli("lineage", "--up", "--format", "json", cwd=ft_dir).out)
    assert up["root"] == ids["ft1"]
    assert {n["id"] for n in up["nodes"] if n["direction"] == "up"} == {ids["clf1"], ids["features1"], ids["cleaned1"], ids["raw1"]}
    names = {n["id"]: (n["name"], n["kind"], n["tags"]) for n in up["nodes"]}
    assert names[ids["clf1"]] == ("clf", "model", ["v1"]) and names[ids["raw1"]] == ("raw", "dataset", ["v1"])
    assert {"from": ids["features1"], "to": ids["ft1"], "type": "input"} in up["edges"]

    # The reverse question, asked from anywhere: which versions did raw@v1 feed?
    down = json.loads(cli("lineage", "raw@v1", "--down", "--remote", url, *endpoint(options), "--format", "json", cwd=ft_dir.parent).out)
    assert {n["id"] for n in down["nodes"] if n["direction"] == "down"} == {
        ids["raw2"], ids["cleaned1"], ids["cleaned2"], ids["features1"], ids["clf1"], ids["ft1"]
    }
    assert {"from": ids["raw1"], "to": ids["raw2"], "type": "parent"} in down["edges"]
    shallow = json.loads(cli("lineage", "raw@v1", "--down", "--depth", "1", "--remote", url, *endpoint(options), "--format", "json").out)
    assert {n["id"] for n in shallow["nodes"] if n["direction"] == "down"} == {ids["raw2"], ids["cleaned1"]}

    tree = cli("lineage", "features@v1", "--both", cwd=ft_dir).out
    assert "derives from:" in tree and "derived from it:" in tree and "clf@v1" in tree and "raw@v1" in tree
    mermaid = cli("lineage", "features@v1", "--both", "--format", "mermaid", cwd=ft_dir).out
    assert mermaid.startswith("flowchart LR")
    assert f'v{ids["clf1"][:12]}{{{{"clf@v1' in mermaid  # models are hexagons
    assert f'v{ids["raw1"][:12]}[("raw@v1' in mermaid  # datasets are cylinders
    assert f"v{ids['features1'][:12]} ==>|input| v{ids['clf1'][:12]}" in mermaid
    dot = cli("lineage", "clf@v1", "--up", "--format", "dot", cwd=ft_dir).out
    assert dot.startswith("digraph lineage {") and "shape=hexagon" in dot and "shape=cylinder" in dot and 'label="input"' in dot

    models = json.loads(cli("models", url, *endpoint(options), "--json").out)
    assert [m["name"] for m in models] == ["clf", "clf-ft"]


def test_across_remotes(tmp_path: Path, cli: Cli) -> None:
    data_url, models_url = str(tmp_path / "data-store"), str(tmp_path / "model-store")
    raw = workspace(tmp_path, "raw", remotes={"origin": (data_url, {})})
    raw1 = version(raw, "r\n", "raw", ["v1"])
    sync.push(raw, tags=True)
    clf = workspace(tmp_path, "clf", "model", remotes={"origin": (models_url, {}), "data": (data_url, {})})
    clf1 = version(clf, "w\n", "train", ["v1"], inputs=["raw@v1"])  # found on the 'data' remote
    assert clf.repo.read_commit(clf1).inputs == (raw1,)
    sync.push(clf, tags=True)
    up = json.loads(cli("lineage", "--up", "--format", "json", "--remote", "origin", cwd=Path(clf.root)).out)
    raw_node = next(n for n in up["nodes"] if n["id"] == raw1)
    assert (raw_node["name"], raw_node["kind"], raw_node["external"]) == ("raw", "dataset", True)
    down = json.loads(cli("lineage", "raw@v1", "--down", "--format", "json", "-r", data_url, "-r", models_url).out)
    assert {n["id"] for n in down["nodes"] if n["direction"] == "down"} == {clf1}
    raw.close()
    clf.close()


def test_concurrent_pushes_of_two_derived_versions_keep_both_edges(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    remotes = {"origin": (url, options)}
    raw = workspace(tmp_path, "raw", remotes=remotes)
    raw1 = version(raw, "r\n", "raw", ["v1"])
    sync.push(raw, tags=True)
    a = workspace(tmp_path, "cleaned", remotes=remotes)
    b = workspace(tmp_path, "features", remotes=remotes)
    a1 = version(a, "a\n", "a", inputs=["raw@v1"])
    b1 = version(b, "b\n", "b", inputs=["raw@v1"])

    # Deterministic interleaving: b's whole push lands between a's read of the index HEAD and a's swap
    # (a's push, in another process, held just before it swaps HEAD).
    a.close()
    pause = PausePoint(tmp_path, "before-lineage-swap")
    proc = subprocess.Popen([sys.executable, "-m", "datactl", "push"], cwd=tmp_path / "cleaned", env={**os.environ, **pause.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pause.wait(proc)
    try:
        sync.push(b)
    finally:
        pause.release()
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    a = Workspace.open(str(tmp_path / "cleaned"))
    view = li.LineageIndex(open_backend(url, options)).load(check_refs=False)  # the index alone, no catching up
    assert {c for c, kind in view.children()[raw1] if kind == "input"} == {a1, b1}, "a's swap kept b's segment"

    # And for real: two more derived versions pushed at the same moment from two threads.
    a2 = version(a, "a2\n", "a2", inputs=["raw@v1"])
    b2 = version(b, "b2\n", "b2", inputs=["raw@v1"])
    barrier = threading.Barrier(2)
    errors = []

    def push(ws):
        try:
            barrier.wait()
            sync.push(ws)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(w,)) for w in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    view = li.LineageIndex(open_backend(url, options)).load(check_refs=False)  # the index alone, no catching up
    children = {c for c, kind in view.children()[raw1] if kind == "input"}
    assert children == {a1, b1, a2, b2}
    for w in (raw, a, b):
        w.close()


def test_a_push_that_died_before_the_index_is_caught_up(tmp_path: Path, store_url: tuple[str, dict]) -> None:
    url, options = store_url
    remotes = {"origin": (url, options)}
    raw = workspace(tmp_path, "raw", remotes=remotes)
    raw1 = version(raw, "r\n", "raw", ["v1"])
    sync.push(raw, tags=True)
    a = workspace(tmp_path, "cleaned", remotes=remotes)
    a1 = version(a, "a\n", "a", inputs=["raw@v1"])
    a.close()
    killed = subprocess.run([sys.executable, "-m", "datactl", "push"], cwd=tmp_path / "cleaned", capture_output=True, text=True,
                            env={**os.environ, CRASH_ENV: "after-ref-moved"})  # the push dies right after its ref moved
    assert killed.returncode == 137, killed.stderr
    backend = open_backend(url, options)
    assert RefStore(backend).get("datasets/cleaned") == a1, "the version was published"
    assert a1 not in li.LineageIndex(backend).load(check_refs=False)

    # A query sees it anyway: the ref moved after the index did, so it is read and walked.
    rs = RemoteStore(RemoteSpec(None, url, options), str(tmp_path / "cache"))
    store = LineageStore(rs.lineage_index(), rs.spec.label)
    g = lineage(raw1, "down", stores=[store])
    assert g.ids("down") == {a1} and g.stats["commits_read"] == 1
    rs.close()

    # The next push, of anything, writes it into the index.
    b = workspace(tmp_path, "features", remotes=remotes)
    version(b, "b\n", "b")
    sync.push(b)
    assert a1 in li.LineageIndex(backend).load(check_refs=False)

    # And the index can always be recreated from the commits alone.
    for info in list(backend.list("lineage/")):
        backend.delete(info.key)
    rs = RemoteStore(RemoteSpec(None, url, options), str(tmp_path / "cache"))
    result = rs.lineage_index().rebuild()
    rs.close()
    assert result.nodes == 3
    view = li.LineageIndex(backend).load(check_refs=False)
    assert set(query(view, raw1, "down").ids("down")) == {a1}
    for w in (raw, b):
        w.close()


def test_library_call_local_index_and_rebuild(cli: Cli, pipeline) -> None:
    ws, ids, url, options = pipeline
    g = lineage("HEAD", "up", workspace=ws["cleaned"])  # the workspace's own store only
    assert g.root == ids["cleaned2"]
    assert ids["cleaned1"] in g.ids("up")  # parent, from the local index kept on every commit
    with remote_lineage_store(RemoteSpec(None, url, options), str(Path(ws["raw"].dotdir) / "remotes")) as store:
        g = lineage("raw@v1", "down", depth=2, stores=[store])
    assert g.ids("down") == {ids["raw2"], ids["cleaned1"], ids["cleaned2"], ids["features1"]}
    assert g.stats["commits_read"] == 0

    backend = open_backend(url, options)
    before = li.LineageIndex(backend).load(check_refs=False)
    for info in list(backend.list("lineage/")):
        backend.delete(info.key)
    # A store without an index (written before it existed) still answers, reading its commits once.
    legacy = json.loads(cli("lineage", "raw@v1", "--down", "--remote", url, *endpoint(options), "--format", "json").out)
    assert len([n for n in legacy["nodes"] if n["direction"] == "down"]) == 6
    assert legacy["stats"]["commits_read"] == 7
    out = cli("lineage", "--rebuild-index", "--remote", url, *endpoint(options)).out
    assert "7 versions" in out
    after = li.LineageIndex(backend).load(check_refs=False)
    assert {k: (n.parents, n.inputs, n.name) for k, n in after.nodes.items()} == {
        k: (n.parents, n.inputs, n.name) for k, n in before.nodes.items() if not n.external
    }
    assert after.tags_of(ids["raw2"]) == ["v2"]
