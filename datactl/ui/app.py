"""The web app: read-only routes over one store, each page as HTML or (``?format=json``) as JSON.

Routes (every one a GET; nothing changes the store):

    /                               datasets and models (``?q=`` name, tag or key=value)
    /d/NAME                         its history
    /d/NAME@VERSION/[PATH]          a folder (``?offset=``), or a file's preview (``?offset=`` rows)
    /raw/NAME@VERSION/PATH          a file's bytes (images for the preview)
    /diff/NAME@VERSION/             against its parent, or ``?against=REF``
    /lineage/NAME@VERSION/          ``?direction=up|down|both``
    /checks/NAME@VERSION/           ``?run=1`` runs verify and validate
"""

from __future__ import annotations

from typing import Any, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from datactl.core.errors import AmbiguousRef, DatactlError, PathNotFound, StorageError, UnknownRef, UnsafePath, UsageError
from datactl.ui import pages
from datactl.ui.preview import IMAGE_TYPES, file_suffix
from datactl.ui.render import environment, render
from datactl.ui.session import StoreSession

RAW_LIMIT = 32 * 1024 * 1024  # the largest file /raw serves (images in a preview); more is a checkout's job
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
# Pages load only their own scripts and styles (mermaid styles its drawings inline); nothing from the network.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
TEMPLATES = {"store": "store.html", "dataset": "dataset.html", "version": "version.html", "file": "file.html",
             "diff": "diff.html", "lineage": "lineage.html", "checks": "checks.html"}


def _status(exc: DatactlError) -> int:
    if isinstance(exc, (UnknownRef, PathNotFound)):
        return 404
    if isinstance(exc, (UsageError, UnsafePath, AmbiguousRef)):
        return 400
    if isinstance(exc, StorageError):
        return 502
    return 500


def _split(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition("@")
    return name, version


def create_app(session: StoreSession, host: str = "127.0.0.1") -> Starlette:
    """The app over ``session``; requests are answered one at a time (they share the store's reader)."""
    env = environment()

    def respond(request: Request, build: Callable[[], dict[str, Any]]) -> Response:
        as_json = request.query_params.get("format") == "json"
        try:
            with session.lock:
                session.refresh()
                data = build()
        except DatactlError as exc:
            data, status = {"page": "error", "store": session.label, "error": exc.message, "hint": exc.hint}, _status(exc)
        else:
            status = 200
        if as_json:
            return JSONResponse(data, status, headers=SECURITY_HEADERS)
        return HTMLResponse(render(env, TEMPLATES.get(data["page"], "error.html"), data), status, headers=SECURITY_HEADERS)

    def store(request: Request) -> Response:
        return respond(request, lambda: pages.store_page(session, request.query_params.get("q", "")))

    def dataset_or_version(request: Request) -> Response:
        ref, path = request.path_params["ref"], request.path_params.get("path", "")
        q = request.query_params
        if "@" not in ref and not path and not request.url.path.endswith("/"):
            return respond(request, lambda: pages.dataset_page(session, ref, q.get("limit")))
        name, version = _split(ref)
        return respond(request, lambda: pages.version_page(session, name, version, path, q.get("offset"), q.get("limit")))

    def diff(request: Request) -> Response:
        name, version = _split(request.path_params["ref"])
        return respond(request, lambda: pages.diff_page(session, name, version, request.query_params.get("against") or None))

    def lineage(request: Request) -> Response:
        name, version = _split(request.path_params["ref"])
        return respond(request, lambda: pages.lineage_page(session, name, version, request.query_params.get("direction")))

    def checks(request: Request) -> Response:
        name, version = _split(request.path_params["ref"])
        return respond(request, lambda: pages.checks_page(session, name, version, request.query_params.get("run") == "1"))

    def raw(request: Request) -> Response:
        name, version = _split(request.path_params["ref"])
        path = request.path_params["path"]
        try:
            with session.lock:
                session.refresh()
                v = session.version(name, version)
                entry = session.entry(v, path)
                if entry.size > RAW_LIMIT:
                    raise UsageError(f"{path} is {entry.size} bytes, more than the UI serves", "`datactl checkout` or Dataset.open() reads it")
                with session.open_file(entry, path) as f:
                    body = f.read()
        except DatactlError as exc:
            return JSONResponse({"error": exc.message, "hint": exc.hint}, _status(exc), headers=SECURITY_HEADERS)
        mime = IMAGE_TYPES.get(file_suffix(entry.name))
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": "sandbox; default-src 'none'"}
        if mime is None:  # never rendered by the browser as a page of ours
            mime, headers["Content-Disposition"] = "application/octet-stream", "attachment"
        return Response(body, 200, headers=headers, media_type=mime)

    routes = [
        Route("/", store),
        Route("/d/{ref}", dataset_or_version),
        Route("/d/{ref}/{path:path}", dataset_or_version),
        Route("/raw/{ref}/{path:path}", raw),
        Route("/diff/{ref}/", diff),
        Route("/lineage/{ref}/", lineage),
        Route("/checks/{ref}/", checks),
        Mount("/static", StaticFiles(packages=[("datactl.ui", "static")]), name="static"),
    ]
    # Only requests addressed to this machine by name are answered (a page elsewhere cannot rebind a name to it).
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])] if host in LOOPBACK else []
    return Starlette(routes=routes, middleware=middleware)
