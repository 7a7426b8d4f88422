"""Trusting a previous issuer (simplejwt's HS256 key) until a date, beside the remote JWKS.

Tokens of the old issuer are signed here the way PyJWT (simplejwt's encoder) signs them:
``{"alg": "HS256", "typ": "JWT"}``, ``token_type``, ``user_id``, ``exp``, ``iat``, ``jti``.
The date and every ``exp`` are checked with the FakeClock injected into the ResourceServer.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import jwt as pyjwt
import pytest

from jwtwarden import Issuer, errors
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.jose.strict_json import dumps
from jwtwarden.keys import AsymmetricKey
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.legacy import LegacyIssuer
from jwtwarden.resource.server import ResourceServer
from jwtwarden.testing import FakeClock, MockJWKS
from tests.conftest import AUD, ISS, NOW, keyset_for

SECRET = "django-insecure-" + "k" * 40  # a Django SECRET_KEY, simplejwt's default SIGNING_KEY
NOT_AFTER = NOW + 600
KEYS = keyset_for("ES256")


def old_token(secret: str = SECRET, *, alg: str = "HS256", headers: dict[str, Any] | None = None,
              **changes: Any) -> str:
    payload = {"token_type": "access", "exp": int(NOW) + 300, "iat": int(NOW), "jti": "j1",
               "user_id": 42} | changes
    return pyjwt.encode({k: v for k, v in payload.items() if v is not None}, secret,
                        algorithm=alg, headers=headers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def jwks() -> MockJWKS:
    return MockJWKS(KEYS)


@pytest.fixture
def server(clock: FakeClock, jwks: MockJWKS) -> ResourceServer:
    return ResourceServer(
        RemoteJWKS(f"{ISS}/jwks", algorithms=["ES256"], transport=jwks.transport),
        issuer=ISS, audience=AUD, clock=clock, revocations=None,
        also_trust=LegacyIssuer.simplejwt(SECRET, not_after=NOT_AFTER))


def code(server: ResourceServer, token: str) -> str:
    with pytest.raises(errors.JWTError) as caught:
        server.authenticate(f"Bearer {token}")
    return caught.value.code


def test_an_old_access_token_is_accepted_with_its_user_as_sub(server: ResourceServer,
                                                             jwks: MockJWKS) -> None:
    claims = server.authenticate(f"Bearer {old_token()}")
    assert claims.sub == "42" and claims["user_id"] == 42 and claims["token_type"] == "access"
    assert jwks.requests == 0  # the old issuer's key is local: no JWKS fetch


@pytest.mark.anyio
async def test_the_async_path_accepts_it_too(server: ResourceServer) -> None:
    assert (await server.aauthenticate(f"Bearer {old_token()}")).sub == "42"


def test_new_tokens_still_go_to_the_remote_key_set(server: ResourceServer, clock: FakeClock) -> None:
    token = Issuer(KEYS, issuer=ISS, audience=AUD, clock=clock).issue("alice")
    assert server.authenticate(f"Bearer {token}").sub == "alice"


def test_from_the_not_after_date_the_old_issuer_is_refused_as_alg_not_allowed(
        server: ResourceServer, clock: FakeClock) -> None:
    token = old_token(exp=int(NOT_AFTER) + 3600)  # still valid by its own exp
    assert server.authenticate(f"Bearer {token}").sub == "42"
    clock.set(NOT_AFTER - 0.5)
    assert server.authenticate(f"Bearer {token}").sub == "42"
    clock.set(NOT_AFTER)
    assert code(server, token) == "alg_not_allowed"


def test_an_old_token_expires_by_the_injected_clock(server: ResourceServer, clock: FakeClock) -> None:
    token = old_token()
    clock.advance(299)
    assert server.authenticate(f"Bearer {token}").sub == "42"
    clock.advance(1)  # simplejwt's leeway is 0
    assert code(server, token) == "expired"


def test_an_old_refresh_token_is_not_an_access_token(server: ResourceServer) -> None:
    assert code(server, old_token(token_type="refresh", exp=int(NOW) + 86400)) == "bad_type"
    assert code(server, old_token(token_type=None)) == "bad_type"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"exp": None}, "missing_claim"),
    ({"exp": "soon"}, "malformed"),
    ({"user_id": None}, "missing_claim"),
    ({"user_id": True}, "malformed"),
    ({"iss": "https://someone.example"}, "bad_issuer"),  # simplejwt set none: none accepted
    ({"aud": "api"}, "bad_audience"),
    ({"iat": int(NOW) + 3600}, "issued_in_future"),
    ({"nbf": int(NOW) + 3600}, "not_yet_valid"),
    ({"sub": "7"}, "malformed"),  # a sub that is not the user
])
def test_old_tokens_claims_are_checked_strictly(server: ResourceServer, changes: dict[str, Any],
                                                 expected: str) -> None:
    assert code(server, old_token(**changes)) == expected


def test_another_secret_is_a_bad_signature(server: ResourceServer) -> None:
    assert code(server, old_token("another-secret-of-forty-bytes-0123456789")) == "bad_signature"


def test_the_hs256_secret_is_never_used_for_another_algorithm(server: ResourceServer) -> None:
    # HS384 with the very same secret: not the old key's algorithm, so it goes to the remote
    # key set, whose allowlist is ES256
    assert code(server, old_token(alg="HS384")) == "alg_not_allowed"


def test_hmac_with_the_public_key_as_secret_is_refused(server: ResourceServer) -> None:
    """The HMAC/RSA (here ECDSA) confusion: HS256 keyed with the JWKS's public key."""
    key = next(iter(KEYS))
    assert isinstance(key, AsymmetricKey)
    pem = key.to_pem()
    with_kid = hs256_raw(pem, {"alg": "HS256", "typ": "JWT", "kid": key.kid})
    without_kid = hs256_raw(pem, {"alg": "HS256", "typ": "JWT"})
    assert code(server, with_kid) == "alg_not_allowed"  # a remote key's kid: not the old issuer's
    assert code(server, without_kid) == "bad_signature"  # the old issuer's key: not its secret


def hs256_raw(secret: bytes, header: dict[str, Any]) -> str:
    """What PyJWT refuses to do: HMAC keyed with a PEM public key (the attacker's move)."""
    body = {"token_type": "access", "exp": int(NOW) + 300, "user_id": 42}
    signing_input = f"{b64url_encode(dumps(header))}.{b64url_encode(dumps(body))}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url_encode(signature)}"


def test_an_old_token_naming_another_kid_goes_to_the_remote_key_set(server: ResourceServer) -> None:
    assert code(server, old_token(headers={"kid": "nope"})) == "alg_not_allowed"


def test_the_key_is_verify_only_and_never_shown() -> None:
    legacy = LegacyIssuer.simplejwt(SECRET, not_after=NOT_AFTER)
    assert SECRET not in repr(legacy) and not hasattr(legacy, "key") and not hasattr(legacy, "sign")
    private = KEYS.signing_key()
    assert LegacyIssuer(private, not_after=NOT_AFTER)._jws.keys[private.kid].is_private is False


@pytest.mark.parametrize("not_after", [
    datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "2023-11-14T22:13:20+00:00", NOW])
def test_not_after_takes_a_datetime_an_iso_string_or_unix_seconds(not_after: Any) -> None:
    assert LegacyIssuer.simplejwt(SECRET, not_after=not_after).not_after == NOW


@pytest.mark.parametrize(("options", "error"), [
    ({"signing_key": "short", "not_after": NOW}, errors.WeakKey),
    ({"signing_key": SECRET, "not_after": "2023-11-14T22:23:20"}, ValueError),  # no offset
    ({"signing_key": SECRET, "not_after": float("inf")}, ValueError),
    ({"signing_key": SECRET, "not_after": NOW, "algorithm": "RS256"}, ValueError),  # no PEM
])
def test_bad_configuration_is_refused_when_built(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        LegacyIssuer.simplejwt(**options)


def test_also_trust_takes_only_legacy_issuers() -> None:
    with pytest.raises(TypeError):
        ResourceServer(f"{ISS}/jwks", issuer=ISS, audience=AUD, revocations=None,
                       also_trust=[SECRET])  # type: ignore[list-item]
