"""The cut-over from simplejwt: its two token endpoints now hand out jwtwarden sessions.

Login checks the password with Django, as before; the refresh endpoint takes a simplejwt
refresh token once and answers with a jwtwarden pair for the same user. Both ask the token
service for the pair (POST /v1/sessions, as a trusted backend); the client refreshes at
jwtwarden from then on.
"""

from typing import Any, cast

import httpx
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken


def jwtwarden_pair(user: Any) -> Response:
    """A jwtwarden token pair for a user Django vouches for; sub = the user's pk."""
    backend = settings.JWTWARDEN_BACKEND
    answer = httpx.post(f"{backend['URL']}/v1/sessions", timeout=5,
                        auth=(backend["CLIENT_ID"], backend["CLIENT_SECRET"]),
                        json={"subject": str(user.pk), "scope": scope_of(user)})
    if answer.status_code != 201:
        return Response({"error": "temporarily_unavailable"}, status=503)
    return Response(answer.json())


def scope_of(user: Any) -> str:
    """The scopes your API's HasScope(...) checks; here from Django's is_staff."""
    return "read admin" if user.is_staff else "read"


class Login(APIView):
    """Replaces TokenObtainPairView at the same URL."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request: Request) -> Response:
        data: Any = request.data
        user = authenticate(request, username=data.get("username"), password=data.get("password"))
        if user is None or not user.is_active:
            return Response({"error": "invalid_grant"}, status=401)
        return jwtwarden_pair(user)


class ExchangeRefresh(APIView):
    """Replaces TokenRefreshView at the same URL: a simplejwt refresh token, once, for a
    jwtwarden pair (simplejwt's blacklist app makes 'once' hold under concurrent requests)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request: Request) -> Response:
        data: Any = request.data
        try:
            old = RefreshToken(data.get("refresh", ""))  # signature, exp, type, blacklist
            _, first_use = cast(tuple[Any, bool], old.blacklist())  # get_or_create: (row, created)
        except TokenError:
            return Response({"error": "invalid_grant"}, status=401)
        user = get_user_model().objects.filter(
            **{api_settings.USER_ID_FIELD: old[api_settings.USER_ID_CLAIM]}, is_active=True
        ).first()
        if not first_use or user is None:
            return Response({"error": "invalid_grant"}, status=401)
        return jwtwarden_pair(user)
