"""The project after the cut-over: same URLs, jwtwarden behind them."""

from django.urls import path
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from tests.django_site.cutover import ExchangeRefresh, Login


class Hello(APIView):
    def get_authenticators(self) -> list[BaseAuthentication]:
        # APIView binds DEFAULT_AUTHENTICATION_CLASSES when DRF is imported; a deployment
        # restarts to change it, a test process reads the overridden setting per request
        return [auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.get_username()})


urlpatterns = [
    path("api/token/", Login.as_view()),
    path("api/token/refresh/", ExchangeRefresh.as_view()),
    path("api/hello", Hello.as_view()),
]
