"""Interoperability with PyJWT and joserfc, used as oracles for all 13 algorithms.

Tokens jwtwarden issues verify with both libraries, tokens both libraries sign verify with
jwtwarden, and keys travel as JWKs in both directions. Verifiers get the public key for
asymmetric algorithms and the secret itself for HMAC (which has no public half).

These tests use the real clock: PyJWT validates ``exp`` against the time of day.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, cast

import jwt as pyjwt
import pytest
from joserfc import jwk as joserfc_jwk
from joserfc import jwt as joserfc_jwt
from joserfc.errors import SecurityWarning

from jwtwarden import AsymmetricKey, HMACKey, Issuer, Key, KeySet, Verifier
from jwtwarden.jose.algorithms import ALGORITHMS, PublicKey
from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.jose.jws import decode_segments
from tests.conftest import AUD, ISS, keyset_for, verify_keys


@contextmanager
def joserfc_quiet() -> Iterator[None]:
    """Silence joserfc's SecurityWarning for ``alg: EdDSA``.

    joserfc warns whenever the polymorphic name ``EdDSA`` is used, because RFC 9864
    deprecates it in favour of ``Ed25519``; the warning says nothing about the token.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SecurityWarning)
        yield


def the_key(alg: str) -> Key:
    """The private key (or secret) of the session's key set for ``alg``."""
    (key,) = keyset_for(alg)
    return key


def secret_of(key: Key) -> bytes:
    return b64url_decode(key.to_jwk(private=True)["k"])


def signing_material(key: Key) -> bytes:
    """What PyJWT signs with: the HMAC secret or the PKCS#8 PEM of the private key."""
    if isinstance(key, HMACKey):
        return secret_of(key)
    assert isinstance(key, AsymmetricKey)
    return key.to_pem(private=True)


def verification_material(key: Key) -> bytes | PublicKey:
    """What PyJWT verifies with: the HMAC secret or the public key object."""
    if isinstance(key, HMACKey):
        return secret_of(key)
    assert isinstance(key, AsymmetricKey)
    return key.public_key


def verification_jwks(alg: str) -> dict[str, Any]:
    """The JWKS a verifier would be given: public keys, or the secret for HMAC."""
    keys = verify_keys(keyset_for(alg))
    return keys.to_jwks(private=alg.startswith("HS"))


def verification_jwk(alg: str) -> dict[str, Any]:
    (jwk,) = verification_jwks(alg)["keys"]
    return dict(jwk)


def issue(alg: str) -> str:
    issuer = Issuer(keyset_for(alg), issuer=ISS, audience=AUD)
    return issuer.issue("user-1", {"role": "reader"})


def jwtwarden_verifier(alg: str) -> Verifier:
    return Verifier(verify_keys(keyset_for(alg)), issuer=ISS, audience=AUD, algorithms=[alg])


def foreign_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISS, "aud": AUD, "sub": "user-2", "iat": now, "exp": now + 300, "scope": "read"}


def joserfc_claims_registry() -> joserfc_jwt.JWTClaimsRegistry:
    return joserfc_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISS},
        aud={"essential": True, "value": AUD},
        exp={"essential": True},
        iat={"essential": True},
    )


def joserfc_generate(alg: str) -> Any:
    """A fresh joserfc key of the type, curve and size ``alg`` needs."""
    spec = ALGORITHMS[alg]
    if spec.kty == "oct":
        return joserfc_jwk.generate_key("oct", spec.min_key_bits, parameters={"alg": alg})
    if spec.kty == "RSA":
        return joserfc_jwk.generate_key("RSA", 2048, parameters={"alg": alg})
    if spec.kty == "EC":
        curve = cast(Literal["P-256", "P-384", "P-521"], spec.curve)
        return joserfc_jwk.generate_key("EC", curve, parameters={"alg": alg})
    return joserfc_jwk.generate_key("OKP", "Ed25519", parameters={"alg": alg})


# ---- tokens issued by jwtwarden, verified by the oracles ---------------------------------


def test_pyjwt_verifies_a_token_issued_by_jwtwarden(alg: str) -> None:
    claims = pyjwt.decode(
        issue(alg),
        verification_material(the_key(alg)),
        algorithms=[alg],
        audience=AUD,
        issuer=ISS,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["sub"] == "user-1"
    assert claims["role"] == "reader"


def test_joserfc_verifies_a_token_issued_by_jwtwarden(alg: str) -> None:
    key = joserfc_jwk.import_key(verification_jwk(alg))
    with joserfc_quiet():
        token = joserfc_jwt.decode(issue(alg), key, algorithms=[alg])
    joserfc_claims_registry().validate(token.claims)
    assert token.header == {"alg": alg, "kid": the_key(alg).kid, "typ": "at+jwt"}
    assert token.claims["sub"] == "user-1"


# ---- tokens signed by the oracles, verified by jwtwarden ---------------------------------


def test_jwtwarden_verifies_a_token_signed_by_pyjwt(alg: str) -> None:
    token = pyjwt.encode(foreign_claims(), signing_material(the_key(alg)), algorithm=alg)
    assert decode_segments(token)[0] == {"alg": alg, "typ": "JWT"}  # no kid: one key fits
    claims = jwtwarden_verifier(alg).verify(token)
    assert claims.sub == "user-2"
    assert claims.scopes == {"read"}


def test_jwtwarden_verifies_a_token_signed_by_joserfc(alg: str) -> None:
    key = joserfc_jwk.import_key(the_key(alg).to_jwk(private=True))
    with joserfc_quiet():
        token = joserfc_jwt.encode({"alg": alg}, foreign_claims(), key, algorithms=[alg])
    claims = jwtwarden_verifier(alg).verify(token)
    assert claims.sub == "user-2"


# ---- keys as JWKs, both ways --------------------------------------------------------------


def test_jwks_exported_by_jwtwarden_imports_into_joserfc_keyset(alg: str) -> None:
    key_set = joserfc_jwk.KeySet.import_key_set(verification_jwks(alg))  # type: ignore[arg-type]
    assert [k.kid for k in key_set] == [the_key(alg).kid]
    with joserfc_quiet():
        token = joserfc_jwt.decode(issue(alg), key_set, algorithms=[alg])  # selected by kid
    joserfc_claims_registry().validate(token.claims)


def test_jwk_exported_by_jwtwarden_imports_into_pyjwt(alg: str) -> None:
    key = pyjwt.PyJWK(verification_jwk(alg))
    assert key.key_id == the_key(alg).kid
    assert key.algorithm_name == alg
    claims = pyjwt.decode(issue(alg), key, algorithms=[alg], audience=AUD, issuer=ISS)
    assert claims["sub"] == "user-1"


def test_jwks_exported_by_jwtwarden_imports_into_pyjwt_jwkset(alg: str) -> None:
    key_set = pyjwt.PyJWKSet.from_dict(verification_jwks(alg))
    key = key_set[the_key(alg).kid]
    claims = pyjwt.decode(issue(alg), key, algorithms=[alg], audience=AUD, issuer=ISS)
    assert claims["sub"] == "user-1"


def test_jwtwarden_thumbprint_equals_joserfc_thumbprint(alg: str) -> None:
    assert joserfc_jwk.import_key(verification_jwk(alg)).thumbprint() == the_key(alg).thumbprint()


def test_jwk_exported_by_joserfc_imports_into_jwtwarden(alg: str) -> None:
    foreign = joserfc_generate(alg)
    jwk = foreign.as_dict(private=alg.startswith("HS"))
    key = Key.from_jwk(jwk)
    assert key.alg == alg
    assert key.thumbprint() == foreign.thumbprint()
    with joserfc_quiet():
        token = joserfc_jwt.encode({"alg": alg}, foreign_claims(), foreign, algorithms=[alg])
    verifier = Verifier(KeySet([key]), issuer=ISS, audience=AUD, algorithms=[alg])
    assert verifier.verify(token).sub == "user-2"


@pytest.mark.parametrize("alg", [a for a in ALGORITHMS if not a.startswith("HS")])
def test_private_jwk_exported_by_joserfc_imports_into_jwtwarden_and_signs(alg: str) -> None:
    foreign = joserfc_generate(alg)
    key = Key.from_jwk(foreign.as_dict(private=True))
    assert key.is_private
    token = Issuer(key, issuer=ISS, audience=AUD).issue("user-3")
    with joserfc_quiet():
        decoded = joserfc_jwt.decode(token, foreign, algorithms=[alg])
    joserfc_claims_registry().validate(decoded.claims)
    assert decoded.claims["sub"] == "user-3"
