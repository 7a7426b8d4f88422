"""The WSGI middleware and view decorator, under Flask and over a real werkzeug server."""

from __future__ import annotations

import http.client
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from jwtwarden import Issuer, KeySet, decode_unverified
from jwtwarden.resource.feed_client import RevocationFeed
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.server import MissingToken, ResourceServer
from jwtwarden.resource.wsgi import WSGIBearerAuthMiddleware, claims_of, require_token
from jwtwarden.revocation import Revocation, RevocationSet
from jwtwarden.testing import MockJWKS, MockRevocationFeed
from tests.conftest import AUD, ISS, keyset_for
from tests.helpers_http import serve_wsgi

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


def flask_app(server: ResourceServer, *, middleware: bool = True) -> Flask:
    app = Flask(__name__)
    if middleware:
        app.wsgi_app = WSGIBearerAuthMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, server, public_paths=["/health", "/static/"])

    @app.get("/hello")
    def hello() -> dict[str, Any]:
        return {"sub": claims_of().sub}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/static/logo")
    def logo() -> str:
        return "logo"

    @app.get("/write")
    @require_token(None if middleware else server, scopes=["items:write"])
    def write() -> dict[str, Any]:
        return {"sub": claims_of().sub}

    @app.get("/admin")
    @require_token(None if middleware else server, roles="admin")
    def admin() -> dict[str, Any]:
        return {"sub": claims_of().sub}

    return app


@pytest.fixture
def client(server: ResourceServer) -> FlaskClient:
    return flask_app(server).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the middleware -------------------------------------------------------------------------------


def test_a_valid_token_reaches_the_view_with_its_claims(client: FlaskClient) -> None:
    response = client.get("/hello", headers=bearer(ISSUER.issue(subject="alice")))
    assert response.status_code == 200 and response.json == {"sub": "alice"}


def test_public_paths_and_prefixes_need_no_token(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/static/logo").status_code == 200


def test_a_missing_token_is_401_with_a_bare_challenge(client: FlaskClient) -> None:
    response = client.get("/hello")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"'


def test_a_malformed_token_is_401_invalid_token(client: FlaskClient) -> None:
    response = client.get("/hello", headers=bearer("x.y.z"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_an_expired_token_is_401_invalid_token(client: FlaskClient) -> None:
    old = Issuer(KEYS, issuer=ISS, audience=AUD, clock=lambda: time.time() - 2000)
    response = client.get("/hello", headers=bearer(old.issue(subject="alice")))
    assert response.status_code == 401
    assert 'error_description="The access token expired"' in response.headers["WWW-Authenticate"]


def test_a_token_for_another_audience_is_401(client: FlaskClient) -> None:
    other = Issuer(KEYS, issuer=ISS, audience="elsewhere")
    assert client.get("/hello", headers=bearer(other.issue(subject="a"))).status_code == 401


def test_a_token_signed_by_another_key_is_401(client: FlaskClient) -> None:
    forged = Issuer(KeySet.generate("ES256"), issuer=ISS, audience=AUD)
    assert client.get("/hello", headers=bearer(forged.issue(subject="a"))).status_code == 401


def test_a_revoked_token_is_401(client: FlaskClient, revoked: RevocationSet) -> None:
    token = ISSUER.issue(subject="alice")
    revoked.add(Revocation("jti", _jti(token), time.time() + 900))
    response = client.get("/hello", headers=bearer(token))
    assert response.status_code == 401
    assert 'error_description="The access token has been revoked"' in response.headers["WWW-Authenticate"]


def _jti(token: str) -> str:
    return str(decode_unverified(token).payload["jti"])


def test_a_token_in_the_query_string_is_400(client: FlaskClient) -> None:
    token = ISSUER.issue(subject="alice")
    response = client.get(f"/hello?access_token={token}")
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_unavailable_keys_are_503_with_retry_after(client: FlaskClient, mock_jwks: MockJWKS) -> None:
    mock_jwks.fail(503)
    response = client.get("/hello", headers=bearer(ISSUER.issue(subject="alice")))
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1


def test_unavailable_revocations_are_503(mock_jwks: MockJWKS) -> None:
    feed_mock = MockRevocationFeed()
    feed_mock.fail(500)
    feed = RevocationFeed("https://auth.test/v1/revocations", transport=feed_mock.transport,
                          retry_initial=0.01, retry_max=0.02)
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=mock_jwks.transport)
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=feed)
    try:
        response = flask_app(server).test_client().get(
            "/hello", headers=bearer(ISSUER.issue(subject="a")))
    finally:
        server.stop()
    assert response.status_code == 503


def test_the_feed_thread_starts_on_the_first_request(mock_jwks: MockJWKS) -> None:
    feed_mock = MockRevocationFeed([Revocation("sid", "s-9", time.time() + 900)])
    feed = RevocationFeed("https://auth.test/v1/revocations", transport=feed_mock.transport)
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=mock_jwks.transport)
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=feed)
    try:
        client = flask_app(server).test_client()
        ok = client.get("/hello", headers=bearer(ISSUER.issue(subject="a", claims={"sid": "s-1"})))
        gone = client.get("/hello", headers=bearer(ISSUER.issue(subject="a", claims={"sid": "s-9"})))
    finally:
        server.stop()
    assert (ok.status_code, gone.status_code) == (200, 401)


# ---- the decorator ---------------------------------------------------------------------------------


def test_the_decorator_refuses_a_missing_scope_with_403(client: FlaskClient) -> None:
    response = client.get("/write", headers=bearer(ISSUER.issue(subject="alice")))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].endswith('scope="items:write"')


def test_the_decorator_accepts_a_granted_scope(client: FlaskClient) -> None:
    token = ISSUER.issue(subject="alice", claims={"scope": "items:write"})
    assert client.get("/write", headers=bearer(token)).status_code == 200


def test_the_decorator_refuses_a_missing_role_with_403(client: FlaskClient) -> None:
    response = client.get("/admin", headers=bearer(ISSUER.issue(subject="a", claims={"role": "user"})))
    assert response.status_code == 403


def test_the_decorator_alone_verifies_the_token(server: ResourceServer) -> None:
    client = flask_app(server, middleware=False).test_client()
    assert client.get("/write").status_code == 401
    token = ISSUER.issue(subject="bob", claims={"scope": "items:write"})
    response = client.get("/write", headers=bearer(token))
    assert response.status_code == 200 and response.json == {"sub": "bob"}


def test_claims_of_reads_a_django_style_request() -> None:
    class DjangoRequest:
        def __init__(self) -> None:
            self.method = "GET"
            self.META: dict[str, Any] = {}

    request = DjangoRequest()
    with pytest.raises(MissingToken):
        claims_of(request)


# ---- over real HTTP ---------------------------------------------------------------------------------


def test_a_real_wsgi_server_answers_with_rfc6750_headers(server: ResourceServer) -> None:
    with serve_wsgi(flask_app(server)) as url:
        ok = httpx.get(f"{url}/hello", headers=bearer(ISSUER.issue(subject="erin")))
        missing = httpx.get(f"{url}/hello")
    assert ok.status_code == 200 and ok.json() == {"sub": "erin"}
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"'


def test_two_authorization_headers_joined_by_the_server_are_400(server: ResourceServer) -> None:
    token = ISSUER.issue(subject="erin")
    with serve_wsgi(flask_app(server)) as url:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
        connection.putrequest("GET", "/hello")
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Authorization", f"Bearer {token}")
        connection.endheaders()
        status = connection.getresponse().status
        connection.close()
    assert status == 400
