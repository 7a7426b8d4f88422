"""DPoP at the token service (RFC 9449 sections 5, 6, 8): bound tokens from login, refresh and
the token endpoint, refresh families bound to the key, introspection, userinfo, metadata."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwtwarden import Key
from jwtwarden.dpop import create_proof
from jwtwarden.service.app import ServiceState
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.dpop_corpus import PROOF_CASES, Ctx, ProofCase
from tests.servicekit import ISSUER, PASSWORD, asgi_client, make_settings, read_families

pytestmark = pytest.mark.anyio

KEY = Key.generate("ES256")
THIEF = Key.generate("ES256")
LOGIN = ISSUER + "/v1/auth/login"
REFRESH = ISSUER + "/v1/auth/refresh"
TOKEN = ISSUER + "/v1/auth/token"
USERINFO = ISSUER + "/v1/auth/userinfo"


class Api:
    def __init__(self, client: httpx.AsyncClient, state: ServiceState, clock: FakeClock,
                 path: Path) -> None:
        self.client, self.state, self.clock, self.db = client, state, clock, path

    def proof(self, method: str, url: str, key: Key = KEY, **kw: Any) -> str:
        return create_proof(key, method, url, clock=self.clock, **kw)

    async def login(self, key: Key | None = KEY) -> httpx.Response:
        headers = {"DPoP": self.proof("POST", LOGIN, key)} if key else {}
        return await self.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD},
                                      headers=headers)

    async def refresh(self, refresh_token: str, key: Key | None = KEY) -> httpx.Response:
        headers = {"DPoP": self.proof("POST", REFRESH, key)} if key else {}
        return await self.client.post("/v1/auth/refresh", json={"refresh_token": refresh_token},
                                      headers=headers)


async def _api(tmp_path: Path, **settings: Any) -> AsyncIterator[Api]:
    clock = FakeClock(NOW)
    async with asgi_client(make_settings(tmp_path, **settings), clock) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        yield Api(client, state, clock, tmp_path / "data" / "jwtwarden.db")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async for value in _api(tmp_path):
        yield value


async def test_login_with_a_proof_gives_a_dpop_bound_token(api: Api) -> None:
    response = await api.login()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = api.state.keyring.verifier(allow_cnf=True).verify(body["access_token"])
    assert claims["cnf"] == {"jkt": KEY.thumbprint()}
    plain = (await api.login(key=None)).json()
    assert plain["token_type"] == "Bearer"


async def test_userinfo_accepts_the_bound_token_only_with_a_proof_of_its_key(api: Api) -> None:
    token = (await api.login()).json()["access_token"]
    ok = await api.client.get("/v1/auth/userinfo", headers={
        "Authorization": f"DPoP {token}", "DPoP": api.proof("GET", USERINFO, access_token=token)})
    assert ok.status_code == 200 and ok.json()["cnf"]["jkt"] == KEY.thumbprint()
    as_bearer = await api.client.get("/v1/auth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401 and as_bearer.json()["reason"] == "sender_constrained"
    assert as_bearer.headers["www-authenticate"].startswith('DPoP realm="jwtwarden"')
    stolen = await api.client.get("/v1/auth/userinfo", headers={
        "Authorization": f"DPoP {token}", "DPoP": api.proof("GET", USERINFO, THIEF, access_token=token)})
    assert stolen.status_code == 401 and stolen.json()["error"] == "invalid_dpop_proof"
    assert stolen.json()["reason"] == "key_mismatch"
    no_proof = await api.client.get("/v1/auth/userinfo", headers={"Authorization": f"DPoP {token}"})
    assert no_proof.status_code == 401 and no_proof.json()["error"] == "invalid_dpop_proof"
    bare = await api.client.get("/v1/auth/userinfo")
    assert bare.headers["www-authenticate"] == 'Bearer realm="jwtwarden", DPoP realm="jwtwarden", algs="ES256 EdDSA"'


async def test_the_refresh_family_is_bound_and_a_wrong_proof_changes_nothing(api: Api) -> None:
    pair = (await api.login()).json()
    before = read_families(api.db, NOW)
    for key, status, error, reason in ((None, 400, "invalid_dpop_proof", "missing"),
                                       (THIEF, 400, "invalid_grant", "refresh_key_mismatch")):
        refused = await api.refresh(pair["refresh_token"], key)
        assert (refused.status_code, refused.json()["error"], refused.json()["reason"]) == (
            status, error, reason)
    assert read_families(api.db, NOW) == before  # neither rotated nor revoked
    rotated = await api.refresh(pair["refresh_token"])
    assert rotated.status_code == 200 and rotated.json()["token_type"] == "DPoP"
    new = api.state.keyring.verifier(allow_cnf=True).verify(rotated.json()["access_token"])
    assert new["cnf"]["jkt"] == KEY.thumbprint()
    # the spent token, replayed by a thief without the key, is refused before reuse handling:
    # the session survives (a thief cannot even get it revoked)
    replay = await api.refresh(pair["refresh_token"], THIEF)
    assert replay.json()["reason"] == "refresh_key_mismatch"
    (family,) = read_families(api.db, NOW).values()
    assert family.revoked_reason is None and family.generation == 1


async def test_the_token_endpoint_binds_refresh_and_client_credentials(api: Api) -> None:
    pair = (await api.login()).json()
    form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    refused = await api.client.post("/v1/auth/token", data=form, headers={"DPoP": api.proof("POST", TOKEN, THIEF)})
    assert refused.status_code == 400 and refused.json()["reason"] == "refresh_key_mismatch"
    ok = await api.client.post("/v1/auth/token", data=form, headers={"DPoP": api.proof("POST", TOKEN)})
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"
    client, secret = await api.state.accounts.add_client("svc", grants={"client_credentials"},
                                                         dpop_bound_access_tokens=True)
    basic = {"Authorization": "Basic " + base64.b64encode(f"{client.id}:{secret}".encode()).decode()}
    cc = {"grant_type": "client_credentials"}
    without = await api.client.post("/v1/auth/token", data=cc, headers=basic)
    assert without.status_code == 400 and without.json()["error"] == "invalid_dpop_proof"
    bound = await api.client.post("/v1/auth/token", data=cc, headers=basic | {"DPoP": api.proof("POST", TOKEN)})
    assert bound.status_code == 200 and bound.json()["token_type"] == "DPoP"
    # introspection (RFC 9449 section 6.2): cnf and token_type DPoP
    intro_client, intro_secret = await api.state.accounts.add_client("rs", {"introspect"})
    intro = await api.client.post("/v1/auth/introspect", data={"token": bound.json()["access_token"]},
                                  auth=(intro_client.id, intro_secret))
    assert intro.json()["active"] is True and intro.json()["token_type"] == "DPoP"
    assert intro.json()["cnf"] == {"jkt": KEY.thumbprint()}


async def test_metadata_lists_the_proof_algorithms_and_cors_exposes_the_nonce(api: Api) -> None:
    meta = (await api.client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]


@pytest.mark.parametrize("case", PROOF_CASES, ids=lambda c: c.name)
async def test_corpus_proof_is_refused_at_login(api: Api, case: ProofCase) -> None:
    ctx = Ctx(key=KEY, other=THIEF, token="unused", method="POST", url=LOGIN, now=api.clock())
    headers = [("DPoP", value) for value in case.build(ctx)] or [("DPoP", "")]
    response = await api.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD},
                                     headers=headers)
    assert response.status_code == 400, case.cite
    assert response.json()["error"] == "invalid_dpop_proof", case.cite


async def test_required_mode_and_nonces(tmp_path: Path) -> None:
    async for api in _api(tmp_path, dpop="required", dpop_nonce=True):
        without = await api.login(key=None)
        assert without.status_code == 400 and without.json()["error"] == "invalid_dpop_proof"
        asked = await api.login()
        assert asked.status_code == 400 and asked.json()["error"] == "use_dpop_nonce"
        nonce = asked.headers["dpop-nonce"]
        headers = {"DPoP": api.proof("POST", LOGIN, nonce=nonce)}
        ok = await api.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD},
                                   headers=headers)
        assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"
        preflight = await api.client.options("/v1/auth/token", headers={
            "Origin": ISSUER, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "dpop, content-type"})
        assert preflight.status_code == 204
        cors = await api.client.get("/healthz", headers={"Origin": ISSUER})
        assert "DPoP-Nonce" in cors.headers["access-control-expose-headers"]
