"""What is particular to the Azure and HTTP backends: where credentials come from, how failures read, and
reading an object pinned to the version recorded for it (external files), against Azurite and nginx."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from servers import AZURITE_KEY, WebServer, free_port, new_azure_container
from storage_backends import AccessDenied, Backend, BackendError, ConnectionFailed, ContainerNotFound, KeyNotFound, SourceChanged, open_backend

DATA = bytes(range(256)) * 300


@pytest.fixture(params=["azure", "http"])
def source(request: pytest.FixtureRequest) -> tuple[Backend, Callable[[str, bytes], None]]:
    """A backend to read from, and a way to (over)write one of its objects behind its back."""
    if request.param == "azure":
        endpoint = request.getfixturevalue("azure_server")
        backend = open_backend(f"az://{new_azure_container(endpoint)}/data", {})
        return backend, backend.put_bytes
    server: WebServer = request.getfixturevalue("http_server")
    folder = server.root / f"src-{uuid.uuid4().hex[:8]}"
    writes = iter(range(1, 1000))

    def write(key: str, data: bytes) -> None:
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stamp = 1_700_000_000 + next(writes) * 10  # a new mtime for every write: nginx's ETag is mtime and size
        os.utime(path, (stamp, stamp))

    return open_backend(f"{server.url}/{folder.name}", {}), write


def test_a_pinned_read_gets_the_recorded_object_or_says_it_changed(source: tuple[Backend, Callable[[str, bytes], None]]) -> None:
    backend, write = source
    write("sub/obj.bin", DATA)
    now = backend.stat("sub/obj.bin")
    assert now.size == len(DATA) and now.etag

    assert backend.get_range_at("sub/obj.bin", 1000, 5000, now.version, now.etag) == DATA[1000:6000]
    with backend.open_read_at("sub/obj.bin", now.version, now.etag) as stream:
        assert stream.read() == DATA

    write("sub/obj.bin", DATA[::-1])
    with pytest.raises(SourceChanged):
        backend.get_range_at("sub/obj.bin", 1000, 5000, now.version, now.etag)
    with pytest.raises(SourceChanged):
        backend.open_read_at("sub/obj.bin", now.version, now.etag)
    assert backend.get_range_at("sub/obj.bin", 0, 10, None) == DATA[::-1][:10], "unpinned: the current object"
    with pytest.raises(KeyNotFound):
        backend.stat("sub/missing.bin")


def test_writes_to_an_http_store_are_refused(http_server: WebServer) -> None:
    backend = open_backend(f"{http_server.url}/anything", {})
    for write in (lambda: backend.put_bytes("refs/x", b"1"), lambda: backend.put_if_absent("index/x", b"1"), lambda: backend.delete("packs/x")):
        with pytest.raises(AccessDenied, match="read-only: push to the store behind it"):
            write()


def test_azure_account_key_with_an_endpoint(azure_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    container = new_azure_container(azure_server)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_KEY", AZURITE_KEY)
    backend = open_backend(f"azure://{container}/store", {"endpoint_url": azure_server})
    backend.put_bytes("config", b"{}")
    assert backend.get("config") == b"{}"

    monkeypatch.setenv("AZURE_STORAGE_KEY", "d3Jvbmcga2V5" * 8)
    with pytest.raises(AccessDenied, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_backend(f"az://{container}/store", {"endpoint_url": azure_server}).get("config")


def test_azure_failures_say_what_is_wrong(azure_server: str) -> None:
    with pytest.raises(ContainerNotFound, match="container 'no-such-container' does not exist"):
        open_backend("az://no-such-container/store", {}).get("config")
    unreachable = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    with pytest.raises(ConnectionFailed):
        open_backend("az://c/store", {"endpoint_url": unreachable}).inner.get("config")
    with pytest.raises(BackendError, match="do not apply to az://"):
        open_backend("az://c/store", {"region": "eu"})


def test_http_failures_say_what_is_wrong(http_server: WebServer, tmp_path: Path) -> None:
    with pytest.raises(KeyNotFound):
        open_backend(f"{http_server.url}/nothing-here", {}).get("config")
    with pytest.raises(ConnectionFailed):
        open_backend(f"http://127.0.0.1:{free_port()}/store", {}).inner.get("config")
    with pytest.raises(BackendError, match="cannot list"):
        list(open_backend(f"{http_server.url}/store", {}).list("index/"))
