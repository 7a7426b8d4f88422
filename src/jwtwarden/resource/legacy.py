"""Trusting the issuer you are migrating away from, with one key and until one date.

During a cut-over (from djangorestframework-simplejwt, or any issuer that signed with one key
of its own) an API accepts both issuers' access tokens for one access-token lifetime. A
:class:`LegacyIssuer` is that old issuer: one **verify-only key bound to its algorithm**, the
claims its tokens carry, and a **not-after date** after which none of its tokens is accepted
any more, whatever their ``exp`` says. It is given to
:class:`~jwtwarden.resource.server.ResourceServer` as ``also_trust=``::

    server = ResourceServer.from_env(also_trust=LegacyIssuer.simplejwt(
        SIMPLE_JWT["SIGNING_KEY"], not_after="2025-07-01T12:00:00+00:00"))

What keeps this safe:

- **The algorithm comes from the key.** A token goes to the old issuer's key only when its
  header ``alg`` is that key's algorithm (and it names no ``kid`` or that key's ``kid``);
  every other token goes to the remote key set as before. An HS256 secret is therefore never
  tried on an ES256 token, and the remote key set never holds it (a JWKS carrying a secret is
  refused whole): the HMAC/RSA confusion cannot happen in either direction.
- **Verify-only.** The key is kept inside this object, never exposed, never used to sign; an
  asymmetric key is reduced to its public half.
- **The date is enforced with the resource server's clock** (the one injected into it): from
  ``not_after`` on, the old issuer's tokens are handled as if the trust were gone, so they are
  refused with ``alg_not_allowed``, the same answer as after removing ``also_trust``.
- **Its tokens must be access tokens**: simplejwt signs refresh tokens (a day's lifetime) with
  the same key; ``token_type`` must be ``access`` (``bad_type`` otherwise).
- **Claims are checked as strictly as jwtwarden's own**: ``exp`` required, ``nbf`` and ``iat``
  with the leeway, ``iss`` and ``aud`` exactly (``None`` means the claim must be absent:
  simplejwt sets neither by default), the subject claim present (simplejwt's ``user_id``),
  strict JSON, strict base64url, the header rules of :class:`~jwtwarden.JWSVerifier`.

The verified claims are the old token's, plus ``sub`` (the subject claim's value as a string),
so the rest of the API sees one shape. The old issuer's tokens are not in jwtwarden's
revocation feed (they never were revocable: simplejwt has no access-token deny list); keep the
window short.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from jwtwarden.errors import (
    AlgorithmNotAllowed,
    BadAudience,
    BadIssuer,
    BadType,
    Expired,
    IssuedInFuture,
    MalformedClaim,
    MissingClaim,
    NotYetValid,
)
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.keys import HMACKey, Key, KeySet
from jwtwarden.policy import DEFAULT_LEEWAY, MAX_LEEWAY, Claims, string_set
from jwtwarden.verify import JWSVerifier

__all__ = ["LegacyIssuer"]

_NUMBER = (int, float)


def _timestamp(value: datetime | float | int | str) -> float:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not_after must be an ISO 8601 date and time with its offset") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("not_after must be timezone-aware (e.g. ...+00:00)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, _NUMBER) or not math.isfinite(value):
        raise ValueError("not_after must be a datetime, an ISO 8601 string or Unix seconds")
    return float(value)


class LegacyIssuer:
    """An old issuer trusted until ``not_after``: see the module docstring.

    ``key``: its one key (a :class:`~jwtwarden.HMACKey` for HS256/384/512, or an asymmetric
    key, of which only the public half is kept). ``not_after``: an aware :class:`datetime`,
    an ISO 8601 string with offset, or Unix seconds. ``issuer`` / ``audience``: what its
    tokens carry in ``iss`` / ``aud``, or ``None`` when they carry none (then a token that
    has one is refused). ``token_type``: a ``(claim, value)`` pair every token must carry
    (``("token_type", "access")``), or ``None``. ``subject_claim``: the claim naming the
    user (copied to ``sub``). ``leeway``: seconds of clock skew, as for
    :class:`~jwtwarden.Verifier`. Bad configuration is a :class:`ValueError` now.
    """

    __slots__ = (
        "_alg",
        "_audiences",
        "_issuers",
        "_jws",
        "_kid",
        "_leeway",
        "_not_after",
        "_subject",
        "_token_type",
    )

    def __init__(
        self,
        key: Key,
        *,
        not_after: datetime | float | str,
        issuer: str | Iterable[str] | None = None,
        audience: str | Iterable[str] | None = None,
        token_type: tuple[str, str] | None = ("token_type", "access"),
        subject_claim: str = "sub",
        leeway: float = DEFAULT_LEEWAY,
    ) -> None:
        if not isinstance(key, Key):
            raise TypeError("key must be a jwtwarden Key bound to its algorithm")
        if not isinstance(key, HMACKey):
            key = key.public()  # verify-only: the private half is never kept
        self._alg = key.alg
        self._kid = key.kid
        self._jws = JWSVerifier(KeySet([key]), algorithms=[key.alg])
        self._not_after = _timestamp(not_after)
        self._issuers = None if issuer is None else string_set(issuer, "issuer")
        self._audiences = None if audience is None else string_set(audience, "audience")
        if token_type is not None and (
                len(token_type) != 2 or not all(isinstance(v, str) and v for v in token_type)):
            raise ValueError("token_type must be a (claim name, value) pair, or None")
        self._token_type = token_type
        if not isinstance(subject_claim, str) or not subject_claim:
            raise ValueError("subject_claim must be a claim name")
        self._subject = subject_claim
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        self._leeway = float(leeway)

    @classmethod
    def simplejwt(
        cls,
        signing_key: str | bytes,
        *,
        not_after: datetime | float | str,
        algorithm: str = "HS256",
        verifying_key: str | bytes | None = None,
        user_id_claim: str = "user_id",
        issuer: str | None = None,
        audience: str | Iterable[str] | None = None,
        token_type_claim: str = "token_type",  # noqa: S107 - a claim name, not a secret
        leeway: float = 0,
    ) -> LegacyIssuer:
        """The issuer of djangorestframework-simplejwt, from its ``SIMPLE_JWT`` settings.

        ``signing_key`` is ``SIGNING_KEY`` (default: Django's ``SECRET_KEY``), ``algorithm``
        ``ALGORITHM``; for RS/ES/PS/EdDSA give ``VERIFYING_KEY`` (PEM) as ``verifying_key``.
        ``user_id_claim``, ``issuer``, ``audience``, ``token_type_claim`` and ``leeway``
        are ``USER_ID_CLAIM``, ``ISSUER``, ``AUDIENCE``, ``TOKEN_TYPE_CLAIM`` and ``LEEWAY``
        (simplejwt's default leeway is 0). A secret shorter than the hash (32 bytes for
        HS256) is refused with :class:`~jwtwarden.errors.WeakKey`: tokens signed with it can
        be forged by guessing it.
        """
        if algorithm.startswith("HS"):
            secret = signing_key.encode("utf-8") if isinstance(signing_key, str) else signing_key
            key: Key = HMACKey(secret, algorithm)
        else:
            if not verifying_key:
                raise ValueError(f"{algorithm} needs simplejwt's VERIFYING_KEY (PEM)")
            key = Key.from_pem(verifying_key, algorithm)
        return cls(key, not_after=not_after, issuer=issuer, audience=audience,
                   token_type=(token_type_claim, "access"), subject_claim=user_id_claim,
                   leeway=leeway)

    @property
    def alg(self) -> str:
        return self._alg

    @property
    def not_after(self) -> float:
        """Unix time from which this issuer's tokens are refused."""
        return self._not_after

    def accepts(self, header: dict[str, Any], now: float) -> bool:
        """Whether a token with this (unverified) header goes to this issuer's key at ``now``."""
        kid = header.get("kid")
        return (header.get("alg") == self._alg and (kid is None or kid == self._kid)
                and now < self._not_after)

    def verify(self, token: str | bytes, now: float) -> Claims:
        """Verify ``token`` at ``now`` as described in the module docstring; its claims + ``sub``."""
        if now >= self._not_after:
            raise AlgorithmNotAllowed("the previous issuer is no longer trusted")
        claims = parse_object(self._jws.verify_signature(token).payload, "payload")
        self._check_time(claims, now)
        self._check_exact(claims, "iss", self._issuers, BadIssuer)
        self._check_exact(claims, "aud", self._audiences, BadAudience)
        if self._token_type is not None:
            name, value = self._token_type
            if claims.get(name) != value:
                raise BadType(name, "the token is not an access token")
        subject = claims.get(self._subject)
        if subject is None:
            raise MissingClaim(self._subject)
        if isinstance(subject, bool) or not isinstance(subject, str | int) or subject == "":
            raise MalformedClaim(self._subject)
        if "sub" in claims and claims["sub"] != str(subject):
            raise MalformedClaim("sub")
        claims["sub"] = str(subject)
        return Claims(claims)

    def _check_time(self, claims: dict[str, Any], now: float) -> None:
        leeway = self._leeway
        exp = claims.get("exp")
        if exp is None:
            raise MissingClaim("exp")
        if isinstance(exp, bool) or not isinstance(exp, _NUMBER):
            raise MalformedClaim("exp")
        if now - leeway >= exp:
            raise Expired("exp", "the token has expired")
        for name, error in (("nbf", NotYetValid), ("iat", IssuedInFuture)):
            if name in claims:
                value = claims[name]
                if isinstance(value, bool) or not isinstance(value, _NUMBER):
                    raise MalformedClaim(name)
                if value > now + leeway:
                    raise error(name, f"the token's {name} is in the future")

    @staticmethod
    def _check_exact(claims: dict[str, Any], name: str, expected: frozenset[str] | None,
                     error: type[BadIssuer] | type[BadAudience]) -> None:
        if expected is None:
            if name in claims:
                raise error(name, f"the previous issuer's tokens carry no {name}")
            return
        value = claims.get(name)
        if value is None:
            raise MissingClaim(name)
        if name == "iss":
            if not isinstance(value, str):
                raise MalformedClaim(name)
            if value not in expected:
                raise error(name, "the token's issuer is not the expected one")
            return
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise MalformedClaim(name)
        if expected.isdisjoint(values):
            raise error(name, "the token is not meant for this audience")

    def __repr__(self) -> str:
        return f"LegacyIssuer(alg={self._alg!r}, not_after={self._not_after!r})"
