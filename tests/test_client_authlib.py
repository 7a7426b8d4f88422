"""Interop: Authlib's httpx OAuth 2.0 clients against ``jwtwarden serve`` as a process.

A standard client library, unmodified: client_credentials with client_secret_basic
(``OAuth2Client`` and ``AsyncOAuth2Client``) and with private_key_jwt (Authlib's
``PrivateKeyJWT``), and the refresh_token grant (explicit and automatic refresh, public and
confidential clients, reuse refused). Authlib is a test-only dependency.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import authlib.deprecate  # noqa: F401 - its import-time filter must come before ours
import httpx
import pytest
from joserfc.jwk import ECKey

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns when it falls back to httpx: httpx is
    # what jwtwarden and its users run, so that is the client tested here.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign

from jwtwarden import Key, KeySet, decode_unverified
from jwtwarden.keys import AsymmetricKey
from tests.servicekit import PASSWORD, ServerProcess, add_user, running_server, server_env


@dataclass
class Service:
    server: ServerProcess
    secret_client: tuple[str, str]
    key_client: tuple[str, AsymmetricKey]
    refresher: tuple[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token_url(self) -> str:
        return self.server.url + "/v1/auth/token"

    def login(self) -> dict[str, Any]:
        response = httpx.post(self.url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def _clients_add(env: dict[str, str], *args: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "jwtwarden", "clients", "add", *args], env=env,
                         capture_output=True, check=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("authlib")
    key = Key.generate("ES256")
    assert isinstance(key, AsymmetricKey)
    jwks = tmp / "client.jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).public().to_jwks()))
    with running_server(server_env(tmp)) as server:
        add_user(server.env, "alice", scope="read write")
        secret = _clients_add(server.env, "reports", "--grant", "client_credentials", "--scope", "read write")
        keyed = _clients_add(server.env, "batch", "--grant", "client_credentials", "--scope", "read",
                             "--jwks", str(jwks))
        refresher = _clients_add(server.env, "bff", "--grant", "refresh_token")
        yield Service(server, (secret["client_id"], secret["client_secret"]), (keyed["client_id"], key),
                      (refresher["client_id"], refresher["client_secret"]))


def userinfo(service: Service, access_token: str) -> dict[str, Any]:
    response = httpx.get(service.url + "/v1/auth/userinfo", headers={"authorization": f"Bearer {access_token}"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


class ShortPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """The README's recipe: Authlib's PrivateKeyJWT with assertions valid 60 s, not an hour."""

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id,  # type: ignore[no-any-return]
                                    token_endpoint=token_endpoint, alg=self.alg, expires_in=60)


def _private(key: AsymmetricKey) -> ECKey:
    """The client's private key as Authlib wants it (a joserfc key object)."""
    return ECKey.import_key(key.to_pem(private=True))


# ---- client_credentials -----------------------------------------------------------------------


def test_oauth2client_client_credentials_with_client_secret_basic(service: Service) -> None:
    client_id, secret = service.secret_client
    with OAuth2Client(client_id, secret, scope="read") as client:
        token = client.fetch_token(service.token_url, grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "read" and "refresh_token" not in token
    claims = userinfo(service, token["access_token"])
    assert claims["sub"] == claims["client_id"] == client_id


@pytest.mark.anyio
async def test_async_oauth2client_client_credentials_with_client_secret_basic(service: Service) -> None:
    client_id, secret = service.secret_client
    async with AsyncOAuth2Client(client_id, secret) as client:
        token = await client.fetch_token(service.token_url, grant_type="client_credentials")
        # Authlib's own bearer auth on an API call
        response = await client.get(service.url + "/v1/auth/userinfo")
    assert token["scope"] == "read write" and response.json()["sub"] == client_id


def test_a_wrong_secret_is_invalid_client_for_authlib(service: Service) -> None:
    client_id, secret = service.secret_client
    with OAuth2Client(client_id, secret + "x") as client, pytest.raises(OAuthError) as refused:
        client.fetch_token(service.token_url, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


@pytest.mark.anyio
async def test_async_oauth2client_client_credentials_with_private_key_jwt(service: Service) -> None:
    client_id, key = service.key_client
    async with AsyncOAuth2Client(client_id, _private(key), token_endpoint_auth_method="private_key_jwt") as client:
        client.register_client_auth_method(ShortPrivateKeyJWT(service.token_url, alg="ES256"))
        first = await client.fetch_token(service.token_url, grant_type="client_credentials")
        second = await client.fetch_token(service.token_url, grant_type="client_credentials")
    assert userinfo(service, first["access_token"])["sub"] == client_id
    assert first["access_token"] != second["access_token"]  # a new assertion (new jti) each time


def test_oauth2client_with_private_key_jwt(service: Service) -> None:
    client_id, key = service.key_client
    with OAuth2Client(client_id, _private(key), token_endpoint_auth_method="private_key_jwt") as client:
        client.register_client_auth_method(ShortPrivateKeyJWT(service.token_url, alg="ES256"))
        token = client.fetch_token(service.token_url, grant_type="client_credentials")
    assert decode_unverified(token["access_token"]).payload["client_id"] == client_id


def test_authlibs_default_hour_long_assertion_is_refused_with_its_reason(service: Service) -> None:
    client_id, key = service.key_client
    with OAuth2Client(client_id, _private(key), token_endpoint_auth_method="private_key_jwt") as client:
        client.register_client_auth_method(PrivateKeyJWT(service.token_url, alg="ES256"))
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(service.token_url, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    answer = httpx.post(service.token_url, data={  # the same assertion, to read the reason
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": private_key_jwt_sign(_private(key), client_id=client_id,
                                                 token_endpoint=service.token_url, alg="ES256")})
    assert answer.status_code == 401 and answer.json()["reason"] == "assertion_lifetime"


# ---- refresh_token ------------------------------------------------------------------------------


def test_a_public_client_refreshes_with_the_refresh_token_grant(service: Service) -> None:
    pair = service.login()
    updates: list[dict[str, Any]] = []
    with OAuth2Client("my-cli", token=pair, token_endpoint_auth_method="none",
                      update_token=lambda token, refresh_token=None: updates.append(dict(token))) as client:
        token = client.refresh_token(service.token_url)
    assert token["refresh_token"] != pair["refresh_token"] and updates
    assert userinfo(service, token["access_token"])["scope"] == "read write"


def test_authlib_refreshes_an_expired_token_by_itself(service: Service) -> None:
    pair = {**service.login(), "expires_at": int(time.time()) - 10}  # Authlib sees it expired
    with OAuth2Client(token=pair, token_endpoint=service.token_url, token_endpoint_auth_method="none") as client:
        response = client.get(service.url + "/v1/auth/userinfo")
        assert response.status_code == 200
        assert client.token["refresh_token"] != pair["refresh_token"]


@pytest.mark.anyio
async def test_async_authlib_refreshes_once_for_many_concurrent_requests(service: Service) -> None:
    pair = {**service.login(), "expires_at": int(time.time()) - 10}
    async with AsyncOAuth2Client(token=pair, token_endpoint=service.token_url,
                                 token_endpoint_auth_method="none") as client:
        answers = await asyncio.gather(*(client.get(service.url + "/v1/auth/userinfo") for _ in range(8)))
        assert {a.status_code for a in answers} == {200}
        # the rotated chain is intact: no concurrent refresh looked like reuse
        await client.refresh_token(service.token_url)


def test_a_confidential_client_refreshes_with_its_credentials(service: Service) -> None:
    client_id, secret = service.refresher
    pair = service.login()
    with OAuth2Client(client_id, secret, token=pair) as client:
        token = client.refresh_token(service.token_url)
    assert token["refresh_token"] != pair["refresh_token"]


def test_refreshing_with_a_spent_token_is_invalid_grant_and_ends_the_session(service: Service) -> None:
    pair = service.login()
    with OAuth2Client(token=dict(pair), token_endpoint_auth_method="none") as client:
        newer = client.refresh_token(service.token_url)
        with pytest.raises(OAuthError) as refused:
            client.refresh_token(service.token_url, refresh_token=pair["refresh_token"])
        assert refused.value.error == "invalid_grant"
        with pytest.raises(OAuthError):  # the whole session was revoked
            client.refresh_token(service.token_url, refresh_token=newer["refresh_token"])


def test_the_metadata_tells_authlib_the_token_endpoint(service: Service) -> None:
    meta = httpx.get(service.url + "/.well-known/oauth-authorization-server").json()
    client_id, secret = service.secret_client
    with OAuth2Client(client_id, secret, token_endpoint=meta["token_endpoint"]) as client:
        token = client.fetch_token(grant_type="client_credentials")
    assert "client_credentials" in meta["grant_types_supported"] and token["access_token"]


def test_the_test_dependency_is_pinned() -> None:
    constraints = (Path(__file__).resolve().parents[1] / "constraints.txt").read_text()
    import authlib

    assert f"Authlib=={authlib.__version__}" in constraints
