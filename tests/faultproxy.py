"""A fault-injecting HTTP proxy on 127.0.0.1, in front of the S3 test server (standard library only).

``FaultyProxy(upstream, ...)`` forwards every request and counts them per HTTP
method; it injects faults in one of two ways:

* ``fail_every=N``: every Nth request fails, the ``modes`` taken in turn;
* ``probability=p``: a share ``p`` of the requests of each kind (uploads, ranged
  and whole downloads of objects, the rest) fails, in the modes that apply to that kind, taken in
  turn, so that every mode happens once a kind has had a few faults. Where a
  fault falls is fixed by ``seed`` and by the order of the requests of each
  kind, not by chance. A request that just failed is never failed again the
  next time it is sent: every fault is one a client must survive with a retry,
  which is what the behavioural tests through the proxy check (a fault that
  does not go away is ``fail_every=1``).

The modes:

========== =======================================================================
"500"      answer 500 InternalError without forwarding
"503"      answer 503 SlowDown without forwarding
"reset"    drop the connection without forwarding
"lost"     forward, then drop the connection: the server acted, the client never hears
"truncate" forward, then send the headers and half the body and drop the connection
"short"    forward, then send half the body as if it were all of it (Content-Length
           says so): a body cut by something on the way that framed it as complete
"flip"     forward, then flip one byte of the body
           ("short" and "flip" only for bodies the client can check: a checksum header,
           as S3, GCS and Azure send with a whole object, or a ranged read of a pack, whose
           objects datactl hashes; other bodies go through intact, and the next
           request of the kind gets the fault)
"baddigest" (uploads) answer 400 BadDigest without forwarding: what S3 says when a
           request body arrives damaged (the test server does not check checksums)
========== =======================================================================

The proxy serves at most ``max_requests`` requests (then answers 503 to
everything), at most ``max_connections`` at a time, and stops by itself after
``lifetime`` seconds.
"""

from __future__ import annotations

import collections
import http.client
import random
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlparse

LOOPBACK = "127.0.0.1"
MODES = ("500", "503", "reset", "lost", "truncate", "short", "flip", "baddigest")
# Modes that need a response body they can cut or damage.
_NEEDS_BODY_DOWNLOAD = {"truncate", "short", "flip"}

# Connection-level headers that belong to one hop, not to the request.
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
)


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


def _error_xml(code: str, message: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'.encode()


ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again. (FaultyProxy)"),
    "503": (503, "SlowDown", "Please reduce your request rate. (FaultyProxy)"),
    "baddigest": (400, "BadDigest", "The Content-MD5 or checksum you specified did not match what we received. (FaultyProxy)"),
}


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

    def _answer_error(self, fault: str) -> None:
        status, code, message = ERRORS[fault]
        payload = b"" if self.command == "HEAD" else _error_xml(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        fault, kind = proxy._next_fault(self.command, self.path, self.headers.get("Range", ""), bool(body))
        if fault == "reset":
            self._reset()
            return
        if fault in ERRORS:
            self._answer_error(fault)
            return
        status, reason, headers, payload = proxy._forward(self.command, self.path, self.headers.items(), body)
        if fault == "lost":
            self._reset()
            return
        checkable = status == 206 or any(name.lower().startswith(("x-amz-checksum-", "x-goog-hash", "content-md5")) for name, _ in headers)
        if fault == "flip" and payload and status in (200, 206) and checkable:
            damaged = bytearray(payload)
            damaged[proxy._flip_at(self.path, len(payload))] ^= 0x10
            payload = bytes(damaged)
        elif fault == "short" and len(payload) > 1 and status in (200, 206) and checkable:
            payload = payload[: len(payload) // 2]
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"] + [("Content-Length", str(len(payload)))]
        elif fault == "truncate" and len(payload) > 1 and self.command != "HEAD":
            self.send_response_only(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        elif fault in _NEEDS_BODY_DOWNLOAD:
            proxy._not_applied(fault, kind)
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream_url`` that counts requests and injects faults (module doc).

    ``counts`` maps an HTTP method to the number of requests received,
    ``faults`` a mode to the number of faults injected.
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
        unknown = set(modes) - set(MODES)
        if unknown or not modes:
            raise ValueError(f"unknown fault modes {sorted(unknown)}")
        upstream = urlparse(upstream_url)
        if upstream.hostname not in (LOOPBACK, "localhost", "::1"):
            raise ValueError("FaultyProxy forwards only to servers on this machine")
        self.upstream = (upstream.hostname, upstream.port or 80)
        self.fail_every = fail_every
        self.probability = probability
        self.modes = modes
        self.seed = seed
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.counts: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._seen = 0
        self._failed_last: set[tuple[str, str, str]] = set()  # requests whose last try was failed
        start = random.Random(seed)
        kinds = ("upload", "range", "download", "other")
        self._credit = {kind: start.random() for kind in kinds}  # where the first faults fall
        self._turn = {kind: start.randrange(len(MODES)) for kind in kinds}  # which mode comes first
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

    @staticmethod
    def _request_key(method: str, path: str, byte_range: str) -> tuple[str, str, str]:
        # A multipart upload's id changes on every try of the upload; its parts are the same requests.
        parsed = urlparse(path)
        query = urlencode(sorted((k, v) for k, v in parse_qsl(parsed.query, keep_blank_values=True) if k != "uploadId"))
        return method, f"{parsed.path}?{query}", byte_range

    @staticmethod
    def _kind(method: str, path: str, byte_range: str, has_body: bool) -> str:
        """The kind of request: upload, range or download (part or all of an object), or other (listing, HEAD, DELETE)."""
        if method in ("PUT", "POST") and has_body:
            return "upload"
        if method == "GET" and urlparse(path).path.strip("/").count("/") >= 1:
            return "range" if byte_range else "download"
        return "other"

    def _modes_of(self, kind: str, method: str) -> list[str]:
        if kind == "upload":
            allowed = {"500", "503", "reset", "lost", "baddigest"}
        elif kind in ("range", "download"):
            allowed = {"500", "503", "reset", "lost", "truncate", "short", "flip"}
        else:
            allowed = {"500", "503", "reset", "lost"} | ({"truncate"} if method == "GET" else set())
        return [m for m in self.modes if m in allowed]

    def _next_fault(self, method: str, path: str, byte_range: str, has_body: bool) -> tuple[str | None, str]:
        """The fault for this request (or None), and the kind of request it is."""
        kind = self._kind(method, path, byte_range, has_body)
        with self._lock:
            self._seen += 1
            self.counts[method] += 1
            key = self._request_key(method, path, byte_range)
            fault: str | None = None
            if self._seen > self.max_requests:
                fault = "503"
            elif self.fail_every:
                if self._seen % self.fail_every == 0:
                    fault = self.modes[(self._seen // self.fail_every - 1) % len(self.modes)]
            elif self.probability:
                modes = self._modes_of(kind, method)
                self._credit[kind] += self.probability
                if modes and self._credit[kind] >= 1.0 and key not in self._failed_last:
                    self._credit[kind] -= 1.0
                    fault = modes[self._turn[kind] % len(modes)]
                    self._turn[kind] += 1
            if fault:
                self._failed_last.add(key)
                self.faults[fault] += 1
            else:
                self._failed_last.discard(key)
            return fault, kind

    def _not_applied(self, fault: str, kind: str) -> None:
        """A fault the response gave no room for (no body to cut or damage): the request went through; the next one owes it."""
        with self._lock:
            self.faults[fault] -= 1
            if not self.fail_every:
                self._credit[kind] += 1.0
                self._turn[kind] -= 1

    def _flip_at(self, path: str, size: int) -> int:
        return random.Random(f"{self.seed}|flip|{path}|{size}").randrange(size)

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
