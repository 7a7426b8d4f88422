"""``POST /v1/auth/token``: client_credentials (RFC 6749 4.4), refresh_token (section 6),
client_secret_basic and private_key_jwt (RFC 7523 2.2), errors per section 5.2.

Through the ASGI app with a fake clock, on SQLite and PostgreSQL. Written as the attacker:
replayed assertions (one at a time and in a concurrent burst), ``alg: none``, HS256 keyed
with the client's public key, assertions for another server, too long-lived, with ``iss`` not
``sub``, one client's assertion for another, grants and scopes a client does not hold, wrong
secrets and repeated form parameters.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from jwtwarden import Issuer, Key, KeySet, Verifier, decode_unverified
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.keys import AsymmetricKey
from jwtwarden.service.app import ServiceState
from jwtwarden.service.sessions.accounts import Client
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import ISSUER, PASSWORD, asgi_service, make_settings

pytestmark = pytest.mark.anyio

TOKEN_URL = ISSUER + "/v1/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"content-type": "application/x-www-form-urlencoded"}
CLIENT_KEY = Key.generate("ES256")
OTHER_CLIENT_KEY = Key.generate("ES256")


@dataclass
class Api:
    client: httpx.AsyncClient
    state: ServiceState
    clock: FakeClock

    async def token(self, form: dict[str, str] | list[tuple[str, str]], *,
                    auth: tuple[str, str] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        # encoded by hand: a list may repeat a parameter, which httpx's data= would not send
        return await self.client.post("/v1/auth/token", content=urlencode(form),
                                      auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                                      headers={**FORM, **(headers or {})})

    async def secret_client(self, name: str = "reports", **options: Any) -> tuple[Client, str]:
        options.setdefault("grants", {"client_credentials"})
        return await self.state.accounts.add_client(name, **options)

    async def key_client(self, name: str = "batch", key: Key = CLIENT_KEY, **options: Any) -> Client:
        options.setdefault("grants", {"client_credentials"})
        options.setdefault("scope", "orders:read")
        jwks = json.dumps(KeySet([key]).public().to_jwks())
        return await self.state.accounts.add_client_with_keys(name, jwks=jwks, **options)

    def verify(self, token: str, audience: str = "api") -> dict[str, Any]:
        keys = self.state.keyring.public_keyset()
        verifier = Verifier(keys, issuer=ISSUER, audience=audience, algorithms=["ES256"],
                            typ="at+jwt", clock=self.clock)
        return verifier.verify(token).to_dict()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The service on SQLite (tests whose outcome the database cannot change)."""
    clock = FakeClock(NOW)
    async with asgi_service(make_settings(tmp_path), clock) as (_, client, state):
        yield Api(client, state, clock)


@pytest.fixture
async def db_api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    """The service on SQLite and on PostgreSQL (replays, rotation, garbage collection)."""
    clock = FakeClock(NOW)
    async with asgi_service(make_settings(tmp_path, database_url), clock) as (_, client, state):
        yield Api(client, state, clock)


def assertion(client_id: str, key: Key = CLIENT_KEY, *, clock: FakeClock, lifetime: int = 60,
              audience: str = TOKEN_URL, issuer: str | None = None, subject: str | None = None,
              typ: str = "JWT") -> str:
    """A client assertion as RFC 7523 section 3 describes it (iss = sub = the client id)."""
    signer = Issuer(key, issuer=issuer or client_id, audience=audience, lifetime=lifetime, typ=typ,
                    clock=clock, unsafe_allow_long_lifetime=True)
    return signer.issue(subject or client_id)


def with_assertion(token: str, **form: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": token, **form}


def segment(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def refused(response: httpx.Response, error: str, status: int = 400, reason: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="jwtwarden"'
    if reason is not None:
        assert response.json().get("reason") == reason, response.text


# ---- client_credentials with client_secret_basic --------------------------------------------


async def test_client_credentials_issue_a_token_for_the_client_itself(db_api: Api) -> None:
    client, secret = await db_api.secret_client(scope="orders:read orders:write", audience="orders-api")
    response = await db_api.token({"grant_type": "client_credentials"}, auth=(client.id, secret))
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert "refresh_token" not in body and body["scope"] == "orders:read orders:write"
    claims = db_api.verify(body["access_token"], audience="orders-api")
    assert claims["sub"] == client.id and claims["client_id"] == client.id
    assert claims["scope"] == "orders:read orders:write" and claims["aud"] == "orders-api"
    assert "sid" not in claims and claims["exp"] == int(NOW) + 900
    assert decode_unverified(body["access_token"]).header["typ"] == "at+jwt"


async def test_without_a_registered_audience_the_token_is_for_the_services_audience(api: Api) -> None:
    client, secret = await api.secret_client()
    response = await api.token({"grant_type": "client_credentials"}, auth=(client.id, secret))
    claims = api.verify(response.json()["access_token"])
    assert claims["aud"] == "api" and "scope" not in claims and "scope" not in response.json()


async def test_the_requested_scope_narrows_the_allowed_one(api: Api) -> None:
    client, secret = await api.secret_client(scope="orders:read orders:write")
    response = await api.token({"grant_type": "client_credentials", "scope": "orders:read"},
                               auth=(client.id, secret))
    assert response.json()["scope"] == "orders:read"
    assert api.verify(response.json()["access_token"])["scope"] == "orders:read"


@pytest.mark.parametrize("scope", ["orders:delete", "orders:read admin", "", "orders:read  x", 'a"b'])
async def test_a_scope_outside_the_allowed_or_malformed_is_invalid_scope(api: Api, scope: str) -> None:
    client, secret = await api.secret_client(scope="orders:read orders:write")
    response = await api.token({"grant_type": "client_credentials", "scope": scope}, auth=(client.id, secret))
    refused(response, "invalid_scope")


async def test_a_client_without_the_grant_is_unauthorized_client(api: Api) -> None:
    client, secret = await api.state.accounts.add_client("backend", {"sessions"})
    refused(await api.token({"grant_type": "client_credentials"}, auth=(client.id, secret)),
            "unauthorized_client")
    refresher, secret2 = await api.state.accounts.add_client("refresher", grants={"refresh_token"})
    refused(await api.token({"grant_type": "client_credentials"}, auth=(refresher.id, secret2)),
            "unauthorized_client")


async def test_a_wrong_secret_is_a_401_with_a_basic_challenge(api: Api) -> None:
    client, secret = await api.secret_client()
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    refused(await api.token({"grant_type": "client_credentials"}, auth=(client.id, wrong)), "invalid_client", 401)
    refused(await api.token({"grant_type": "client_credentials"}, auth=("jwc_nobody", secret)),
            "invalid_client", 401)
    refused(await api.token({"grant_type": "client_credentials"}, auth=(client.id, "")), "invalid_client", 401)


@pytest.mark.parametrize("header", ["Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Basic " + base64.b64encode(b"\xff:\xfe").decode(), "Digest x"])
async def test_an_authorization_header_that_is_not_basic_credentials_is_invalid_client(api: Api, header: str) -> None:
    refused(await api.token({"grant_type": "client_credentials"}, headers={"authorization": header}),
            "invalid_client", 401)


async def test_basic_credentials_are_form_urlencoded_first(api: Api) -> None:
    client, secret = await api.secret_client()
    encoded = base64.b64encode(f"{client.id}:{secret}".replace("_", "%5F").encode()).decode()
    response = await api.token({"grant_type": "client_credentials"}, headers={"authorization": f"Basic {encoded}"})
    assert response.status_code == 200, response.text


async def test_client_credentials_without_client_authentication_is_invalid_client(api: Api) -> None:
    refused(await api.token({"grant_type": "client_credentials"}), "invalid_client", 401)
    client, _ = await api.secret_client()
    refused(await api.token({"grant_type": "client_credentials", "client_id": client.id}), "invalid_client", 401)


async def test_client_secret_post_is_refused_even_beside_valid_basic_credentials(api: Api) -> None:
    client, secret = await api.secret_client()
    refused(await api.token({"grant_type": "client_credentials", "client_id": client.id,
                             "client_secret": secret}), "invalid_client", 401)
    refused(await api.token({"grant_type": "client_credentials", "client_secret": secret},
                            auth=(client.id, secret)), "invalid_client", 401)


async def test_a_client_id_parameter_must_name_the_basic_authenticated_client(api: Api) -> None:
    client, secret = await api.secret_client()
    other, _ = await api.secret_client("other")
    refused(await api.token({"grant_type": "client_credentials", "client_id": other.id},
                            auth=(client.id, secret)), "invalid_client", 401)
    response = await api.token({"grant_type": "client_credentials", "client_id": client.id},
                               auth=(client.id, secret))
    assert response.status_code == 200


async def test_a_disabled_client_cannot_authenticate(api: Api) -> None:
    from jwtwarden.service.storage.schema import clients

    client, secret = await api.secret_client()
    async with api.state.db.transaction() as conn:
        await conn.execute(clients.update().where(clients.c.id == client.id).values(disabled=True))
    refused(await api.token({"grant_type": "client_credentials"}, auth=(client.id, secret)), "invalid_client", 401)


# ---- the request itself -----------------------------------------------------------------------


@pytest.mark.parametrize("form", [
    [("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
    [("grant_type", "client_credentials"), ("scope", "orders:read"), ("scope", "orders:write")],
    [("grant_type", "refresh_token"), ("refresh_token", "a"), ("refresh_token", "b")],
])
async def test_a_repeated_parameter_is_invalid_request(api: Api, form: list[tuple[str, str]]) -> None:
    client, secret = await api.secret_client(scope="orders:read orders:write")
    refused(await api.token(form, auth=(client.id, secret)), "invalid_request")


@pytest.mark.parametrize("grant", ["password", "authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                   "CLIENT_CREDENTIALS"])
async def test_other_grant_types_are_unsupported(api: Api, grant: str) -> None:
    client, secret = await api.secret_client()
    refused(await api.token({"grant_type": grant, "username": "a", "password": "b"}, auth=(client.id, secret)),
            "unsupported_grant_type")


async def test_a_missing_grant_type_or_a_json_body_is_invalid_request(api: Api) -> None:
    client, secret = await api.secret_client()
    refused(await api.token({"scope": "x"}, auth=(client.id, secret)), "invalid_request")
    response = await api.client.post("/v1/auth/token", json={"grant_type": "client_credentials"},
                                     auth=(client.id, secret))
    refused(response, "invalid_request")


async def test_two_authentication_methods_at_once_are_invalid_request(api: Api) -> None:
    client, secret = await api.secret_client()
    form = with_assertion(assertion(client.id, clock=api.clock))
    refused(await api.token(form, auth=(client.id, secret)), "invalid_request")


async def test_the_metadata_lists_the_token_endpoint_its_grants_and_auth_methods(api: Api) -> None:
    meta = (await api.client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["token_endpoint"] == TOKEN_URL
    assert meta["grant_types_supported"] == ["client_credentials", "refresh_token"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"none", "client_secret_basic", "private_key_jwt"}
    algs = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert "ES256" in algs and "EdDSA" in algs and not any(a.startswith("HS") for a in algs)


# ---- private_key_jwt --------------------------------------------------------------------------


async def test_a_signed_assertion_authenticates_a_client_that_has_no_secret(db_api: Api) -> None:
    client = await db_api.key_client()
    response = await db_api.token(with_assertion(assertion(client.id, clock=db_api.clock)))
    assert response.status_code == 200, response.text
    claims = db_api.verify(response.json()["access_token"])
    assert claims["sub"] == client.id and claims["client_id"] == client.id and claims["scope"] == "orders:read"


async def test_the_issuer_is_an_accepted_audience_and_client_id_may_be_given(api: Api) -> None:
    client = await api.key_client()
    token = assertion(client.id, clock=api.clock, audience=ISSUER)
    response = await api.token(with_assertion(token, client_id=client.id))
    assert response.status_code == 200, response.text


async def test_a_replayed_assertion_is_refused(db_api: Api) -> None:
    client = await db_api.key_client()
    token = assertion(client.id, clock=db_api.clock)
    assert (await db_api.token(with_assertion(token))).status_code == 200
    refused(await db_api.token(with_assertion(token)), "invalid_client", 401, "assertion_replayed")
    db_api.clock.advance(30)  # still inside its lifetime
    refused(await db_api.token(with_assertion(token)), "invalid_client", 401, "assertion_replayed")


async def test_a_concurrent_burst_of_one_assertion_gets_exactly_one_token(db_api: Api) -> None:
    client = await db_api.key_client()
    token = assertion(client.id, clock=db_api.clock)
    answers = await asyncio.gather(*(db_api.token(with_assertion(token)) for _ in range(24)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [401] * 23, statuses
    assert {r.json().get("reason") for r in answers if r.status_code == 401} == {"assertion_replayed"}


async def test_the_same_jti_from_two_clients_is_two_assertions(db_api: Api) -> None:
    first = await db_api.key_client("first")
    second = await db_api.key_client("second", OTHER_CLIENT_KEY)
    for client, key in ((first, CLIENT_KEY), (second, OTHER_CLIENT_KEY)):
        signer = Issuer(key, issuer=client.id, audience=TOKEN_URL, lifetime=60, typ="JWT", clock=db_api.clock)
        header, payload = decode_unverified(signer.issue(client.id)).header, {
            "iss": client.id, "sub": client.id, "aud": TOKEN_URL, "exp": int(NOW) + 60, "jti": "same"}
        signing_input = f"{segment(header)}.{segment(payload)}"
        token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
        assert (await db_api.token(with_assertion(token))).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_an_assertion_with_alg_none_is_refused(api: Api, alg: str) -> None:
    client = await api.key_client()
    claims = decode_unverified(assertion(client.id, clock=api.clock)).payload
    for signature in ("", "AAAA"):
        token = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims)}.{signature}"
        refused(await api.token(with_assertion(token)), "invalid_client", 401)


@pytest.mark.parametrize("form", ["pem", "der", "jwk", "x"])
async def test_an_assertion_hmac_signed_with_the_clients_public_key_is_refused(api: Api, form: str) -> None:
    from cryptography.hazmat.primitives import serialization

    client = await api.key_client()
    assert isinstance(CLIENT_KEY, AsymmetricKey)
    secret = {
        "pem": CLIENT_KEY.to_pem(),
        "der": CLIENT_KEY.public_key.public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk": json.dumps(CLIENT_KEY.public().to_jwk()).encode(),
        "x": base64.urlsafe_b64decode(CLIENT_KEY.public().to_jwk()["x"] + "=="),
    }[form]
    claims = decode_unverified(assertion(client.id, clock=api.clock)).payload
    for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256", "kid": CLIENT_KEY.kid}):
        signing_input = f"{segment(header)}.{segment(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        refused(await api.token(with_assertion(f"{signing_input}.{b64url_encode(mac)}")), "invalid_client", 401)


async def test_an_assertion_for_another_server_is_refused(api: Api) -> None:
    client = await api.key_client()
    token = assertion(client.id, clock=api.clock, audience="https://other.example.com/oauth/token")
    refused(await api.token(with_assertion(token)), "invalid_client", 401, "bad_audience")


async def test_an_assertion_living_an_hour_is_refused(api: Api) -> None:
    client = await api.key_client()
    refused(await api.token(with_assertion(assertion(client.id, clock=api.clock, lifetime=3600))),
            "invalid_client", 401, "assertion_lifetime")
    # five minutes (the limit) is fine
    assert (await api.token(with_assertion(assertion(client.id, clock=api.clock, lifetime=300)))).status_code == 200


async def test_an_expired_assertion_is_refused(api: Api) -> None:
    client = await api.key_client()
    token = assertion(client.id, clock=api.clock)
    api.clock.advance(60 + 31)
    refused(await api.token(with_assertion(token)), "invalid_client", 401, "expired")


async def test_an_assertion_whose_iss_is_not_its_sub_is_refused(api: Api) -> None:
    client = await api.key_client()
    token = assertion(client.id, clock=api.clock, issuer="someone-else")
    refused(await api.token(with_assertion(token)), "invalid_client", 401, "bad_issuer")
    token = assertion(client.id, clock=api.clock, subject="someone-else")
    refused(await api.token(with_assertion(token, client_id=client.id)), "invalid_client", 401, "bad_subject")


async def test_client_as_assertion_cannot_authenticate_client_b(api: Api) -> None:
    a = await api.key_client("a", CLIENT_KEY)
    b = await api.key_client("b", OTHER_CLIENT_KEY, scope="orders:read orders:write")
    # signed with A's key, claiming to be B: B's keys do not verify it (no reason given)
    forged = assertion(b.id, CLIENT_KEY, clock=api.clock)
    refused(await api.token(with_assertion(forged)), "invalid_client", 401, None)
    assert "reason" not in (await api.token(with_assertion(assertion(b.id, CLIENT_KEY, clock=api.clock)))).json()
    # A's own valid assertion, presented with client_id=B
    refused(await api.token(with_assertion(assertion(a.id, clock=api.clock), client_id=b.id)),
            "invalid_client", 401)


async def test_an_assertion_without_jti_or_exp_is_refused(api: Api) -> None:
    client = await api.key_client()
    header = {"alg": "ES256", "kid": CLIENT_KEY.kid, "typ": "JWT"}
    base = {"iss": client.id, "sub": client.id, "aud": TOKEN_URL, "exp": int(NOW) + 60, "jti": "j1"}
    for missing, reason in (("jti", "missing_claim"), ("exp", "missing_claim")):
        claims = {k: v for k, v in base.items() if k != missing}
        signing_input = f"{segment(header)}.{segment(claims)}"
        token = f"{signing_input}.{b64url_encode(CLIENT_KEY.sign(signing_input.encode()))}"
        refused(await api.token(with_assertion(token)), "invalid_client", 401, reason)


async def test_an_access_token_typed_assertion_is_refused(api: Api) -> None:
    client = await api.key_client()
    refused(await api.token(with_assertion(assertion(client.id, clock=api.clock, typ="at+jwt"))),
            "invalid_client", 401, "bad_type")


async def test_garbage_assertions_and_types_are_invalid_client(api: Api) -> None:
    client = await api.key_client()
    good = assertion(client.id, clock=api.clock)
    for form in (with_assertion("garbage"), with_assertion(""), with_assertion("a.b.c"),
                 {**with_assertion(good), "client_assertion_type": "urn:other"},
                 {"grant_type": "client_credentials", "client_assertion": good}):
        refused(await api.token(form), "invalid_client", 401)


async def test_each_client_uses_only_the_method_it_was_registered_for(api: Api) -> None:
    keyed = await api.key_client()
    # a key client has no secret: nothing authenticates it over Basic
    for secret in ("", "jws_x", "\x00" * 32):
        refused(await api.token({"grant_type": "client_credentials"}, auth=(keyed.id, secret)), "invalid_client", 401)
    # a secret client has no keys: an assertion (whatever key signed it) is refused
    secret_client, _ = await api.secret_client()
    refused(await api.token(with_assertion(assertion(secret_client.id, clock=api.clock))), "invalid_client", 401)


async def test_expired_assertion_jtis_are_collected_and_stay_refused(db_api: Api) -> None:
    client = await db_api.key_client()
    token = assertion(client.id, clock=db_api.clock)
    assert (await db_api.token(with_assertion(token))).status_code == 200
    assert (await db_api.state.sessions.gc())["client_assertions"] == 0  # still alive: kept
    db_api.clock.advance(60 + 31)
    assert (await db_api.state.sessions.gc())["client_assertions"] == 1
    refused(await db_api.token(with_assertion(token)), "invalid_client", 401, "expired")


# ---- a JWKS URL -------------------------------------------------------------------------------


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on loopback serving a JWKS the test can change."""
    served: list[dict[str, Any]] = [KeySet([CLIENT_KEY]).public().to_jwks()]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(served[-1]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json", served
    finally:
        server.shutdown()
        server.server_close()


async def test_a_client_with_a_jwks_url_authenticates_with_its_current_keys(
    api: Api, jwks_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = jwks_server
    client = await api.state.accounts.add_client_with_keys(
        "remote", grants={"client_credentials"}, scope="orders:read", jwks_url=url)
    assert (await api.token(with_assertion(assertion(client.id, clock=api.clock)))).status_code == 200
    # a key the URL does not serve is refused
    refused(await api.token(with_assertion(assertion(client.id, OTHER_CLIENT_KEY, clock=api.clock))),
            "invalid_client", 401)


async def test_an_unreachable_jwks_url_is_a_503_not_a_success(api: Api) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    client = await api.state.accounts.add_client_with_keys(
        "remote", grants={"client_credentials"}, jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    response = await api.token(with_assertion(assertion(client.id, clock=api.clock)))
    assert response.status_code == 503 and response.headers["retry-after"]


# ---- registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"jwks": json.dumps(KeySet([CLIENT_KEY]).to_jwks(private=True))}, "private"),
    ({"jwks": json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]})}, "private"),
    ({"jwks": json.dumps({"keys": []})}, "no usable"),
    ({"jwks": "not json"}, "refused"),
    ({"jwks_url": "http://example.com/jwks.json"}, "https"),
    ({}, "one of them"),
    ({"jwks": json.dumps(KeySet([CLIENT_KEY]).public().to_jwks()), "jwks_url": "https://a.example/j"}, "one of them"),
])
async def test_registration_refuses_unusable_keys(api: Api, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await api.state.accounts.add_client_with_keys("bad", grants={"client_credentials"}, **options)


async def test_registration_refuses_scope_without_the_grant_and_bad_names(api: Api) -> None:
    with pytest.raises(ValueError, match="client_credentials"):
        await api.state.accounts.add_client("x", {"sessions"}, scope="read")
    with pytest.raises(ValueError, match="grants"):
        await api.state.accounts.add_client("x", grants={"password"})
    with pytest.raises(ValueError, match="at least one"):
        await api.state.accounts.add_client("x")
    with pytest.raises(ValueError, match="scope"):
        await api.state.accounts.add_client("x", grants={"client_credentials"}, scope='bad"scope')


# ---- refresh_token ----------------------------------------------------------------------------------


async def _login(api: Api, scope: str = "read write") -> dict[str, Any]:
    await api.state.accounts.add_user("alice", PASSWORD, scope=scope)
    response = await api.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_the_refresh_token_grant_rotates_like_the_refresh_endpoint(db_api: Api) -> None:
    pair = await _login(db_api)
    response = await db_api.token({"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] != pair["refresh_token"] and body["token_type"] == "Bearer"
    assert body["scope"] == "read write" and body["expires_in"] == 900
    assert db_api.verify(body["access_token"])["sid"] == decode_unverified(pair["access_token"]).payload["sid"]
    # the spent token is reuse: the session is revoked, the successor dies with it
    refused(await db_api.token({"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}),
            "invalid_grant", reason="refresh_reused")
    refused(await db_api.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}),
            "invalid_grant", reason="refresh_revoked")


async def test_the_refresh_token_grant_and_the_refresh_endpoint_share_one_chain(api: Api) -> None:
    pair = await _login(api)
    first = (await api.token({"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]})).json()
    second = await api.client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    response = await api.client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.json()["reason"] == "refresh_reused"


@pytest.mark.parametrize("token", ["", "jwr_garbage", "x" * 300])
async def test_a_missing_or_garbage_refresh_token_is_refused(api: Api, token: str) -> None:
    response = await api.token({"grant_type": "refresh_token", "refresh_token": token})
    refused(response, "invalid_request" if not token else "invalid_grant")


async def test_a_public_client_may_name_itself_but_not_a_registered_client(api: Api) -> None:
    pair = await _login(api)
    form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    registered, _ = await api.secret_client(grants={"refresh_token"})
    refused(await api.token({**form, "client_id": registered.id}), "invalid_client", 401)
    response = await api.token({**form, "client_id": "my-cli"})
    assert response.status_code == 200, response.text  # the refused request spent nothing


async def test_a_requested_scope_must_lie_within_the_sessions(api: Api) -> None:
    pair = await _login(api, scope="read write")
    form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    refused(await api.token({**form, "scope": "read admin"}), "invalid_scope")
    response = await api.token({**form, "scope": "read"})  # the refusal spent nothing
    assert response.status_code == 200 and response.json()["scope"] == "read write"


async def test_a_confidential_client_refreshes_with_its_credentials(api: Api) -> None:
    pair = await _login(api)
    bff, secret = await api.secret_client("bff", grants={"refresh_token"})
    response = await api.token({"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
                               auth=(bff.id, secret))
    assert response.status_code == 200, response.text
    reports, secret2 = await api.secret_client("cc-only")
    refused(await api.token({"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]},
                            auth=(reports.id, secret2)), "unauthorized_client")


async def test_a_session_of_one_client_cannot_be_refreshed_by_another(db_api: Api) -> None:
    backend, secret = await db_api.state.accounts.add_client("backend", {"sessions"})
    other, other_secret = await db_api.secret_client("other", grants={"refresh_token"})
    created = await db_api.client.post("/v1/sessions", json={"subject": "u1"}, auth=(backend.id, secret))
    token = created.json()["refresh_token"]
    refused(await db_api.token({"grant_type": "refresh_token", "refresh_token": token}, auth=(other.id, other_secret)),
            "invalid_grant", reason="invalid_refresh_token")
    # refused without spending it: its own client (a trusted backend may refresh) still can
    response = await db_api.token({"grant_type": "refresh_token", "refresh_token": token}, auth=(backend.id, secret))
    assert response.status_code == 200, response.text


# ---- jwtwarden clients add ------------------------------------------------------------------------


def cli(tmp_path: Path, *args: str) -> Any:
    from click.testing import CliRunner

    from jwtwarden.cli import main
    from tests.servicekit import TEST_KEK

    env = {"JWTWARDEN_DATA_DIR": str(tmp_path / "data"), "JWTWARDEN_KEK": TEST_KEK}
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)


def test_clients_add_registers_a_client_credentials_client(tmp_path: Path) -> None:
    added = cli(tmp_path, "clients", "add", "reports", "--grant", "client_credentials",
                "--scope", "orders:read orders:write", "--audience", "orders-api")
    assert added.exit_code == 0, added.output
    assert "client_id=jwc_" in added.output and "client_secret=jws_" in added.output
    listed = cli(tmp_path, "clients", "list").output
    assert "reports" in listed and "client_credentials" in listed and "client_secret_basic" in listed
    assert "orders:read orders:write" in listed


def test_clients_add_with_a_jwks_file_prints_no_secret(tmp_path: Path) -> None:
    jwks = tmp_path / "batch.jwks.json"
    jwks.write_text(json.dumps(KeySet([CLIENT_KEY]).public().to_jwks()))
    added = cli(tmp_path, "clients", "add", "batch", "--grant", "client_credentials", "--jwks", str(jwks))
    assert added.exit_code == 0, added.output
    assert "client_id=jwc_" in added.output and "secret" not in added.output
    assert "private_key_jwt" in cli(tmp_path, "clients", "list").output


def test_clients_add_refuses_a_private_jwks_and_a_secret_needing_permission(tmp_path: Path) -> None:
    private = tmp_path / "private.jwks.json"
    private.write_text(json.dumps(KeySet([CLIENT_KEY]).to_jwks(private=True)))
    refused_private = cli(tmp_path, "clients", "add", "a", "--grant", "client_credentials", "--jwks", str(private))
    assert refused_private.exit_code != 0 and "private" in refused_private.output
    mixed = cli(tmp_path, "clients", "add", "b", "--permission", "sessions",
                "--jwks-url", "https://keys.example.com/jwks.json")
    assert mixed.exit_code != 0 and "secret" in mixed.output
    neither = cli(tmp_path, "clients", "add", "c")
    assert neither.exit_code != 0 and "--grant" in neither.output
    plain_http = cli(tmp_path, "clients", "add", "d", "--grant", "client_credentials",
                     "--jwks-url", "http://keys.example.com/jwks.json")
    assert plain_http.exit_code != 0 and "https" in plain_http.output


# ---- two replicas, one database ------------------------------------------------------------------


def test_a_burst_of_one_assertion_across_two_replicas_gets_exactly_one_token(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two ``jwtwarden serve`` processes on one PostgreSQL: the jti insert decides for both."""
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tests.servicekit import TEST_KEK, free_port, running_server, server_env

    issuer = f"http://127.0.0.1:{free_port()}"  # one issuer (and token endpoint) for both
    common = {"JWTWARDEN_DATABASE_URL": postgres_url, "JWTWARDEN_KEK": TEST_KEK, "JWTWARDEN_ISSUER": issuer}
    jwks = tmp_path / "client.jwks.json"
    jwks.write_text(json.dumps(KeySet([CLIENT_KEY]).public().to_jwks()))
    with running_server(server_env(tmp_path / "a", **common)) as a, \
            running_server(server_env(tmp_path / "b", **common)) as b:
        out = subprocess.run([sys.executable, "-m", "jwtwarden", "clients", "add", "batch", "--grant",
                              "client_credentials", "--jwks", str(jwks)], env=a.env, capture_output=True,
                             text=True, check=True).stdout
        client_id = out.split("client_id=")[1].split()[0]
        token = assertion(client_id, clock=FakeClock(time.time()), audience=issuer + "/v1/auth/token")
        form = urlencode(with_assertion(token))

        def send(url: str) -> int:
            return httpx.post(url + "/v1/auth/token", content=form, headers=FORM, timeout=30).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = sorted(pool.map(send, [a.url, b.url] * 16))
    assert statuses == [200] + [401] * 31, statuses
