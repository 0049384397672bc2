"""Which store a call reads or writes, and the three ways a store can fail to answer.

* no store at the URL (no config, or no bucket): reading says so (exit 3,
  StoreNotFound), writing from the Python API creates it, as ``push`` does;
* the store cannot be reached or refuses access: the error says which, with
  the SDK's reason (tests/cli/test_storage_failures.py runs every command
  against those);
* offline with the version cached: the cache answers.

Runs against a local folder, the S3-API server and the GCS emulator where a
store is created or read; about 10 s in all.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Cli, write
from datactl import Dataset, log_model
from datactl.core.errors import StoreNotFound, StoreUnreachable, UsageError
from datactl.remote.locate import RemoteSpec
from datactl.remote.remotestore import list_datasets
from servers import free_port


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    d = str(tmp_path / "cache")
    monkeypatch.setenv("DATACTL_CACHE_DIR", d)
    monkeypatch.delenv("DATACTL_REMOTE", raising=False)
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    monkeypatch.chdir(tmp_path)  # not inside a workspace
    return d


def endpoint_args(options: dict) -> list[str]:
    return ["--endpoint-url", options["endpoint_url"]] if "endpoint_url" in options else []


def push_draft(remote: str | RemoteSpec, files: Path, name: str = "ds", tags: tuple[str, ...] = ("v1",)) -> str:
    draft = Dataset.create(name, remote=remote)
    draft.add_files(str(files))
    cid = draft.commit("from the API", tags=tags)
    draft.push()
    return cid


# -- a new store, from Python -----------------------------------------------------------------


def test_a_draft_pushed_where_no_store_is_creates_it(cache_dir: str, tmp_path: Path, store_url: tuple[str, dict], cli: Cli) -> None:
    url, options = store_url
    remote = RemoteSpec(None, url, options)
    with pytest.raises(StoreNotFound, match="no datactl store at"):
        Dataset.get("ds", remote=remote)
    write(tmp_path / "files" / "a.txt", "alpha\n")
    write(tmp_path / "files" / "sub" / "b.bin", os.urandom(3000))

    draft = Dataset.create("ds", remote=remote)
    draft.add_files(str(tmp_path / "files"))
    cid = draft.commit("first", tags=["v1"])
    result = draft.push()
    assert (result.old, result.new, result.tags_pushed) == (None, cid, ["v1"])

    with Dataset.get("ds", "v1", remote=remote) as ds:
        assert ds.id == cid
        assert ds.read_bytes("sub/b.bin") == (tmp_path / "files" / "sub" / "b.bin").read_bytes()
    r = cli("datasets", url, *endpoint_args(options), "--json", cwd=tmp_path)
    assert '"head": "' + cid in r.out

    # the second version follows the first and pushes as a fast-forward
    write(tmp_path / "files" / "a.txt", "alpha, again\n")
    second = push_draft(remote, tmp_path / "files", tags=("v2",))
    with Dataset.get("ds", remote=remote) as ds:
        assert ds.id == second and ds.parents == [cid]


# -- no store there: an error, never an empty answer -----------------------------------------------


@pytest.mark.parametrize("command", ["datasets", "models"])
def test_listing_a_location_without_a_store_is_an_error(command: str, cache_dir: str, tmp_path: Path, store_url: tuple[str, dict], cli: Cli) -> None:
    url, options = store_url  # an empty folder, or a bucket with nothing under the prefix
    if url.startswith("/"):
        os.makedirs(url)
    r = cli(command, url, *endpoint_args(options), cwd=tmp_path, ok=False)
    assert r.code == 3, r
    assert r.err.startswith("error: there is no datactl store at "), r.err
    assert url.split("://")[-1] in r.err and "\nhint: " in r.err and "Traceback" not in r.err
    assert r.out == ""
    with pytest.raises(StoreNotFound):
        list_datasets(RemoteSpec(None, url, options))


# Every command that reads a store named by URL, outside a workspace ({url}: the location without a store).
READERS = (
    ("datasets", "{url}"), ("models", "{url}"), ("clone", "{url}", "ds", "{dest}"), ("lineage", "ds", "--remote", "{url}"),
    ("verify", "ds", "--remote", "{url}"), ("validate", "ds", "--remote", "{url}", "--rules", "{rules}"),
    ("diff", "ds@v1", "ds", "--remote", "{url}"), ("gc", "{url}"), ("fsck", "{url}"), ("dataset", "delete", "ds", "{url}"),
)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_every_command_reading_a_location_without_a_store_says_so(
    kind: str, cache_dir: str, tmp_path: Path, cli: Cli, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servers import new_store

    url, options = new_store(kind, request, tmp_path)  # an empty bucket prefix, or a folder that is not there
    if "endpoint_url" in options:
        monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint_url"])
    rules = tmp_path / "rules.toml"
    rules.write_text('[[validate.rules]]\nname = "n"\ntype = "count"\nmin = 1\n')
    values = {"url": url, "dest": str(tmp_path / "dest"), "rules": str(rules)}
    for argv in READERS:
        r = cli(*(a.format(**values) for a in argv), cwd=tmp_path, ok=False)
        assert r.code == 3 and r.err.startswith("error: there is no datactl store at "), (argv, r)
        assert url.split("://")[-1] in r.err.splitlines()[0] and r.err.splitlines()[1].startswith("hint: "), (argv, r)
    assert not (tmp_path / "dest").exists()
    if kind == "local":
        assert not os.path.exists(url), "reading must not create a store"


def test_a_path_where_nothing_is_is_no_store(cache_dir: str, tmp_path: Path, cli: Cli, ws_dir: Path) -> None:
    missing = str(tmp_path / "no" / "such" / "store")
    write(ws_dir / "a.txt", "a\n")
    cli("init", ".", "--name", "ds")
    for argv in (("fetch", missing), ("pull", missing)):  # in a workspace
        r = cli(*argv, ok=False)
        assert r.code == 3 and f"error: there is no datactl store at file://{missing}" in r.err, (argv, r)
    with pytest.raises(StoreNotFound, match="no datactl store at"):
        Dataset.get("ds", remote=missing)
    write(tmp_path / "files" / "a.txt", "alpha\n")
    write(tmp_path / "files" / "b.txt", "beta\n")
    push_draft(str(tmp_path / "was"), tmp_path / "files")
    reader_cache = str(tmp_path / "reader-cache")  # not the one the draft was written in
    with Dataset.get("ds", "v1", remote=str(tmp_path / "was"), cache_dir=reader_cache) as ds:
        assert ds.read_bytes("a.txt") == b"alpha\n"
    os.rename(tmp_path / "was", tmp_path / "moved")
    with Dataset.get("ds", "v1", remote=str(tmp_path / "was"), cache_dir=reader_cache) as ds:  # the store is gone; what was read is cached
        assert ds.read_bytes("a.txt") == b"alpha\n"
        with pytest.raises(StoreNotFound, match="no datactl store at .*; and object .* was never fetched"):
            ds.read_bytes("b.txt")
    fsspec = pytest.importorskip("fsspec")
    with pytest.raises(StoreNotFound, match="no datactl store at"):
        fsspec.filesystem("datactl", remote=missing, skip_instance_cache=True).ls("ds")
    assert not os.path.exists(missing), "reading must not create a store"


# -- unreachable, and offline with the version cached --------------------------------------------


def test_unreachable_store_reads_what_is_cached_and_says_why_for_the_rest(cache_dir: str, tmp_path: Path, s3_server: str) -> None:
    from servers import new_s3_bucket

    url = f"s3://{new_s3_bucket(s3_server)}/store"
    online = RemoteSpec(None, url, {"endpoint_url": s3_server})
    write(tmp_path / "files" / "a.txt", "alpha\n")
    write(tmp_path / "files" / "b.bin", os.urandom(5000))
    push_draft(online, tmp_path / "files")
    reader_cache = str(tmp_path / "reader-cache")  # not the one the draft was written in
    with Dataset.get("ds", "v1", remote=online, cache_dir=reader_cache) as ds:
        assert ds.read_bytes("a.txt") == b"alpha\n"

    offline = RemoteSpec(None, url, {"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with Dataset.get("ds", "v1", remote=offline, cache_dir=reader_cache) as ds:  # cached: works offline
        assert ds.read_bytes("a.txt") == b"alpha\n"
        with pytest.raises(StoreUnreachable, match="never fetched on this machine"):
            ds.read_bytes("b.bin")  # a file of a cached version whose data was not fetched
    with pytest.raises(StoreUnreachable) as exc:  # never fetched: says the store cannot be reached, not that it is missing
        Dataset.get("ds", "v2", remote=offline, cache_dir=reader_cache)
    assert "never fetched on this machine" in str(exc.value) and exc.value.__cause__ is not None
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("datactl", remote=url, endpoint_url=offline.options["endpoint_url"], cache_dir=reader_cache, skip_instance_cache=True)
    assert fs.cat_file("ds@v1/a.txt") == b"alpha\n"
    with pytest.raises(StoreUnreachable):
        fs.exists("ds@v2")  # a store that cannot be asked is not a "no"


# -- log_model goes where its inputs came from ------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_log_model_defaults_to_the_store_of_its_inputs(kind: str, cache_dir: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from servers import new_store

    url, options = new_store(kind, request, tmp_path)
    remote = RemoteSpec(None, url, options)
    write(tmp_path / "files" / "a.txt", "alpha\n")
    push_draft(remote, tmp_path / "files")
    write(tmp_path / "model" / "weights.bin", os.urandom(2000))
    with Dataset.get("ds", "v1", remote=remote) as ds:
        model = log_model(str(tmp_path / "model"), "clf", inputs=[ds], metadata={"acc": 0.9})
        assert model.inputs == [ds.id]
        model.close()
    with Dataset.get("clf", kind="model", remote=remote) as m:
        assert m.read_bytes("weights.bin") == (tmp_path / "model" / "weights.bin").read_bytes()
        assert m.metadata == {"acc": 0.9}


def test_inputs_from_two_stores_need_a_remote(cache_dir: str, tmp_path: Path) -> None:
    write(tmp_path / "files" / "a.txt", "alpha\n")
    push_draft(str(tmp_path / "one"), tmp_path / "files")
    push_draft(str(tmp_path / "two"), tmp_path / "files")
    write(tmp_path / "model" / "weights.bin", b"w")
    with Dataset.get("ds", remote=str(tmp_path / "one")) as a, Dataset.get("ds", remote=str(tmp_path / "two")) as b:
        with pytest.raises(UsageError, match="different stores"):
            log_model(str(tmp_path / "model"), "clf", inputs=[a, b])
        model = log_model(str(tmp_path / "model"), "clf", inputs=[a, b], remote=str(tmp_path / "two"))
        assert model.inputs == [a.id, b.id]
        model.close()
    assert [d.name for d in list_datasets(RemoteSpec(None, str(tmp_path / "two")))] == ["ds", "clf"]


# -- storage_options as fsspec users write them ------------------------------------------------------


def test_datactl_urls_take_the_usual_storage_options(cache_dir: str, tmp_path: Path, s3_server: str) -> None:
    pd = pytest.importorskip("pandas")
    from servers import new_s3_bucket

    url = f"s3://{new_s3_bucket(s3_server)}/store"
    write(tmp_path / "files" / "labels.csv", "path,label\na,1\nb,2\n")
    push_draft(RemoteSpec(None, url, {"endpoint_url": s3_server}), tmp_path / "files")
    for options in (
        {"remote": url, "endpoint_url": s3_server},
        {"remote": url, "client_kwargs": {"endpoint_url": s3_server, "region_name": "us-east-1"}},
        {"remote": url, "endpoint_url": s3_server, "region": "us-east-1"},
        {"remote": url, "remote_options": {"endpoint_url": s3_server}},
    ):
        df = pd.read_csv("datactl://ds@v1/labels.csv", storage_options=options)
        assert df["label"].tolist() == [1, 2], options
    with pytest.raises(UsageError, match="unknown storage option 'endpoint'"):
        pd.read_csv("datactl://ds@v1/labels.csv", storage_options={"remote": url, "endpoint": s3_server})
    with pytest.raises(UsageError, match="credentials come from"):
        pd.read_csv("datactl://ds@v1/labels.csv", storage_options={"remote": url, "endpoint_url": s3_server, "key": "k", "secret": "s"})
