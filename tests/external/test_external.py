"""External files: versions that name objects where they live, read back pinned and verified.

Sources are real: the S3-API server (moto, a versioned and an unversioned
bucket), the GCS emulator (fake-gcs-server) and local files. Reaches them
through the SDKs' own settings (AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST), as a
user's environment would. About 15 s in all.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Iterator

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Cli, snapshot, write
from datactl import Dataset
from datactl.core.errors import CorruptObject, SourceChangedError, UsageError
from datactl.format.external import check_source_url
from datactl.format.objects import decode_tree

A = b"id,label\n1,cat\n2,dog\n"
B = os.urandom(300_000)  # incompressible: were it stored, the store would hold 300 kB
C = b"notes\n"


@pytest.fixture(scope="module")
def s3(s3_server: str) -> Iterator:
    """A boto3 client of the S3-API server; sources reach it through AWS_ENDPOINT_URL, as the SDK's chain does."""
    import boto3

    env = pytest.MonkeyPatch()
    env.setenv("AWS_ENDPOINT_URL", s3_server)
    yield boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    env.undo()


def new_bucket(s3, versioned: bool) -> str:
    name = f"src-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATACTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DATACTL_REMOTE", raising=False)
    return tmp_path


def store_bytes(ws: Path) -> int:
    packs = ws / ".datactl" / "store" / "packs"
    return sum(f.stat().st_size for f in packs.rglob("*") if f.is_file())


def test_s3_prefix_recorded_in_place_and_pinned_version_restores(cli: Cli, ws_dir: Path, home: Path, s3) -> None:
    bucket = new_bucket(s3, versioned=True)
    for key, body in (("raw/a.csv", A), ("raw/sub/b.bin", B), ("raw/c.txt", C), ("other/x", b"x")):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    cli("init", "--name", "ext")
    r = cli("add", "--external", f"s3://{bucket}/raw/", "--dest", "data")
    assert "staged 3 added" in r.out
    cli("commit", "-m", "v1")
    want = {"data/a.csv": A, "data/sub/b.bin": B, "data/c.txt": C}
    assert {p: (ws_dir / p).read_bytes() for p in want} == want
    assert store_bytes(ws_dir) < 20_000  # trees and a commit; none of the 300 kB

    # validation rules read external files' bytes like any file's (from the source, verified)
    write(home / "rules.toml", '[[validate.rules]]\ntype = "csv"\nglob = "data/a.csv"\nheader = ["id", "label"]\nmin_rows = 3\n')
    r = cli("validate", "--rules", str(home / "rules.toml"), ok=False)
    assert r.code == 1 and "data/a.csv" in r.out and "2" in r.out  # read: it has 2 rows, not 3

    # the source moves on: verify notices without downloading; the pinned version still restores
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"id,label\n1,bird\n")
    r = cli("verify", ok=False)
    assert r.code == 1 and f"data/a.csv: its source s3://{bucket}/raw/a.csv changed since it was recorded" in r.out + r.err
    (ws_dir / "data" / "a.csv").unlink()
    cli("checkout", "-f", "HEAD")
    assert (ws_dir / "data" / "a.csv").read_bytes() == A

    # a clone of a pushed version reads its external files from the sources; gc leaves them alone
    remote = home / "remote"
    cli("push", str(remote))
    cli("gc", str(remote), "--grace", "0")
    clone = home / "clone"
    cli("clone", str(remote), "ext", str(clone), cwd=home)
    assert snapshot(clone) == snapshot(ws_dir)
    assert store_bytes(clone) < 20_000
    with Dataset.get("ext", remote=str(remote)) as ds:
        with ds.open("data/sub/b.bin") as f:  # ranged reads of the source, each chunk checked
            f.seek(150_000)
            assert f.read(1000) == B[150_000:151_000]
        copy = Path(ds.get_local_copy())
        assert (copy / "data" / "sub" / "b.bin").read_bytes() == B


def test_s3_overwritten_then_deleted_source_is_a_clear_error_and_update_records_it(cli: Cli, ws_dir: Path, home: Path, s3) -> None:
    bucket = new_bucket(s3, versioned=False)
    s3.put_object(Bucket=bucket, Key="models/w.bin", Body=B)
    cli("init", "--name", "ext")
    cli("add", "--external", f"s3://{bucket}/models/w.bin")
    cli("commit", "-m", "v1")
    url = f"s3://{bucket}/models/w.bin"

    assert "source changed" not in cli("status").out
    s3.put_object(Bucket=bucket, Key="models/w.bin", Body=B[::-1])
    r = cli("status")
    assert "source changed: w.bin" in r.out and "S w.bin" in cli("status", "--short").out
    (ws_dir / "w.bin").unlink()
    r = cli("checkout", "-f", "HEAD", ok=False)
    assert r.code == 3
    assert f"error: w.bin: its source {url} changed since this version was recorded" in r.err
    assert "hint: run `datactl update w.bin` and commit" in r.err
    assert "Traceback" not in r.err and not (ws_dir / "w.bin").exists()

    r = cli("update", "w.bin")
    assert "staged 1 changed" in r.out
    cli("commit", "-m", "v2: new weights")
    assert (ws_dir / "w.bin").read_bytes() == B[::-1]
    assert "w.bin" in cli("diff", "HEAD~1", "HEAD").out
    cli("verify")

    s3.delete_object(Bucket=bucket, Key="models/w.bin")
    (ws_dir / "w.bin").unlink()
    r = cli("checkout", "-f", "HEAD", ok=False)
    assert r.code == 3 and f"error: w.bin: its source {url} is gone" in r.err
    r = cli("verify", ok=False)
    assert f"its source {url} is gone" in r.out + r.err


def test_gcs_objects_through_the_python_api(home: Path, gcs_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    monkeypatch.setenv("DATACTL_AUTHOR", "Test <test@example.com>")
    monkeypatch.chdir(home)
    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_server})
    bucket = client.create_bucket(f"src-{uuid.uuid4().hex[:12]}")
    for name, body in (("imgs/1.bin", B), ("imgs/2.bin", A), ("imgs/readme.txt", C)):
        bucket.blob(name).upload_from_string(body)
    remote = str(home / "remote")

    draft = Dataset.create("pics", remote=remote)
    assert draft.add_external_files(f"gs://{bucket.name}/imgs/*.bin", dest="train") == 2
    draft.commit("v1", tags=["v1"])
    draft.push()
    with fsspec.open("datactl://pics@v1/train/2.bin", remote=remote) as f:
        assert f.read() == A
    with Dataset.get("pics", "v1", remote=remote) as ds:
        assert sorted(f.path for f in ds.files()) == ["train/1.bin", "train/2.bin"]
        assert ds.read_bytes("train/2.bin") == A
        with ds.open("train/1.bin") as f:
            f.seek(299_000)
            assert f.read() == B[299_000:]

    bucket.blob("imgs/2.bin").upload_from_string(b"id,label\n")
    with Dataset.get("pics", "v1", remote=remote, cache_dir=str(home / "cache2")) as ds:
        with pytest.raises(SourceChangedError, match=f"train/2.bin: its source gs://{bucket.name}/imgs/2.bin"):
            ds.read_bytes("train/2.bin")


def test_bytes_changed_behind_an_unchanged_stat_are_caught_by_the_digest(cli: Cli, ws_dir: Path, home: Path) -> None:
    src = home / "src"
    write(src / "table.csv", A)
    cli("init", "--name", "ext")
    cli("add", "--external", str(src / "table.csv"))
    cli("commit", "-m", "v1")
    st = os.stat(src / "table.csv")
    (src / "table.csv").write_bytes(A.replace(b"cat", b"cow"))  # same size
    os.utime(src / "table.csv", ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same time: a stat cannot tell

    cli("verify")  # by stat: size and time agree
    r = cli("verify", "--deep", ok=False)
    assert "table.csv: its source file://" in r.out + r.err and "no longer holds the recorded bytes" in r.out + r.err
    (ws_dir / "table.csv").unlink()
    r = cli("checkout", "-f", "HEAD", ok=False)
    assert r.code == 3 and "error: table.csv: its source file://" in r.err and "digest differs" in r.err
    assert not (ws_dir / "table.csv").exists()


def test_copy_stores_the_bytes_as_ordinary_files(cli: Cli, ws_dir: Path, home: Path) -> None:
    write(home / "src" / "b.bin", B)
    cli("init", "--name", "ext")
    cli("add", "--external", "--copy", str(home / "src") + "/")
    cli("commit", "-m", "v1")
    assert store_bytes(ws_dir) > len(B)
    (home / "src" / "b.bin").unlink()  # the store has them: the source no longer matters
    (ws_dir / "b.bin").unlink()
    cli("checkout", "-f", "HEAD")
    assert (ws_dir / "b.bin").read_bytes() == B


@pytest.mark.parametrize(
    "url, why",
    [
        ("s3://bucket/k.csv?X-Amz-Signature=SECRET", "query string"),
        ("https://user:SECRET@example.com/data.csv", "credentials"),
        ("gs://bucket/a.bin#SECRET", "query string"),
        ("ftp://example.com/a", "scheme"),
    ],
)
def test_urls_with_credentials_or_signatures_are_refused(cli: Cli, url: str, why: str) -> None:
    cli("init", "--name", "ext")
    r = cli("add", "--external", url, ok=False)
    assert r.code == 2 and why in r.err and "SECRET" not in r.err + r.out


@settings(max_examples=60, deadline=None)
@given(secret=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#@"), min_size=1, max_size=20))
def test_no_url_carrying_a_secret_is_recorded(secret: str) -> None:
    for url in (f"s3://b/k?sig={secret}", f"https://u:{secret}@h/k", f"https://{secret}@h/k", f"gs://b/k#{secret}"):
        with pytest.raises(ValueError):
            check_source_url(url)


def test_a_tree_naming_a_signed_url_is_refused_when_read() -> None:
    entry = (
        b'{"chunks":[],"digest":"99aa06d3014798d86001c324468d497f","kind":"external","mode":420,"name":"a","size":0,'
        b'"sizes":[],"source":{"url":"s3://b/a?X-Amz-Credential=AKIA"}}'
    )
    with pytest.raises(CorruptObject, match="query string"):
        decode_tree("0" * 32, b'{"entries":[' + entry + b'],"format":1}')
    with pytest.raises(CorruptObject, match="sizes"):
        decode_tree("0" * 32, b'{"entries":[' + entry.replace(b'"sizes":[]', b'"sizes":[1]').replace(b"?X-Amz-Credential=AKIA", b"") + b'],"format":1}')


def test_a_prefix_that_matches_nothing_says_so(cli: Cli, home: Path, s3) -> None:
    bucket = new_bucket(s3, versioned=False)
    cli("init", "--name", "ext")
    r = cli("add", "--external", f"s3://{bucket}/nothing/", ok=False)
    assert r.code == 2 and f"s3://{bucket}/nothing/ did not match any object" in r.err
    with pytest.raises(UsageError):
        Dataset.create("x", remote=str(home / "remote")).add_external_files(f"s3://{bucket}/nothing/*.bin")


def test_the_hint_of_a_changed_source_is_an_update_command_that_works(cli: Cli, ws_dir: Path, home: Path) -> None:
    """Commands that name a file with its version (`in v1 (...)`) still hint `datactl update PATH`, which then records the source."""
    src = home / "src" / "labels.csv"
    write(src, A)
    cli("init", "--name", "ext")
    cli("add", "--external", str(src), "--dest", "data")
    cli("commit", "-m", "v1", "--tag", "v1")
    write(src, A.replace(b"cat", b"cow"))
    want = "hint: run `datactl update data/labels.csv` and commit to record the source's new content as a new version, or restore the source object"
    for args in (["stats", "v1", "data/labels.csv"], ["diff", "v1", "v1", "data/labels.csv"], ["diff", "v1", "v1", "data/labels.csv", "--key", "id"]):
        r = cli(*args, ok=False)
        assert r.code == 3 and r.err.startswith("error: data/labels.csv in v1 (") and want in r.err.splitlines(), (args, r.err)
    (ws_dir / "data" / "labels.csv").unlink()
    r = cli("checkout", "-f", "v1", ok=False)
    assert r.code == 3 and r.err.startswith("error: data/labels.csv: its source") and want in r.err.splitlines(), r.err

    command = want.split("`")[1].split()[1:]  # what the hint says to run, as a user would
    assert "1 changed" in cli(*command).out
    cli("commit", "-m", "v2", "--tag", "v2")
    (t,) = json.loads(cli("stats", "v2", "data/labels.csv", "--json").out)["tables"]
    assert {c["name"]: c["top"] for c in t["columns"]}["label"] == [["cow", 1], ["dog", 1]]
