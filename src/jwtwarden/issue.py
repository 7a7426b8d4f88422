"""Issuing JWTs that pass every rule the verifier enforces.

:class:`Issuer` always sets ``iss``, ``sub``, ``aud``, ``iat``, ``exp`` and a 128-bit
random ``jti``, and the header ``alg``, ``kid`` and ``typ``. It refuses:

- a lifetime of more than 15 minutes unless built with ``unsafe_allow_long_lifetime=True``
  (``ValueError``);
- a registered claim in ``claims`` (they are the issuer's to set; ``ValueError``);
- a claim the payload linter flags as sensitive, unless that claim is allowed by name
  (:class:`~jwtwarden.errors.SensitiveClaim`);
- anything a :class:`~jwtwarden.Verifier` would refuse, so that every token it issues
  verifies (``ValueError``): claims nested deeper than the strict parser's limit
  (:data:`~jwtwarden.jose.strict_json.MAX_DEPTH`, the payload object counting as 1), a
  string or member name with a lone UTF-16 surrogate (not UTF-8), a member name that is not
  a string, and a token longer than ``max_token_size`` (default 8192, the verifier's default).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

from jwtwarden.errors import SensitiveClaim
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.jose.jws import DEFAULT_MAX_TOKEN_SIZE, encode_header
from jwtwarden.jose.strict_json import MAX_DEPTH, dumps
from jwtwarden.keys import Key, KeySet
from jwtwarden.lint import first_finding
from jwtwarden.policy import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    REGISTERED_CLAIMS,
    Clock,
    string_set,
    system_clock,
)

__all__ = ["IssuedToken", "Issuer"]

JTI_BYTES = 16  # 128 random bits
_json_string: Callable[[str], str] = encode_basestring_ascii  # quoted, escaped ASCII JSON


_SCALARS: dict[type, Callable[[Any], str]] = {
    str: _json_string,
    int: int.__repr__,
    bool: lambda v: "true" if v else "false",
    type(None): lambda _: "null",
}


def _members(claims: Mapping[str, Any]) -> str:
    """The members of ``claims`` as compact ASCII JSON text, without the braces.

    String, integer, boolean and null values of string-named claims are written directly
    (the common case, far cheaper than a JSONEncoder run); anything else goes through the
    strict encoder, which refuses NaN, infinities and non-JSON types.
    """
    parts = []
    try:
        for name, value in claims.items():
            write = _SCALARS.get(type(value))
            if write is None or type(name) is not str:
                return dumps(dict(claims)).decode("ascii")[1:-1]
            parts.append(f"{_json_string(name)}:{write(value)}")
    except (TypeError, ValueError) as exc:  # not JSON, NaN, an int past Python's digit limit
        raise ValueError(f"claims must be JSON-serialisable: {exc}") from None
    return ",".join(parts)


_FLAT = frozenset({int, bool, float, type(None)})


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogate), as the verifier requires."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_verifiable(claims: Mapping[str, Any]) -> None:
    """Refuse claims whose JSON the strict parser (and so every verifier) would refuse.

    One pass over the structure, without recursion: member names must be strings, every
    string must be UTF-8 (no lone surrogate), and containers may nest at most
    ``MAX_DEPTH`` levels, the payload object being the first. The walk stops at the first
    container past the limit, so a self-referencing structure ends here too.
    """
    # The common case first, at a fraction of the walk's cost (this runs for every token the
    # service issues): flat claims with ASCII names and scalar or ASCII string values.
    for claim, value in claims.items():
        if type(claim) is not str or not claim.isascii():
            break
        kind = type(value)
        if kind is str:
            if not value.isascii():
                break
        elif kind not in _FLAT:
            break
    else:
        return
    stack: list[tuple[Any, int]] = [(claims, 1)]
    while stack:
        value, depth = stack.pop()
        members: Iterable[tuple[Any, Any]]
        if isinstance(value, Mapping):
            members = value.items()
        elif isinstance(value, list | tuple):
            members = enumerate(value)
        else:
            continue
        if depth > MAX_DEPTH:
            raise ValueError(
                f"claims are nested deeper than {MAX_DEPTH - 1} levels, the most a verifier "
                "accepts")
        is_object = isinstance(value, Mapping)
        for name, item in members:
            if is_object:
                if type(name) is not str:
                    raise ValueError("claim names and object member names must be strings")
                if not _utf8(name):
                    raise ValueError("a claim name has a lone surrogate (text must be UTF-8)")
            if isinstance(item, str):
                if not _utf8(item):
                    raise ValueError("a claim value has a lone surrogate (text must be UTF-8)")
            elif isinstance(item, Mapping | list | tuple):
                stack.append((item, depth + 1))


def _new_jti() -> str:
    return secrets.token_urlsafe(JTI_BYTES)


def _top_level_claim(pointer: str) -> str:
    """The top-level claim name of an RFC 6901 JSON Pointer such as ``/user/card``."""
    return pointer[1:].split("/", 1)[0].replace("~1", "/").replace("~0", "~")


class IssuedToken(NamedTuple):
    """A token with the registered claims the issuer chose for it."""

    token: str
    jti: str
    iat: int
    exp: int

    def __repr__(self) -> str:
        return f"IssuedToken(jti={self.jti!r}, iat={self.iat}, exp={self.exp})"


class Issuer:
    """Sign JWTs with the one signing key of a key set.

    ::

        issuer = Issuer(keys, issuer="https://auth.example.com", audience="api")
        token = issuer.issue(subject="u1", claims={"role": "user"})

    ``kid`` picks the signing key when the set holds several private keys; ``typ`` is the
    header type (default ``at+jwt``, RFC 9068); ``allowed_claims`` names claims exempt from
    the sensitive-data check for every token.
    """

    __slots__ = (
        "_allowed",
        "_audience",
        "_clock",
        "_header_segment",
        "_issuer",
        "_key",
        "_lifetime",
        "_max_lifetime",
        "_max_size",
        "_prefix",
        "_sign",
    )

    def __init__(
        self,
        keys: KeySet | Key,
        *,
        issuer: str,
        audience: str | Iterable[str],
        kid: str | None = None,
        lifetime: int = DEFAULT_LIFETIME,
        typ: str = "at+jwt",
        allowed_claims: Iterable[str] = (),
        clock: Clock = system_clock,
        max_token_size: int = DEFAULT_MAX_TOKEN_SIZE,
        unsafe_allow_long_lifetime: bool = False,
    ) -> None:
        key = keys if isinstance(keys, Key) else keys.signing_key(kid)
        if not key.is_private:
            raise ValueError("the issuer needs a private key (or an HMAC secret)")
        if not isinstance(issuer, str) or not issuer or not _utf8(issuer):
            raise ValueError("issuer must be a non-empty UTF-8 string")
        if not isinstance(typ, str) or not typ or not _utf8(typ):
            raise ValueError("typ must be a non-empty UTF-8 string")
        if type(max_token_size) is not int or max_token_size < 64:
            raise ValueError("max_token_size is too small for any JWT")
        self._max_size = max_token_size
        self._max_lifetime = math.inf if unsafe_allow_long_lifetime else MAX_LIFETIME
        self._lifetime = self._check_lifetime(lifetime)
        self._key = key
        self._sign = key.sign
        self._issuer = issuer
        self._audience = self._audience_claim(audience)
        self._prefix = self._prefix_for(self._audience)
        self._allowed = frozenset(allowed_claims)
        self._clock = clock
        self._header_segment = encode_header({"alg": key.alg, "kid": key.kid, "typ": typ})

    @property
    def key(self) -> Key:
        return self._key

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def lifetime(self) -> int:
        return self._lifetime

    def _check_lifetime(self, lifetime: int) -> int:
        if type(lifetime) is not int or lifetime <= 0:
            raise ValueError("lifetime must be a positive whole number of seconds")
        if lifetime > self._max_lifetime:
            raise ValueError(
                f"lifetime {lifetime} s is over the {MAX_LIFETIME} s cap for access tokens; "
                "build the Issuer with unsafe_allow_long_lifetime=True to exceed it"
            )
        return lifetime

    @staticmethod
    def _audience_claim(audience: str | Iterable[str]) -> str | list[str]:
        values = [audience] if isinstance(audience, str) else list(audience)
        string_set(values, "audience")
        if not all(_utf8(value) for value in values):
            raise ValueError("audience must be UTF-8 text")
        return audience if isinstance(audience, str) else values[0] if len(values) == 1 else values

    def issue(
        self,
        subject: str,
        claims: Mapping[str, Any] | None = None,
        *,
        lifetime: int | None = None,
        audience: str | Iterable[str] | None = None,
        allow_sensitive: Iterable[str] = (),
    ) -> str:
        """A signed compact JWT for ``subject`` with the extra ``claims``.

        Raises ``ValueError`` for a bad subject, lifetime or a registered claim in
        ``claims``, claims no verifier would accept (too deep, not UTF-8, a token over
        ``max_token_size``), and :class:`~jwtwarden.errors.SensitiveClaim` for a flagged claim
        that neither ``allowed_claims`` nor ``allow_sensitive`` names.
        """
        return self.issue_token(
            subject, claims, lifetime=lifetime, audience=audience, allow_sensitive=allow_sensitive
        ).token

    def issue_token(
        self,
        subject: str,
        claims: Mapping[str, Any] | None = None,
        *,
        lifetime: int | None = None,
        audience: str | Iterable[str] | None = None,
        allow_sensitive: Iterable[str] = (),
    ) -> IssuedToken:
        """Like :meth:`issue`, and also return the ``jti``, ``iat`` and ``exp`` it set."""
        if type(subject) is not str or not subject or not _utf8(subject):
            raise ValueError("subject must be a non-empty UTF-8 string")
        now = int(self._clock())
        exp = now + (self._lifetime if lifetime is None else self._check_lifetime(lifetime))
        # The payload is written as text around a constant prefix: the same JSON a dict would
        # give (compact, ASCII), at a fraction of the encoder's cost on the issuing hot path.
        prefix = self._prefix if audience is None else self._prefix_for(self._audience_claim(audience))
        jti = _new_jti()
        body = f'{prefix},"sub":{_json_string(subject)},"iat":{now},"exp":{exp},"jti":"{jti}"'
        if claims:
            self._check_claims(claims, allow_sensitive)
            body = f"{body},{_members(claims)}}}"
        else:
            body += "}"
        signing_input = f"{self._header_segment}.{b64url_encode(body.encode('ascii'))}"
        token = f"{signing_input}.{b64url_encode(self._sign(signing_input.encode('ascii')))}"
        if len(token) > self._max_size:
            raise ValueError(
                f"the token would be {len(token)} characters, over the {self._max_size} a "
                "verifier accepts: send fewer or shorter claims")
        return IssuedToken(token, jti, now, exp)

    def _prefix_for(self, audience: str | list[str]) -> str:
        return '{"iss":' + _json_string(self._issuer) + ',"aud":' + dumps(audience).decode("ascii")

    def _check_claims(self, claims: Mapping[str, Any], allow_sensitive: Iterable[str]) -> None:
        _check_verifiable(claims)  # first: the linter must not walk what no verifier would parse
        if not REGISTERED_CLAIMS.isdisjoint(claims):
            raise ValueError(
                f"{sorted(REGISTERED_CLAIMS.intersection(claims))} are set by the issuer; "
                "use subject=, lifetime=, audience="
            )
        # The allowed claims are not scanned at all and the first finding is all it takes,
        # so the linter's cost stays linear in the claims (listing every finding was not:
        # each carries a pointer that repeats the names above it).
        allowed = self._allowed.union(allow_sensitive) if allow_sensitive else self._allowed
        finding = first_finding(claims, skip=allowed)
        if finding is not None:
            raise SensitiveClaim(_top_level_claim(finding.path), finding.code)
