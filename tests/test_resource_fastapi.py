"""The FastAPI dependency require_token(): verified claims in, RFC 6750 answers out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from jwtwarden import Claims, Issuer, KeySet
from jwtwarden.resource.asgi import BearerAuthMiddleware
from jwtwarden.resource.fastapi import require_token
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.server import ResourceServer
from jwtwarden.revocation import Revocation, RevocationSet
from jwtwarden.testing import MockJWKS
from tests.conftest import AUD, ISS, keyset_for

KEYS = keyset_for("ES256")
ISSUER = Issuer(KEYS, issuer=ISS, audience=AUD)


class CountingSet(RevocationSet):
    """A revocation set that counts its checks (one per verified request)."""

    checks = 0

    def check(self, claims: Any) -> None:
        type(self).checks += 1
        super().check(claims)


@pytest.fixture
def mock_jwks() -> MockJWKS:
    return MockJWKS(KEYS)


@pytest.fixture
def revoked() -> CountingSet:
    CountingSet.checks = 0
    return CountingSet()


@pytest.fixture
def server(mock_jwks: MockJWKS, revoked: CountingSet) -> ResourceServer:
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=mock_jwks.transport)
    return ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=revoked)


def make_app(server: ResourceServer | None) -> FastAPI:
    # Depends() as a default: with postponed annotations, Annotated[...] would be evaluated
    # in the module's globals, where `server` is not this function's argument.
    app = FastAPI()

    @app.get("/hello")
    async def hello(claims: Claims = Depends(require_token(server))) -> dict[str, Any]:  # noqa: B008 - local server, eager default
        return {"sub": claims.sub}

    @app.get("/write")
    async def write(claims: Claims = Depends(require_token(server, scopes="items:write"))) -> dict[str, Any]:  # noqa: B008 - local server, eager default
        return {"sub": claims.sub}

    @app.get("/admin")
    async def admin(claims: Claims = Depends(require_token(server, roles=["admin"]))) -> dict[str, Any]:  # noqa: B008 - local server, eager default
        return {"sub": claims.sub}

    return app


def get(app: Any, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get(path, headers=headers)

    return asyncio.run(call())


@pytest.fixture
def app(server: ResourceServer) -> FastAPI:
    return make_app(server)


def test_the_dependency_returns_the_verified_claims(app: FastAPI) -> None:
    response = get(app, "/hello", ISSUER.issue(subject="alice"))
    assert response.status_code == 200 and response.json() == {"sub": "alice"}


def test_a_missing_token_is_401_with_a_bare_challenge(app: FastAPI) -> None:
    response = get(app, "/hello")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"'


def test_an_expired_token_is_401_invalid_token(app: FastAPI) -> None:
    old = Issuer(KEYS, issuer=ISS, audience=AUD, clock=lambda: time.time() - 2000)
    response = get(app, "/hello", old.issue(subject="alice"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_malformed_token_is_401_invalid_token(app: FastAPI) -> None:
    response = get(app, "/hello", "a.b.c")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": "The access token is malformed"}


def test_a_token_for_another_audience_is_401(app: FastAPI) -> None:
    other = Issuer(KEYS, issuer=ISS, audience="elsewhere")
    assert get(app, "/hello", other.issue(subject="alice")).status_code == 401


def test_a_revoked_token_is_401(app: FastAPI, revoked: CountingSet) -> None:
    token = ISSUER.issue(subject="alice", claims={"sid": "s-1"})
    revoked.add(Revocation("sid", "s-1", time.time() + 900))
    response = get(app, "/hello", token)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_missing_scope_is_403_insufficient_scope(app: FastAPI) -> None:
    response = get(app, "/write", ISSUER.issue(subject="alice", claims={"scope": "items:read"}))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].endswith(
        'error="insufficient_scope", error_description="The access token lacks a scope", '
        'scope="items:write"')


def test_a_granted_scope_is_accepted(app: FastAPI) -> None:
    token = ISSUER.issue(subject="alice", claims={"scope": "items:read items:write"})
    assert get(app, "/write", token).status_code == 200


def test_a_missing_role_is_403(app: FastAPI) -> None:
    response = get(app, "/admin", ISSUER.issue(subject="alice", claims={"roles": ["user"]}))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_a_granted_role_is_accepted(app: FastAPI) -> None:
    assert get(app, "/admin", ISSUER.issue(subject="root", claims={"roles": ["admin"]})).status_code == 200


def test_unavailable_keys_are_503_with_retry_after(app: FastAPI, mock_jwks: MockJWKS) -> None:
    mock_jwks.fail(503)
    response = get(app, "/hello", ISSUER.issue(subject="alice"))
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1


def test_a_token_signed_by_another_key_is_401(app: FastAPI) -> None:
    forged = Issuer(KeySet.generate("ES256"), issuer=ISS, audience=AUD)
    assert get(app, "/hello", forged.issue(subject="alice")).status_code == 401


def test_the_dependency_reuses_the_middlewares_verification(server: ResourceServer) -> None:
    app = BearerAuthMiddleware(make_app(None), server)
    response = get(app, "/write", ISSUER.issue(subject="alice", claims={"scope": "items:write"}))
    assert response.status_code == 200
    assert CountingSet.checks == 1


def test_the_dependency_finds_the_middlewares_server_and_enforces_scopes(server: ResourceServer) -> None:
    app = BearerAuthMiddleware(make_app(None), server)
    assert get(app, "/write", ISSUER.issue(subject="alice")).status_code == 403


def test_without_any_server_the_dependency_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    response = get(make_app(None), "/hello", ISSUER.issue(subject="alice"))
    assert response.status_code == 503


def test_the_route_is_documented_as_bearer_protected(app: FastAPI) -> None:
    schema = app.openapi()
    assert schema["components"]["securitySchemes"]["jwtwarden"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schema["paths"]["/hello"]["get"]["security"] == [{"jwtwarden": []}]


def test_scope_names_are_checked_when_the_dependency_is_made() -> None:
    with pytest.raises(ValueError, match="scopes"):
        require_token(scopes=['bad"scope'])
