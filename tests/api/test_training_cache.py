"""What docs/training.md promises about the shared cache and where ``Dataset.get`` reads from.

- ``DATACTL_CACHE_SIZE``: least-recently-used copies are evicted first (never one in use);
- ``get_local_copy(verify=True)`` re-hashes every file;
- files shared between versions are stored once (hard links);
- four processes asking at once get one copy, built once (four real processes);
- with no ``remote``: ``DATACTL_REMOTE``, then the workspace's ``origin`` (or only) remote, then its own store.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import snapshot, write
from datactl import Dataset
from datactl.remote.cache import Cache
from datactl.remote.locate import REMOTE_ENV, add_remote
from datactl.workspace import sync
from datactl.workspace.workspace import Workspace

MiB = 1 << 20


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    d = str(tmp_path / "cache")
    monkeypatch.setenv("DATACTL_CACHE_DIR", d)
    monkeypatch.delenv("DATACTL_CACHE_SIZE", raising=False)
    monkeypatch.delenv(REMOTE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # not inside a workspace
    return d


def publish(root: Path, url: str | None, files: dict[str, bytes], name: str = "ds", tag: str | None = None) -> str:
    """Commit ``files`` as the next version of ``name`` in the workspace at ``root`` (made if need be); push it to ``url``."""
    if (root / ".datactl").exists():
        ws = Workspace.open(str(root))
    else:
        root.mkdir(parents=True, exist_ok=True)
        ws = Workspace.init(str(root), name=name)
        if url:
            add_remote(ws.root, "origin", url, {})
    for rel, data in files.items():
        write(root / rel, data)
    ws.add([str(root)])
    cid = ws.commit(f"{name} {len(files)}", tags=[tag] if tag else [])
    if url:
        sync.push(ws, tags=True)
    ws.close()
    return cid


def test_cache_size_evicts_the_least_recently_used_copy_first(cache_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "remote")
    rng = random.Random(3)
    for name in "abc":
        publish(tmp_path / name, url, {"data.bin": rng.randbytes(2 * MiB)}, name=name)
    paths = {}
    for name in "aba":  # a, then b, then a again: b is the least recently used
        with Dataset.get(name, remote=url) as ds:
            paths[name] = ds.get_local_copy()
    cache = Cache(cache_dir)
    two = cache.info().total_bytes  # two versions' contents and objects
    cache.close()
    # Room for three versions' objects and two versions' files: one copy has to go, with its files.
    monkeypatch.setenv("DATACTL_CACHE_SIZE", str(int(two * 1.3)))
    with Dataset.get("c", remote=url) as c:
        paths["c"] = c.get_local_copy()
        assert os.path.isdir(paths["c"]), "the copy in use is never evicted"
        assert not os.path.isdir(paths["b"]), "the least recently used copy was evicted"
        assert os.path.isdir(paths["a"]), "a was used after b: it stays"
        assert (Path(paths["a"]) / "data.bin").read_bytes() == (tmp_path / "a" / "data.bin").read_bytes()
    cache = Cache(cache_dir)
    assert cache.info().total_bytes <= int(two * 1.3)
    cache.close()
    with Dataset.get("b", remote=url) as b:  # an evicted version comes back on demand
        assert (Path(b.get_local_copy()) / "data.bin").read_bytes() == (tmp_path / "b" / "data.bin").read_bytes()


def test_get_local_copy_with_verify_rehashes_every_file(cache_dir: str, tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    src = tmp_path / "src"
    publish(src, url, {"x.bin": os.urandom(300_000), "y.txt": b"y\n"})
    with Dataset.get("ds", remote=url) as ds:
        copy = Path(ds.get_local_copy())
    victim = copy / "x.bin"
    # Rot that keeps size, mtime and inode: only re-hashing can see it.
    st = os.stat(victim)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as f:
        f.seek(1000)
        f.write(bytes([victim.read_bytes()[1000] ^ 0xFF]))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(victim, 0o444)
    assert victim.read_bytes() != (src / "x.bin").read_bytes()
    with Dataset.get("ds", remote=url) as ds:
        assert ds.get_local_copy() == str(copy)
        assert victim.read_bytes() != (src / "x.bin").read_bytes(), "without verify, a matching stat is trusted"
        assert ds.get_local_copy(verify=True) == str(copy)
    assert snapshot(copy) == {k: (v[0], 0o444, *v[2:]) for k, v in snapshot(src).items()}


def test_files_shared_between_versions_are_stored_once(cache_dir: str, tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    src = tmp_path / "src"
    shared = os.urandom(500_000)
    publish(src, url, {"shared.bin": shared, "one.txt": b"1\n"}, tag="v1")
    publish(src, url, {"two.txt": b"2\n"}, tag="v2")
    with Dataset.get("ds", "v1", remote=url) as v1, Dataset.get("ds", "v2", remote=url) as v2:
        a, b = Path(v1.get_local_copy()), Path(v2.get_local_copy())
        assert a != b
        sa, sb = os.stat(a / "shared.bin"), os.stat(b / "shared.bin")
        assert sa.st_ino == sb.st_ino and sa.st_nlink >= 3, "one file on disk: the content, linked from both copies"
        assert (b / "shared.bin").read_bytes() == shared
    cache = Cache(cache_dir)
    assert cache.info().file_bytes < 1.5 * len(shared)
    cache.close()


COPY_SCRIPT = """
import sys
from datactl import Dataset
with Dataset.get("ds", remote=sys.argv[1]) as ds:
    before = ds.bytes_downloaded
    print("ready", flush=True)
    sys.stdin.readline()
    path = ds.get_local_copy()
    print(path, ds.bytes_downloaded - before, flush=True)
"""


def test_four_processes_asking_at_once_get_one_copy_built_once(cache_dir: str, tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    src = tmp_path / "src"
    rng = random.Random(8)
    files = {f"f{i}.bin": rng.randbytes(600_000) for i in range(8)}
    publish(src, url, files)
    size = sum(len(d) for d in files.values())
    procs = [subprocess.Popen([sys.executable, "-c", COPY_SCRIPT, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        for p in procs:  # each has resolved the version; none has asked for the copy yet
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    answers = [o[0].split() for o in outputs]
    assert len({path for path, _ in answers}) == 1
    downloaded = sorted(int(n) for _, n in answers)
    assert downloaded[-1] >= size and sum(downloaded) < 1.2 * size, f"the version was downloaded once, not by each process: {downloaded}"
    copy = Path(answers[0][0])
    assert {k: v[-1] for k, v in snapshot(copy).items()} == {k: v[-1] for k, v in snapshot(src).items()}
    assert [p for p in os.listdir(copy.parent) if p.startswith(".tmp")] == []


def test_with_no_remote_given_the_store_is_found_as_documented(cache_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stores = {k: str(tmp_path / f"store-{k}") for k in ("env", "origin", "other", "only")}
    for k, url in stores.items():  # the same dataset, with different contents, in each store
        publish(tmp_path / f"src-{k}", url, {"which.txt": k.encode()})

    def which(cwd: Path) -> str:
        monkeypatch.chdir(cwd)
        with Dataset.get("ds") as ds:
            return ds.read_bytes("which.txt").decode()

    ws = tmp_path / "ws"  # a workspace with an origin and another remote
    ws.mkdir()
    w = Workspace.init(str(ws), name="mine")
    add_remote(w.root, "other", stores["other"], {})
    add_remote(w.root, "origin", stores["origin"], {})
    w.close()
    single = tmp_path / "single"  # a workspace with one remote, not called origin
    single.mkdir()
    w = Workspace.init(str(single), name="mine")
    add_remote(w.root, "backup", stores["only"], {})
    w.close()
    own = tmp_path / "own"  # a workspace with no remote, whose own store holds ds
    publish(own, None, {"which.txt": b"own"})

    assert which(ws) == "origin"
    assert which(single) == "only"
    assert which(own) == "own"
    monkeypatch.setenv(REMOTE_ENV, stores["env"])
    for cwd in (tmp_path, ws, single, own):
        assert which(cwd) == "env", f"DATACTL_REMOTE comes first (in {cwd.name})"
    monkeypatch.setenv(REMOTE_ENV, "other")  # a remote's name works too
    assert which(ws) == "other"
