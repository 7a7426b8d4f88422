"""Attacks on ``GET /v1/auth/userinfo``: every forged, confused, expired or revoked token is a 401.

Through the ASGI app with a fake clock. The service signs with a key the test imported
(``keys import``'s code path), so the test can also forge *validly signed* tokens with the
wrong audience, issuer or type. Every refusal must be RFC 6750: 401 with
``WWW-Authenticate: Bearer realm=..., error="invalid_token"`` and the jwtwarden reason code.
The scanner's attack catalogue (``jwtwarden.testing``) is run against the endpoint too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from jwtwarden import Key, decode_unverified
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.keys import AsymmetricKey
from jwtwarden.service.app import ServiceState
from jwtwarden.testing import FakeClock, run_jwt_attacks_async
from tests.conftest import NOW
from tests.servicekit import ISSUER, PASSWORD, asgi_service, make_settings

pytestmark = pytest.mark.anyio

SERVICE_KEY = Key.generate("ES256")  # imported as the service's signing key
OTHER_KEY = Key.generate("ES256")  # a key the service has never seen
INVALID_TOKEN = re.compile(r'^Bearer realm="[^"]*", error="invalid_token", error_description="[^"]*"$')


@dataclass
class Api:
    app: Any
    client: httpx.AsyncClient
    state: ServiceState
    clock: FakeClock
    access_token: str
    refresh_token: str

    async def userinfo(self, token: str) -> httpx.Response:
        return await self.client.get("/v1/auth/userinfo", headers={"authorization": f"Bearer {token}"})

    def claims(self, **changes: Any) -> dict[str, Any]:
        """The claims of the session's access token, with ``changes`` (None deletes)."""
        payload: dict[str, Any] = json.loads(_b64d(self.access_token.split(".")[1]))
        payload.update(changes)
        return {k: v for k, v in payload.items() if v is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = json.loads(_b64d(self.access_token.split(".")[0]))
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    clock = FakeClock(NOW)
    async with asgi_service(make_settings(tmp_path), clock) as (app, client, state):
        await state.keyring.import_key(SERVICE_KEY)
        await state.accounts.add_user("alice", PASSWORD)
        login = await client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        pair = login.json()
        api = Api(app, client, state, clock, pair["access_token"], pair["refresh_token"])
        assert (await api.userinfo(api.access_token)).status_code == 200  # the setup is sound
        yield api


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def segment(value: dict[str, Any] | bytes) -> str:
    data = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url_encode(data)


def signed_with(key: Key, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


def hmac_signed(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def assert_refused(response: httpx.Response, *reasons: str) -> None:
    """401, an RFC 6750 invalid_token challenge, and (if given) one of the reason codes."""
    assert response.status_code == 401
    assert INVALID_TOKEN.match(response.headers["www-authenticate"]), response.headers["www-authenticate"]
    assert response.json()["error"] == "invalid_token"
    if reasons:
        assert response.json()["reason"] in reasons


# ---- signatures ---------------------------------------------------------------------------------


async def test_a_tampered_signature_is_refused(api: Api) -> None:
    head, body, signature = api.access_token.split(".")
    flipped = bytearray(_b64d(signature))
    flipped[-1] ^= 1
    assert_refused(await api.userinfo(f"{head}.{body}.{b64url_encode(bytes(flipped))}"), "bad_signature")


async def test_a_tampered_payload_is_refused(api: Api) -> None:
    _, _, signature = api.access_token.split(".")
    forged = f"{segment(api.header())}.{segment(api.claims(sub='admin'))}.{signature}"
    assert_refused(await api.userinfo(forged), "bad_signature")


async def test_a_stripped_signature_is_refused(api: Api) -> None:
    head, body, _ = api.access_token.split(".")
    assert_refused(await api.userinfo(f"{head}.{body}."))


async def test_a_token_signed_by_a_foreign_key_under_the_services_kid_is_refused(api: Api) -> None:
    forged = signed_with(OTHER_KEY, api.header(kid=SERVICE_KEY.kid), api.claims(sub="admin"))
    assert_refused(await api.userinfo(forged), "bad_signature")


# ---- alg: none ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "none ", ""])
@pytest.mark.parametrize("signature", ["", "original"])
async def test_alg_none_is_refused_however_it_is_spelled(api: Api, alg: str, signature: str) -> None:
    original = api.access_token.split(".")[2]
    forged = (f"{segment(api.header(alg=alg))}.{segment(api.claims(sub='admin'))}."
              f"{original if signature else ''}")
    assert_refused(await api.userinfo(forged))


async def test_a_header_without_alg_is_refused(api: Api) -> None:
    header = {k: v for k, v in api.header().items() if k != "alg"}
    assert_refused(await api.userinfo(f"{segment(header)}.{segment(api.claims())}."))


# ---- key confusion: HMAC keyed with the published public key ---------------------------------------


def public_key_forms(jwks: dict[str, Any]) -> dict[str, bytes]:
    """The service's published key in every form an HMAC-confused verifier might use."""
    jwk = next(k for k in jwks["keys"] if k["kid"] == SERVICE_KEY.kid)
    assert isinstance(SERVICE_KEY, AsymmetricKey)
    public = SERVICE_KEY.public_key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "pem": pem,
        "pem-without-newline": pem.rstrip(b"\n"),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "x962-point": public.public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint),
        "jwk-json": json.dumps(jwk, separators=(",", ":")).encode(),
        "jwk-json-sorted": json.dumps(jwk, sort_keys=True).encode(),
        "jwks-document": json.dumps(jwks).encode(),
    }


FORMS = ["pem", "pem-without-newline", "der", "x962-point", "jwk-json", "jwk-json-sorted", "jwks-document"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_keyed_with_the_jwks_public_key_is_refused(api: Api, form: str, alg: str) -> None:
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    secret = public_key_forms(jwks)[form]
    forged = hmac_signed(secret, api.header(alg=alg), api.claims(sub="admin"))
    assert_refused(await api.userinfo(forged), "alg_not_allowed")


# ---- time and revocation --------------------------------------------------------------------------


async def test_an_expired_token_is_refused(api: Api) -> None:
    api.clock.advance(900 + 30)  # the lifetime, then the verifier's leeway
    assert_refused(await api.userinfo(api.access_token), "expired")


async def test_a_token_issued_in_the_future_is_refused(api: Api) -> None:
    forged = signed_with(SERVICE_KEY, api.header(), api.claims(iat=int(NOW) + 3600, exp=int(NOW) + 4000))
    assert_refused(await api.userinfo(forged), "issued_in_future")


async def test_a_token_of_a_logged_out_session_is_refused(api: Api) -> None:
    logout = await api.client.post("/v1/auth/logout", headers={"authorization": f"Bearer {api.access_token}"})
    assert logout.status_code == 204
    assert_refused(await api.userinfo(api.access_token), "revoked")


async def test_a_token_of_a_session_revoked_for_reuse_is_refused(api: Api) -> None:
    first = await api.client.post("/v1/auth/refresh", json={"refresh_token": api.refresh_token})
    reuse = await api.client.post("/v1/auth/refresh", json={"refresh_token": api.refresh_token})
    assert reuse.json()["reason"] == "refresh_reused"
    assert_refused(await api.userinfo(first.json()["access_token"]), "revoked")
    assert_refused(await api.userinfo(api.access_token), "revoked")


async def test_a_validly_signed_token_without_exp_is_refused(api: Api) -> None:
    forged = signed_with(SERVICE_KEY, api.header(), api.claims(exp=None))
    assert_refused(await api.userinfo(forged), "missing_claim")


# ---- wrong audience, issuer, type ------------------------------------------------------------------


CLAIM_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "foreign-audience": ({"aud": "another-api"}, "bad_audience"),
    "audience-list-without-ours": ({"aud": ["another-api", "third"]}, "bad_audience"),
    "foreign-issuer": ({"iss": "https://evil.example"}, "bad_issuer"),
    "issuer-with-trailing-slash": ({"iss": ISSUER + "/"}, "bad_issuer"),
}


@pytest.mark.parametrize("case", list(CLAIM_CASES))
async def test_a_token_for_another_audience_or_issuer_signed_by_another_key_is_refused(
    api: Api, case: str
) -> None:
    changes, _ = CLAIM_CASES[case]
    forged = signed_with(OTHER_KEY, api.header(kid=OTHER_KEY.kid), api.claims(**changes))
    assert_refused(await api.userinfo(forged), "unknown_key")


@pytest.mark.parametrize("case", list(CLAIM_CASES))
async def test_a_token_for_another_audience_or_issuer_signed_by_the_services_key_is_refused(
    api: Api, case: str
) -> None:
    changes, reason = CLAIM_CASES[case]
    forged = signed_with(SERVICE_KEY, api.header(), api.claims(**changes))
    assert_refused(await api.userinfo(forged), reason)


@pytest.mark.parametrize("typ", ["JWT", "jwt", None, "application/at+jwt+x"])
async def test_a_validly_signed_token_that_is_not_an_access_token_is_refused(api: Api, typ: str | None) -> None:
    forged = signed_with(SERVICE_KEY, api.header(typ=typ), api.claims())
    assert_refused(await api.userinfo(forged), "bad_type")


# ---- kid and key-carrying headers --------------------------------------------------------------------


@pytest.mark.parametrize("kid", [
    "../../../../dev/null", "/dev/null", "' OR '1'='1", "x' UNION SELECT 'secret' --",
    "http://evil.example/jwks.json", "| cat /etc/passwd", "", "\u0000", 123, None, ["a"], {"k": 1},
])
async def test_kid_injection_is_refused(api: Api, kid: Any) -> None:
    header = api.header(kid=kid) if kid is not None else {k: v for k, v in api.header().items() if k != "kid"}
    forged = hmac_signed(b"", header | {"alg": "HS256"}, api.claims(sub="admin"))
    assert_refused(await api.userinfo(forged))
    resigned = signed_with(OTHER_KEY, header, api.claims(sub="admin"))
    assert_refused(await api.userinfo(resigned))


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u", "x5c"])
async def test_a_header_that_brings_its_own_key_is_refused(api: Api, name: str) -> None:
    values: dict[str, Callable[[], Any]] = {
        "jwk": lambda: OTHER_KEY.public().to_jwk(),
        "jku": lambda: "https://evil.example/jwks.json",
        "x5u": lambda: "https://evil.example/cert.pem",
        "x5c": lambda: ["MIIB"],
    }
    forged = signed_with(OTHER_KEY, api.header(kid=OTHER_KEY.kid, **{name: values[name]()}),
                         api.claims(sub="admin"))
    assert_refused(await api.userinfo(forged))


# ---- sessions made by a trusted backend ------------------------------------------------------------


@pytest.mark.parametrize("claim", ["sid", "scope"])
async def test_a_trusted_backend_cannot_set_the_claims_bound_to_the_session(
    api: Api, claim: str
) -> None:
    """A ``sid`` in the backend's claims would let access tokens outlive their session (revoking
    the family would not reach them), a ``scope`` would widen what the client may grant: both
    are the service's to set, and a request carrying either is refused without a session."""
    client, secret = await api.state.accounts.add_client("backend", {"sessions"})
    created = await api.client.post("/v1/sessions", auth=(client.id, secret),
                                    json={"subject": "ext-1", "claims": {claim: "chosen-by-backend"}})
    assert created.status_code == 400
    assert created.json()["error"] == "invalid_request"
    assert claim in created.json()["error_description"]
    plain = await api.client.post("/v1/sessions", auth=(client.id, secret),
                                  json={"subject": "ext-1", "claims": {"team": "blue"}})
    assert plain.status_code == 201
    assert decode_unverified(plain.json()["access_token"]).payload["sid"] != "chosen-by-backend"


# ---- the scanner's catalogue (jwtwarden.testing) ---------------------------------------------------


async def test_the_scanners_attack_catalogue_is_refused_with_401(api: Api) -> None:
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    results = await run_jwt_attacks_async(
        api.access_token, app=api.app, path="/v1/auth/userinfo", scheme="Bearer",
        public_key=jwks, signing_key=SERVICE_KEY, now=api.clock())
    accepted = [r.id for r in results if r.accepted]
    statuses = {r.status for r in results if r.outcome == "rejected"}
    assert len(results) > 30
    assert accepted == []
    assert statuses == {401}
