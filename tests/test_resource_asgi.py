"""The pure ASGI middleware: under Starlette, as bare ASGI, and behind a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from jwtwarden import Issuer, KeySet, errors
from jwtwarden.resource.asgi import BearerAuthMiddleware, claims_of
from jwtwarden.resource.feed_client import RevocationFeed
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.server import ResourceServer
from jwtwarden.revocation import Revocation, RevocationSet, subject_key
from jwtwarden.testing import MockJWKS, MockRevocationFeed
from tests.conftest import AUD, ISS, keyset_for
from tests.helpers_http import serve_asgi

KEYS = keyset_for("ES256")
ISSUER = Issuer(KEYS, issuer=ISS, audience=AUD)


@pytest.fixture
def mock_jwks() -> MockJWKS:
    return MockJWKS(KEYS)


@pytest.fixture
def revoked() -> RevocationSet:
    return RevocationSet()


@pytest.fixture
def server(mock_jwks: MockJWKS, revoked: RevocationSet) -> ResourceServer:
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=mock_jwks.transport)
    return ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=revoked)


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"sub": claims_of(request).sub})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"sub": claims_of(websocket).sub})
    await websocket.close()


def starlette_app(server: ResourceServer, **options: Any) -> Starlette:
    routes = [Route("/hello", hello), Route("/health", health), WebSocketRoute("/ws", ws)]
    return Starlette(routes=routes, middleware=[
        Middleware(BearerAuthMiddleware, server=server, public_paths=["/health"], **options)])


class Client:
    """Requests to an ASGI app in process (httpx.ASGITransport); one event loop per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def get(self, path: str, headers: Any = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                return await http.get(path, headers=headers)

        return asyncio.run(call())

    def websocket(self, path: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Connect, and return every message the app sent until it closed."""
        sent: list[dict[str, Any]] = []
        incoming = [{"type": "websocket.connect"}]

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": path, "raw_path": path.encode(), "root_path": "",
                 "scheme": "ws", "query_string": b"", "server": ("testserver", 80),
                 "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
                 "subprotocols": [], "asgi": {"version": "3.0"}}
        asyncio.run(self.app(scope, receive, send))
        return sent


@pytest.fixture
def client(server: ResourceServer) -> Client:
    return Client(starlette_app(server))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> str:
    return response.headers["www-authenticate"]


# ---- accepted ---------------------------------------------------------------------------------


def test_a_valid_token_reaches_the_app_with_its_claims(client: Client) -> None:
    response = client.get("/hello", headers=bearer(ISSUER.issue(subject="alice")))
    assert response.status_code == 200 and response.json() == {"sub": "alice"}


def test_a_public_path_needs_no_token(client: Client) -> None:
    assert client.get("/health").status_code == 200


def test_a_bare_asgi_app_is_protected_too(server: ResourceServer) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps({"sub": claims_of(scope).sub}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def call(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=BearerAuthMiddleware(app, server))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get("/", headers=headers)

    assert asyncio.run(call(bearer(ISSUER.issue(subject="bob")))).json() == {"sub": "bob"}
    assert asyncio.run(call({})).status_code == 401


# ---- refused ----------------------------------------------------------------------------------


def test_a_missing_token_is_401_with_a_bare_challenge(client: Client) -> None:
    response = client.get("/hello")
    assert response.status_code == 401
    assert challenge(response) == 'Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"'


def test_a_malformed_token_is_401_invalid_token(client: Client) -> None:
    response = client.get("/hello", headers=bearer("not.a.jwt"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge(response)


def test_an_expired_token_is_401_invalid_token(client: Client) -> None:
    old = Issuer(KEYS, issuer=ISS, audience=AUD, clock=lambda: time.time() - 2000)
    response = client.get("/hello", headers=bearer(old.issue(subject="alice")))
    assert response.status_code == 401
    assert 'error="invalid_token", error_description="The access token expired"' in challenge(response)


def test_a_token_for_another_audience_is_401(client: Client) -> None:
    other = Issuer(KEYS, issuer=ISS, audience="other.example.com")
    response = client.get("/hello", headers=bearer(other.issue(subject="alice")))
    assert response.status_code == 401 and 'error="invalid_token"' in challenge(response)


def test_a_token_signed_by_an_unknown_key_is_401(client: Client) -> None:
    forged = Issuer(KeySet.generate("ES256"), issuer=ISS, audience=AUD)
    response = client.get("/hello", headers=bearer(forged.issue(subject="alice")))
    assert response.status_code == 401 and 'error="invalid_token"' in challenge(response)


def test_a_revoked_token_is_401(client: Client, revoked: RevocationSet) -> None:
    token = ISSUER.issue(subject="alice")
    revoked.add(Revocation("sub", subject_key("alice"), time.time() + 900, cutoff=time.time() + 1))
    response = client.get("/hello", headers=bearer(token))
    assert response.status_code == 401
    assert 'error_description="The access token has been revoked"' in challenge(response)


def test_a_token_in_the_query_string_is_400(client: Client) -> None:
    token = ISSUER.issue(subject="alice")
    response = client.get(f"/hello?access_token={token}", headers=bearer(token))
    assert response.status_code == 400 and 'error="invalid_request"' in challenge(response)


def test_two_authorization_headers_are_400(client: Client) -> None:
    token = ISSUER.issue(subject="alice")
    response = client.get("/hello", headers=[("Authorization", f"Bearer {token}"),
                                             ("Authorization", f"Bearer {token}")])
    assert response.status_code == 400


def test_unavailable_keys_are_503_with_retry_after(client: Client, mock_jwks: MockJWKS) -> None:
    mock_jwks.fail(503)
    response = client.get("/hello", headers=bearer(ISSUER.issue(subject="alice")))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1


def test_unavailable_revocations_are_503(mock_jwks: MockJWKS) -> None:
    class Unreadable:
        def check(self, claims: Any) -> None:
            raise errors.RevocationUnavailable()

    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=mock_jwks.transport)
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=Unreadable())
    response = Client(starlette_app(server)).get("/hello", headers=bearer(ISSUER.issue(subject="a")))
    assert response.status_code == 503 and "retry-after" in response.headers


def test_a_middleware_wide_scope_is_enforced_with_403(server: ResourceServer) -> None:
    test_client = Client(starlette_app(server, scopes=["read"]))
    denied = test_client.get("/hello", headers=bearer(ISSUER.issue(subject="a")))
    allowed = test_client.get("/hello", headers=bearer(
        ISSUER.issue(subject="a", claims={"scope": "read write"})))
    assert denied.status_code == 403
    assert challenge(denied).endswith('scope="read"')
    assert allowed.status_code == 200


def test_a_websocket_without_a_valid_token_is_closed_with_1008_before_accept(client: Client) -> None:
    messages = client.websocket("/ws")
    assert [(m["type"], m.get("code")) for m in messages] == [("websocket.close", 1008)]


def test_a_websocket_with_a_valid_token_is_accepted(client: Client) -> None:
    messages = client.websocket("/ws", headers=bearer(ISSUER.issue(subject="carol")))
    assert messages[0]["type"] == "websocket.accept"
    assert json.loads(messages[1]["text"]) == {"sub": "carol"}


def test_the_body_of_a_refusal_never_contains_the_token(client: Client) -> None:
    old = Issuer(KEYS, issuer=ISS, audience=AUD, clock=lambda: time.time() - 2000)
    token = old.issue(subject="alice")
    response = client.get("/hello", headers=bearer(token))
    assert token not in response.text and token.split(".")[1] not in str(response.headers)


# ---- the revocation feed's life cycle ------------------------------------------------------------


def test_the_lifespan_starts_and_stops_the_revocation_feed(mock_jwks: MockJWKS) -> None:
    feed_mock = MockRevocationFeed()
    feed = RevocationFeed("https://auth.test/v1/revocations", transport=feed_mock.transport)
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=mock_jwks.transport)
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=feed)
    with serve_asgi(starlette_app(server), lifespan="on", timeout_graceful=0.2) as api_url:
        running = feed._task is not None and not feed._task.done()
        response = httpx.get(f"{api_url}/hello", headers=bearer(ISSUER.issue(subject="a")))
    assert running and response.status_code == 200
    assert feed._task is None


def test_a_feed_that_cannot_be_read_makes_requests_fail_closed(mock_jwks: MockJWKS) -> None:
    feed_mock = MockRevocationFeed()
    feed_mock.fail(500)
    feed = RevocationFeed("https://auth.test/v1/revocations", transport=feed_mock.transport,
                          retry_initial=0.01, retry_max=0.02)
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=mock_jwks.transport)
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=feed)
    response = Client(starlette_app(server)).get("/hello", headers=bearer(ISSUER.issue(subject="a")))
    assert response.status_code == 503


# ---- over real HTTP ------------------------------------------------------------------------------


class AuthEndpoints:
    """The token service's public side on loopback: a JWKS and the revocation feed."""

    def __init__(self) -> None:
        self.jwks = MockJWKS(KEYS)
        self.feed = MockRevocationFeed()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/revocations":
            await self.feed(scope, receive, send)
        else:
            await self.jwks(scope, receive, send)


def test_a_logout_is_enforced_over_http_within_a_second() -> None:
    auth = AuthEndpoints()
    with serve_asgi(auth, lifespan="off", timeout_graceful=0.2) as auth_url:
        server = ResourceServer(f"{auth_url}/.well-known/jwks.json", issuer=ISS, audience=AUD)
        with serve_asgi(starlette_app(server), timeout_graceful=0.2) as api_url:
            token = ISSUER.issue(subject="dave", claims={"sid": "session-1"})
            with httpx.Client(base_url=api_url) as http:
                assert http.get("/hello", headers=bearer(token)).status_code == 200
                revoked_at = time.monotonic()
                threading.Thread(target=auth.feed.revoke,
                                 args=(Revocation("sid", "session-1", time.time() + 900),)).start()
                status = 200
                while status == 200 and time.monotonic() - revoked_at < 5:
                    status = http.get("/hello", headers=bearer(token)).status_code
                elapsed = time.monotonic() - revoked_at
    assert status == 401
    assert elapsed < 1.0


def test_an_emergency_key_revocation_is_enforced_over_http_within_a_second() -> None:
    auth = AuthEndpoints()
    kid = next(iter(KEYS)).kid
    with serve_asgi(auth, lifespan="off", timeout_graceful=0.2) as auth_url:
        server = ResourceServer(f"{auth_url}/.well-known/jwks.json", issuer=ISS, audience=AUD)
        with serve_asgi(starlette_app(server), timeout_graceful=0.2) as api_url:
            token = ISSUER.issue(subject="frank")
            with httpx.Client(base_url=api_url) as http:
                assert http.get("/hello", headers=bearer(token)).status_code == 200
                revoked_at = time.monotonic()
                threading.Thread(target=auth.feed.revoke,
                                 args=(Revocation("kid", kid, time.time() + 900),)).start()
                status = 200
                while status == 200 and time.monotonic() - revoked_at < 5:
                    status = http.get("/hello", headers=bearer(token)).status_code
                elapsed = time.monotonic() - revoked_at
    assert status == 401
    assert elapsed < 1.0
