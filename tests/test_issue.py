"""Issuer: every token carries exp/iat/jti/iss/aud/sub/kid/typ, lifetimes are capped,
sensitive claims are refused unless allowed by name."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from jwtwarden import Issuer, KeySet, Verifier, decode_unverified, errors
from jwtwarden.testing import FakeClock
from tests.conftest import AUD, ISS, NOW, keyset_for

Pair = Callable[..., tuple[Issuer, Verifier]]


def test_every_token_carries_the_registered_claims_and_header(make_pair: Pair) -> None:
    issuer, _ = make_pair("ES256")
    token = decode_unverified(issuer.issue("u1"))
    assert token.header == {"alg": "ES256", "kid": issuer.key.kid, "typ": "at+jwt"}
    assert set(token.payload) == {"iss", "sub", "aud", "iat", "exp", "jti"}
    assert token.payload["iat"] == int(NOW)
    assert token.payload["exp"] == int(NOW) + 900
    assert (token.payload["iss"], token.payload["aud"], token.payload["sub"]) == (ISS, AUD, "u1")


def test_jti_has_at_least_128_random_bits_and_is_unique(make_pair: Pair) -> None:
    issuer, _ = make_pair("HS256")
    jtis = {decode_unverified(issuer.issue("u1")).payload["jti"] for _ in range(500)}
    assert len(jtis) == 500
    for jti in list(jtis)[:20]:
        assert len(base64.urlsafe_b64decode(jti + "==")) >= 16


def test_lifetime_over_fifteen_minutes_needs_the_unsafe_flag(clock: FakeClock) -> None:
    keys = keyset_for("ES256")
    with pytest.raises(ValueError, match="unsafe_allow_long_lifetime"):
        Issuer(keys, issuer=ISS, audience=AUD, lifetime=901)
    issuer = Issuer(keys, issuer=ISS, audience=AUD, clock=clock)
    with pytest.raises(ValueError, match="cap"):
        issuer.issue("u1", lifetime=3600)
    long_lived = Issuer(keys, issuer=ISS, audience=AUD, clock=clock, lifetime=3600,
                        unsafe_allow_long_lifetime=True)
    payload = decode_unverified(long_lived.issue("u1")).payload
    assert payload["exp"] - payload["iat"] == 3600


def test_the_unsafe_flag_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Issuer(keyset_for("ES256"), ISS, AUD, None, 3600, "at+jwt", (), time.time, True)  # type: ignore[call-arg]


@pytest.mark.parametrize("lifetime", [0, -5, 1.5, "900", True])
def test_lifetime_must_be_a_positive_whole_number(lifetime: Any) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        Issuer(keyset_for("ES256"), issuer=ISS, audience=AUD, lifetime=lifetime)


def test_shorter_lifetime_per_token(make_pair: Pair) -> None:
    issuer, verifier = make_pair("ES256")
    claims = verifier.verify(issuer.issue("u1", lifetime=300))
    assert claims.exp - claims.iat == 300  # type: ignore[operator]


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"])
def test_registered_claims_cannot_be_smuggled_in(make_pair: Pair, name: str) -> None:
    issuer, _ = make_pair("ES256")
    with pytest.raises(ValueError, match="set by the issuer"):
        issuer.issue("u1", {name: 1})


@pytest.mark.parametrize(
    ("claims", "claim", "finding"),
    [
        ({"password": "hunter2"}, "password", "sensitive_name"),
        ({"card": "4111 1111 1111 1111"}, "card", "card_number"),
        ({"profile": {"ssn": "123-45-6789"}}, "profile", None),
        ({"email": "alice@example.com"}, "email", None),
        ({"aws": "AKIAIOSFODNN7EXAMPLE"}, "aws", "cloud_key"),
    ],
)
def test_sensitive_claims_are_refused(make_pair: Pair, claims: dict[str, Any], claim: str,
                                      finding: str | None) -> None:
    issuer, _ = make_pair("ES256")
    with pytest.raises(errors.SensitiveClaim) as info:
        issuer.issue("u1", claims)
    assert info.value.code == "sensitive_claim" and info.value.claim == claim
    if finding:
        assert info.value.finding_code == finding
    for value in _leaf_strings(claims):
        assert value not in str(info.value)


def _leaf_strings(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _leaf_strings(v)]
    return [obj] if isinstance(obj, str) else []


def test_a_sensitive_claim_can_be_allowed_by_name(make_pair: Pair, clock: FakeClock) -> None:
    issuer, verifier = make_pair("ES256")
    token = issuer.issue("u1", {"email": "alice@example.com"}, allow_sensitive=["email"])
    assert verifier.verify(token)["email"] == "alice@example.com"
    always = Issuer(keyset_for("ES256"), issuer=ISS, audience=AUD, clock=clock, allowed_claims=["email"])
    assert verifier.verify(always.issue("u1", {"email": "bob@example.com"}))["email"] == "bob@example.com"
    with pytest.raises(errors.SensitiveClaim):
        always.issue("u1", {"email": "bob@example.com", "password": "x"})


def test_audience_list_and_per_token_audience(make_pair: Pair, clock: FakeClock) -> None:
    issuer = Issuer(keyset_for("ES256"), issuer=ISS, audience=[AUD, "billing"], clock=clock)
    assert decode_unverified(issuer.issue("u1")).payload["aud"] == [AUD, "billing"]
    assert decode_unverified(issuer.issue("u1", audience="billing")).payload["aud"] == "billing"


@pytest.mark.parametrize("subject", ["", None, 5])
def test_subject_must_be_a_non_empty_string(make_pair: Pair, subject: Any) -> None:
    issuer, _ = make_pair("ES256")
    with pytest.raises(ValueError, match="subject"):
        issuer.issue(subject)


def test_claims_must_be_json(make_pair: Pair) -> None:
    issuer, _ = make_pair("ES256")
    with pytest.raises(ValueError, match="JSON"):
        issuer.issue("u1", {"when": object()})
    with pytest.raises(ValueError, match="JSON"):
        issuer.issue("u1", {"ratio": float("nan")})


def test_an_issuer_needs_a_private_key() -> None:
    with pytest.raises(ValueError, match="private"):
        Issuer(keyset_for("ES256").public(), issuer=ISS, audience=AUD)


def test_an_issuer_picks_its_key_by_kid_among_several() -> None:
    keys = KeySet.generate("ES256", kid="old") + KeySet.generate("ES256", kid="new")
    with pytest.raises(ValueError, match="kid"):
        Issuer(keys, issuer=ISS, audience=AUD)
    issuer = Issuer(keys, issuer=ISS, audience=AUD, kid="new")
    assert decode_unverified(issuer.issue("u1")).header["kid"] == "new"


def test_the_public_entry_points_work_as_documented() -> None:
    """The example of the README and of issue #2, verbatim."""
    keys = KeySet.generate("ES256")
    keys_again = KeySet.from_jwks(keys.to_jwks(private=True))
    public = keys_again.public()
    assert '"d"' not in json.dumps(public.to_jwks())
    token = Issuer(keys, issuer=ISS, audience=AUD).issue(subject="u1", claims={"role": "user"})
    claims = Verifier(public, issuer=ISS, audience=AUD, algorithms=["ES256"]).verify(token)
    assert claims["role"] == "user"
    with pytest.raises(errors.JWTError) as info:
        Verifier(public, issuer=ISS, audience=AUD, algorithms=["ES256"]).verify(token + "x")
    assert info.value.code in {"malformed", "bad_signature"}
