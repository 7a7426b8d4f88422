"""Django integration for resource servers: a middleware (WSGI and ASGI), a view decorator,
``request.auth``/``request.user``, configured by ``settings.JWTWARDEN`` and the environment.

::

    # settings.py
    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "jwtwarden.resource.django.BearerAuthMiddleware"]
    JWTWARDEN = {"JWKS_URL": "https://auth.example.com/.well-known/jwks.json",
                 "ISSUER": "https://auth.example.com", "AUDIENCE": "api.example.com",
                 "PUBLIC_PATHS": ["/health", "/admin/"]}

    # views.py
    @require_token(scopes=["items:write"])          # per-view requirements (sync or async)
    def delete(request, item_id):
        request.auth.sub                              # the verified Claims

Every request outside ``PUBLIC_PATHS`` must carry a valid bearer token, checked by the one
:class:`~jwtwarden.resource.server.ResourceServer` of the process (see that module for what is
checked); refusals are the same RFC 6750 answers as every other integration (401/403 with
``WWW-Authenticate``, 400, 503 with ``Retry-After``, a flat JSON body), never a 500. A verified
request gets ``request.auth`` (the :class:`~jwtwarden.Claims`) and ``request.user``: a
:class:`TokenUser` built from the claims, or, only when ``USER_FIELD`` says so, the user of
``get_user_model()`` whose ``USER_FIELD`` equals the token's ``USER_CLAIM`` (default ``sub``).
Users are looked up, never created; a token whose user is missing or inactive is refused
(401 ``invalid_token``).

**Settings** (``JWTWARDEN``; every key optional, unknown keys refused):

- ``JWKS_URL``, ``ISSUER``, ``AUDIENCE``, ``ALGORITHMS``, ``REVOCATION_URL``, ``REALM``,
  ``JWKS_MIN_AGE``, ``JWKS_COOLDOWN``: as the ``JWTWARDEN_*`` environment variables of
  :meth:`ResourceServer.from_env`, which are read for what the setting does not say (lists
  are allowed for ``AUDIENCE`` and ``ALGORITHMS``);
- ``ALSO_TRUST``: a :class:`~jwtwarden.resource.legacy.LegacyIssuer` (or a list), the issuer
  being replaced, e.g. simplejwt's key until a date;
- ``OPTIONS``: more keyword arguments for :class:`ResourceServer` (``clock``, ``revocations``,
  ``leeway``...);
- ``SERVER``: instead of all of the above, a ready ``ResourceServer`` or the dotted path of
  one (or of a function returning one);
- ``PUBLIC_PATHS`` (exact paths, or prefixes ending with ``/``), ``SCOPES``, ``ROLES``: what
  the middleware lets through without a token, and requires of every token;
- ``USER_FIELD`` and ``USER_CLAIM``: the opt-in user lookup above.

**Not blocking.** Under WSGI (threads) the revocation feed runs in one daemon thread per
process, started by the first request; under ASGI the middleware is async (no thread hop),
fetches keys with the async client on the event loop, starts that same feed thread off the
loop, and looks users up with the async ORM. Keys are fetched once per cache lifetime by one
request (single flight); revocations are answered from memory.

Django is imported by this module only (and by :mod:`jwtwarden.resource.drf`); nothing else
in jwtwarden needs it (``pip install 'jwtwarden[django]'``).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse

from jwtwarden.errors import InvalidCredentials, MalformedClaim, MissingClaim
from jwtwarden.policy import Claims
from jwtwarden.resource.legacy import LegacyIssuer
from jwtwarden.resource.server import (
    Denial,
    Guard,
    ResourceServer,
    averify_environ,
    requirements,
    roles_of,
    verify_environ,
)
from jwtwarden.resource.wsgi import claims_of

__all__ = [
    "SETTING",
    "BearerAuthMiddleware",
    "LegacyIssuer",
    "TokenUser",
    "aauthenticate_request",
    "auser_for",
    "authenticate_request",
    "claims_of",
    "denial_response",
    "get_server",
    "require_token",
    "user_for",
]

SETTING = "JWTWARDEN"
_ENV_KEYS = ("JWKS_URL", "ISSUER", "AUDIENCE", "ALGORITHMS", "REVOCATION_URL", "REALM",
             "JWKS_MIN_AGE", "JWKS_COOLDOWN")
_SERVER_KEYS = (*_ENV_KEYS, "ALSO_TRUST", "OPTIONS")
_OWN_KEYS = ("SERVER", "PUBLIC_PATHS", "SCOPES", "ROLES", "USER_FIELD", "USER_CLAIM")
_USER_ATTRIBUTE = "_jwtwarden_user"
F = TypeVar("F", bound=Callable[..., Any])


# ---- configuration -----------------------------------------------------------------------


def _settings() -> Mapping[str, Any]:
    conf = getattr(settings, SETTING, None)
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise ImproperlyConfigured(f"settings.{SETTING} must be a dict")
    unknown = sorted(set(conf) - set(_SERVER_KEYS) - set(_OWN_KEYS))
    if unknown:
        raise ImproperlyConfigured(f"unknown keys in settings.{SETTING}: {', '.join(unknown)}")
    if "SERVER" in conf and any(key in conf for key in _SERVER_KEYS):
        raise ImproperlyConfigured(f"settings.{SETTING}: SERVER excludes the other server keys")
    return conf


def _text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value) \
            and name in ("AUDIENCE", "ALGORITHMS"):
        return ",".join(value)
    raise ImproperlyConfigured(f"settings.{SETTING}['{name}'] has the wrong type")


def _build_server(conf: Mapping[str, Any]) -> ResourceServer:
    given = conf.get("SERVER")
    if given is not None:
        if isinstance(given, str):
            from django.utils.module_loading import import_string

            given = import_string(given)
        if not isinstance(given, ResourceServer) and callable(given):
            given = given()
        if not isinstance(given, ResourceServer):
            raise ImproperlyConfigured(f"settings.{SETTING}['SERVER'] is not a ResourceServer")
        return given
    environ = dict(os.environ)
    for name in _ENV_KEYS:
        if name in conf:
            environ[f"JWTWARDEN_{name}"] = _text(name, conf[name])
    options = dict(conf.get("OPTIONS") or {})
    if "ALSO_TRUST" in conf:
        options["also_trust"] = conf["ALSO_TRUST"]
    try:
        return ResourceServer.from_env(environ, **options)
    except (ValueError, TypeError) as error:  # a configuration mistake, said at start-up
        raise ImproperlyConfigured(f"settings.{SETTING}: {error}") from None


_lock = threading.Lock()
_server: ResourceServer | None = None


def get_server() -> ResourceServer:
    """The process's :class:`ResourceServer`, built on first use from ``settings.JWTWARDEN``
    and the ``JWTWARDEN_*`` environment (rebuilt when a test overrides the setting).
    A configuration mistake is an :class:`~django.core.exceptions.ImproperlyConfigured`."""
    global _server
    server = _server
    if server is None:
        with _lock:
            if _server is None:
                _server = _build_server(_settings())
            server = _server
    return server


def _reset(*, setting: str, **_: Any) -> None:
    global _server
    if setting != SETTING:
        return
    with _lock:
        old, _server = _server, None
    if old is not None:
        old.stop()


setting_changed.connect(_reset, dispatch_uid="jwtwarden.resource.django")


# ---- the principal -----------------------------------------------------------------------


class TokenUser:
    """``request.user`` for a verified token when no user lookup is configured.

    Authenticated, active, never staff or superuser, no Django permissions; ``pk``, ``id``
    and ``username`` are the token's ``sub``; ``claims``, ``scopes`` and ``roles`` say what
    the token grants. Nothing is read from or written to the database.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, claims: Claims) -> None:
        self.claims = claims
        self.pk = self.id = self.username = claims.sub or ""

    @property
    def scopes(self) -> frozenset[str]:
        return self.claims.scopes

    @property
    def roles(self) -> frozenset[str]:
        return roles_of(self.claims)

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def has_perms(self, perm_list: Iterable[str], obj: object = None) -> bool:
        return False

    def has_module_perms(self, module: str) -> bool:
        return False

    def __str__(self) -> str:
        return self.username

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenUser) and other.claims == self.claims

    def __hash__(self) -> int:
        return hash(self.username)

    def __repr__(self) -> str:
        return f"TokenUser(sub={self.username!r})"


def _lookup(conf: Mapping[str, Any], claims: Claims) -> tuple[Any, dict[str, Any]] | None:
    field = conf.get("USER_FIELD")
    if field is None:
        return None
    claim = conf.get("USER_CLAIM", "sub")
    if not isinstance(field, str) or not isinstance(claim, str) or not field or not claim:
        raise ImproperlyConfigured(f"settings.{SETTING}: USER_FIELD and USER_CLAIM are names")
    value = claims.get(claim)
    if value is None:
        raise MissingClaim(claim)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedClaim(claim)
    from django.contrib.auth import get_user_model

    return get_user_model(), {field: value}


def _no_user() -> InvalidCredentials:
    return InvalidCredentials("the token's subject is not an active user")


def user_for(claims: Claims) -> Any:
    """``request.user`` for these verified claims: a :class:`TokenUser`, or the user found
    by the configured claim (raises :class:`~jwtwarden.errors.InvalidCredentials` when there is
    none, or it is inactive)."""
    found = _lookup(_settings(), claims)
    if found is None:
        return TokenUser(claims)
    model, query = found
    try:
        user = model._default_manager.get(**query)
    except (model.DoesNotExist, ValueError, TypeError):
        raise _no_user() from None
    if not getattr(user, "is_active", True):
        raise _no_user()
    return user


async def auser_for(claims: Claims) -> Any:
    """Async :func:`user_for` (the async ORM: no thread hop when nothing is looked up)."""
    found = _lookup(_settings(), claims)
    if found is None:
        return TokenUser(claims)
    model, query = found
    try:
        user = await model._default_manager.aget(**query)
    except (model.DoesNotExist, ValueError, TypeError):
        raise _no_user() from None
    if not getattr(user, "is_active", True):
        raise _no_user()
    return user


# ---- requests ----------------------------------------------------------------------------


def _attach(request: HttpRequest, claims: Claims, user: Any) -> None:
    async def auser() -> Any:
        return user

    attributes = request.__dict__  # HttpRequest declares neither auth nor a TokenUser user
    attributes.update({"auth": claims, "user": user, "auser": auser, _USER_ATTRIBUTE: user})


def authenticate_request(request: HttpRequest, server: ResourceServer | None = None,
                         scopes: frozenset[str] = frozenset(),
                         roles: frozenset[str] = frozenset()) -> Claims:
    """Verify the request's bearer token (or reuse what a middleware verified), check
    ``scopes`` and ``roles``, and set ``request.auth`` and ``request.user``. Raises the
    ``JWTError`` that :meth:`ResourceServer.denial` turns into the answer."""
    server = server or get_server()
    claims = verify_environ(server, request.META, scopes, roles)
    if getattr(request, _USER_ATTRIBUTE, None) is None:
        _attach(request, claims, user_for(claims))
    return claims


async def aauthenticate_request(request: HttpRequest, server: ResourceServer | None = None,
                                scopes: frozenset[str] = frozenset(),
                                roles: frozenset[str] = frozenset()) -> Claims:
    """Async :func:`authenticate_request` (ASGI, async views)."""
    server = server or get_server()
    claims = await averify_environ(server, request.META, scopes, roles)
    if getattr(request, _USER_ATTRIBUTE, None) is None:
        _attach(request, claims, await auser_for(claims))
    return claims


def denial_response(denial: Denial) -> HttpResponse:
    """The Django answer for a refusal: status, ``WWW-Authenticate``/``Retry-After``,
    ``Cache-Control: no-store`` and the flat JSON body ``{"error", "error_description"}``."""
    return HttpResponse(denial.body, status=denial.status, content_type="application/json",
                        headers=dict(denial.headers))


class BearerAuthMiddleware(Guard):
    """Django middleware (sync and async) requiring a valid bearer token on every request
    but ``PUBLIC_PATHS`` (see the module docstring). Put it after Django's
    ``AuthenticationMiddleware``, which would otherwise replace ``request.user``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        conf = _settings()
        super().__init__(get_server(), public_paths=conf.get("PUBLIC_PATHS", ()),
                         scopes=conf.get("SCOPES", ()), roles=conf.get("ROLES", ()))
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        if self.is_public(request.path_info):
            return self.get_response(request)
        try:
            authenticate_request(request, self.server, self._scopes, self._roles)
        except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
            return denial_response(self.server.denial(error))
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> Any:
        if self.is_public(request.path_info):
            return await self.get_response(request)
        try:
            await aauthenticate_request(request, self.server, self._scopes, self._roles)
        except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
            return denial_response(self.server.denial(error))
        return await self.get_response(request)


def require_token(
    server: ResourceServer | None = None,
    *,
    scopes: Iterable[str] | str = (),
    roles: Iterable[str] | str = (),
) -> Callable[[F], F]:
    """Decorate a Django view (sync or async): the request needs a valid token with these
    scopes and roles. Reuses the middleware's verification when it ran, verifies the token
    itself otherwise; a refusal is the RFC 6750 ``HttpResponse``. ``server`` defaults to
    :func:`get_server`. Names are checked now (:class:`ValueError`)."""
    if server is not None and not isinstance(server, ResourceServer):
        raise TypeError("server must be a ResourceServer")
    needed_scopes = requirements(scopes, "scopes")
    needed_roles = requirements(roles, "roles")

    def decorate(view: F) -> F:
        if iscoroutinefunction(view):
            @functools.wraps(view)
            async def awrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                resource = server or get_server()
                try:
                    await aauthenticate_request(request, resource, needed_scopes, needed_roles)
                except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
                    return denial_response(resource.denial(error))
                return await view(request, *args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            resource = server or get_server()
            try:
                authenticate_request(request, resource, needed_scopes, needed_roles)
            except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
                return denial_response(resource.denial(error))
            return view(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

