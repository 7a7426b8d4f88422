"""JSON Web Keys (RFC 7517, RFC 7518 section 6, RFC 8037 section 2) and thumbprints (RFC 7638).

Only the wire format lives here: members to ``cryptography`` key objects and back. Which
algorithm a key may be used with and how strong it must be is the keys layer's business.
Every malformed key raises :class:`~jwtwarden.errors.InvalidKey`; messages never include
key material.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from jwtwarden.errors import InvalidKey, MalformedToken
from jwtwarden.jose.algorithms import CURVES, Kty, PrivateKey, PublicKey
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.strict_json import dumps

__all__ = [
    "PRIVATE_MEMBERS",
    "JWKMaterial",
    "export_jwk",
    "parse_jwk",
    "thumbprint",
]

PRIVATE_MEMBERS: Mapping[str, frozenset[str]] = {
    "oct": frozenset({"k"}),
    "RSA": frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"}),
    "EC": frozenset({"d"}),
    "OKP": frozenset({"d"}),
}
_THUMBPRINT_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "oct": ("k", "kty"),
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
_KTYS: tuple[Kty, ...] = ("oct", "RSA", "EC", "OKP")
_COORDINATE_SIZE = {"P-256": 32, "P-384": 48, "P-521": 66}


@dataclass(frozen=True, slots=True)
class JWKMaterial:
    """The parsed content of one JWK. ``secret``/``private_key`` never appear in ``repr``."""

    kty: Kty
    alg: str | None
    kid: str | None
    use: str | None
    key_ops: tuple[str, ...] | None
    public_key: PublicKey | None
    private_key: PrivateKey | None = field(default=None, repr=False)
    secret: bytes | None = field(default=None, repr=False)


def _str_member(jwk: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = jwk.get(name)
    if value is None:
        if required:
            raise InvalidKey(f"JWK member {name!r} is missing")
        return None
    if not isinstance(value, str):
        raise InvalidKey(f"JWK member {name!r} must be a string")
    return value


def _bytes_member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = _str_member(jwk, name)
    assert value is not None  # noqa: S101 - required=True guarantees it
    try:
        return b64url_decode(value)
    except MalformedToken:
        raise InvalidKey(f"JWK member {name!r} is not base64url") from None


def _int_member(jwk: Mapping[str, Any], name: str) -> int:
    raw = _bytes_member(jwk, name)
    if not raw:
        raise InvalidKey(f"JWK member {name!r} is empty")
    return int.from_bytes(raw, "big")


def _fixed_member(jwk: Mapping[str, Any], name: str, size: int) -> bytes:
    raw = _bytes_member(jwk, name)
    if len(raw) != size:
        raise InvalidKey(f"JWK member {name!r} must be {size} bytes")
    return raw


def _kty(jwk: Mapping[str, Any]) -> Kty:
    kty = jwk.get("kty")
    for known in _KTYS:
        if kty == known:
            return known
    raise InvalidKey("JWK 'kty' must be one of oct, RSA, EC, OKP")


def parse_jwk(jwk: Mapping[str, Any], *, allow_private: bool = True) -> JWKMaterial:
    """Parse one JWK. With ``allow_private=False`` any private member is refused."""
    if not isinstance(jwk, Mapping):
        raise InvalidKey("a JWK must be a JSON object")
    kty: Kty = _kty(jwk)
    present_private = PRIVATE_MEMBERS[kty].intersection(jwk)
    if present_private and not allow_private:
        raise InvalidKey("private key members are not allowed in a key set loaded for verification")
    alg = _str_member(jwk, "alg", required=False)
    kid = _str_member(jwk, "kid", required=False)
    use = _str_member(jwk, "use", required=False)
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (
        not isinstance(key_ops, list)
        or not all(isinstance(op, str) for op in key_ops)
        or len(set(key_ops)) != len(key_ops)
    ):
        raise InvalidKey("JWK 'key_ops' must be a list of distinct strings")
    ops = tuple(key_ops) if key_ops is not None else None
    if kty == "oct":
        return JWKMaterial("oct", alg, kid, use, ops, None, secret=_bytes_member(jwk, "k"))
    if kty == "RSA":
        public, private = _parse_rsa(jwk, bool(present_private))
    elif kty == "EC":
        public, private = _parse_ec(jwk, bool(present_private))
    else:
        public, private = _parse_okp(jwk, bool(present_private))
    return JWKMaterial(kty, alg, kid, use, ops, public, private_key=private)


def _parse_rsa(jwk: Mapping[str, Any], private: bool) -> tuple[PublicKey, PrivateKey | None]:
    public_numbers = rsa.RSAPublicNumbers(_int_member(jwk, "e"), _int_member(jwk, "n"))
    if not private:
        try:
            return public_numbers.public_key(), None
        except ValueError:
            raise InvalidKey("invalid RSA public key") from None
    if "oth" in jwk:
        raise InvalidKey("multi-prime RSA keys ('oth') are not supported")
    d = _int_member(jwk, "d")
    crt = ("p", "q", "dp", "dq", "qi")
    if any(name in jwk for name in crt):
        p, q, dp, dq, qi = (_int_member(jwk, name) for name in crt)
    else:  # RFC 7518 section 6.3.2: the CRT members may be omitted
        try:
            p, q = rsa.rsa_recover_prime_factors(public_numbers.n, public_numbers.e, d)
        except ValueError:
            raise InvalidKey("invalid RSA private key") from None
        dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
    try:
        key = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public_numbers).private_key()
    except ValueError:
        raise InvalidKey("invalid RSA private key") from None
    return key.public_key(), key


def _parse_ec(jwk: Mapping[str, Any], private: bool) -> tuple[PublicKey, PrivateKey | None]:
    crv = _str_member(jwk, "crv")
    if crv is None or crv not in CURVES:
        raise InvalidKey("EC 'crv' must be P-256, P-384 or P-521")
    size = _COORDINATE_SIZE[crv]
    x = int.from_bytes(_fixed_member(jwk, "x", size), "big")
    y = int.from_bytes(_fixed_member(jwk, "y", size), "big")
    curve = CURVES[crv]()
    try:
        public = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError:
        raise InvalidKey("EC point is not on the curve") from None
    if not private:
        return public, None
    d = int.from_bytes(_fixed_member(jwk, "d", size), "big")
    try:
        key = ec.derive_private_key(d, curve)
    except ValueError:
        raise InvalidKey("invalid EC private key") from None
    if key.public_key().public_numbers() != public.public_numbers():
        raise InvalidKey("EC private key does not match its public point")
    return public, key


def _parse_okp(jwk: Mapping[str, Any], private: bool) -> tuple[PublicKey, PrivateKey | None]:
    if _str_member(jwk, "crv") != "Ed25519":
        raise InvalidKey("OKP 'crv' must be Ed25519 (the only signing curve supported)")
    x = _fixed_member(jwk, "x", 32)
    public = ed25519.Ed25519PublicKey.from_public_bytes(x)
    if not private:
        return public, None
    key = ed25519.Ed25519PrivateKey.from_private_bytes(_fixed_member(jwk, "d", 32))
    if key.public_key() != public:
        raise InvalidKey("Ed25519 private key does not match its public key")
    return public, key


def _uint(value: int, size: int = 0) -> str:
    return b64url_encode(value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big"))


def export_jwk(
    *,
    public_key: PublicKey | None = None,
    private_key: PrivateKey | None = None,
    secret: bytes | None = None,
) -> dict[str, str]:
    """Key members (``kty`` and the key itself, no metadata) of exactly one key argument.

    A private key exports its private members as well; pass only its ``public_key()``
    for a public JWK.
    """
    if secret is not None:
        return {"kty": "oct", "k": b64url_encode(secret)}
    key: PrivateKey | PublicKey | None = private_key or public_key
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        pub_numbers = key.public_key().public_numbers() if isinstance(
            key, rsa.RSAPrivateKey
        ) else key.public_numbers()
        members = {"kty": "RSA", "n": _uint(pub_numbers.n), "e": _uint(pub_numbers.e)}
        if isinstance(key, rsa.RSAPrivateKey):
            priv = key.private_numbers()
            members |= {
                "d": _uint(priv.d), "p": _uint(priv.p), "q": _uint(priv.q),
                "dp": _uint(priv.dmp1), "dq": _uint(priv.dmq1), "qi": _uint(priv.iqmp),
            }
        return members
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            public.curve.name
        )
        if crv is None:
            raise InvalidKey("EC curve has no JOSE name")
        size = _COORDINATE_SIZE[crv]
        numbers = public.public_numbers()
        members = {"kty": "EC", "crv": crv, "x": _uint(numbers.x, size), "y": _uint(numbers.y, size)}
        if isinstance(key, ec.EllipticCurvePrivateKey):
            members["d"] = _uint(key.private_numbers().private_value, size)
        return members
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        public_ed = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
        members = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public_ed.public_bytes_raw())}
        if isinstance(key, ed25519.Ed25519PrivateKey):
            members["d"] = b64url_encode(key.private_bytes_raw())
        return members
    raise TypeError("export_jwk needs exactly one supported key")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a JWK's required members."""
    try:
        canonical = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[_kty(jwk)]}
    except KeyError:
        raise InvalidKey("JWK lacks a member its thumbprint needs") from None
    return b64url_encode(hashlib.sha256(dumps(canonical)).digest())
