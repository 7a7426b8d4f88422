"""Django and DRF resource servers, through Django's own test clients (sync = WSGI path,
async = ASGI path): the middleware, the view decorator, the DRF authentication class and
permissions, settings, and the opt-in user lookup.

The token service's public side is mocked (MockJWKS, MockRevocationFeed as httpx transports);
time is a FakeClock injected into the ResourceServer. tests/test_resource_django_e2e.py runs
the example project as a real process against a real ``jwtwarden serve``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests import django_site

django_site.setup()

from django.contrib.auth import get_user_model  # noqa: E402 - after django.setup()
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import exception_handler as drf_exception_handler  # noqa: E402

from jwtwarden import Issuer, decode_unverified  # noqa: E402
from jwtwarden.resource import django as jw_django  # noqa: E402
from jwtwarden.resource.drf import BearerRefused  # noqa: E402
from jwtwarden.resource.feed_client import RevocationFeed  # noqa: E402
from jwtwarden.resource.jwks_client import RemoteJWKS  # noqa: E402
from jwtwarden.resource.server import ResourceServer  # noqa: E402
from jwtwarden.revocation import Revocation  # noqa: E402
from jwtwarden.testing import FakeClock, MockJWKS, MockRevocationFeed  # noqa: E402
from tests.conftest import AUD, ISS, keyset_for  # noqa: E402

KEYS = keyset_for("ES256")
MIDDLEWARE = ["jwtwarden.resource.django.BearerAuthMiddleware"]
# without credentials, both schemes are offered (RFC 9449 section 7.1)
NO_CREDENTIALS = 'Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"'
INVALID_TOKEN = 'Bearer realm="api", error="invalid_token", error_description='


@dataclass
class Auth:
    clock: FakeClock
    jwks: MockJWKS
    feed: MockRevocationFeed
    server: ResourceServer

    def token(self, subject: str = "alice", **claims: Any) -> str:
        return Issuer(KEYS, issuer=ISS, audience=claims.pop("aud", AUD), clock=self.clock).issue(
            subject, claims)

    def bearer(self, subject: str = "alice", **claims: Any) -> dict[str, Any]:
        return {"headers": {"Authorization": f"Bearer {self.token(subject, **claims)}"}}


def make_server(clock: FakeClock, jwks: MockJWKS, feed: MockRevocationFeed) -> ResourceServer:
    return ResourceServer(
        RemoteJWKS(f"{ISS}/.well-known/jwks.json", algorithms=["ES256"], transport=jwks.transport),
        issuer=ISS, audience=AUD, clock=clock,
        revocations=RevocationFeed(f"{ISS}/v1/revocations", transport=feed.transport),
    )


@pytest.fixture
def auth() -> Iterator[Auth]:
    clock = FakeClock(time.time())  # revocation entries expire in real time
    jwks, feed = MockJWKS(KEYS), MockRevocationFeed()
    server = make_server(clock, jwks, feed)
    with override_settings(JWTWARDEN={"SERVER": server}):
        yield Auth(clock, jwks, feed, server)
    server.stop()


def settings_for(auth: Auth, **extra: Any) -> dict[str, Any]:
    return {"SERVER": auth.server} | extra


def body(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = response.json()
    return data


def refused(response: Any, status: int, description: str) -> None:
    """An RFC 6750 refusal: status, challenge with this description, flat body, no-store."""
    assert response.status_code == status, response.content
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="')
    assert f'error_description="{description}"' in challenge
    assert body(response)["error_description"] == description
    assert set(body(response)) == {"error", "error_description"}


# ---- the middleware, sync (WSGI) and async (ASGI) ------------------------------------------------


def test_the_middleware_sets_request_auth_and_a_token_user(auth: Auth) -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        response = Client().get("/hello", **auth.bearer("alice"))
    assert response.status_code == 200
    assert body(response) == {"sub": "alice", "user": "alice", "user_type": "TokenUser",
                              "auth_type": "Claims"}


def test_the_async_middleware_sets_request_auth_user_and_auser(auth: Auth) -> None:
    async def call() -> Any:
        return await AsyncClient().get("/ahello", **auth.bearer("alice"))

    with override_settings(MIDDLEWARE=MIDDLEWARE):
        response = _run(call)
    assert response.status_code == 200
    assert body(response)["user_type"] == "TokenUser" and body(response)["auser"] == "alice"


def _run(coroutine: Callable[[], Any]) -> Any:
    import asyncio

    return asyncio.run(coroutine())


@pytest.mark.parametrize("client", ["sync", "async"])
def test_without_a_token_the_middleware_answers_401_with_a_bare_challenge(auth: Auth, client: str) -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        response = get(client, "/hello")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == NO_CREDENTIALS
    assert response.headers["Cache-Control"] == "no-store"


def get(client: str, path: str, **headers: Any) -> Any:
    if client == "sync":
        return Client().get(path, **headers)
    return _run(lambda: AsyncClient().get(path, **headers))


@pytest.mark.parametrize("client", ["sync", "async"])
def test_an_expired_token_is_refused_once_the_injected_clock_passes_exp(auth: Auth, client: str) -> None:
    headers = auth.bearer("alice")
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        assert get(client, "/hello", **headers).status_code == 200
        auth.clock.advance(900 + 31)  # lifetime + leeway
        response = get(client, "/hello", **headers)
    refused(response, 401, "The access token expired")


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_token_for_another_audience_is_refused(auth: Auth, client: str) -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        response = get(client, "/hello", **auth.bearer("alice", aud="other-api"))
    refused(response, 401, "The access token is not meant for this audience")


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_token_revoked_on_the_feed_is_refused_within_a_second(auth: Auth, client: str) -> None:
    token = auth.token("alice")
    headers: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
    payload = decode_unverified(token).payload
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        assert get(client, "/hello", **headers).status_code == 200
        auth.feed.revoke(Revocation("jti", payload["jti"], payload["exp"]))
        deadline = time.monotonic() + 1.0
        while (response := get(client, "/hello", **headers)).status_code == 200:
            assert time.monotonic() < deadline, "still accepted a second after the revocation"
    refused(response, 401, "The access token has been revoked")


@pytest.mark.parametrize("client", ["sync", "async"])
def test_the_middlewares_required_scope_is_403_insufficient_scope(auth: Auth, client: str) -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE,
                           JWTWARDEN=settings_for(auth, SCOPES=["items:read"])):
        denied = get(client, "/hello", **auth.bearer("alice", scope="items:write"))
        allowed = get(client, "/hello", **auth.bearer("alice", scope="items:read other"))
    assert denied.status_code == 403
    assert denied.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="The access token lacks a scope", scope="items:read"')
    assert allowed.status_code == 200


@pytest.mark.parametrize("client", ["sync", "async"])
def test_public_paths_need_no_token(auth: Auth, client: str) -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE, JWTWARDEN=settings_for(auth, PUBLIC_PATHS=["/health"])):
        assert get(client, "/health").status_code == 200
        assert get(client, "/hello").status_code == 401


def test_a_token_in_the_query_string_is_400(auth: Auth) -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        response = Client().get(f"/hello?access_token={auth.token()}", **auth.bearer())
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("client", ["sync", "async"])
def test_unavailable_keys_are_503_with_retry_after_never_500(auth: Auth, client: str) -> None:
    auth.jwks.fail(503)
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        response = get(client, "/hello", **auth.bearer())
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert body(response)["error"] == "temporarily_unavailable"


class GatedTransport(httpx.AsyncBaseTransport):
    """The JWKS endpoint, answering only once the test opens the gate (a slow key fetch)."""

    def __init__(self, inner: MockJWKS) -> None:
        self.inner = inner
        self.gate: asyncio.Event | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.gate is not None
        await self.gate.wait()
        return await self.inner.transport.handle_async_request(request)


def test_under_asgi_a_key_fetch_in_flight_blocks_no_other_request() -> None:
    """The async middleware awaits the fetch on the event loop: a request on a public path
    (through the same middleware) is answered meanwhile. A synchronous check would hold the
    one thread Django runs sync middleware in, and the public request with it."""
    transport = GatedTransport(MockJWKS(KEYS))
    clock = FakeClock(time.time())
    server = ResourceServer(RemoteJWKS(f"{ISS}/.well-known/jwks.json", algorithms=["ES256"],
                                       transport=transport),
                            issuer=ISS, audience=AUD, clock=clock, revocations=None)
    token = Issuer(KEYS, issuer=ISS, audience=AUD, clock=clock).issue("alice")

    async def scenario() -> tuple[int, int]:
        transport.gate = asyncio.Event()
        slow = asyncio.create_task(AsyncClient().get(
            "/ahello", headers={"Authorization": f"Bearer {token}"}))
        deadline = time.monotonic() + 5
        while server.jwks.requests == 0:  # let the slow request reach its key fetch
            assert time.monotonic() < deadline, "the key fetch never started"
            await asyncio.sleep(0.001)
        public = await asyncio.wait_for(AsyncClient().get("/health"), timeout=5)
        assert not slow.done()
        transport.gate.set()
        return public.status_code, (await slow).status_code

    with override_settings(MIDDLEWARE=MIDDLEWARE,
                           JWTWARDEN={"SERVER": server, "PUBLIC_PATHS": ["/health"]}):
        assert asyncio.run(scenario()) == (200, 200)


# ---- the view decorator, without the middleware ----------------------------------------------------


@pytest.mark.parametrize(("client", "path"), [("sync", "/items"), ("async", "/aitems")])
def test_the_decorator_checks_scopes_on_sync_and_async_views(auth: Auth, client: str, path: str) -> None:
    allowed = get(client, path, **auth.bearer("alice", scope="items:read"))
    denied = get(client, path, **auth.bearer("alice", scope="items:write"))
    anonymous = get(client, path)
    assert allowed.status_code == 200 and body(allowed)["user_type"] == "TokenUser"
    assert denied.status_code == 403 and 'scope="items:read"' in denied.headers["WWW-Authenticate"]
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == NO_CREDENTIALS


# ---- DRF ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["sync", "async"])
def test_drf_sets_request_user_and_request_auth(auth: Auth, client: str) -> None:
    response = get(client, "/drf/hello", **auth.bearer("alice"))
    assert response.status_code == 200
    assert body(response) == {"sub": "alice", "user": "alice", "user_type": "TokenUser",
                              "auth_type": "Claims"}


def test_drf_without_a_token_is_401_with_the_bearer_challenge(auth: Auth) -> None:
    response = Client().get("/drf/hello")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == NO_CREDENTIALS


def test_drf_without_a_token_leaves_the_request_anonymous_for_open_views(auth: Auth) -> None:
    response = Client().get("/drf/open")
    assert response.status_code == 200 and body(response) == {"user": None}


@pytest.mark.parametrize("client", ["sync", "async"])
def test_drf_refuses_an_expired_token_in_rfc_6750_shape(auth: Auth, client: str) -> None:
    headers = auth.bearer("alice")
    auth.clock.advance(900 + 31)
    response = get(client, "/drf/hello", **headers)
    refused(response, 401, "The access token expired")


def test_drf_refuses_a_token_for_another_audience(auth: Auth) -> None:
    refused(Client().get("/drf/hello", **auth.bearer(aud="other-api")), 401,
            "The access token is not meant for this audience")


def test_drf_refuses_a_token_revoked_on_the_feed_within_a_second(auth: Auth) -> None:
    token = auth.token("alice")
    headers: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
    payload = decode_unverified(token).payload
    assert Client().get("/drf/hello", **headers).status_code == 200
    auth.feed.revoke(Revocation("jti", payload["jti"], payload["exp"]))
    deadline = time.monotonic() + 1.0
    while (response := Client().get("/drf/hello", **headers)).status_code == 200:
        assert time.monotonic() < deadline, "still accepted a second after the revocation"
    refused(response, 401, "The access token has been revoked")


def test_has_scope_is_403_insufficient_scope_with_the_scope_named(auth: Auth) -> None:
    denied = Client().get("/drf/items", **auth.bearer(scope="items:write"))
    allowed = Client().get("/drf/items", **auth.bearer(scope="items:read"))
    assert denied.status_code == 403
    assert denied.headers["WWW-Authenticate"].endswith(
        'error="insufficient_scope", error_description="The access token lacks a scope", '
        'scope="items:read"')
    assert body(denied) == {"error": "insufficient_scope",
                            "error_description": "The access token lacks a scope"}
    assert allowed.status_code == 200


def test_has_role_is_403_insufficient_scope(auth: Auth) -> None:
    denied = Client().get("/drf/admin", **auth.bearer(roles=["user"]))
    allowed = Client().get("/drf/admin", **auth.bearer(roles=["admin"]))
    assert denied.status_code == 403 and body(denied)["error"] == "insufficient_scope"
    assert allowed.status_code == 200


def test_has_scope_without_a_verified_token_is_401(auth: Auth) -> None:
    with override_settings(REST_FRAMEWORK={"DEFAULT_AUTHENTICATION_CLASSES": []}):
        response = Client().get("/drf/items")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == NO_CREDENTIALS


def test_drf_unavailable_keys_are_503_with_retry_after(auth: Auth) -> None:
    auth.jwks.fail(503)
    response = Client().get("/drf/hello", **auth.bearer())
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1


def test_the_jwtwarden_exception_handler_adds_cache_control(auth: Auth) -> None:
    plain = Client().get("/drf/hello", **auth.bearer(aud="other-api"))
    conf = {"DEFAULT_AUTHENTICATION_CLASSES": ["jwtwarden.resource.drf.BearerAuthentication"],
            "EXCEPTION_HANDLER": "jwtwarden.resource.drf.exception_handler"}
    with override_settings(REST_FRAMEWORK=conf):
        handled = Client().get("/drf/hello", **auth.bearer(aud="other-api"))
    assert "Cache-Control" not in plain.headers
    assert handled.headers["Cache-Control"] == "no-store"
    assert handled.headers["WWW-Authenticate"] == plain.headers["WWW-Authenticate"]


SEEN: list[Exception] = []


def envelope_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """A project's own DRF exception handler: it must see jwtwarden's refusals."""
    SEEN.append(exc)
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = {"problem": response.data}
    return response


def test_a_projects_own_drf_exception_handler_is_respected(auth: Auth) -> None:
    SEEN.clear()
    conf = {"DEFAULT_AUTHENTICATION_CLASSES": ["jwtwarden.resource.drf.BearerAuthentication"],
            "EXCEPTION_HANDLER": "tests.test_resource_django.envelope_handler"}
    with override_settings(REST_FRAMEWORK=conf):
        response = Client().get("/drf/items", **auth.bearer(scope="other"))
    assert [type(e) for e in SEEN] == [BearerRefused]
    assert response.status_code == 403 and body(response) == {"problem": {
        "error": "insufficient_scope", "error_description": "The access token lacks a scope"}}
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_drf_behind_the_middleware_reuses_its_verification(auth: Auth,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    verify = auth.server.authenticate

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return verify(*args, **kwargs)

    monkeypatch.setattr(auth.server, "authenticate", counting)
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        response = Client().get("/drf/hello", **auth.bearer("alice"))
    assert response.status_code == 200 and body(response)["user_type"] == "TokenUser"
    assert len(calls) == 1


# ---- the user: a TokenUser, or the User found by a claim (opt-in) ------------------------------------


@pytest.fixture
def users() -> Iterator[Any]:
    model: Any = get_user_model()
    model.objects.filter(username__in=["carol", "dave"]).delete()
    model.objects.create_user("carol")
    model.objects.create_user("dave", is_active=False)
    yield model
    model.objects.filter(username__in=["carol", "dave"]).delete()


@pytest.mark.parametrize("client", ["sync", "async"])
def test_with_user_field_request_user_is_the_django_user_of_the_claim(auth: Auth, users: Any, client: str) -> None:
    with override_settings(MIDDLEWARE=MIDDLEWARE,
                           JWTWARDEN=settings_for(auth, USER_FIELD="username", USER_CLAIM="sub")):
        found = get(client, "/hello", **auth.bearer("carol"))
        drf = get(client, "/drf/hello", **auth.bearer("carol"))
    assert found.status_code == 200 and body(found)["user_type"] == "User"
    assert body(drf)["user_type"] == "User" and body(drf)["user"] == "carol"


@pytest.mark.parametrize("subject", ["nobody", "dave"])
@pytest.mark.parametrize("client", ["sync", "async"])
def test_an_unknown_or_inactive_user_is_refused_and_never_created(auth: Auth, users: Any, client: str,
                                                                   subject: str) -> None:
    before = users.objects.count()
    with override_settings(MIDDLEWARE=MIDDLEWARE,
                           JWTWARDEN=settings_for(auth, USER_FIELD="username")):
        response = get(client, "/hello", **auth.bearer(subject))
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith(INVALID_TOKEN)
    assert users.objects.count() == before


def test_without_user_field_no_user_is_looked_up_or_created(auth: Auth, users: Any) -> None:
    before = users.objects.count()
    response = Client().get("/drf/hello", **auth.bearer("someone-new"))
    assert response.status_code == 200 and body(response)["user_type"] == "TokenUser"
    assert users.objects.count() == before


def test_a_token_user_has_no_django_permissions(auth: Auth) -> None:
    user = jw_django.TokenUser(auth.server.verifier.verify(auth.token("alice", roles=["admin"],
                                                                       scope="a b")))
    assert user.is_authenticated and not user.is_anonymous and not user.is_staff
    assert not user.has_perm("auth.delete_user") and not user.is_superuser
    assert user.scopes == {"a", "b"} and user.roles == {"admin"} and user.pk == "alice"


# ---- settings and environment -------------------------------------------------------------------------


def test_settings_build_the_server_and_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWTWARDEN_JWKS_URL", "https://env.example.com/.well-known/jwks.json")
    monkeypatch.setenv("JWTWARDEN_ISSUER", "https://env.example.com")
    monkeypatch.setenv("JWTWARDEN_AUDIENCE", "env-api")
    with override_settings(JWTWARDEN={"JWKS_URL": "https://auth.example.com/.well-known/jwks.json",
                                      "AUDIENCE": ["api", "api2"], "REALM": "orders",
                                      "REVOCATION_URL": "off"}):
        server = jw_django.get_server()
        assert jw_django.get_server() is server  # one per process
    assert server.jwks.url == "https://auth.example.com/.well-known/jwks.json"
    assert server.verifier._options["issuer"] == "https://env.example.com"  # from the environment
    assert server.verifier._options["audience"] == ["api", "api2"]
    assert server.realm == "orders" and server.revocations is None


def test_without_the_setting_the_environment_configures_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWTWARDEN_JWKS_URL", "https://env.example.com/.well-known/jwks.json")
    monkeypatch.setenv("JWTWARDEN_ISSUER", "https://env.example.com")
    monkeypatch.setenv("JWTWARDEN_AUDIENCE", "env-api")
    with override_settings(JWTWARDEN=None):
        server = jw_django.get_server()
    assert server.jwks.url == "https://env.example.com/.well-known/jwks.json"


@pytest.mark.parametrize(("conf", "message"), [
    ({"JWKS_URL": "https://a.example/jwks", "ISSUER": "https://a.example"}, "JWTWARDEN_AUDIENCE"),
    ({"JWKS_URLS": "x"}, "unknown keys"),
    ({"SERVER": "jwtwarden.resource.django.SETTING"}, "not a ResourceServer"),
    ({"SERVER": object(), "ISSUER": "x"}, "SERVER excludes"),
    ({"JWKS_URL": "http://example.com/jwks", "ISSUER": "i", "AUDIENCE": "a"}, "https"),
])
def test_a_configuration_mistake_is_improperly_configured(conf: dict[str, Any], message: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JWTWARDEN_JWKS_URL", "JWTWARDEN_ISSUER", "JWTWARDEN_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    with override_settings(JWTWARDEN=conf), pytest.raises(ImproperlyConfigured, match=message):
        jw_django.get_server()


def test_the_server_can_be_named_by_its_dotted_path(auth: Auth) -> None:
    with override_settings(JWTWARDEN={"SERVER": "tests.test_resource_django.NAMED_SERVER"}):
        assert jw_django.get_server() is NAMED_SERVER


NAMED_SERVER = ResourceServer("https://auth.example.com/jwks", issuer=ISS, audience=AUD,
                              revocations=None)
