"""RFC 7009 revocation and RFC 7662 introspection, as a client that is not the token's owner
would try them (issue #11 item 7).

- RFC 7009 section 2.1: an authenticated client may revoke only tokens issued to it; any
  other request is refused (400 ``unauthorized_client``) and the token lives on. Callers
  without credentials keep the documented rule: whoever holds a token may revoke it.
- RFC 7009 section 2.1 / RFC 7662 section 2.1: ``token_type_hint`` is only a hint; a token
  not found under the hinted type is looked up under the other one.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwtwarden.service.app import ServiceState
from tests.servicekit import PASSWORD, asgi_client, make_settings

pytestmark = pytest.mark.anyio


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def password_login(client: httpx.AsyncClient, state: ServiceState) -> dict[str, Any]:
    if await state.accounts.get_user("alice") is None:
        await state.accounts.add_user("alice", PASSWORD)
    response = await client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def backend_session(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/v1/sessions", headers=auth, json={"subject": "ext-7"})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def refreshes(client: httpx.AsyncClient, refresh_token: str) -> bool:
    response = await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
    return response.status_code == 200


async def accepted(client: httpx.AsyncClient, access_token: str) -> bool:
    return (await client.get("/v1/auth/userinfo", headers=bearer(access_token))).status_code == 200


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
async def test_a_client_cannot_revoke_a_token_issued_to_another_client(
    tmp_path: Path, database_url: str, kind: str
) -> None:
    async with asgi_client(make_settings(tmp_path, database_url)) as (client, state):
        owner, owner_secret = await state.accounts.add_client("owner", {"sessions"})
        other, other_secret = await state.accounts.add_client("other", {"sessions", "introspect"})
        pair = await backend_session(client, basic(owner.id, owner_secret))
        response = await client.post("/v1/auth/revoke", headers=basic(other.id, other_secret),
                                     data={"token": pair[kind], "token_type_hint": kind})
        still_alive = (await accepted(client, pair["access_token"])
                       and await refreshes(client, pair["refresh_token"]))
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert response.headers["cache-control"] == "no-store"
    assert still_alive


async def test_a_client_cannot_revoke_a_users_password_login_either(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        other, secret = await state.accounts.add_client("other", {"introspect"})
        pair = await password_login(client, state)
        response = await client.post("/v1/auth/revoke", headers=basic(other.id, secret),
                                     data={"token": pair["refresh_token"]})
        alive = await refreshes(client, pair["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    assert alive


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
async def test_the_owning_client_revokes_its_own_token(tmp_path: Path, kind: str) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        owner, secret = await state.accounts.add_client("owner", {"sessions"})
        pair = await backend_session(client, basic(owner.id, secret))
        response = await client.post("/v1/auth/revoke", headers=basic(owner.id, secret),
                                     data={"token": pair[kind]})
        alive = await accepted(client, pair["access_token"])
    assert response.status_code == 200 and not alive


async def test_without_credentials_whoever_holds_a_token_may_still_revoke_it(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        owner, secret = await state.accounts.add_client("owner", {"sessions"})
        pair = await backend_session(client, basic(owner.id, secret))
        response = await client.post("/v1/auth/revoke", data={"token": pair["refresh_token"]})
        alive = await refreshes(client, pair["refresh_token"])
    assert response.status_code == 200 and not alive


async def test_wrong_client_credentials_are_401_and_revoke_nothing(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        owner, _ = await state.accounts.add_client("owner", {"sessions"})
        pair = await password_login(client, state)
        response = await client.post("/v1/auth/revoke", headers=basic(owner.id, "wrong"),
                                     data={"token": pair["refresh_token"]})
        alive = await refreshes(client, pair["refresh_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert alive


async def test_a_refresh_token_sent_with_the_access_token_hint_is_still_revoked(
    tmp_path: Path, database_url: str
) -> None:
    async with asgi_client(make_settings(tmp_path, database_url)) as (client, state):
        pair = await password_login(client, state)
        response = await client.post("/v1/auth/revoke", data={
            "token": pair["refresh_token"], "token_type_hint": "access_token"})
        refused = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        access_alive = await accepted(client, pair["access_token"])
    assert response.status_code == 200
    assert refused.status_code == 400 and refused.json()["reason"] == "refresh_revoked"
    assert not access_alive  # the session's access token dies with it


async def test_an_access_token_sent_with_the_refresh_token_hint_is_still_revoked(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = await password_login(client, state)
        response = await client.post("/v1/auth/revoke", data={
            "token": pair["access_token"], "token_type_hint": "refresh_token"})
        alive = await accepted(client, pair["access_token"])
    assert response.status_code == 200 and not alive


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
async def test_introspection_with_the_wrong_hint_still_finds_the_token(tmp_path: Path, kind: str) -> None:
    wrong = {"refresh_token": "access_token", "access_token": "refresh_token"}[kind]
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        api, secret = await state.accounts.add_client("rs", {"introspect"})
        pair = await password_login(client, state)
        answer = await client.post("/v1/auth/introspect", headers=basic(api.id, secret),
                                   data={"token": pair[kind], "token_type_hint": wrong})
    assert answer.status_code == 200
    assert answer.json()["active"] is True and answer.json()["token_type"] == kind
