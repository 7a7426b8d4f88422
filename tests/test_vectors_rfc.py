"""Conformance with the published JOSE examples, driven by the vectors in ``tests/vectors/``.

Sources (each vector records its section):

- RFC 7515 Appendix A: the JWS examples A.1-A.5 (A.6/A.7 are JSON serialisation only);
- RFC 7520 Section 4: JWS examples over a non-JSON payload, including detached content (4.5);
- RFC 8037 Appendix A: the Ed25519 key, thumbprint and signature;
- RFC 7638 Section 3.1: the JWK thumbprint example.

A vector's ``key`` is its private JWK, ``public_key`` (when present) the public half; the
verifier is always given the public half when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jwtwarden import JWSVerifier, Key, KeySet, Verifier
from jwtwarden.errors import BadSignature, Expired, JWTError, MissingClaim
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.jws import decode_segments, split
from jwtwarden.testing import FakeClock
from tests.conftest import AUD, keyset_for, verify_keys

VECTORS = Path(__file__).parent / "vectors"
FILES = {
    "rfc7515": "rfc7515_appendix_a.json",
    "rfc7520": "rfc7520_section4.json",
    "rfc8037": "rfc8037.json",
    "rfc7638": "rfc7638_thumbprint.json",
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / FILES[name]).read_text(encoding="utf-8"))
    return data


def _collect(section: str) -> list[tuple[str, dict[str, Any]]]:
    """``(test id, item)`` of one section of every file; ids are ``<rfc>-<vector id>``.

    The RFC is part of the id because vector ids repeat across files (``A.4`` is both an
    ES512 example in RFC 7515 and the Ed25519 example in RFC 8037).
    """
    return [(f"{rfc}-{item['id']}", item) for rfc in FILES for item in _load(rfc).get(section, [])]


def _params(items: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [pytest.param(item, id=test_id) for test_id, item in items]


ALL_VECTORS = _collect("vectors")
# Compact vectors that verify as they stand (4.5 is detached: its payload is not in the token).
ATTACHED_VALID = [
    (i, v) for i, v in ALL_VECTORS if v["expect"] == "valid" and not v.get("detached")
]
DETACHED = [(i, v) for i, v in ALL_VECTORS if v.get("detached")]
JWT_VECTORS = [(i, v) for i, v in ATTACHED_VALID if v["payload_is_json"]]
DETERMINISTIC = [(i, v) for i, v in ALL_VECTORS if v["expect"] == "valid" and v["deterministic"]]
RANDOMISED = [(i, v) for i, v in ALL_VECTORS if v["expect"] == "valid" and not v["deterministic"]]
NEGATIVE = [(i, v) for i, v in ALL_VECTORS if isinstance(v["expect"], dict)]
THUMBPRINTS = _collect("thumbprints")
RFC8037_KEYS = _collect("keys")


def verifier_for(vector: dict[str, Any]) -> JWSVerifier:
    """A JWS verifier holding only the vector's (public) key, allowing only its algorithm."""
    key = Key.from_jwk(vector.get("public_key") or vector["key"])
    return JWSVerifier(KeySet([key]), algorithms=[vector["alg"]])


def every_algorithm_keys() -> KeySet:
    """One verification key for each of the 13 algorithms."""
    keys = KeySet([])
    for alg in ALGORITHMS:
        keys = keys + verify_keys(keyset_for(alg))
    return keys


def test_the_vector_files_hold_the_expected_cases() -> None:
    # Guards against a vector file silently losing entries (every parametrised test would
    # then pass vacuously for the missing ones).
    assert [i for i, _ in ATTACHED_VALID] == [
        "rfc7515-A.1", "rfc7515-A.2", "rfc7515-A.3", "rfc7515-A.4",
        "rfc7520-4.1", "rfc7520-4.2", "rfc7520-4.3", "rfc7520-4.4",
        "rfc8037-A.4",
    ]
    assert [i for i, _ in DETACHED] == ["rfc7520-4.5"]
    assert [i for i, _ in NEGATIVE] == ["rfc7515-A.5"]
    assert [i for i, _ in THUMBPRINTS] == ["rfc8037-A.3", "rfc7638-3.1"]


# ---- positive vectors: the JWS layer ----------------------------------------------------


@pytest.mark.parametrize("vector", _params(ATTACHED_VALID))
def test_jws_verifier_returns_the_vector_payload(vector: dict[str, Any]) -> None:
    verified = verifier_for(vector).verify_signature(vector["token"])
    assert verified.payload == vector["payload_text"].encode("utf-8")


@pytest.mark.parametrize("vector", _params(ATTACHED_VALID))
def test_jws_verifier_returns_the_vector_header(vector: dict[str, Any]) -> None:
    verified = verifier_for(vector).verify_signature(vector["token"])
    assert verified.header == json.loads(vector["protected_header"])
    assert verified.key.alg == vector["alg"]


@pytest.mark.parametrize("vector", _params(ATTACHED_VALID))
def test_vector_with_a_modified_payload_is_rejected(vector: dict[str, Any]) -> None:
    header, _, signature = vector["token"].split(".")
    forged = f"{header}.{b64url_encode(b'tampered')}.{signature}"
    with pytest.raises(BadSignature):
        verifier_for(vector).verify_signature(forged)


@pytest.mark.parametrize("vector", _params(DETERMINISTIC))
def test_resigning_a_deterministic_vector_reproduces_its_signature(vector: dict[str, Any]) -> None:
    header_b64, _, signature_b64 = vector["token"].split(".")
    # payload_b64 rather than the token's middle segment, so that the detached 4.5 counts too.
    signing_input = f"{header_b64}.{vector['payload_b64']}".encode("ascii")
    assert Key.from_jwk(vector["key"]).sign(signing_input) == b64url_decode(signature_b64)


@pytest.mark.parametrize("vector", _params(RANDOMISED))
def test_a_fresh_signature_with_a_randomised_vector_key_verifies(vector: dict[str, Any]) -> None:
    # ECDSA and RSASSA-PSS signatures are randomised: the RFC's own cannot be reproduced,
    # but one made now with the RFC's private key must verify under its public key.
    header_b64, payload_b64, _ = vector["token"].split(".")
    signing_input = f"{header_b64}.{payload_b64}"
    signature = Key.from_jwk(vector["key"]).sign(signing_input.encode("ascii"))
    token = f"{signing_input}.{b64url_encode(signature)}"
    assert verifier_for(vector).verify_signature(token).payload == vector["payload_text"].encode()


# ---- positive vectors: JWT claims (RFC 7515 A.1-A.3) -------------------------------------


@pytest.mark.parametrize("vector", _params(JWT_VECTORS))
def test_verifier_rejects_rfc_jwt_without_aud_as_missing_claim(vector: dict[str, Any]) -> None:
    # The RFC's claims set is {"iss": "joe", "exp": ..., "http://example.com/is_root": true}:
    # signature, exp and iss pass at verify_at, and a mandatory aud is absent.
    key = Key.from_jwk(vector.get("public_key") or vector["key"])
    verifier = Verifier(
        KeySet([key]), issuer="joe", audience=AUD, algorithms=[vector["alg"]],
        clock=FakeClock(vector["verify_at"]),
    )
    with pytest.raises(MissingClaim) as caught:
        verifier.verify(vector["token"])
    assert caught.value.code == "missing_claim"
    assert caught.value.claim == "aud"


@pytest.mark.parametrize("vector", _params(JWT_VECTORS))
def test_verifier_rejects_rfc_jwt_as_expired_after_its_exp(vector: dict[str, Any]) -> None:
    key = Key.from_jwk(vector.get("public_key") or vector["key"])
    exp = json.loads(vector["payload_text"])["exp"]
    verifier = Verifier(
        KeySet([key]), issuer="joe", audience=AUD, algorithms=[vector["alg"]],
        clock=FakeClock(exp + 3600), leeway=0,
    )
    with pytest.raises(Expired) as caught:
        verifier.verify(vector["token"])
    assert caught.value.code == "expired"


# ---- negative vectors (A.5, alg "none") -------------------------------------------------


@pytest.mark.parametrize("vector", _params(NEGATIVE))
def test_negative_vector_is_rejected_with_its_code_even_with_every_algorithm_allowed(
    vector: dict[str, Any],
) -> None:
    verifier = JWSVerifier(every_algorithm_keys(), algorithms=list(ALGORITHMS))
    with pytest.raises(JWTError) as caught:
        verifier.verify_signature(vector["token"])
    assert caught.value.code == vector["expect"]["error"]


@pytest.mark.parametrize("vector", _params(NEGATIVE))
def test_negative_vector_is_rejected_by_a_jwt_verifier_at_its_verify_time(
    vector: dict[str, Any],
) -> None:
    verifier = Verifier(
        every_algorithm_keys(), issuer="joe", audience=AUD, algorithms=list(ALGORITHMS),
        clock=FakeClock(vector["verify_at"]),
    )
    with pytest.raises(JWTError) as caught:
        verifier.verify(vector["token"])
    assert caught.value.code == vector["expect"]["error"]


# ---- detached content (RFC 7520 4.5) ----------------------------------------------------
# jwtwarden does not support detached content (RFC 7515 Appendix F): a compact token is
# verified over its own three segments, so the empty payload segment is what gets verified.


@pytest.mark.parametrize("vector", _params(DETACHED))
def test_detached_vector_parses_with_an_empty_payload(vector: dict[str, Any]) -> None:
    assert split(vector["token"])[1] == ""
    header, payload, signature = decode_segments(vector["token"])
    assert header == json.loads(vector["protected_header"])
    assert payload == b""
    assert len(signature) == 32  # an HS256 tag


@pytest.mark.parametrize("vector", _params(DETACHED))
def test_detached_vector_does_not_verify_as_a_compact_token(vector: dict[str, Any]) -> None:
    with pytest.raises(BadSignature) as caught:
        verifier_for(vector).verify_signature(vector["token"])
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize("vector", _params(DETACHED))
def test_detached_vector_verifies_once_its_payload_is_attached(vector: dict[str, Any]) -> None:
    # Shows the rejection above is due to detachment alone, not to the key or signature.
    header_b64, _, signature_b64 = vector["token"].split(".")
    attached = f"{header_b64}.{vector['payload_b64']}.{signature_b64}"
    verified = verifier_for(vector).verify_signature(attached)
    assert verified.payload == vector["payload_text"].encode("utf-8")


# ---- thumbprints (RFC 7638 3.1, RFC 8037 A.3) -------------------------------------------


def _key_for_thumbprint(jwk: dict[str, Any]) -> Key:
    # RFC 8037 A.3's key carries no alg; the algorithm does not enter the thumbprint.
    return Key.from_jwk(jwk, alg=None if "alg" in jwk else "EdDSA")


@pytest.mark.parametrize("item", _params(THUMBPRINTS))
def test_key_thumbprint_matches_the_rfc(item: dict[str, Any]) -> None:
    assert _key_for_thumbprint(item["key"]).thumbprint() == item["thumbprint"]


@pytest.mark.parametrize("item", _params([(i, t) for i, t in THUMBPRINTS if "kid" not in t["key"]]))
def test_key_without_kid_takes_its_thumbprint_as_kid(item: dict[str, Any]) -> None:
    assert _key_for_thumbprint(item["key"]).kid == item["thumbprint"]


@pytest.mark.parametrize("item", _params(RFC8037_KEYS))
def test_rfc8037_private_and_public_keys_share_the_a3_thumbprint(item: dict[str, Any]) -> None:
    (expected,) = (t["thumbprint"] for _, t in THUMBPRINTS if t["source"].startswith("RFC 8037"))
    assert Key.from_jwk(item["jwk"]).thumbprint() == expected
