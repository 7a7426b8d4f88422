"""DPoP at resource servers (RFC 9449 section 7): ResourceServer and the ASGI, FastAPI and WSGI
integrations, in process (the processes are in tests/test_dpop_e2e.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jwtwarden import Claims, Issuer, Key
from jwtwarden.dpop import DPoPNonces, DPoPVerifier, create_proof
from jwtwarden.resource import fastapi as rs_fastapi
from jwtwarden.resource import wsgi as rs_wsgi
from jwtwarden.resource.asgi import BearerAuthMiddleware, claims_of
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.server import ResourceServer
from jwtwarden.testing import FakeClock, MockJWKS
from tests.conftest import AUD, ISS, NOW, keyset_for
from tests.dpop_corpus import REQUEST_CASES, Ctx, RequestCase

KEYS = keyset_for("ES256")
PUBLIC = "https://api.example.com/v1"  # behind a proxy that strips /v1
CLIENT_KEY = Key.generate("ES256")
THIEF_KEY = Key.generate("EdDSA")


def make_server(clock: FakeClock, **options: Any) -> ResourceServer:
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"],
                      transport=MockJWKS(KEYS).transport, clock=clock)
    options.setdefault("public_url", PUBLIC)
    return ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=None, clock=clock, **options)


def bound_token(clock: FakeClock, key: Key = CLIENT_KEY) -> str:
    return Issuer(KEYS, issuer=ISS, audience=AUD, clock=clock).issue(
        subject="alice", claims={"cnf": {"jkt": key.thumbprint()}})


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"sub": claims_of(request).sub})


def asgi_app(server: ResourceServer) -> Any:
    return Starlette(routes=[Route("/hello", hello, methods=["GET", "POST"])],
                     middleware=[Middleware(BearerAuthMiddleware, server=server)])


def fastapi_app(server: ResourceServer) -> Any:
    app = FastAPI()
    token = Depends(rs_fastapi.require_token(server))

    @app.api_route("/hello", methods=["GET", "POST"])
    async def hello_fastapi(claims: Claims = token) -> dict[str, Any]:
        return {"sub": claims.sub}

    return app


def wsgi_app(server: ResourceServer) -> Any:
    app = Flask(__name__)
    app.wsgi_app = rs_wsgi.WSGIBearerAuthMiddleware(app.wsgi_app, server)  # type: ignore[method-assign]

    @app.route("/hello", methods=["GET", "POST"])
    def hello_flask() -> dict[str, Any]:
        return {"sub": rs_wsgi.claims_of().sub}

    return app


APPS: dict[str, Callable[[ResourceServer], Any]] = {
    "asgi": asgi_app, "fastapi": fastapi_app, "wsgi": wsgi_app}


def send(kind: str, app: Any, method: str, path: str, headers: list[tuple[str, str]]) -> httpx.Response:
    transport: Any
    if kind == "wsgi":
        # a WSGI server joins a repeated header into one value (PEP 3333, as werkzeug and
        # gunicorn do); httpx's WSGI transport would keep only the last
        joined: dict[str, str] = {}
        for name, value in headers:
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        headers = list(joined.items())
        transport = httpx.WSGITransport(app=app)
        with httpx.Client(transport=transport, base_url="http://internal:8080") as http:
            return http.request(method, path, headers=headers)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://internal:8080") as http:
            return await http.request(method, path, headers=headers)

    return asyncio.run(call())


@pytest.fixture(params=sorted(APPS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def dpop_headers(token: str, proof: str) -> list[tuple[str, str]]:
    return [("Authorization", f"DPoP {token}"), ("DPoP", proof)]


def test_a_bound_token_with_its_proof_is_accepted(kind: str) -> None:
    clock = FakeClock(NOW)
    app = APPS[kind](make_server(clock))
    token = bound_token(clock)
    for method in ("GET", "POST"):
        proof = create_proof(CLIENT_KEY, method, PUBLIC + "/hello?x=1", access_token=token, clock=clock)
        response = send(kind, app, method, "/hello?x=1", dpop_headers(token, proof))
        assert response.status_code == 200, response.text
        assert response.json() == {"sub": "alice"}


def test_a_stolen_bound_token_is_refused_with_the_thiefs_own_proof(kind: str) -> None:
    clock = FakeClock(NOW)
    app = APPS[kind](make_server(clock))
    token = bound_token(clock)
    proof = create_proof(THIEF_KEY, "GET", PUBLIC + "/hello", access_token=token, clock=clock)
    response = send(kind, app, "GET", "/hello", dpop_headers(token, proof))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_dpop_proof"
    assert response.headers["www-authenticate"].startswith('DPoP realm="api", algs="ES256 EdDSA", '
                                                           'error="invalid_dpop_proof"')
    bearer = send(kind, app, "GET", "/hello", [("Authorization", f"Bearer {token}")])
    assert bearer.status_code == 401 and bearer.json()["error"] == "invalid_token"
    assert bearer.headers["www-authenticate"].startswith("DPoP ")


def test_a_proof_is_good_for_one_request_only(kind: str) -> None:
    clock = FakeClock(NOW)
    app = APPS[kind](make_server(clock))
    token = bound_token(clock)
    proof = create_proof(CLIENT_KEY, "GET", PUBLIC + "/hello", access_token=token, clock=clock)
    assert send(kind, app, "GET", "/hello", dpop_headers(token, proof)).status_code == 200
    again = send(kind, app, "GET", "/hello", dpop_headers(token, proof))
    assert again.status_code == 401 and again.json()["error"] == "invalid_dpop_proof"
    assert again.json()["error_description"] == "The DPoP proof was already used"


@pytest.mark.parametrize("case", REQUEST_CASES, ids=lambda c: c.name)
def test_corpus_request_is_refused(kind: str, case: RequestCase) -> None:
    clock = FakeClock(NOW)
    app = APPS[kind](make_server(clock))
    ctx = Ctx(key=CLIENT_KEY, other=THIEF_KEY, token=bound_token(clock), method="GET",
              url=PUBLIC + "/hello", now=NOW,
              extra={"bearer": Issuer(KEYS, issuer=ISS, audience=AUD, clock=clock).issue(subject="bob")})
    query = case.query(ctx)
    response = send(kind, app, "GET", "/hello" + (f"?{query}" if query else ""), case.headers(ctx))
    assert response.status_code == case.status, (case.cite, response.text)
    assert response.json()["error"] == (case.error or "unauthorized"), case.cite


def test_no_credentials_get_both_challenges_and_required_mode_only_dpop(kind: str) -> None:
    clock = FakeClock(NOW)
    allowed = send(kind, APPS[kind](make_server(clock)), "GET", "/hello", [])
    assert allowed.headers["www-authenticate"] == 'Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"'
    required_app = APPS[kind](make_server(clock, dpop="required"))
    required = send(kind, required_app, "GET", "/hello", [])
    assert required.status_code == 401
    assert required.headers["www-authenticate"] == 'DPoP realm="api", algs="ES256 EdDSA"'
    plain = Issuer(KEYS, issuer=ISS, audience=AUD, clock=clock).issue(subject="bob")
    bearer = send(kind, required_app, "GET", "/hello", [("Authorization", f"Bearer {plain}")])
    assert bearer.status_code == 401 and bearer.headers["www-authenticate"].startswith("DPoP ")


def test_a_nonce_is_asked_for_then_accepted(kind: str) -> None:
    clock = FakeClock(NOW)
    nonces = DPoPNonces(b"n" * 32, clock=clock)
    server = make_server(clock, dpop_verifier=DPoPVerifier(nonces=nonces, require_nonce=True, clock=clock))
    app = APPS[kind](server)
    token = bound_token(clock)
    first = send(kind, app, "GET", "/hello", dpop_headers(
        token, create_proof(CLIENT_KEY, "GET", PUBLIC + "/hello", access_token=token, clock=clock)))
    assert first.status_code == 401 and first.json()["error"] == "use_dpop_nonce"
    assert 'error="use_dpop_nonce"' in first.headers["www-authenticate"]
    nonce = first.headers["dpop-nonce"]
    second = send(kind, app, "GET", "/hello", dpop_headers(token, create_proof(
        CLIENT_KEY, "GET", PUBLIC + "/hello", access_token=token, nonce=nonce, clock=clock)))
    assert second.status_code == 200


def test_without_a_public_url_dpop_requests_are_refused_not_trusted_from_host(kind: str) -> None:
    clock = FakeClock(NOW)
    app = APPS[kind](make_server(clock, public_url=None))
    token = bound_token(clock)
    proof = create_proof(CLIENT_KEY, "GET", "http://internal:8080/hello", access_token=token, clock=clock)
    response = send(kind, app, "GET", "/hello", dpop_headers(token, proof))
    assert response.status_code == 401 and response.json()["error"] == "invalid_dpop_proof"


def test_configuration_is_checked_and_read_from_the_environment() -> None:
    with pytest.raises(ValueError, match="public_url"):
        make_server(FakeClock(NOW), dpop="required", public_url=None)
    with pytest.raises(ValueError, match="dpop must"):
        make_server(FakeClock(NOW), dpop="sometimes")
    with pytest.raises(ValueError, match="public URL"):
        make_server(FakeClock(NOW), public_url="https://api.example.com/?x=1")
    env = {"JWTWARDEN_JWKS_URL": "https://auth.test/jwks", "JWTWARDEN_ISSUER": ISS,
           "JWTWARDEN_AUDIENCE": AUD, "JWTWARDEN_REVOCATION_URL": "off",
           "JWTWARDEN_PUBLIC_URL": PUBLIC + "/", "JWTWARDEN_DPOP": "required",
           "JWTWARDEN_DPOP_NONCE_SECRET": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
    server = ResourceServer.from_env(env)
    assert server.dpop == "required" and server.public_url == PUBLIC
    assert server.dpop_verifier.require_nonce
    with pytest.raises(ValueError, match="NONCE_SECRET"):
        ResourceServer.from_env(env | {"JWTWARDEN_DPOP_NONCE_SECRET": "short"})
