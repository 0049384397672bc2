"""One behavioural suite for every storage backend: local folder, S3 (moto), GCS (fake-gcs-server), Azure (Azurite).

The fault-injection tests at the end put FaultyProxy between the S3 backend and
moto to check that RetryingBackend rides through throttling and dropped
connections, and that conditional writes stay correct when a response is lost.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from servers import WRITABLE_KINDS, FaultyProxy, new_s3_bucket, new_store
from storage_backends import Backend, BackendError, KeyNotFound, RetryingBackend, TransientError, open_backend

pytest_plugins = ["servers"]

MiB = 1 << 20


@pytest.fixture(params=WRITABLE_KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    """A fresh store on each backend (like ``store_url``, but never overridden by a conftest)."""
    return new_store(request.param, request, tmp_path)


@pytest.fixture
def backend(location: tuple[str, dict]) -> Backend:
    url, options = location
    return open_backend(url, options)


def race(n: int, attempt: Callable[[int], bool]) -> list[int]:
    """Run ``attempt(i)`` for i in range(n) in n threads released together; return who got True."""
    start = threading.Barrier(n)
    winners: list[int] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            if attempt(i):
                winners.append(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return winners


# -- reads and writes -------------------------------------------------------------------


def test_put_get_and_ranges(backend: Backend) -> None:
    data = bytes(range(256)) * 4
    backend.put_bytes("packs/ab/one", data)
    assert backend.get("packs/ab/one") == data
    assert backend.get_range("packs/ab/one", 100, 50) == data[100:150]
    assert backend.get_range("packs/ab/one", len(data) - 1, 1) == data[-1:]
    assert backend.get_range("packs/ab/one", 10, 0) == b""
    backend.put_bytes("packs/ab/one", b"replaced")
    assert backend.get("packs/ab/one") == b"replaced"


@pytest.mark.parametrize(("offset", "length"), [(4, 10), (100, 5)])
def test_range_past_the_end_is_an_error(backend: Backend, offset: int, length: int) -> None:
    backend.put_bytes("packs/short", b"0123456789")
    with pytest.raises(BackendError) as info:
        backend.get_range("packs/short", offset, length)
    assert not isinstance(info.value, KeyNotFound)
    assert "truncated" in str(info.value)


def test_missing_key(backend: Backend) -> None:
    for read in (backend.get, backend.open_read, lambda k: backend.get_range(k, 0, 4)):
        with pytest.raises(KeyNotFound) as info:
            read("packs/missing")
        assert info.value.key == "packs/missing"
    assert not backend.exists("packs/missing")
    assert backend.get_versioned("refs/missing") is None
    backend.delete("packs/missing")


def test_put_file_of_20_mib_round_trips(backend: Backend, location: tuple[str, dict], tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.writelines(os.urandom(MiB) for _ in range(20))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()

    backend.put_file("packs/big", str(path))

    assert hashlib.sha256(backend.get("packs/big")).hexdigest() == expected
    streamed = hashlib.sha256()
    with backend.open_read("packs/big") as stream:
        for block in iter(lambda: stream.read(3 * MiB + 7), b""):
            streamed.update(block)
    assert streamed.hexdigest() == expected
    assert backend.get_range("packs/big", 19 * MiB, MiB) == path.read_bytes()[19 * MiB :]
    url, options = location
    if url.startswith("s3://"):
        import boto3

        bucket, prefix = url[5:].split("/", 1)
        head = boto3.client("s3", endpoint_url=options["endpoint_url"]).head_object(Bucket=bucket, Key=f"{prefix}/packs/big")
        assert head["ETag"].strip('"').endswith("-3"), "a 20 MiB file should go up as a 3-part multipart upload"


def test_list_pages_through_every_key(backend: Backend) -> None:
    inner = backend.inner if isinstance(backend, RetryingBackend) else backend
    if hasattr(inner, "page_size"):
        inner.page_size = 7  # type: ignore[attr-defined]
    names = [f"packs/{i % 3:02x}/{i:04d}" for i in range(30)]
    for i, name in enumerate(names):
        backend.put_bytes(name, b"x" * i)
    backend.put_bytes("refs/datasets/ds", b"head")
    backend.put_bytes("packsuffix", b"not under packs/")

    listed = list(backend.list("packs/"))

    assert sorted(i.key for i in listed) == sorted(names)
    assert {i.key: i.size for i in listed} == {name: i for i, name in enumerate(names)}
    assert all(i.mtime > 0 for i in listed)
    assert [i.key for i in backend.list("refs/")] == ["refs/datasets/ds"]
    assert len(list(backend.list(""))) == len(names) + 2
    assert list(backend.list("nothing/")) == []


def test_delete(backend: Backend) -> None:
    backend.put_bytes("locks/gc", b"me")
    assert backend.exists("locks/gc")
    backend.delete("locks/gc")
    assert not backend.exists("locks/gc")
    backend.delete("locks/gc")


# -- conditional writes -------------------------------------------------------------------


def test_put_if_absent_race_has_exactly_one_winner(location: tuple[str, dict]) -> None:
    url, options = location
    writers = [open_backend(url, options) for _ in range(8)]

    winners = race(8, lambda i: writers[i].put_if_absent("refs/datasets/ds", f"writer {i}".encode()))

    assert len(winners) == 1
    assert writers[0].get("refs/datasets/ds") == f"writer {winners[0]}".encode()


def test_compare_and_swap_race_has_exactly_one_winner(location: tuple[str, dict]) -> None:
    url, options = location
    writers = [open_backend(url, options) for _ in range(8)]
    assert writers[0].compare_and_swap("refs/datasets/ds", b"v0", None)
    v0 = writers[0].get_versioned("refs/datasets/ds")
    assert v0 is not None and v0.data == b"v0"

    winners = race(8, lambda i: writers[i].compare_and_swap("refs/datasets/ds", f"v1 by {i}".encode(), v0))

    assert len(winners) == 1
    assert writers[0].get("refs/datasets/ds") == f"v1 by {winners[0]}".encode()


def test_compare_and_swap_with_a_stale_token_fails(backend: Backend) -> None:
    key = "refs/tags/ds/v1"
    assert backend.compare_and_swap(key, b"one", None)
    assert not backend.compare_and_swap(key, b"again", None), "must-be-absent on an existing key"
    first = backend.get_versioned(key)
    assert first is not None
    assert backend.compare_and_swap(key, b"two", first)
    second = backend.get_versioned(key)
    assert second is not None and second.data == b"two"

    assert not backend.compare_and_swap(key, b"three", first)
    assert not backend.compare_and_swap(key, None, first), "a delete with a stale token"
    assert backend.get(key) == b"two"

    assert backend.compare_and_swap(key, None, second)
    assert not backend.exists(key)
    assert not backend.compare_and_swap(key, b"four", second), "the key is gone"
    assert backend.compare_and_swap(key, None, None), "deleting an absent key that should be absent"


# -- S3 through a faulty network -------------------------------------------------------


@pytest.fixture
def s3_bucket_url(s3_server: str) -> str:
    return f"s3://{new_s3_bucket(s3_server)}/store"


def fifty_operations(backend: Backend) -> None:
    """25 writes and 25 reads, each checked."""
    for i in range(25):
        data = f"object {i} ".encode() * (i + 1)
        backend.put_bytes(f"packs/{i:02d}", data)
        assert backend.get(f"packs/{i:02d}") == data


def test_retrying_backend_rides_through_503s_and_resets(s3_server: str, s3_bucket_url: str) -> None:
    with FaultyProxy(s3_server, fail_every=3, modes=("503", "reset")) as proxy:
        backend = open_backend(s3_bucket_url, {"endpoint_url": proxy.url})
        assert isinstance(backend, RetryingBackend)
        fifty_operations(backend)
    assert proxy.faults["503"] > 5 and proxy.faults["reset"] > 5
    assert proxy.counts["PUT"] >= 25 and proxy.counts["GET"] >= 25


@pytest.mark.parametrize("mode", ["503", "reset"])
def test_without_retries_faults_surface_as_transient_errors(s3_server: str, s3_bucket_url: str, mode: str) -> None:
    from storage_backends.s3 import S3Backend

    with FaultyProxy(s3_server, fail_every=3, modes=(mode,)) as proxy, pytest.raises(TransientError):
        fifty_operations(S3Backend(s3_bucket_url, endpoint_url=proxy.url))
    assert proxy.counts["PUT"] + proxy.counts["GET"] == 3, "boto3 must not retry on its own"


def test_list_through_the_proxy_asks_page_by_page(s3_server: str, s3_bucket_url: str) -> None:
    direct = open_backend(s3_bucket_url, {"endpoint_url": s3_server})
    for i in range(30):
        direct.put_bytes(f"packs/{i:04d}", b"x")
    with FaultyProxy(s3_server) as proxy:
        backend = open_backend(s3_bucket_url, {"endpoint_url": proxy.url})
        backend.inner.page_size = 7  # type: ignore[attr-defined]
        assert len(list(backend.list("packs/"))) == 30
    assert proxy.counts["GET"] == 5


def test_put_if_absent_whose_response_was_lost_reports_success(s3_server: str, s3_bucket_url: str) -> None:
    # Every 2nd request is forwarded but its response dropped: the PUT lands, the client
    # sees a reset, its retry finds the key taken, and only the read-back tells the truth.
    with FaultyProxy(s3_server, fail_every=2, modes=("lost",)) as proxy:
        backend = open_backend(s3_bucket_url, {"endpoint_url": proxy.url})
        assert not backend.exists("refs/datasets/ds")
        assert backend.put_if_absent("refs/datasets/ds", b"mine")
    assert proxy.faults["lost"] >= 1
    assert open_backend(s3_bucket_url, {"endpoint_url": s3_server}).get("refs/datasets/ds") == b"mine"


def test_compare_and_swap_whose_response_was_lost_reports_success(s3_server: str, s3_bucket_url: str) -> None:
    direct = open_backend(s3_bucket_url, {"endpoint_url": s3_server})
    direct.put_bytes("refs/datasets/ds", b"v0")
    with FaultyProxy(s3_server, fail_every=2, modes=("lost",)) as proxy:
        backend = open_backend(s3_bucket_url, {"endpoint_url": proxy.url})
        v0 = backend.get_versioned("refs/datasets/ds")
        assert backend.compare_and_swap("refs/datasets/ds", b"v1", v0)
    assert proxy.faults["lost"] >= 1
    assert direct.get("refs/datasets/ds") == b"v1"
    assert not direct.compare_and_swap("refs/datasets/ds", b"v2", v0), "a real conflict is still a conflict"
