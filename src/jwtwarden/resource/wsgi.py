"""WSGI integration for resource servers: a middleware and a view decorator (Flask, Django...).

Flask::

    server = ResourceServer.from_env()
    app = Flask(__name__)
    app.wsgi_app = WSGIBearerAuthMiddleware(app.wsgi_app, server)

    @app.get("/hello")
    def hello():
        return {"sub": claims_of(request).sub}

    @app.delete("/items/<id>")
    @require_token(scopes=["items:write"])
    def delete(id): ...

Django has its own integration, :mod:`jwtwarden.resource.django` (a middleware for WSGI and
ASGI, ``request.auth``/``request.user``) and :mod:`jwtwarden.resource.drf`; the decorator below
also answers a Django request with a Django ``HttpResponse``.

The middleware checks every request outside ``public_paths`` (see
:mod:`jwtwarden.resource.server`) and stores the verified claims in
``environ["jwtwarden.claims"]``; refusals are answered per RFC 6750 without reaching the
app, never with a 500. :func:`require_token` adds per-view scope and role requirements (and
verifies the token itself when no middleware ran). The revocation feed runs in a daemon
thread started on the first request of each worker process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, TypeVar
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from jwtwarden.policy import Claims
from jwtwarden.resource.server import (
    CLAIMS_KEY,
    SERVER_KEY,
    Denial,
    Guard,
    MissingToken,
    ResourceServer,
    request_path,
    requirements,
    verify_environ,
)

__all__ = ["WSGIBearerAuthMiddleware", "claims_of", "request_path", "require_token"]

Environ = MutableMapping[str, Any]
F = TypeVar("F", bound=Callable[..., Any])


def claims_of(request_or_environ: Any = None) -> Claims:
    """The verified claims of a request: a WSGI environ, a werkzeug/Flask request, a Django
    request (``request.META``), or, with no argument, Flask's current request.

    Raises :class:`~jwtwarden.resource.server.MissingToken` when nothing verified this request.
    """
    environ = _environ_of(request_or_environ)
    claims = environ.get(CLAIMS_KEY) if environ is not None else None
    if not isinstance(claims, Claims):
        raise MissingToken("this request was not authenticated by jwtwarden")
    return claims


def _environ_of(request: Any) -> Environ | None:
    if request is None:
        try:
            from flask import has_request_context  # Flask is optional
            from flask import request as flask_request
        except ImportError:
            return None
        return flask_request.environ if has_request_context() else None
    if isinstance(request, Mapping):
        return request  # type: ignore[return-value]
    for attribute in ("environ", "META"):
        environ = getattr(request, attribute, None)
        if isinstance(environ, MutableMapping):
            return environ
    return None


def _respond(denial: Denial, start_response: StartResponse) -> list[bytes]:
    body = denial.body
    headers = [*denial.headers, ("content-type", "application/json"),
               ("content-length", str(len(body)))]
    start_response(f"{denial.status} {denial.reason}", headers)
    return [body]


class WSGIBearerAuthMiddleware(Guard):
    """WSGI middleware requiring a valid bearer token on every request but ``public_paths``.

    ``public_paths``: exact paths, or prefixes when they end with ``/``. ``scopes`` /
    ``roles``: required of every token. When the WSGI server joined several
    ``Authorization`` headers into one value, the value is malformed and refused (400).
    """

    def __init__(
        self,
        app: WSGIApplication,
        server: ResourceServer,
        *,
        public_paths: Iterable[str] = (),
        scopes: Iterable[str] | str = (),
        roles: Iterable[str] | str = (),
    ) -> None:
        super().__init__(server, public_paths=public_paths, scopes=scopes, roles=roles)
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        server = self.server
        environ[SERVER_KEY] = server
        path = environ.get("PATH_INFO", "")
        if self.is_public(path):
            return self.app(environ, start_response)
        try:
            verify_environ(server, environ, self._scopes, self._roles)
        except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
            return _respond(server.denial(error), start_response)
        return self.app(environ, start_response)


def require_token(
    server: ResourceServer | None = None,
    *,
    scopes: Iterable[str] | str = (),
    roles: Iterable[str] | str = (),
) -> Callable[[F], F]:
    """Decorate a Flask or Django view: the request needs a valid token with these scopes/roles.

    ``server`` defaults to the one of the :class:`WSGIBearerAuthMiddleware` in front of the
    app. A refused request gets the RFC 6750 answer as the view's return value (a Flask
    ``(body, status, headers)`` tuple, or a Django ``HttpResponse`` for a view whose first
    argument is a Django request). The view reads the claims with :func:`claims_of`.
    """
    if server is not None and not isinstance(server, ResourceServer):
        raise TypeError("server must be a ResourceServer")
    needed_scopes = requirements(scopes, "scopes")
    needed_roles = requirements(roles, "roles")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            django = bool(args) and hasattr(args[0], "META") and hasattr(args[0], "method")
            environ = _environ_of(args[0] if django else None)
            resource = server or (environ or {}).get(SERVER_KEY)
            try:
                if environ is None or not isinstance(resource, ResourceServer):
                    raise LookupError("no request or no ResourceServer for require_token")
                verify_environ(resource, environ, needed_scopes, needed_roles)
            except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
                denial = (resource.denial(error) if isinstance(resource, ResourceServer)
                          else _NO_SERVER)
                return _django_response(denial) if django else _flask_response(denial)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


_NO_SERVER = Denial(503, (("retry-after", "5"), ("cache-control", "no-store")),
                    "temporarily_unavailable", "Token verification is not configured")


def _flask_response(denial: Denial) -> tuple[bytes, int, list[tuple[str, str]]]:
    return denial.body, denial.status, [*denial.headers, ("content-type", "application/json")]


def _django_response(denial: Denial) -> Any:
    from jwtwarden.resource.django import denial_response  # only for Django requests

    return denial_response(denial)
