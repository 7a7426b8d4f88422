"""Django REST framework integration: an authentication class and scope/role permissions.

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["jwtwarden.resource.drf.BearerAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "EXCEPTION_HANDLER": "jwtwarden.resource.drf.exception_handler",   # optional
    }

    class Items(APIView):
        permission_classes = [HasScope("items:read")]       # or HasRole("admin")

        def get(self, request):
            return Response({"sub": request.auth.sub})      # request.auth: the Claims

:class:`BearerAuthentication` verifies the ``Authorization: Bearer`` token with the process's
:class:`~jwtwarden.resource.server.ResourceServer` (:func:`jwtwarden.resource.django.get_server`,
configured by ``settings.JWTWARDEN``), or reuses what
:class:`~jwtwarden.resource.django.BearerAuthMiddleware` verified, and returns
``(request.user, request.auth)``: a :class:`~jwtwarden.resource.django.TokenUser` (or the
looked-up user, see :mod:`jwtwarden.resource.django`) and the verified claims. A request
without a bearer token is left to the other authentication classes (``None``); DRF then
answers 401 with ``WWW-Authenticate: Bearer realm="api"`` when the view needs a user.

Refusals are raised as :class:`BearerRefused`, an ``APIException``, so DRF's exception
handling, yours included (``EXCEPTION_HANDLER``), produces the answer. With DRF's own handler
it is the RFC 6750 answer: the status (401, 403, 400, 503), the flat body
``{"error", "error_description"}``, ``WWW-Authenticate`` (``exc.auth_header``) and
``Retry-After`` (``exc.wait``); :func:`exception_handler` adds ``Cache-Control: no-store``.
:class:`HasScope` and :class:`HasRole` refuse with 403 ``insufficient_scope`` (or 401 when no
token was verified) by raising, so they are meant to be combined with ``&`` only: a refusal
is not a ``False`` that ``|`` could pass over.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission, SingleOperandHolder
from rest_framework.request import Request
from rest_framework.response import Response

from jwtwarden.errors import InsufficientScope, MissingToken
from jwtwarden.policy import Claims
from jwtwarden.resource.django import get_server, user_for
from jwtwarden.resource.server import CLAIMS_KEY, Denial, requirements, verify_environ

__all__ = ["BearerAuthentication", "BearerRefused", "HasRole", "HasScope", "exception_handler"]

_USER_ATTRIBUTE = "_jwtwarden_user"


class BearerRefused(APIException):
    """A request refused by jwtwarden, as DRF expects an error: ``status_code``, ``detail``
    (the flat RFC 6750 body), ``auth_header`` (``WWW-Authenticate``) and ``wait``
    (``Retry-After``); ``denial`` is the whole answer."""

    def __init__(self, denial: Denial) -> None:
        super().__init__({"error": denial.error, "error_description": denial.description},
                         code=denial.error)
        self.status_code = denial.status
        self.denial = denial
        headers = dict(denial.headers)
        self.auth_header = headers.get("www-authenticate")
        retry = headers.get("retry-after")
        self.wait = int(retry) if retry is not None else None


class BearerAuthentication(BaseAuthentication):
    """DRF authentication by jwtwarden bearer token; see the module docstring."""

    def authenticate(self, request: Request) -> tuple[Any, Claims] | None:
        django_request = request._request
        server = get_server()
        try:
            claims = verify_environ(server, django_request.META)
            user = getattr(django_request, _USER_ATTRIBUTE, None)
            if user is None:
                user = user_for(claims)
                setattr(django_request, _USER_ATTRIBUTE, user)
        except MissingToken:
            return None  # no bearer token: another authentication class may know the request
        except Exception as error:  # noqa: BLE001 - every failure is an RFC 6750 answer
            raise BearerRefused(server.denial(error)) from None
        return user, claims

    def authenticate_header(self, request: Request) -> str:
        """The challenge of a 401 DRF raises itself (no credentials): ``Bearer realm=...``."""
        return get_server().challenge


class _TokenRequirement(BasePermission):
    """The permission :class:`HasScope` and :class:`HasRole` give DRF."""

    def __init__(self, scopes: frozenset[str], roles: frozenset[str]) -> None:
        self.scopes = scopes
        self.roles = roles

    def has_permission(self, request: Request, view: Any) -> bool:
        server = get_server()
        claims = request.auth
        if not isinstance(claims, Claims):
            claims = request._request.META.get(CLAIMS_KEY)
        try:
            if not isinstance(claims, Claims):
                raise MissingToken("no verified access token")
            server.authorize(claims, self.scopes, self.roles)
        except (MissingToken, InsufficientScope) as error:
            raise BearerRefused(server.denial(error)) from None
        return True

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self.has_permission(request, view)


class HasScope(SingleOperandHolder):
    """``permission_classes = [HasScope("items:read", "items:write")]``: every scope is
    required (``scope``/``scp`` claims); 403 ``insufficient_scope`` with ``scope="..."``
    otherwise. Names are checked now (:class:`ValueError`)."""

    def __init__(self, *scopes: str) -> None:
        self._permission = _TokenRequirement(requirements(scopes, "scopes"), frozenset())
        super().__init__(self._permission, _TokenRequirement)

    def __call__(self, *args: Any, **kwargs: Any) -> _TokenRequirement:
        return self._permission


class HasRole(SingleOperandHolder):
    """``permission_classes = [HasRole("admin")]``: every role is required (``roles`` /
    ``role`` claims); 403 ``insufficient_scope`` otherwise."""

    def __init__(self, *roles: str) -> None:
        self._permission = _TokenRequirement(frozenset(), requirements(roles, "roles"))
        super().__init__(self._permission, _TokenRequirement)

    def __call__(self, *args: Any, **kwargs: Any) -> _TokenRequirement:
        return self._permission


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's own exception handler, plus every header of a jwtwarden refusal
    (``Cache-Control: no-store``). Wrap it the same way in a handler of your own."""
    # imported here: DRF imports authentication classes while rest_framework.views loads
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, BearerRefused):
        for name, value in exc.denial.headers:
            if name not in response:
                response[name] = value
    return response
