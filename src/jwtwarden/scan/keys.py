"""The keys a scan works with: the target's public keys, an optional signing key, attacker keys.

None of these go through :class:`jwtwarden.Key`'s strength checks on purpose: the scanner
must be able to attack a target whatever keys it uses (a 1024-bit RSA key, a 6-byte HMAC
secret). Repr and error messages never show key material.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from jwtwarden.errors import JWTError
from jwtwarden.jose.algorithms import (
    ALGORITHMS,
    CURVES,
    PrivateKey,
    PublicKey,
    Signer,
    make_signer,
    make_verifier,
)
from jwtwarden.jose.jwk import PRIVATE_MEMBERS, export_jwk, parse_jwk
from jwtwarden.keys import AsymmetricKey, HMACKey, Key, KeySet
from jwtwarden.scan.errors import BadScanKey

__all__ = [
    "ATTACKER_KID",
    "AttackerKey",
    "PublicKeyInfo",
    "PublicKeySource",
    "SigningKey",
    "SigningKeySource",
    "attacker_certificate",
    "attacker_key",
    "load_public_keys",
    "load_signing_key",
    "pick_public_key",
]

ATTACKER_KID = "jwtwarden-scan-attacker"
"""The ``kid`` of every key the scanner makes up: easy to find in the target's logs."""

_PUBLIC_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)
_PRIVATE_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)

PublicKeySource = Key | KeySet | PublicKey | Mapping[str, Any] | str | bytes
"""A jwtwarden key or key set, a ``cryptography`` public key, a JWK or JWKS (dict or JSON
text), or PEM text (SPKI, PKCS#1 RSA or an X.509 certificate)."""


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    """One public key of the target, with the JWK it was published as (public members only)."""

    key: PublicKey = field(repr=False)
    jwk: Mapping[str, Any] = field(repr=False)
    kid: str | None

    @property
    def kty(self) -> str:
        return str(self.jwk["kty"])


def _info(key: PublicKey, jwk: Mapping[str, Any] | None = None) -> PublicKeyInfo:
    if jwk is None:
        jwk = export_jwk(public_key=key)
    kid = jwk.get("kid")
    return PublicKeyInfo(key, dict(jwk), kid if isinstance(kid, str) else None)


def _from_jwk(jwk: Any) -> PublicKeyInfo | None:
    """A public key from one JWK; ``None`` for keys the scan cannot use (oct, enc)."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") == "oct" or jwk.get("use") == "enc":
        return None
    try:
        material = parse_jwk(jwk, allow_private=True)
    except JWTError:
        return None
    if material.public_key is None:
        return None
    private = PRIVATE_MEMBERS.get(material.kty, frozenset())
    return _info(material.public_key, {k: v for k, v in jwk.items() if k not in private})


def _from_json(data: Any) -> tuple[PublicKeyInfo, ...]:
    if isinstance(data, Mapping) and isinstance(data.get("keys"), list):
        found = tuple(i for i in (_from_jwk(jwk) for jwk in data["keys"]) if i is not None)
        if not found:
            raise BadScanKey("the JWKS holds no usable public signature key")
        return found
    info = _from_jwk(data)
    if info is None:
        raise BadScanKey("not a usable public JWK (an RSA, EC or OKP signature key)")
    return (info,)


def _from_text(data: bytes) -> tuple[PublicKeyInfo, ...]:
    text = data.strip()
    if text.startswith(b"{"):
        try:
            return _from_json(json.loads(text))
        except ValueError:
            raise BadScanKey("the key is not valid JSON") from None
    if b"PRIVATE KEY" in text:
        raise BadScanKey("this is a private key: give only the public key (or use it to sign)")
    loaded: object
    try:
        if b"CERTIFICATE" in text:
            loaded = x509.load_pem_x509_certificate(text).public_key()
        elif text.startswith(b"-----BEGIN"):
            loaded = serialization.load_pem_public_key(text)
        else:
            loaded = serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        raise BadScanKey("not a PEM/DER public key, certificate, JWK or JWKS") from None
    if not isinstance(loaded, _PUBLIC_TYPES):
        raise BadScanKey("unsupported public key type (RSA, EC or Ed25519 only)")
    return (_info(loaded),)


def load_public_keys(source: PublicKeySource) -> tuple[PublicKeyInfo, ...]:
    """Every usable public key of ``source``; :class:`BadScanKey` if there is none."""
    if isinstance(source, KeySet):
        found = tuple(_info(k.public_key, k.public().to_jwk())
                      for k in source if isinstance(k, AsymmetricKey))
        if not found:
            raise BadScanKey("the key set holds no public key (HMAC keys have no public half)")
        return found
    if isinstance(source, HMACKey):
        raise BadScanKey("an HMAC key has no public half; pass it as the signing key")
    if isinstance(source, AsymmetricKey):
        return (_info(source.public_key, source.public().to_jwk()),)
    if isinstance(source, _PUBLIC_TYPES):
        return (_info(source),)
    if isinstance(source, _PRIVATE_TYPES):
        return (_info(source.public_key()),)
    if isinstance(source, Mapping):
        return _from_json(source)
    if isinstance(source, str):
        return _from_text(source.encode("utf-8"))
    if isinstance(source, bytes):
        return _from_text(source)
    raise TypeError("public_key must be a Key, KeySet, cryptography public key, JWK(S) or PEM")


def _fits(info: PublicKeyInfo, alg: str) -> bool:
    spec = ALGORITHMS.get(alg)
    return spec is not None and spec.kty == info.kty


def pick_public_key(keys: tuple[PublicKeyInfo, ...], kid: Any, alg: Any) -> PublicKeyInfo | None:
    """The key the token names by ``kid``; else the first whose type fits ``alg``; else the first."""
    if not keys:
        return None
    for info in keys:
        if kid is not None and info.kid == kid:
            return info
    for info in keys:
        if isinstance(alg, str) and _fits(info, alg):
            return info
    return keys[0]


# ---- the signing key (testing your own API) ------------------------------------------------

@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key that can sign tokens the target should accept: an HMAC secret or a private key.

    Given to the scanner when you test your own API (or found by cracking a weak secret),
    it unlocks the attacks that need a valid signature: expired tokens, missing ``exp``,
    foreign ``iss``/``aud``, ``crit``/``zip`` headers, duplicate members, oversized tokens.
    """

    secret: bytes | None = field(default=None, repr=False)
    private_key: PrivateKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.secret is None) == (self.private_key is None):
            raise BadScanKey("a signing key is either an HMAC secret or a private key")

    @classmethod
    def from_secret(cls, secret: bytes) -> SigningKey:
        """An HMAC secret of any length (the scanner does not judge its strength)."""
        if not isinstance(secret, bytes):
            raise TypeError("an HMAC secret must be bytes")
        return cls(secret=secret)

    @property
    def is_hmac(self) -> bool:
        return self.secret is not None

    def signer(self, alg: str) -> Signer:
        """A signing function for ``alg``; :class:`BadScanKey` if the key cannot do ``alg``."""
        spec = ALGORITHMS.get(alg)
        if spec is None:
            raise BadScanKey(f"the token's algorithm {alg!r} cannot be signed by jwtwarden")
        material: bytes | PrivateKey | None = self.secret if spec.kty == "oct" else self.private_key
        if material is None:
            raise BadScanKey(f"the signing key cannot sign {alg} tokens")
        try:
            return make_signer(spec, material)
        except TypeError:
            raise BadScanKey(f"the signing key is not a key for {alg}") from None

    def verifies(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """True when this key's (public half) verifies ``signature`` for ``alg``."""
        spec = ALGORITHMS.get(alg)
        if spec is None:
            return False
        material: bytes | PublicKey | None = (
            self.secret if spec.kty == "oct"
            else self.private_key.public_key() if self.private_key is not None else None
        )
        if material is None:
            return False
        try:
            make_verifier(spec, material)(signing_input, signature)
        except (TypeError, JWTError):
            return False
        return True

    def __repr__(self) -> str:
        if self.secret is not None:
            return f"SigningKey(hmac secret, {len(self.secret)} bytes)"
        return f"SigningKey({type(self.private_key).__name__})"


SigningKeySource = SigningKey | Key | KeySet | PrivateKey | Mapping[str, Any] | str | bytes
"""What :func:`load_signing_key` accepts."""


def _signing_from_jwk(jwk: Any) -> SigningKey:
    if isinstance(jwk, Mapping) and isinstance(jwk.get("keys"), list):
        keys = [k for k in jwk["keys"] if isinstance(k, Mapping) and PRIVATE_MEMBERS.get(
            str(k.get("kty")), frozenset()).intersection(k)]
        if len(keys) != 1:
            raise BadScanKey("the JWKS must hold exactly one private key to sign with")
        jwk = keys[0]
    try:
        material = parse_jwk(jwk, allow_private=True)
    except JWTError:
        raise BadScanKey("not a usable private JWK") from None
    if material.secret is not None:
        return SigningKey.from_secret(material.secret)
    if material.private_key is None:
        raise BadScanKey("the JWK has no private members: it cannot sign")
    return SigningKey(private_key=material.private_key)


def load_signing_key(source: SigningKeySource) -> SigningKey:
    """A :class:`SigningKey` from a jwtwarden key or key set (private), a ``cryptography``
    private key, a private JWK/JWKS, PEM text, or raw HMAC secret bytes.

    ``bytes``/``str`` are read as PEM when they hold a PEM block, as JSON when they start
    with ``{``, and as a raw HMAC secret otherwise.
    """
    if isinstance(source, SigningKey):
        return source
    if isinstance(source, KeySet):
        try:
            source = source.signing_key()
        except ValueError:
            raise BadScanKey("the key set must hold exactly one private key to sign with") from None
    if isinstance(source, Key):
        if not source.is_private:
            raise BadScanKey("a public key cannot sign; give the private key or the secret")
        return _signing_from_jwk(source.to_jwk(private=True))
    if isinstance(source, _PRIVATE_TYPES):
        return SigningKey(private_key=source)
    if isinstance(source, Mapping):
        return _signing_from_jwk(source)
    if isinstance(source, str):
        source = source.encode("utf-8")
    if isinstance(source, bytes):
        text = source.strip()
        if b"-----BEGIN" in text:
            try:
                loaded = serialization.load_pem_private_key(text, password=None)
            except (ValueError, TypeError):
                raise BadScanKey("not an unencrypted PEM private key") from None
            if not isinstance(loaded, _PRIVATE_TYPES):
                raise BadScanKey("unsupported private key type (RSA, EC or Ed25519 only)")
            return SigningKey(private_key=loaded)
        if text.startswith(b"{"):
            try:
                return _signing_from_jwk(json.loads(text))
            except ValueError:
                raise BadScanKey("the key is not valid JSON") from None
        return SigningKey.from_secret(source)
    raise TypeError("signing_key must be a Key, KeySet, private key, JWK(S), PEM or secret bytes")


# ---- attacker keys --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttackerKey:
    """A key the scanner made up, playing the attacker: it signs, and its public JWK is shown."""

    alg: str
    sign: Signer = field(repr=False)
    jwk: Mapping[str, Any] = field(repr=False)
    private_key: PrivateKey | None = field(default=None, repr=False)


@functools.cache
def attacker_key(alg: str) -> AttackerKey:
    """A fresh key for ``alg`` (one per algorithm and process), its public JWK with
    ``kid`` = :data:`ATTACKER_KID`. For HMAC algorithms the JWK is an ``oct`` key."""
    spec = ALGORITHMS[alg]
    meta = {"kid": ATTACKER_KID, "alg": alg, "use": "sig"}
    if spec.kty == "oct":
        secret = os.urandom(spec.min_key_bits // 8)
        return AttackerKey(alg, make_signer(spec, secret), export_jwk(secret=secret) | meta)
    private: PrivateKey
    if spec.kty == "RSA":
        private = rsa.generate_private_key(65537, 2048)
    elif spec.kty == "EC":
        assert spec.curve is not None  # noqa: S101 - the table gives EC a curve
        private = ec.generate_private_key(CURVES[spec.curve]())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    jwk = export_jwk(public_key=private.public_key()) | meta
    return AttackerKey(alg, make_signer(spec, private), jwk, private)


@functools.cache
def attacker_certificate(alg: str) -> str:
    """Base64 (standard, as in ``x5c``) DER of a self-signed certificate for the attacker key."""
    key = attacker_key(alg)
    if key.private_key is None:
        raise ValueError("an HMAC key has no certificate")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwtwarden-scan attacker")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    digest = None if isinstance(key.private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(key.private_key, digest)
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")

