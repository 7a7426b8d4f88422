"""Keys bound to one algorithm, and key sets.

A :class:`Key` carries the single ``alg`` it may be used with; that binding is checked when
the key is made (type, curve, minimum size) and again for every token (the header ``alg``
must equal the key's). Symmetric and asymmetric keys are different classes, so an RSA or EC
public key can never end up as an HMAC secret.

Minimum strength, refused with :class:`~jwtwarden.errors.WeakKey`:

- HMAC: a secret at least as long as the hash output (32 bytes for HS256, 48, 64);
- RSA: a modulus of 2048 bits or more;
- EC: exactly the named curve of the algorithm (P-256 for ES256, P-384, P-521);
- EdDSA: Ed25519.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from jwtwarden.errors import InvalidKey, WeakKey
from jwtwarden.jose import jwk as _jwk
from jwtwarden.jose.algorithms import (
    ALGORITHMS,
    CURVES,
    Algorithm,
    PrivateKey,
    PublicKey,
    Signer,
    Verify,
    make_signer,
    make_verifier,
)

__all__ = ["AsymmetricKey", "HMACKey", "Key", "KeySet", "algorithm"]

RSA_GENERATE_BITS = 2048


def algorithm(name: str) -> Algorithm:
    """The table entry for ``name``; :class:`ValueError` for anything not in the table."""
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unsupported algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}"
        ) from None


class Key:
    """A verification (and maybe signing) key bound to exactly one algorithm.

    Build one with :meth:`generate`, :meth:`from_jwk`, :meth:`from_pem` or the
    :class:`HMACKey` / :class:`AsymmetricKey` constructors. ``repr`` shows the algorithm, key
    id and whether private material is present, never the material itself.
    """

    __slots__ = ("_algorithm", "_kid", "_sign", "_verify")

    _algorithm: Algorithm
    _kid: str
    _verify: Verify
    _sign: Signer | None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("keys are immutable")

    def _init(self, alg: Algorithm, kid: str | None, verify: Verify, sign: Signer | None) -> None:
        if kid is not None and (not isinstance(kid, str) or not kid):
            raise InvalidKey("kid must be a non-empty string")
        object.__setattr__(self, "_algorithm", alg)
        object.__setattr__(self, "_verify", verify)
        object.__setattr__(self, "_sign", sign)
        object.__setattr__(self, "_kid", kid or self.thumbprint())

    @property
    def alg(self) -> str:
        return self._algorithm.name

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def kid(self) -> str:
        return self._kid

    @property
    def is_private(self) -> bool:
        """True when this key can sign (a private key or an HMAC secret)."""
        return self._sign is not None

    def verify_signature(self, signing_input: bytes, signature: bytes) -> None:
        """Raise :class:`~jwtwarden.errors.BadSignature` unless ``signature`` is valid."""
        self._verify(signing_input, signature)

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input``; :class:`TypeError` for a public key."""
        if self._sign is None:
            raise TypeError(f"key {self._kid!r} is public and cannot sign")
        return self._sign(signing_input)

    def _members(self, private: bool) -> dict[str, str]:
        raise NotImplementedError

    def to_jwk(self, *, private: bool = False) -> dict[str, Any]:
        """The JWK with ``kid``, ``alg`` and ``use``; private members only if ``private``."""
        return self._members(private) | {"kid": self._kid, "alg": self.alg, "use": "sig"}

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint of the public key (or, for HMAC, of the secret)."""
        return _jwk.thumbprint(self._members(private=isinstance(self, HMACKey)))

    def public(self) -> Key:
        raise NotImplementedError

    def __repr__(self) -> str:
        kind = "private" if self.is_private else "public"
        return f"{type(self).__name__}(alg={self.alg!r}, kid={self._kid!r}, {kind})"

    # ---- constructors -------------------------------------------------------------------

    @staticmethod
    def generate(alg: str = "ES256", *, kid: str | None = None) -> Key:
        """A fresh random key for ``alg`` (RSA keys have 2048 bits)."""
        spec = algorithm(alg)
        if spec.kty == "oct":
            return HMACKey(os.urandom(spec.min_key_bits // 8), alg, kid=kid)
        private: PrivateKey
        if spec.kty == "RSA":
            private = rsa.generate_private_key(65537, RSA_GENERATE_BITS)
        elif spec.kty == "EC":
            assert spec.curve is not None  # noqa: S101 - the table gives EC a curve
            private = ec.generate_private_key(CURVES[spec.curve]())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        return AsymmetricKey(private, alg, kid=kid)

    @staticmethod
    def from_jwk(
        jwk: Mapping[str, Any], *, alg: str | None = None, allow_private: bool = True
    ) -> Key:
        """Load one JWK. Its ``alg`` member (or the ``alg`` argument) binds the key.

        When both are given they must agree. A ``use`` other than ``sig`` or ``key_ops``
        without ``sign``/``verify`` is refused. With ``allow_private=False`` (key sets
        loaded for verification) private members are refused.
        """
        material = _jwk.parse_jwk(jwk, allow_private=allow_private)
        if material.alg is not None and alg is not None and material.alg != alg:
            raise InvalidKey(f"the JWK is for {material.alg}, not {alg}")
        bound = material.alg or alg
        if bound is None:
            raise InvalidKey("the JWK has no 'alg' and none was given; a key needs one algorithm")
        if bound not in ALGORITHMS:
            raise InvalidKey(f"unsupported algorithm {bound!r}")
        if material.use is not None and material.use != "sig":
            raise InvalidKey("the JWK is not a signature key (use != 'sig')")
        if material.key_ops is not None and not {"sign", "verify"} & set(material.key_ops):
            raise InvalidKey("the JWK's key_ops allow neither sign nor verify")
        if material.secret is not None:
            return HMACKey(material.secret, bound, kid=material.kid)
        key = material.private_key or material.public_key
        assert key is not None  # noqa: S101 - parse_jwk always sets one for non-oct keys
        return AsymmetricKey(key, bound, kid=material.kid)

    @staticmethod
    def from_pem(
        pem: bytes | str, alg: str, *, kid: str | None = None, password: bytes | None = None
    ) -> Key:
        """Load a PEM private key (PKCS#8 or traditional) or public key (SPKI) for ``alg``."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        loaded: object
        try:
            if b"PRIVATE KEY" in data:
                loaded = serialization.load_pem_private_key(data, password=password)
            else:
                loaded = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise InvalidKey("not a PEM key this algorithm can use (or a wrong password)") from None
        if not isinstance(
            loaded,
            rsa.RSAPrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePrivateKey
            | ec.EllipticCurvePublicKey | ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey,
        ):
            raise InvalidKey("unsupported PEM key type")
        return AsymmetricKey(loaded, alg, kid=kid)


class HMACKey(Key):
    """A shared secret for HS256/HS384/HS512, at least as long as the hash output."""

    __slots__ = ("_secret",)

    _secret: bytes

    def __init__(self, secret: bytes, alg: str = "HS256", *, kid: str | None = None) -> None:
        spec = algorithm(alg)
        if spec.kty != "oct":
            raise InvalidKey(f"{alg} is not an HMAC algorithm; a secret cannot be used with it")
        if not isinstance(secret, bytes):
            raise InvalidKey("an HMAC secret must be bytes")
        if len(secret) * 8 < spec.min_key_bits:
            raise WeakKey(
                f"{alg} needs a secret of at least {spec.min_key_bits // 8} bytes "
                f"(got {len(secret)})"
            )
        object.__setattr__(self, "_secret", secret)
        self._init(spec, kid, make_verifier(spec, secret), make_signer(spec, secret))

    def _members(self, private: bool) -> dict[str, str]:
        if not private:
            raise ValueError("an HMAC key has no public part; export it with private=True")
        return _jwk.export_jwk(secret=self._secret)

    def public(self) -> Key:
        raise ValueError(
            "an HMAC key has no public part: every verifier needs the secret itself "
            "(prefer an asymmetric algorithm such as ES256 for several services)"
        )


class AsymmetricKey(Key):
    """An RSA, EC or Ed25519 key; private (can sign) or public (can only verify)."""

    __slots__ = ("_private_key", "_public_key")

    _private_key: PrivateKey | None
    _public_key: PublicKey

    def __init__(
        self, key: PrivateKey | PublicKey, alg: str, *, kid: str | None = None
    ) -> None:
        spec = algorithm(alg)
        private: PrivateKey | None
        if isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            private, public = key, key.public_key()
        else:
            private, public = None, key
        _check_strength(spec, public)
        object.__setattr__(self, "_private_key", private)
        object.__setattr__(self, "_public_key", public)
        sign = make_signer(spec, private) if private is not None else None
        self._init(spec, kid, make_verifier(spec, public), sign)

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def _members(self, private: bool) -> dict[str, str]:
        if private and self._private_key is not None:
            return _jwk.export_jwk(private_key=self._private_key)
        return _jwk.export_jwk(public_key=self._public_key)

    def public(self) -> Key:
        if self._private_key is None:
            return self
        return AsymmetricKey(self._public_key, self.alg, kid=self._kid)

    def to_pem(self, *, private: bool = False) -> bytes:
        """SPKI PEM of the public key, or unencrypted PKCS#8 PEM with ``private=True``."""
        if private:
            if self._private_key is None:
                raise TypeError("this key has no private part")
            return self._private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        return self._public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _check_strength(spec: Algorithm, public: PublicKey) -> None:
    if spec.kty == "RSA":
        if not isinstance(public, rsa.RSAPublicKey):
            raise InvalidKey(f"{spec.name} needs an RSA key")
        if public.key_size < spec.min_key_bits:
            raise WeakKey(f"{spec.name} needs an RSA key of at least {spec.min_key_bits} bits")
    elif spec.kty == "EC":
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidKey(f"{spec.name} needs an EC key")
        assert spec.curve is not None  # noqa: S101 - the table gives EC a curve
        if not isinstance(public.curve, CURVES[spec.curve]):
            raise WeakKey(f"{spec.name} needs a key on {spec.curve}")
    elif spec.kty == "OKP":
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise InvalidKey(f"{spec.name} needs an Ed25519 key")
    else:
        raise InvalidKey(f"{spec.name} is an HMAC algorithm; use HMACKey with a secret")


class KeySet:
    """An immutable set of keys with distinct ``kid`` values.

    ``KeySet.generate("ES256")`` for a new signing key, ``KeySet.from_jwks(d)`` to load a
    JWKS (private or public), :meth:`public` for the verification half, :meth:`to_jwks`
    to publish it.
    """

    __slots__ = ("_by_kid", "_keys")

    _keys: tuple[Key, ...]
    _by_kid: Mapping[str, Key]

    def __init__(self, keys: Iterable[Key]) -> None:
        keys = tuple(keys)
        by_kid: dict[str, Key] = {}
        for key in keys:
            if not isinstance(key, Key):
                raise TypeError("a KeySet holds Key objects")
            if key.kid in by_kid:
                raise InvalidKey(f"duplicate kid {key.kid!r} in the key set")
            by_kid[key.kid] = key
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_by_kid", by_kid)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("key sets are immutable")

    @classmethod
    def generate(cls, alg: str = "ES256", *, kid: str | None = None) -> KeySet:
        """A key set holding one freshly generated key for ``alg``."""
        return cls([Key.generate(alg, kid=kid)])

    @classmethod
    def from_jwks(
        cls, jwks: Mapping[str, Any] | str | bytes, *, allow_private: bool = True
    ) -> KeySet:
        """Load a JWKS (a dict or its JSON text). Every JWK needs an ``alg``.

        Keys marked ``"use": "enc"`` are encryption keys and are skipped. With
        ``allow_private=False`` (see :meth:`from_public_jwks`) any private member is an
        :class:`~jwtwarden.errors.InvalidKey`.
        """
        if isinstance(jwks, str | bytes):
            try:
                jwks = json.loads(jwks)
            except ValueError:
                raise InvalidKey("the JWKS is not valid JSON") from None
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
            raise InvalidKey("a JWKS is an object with a 'keys' array")
        return cls(
            Key.from_jwk(jwk, allow_private=allow_private)
            for jwk in jwks["keys"]
            if not (isinstance(jwk, Mapping) and jwk.get("use") == "enc")
        )

    @classmethod
    def from_public_jwks(cls, jwks: Mapping[str, Any] | str | bytes) -> KeySet:
        """Load a JWKS for verification only: private members (and secrets) are refused."""
        return cls.from_jwks(jwks, allow_private=False)

    def public(self) -> KeySet:
        """The same keys without private parts. HMAC keys have none: :class:`ValueError`."""
        return KeySet(key.public() for key in self._keys)

    def to_jwks(self, *, private: bool = False) -> dict[str, Any]:
        """``{"keys": [...]}``; public members only unless ``private=True``."""
        return {"keys": [key.to_jwk(private=private) for key in self._keys]}

    def get(self, kid: str) -> Key | None:
        """The key with this ``kid``, or ``None`` (the kid is only a dictionary key)."""
        return self._by_kid.get(kid)

    def __getitem__(self, kid: str) -> Key:
        return self._by_kid[kid]

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __add__(self, other: KeySet) -> KeySet:
        return KeySet((*self._keys, *other._keys))

    def signing_key(self, kid: str | None = None) -> Key:
        """The key to sign with: the one named ``kid``, or the only private key of the set."""
        if kid is not None:
            key = self._by_kid.get(kid)
            if key is None or not key.is_private:
                raise ValueError(f"no private key with kid {kid!r} in the key set")
            return key
        private = [key for key in self._keys if key.is_private]
        if len(private) != 1:
            raise ValueError(
                f"the key set has {len(private)} private keys; name the signing key by kid"
            )
        return private[0]

    def __repr__(self) -> str:
        return f"KeySet({list(self._keys)!r})"
