"""The token debugger page: its assets, its security headers, and two ways to serve it.

The page (``audit/debugger/``: ``index.html``, ``audit.js``, ``debugger.js``,
``debugger.css``) decodes a pasted token, shows the same findings as ``jwtwarden inspect``
and verifies the signature with WebCrypto against the service's JWKS (fetched from the
same origin) or a pasted key. The token never leaves the page: the JavaScript makes no
request that carries it and stores nothing, and :data:`CSP` lets the page connect to its
own origin only (where the only thing it fetches is the public JWKS). No CDN, no inline
script or style.

- :func:`mount_debugger` adds the page to the token service's FastAPI/Starlette app;
- :func:`serve_standalone` serves it (and a JWKS file) for ``jwtwarden debugger`` with the
  standard library alone, on loopback unless told otherwise by the caller.

Every response, errors included, carries :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from jwtwarden.keys import KeySet

if TYPE_CHECKING:
    from starlette.routing import Route

__all__ = [
    "ASSET_DIR",
    "CSP",
    "DEFAULT_JWKS_PATH",
    "DEFAULT_PREFIX",
    "SECURITY_HEADERS",
    "DebuggerServer",
    "debugger_pages",
    "debugger_routes",
    "make_server",
    "mount_debugger",
    "serve_standalone",
]

ASSET_DIR = Path(__file__).with_name("debugger")
DEFAULT_PREFIX = "/debugger"
DEFAULT_JWKS_PATH = "/.well-known/jwks.json"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
"""No inline code, no other origin; Trusted Types forbid HTML sinks such as innerHTML."""

SECURITY_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
)

_ASSET_TYPES = {
    "audit.js": "text/javascript; charset=utf-8",
    "debugger.js": "text/javascript; charset=utf-8",
    "debugger.css": "text/css; charset=utf-8",
}
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"
_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")

Page = tuple[bytes, str]
"""A response body and its content type."""


def _check_path(value: str, what: str) -> str:
    if not _PATH.fullmatch(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
        raise ValueError(f"{what} must be an absolute path such as /debugger, got {value!r}")
    return value


@lru_cache(maxsize=8)
def debugger_pages(
    prefix: str = DEFAULT_PREFIX, jwks_path: str | None = DEFAULT_JWKS_PATH
) -> Mapping[str, Page]:
    """URL path to (body, content type) for the page and its assets under ``prefix``.

    ``jwks_path`` is the same-origin path of the public JWKS the page offers to verify
    with (``None``: the page offers pasted keys only). Raises :class:`ValueError` for a
    path that is not a plain absolute path.
    """
    _check_path(prefix, "prefix")
    if jwks_path is not None:
        _check_path(jwks_path, "jwks_path")
    index = (ASSET_DIR / "index.html").read_text(encoding="utf-8")
    index = index.replace("{{prefix}}", html.escape(prefix, quote=True)).replace(
        "{{jwks_path}}", html.escape(jwks_path or "", quote=True)
    )
    pages: dict[str, Page] = {
        prefix: (index.encode("utf-8"), _HTML),
        f"{prefix}/": (index.encode("utf-8"), _HTML),
    }
    for name, content_type in _ASSET_TYPES.items():
        pages[f"{prefix}/{name}"] = ((ASSET_DIR / name).read_bytes(), content_type)
    return MappingProxyType(pages)


def debugger_routes(
    *, jwks_path: str | None = DEFAULT_JWKS_PATH, prefix: str = DEFAULT_PREFIX
) -> list[Route]:
    """Starlette routes (GET and HEAD) for the page and its assets, with the security headers.

    Needs the ``server`` extra (Starlette). The JWKS itself is the app's to serve.
    """
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def endpoint(page: Page) -> Callable[[Request], Any]:
        body, content_type = page

        async def serve(request: Request) -> Response:
            return Response(body, media_type=content_type, headers=dict(SECURITY_HEADERS))

        return serve

    pages = debugger_pages(prefix, jwks_path)
    return [
        Route(path, endpoint(page), methods=["GET"], include_in_schema=False)
        for path, page in pages.items()
    ]


def mount_debugger(
    app: Any, *, jwks_path: str | None = DEFAULT_JWKS_PATH, prefix: str = DEFAULT_PREFIX
) -> None:
    """Add the debugger to a FastAPI or Starlette ``app`` at ``prefix`` (default ``/debugger``)."""
    app.router.routes.extend(debugger_routes(jwks_path=jwks_path, prefix=prefix))


# --------------------------------------------------------------------------- standalone


class DebuggerServer(ThreadingHTTPServer):
    """A standard-library HTTP server for the page, its assets and an optional JWKS."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], routes: Mapping[str, Page], *, quiet: bool = False
    ) -> None:
        self.routes = routes
        self.quiet = quiet
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The page's URL, ``http://host:port/debugger``."""
        address, port = self.server_address[:2]
        host = address.decode("ascii") if isinstance(address, bytes) else address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{DEFAULT_PREFIX}"


class _Handler(BaseHTTPRequestHandler):
    server: DebuggerServer
    server_version = "jwtwarden-debugger"
    sys_version = ""

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, *, head: bool) -> None:
        self.send_response(status)
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == HTTPStatus.FOUND:
            self.send_header("Location", DEFAULT_PREFIX)
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/":
            self._send(HTTPStatus.FOUND, b"", "text/plain; charset=utf-8", head=head)
            return
        page = self.server.routes.get(path)
        if page is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head=head)
        else:
            self._send(HTTPStatus.OK, page[0], page[1], head=head)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"", "text/plain; charset=utf-8", head=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def _jwks_page(jwks_file: Path) -> Page:
    """The JWKS file as served: public keys only (refuses private members and secrets)."""
    keys = KeySet.from_public_jwks(jwks_file.read_bytes())
    return json.dumps(keys.to_jwks(), indent=2).encode("utf-8"), _JSON


def make_server(
    host: str = "127.0.0.1",
    port: int = 8765,
    jwks_file: Path | None = None,
    *,
    quiet: bool = False,
) -> DebuggerServer:
    """A server (not yet serving) for the page at ``/debugger`` and, given a JWKS file, the
    JWKS at ``/.well-known/jwks.json``.

    Raises :class:`~jwtwarden.errors.InvalidKey` when the JWKS file is not a public JWKS
    and :class:`OSError` when it cannot be read or the address cannot be bound. Binding to
    a non-loopback address is the caller's decision (the CLI refuses it by default).
    """
    routes = dict(debugger_pages(DEFAULT_PREFIX, DEFAULT_JWKS_PATH if jwks_file else None))
    if jwks_file is not None:
        routes[DEFAULT_JWKS_PATH] = _jwks_page(jwks_file)
    return DebuggerServer((host, port), routes, quiet=quiet)


def serve_standalone(
    host: str = "127.0.0.1",
    port: int = 8765,
    jwks_file: Path | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the page until interrupted (``KeyboardInterrupt`` propagates after closing).

    ``on_ready`` is called with the page's URL once the socket listens. Raises as
    :func:`make_server`.
    """
    server = make_server(host, port, jwks_file, quiet=True)
    try:
        if on_ready is not None:
            on_ready(server.url)
        server.serve_forever()
    finally:
        server.server_close()
