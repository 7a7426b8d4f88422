"""Deliberately vulnerable token checks, ONE flaw each. TEST CODE ONLY: never copy any of it.

Each verify function raises :class:`Rejected` to refuse a token and returns the claims to
accept it. Apart from its one flaw each is careful (pinned algorithm, constant-time
comparison, ``crit``/``zip``/key headers refused, ``exp``/``nbf``/``iss``/``aud`` checked),
so a scan must report exactly that flaw and nothing else. Written by hand on
``cryptography`` and the standard library, the way such code is found in the wild.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ISS = "https://auth.scan-target.test"
AUD = "scan-target"

Verify = Callable[[str], Mapping[str, Any]]

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


class Rejected(Exception):
    """The token is refused."""


def _b64(segment: str) -> bytes:
    try:  # lenient, like most hand-written decoders: padding added, any padding accepted
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise Rejected("bad base64") from None


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Rejected("bad JSON") from None
    if not isinstance(value, dict):
        raise Rejected("not an object")
    return value


def _split(token: str) -> tuple[str, str, str, dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3:
        raise Rejected("not three segments")
    return parts[0], parts[1], parts[2], _json(_b64(parts[0]))


def _check_header(header: Mapping[str, Any], *, allow: frozenset[str] = frozenset()) -> None:
    for name in ("crit", "b64", "zip", "jwk", "jku", "x5u", "x5c"):
        if name in header and name not in allow:
            raise Rejected(f"header {name} refused")


def _check_claims(claims: Mapping[str, Any], *, check_time: bool = True) -> None:
    now = time.time()
    if check_time:
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now:
            raise Rejected("expired or no exp")
        nbf = claims.get("nbf", 0)
        if not isinstance(nbf, int | float) or nbf > now + 30:
            raise Rejected("not yet valid")
    if claims.get("iss") != ISS:
        raise Rejected("issuer")
    aud = claims.get("aud")
    if aud != AUD and not (isinstance(aud, list) and AUD in aud):
        raise Rejected("audience")


def _verify_es256(public: ec.EllipticCurvePublicKey, signing_input: bytes, sig: bytes) -> None:
    if len(sig) != 64:
        raise Rejected("bad signature length")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected("bad signature") from None


def _verify_hmac(secret: bytes, alg: str, signing_input: bytes, sig: bytes) -> None:
    expected = hmac.new(secret, signing_input, _HASHES[alg]).digest()
    if not hmac.compare_digest(expected, sig):
        raise Rejected("bad signature")


def alg_from_header(public_pem: bytes, public: rsa.RSAPublicKey) -> Verify:
    """FLAW: the algorithm is read from the token, and the PEM is the 'key' for every alg."""

    def verify(token: str) -> Mapping[str, Any]:
        h, p, s, header = _split(token)
        _check_header(header)
        signing_input, sig = f"{h}.{p}".encode(), _b64(s)
        alg = header.get("alg")
        if alg in _HASHES:  # the RS256 key's PEM becomes an HMAC secret
            _verify_hmac(public_pem, str(alg), signing_input, sig)
        elif alg == "RS256":
            try:
                public.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                raise Rejected("bad signature") from None
        else:
            raise Rejected("unsupported alg")
        claims = _json(_b64(p))
        _check_claims(claims)
        return claims

    return verify


def no_verify() -> Verify:
    """FLAW: the payload is decoded and trusted; the signature is never checked."""

    def verify(token: str) -> Mapping[str, Any]:
        _h, p, _s, _header = _split(token)
        return _json(_b64(p))

    return verify


def weak_secret(secret: bytes) -> Verify:
    """FLAW: HS256 done right, with a secret from every word list."""

    def verify(token: str) -> Mapping[str, Any]:
        h, p, s, header = _split(token)
        _check_header(header)
        if header.get("alg") != "HS256":
            raise Rejected("alg")
        _verify_hmac(secret, "HS256", f"{h}.{p}".encode(), _b64(s))
        claims = _json(_b64(p))
        _check_claims(claims)
        return claims

    return verify


def _ec_from_jwk(jwk: Any) -> ec.EllipticCurvePublicKey:
    try:
        x = int.from_bytes(_b64(jwk["x"]), "big")
        y = int.from_bytes(_b64(jwk["y"]), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, TypeError, ValueError):
        raise Rejected("bad jwk") from None


def embedded_jwk(public: ec.EllipticCurvePublicKey) -> Verify:
    """FLAW (CVE-2018-0114): a key embedded in the header is used to verify the token."""

    def verify(token: str) -> Mapping[str, Any]:
        h, p, s, header = _split(token)
        _check_header(header, allow=frozenset({"jwk"}))
        if header.get("alg") != "ES256":
            raise Rejected("alg")
        key = _ec_from_jwk(header["jwk"]) if "jwk" in header else public
        _verify_es256(key, f"{h}.{p}".encode(), _b64(s))
        claims = _json(_b64(p))
        _check_claims(claims)
        return claims

    return verify


def accepts_expired(public: ec.EllipticCurvePublicKey) -> Verify:
    """FLAW: signature, issuer and audience are checked; exp and nbf are not."""

    def verify(token: str) -> Mapping[str, Any]:
        h, p, s, header = _split(token)
        _check_header(header)
        if header.get("alg") != "ES256":
            raise Rejected("alg")
        _verify_es256(public, f"{h}.{p}".encode(), _b64(s))
        claims = _json(_b64(p))
        _check_claims(claims, check_time=False)
        return claims

    return verify
