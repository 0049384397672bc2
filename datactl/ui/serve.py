"""Serving the app with uvicorn on a socket bound first, so ``--port 0`` can say which port it got."""

from __future__ import annotations

import socket
import threading
import webbrowser
from dataclasses import dataclass
from typing import Callable

import uvicorn

from datactl.core.errors import UsageError
from datactl.ui.app import create_app
from datactl.ui.session import StoreSession


@dataclass
class UiServer:
    """A bound, not yet running server; ``url`` is where it answers."""

    server: uvicorn.Server
    sock: socket.socket
    url: str

    def run(self) -> None:
        """Serve until interrupted (or ``stop``)."""
        self.server.run(sockets=[self.sock])

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, notebooks); ``stop`` ends it."""
        thread = threading.Thread(target=self.run, name="datactl-ui", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.server.should_exit = True


def bind(session: StoreSession, host: str = "127.0.0.1", port: int = 0) -> UiServer:
    """The server for ``session`` on ``host:port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}", "choose another --port, or --port 0 for a free one") from None
    sock.listen(64)
    actual = sock.getsockname()[1]
    config = uvicorn.Config(create_app(session, host), log_level="warning", lifespan="off", access_log=False)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return UiServer(uvicorn.Server(config), sock, f"http://{shown}:{actual}/")


def serve(session: StoreSession, host: str, port: int, open_browser: bool, announce: Callable[[str], None]) -> None:
    """Serve until Ctrl-C, after telling ``announce`` the URL."""
    ui = bind(session, host, port)
    announce(ui.url)
    if open_browser:
        webbrowser.open(ui.url)
    ui.run()
