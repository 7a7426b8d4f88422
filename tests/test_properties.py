"""Properties that hold for every input hypothesis can think of.

- a signed token verifies and returns exactly the claims it was issued with, for every
  algorithm;
- any single-character change of a token, and any single bit flip of its signature, is
  rejected;
- nothing passed to ``Verifier.verify`` raises anything but a ``JWTError``;
- base64url has exactly one accepted encoding per byte string;
- the strict JSON parser round-trips JSON objects and raises only ``MalformedToken``.

Keys come from ``keyset_for`` (generated once per session; RSA is slow) and every test
builds its own ``FakeClock``, so no function-scoped fixture meets ``@given``.
"""

from __future__ import annotations

import contextlib
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jwtwarden import Issuer, KeySet, Verifier
from jwtwarden.errors import BadSignature, JWTError, MalformedToken
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.policy import REGISTERED_CLAIMS
from jwtwarden.testing import FakeClock
from tests.conftest import ALL_ALGS, AUD, ISS, NOW, keyset_for, verify_keys

B64URL_ALPHABET = string.ascii_letters + string.digits + "-_"
# What a single-character change may put in: any base64url character, the segment
# separator, and the characters of the other base64 alphabets and of sloppy parsers.
REPLACEMENTS = B64URL_ALPHABET + ".=+/ "
RSA_ALGS = [a for a in ALL_ALGS if ALGORITHMS[a].kty == "RSA"]
FAST_ALGS = [a for a in ALL_ALGS if a not in RSA_ALGS]

# Deterministic runs: a property that fails must fail on every run, not once in a while.
# No deadline: the first example of an algorithm may generate its key (RSA takes a while).
PROFILE = settings(derandomize=True, deadline=None)


def make_pair(alg: str) -> tuple[Issuer, Verifier]:
    clock = FakeClock(NOW)
    keys = keyset_for(alg)
    issuer = Issuer(keys, issuer=ISS, audience=AUD, clock=clock)
    verifier = Verifier(verify_keys(keys), issuer=ISS, audience=AUD, algorithms=[alg], clock=clock)
    return issuer, verifier


_TOKENS: dict[str, tuple[str, Verifier]] = {}


def token_and_verifier(alg: str) -> tuple[str, Verifier]:
    """One valid token per algorithm, issued once (signing is the slow part)."""
    if alg not in _TOKENS:
        issuer, verifier = make_pair(alg)
        _TOKENS[alg] = (issuer.issue("user-1", {"role": "reader"}), verifier)
    return _TOKENS[alg]


def mixed_verifier() -> Verifier:
    """A verifier holding an HMAC, an EC and an Ed25519 key, allowing every algorithm."""
    keys = KeySet([])
    for alg in ("HS256", "ES256", "EdDSA"):
        keys = keys + verify_keys(keyset_for(alg))
    return Verifier(keys, issuer=ISS, audience=AUD, algorithms=ALL_ALGS, clock=FakeClock(NOW))


# ---- (a) round trip -----------------------------------------------------------------------

claim_names = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8).filter(
    lambda name: name not in REGISTERED_CLAIMS
)
claim_values = st.one_of(
    st.integers(),
    st.booleans(),
    st.text(alphabet=string.ascii_lowercase, max_size=8),
)
extra_claims = st.dictionaries(claim_names, claim_values, max_size=8)


def _round_trip(alg: str, claims: dict[str, Any]) -> None:
    issuer, verifier = make_pair(alg)
    # The claims are chosen to be harmless; allow_sensitive keeps a linter finding on some
    # generated word from turning this sign/verify property into a linter test.
    token = issuer.issue("user-1", claims, allow_sensitive=claims)
    verified = verifier.verify(token)
    extra = {k: v for k, v in verified.items() if k not in REGISTERED_CLAIMS}
    # Compared as canonical JSON, so that True and 1 (equal in Python) stay distinct.
    assert json.dumps(extra, sort_keys=True) == json.dumps(claims, sort_keys=True)
    assert (verified.iss, verified.sub, verified.aud) == (ISS, "user-1", (AUD,))


@pytest.mark.parametrize("alg", FAST_ALGS)
@settings(PROFILE, max_examples=40)
@given(claims=extra_claims)
def test_issued_claims_round_trip(alg: str, claims: dict[str, Any]) -> None:
    _round_trip(alg, claims)


@pytest.mark.parametrize("alg", RSA_ALGS)
@settings(PROFILE, max_examples=10)
@given(claims=extra_claims)
def test_issued_claims_round_trip_rsa(alg: str, claims: dict[str, Any]) -> None:
    _round_trip(alg, claims)


# ---- (b) tampering ------------------------------------------------------------------------


@settings(PROFILE, max_examples=600)
@given(data=st.data())
def test_any_single_character_change_is_rejected(data: st.DataObject) -> None:
    alg = data.draw(st.sampled_from(ALL_ALGS), label="alg")
    token, verifier = token_and_verifier(alg)
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(st.sampled_from(REPLACEMENTS), label="replacement")
    assume(replacement != token[position])
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(JWTError):
        verifier.verify(tampered)


@settings(PROFILE, max_examples=400)
@given(data=st.data())
def test_any_single_bit_flip_of_the_signature_is_rejected(data: st.DataObject) -> None:
    alg = data.draw(st.sampled_from(ALL_ALGS), label="alg")
    token, verifier = token_and_verifier(alg)
    signing_input, _, signature_segment = token.rpartition(".")
    signature = bytearray(b64url_decode(signature_segment))
    bit = data.draw(st.integers(0, len(signature) * 8 - 1), label="bit")
    signature[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(BadSignature):
        verifier.verify(f"{signing_input}.{b64url_encode(bytes(signature))}")


def test_the_untampered_tokens_verify() -> None:
    # The premise of the two properties above: what they tamper with is a valid token.
    for alg in ALL_ALGS:
        token, verifier = token_and_verifier(alg)
        assert verifier.verify(token).sub == "user-1"


# ---- (c) arbitrary input to Verifier.verify -----------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
header_names = st.sampled_from(
    ["alg", "kid", "typ", "cty", "crit", "jku", "jwk", "x5c", "b64", "zip", "enc"]
)
header_objects = st.dictionaries(
    header_names | st.text(max_size=6), json_values, max_size=5
) | st.fixed_dictionaries(
    {"alg": st.sampled_from([*ALL_ALGS, "none", "None", "HS256 ", ""])},
    optional={"kid": st.text(max_size=8) | json_values, "typ": json_values, "crit": json_values},
)
claim_keys = st.sampled_from(sorted(REGISTERED_CLAIMS)) | st.text(max_size=6)
payload_objects = st.dictionaries(claim_keys, json_values, max_size=8)
b64_segments = st.binary(max_size=64).map(b64url_encode) | st.text(
    alphabet=REPLACEMENTS, max_size=20
)


def _json_segment(value: Any) -> str:
    return b64url_encode(json.dumps(value).encode("ascii"))


@st.composite
def near_jwts(draw: st.DrawFn) -> str:
    """Three segments: JSON-object or random base64url header/payload, random signature."""
    header = draw(header_objects.map(_json_segment) | b64_segments)
    payload = draw(payload_objects.map(_json_segment) | b64_segments)
    signature = draw(b64_segments)
    return f"{header}.{payload}.{signature}"


past_or_near = st.integers(int(NOW) - 900, int(NOW) + 60) | st.floats(NOW - 900, NOW + 60)
future = st.integers(int(NOW) - 60, int(NOW) + 900) | st.floats(NOW - 60, NOW + 900)


def mostly(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Plausible values three times out of four, any JSON value otherwise."""
    return st.integers(0, 3).flatmap(lambda i: json_values if i == 0 else plausible)


# Registered claims that are often right, so that every claim check is reached (a wrong
# exp would stop the checks at the first one), with well- and ill-typed values.
plausible_claims = st.fixed_dictionaries(
    {"exp": mostly(future)},
    optional={
        "nbf": mostly(past_or_near),
        "iat": mostly(past_or_near),
        "iss": mostly(st.sampled_from([ISS, ISS + "/", ""])),
        "aud": mostly(st.sampled_from([AUD, [AUD], ["other", AUD], [], ["other"]])),
        "sub": mostly(st.text(max_size=6)),
        "jti": mostly(st.text(max_size=6)),
    },
)


@st.composite
def signed_arbitrary_claims(draw: st.DrawFn) -> str:
    """A genuinely signed HS256/ES256/EdDSA token over an arbitrary JSON claims object.

    With a valid signature, the claim checks themselves meet arbitrary types and values.
    """
    alg = draw(st.sampled_from(["HS256", "ES256", "EdDSA"]))
    (key,) = keyset_for(alg)
    claims = draw(plausible_claims if draw(st.integers(0, 3)) else payload_objects)
    for name, value in draw(payload_objects).items():
        claims.setdefault(name, value)
    signing_input = f"{_json_segment({'alg': alg, 'kid': key.kid})}.{_json_segment(claims)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


# pytest.raises(JWTError) fails the test on any other exception, and on acceptance: none of
# these inputs carries a valid signature.


@settings(PROFILE, max_examples=300)
@given(token=st.text())
def test_verify_rejects_any_text_with_a_jwt_error(token: str) -> None:
    verifier = mixed_verifier()
    with pytest.raises(JWTError):
        verifier.verify(token)


@settings(PROFILE, max_examples=300)
@given(token=st.binary())
def test_verify_rejects_any_bytes_with_a_jwt_error(token: bytes) -> None:
    verifier = mixed_verifier()
    with pytest.raises(JWTError):
        verifier.verify(token)


@settings(PROFILE, max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(token=near_jwts())
def test_verify_rejects_near_jwts_with_a_jwt_error(token: str) -> None:
    verifier = mixed_verifier()
    with pytest.raises(JWTError):
        verifier.verify(token)


@settings(PROFILE, max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(token=signed_arbitrary_claims())
def test_verify_raises_only_jwt_errors_for_signed_arbitrary_claims(token: str) -> None:
    # Correctly signed: whether the claims pass is up to them, but a failure is a JWTError.
    verifier = mixed_verifier()
    with contextlib.suppress(JWTError):
        verifier.verify(token)


# ---- (d) strict base64url -----------------------------------------------------------------


@settings(PROFILE, max_examples=500)
@given(data=st.binary())
def test_b64url_decode_inverts_encode(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@settings(PROFILE, max_examples=1000)
@given(text=st.text(alphabet=B64URL_ALPHABET + "=+/ \n", max_size=24))
def test_b64url_accepts_only_the_canonical_encoding(text: str) -> None:
    try:
        decoded = b64url_decode(text)
    except MalformedToken:
        return
    assert b64url_encode(decoded) == text


@settings(PROFILE, max_examples=300)
@given(text=st.text())
def test_b64url_decode_raises_only_malformed_token(text: str) -> None:
    with contextlib.suppress(MalformedToken):
        b64url_decode(text)


# ---- (e) strict JSON ----------------------------------------------------------------------


def json_tree(depth: int) -> st.SearchStrategy[Any]:
    """JSON values nested at most ``depth`` levels (objects and arrays count as a level)."""
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    if depth <= 1:
        return scalars
    inner = json_tree(depth - 1)
    return (
        scalars
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    )


json_objects = st.dictionaries(st.text(max_size=6), json_tree(4), max_size=4)  # depth <= 5


@settings(PROFILE, max_examples=500)
@given(obj=json_objects, ensure_ascii=st.booleans())
def test_parse_object_round_trips_json_objects(obj: dict[str, Any], ensure_ascii: bool) -> None:
    assert parse_object(json.dumps(obj, ensure_ascii=ensure_ascii).encode("utf-8")) == obj


@settings(PROFILE, max_examples=500)
@given(data=st.binary() | st.text(alphabet='{}[]":,0123456789 \\u-.etrufalsn').map(str.encode))
def test_parse_object_raises_only_malformed_token(data: bytes) -> None:
    with contextlib.suppress(MalformedToken):
        parse_object(data)
