"""What a process fetched stays in the cache once it exits, whatever it forgot to close.

A first process reads a version and exits without closing anything: through
``Dataset.get(...).read_bytes``, through ``Dataset.open``, through
``datactl://`` with pandas, and from ``multiprocessing`` workers reading a
``FileReader``. Then the store goes away (the folder is moved; the S3
endpoint is a closed port) and a second process reads the same files
offline. Each process reads several files, so both the flush at the end of
the first fetching call and the one at exit are exercised. About 25 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write
from datactl import Dataset
from datactl.remote.locate import RemoteSpec
from servers import free_port, new_store

FILES = [f"part/{i}.csv" for i in range(6)]

READ = r"""
import hashlib, json, multiprocessing, sys
from datactl import Dataset
from datactl.api.readers import FileReader
from datactl.remote.locate import RemoteSpec

url, options, how = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
files = json.loads(sys.argv[4])
remote = RemoteSpec(None, url, options)
kept = []  # nothing is closed: the objects stay alive until the interpreter exits


def digest(data):
    return hashlib.sha256(data).hexdigest()


def hold(reader):
    kept.append(reader)  # one reader per worker for its whole life, as a DataLoader's workers have


def read_in_worker(i):
    reader = kept[0]
    return reader.paths[i], digest(reader[i])


if __name__ == "__main__":
    got = {}
    if how == "read_bytes":
        ds = Dataset.get("ds", "v1", remote=remote)
        kept.append(ds)
        got = {p: digest(ds.read_bytes(p)) for p in files}
    elif how == "open":
        ds = Dataset.get("ds", "v1", remote=remote)
        kept.append(ds)
        for p in files:
            f = ds.open(p)
            kept.append(f)
            got[p] = digest(f.read())
    elif how == "datactl://":
        import pandas
        so = {"remote": url, **options}
        for p in files:
            frame = pandas.read_csv(f"datactl://ds@v1/{p}", storage_options=so)
            got[p] = digest(frame.to_csv(index=False).encode())
    elif how == "workers":
        reader = FileReader("ds", "v1", remote=remote, pattern="part/*")
        pool = multiprocessing.get_context("spawn").Pool(2, initializer=hold, initargs=(reader,))
        got = dict(pool.map(read_in_worker, range(len(reader)), chunksize=1))
        pool.close()
        pool.join()
    print(json.dumps(got))
"""


def run_reader(url: str, options: dict, how: str, env: dict, cwd: Path) -> dict[str, str]:
    script = cwd / "read_version.py"  # a file, not -c: spawned workers import the script's functions from it
    script.write_text(READ)
    r = subprocess.run(
        [sys.executable, str(script), url, json.dumps(options), how, json.dumps(FILES)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# Every way of reading on a local store; on S3 the two that differ there (one process, worker processes).
CASES = [(how, "local") for how in ("read_bytes", "open", "datactl://", "workers")] + [("read_bytes", "s3"), ("workers", "s3")]


@pytest.mark.parametrize(("how", "kind"), CASES)
def test_what_a_process_fetched_reads_offline_after_it_exits(
    how: str, kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "datactl://":
        pytest.importorskip("pandas")
        pytest.importorskip("fsspec")
    url, options = new_store(kind, request, tmp_path)
    src = tmp_path / "src"
    for i, p in enumerate(FILES):
        write(src / p, "a,b\n" + "".join(f"{i},{j}\n" for j in range(200 + i)))
    cache = tmp_path / "cache"
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "publisher-cache"))
    monkeypatch.chdir(tmp_path)
    draft = Dataset.create("ds", remote=RemoteSpec(None, url, options))
    draft.add_files(str(src))
    draft.commit("v1", tags=["v1"])
    draft.push()

    env = {**os.environ, "DATACTL_CACHE_DIR": str(cache)}
    env.pop("DATACTL_REMOTE", None)
    online = run_reader(url, options, how, env, tmp_path)
    if how == "datactl://":  # what pandas parsed; compare it with the same parse of the files
        pd = pytest.importorskip("pandas")
        expected = {p: hashlib.sha256(pd.read_csv(src / p).to_csv(index=False).encode()).hexdigest() for p in FILES}
    else:
        expected = {p: hashlib.sha256((src / p).read_bytes()).hexdigest() for p in FILES}
    assert online == expected

    if kind == "local":
        os.rename(url, tmp_path / "gone")
        offline_options = options
    else:
        offline_options = {**options, "endpoint_url": f"http://127.0.0.1:{free_port()}"}
    assert run_reader(url, offline_options, how, env, tmp_path) == expected
