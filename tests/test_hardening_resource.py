"""Issue #11 item 16: a resource server says why it refused a token.

The three integrations (ASGI middleware, FastAPI dependency, WSGI middleware) run under real
HTTP servers on loopback. For each way a token fails, each answers the same: a fixed, safe
``error_description`` in ``WWW-Authenticate`` (RFC 6750 section 3) and in a flat body
``{"error", "error_description"}``; the operator's log gets the stable code, structured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask
from starlette.responses import JSONResponse

from jwtwarden import Claims, Issuer, KeySet
from jwtwarden.resource.asgi import BearerAuthMiddleware
from jwtwarden.resource.fastapi import require_token
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.server import ResourceServer
from jwtwarden.resource.wsgi import WSGIBearerAuthMiddleware, claims_of
from jwtwarden.revocation import Revocation, RevocationSet
from jwtwarden.testing import MockJWKS
from tests.conftest import AUD, ISS, keyset_for
from tests.helpers_http import serve_asgi, serve_wsgi

KEYS = keyset_for("ES256")
GOOD = Issuer(KEYS, issuer=ISS, audience=AUD)
REVOKED = RevocationSet()


def _tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def _revoked() -> str:
    issued = GOOD.issue_token("mallory")
    REVOKED.add(Revocation("jti", issued.jti, issued.exp + 60))
    return issued.token


CASES: dict[str, tuple[Any, str]] = {  # code -> (make the token, what the client is told)
    "expired": (lambda: Issuer(KEYS, issuer=ISS, audience=AUD, clock=lambda: time.time() - 3600)
                .issue("alice"), "The access token expired"),
    "bad_audience": (lambda: GOOD.issue("alice", audience="another-api"),
                     "The access token is not meant for this audience"),
    "bad_issuer": (lambda: Issuer(KEYS, issuer="https://evil.example", audience=AUD).issue("alice"),
                   "The access token is from another issuer"),
    "bad_signature": (lambda: _tampered(GOOD.issue("alice")), "The access token's signature is invalid"),
    "unknown_key": (lambda: Issuer(KeySet.generate("ES256"), issuer=ISS, audience=AUD).issue("alice"),
                    "The access token is signed with an unknown key"),
    "malformed": (lambda: "a.b.c", "The access token is malformed"),
    "revoked": (_revoked, "The access token has been revoked"),
}


def _server() -> ResourceServer:
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=MockJWKS(KEYS).transport)
    return ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=REVOKED)


def _asgi_app() -> Any:
    async def hello(scope: Any, receive: Any, send: Any) -> None:
        await JSONResponse({"ok": True})(scope, receive, send)

    return BearerAuthMiddleware(hello, _server())


def _fastapi_app() -> FastAPI:
    app = FastAPI()
    dependency = require_token(_server())

    @app.get("/hello")
    async def hello(claims: Claims = Depends(dependency)) -> dict[str, Any]:  # noqa: B008 - local, eager default
        return {"sub": claims.sub}

    return app


def _flask_app() -> Flask:
    app = Flask(__name__)
    app.wsgi_app = WSGIBearerAuthMiddleware(app.wsgi_app, _server())  # type: ignore[method-assign]

    @app.get("/hello")
    def hello() -> dict[str, Any]:
        return {"sub": claims_of().sub}

    return app


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        yield {
            "asgi": stack.enter_context(serve_asgi(_asgi_app(), lifespan="off", timeout_graceful=0.2)),
            "fastapi": stack.enter_context(serve_asgi(_fastapi_app(), lifespan="off", timeout_graceful=0.2)),
            "wsgi": stack.enter_context(serve_wsgi(_flask_app())),
        }


@pytest.mark.parametrize("code", list(CASES))
def test_every_integration_says_why_a_token_was_refused(
        servers: dict[str, str], code: str, caplog: pytest.LogCaptureFixture) -> None:
    make, description = CASES[code]
    token = make()
    caplog.set_level(logging.INFO, logger="jwtwarden.resource")
    answers = {kind: httpx.get(url + "/hello", headers={"authorization": f"Bearer {token}"})
               for kind, url in servers.items()}
    for kind, response in answers.items():
        assert response.status_code == 401, kind
        assert response.headers["www-authenticate"] == (
            f'Bearer realm="api", error="invalid_token", error_description="{description}"'), kind
        assert response.headers["content-type"].startswith("application/json"), kind
        assert response.json() == {"error": "invalid_token", "error_description": description}, kind
    refusals = [r for r in caplog.records if getattr(r, "event", None) == "token_refused"]
    assert [(r.levelno, r.reason, r.status) for r in refusals] == [  # type: ignore[attr-defined]
        (logging.INFO, code, 401)] * 3
    assert all(code in r.getMessage() for r in refusals)
    assert not any(token in r.getMessage() or token in str(r.__dict__) for r in caplog.records)


def test_the_fastapi_body_is_flat_for_every_refusal(servers: dict[str, str]) -> None:
    url = servers["fastapi"] + "/hello"
    missing = httpx.get(url)
    bad_header = httpx.get(url, headers={"authorization": "Bearer a b"})
    assert missing.status_code == 401 and missing.json() == {
        "error": "unauthorized", "error_description": "An access token is required"}
    assert bad_header.status_code == 400 and bad_header.json() == {
        "error": "invalid_request", "error_description": "The request is malformed"}


def test_a_missing_claim_is_named_in_the_description() -> None:
    from jwtwarden.errors import MissingClaim

    denial = _server().denial(MissingClaim("tenant"))
    assert denial.description == "The access token lacks a required claim (tenant)"
    long_name = _server().denial(MissingClaim("x" * 40 + '"'))
    assert long_name.description == "The access token lacks a required claim"
