"""The known JWT attacks, each refused by Verifier with the expected code.

Every forged token here is built the way an attacker would: from a genuine token, the
public key the attacker can download, and whatever secret the attack guesses.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from jwtwarden import Issuer, Key, KeySet, Verifier, errors
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.keys import AsymmetricKey
from jwtwarden.testing import FakeClock
from tests.conftest import AUD, ISS, NOW, keyset_for

Sign = Callable[[bytes], bytes]


def segment(obj: Any) -> str:
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def forge(header: Any, payload: Any, sign: Sign | None = None, *, raw_header: str | None = None,
          raw_payload: str | None = None) -> str:
    """A compact JWS with any header and payload, signed by ``sign`` (or unsigned)."""
    h = raw_header if raw_header is not None else segment(header)
    p = raw_payload if raw_payload is not None else segment(payload)
    signature = sign(f"{h}.{p}".encode()) if sign else b""
    return f"{h}.{p}.{b64url_encode(signature)}"


def hmac_sign(secret: bytes, hash_: hashes.HashAlgorithm | None = None) -> Sign:
    def sign(data: bytes) -> bytes:
        h = hmac.HMAC(secret, hash_ or hashes.SHA256())
        h.update(data)
        return h.finalize()

    return sign


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS, "sub": "u1", "aud": AUD, "iat": int(NOW), "exp": int(NOW) + 600,
        "jti": "j1", "role": "user",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def es() -> tuple[KeySet, Verifier, str]:
    keys = keyset_for("ES256")
    clock = FakeClock(NOW)
    verifier = Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"], clock=clock)
    token = Issuer(keys, issuer=ISS, audience=AUD, clock=clock).issue("u1", {"role": "user"})
    return keys, verifier, token


@pytest.fixture
def rs() -> tuple[KeySet, Verifier, str]:
    keys = keyset_for("RS256")
    clock = FakeClock(NOW)
    verifier = Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["RS256"], clock=clock)
    token = Issuer(keys, issuer=ISS, audience=AUD, clock=clock).issue("u1", {"role": "user"})
    return keys, verifier, token


def rejects(verifier: Verifier, token: str | bytes, code: str) -> None:
    with pytest.raises(errors.JWTError) as info:
        verifier.verify(token)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"


def test_the_genuine_token_is_accepted(es: tuple[KeySet, Verifier, str]) -> None:
    assert es[1].verify(es[2]).sub == "u1"


# ---- alg: none ----------------------------------------------------------------------------

NONE_SPELLINGS = ["none", "None", "NONE", "nOnE", "none ", " none", "none\x00"]


@pytest.mark.parametrize("spelling", NONE_SPELLINGS)
@pytest.mark.parametrize("keep_signature", [False, True], ids=["unsigned", "old-signature"])
def test_alg_none_in_any_spelling_is_not_allowed(
    es: tuple[KeySet, Verifier, str], spelling: str, keep_signature: bool
) -> None:
    keys, verifier, token = es
    kid = next(iter(keys)).kid
    forged = forge({"alg": spelling, "kid": kid, "typ": "at+jwt"}, claims(role="admin"))
    if keep_signature:
        forged = forged + token.rsplit(".", 1)[1]
    rejects(verifier, forged, "alg_not_allowed")


def test_alg_none_is_refused_even_when_every_algorithm_is_allowed() -> None:
    keys = keyset_for("HS256")
    verifier = Verifier(keys, issuer=ISS, audience=AUD, algorithms=["HS256", "ES256", "RS256"],
                        clock=FakeClock(NOW))
    rejects(verifier, forge({"alg": "none"}, claims()), "alg_not_allowed")


def test_alg_none_cannot_be_put_in_the_allowlist() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Verifier(keyset_for("HS256"), issuer=ISS, audience=AUD, algorithms=["none"])


# ---- HMAC / public-key confusion ---------------------------------------------------------


def public_key_encodings(key: AsymmetricKey) -> dict[str, bytes]:
    pub = key.public_key
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = b""
    if key.alg.startswith(("RS", "PS")):
        pkcs1 = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    encodings = {
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "der": pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk-json": json.dumps(key.to_jwk()).encode(),
        "jwk-json-compact": json.dumps(key.to_jwk(), separators=(",", ":")).encode(),
    }
    if pkcs1:
        encodings["pkcs1-pem"] = pkcs1
    return encodings


ENCODINGS = ["pem", "pem-no-newline", "der", "jwk-json", "jwk-json-compact"]


@pytest.mark.parametrize(
    ("fixture", "encoding"),
    [("rs", e) for e in [*ENCODINGS, "pkcs1-pem"]] + [("es", e) for e in ENCODINGS],
)
@pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no-kid"])
def test_hs256_signed_with_the_public_key_is_rejected(
    request: pytest.FixtureRequest, fixture: str, encoding: str, with_kid: bool
) -> None:
    keys, verifier, _ = request.getfixturevalue(fixture)
    key = next(iter(keys.public()))
    assert isinstance(key, AsymmetricKey)
    secret = public_key_encodings(key)[encoding]
    header: dict[str, str] = {"alg": "HS256", "typ": "at+jwt"}
    if with_kid:
        header["kid"] = key.kid
    rejects(verifier, forge(header, claims(role="admin"), hmac_sign(secret)), "alg_not_allowed")


def test_key_confusion_fails_even_when_hs256_is_also_allowed(rs: tuple[KeySet, Verifier, str]) -> None:
    """A verifier allowing HS256 (with its own secret) and RS256 still binds alg to the key."""
    keys, _, _ = rs
    rsa_key = next(iter(keys.public()))
    assert isinstance(rsa_key, AsymmetricKey)
    both = keys.public() + KeySet([Key.generate("HS256", kid="hmac-1")])
    verifier = Verifier(both, issuer=ISS, audience=AUD, algorithms=["RS256", "HS256"], clock=FakeClock(NOW))
    pem = public_key_encodings(rsa_key)["pem"]
    forged = forge({"alg": "HS256", "kid": rsa_key.kid}, claims(role="admin"), hmac_sign(pem))
    rejects(verifier, forged, "alg_not_allowed")


def test_a_public_key_cannot_become_an_hmac_key(rs: tuple[KeySet, Verifier, str]) -> None:
    rsa_key = next(iter(rs[0].public()))
    assert isinstance(rsa_key, AsymmetricKey)
    with pytest.raises(errors.InvalidKey):
        AsymmetricKey(rsa_key.public_key, "HS256")
    with pytest.raises(errors.InvalidKey):
        Key.from_jwk(rsa_key.to_jwk() | {"alg": "HS256"})


# ---- kid injection ------------------------------------------------------------------------

KID_INJECTIONS = [
    "../../../../../../dev/null",
    "/dev/null",
    "..\\..\\..\\windows\\win.ini",
    "' OR '1'='1",
    "x' UNION SELECT 'secret' --",
    "key1; DROP TABLE keys",
    "|cat /etc/passwd",
    "$(id)",
    "http://attacker.example/key",
    "\x00",
    "",
]


@pytest.mark.parametrize("kid", KID_INJECTIONS)
@pytest.mark.parametrize("secret", [b"", b"\x00", b"secret", b"AA=="], ids=["empty", "nul", "word", "b64"])
def test_kid_injection_with_a_matching_forged_signature_finds_no_key(kid: str, secret: bytes) -> None:
    keys = keyset_for("HS256")
    verifier = Verifier(keys, issuer=ISS, audience=AUD, algorithms=["HS256"], clock=FakeClock(NOW))
    forged = forge({"alg": "HS256", "kid": kid}, claims(role="admin"), hmac_sign(secret))
    rejects(verifier, forged, "unknown_key")


def test_kid_of_the_wrong_type_is_malformed(es: tuple[KeySet, Verifier, str]) -> None:
    for kid in (1, ["a"], {"$ne": None}, True):
        rejects(es[1], forge({"alg": "ES256", "kid": kid}, claims()), "malformed")


# ---- keys embedded in or fetched by the header -------------------------------------------


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_header_that_names_its_own_key_is_refused(es: tuple[KeySet, Verifier, str], member: str) -> None:
    attacker = Key.generate("ES256")
    values: dict[str, Any] = {
        "jwk": attacker.public().to_jwk(),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIB"],
    }
    header = {"alg": "ES256", "kid": attacker.kid, member: values[member]}
    forged = forge(header, claims(role="admin"), attacker.sign)
    rejects(es[1], forged, "unsupported_header")


def test_embedded_jwk_is_never_used_even_when_key_headers_are_ignored(es: tuple[KeySet, Verifier, str]) -> None:
    """CVE-2018-0114: with key headers tolerated, the attacker's embedded key still isn't trusted."""
    keys, _, _ = es
    verifier = Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                        clock=FakeClock(NOW), unsafe_ignore_key_headers=True)
    attacker = Key.generate("ES256")
    kid = next(iter(keys)).kid
    forged = forge({"alg": "ES256", "kid": kid, "jwk": attacker.public().to_jwk()},
                   claims(role="admin"), attacker.sign)
    rejects(verifier, forged, "bad_signature")


@pytest.mark.parametrize(
    ("member", "value"),
    [("crit", ["exp"]), ("crit", []), ("b64", False), ("b64", True), ("zip", "DEF"), ("enc", "A256GCM")],
)
def test_unsupported_processing_headers_are_refused(
    es: tuple[KeySet, Verifier, str], member: str, value: Any
) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    forged = forge({"alg": "ES256", "kid": key.kid, member: value}, claims(), key.sign)
    rejects(verifier, forged, "unsupported_header")


def test_nested_jwt_content_type_is_refused(es: tuple[KeySet, Verifier, str]) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    forged = forge({"alg": "ES256", "kid": key.kid, "cty": "JWT"}, claims(), key.sign)
    rejects(verifier, forged, "unsupported_header")


# ---- ECDSA signature forms ---------------------------------------------------------------


def test_all_zero_ecdsa_signature_is_rejected(es: tuple[KeySet, Verifier, str]) -> None:
    """CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify."""
    _, verifier, token = es
    head, body, _ = token.split(".")
    rejects(verifier, f"{head}.{body}.{b64url_encode(bytes(64))}", "bad_signature")


def test_ecdsa_signature_with_r_or_s_equal_to_the_curve_order_is_rejected(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, _ = token.split(".")
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for r, s in ((n, n), (n, 1), (1, n), (0, 1)):
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        rejects(verifier, f"{head}.{body}.{b64url_encode(sig)}", "bad_signature")


def test_der_encoded_ecdsa_signature_is_rejected(es: tuple[KeySet, Verifier, str]) -> None:
    keys, verifier, token = es
    key = next(iter(keys))
    assert isinstance(key, AsymmetricKey)
    head, body, _ = token.split(".")
    private = key._private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    der = private.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    utils.decode_dss_signature(der)  # it really is a valid DER signature of this input
    rejects(verifier, f"{head}.{body}.{b64url_encode(der)}", "bad_signature")


def test_truncated_and_extended_signatures_are_rejected(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    for bad in (raw[:-1], raw + b"\x00", b"", raw[:32]):
        rejects(verifier, f"{head}.{body}.{b64url_encode(bad)}", "bad_signature")


def test_signature_from_another_token_is_rejected(es: tuple[KeySet, Verifier, str]) -> None:
    keys, verifier, token = es
    other = Issuer(keys, issuer=ISS, audience=AUD, clock=FakeClock(NOW)).issue("u2")
    head, body, _ = token.split(".")
    rejects(verifier, f"{head}.{body}.{other.split('.')[2]}", "bad_signature")


def test_claims_changed_without_re_signing_are_rejected(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, _, sig = token.split(".")
    rejects(verifier, f"{head}.{segment(claims(role='admin'))}.{sig}", "bad_signature")


# ---- encoding tricks ---------------------------------------------------------------------


def test_padded_base64_is_malformed(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, sig = token.split(".")
    padded = [f"{head}=.{body}.{sig}", f"{head}.{body}==.{sig}", f"{head}.{body}.{sig}=="]
    for forged in padded:
        rejects(verifier, forged, "malformed")


def test_standard_alphabet_base64_is_malformed(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, sig = token.split(".")
    std = sig.replace("-", "+").replace("_", "/")
    if std == sig:  # make sure the alphabet really differs
        std = "+" + sig[1:]
    rejects(verifier, f"{head}.{body}.{std}", "malformed")


def test_whitespace_inside_a_segment_is_malformed(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, sig = token.split(".")
    for forged in (f"{head}.{body[:5]} {body[5:]}.{sig}", f"{head}.{body}.{sig}\n", f" {token}"):
        rejects(verifier, forged, "malformed")


def test_non_canonical_trailing_bits_are_malformed(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, sig = token.split(".")
    # a 64-byte signature encodes to 86 chars: the last one carries 4 unused bits
    last = sig[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) | 1]
    rejects(verifier, f"{head}.{body}.{sig[:-1]}{sibling}", "malformed")


@pytest.mark.parametrize("where", ["header", "payload"])
def test_duplicate_member_names_are_malformed(es: tuple[KeySet, Verifier, str], where: str) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    header_text = '{"alg":"ES256","kid":"%s"}' % key.kid  # noqa: UP031
    payload_text = json.dumps(claims())
    if where == "header":
        header_text = '{"alg":"ES256","alg":"ES256","kid":"%s"}' % key.kid  # noqa: UP031
    else:
        payload_text = payload_text[:-1] + ', "role": "admin"}'
    forged = forge(None, None, key.sign, raw_header=b64url_encode(header_text.encode()),
                   raw_payload=b64url_encode(payload_text.encode()))
    rejects(verifier, forged, "malformed")


@pytest.mark.parametrize("exp", ["9999999999", True, None, [1], {"t": 1}, "soon"])
def test_non_numeric_exp_is_malformed(es: tuple[KeySet, Verifier, str], exp: Any) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    payload = claims()
    payload["exp"] = exp
    rejects(verifier, forge({"alg": "ES256", "kid": key.kid}, payload, key.sign), "malformed")


def test_exp_as_infinity_or_nan_is_malformed(es: tuple[KeySet, Verifier, str]) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    for text in ("1e999", "Infinity", "NaN"):
        body = json.dumps(claims()).replace(str(int(NOW) + 600), text)
        forged = forge(None, None, key.sign, raw_header=segment({"alg": "ES256", "kid": key.kid}),
                       raw_payload=b64url_encode(body.encode()))
        rejects(verifier, forged, "malformed")


def test_missing_exp_is_refused(es: tuple[KeySet, Verifier, str]) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    rejects(verifier, forge({"alg": "ES256", "kid": key.kid}, claims(exp=None), key.sign), "missing_claim")


def test_expired_signed_token_is_refused(es: tuple[KeySet, Verifier, str]) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    forged = forge({"alg": "ES256", "kid": key.kid}, claims(exp=int(NOW) - 3600), key.sign)
    rejects(verifier, forged, "expired")


@pytest.mark.parametrize("iss", [ISS[:-1], ISS + "/", ISS + ".evil.example", ISS.upper(), "", [ISS]])
def test_issuer_that_only_resembles_ours_is_refused(es: tuple[KeySet, Verifier, str], iss: Any) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    code = "malformed" if isinstance(iss, list) else "bad_issuer"
    rejects(verifier, forge({"alg": "ES256", "kid": key.kid}, claims(iss=iss), key.sign), code)


@pytest.mark.parametrize("aud", [["other"], [], [AUD.upper()], AUD + "x", ["x", AUD + " "]])
def test_audience_list_without_ours_is_refused(es: tuple[KeySet, Verifier, str], aud: Any) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    rejects(verifier, forge({"alg": "ES256", "kid": key.kid}, claims(aud=aud), key.sign), "bad_audience")


def test_oversized_token_is_refused_before_decoding(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, sig = token.split(".")
    rejects(verifier, f"{head}.{body}{'A' * 9000}.{sig}", "token_too_large")
    rejects(verifier, ("x" * 100_000).encode(), "token_too_large")


@pytest.mark.parametrize("where", ["header", "payload"])
def test_deeply_nested_json_is_malformed(es: tuple[KeySet, Verifier, str], where: str) -> None:
    keys, verifier, _ = es
    key = next(iter(keys))
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    header: dict[str, Any] = {"alg": "ES256", "kid": key.kid}
    payload = claims()
    (header if where == "header" else payload)["x"] = deep
    rejects(verifier, forge(header, payload, key.sign), "malformed")


def test_two_or_four_segments_are_malformed(es: tuple[KeySet, Verifier, str]) -> None:
    _, verifier, token = es
    head, body, sig = token.split(".")
    for forged in (f"{head}.{body}", f"{head}.{body}.{sig}.{sig}", f"{head}..{sig}", "", ".."):
        rejects(verifier, forged, "malformed")


def test_a_token_for_another_typ_is_refused_when_typ_is_required() -> None:
    keys = keyset_for("ES256")
    clock = FakeClock(NOW)
    verifier = Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                        typ="at+jwt", clock=clock)
    id_token = Issuer(keys, issuer=ISS, audience=AUD, typ="JWT", clock=clock).issue("u1")
    rejects(verifier, id_token, "bad_type")
