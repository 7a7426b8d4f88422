"""Views of the test project: plain Django (sync and async) and DRF."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jwtwarden.resource.django import claims_of, require_token
from jwtwarden.resource.drf import HasRole, HasScope


def _who(request: Any) -> dict[str, Any]:
    user = request.user
    return {"sub": claims_of(request).sub, "user": str(user), "user_type": type(user).__name__,
            "auth_type": type(request.auth).__name__}


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_who(request))


async def ahello(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    return JsonResponse(_who(request) | {"auser": str(user)})


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@require_token(scopes="items:read")
def items(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_who(request))


@require_token(scopes="items:read")
async def aitems(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_who(request))


class DRFHello(APIView):
    def get(self, request: Request) -> Response:
        return Response(_who(request))


class DRFItems(APIView):
    permission_classes = (HasScope("items:read"),)

    def get(self, request: Request) -> Response:
        return Response(_who(request))


class DRFAdmin(APIView):
    permission_classes = (HasRole("admin"),)

    def get(self, request: Request) -> Response:
        return Response(_who(request))


class DRFOpen(APIView):
    permission_classes = (AllowAny,)

    def get(self, request: Request) -> Response:
        return Response({"user": None if request.user is None else str(request.user)})
