"""A FastAPI dependency that returns the verified claims of a request's bearer token.

::

    server = ResourceServer.from_env()
    app = FastAPI(lifespan=server.lifespan)

    @app.get("/hello")
    async def hello(claims: Annotated[Claims, Depends(require_token(server))]) -> dict:
        return {"sub": claims.sub}

    @app.delete("/items/{id}")
    async def delete(claims: Annotated[Claims, Depends(require_token(server, scopes="items:write"))]):
        ...

:func:`require_token` checks the token as :mod:`jwtwarden.resource.server` describes (reusing
the claims when :class:`~jwtwarden.resource.asgi.BearerAuthMiddleware` already verified this
request), then the required scopes and roles. A refusal is a :class:`BearerRefused` (an
``HTTPException``) carrying the RFC 6750 status and headers (401 + ``WWW-Authenticate``, 403
``insufficient_scope``, 400 ``invalid_request``, 503 + ``Retry-After``), answered with the
same flat body as the ASGI and WSGI integrations: ``{"error": ..., "error_description":
...}``. The route shows up in OpenAPI as protected by an HTTP bearer scheme.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from jwtwarden.policy import Claims
from jwtwarden.resource.asgi import authenticate_kwargs, authorization_values
from jwtwarden.resource.server import CLAIMS_KEY, SERVER_KEY, Denial, ResourceServer, requirements

__all__ = ["BearerRefused", "require_token"]

log = logging.getLogger("jwtwarden.resource")
_BEARER = HTTPBearer(auto_error=False, bearerFormat="JWT", scheme_name="jwtwarden")


class BearerRefused(HTTPException):
    """A request :func:`require_token` refused. Answered with the flat RFC 6750 body
    (``{"error", "error_description"}``), whatever the app does with other HTTPExceptions;
    ``denial`` is the answer."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.status, headers=dict(denial.headers),
                         detail={"error": denial.error, "error_description": denial.description})
        self.denial = denial


async def _flat_answer(_request: Request, exc: Exception) -> Response:
    denial = exc.denial if isinstance(exc, BearerRefused) else _NO_SERVER
    return Response(denial.body, status_code=denial.status, headers=dict(denial.headers),
                    media_type="application/json")


def _answer_flat(scope: MutableMapping[str, Any]) -> None:
    """Have this app answer :class:`BearerRefused` with :func:`_flat_answer`.

    FastAPI answers an HTTPException from a dependency with ``{"detail": ...}`` and offers a
    dependency no way to answer otherwise; Starlette looks handlers up, by the exception's
    class, in the table its exception middleware puts in the scope. The handler is added to
    that table (for this exception class only) before the first refusal is raised.
    """
    handlers = scope.get("starlette.exception_handlers")
    if isinstance(handlers, tuple) and handlers and isinstance(handlers[0], dict):
        handlers[0].setdefault(BearerRefused, _flat_answer)


def require_token(
    server: ResourceServer | None = None,
    *,
    scopes: Iterable[str] | str = (),
    roles: Iterable[str] | str = (),
) -> Callable[..., Awaitable[Claims]]:
    """A dependency returning the request's verified :class:`~jwtwarden.Claims`.

    ``server``: the :class:`ResourceServer` to verify with; when omitted, the one of the
    :class:`~jwtwarden.resource.asgi.BearerAuthMiddleware` wrapping the app (without either, the
    request is refused with 503 and an error is logged). ``scopes`` / ``roles``: every one is
    required (403 ``insufficient_scope`` otherwise). Scope and role names are checked now:
    :class:`ValueError` for a name with spaces, quotes or backslashes.
    """
    if server is not None and not isinstance(server, ResourceServer):
        raise TypeError("server must be a ResourceServer")
    needed_scopes = requirements(scopes, "scopes")
    needed_roles = requirements(roles, "roles")

    async def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(_BEARER),  # noqa: B008 - FastAPI's idiom
    ) -> Claims:
        scope = request.scope
        resource: ResourceServer | None = server or scope.get(SERVER_KEY)
        if resource is None:
            raise _no_server(scope)
        try:
            claims = scope.get(CLAIMS_KEY)
            if claims is None:
                await resource.aensure_started()
                claims = await resource.aauthenticate(
                    authorization_values(scope), **authenticate_kwargs(scope))
                scope[CLAIMS_KEY] = claims
            if needed_scopes or needed_roles:
                resource.authorize(claims, needed_scopes, needed_roles)
        except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
            _answer_flat(scope)
            raise BearerRefused(resource.denial(error)) from None
        return claims

    return dependency


_NO_SERVER = Denial(503, (("retry-after", "5"), ("cache-control", "no-store")),
                    "temporarily_unavailable", "Token verification is not configured")


def _no_server(scope: MutableMapping[str, Any]) -> HTTPException:
    log.error(
        "require_token() without a ResourceServer and without BearerAuthMiddleware"
    )
    _answer_flat(scope)
    return BearerRefused(_NO_SERVER)
