"""A pure ASGI middleware for resource servers: Starlette, FastAPI, Litestar, or bare ASGI.

::

    server = ResourceServer.from_env()
    app = BearerAuthMiddleware(app, server, public_paths=["/health"])

Every ``http`` and ``websocket`` request outside ``public_paths`` must carry a valid bearer
token (see :mod:`jwtwarden.resource.server` for what is checked); its verified
:class:`~jwtwarden.Claims` are put in ``scope["jwtwarden.claims"]`` (read them with
:func:`claims_of`). A refused HTTP request is answered here, per RFC 6750 (401/403 with
``WWW-Authenticate``, 400 ``invalid_request``, 503 with ``Retry-After``), never a 500; a
refused websocket is closed with code 1008 before it is accepted.

The middleware starts the revocation feed on lifespan startup (or on the first request) and
stops it on lifespan shutdown. It imports no framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

from jwtwarden.policy import Claims
from jwtwarden.resource.server import (
    CLAIMS_KEY,
    SERVER_KEY,
    Guard,
    MissingToken,
    ResourceServer,
)

__all__ = [
    "BearerAuthMiddleware",
    "authenticate_kwargs",
    "authorization_values",
    "claims_of",
    "dpop_values",
    "request_path",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
"""Any ASGI 3 application (typed loosely: frameworks annotate scope/receive/send differently)."""


def authorization_values(scope: Scope) -> list[str]:
    """Every ``Authorization`` header value of an ASGI scope (usually zero or one)."""
    # ASGI servers give header names in lower case (ASGI spec, HTTP connection scope).
    return [value.decode("latin-1") for name, value in scope.get("headers", ())
            if name == b"authorization"]


def dpop_values(scope: Scope) -> list[str]:
    """Every ``DPoP`` header value of an ASGI scope (one, for a DPoP request)."""
    return [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"dpop"]


def request_path(scope: Scope) -> str:
    """The request's path as the server received it (percent-encoded, without the query)."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").partition("?")[0]
    return quote(scope.get("path", "/"), safe="/:@!$&'()*+,;=~")


def authenticate_kwargs(scope: Scope) -> dict[str, Any]:
    """What :meth:`ResourceServer.aauthenticate` needs of an ASGI request beyond the
    ``Authorization`` header: the query, and the ``DPoP`` header, method and path."""
    return {"query": scope.get("query_string", b""), "dpop": dpop_values(scope),
            "method": scope.get("method", "GET"), "path": request_path(scope)}


def claims_of(request_or_scope: Any) -> Claims:
    """The verified claims of a request (a Starlette/FastAPI ``Request`` or an ASGI scope).

    Raises :class:`~jwtwarden.resource.server.MissingToken` when no middleware or dependency
    verified this request.
    """
    scope = getattr(request_or_scope, "scope", request_or_scope)
    claims = scope.get(CLAIMS_KEY)
    if not isinstance(claims, Claims):
        raise MissingToken("this request was not authenticated by jwtwarden")
    return claims


class BearerAuthMiddleware(Guard):
    """ASGI middleware requiring a valid bearer token on every request but ``public_paths``.

    ``public_paths``: exact paths, or prefixes when they end with ``/`` (``"/static/"``).
    ``scopes`` / ``roles``: required of every token (use the FastAPI dependency or the
    decorator for per-route requirements).
    """

    def __init__(
        self,
        app: ASGIApp,
        server: ResourceServer,
        *,
        public_paths: Iterable[str] = (),
        scopes: Iterable[str] | str = (),
        roles: Iterable[str] | str = (),
    ) -> None:
        super().__init__(server, public_paths=public_paths, scopes=scopes, roles=roles)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        server = self.server
        scope[SERVER_KEY] = server
        if self.is_public(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        try:
            await server.aensure_started()
            claims = await server.aauthenticate(
                authorization_values(scope), **authenticate_kwargs(scope))
            if self._scopes or self._roles:
                server.authorize(claims, self._scopes, self._roles)
        except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
            await self._refuse(kind, server, error, send)
            return
        scope[CLAIMS_KEY] = claims
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(kind: str, server: ResourceServer, error: Exception, send: Send) -> None:
        denial = server.denial(error)
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": denial.error})
            return
        body = denial.body
        headers = [(name.encode("latin-1"), value.encode("latin-1"))
                   for name, value in denial.headers]
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii"))]
        await send({"type": "http.response.start", "status": denial.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _lifespan_receive(self, receive: Receive) -> Receive:
        server = self.server

        async def wrapped() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.startup":
                await server.astart()
            elif message.get("type") == "lifespan.shutdown":
                await server.astop()
            return message

        return wrapped
