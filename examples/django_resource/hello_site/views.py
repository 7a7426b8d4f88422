"""The example's views: request.auth is the verified token's claims."""

from django.http import HttpRequest, JsonResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jwtwarden.resource.drf import HasScope


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"sub": request.auth.sub})  # type: ignore[attr-defined]


class Items(APIView):
    permission_classes = (HasScope("items:read"),)

    def get(self, request: Request) -> Response:
        return Response({"sub": request.auth.sub, "items": []})
