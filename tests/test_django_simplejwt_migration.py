"""A Django project moves from djangorestframework-simplejwt to jwtwarden, as
docs/migrating-from-simplejwt.md says, and a client holding a simplejwt access token keeps
working until that token expires, then is moved to jwtwarden's tokens without logging in again.

simplejwt is the real package issuing real tokens; jwtwarden is a real ``jwtwarden serve``
process. The resource server's clock is a FakeClock (simplejwt's own checks use real time).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import django_site

django_site.setup()

from django.conf import settings  # noqa: E402 - after django.setup()
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

from jwtwarden.resource.legacy import LegacyIssuer  # noqa: E402
from jwtwarden.testing import FakeClock  # noqa: E402
from tests.servicekit import (  # noqa: E402
    TEST_KEK,
    ServerProcess,
    add_client,
    free_port,
    server_env,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "migrating-from-simplejwt.md").read_text(encoding="utf-8")
ACCESS_LIFETIME = timedelta(minutes=5)  # simplejwt's default ACCESS_TOKEN_LIFETIME
MARGIN = 60  # the document's minute for clock skew between the old issuer and the API


def not_after(switch: float) -> float:
    return switch + ACCESS_LIFETIME.total_seconds() + MARGIN

BEFORE = {  # the project on simplejwt
    "ROOT_URLCONF": "tests.django_site.urls_simplejwt",
    "REST_FRAMEWORK": {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    },
    "SIMPLE_JWT": {"ACCESS_TOKEN_LIFETIME": ACCESS_LIFETIME},
}


def after(service: ServerProcess, backend: tuple[str, str], switch: float,
          clock: FakeClock) -> dict[str, Any]:
    """The same project after the cut-over (step 3 of the document)."""
    return {
        "ROOT_URLCONF": "tests.django_site.urls_jwtwarden",
        "REST_FRAMEWORK": {
            "DEFAULT_AUTHENTICATION_CLASSES": ["jwtwarden.resource.drf.BearerAuthentication"],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "EXCEPTION_HANDLER": "jwtwarden.resource.drf.exception_handler",
        },
        "SIMPLE_JWT": {"ACCESS_TOKEN_LIFETIME": ACCESS_LIFETIME},
        "JWTWARDEN": {
            "JWKS_URL": f"{service.url}/.well-known/jwks.json",
            "ISSUER": service.url,
            "AUDIENCE": "api",
            "USER_FIELD": "pk",       # request.user: the Django user whose pk is the token's sub
            "ALSO_TRUST": LegacyIssuer.simplejwt(
                settings.SECRET_KEY,  # SIMPLE_JWT["SIGNING_KEY"] defaults to it
                not_after=not_after(switch),
            ),
            "OPTIONS": {"clock": clock},
        },
        "JWTWARDEN_BACKEND": {"URL": service.url, "CLIENT_ID": backend[0],
                              "CLIENT_SECRET": backend[1]},
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, tuple[str, str]]]:
    env = server_env(tmp_path_factory.mktemp("simplejwt-migration"), JWTWARDEN_KEK=TEST_KEK)
    server = ServerProcess(env, free_port())
    env["JWTWARDEN_ISSUER"] = server.url
    backend = add_client(env, "django", "sessions")
    server.start()
    try:
        yield server, backend
    finally:
        server.stop()


@pytest.fixture
def user() -> Iterator[Any]:
    model: Any = get_user_model()
    model.objects.filter(username="erin").delete()
    created = model.objects.create_user("erin", password="erin's long password")
    yield created
    model.objects.filter(username="erin").delete()


def bearer(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def test_the_document_shows_the_cutover_views_this_test_runs() -> None:
    source = (ROOT / "tests" / "django_site" / "cutover.py").read_text(encoding="utf-8")
    code = source.split('"""\n', 2)[2].strip()  # without the module docstring
    assert code in DOC


def test_a_simplejwt_client_keeps_working_until_its_token_expires_then_moves_to_jwtwarden(
        service: tuple[ServerProcess, tuple[str, str]], user: Any) -> None:
    server, backend = service
    # 1. the project on simplejwt: the client logs in and calls the API
    with override_settings(**BEFORE):
        pair = Client().post("/api/token/", {"username": "erin",
                                             "password": "erin's long password"}).json()
        assert set(pair) == {"access", "refresh"}
        assert Client().get("/api/hello", **bearer(pair["access"])).json() == {"user": "erin"}
    # 2. the switch: the same settings module, changed as the document says
    switch = time.time()
    clock = FakeClock(switch)
    with override_settings(**after(server, backend, switch, clock)):
        api = Client()
        # the simplejwt access token keeps working, for the same Django user ...
        still = api.get("/api/hello", **bearer(pair["access"]))
        assert still.status_code == 200 and still.json() == {"user": "erin"}
        exp = AccessToken(pair["access"], verify=False)["exp"]
        clock.set(exp - 1)
        assert api.get("/api/hello", **bearer(pair["access"])).status_code == 200
        # ... until it expires
        clock.set(exp)
        expired = api.get("/api/hello", **bearer(pair["access"]))
        assert expired.status_code == 401
        assert 'error_description="The access token expired"' in expired.headers["WWW-Authenticate"]
        # the client refreshes where it always did, and now holds jwtwarden tokens
        moved = api.post("/api/token/refresh/", {"refresh": pair["refresh"]})
        assert moved.status_code == 200, moved.content
        new = moved.json()
        assert new["refresh_token"].startswith("jwr_") and new["token_type"] == "Bearer"
        hello = api.get("/api/hello", **bearer(new["access_token"]))
        assert hello.status_code == 200 and hello.json() == {"user": "erin"}
        # the old refresh token is spent: one exchange only
        again = api.post("/api/token/refresh/", {"refresh": pair["refresh"]})
        assert again.status_code == 401
        # from now on the client refreshes at jwtwarden (rotation, families, reuse detection)
        rotated = httpx.post(server.url + "/v1/auth/refresh",
                             json={"refresh_token": new["refresh_token"]})
        assert rotated.status_code == 200
        assert api.get("/api/hello", **bearer(rotated.json()["access_token"])).json() == {"user": "erin"}
        # and a new login gets a jwtwarden pair straight away
        login = api.post("/api/token/", {"username": "erin", "password": "erin's long password"})
        assert login.status_code == 200 and login.json()["refresh_token"].startswith("jwr_")


def test_after_the_not_after_date_no_simplejwt_token_is_accepted(
        service: tuple[ServerProcess, tuple[str, str]], user: Any) -> None:
    server, backend = service
    switch = time.time()
    clock = FakeClock(switch)
    with override_settings(**after(server, backend, switch, clock)):
        # a token signed with the old key and a long life (what a leaked SIGNING_KEY allows)
        token = AccessToken.for_user(user)
        token.set_exp(lifetime=timedelta(days=1))
        api = Client()
        assert api.get("/api/hello", **bearer(str(token))).status_code == 200
        clock.set(not_after(switch) - 1)
        assert api.get("/api/hello", **bearer(str(token))).status_code == 200
        clock.set(not_after(switch))
        refused = api.get("/api/hello", **bearer(str(token)))
        assert refused.status_code == 401
        assert "algorithm is not accepted" in refused.headers["WWW-Authenticate"]


def test_a_simplejwt_refresh_token_is_no_access_token(
        service: tuple[ServerProcess, tuple[str, str]], user: Any) -> None:
    server, backend = service
    with override_settings(**BEFORE):
        pair = Client().post("/api/token/", {"username": "erin",
                                             "password": "erin's long password"}).json()
    switch = time.time()
    with override_settings(**after(server, backend, switch, FakeClock(switch))):
        response = Client().get("/api/hello", **bearer(pair["refresh"]))
    assert response.status_code == 401
    assert "not an access token" in response.headers["WWW-Authenticate"]
