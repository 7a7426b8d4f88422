"""The one immutable table of JWS algorithms (RFC 7518 section 3, RFC 8037 section 3.1).

Each entry says which key type and curve the algorithm needs, which hash it uses and the
minimum key size. ``none`` is not in the table, and nothing can add to it.

``make_signer`` / ``make_verifier`` turn a key of the right type into a prepared callable
that does exactly one primitive call from ``cryptography``; every per-key object (padding,
hash, pre-keyed HMAC context) is built once, not per token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from jwtwarden.errors import BadSignature

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Kty",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "Verify",
    "make_signer",
    "make_verifier",
]

Kty = Literal["oct", "RSA", "EC", "OKP"]
Family = Literal["HMAC", "RSASSA-PKCS1-v1_5", "RSASSA-PSS", "ECDSA", "EdDSA"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Signer = Callable[[bytes], bytes]
Verify = Callable[[bytes, bytes], None]
"""``verify(signing_input, signature)`` returns ``None`` or raises :class:`BadSignature`."""


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    kty: Kty
    family: Family
    hash: hashes.HashAlgorithm | None
    curve: str | None  # JWK "crv" for EC and OKP keys
    min_key_bits: int  # HMAC: the hash size; RSA: 2048; EC/OKP: the curve's size
    coordinate_size: int = 0  # ECDSA: bytes of r and of s in the raw r||s signature


def _table(*algs: Algorithm) -> Mapping[str, Algorithm]:
    return MappingProxyType({a.name: a for a in algs})


ALGORITHMS: Mapping[str, Algorithm] = _table(
    Algorithm("HS256", "oct", "HMAC", hashes.SHA256(), None, 256),
    Algorithm("HS384", "oct", "HMAC", hashes.SHA384(), None, 384),
    Algorithm("HS512", "oct", "HMAC", hashes.SHA512(), None, 512),
    Algorithm("RS256", "RSA", "RSASSA-PKCS1-v1_5", hashes.SHA256(), None, 2048),
    Algorithm("RS384", "RSA", "RSASSA-PKCS1-v1_5", hashes.SHA384(), None, 2048),
    Algorithm("RS512", "RSA", "RSASSA-PKCS1-v1_5", hashes.SHA512(), None, 2048),
    Algorithm("PS256", "RSA", "RSASSA-PSS", hashes.SHA256(), None, 2048),
    Algorithm("PS384", "RSA", "RSASSA-PSS", hashes.SHA384(), None, 2048),
    Algorithm("PS512", "RSA", "RSASSA-PSS", hashes.SHA512(), None, 2048),
    Algorithm("ES256", "EC", "ECDSA", hashes.SHA256(), "P-256", 256, 32),
    Algorithm("ES384", "EC", "ECDSA", hashes.SHA384(), "P-384", 384, 48),
    Algorithm("ES512", "EC", "ECDSA", hashes.SHA512(), "P-521", 521, 66),
    Algorithm("EdDSA", "OKP", "EdDSA", None, "Ed25519", 256),
)

CURVES: Mapping[str, type[ec.EllipticCurve]] = MappingProxyType(
    {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
)


def _hash(alg: Algorithm) -> hashes.HashAlgorithm:
    if alg.hash is None:  # pragma: no cover - only EdDSA, which never asks
        raise AssertionError(alg.name)
    return alg.hash


def _pss(alg: Algorithm) -> padding.PSS:
    # RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash output.
    h = _hash(alg)
    return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)


def make_signer(alg: Algorithm, key: bytes | PrivateKey) -> Signer:
    """A callable producing the JWS signature of ``signing_input`` with ``key``.

    ``key`` must already fit ``alg`` (the keys layer checks type, curve and size).
    """
    family = alg.family
    if family == "HMAC":
        if not isinstance(key, bytes):
            raise TypeError("HMAC needs a secret")
        base = hmac.HMAC(key, _hash(alg))

        def sign_hmac(data: bytes) -> bytes:
            h = base.copy()
            h.update(data)
            return h.finalize()

        return sign_hmac
    if family == "ECDSA":
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("ECDSA needs an EC private key")
        ecdsa = ec.ECDSA(_hash(alg))
        size = alg.coordinate_size
        sign_der = key.sign

        def sign_ecdsa(data: bytes) -> bytes:
            r, s = decode_dss_signature(sign_der(data, ecdsa))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        return sign_ecdsa
    if family == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise TypeError("EdDSA needs an Ed25519 private key")
        return key.sign
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("RSA algorithms need an RSA private key")
    pad: padding.AsymmetricPadding = (
        _pss(alg) if family == "RSASSA-PSS" else padding.PKCS1v15()
    )
    h = _hash(alg)
    sign_rsa = key.sign
    return lambda data: sign_rsa(data, pad, h)


def make_verifier(alg: Algorithm, key: bytes | PublicKey) -> Verify:
    """A callable that raises :class:`BadSignature` unless the signature is valid.

    Signature lengths are exact: an ECDSA signature is raw ``r || s`` of exactly twice the
    coordinate size (DER or any other length is refused before the primitive runs).
    """
    family = alg.family
    if family == "HMAC":
        if not isinstance(key, bytes):
            raise TypeError("HMAC needs a secret")
        base = hmac.HMAC(key, _hash(alg))

        def verify_hmac(data: bytes, signature: bytes) -> None:
            h = base.copy()
            h.update(data)
            try:
                h.verify(signature)  # constant-time comparison
            except InvalidSignature:
                raise BadSignature from None

        return verify_hmac
    if family == "ECDSA":
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise TypeError("ECDSA needs an EC public key")
        ecdsa = ec.ECDSA(_hash(alg))
        size = alg.coordinate_size
        expected = 2 * size
        verify_der = key.verify
        from_bytes = int.from_bytes

        def verify_ecdsa(data: bytes, signature: bytes) -> None:
            if len(signature) != expected:
                raise BadSignature("ECDSA signature must be raw r||s of the curve's size")
            der = encode_dss_signature(
                from_bytes(signature[:size], "big"), from_bytes(signature[size:], "big")
            )
            try:
                verify_der(der, data, ecdsa)
            except InvalidSignature:
                raise BadSignature from None

        return verify_ecdsa
    if family == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise TypeError("EdDSA needs an Ed25519 public key")
        verify_ed = key.verify

        def verify_eddsa(data: bytes, signature: bytes) -> None:
            if len(signature) != 64:
                raise BadSignature
            try:
                verify_ed(signature, data)
            except InvalidSignature:
                raise BadSignature from None

        return verify_eddsa
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("RSA algorithms need an RSA public key")
    pad: padding.AsymmetricPadding = (
        _pss(alg) if family == "RSASSA-PSS" else padding.PKCS1v15()
    )
    h = _hash(alg)
    modulus_bytes = (key.key_size + 7) // 8
    verify_rsa = key.verify

    def verify_rsassa(data: bytes, signature: bytes) -> None:
        if len(signature) != modulus_bytes:
            raise BadSignature
        try:
            verify_rsa(signature, data, pad, h)
        except InvalidSignature:
            raise BadSignature from None

    return verify_rsassa
