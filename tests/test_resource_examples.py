"""The two example resource servers run as documented: configured by environment only."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from jwtwarden import Issuer
from jwtwarden.testing import MockJWKS, MockRevocationFeed
from tests.conftest import AUD, ISS, keyset_for
from tests.helpers_http import serve_asgi, serve_wsgi

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KEYS = keyset_for("ES256")
ISSUER = Issuer(KEYS, issuer=ISS, audience=AUD)


class AuthEndpoints:
    """The token service's public side: /.well-known/jwks.json and /v1/revocations."""

    def __init__(self) -> None:
        self.jwks = MockJWKS(KEYS)
        self.feed = MockRevocationFeed()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        target = self.feed if scope.get("path") == "/v1/revocations" else self.jwks
        await target(scope, receive, send)


@pytest.fixture(scope="module")
def auth_url() -> Iterator[str]:
    with serve_asgi(AuthEndpoints(), lifespan="off", timeout_graceful=0.2) as url:
        yield url


def load_example(name: str, auth_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for variable in list(os.environ):
        if variable.startswith("JWTWARDEN_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("JWTWARDEN_JWKS_URL", f"{auth_url}/.well-known/jwks.json")
    monkeypatch.setenv("JWTWARDEN_ISSUER", ISS)
    monkeypatch.setenv("JWTWARDEN_AUDIENCE", AUD)
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_fastapi_example_greets_the_tokens_subject(auth_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("fastapi_resource", auth_url, monkeypatch)
    with serve_asgi(example.app, lifespan="on", timeout_graceful=0.2) as url:
        hello = httpx.get(f"{url}/hello", headers=bearer(ISSUER.issue(subject="alice")))
        anonymous = httpx.get(f"{url}/hello")
    assert hello.status_code == 200 and hello.json() == {"sub": "alice"}
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")


def test_the_flask_example_greets_the_tokens_subject(auth_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("flask_resource", auth_url, monkeypatch)
    try:
        with serve_wsgi(example.app) as url:
            hello = httpx.get(f"{url}/hello", headers=bearer(ISSUER.issue(subject="bob")))
            anonymous = httpx.get(f"{url}/hello")
    finally:
        example.server.stop()
    assert hello.status_code == 200 and hello.json() == {"sub": "bob"}
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("name", ["fastapi_resource", "flask_resource"])
def test_an_example_without_its_environment_refuses_to_start(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWTWARDEN_JWKS_URL", raising=False)
    spec = importlib.util.spec_from_file_location(f"example_{name}_bare", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    with pytest.raises(ValueError, match="JWTWARDEN_JWKS_URL"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))

