"""Verifying JWTs: signature first, then every claim the deployment relies on.

:class:`Verifier` checks, in this order, and raises the first failure:

1. size (``TokenTooLarge``) and shape: three strict base64url segments (``MalformedToken``);
2. the protected header: strict JSON object; ``crit``, ``b64``, ``zip``, ``enc`` and — by
   default — ``jku``, ``x5u``, ``jwk``, ``x5c`` refused (``UnsupportedHeader``); ``alg`` in
   the allowlist (``AlgorithmNotAllowed``); ``typ`` when one is required (``BadType``);
3. the key: ``kid`` looked up in the key set and nowhere else (``UnknownKey``); without a
   ``kid`` only when exactly one key of the set has the header's ``alg``; the key's own
   ``alg`` must equal the header's (``AlgorithmNotAllowed``) — before any crypto runs;
4. the signature (``BadSignature``);
5. the payload: strict JSON object; registered claims of the right JSON type
   (``MalformedClaim``); ``exp`` present and in the future (``MissingClaim``, ``Expired``);
   ``nbf`` reached (``NotYetValid``); ``iat`` not in the future (``IssuedInFuture``), each
   with ``leeway``; ``iss`` exactly one of the expected issuers (``BadIssuer``); ``aud``
   containing an expected audience (``BadAudience``); the other required claims present;
6. no ``cnf`` (``SenderConstrained``): a token bound to a key is accepted only by
   :meth:`Verifier.verify_bound`, with a DPoP proof of that key (RFC 9449), unless the
   verifier was built with ``unsafe_allow_cnf=True``.

Every failure is a subclass of :class:`~jwtwarden.errors.JWTError`; nothing else escapes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jwtwarden.dpop import DPoPProof, access_token_hash
from jwtwarden.errors import (
    AlgorithmNotAllowed,
    BadAudience,
    BadIssuer,
    BadType,
    Expired,
    InvalidDPoPProof,
    IssuedInFuture,
    MalformedClaim,
    MalformedToken,
    MissingClaim,
    NotYetValid,
    SenderConstrained,
    UnknownKey,
)
from jwtwarden.jose.algorithms import ALGORITHMS, Verify
from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.jose.jws import (
    DEFAULT_MAX_TOKEN_SIZE,
    as_text,
    check_header,
    media_type,
    parse_header,
    split,
)
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.keys import Key, KeySet
from jwtwarden.policy import (
    DEFAULT_LEEWAY,
    MAX_LEEWAY,
    Claims,
    Clock,
    string_set,
    system_clock,
)

__all__ = ["CachingVerifier", "JWSVerifier", "VerifiedJWS", "Verifier"]

_HEADER_CACHE_SIZE = 256
_new_claims = object.__new__
_set = object.__setattr__


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    """A JWS whose header passed the rules and whose signature verified."""

    header: dict[str, Any]
    payload: bytes
    key: Key


class JWSVerifier:
    """Header rules, key selection and signature check, without looking at the payload.

    Use :class:`Verifier` for JWTs; this class serves raw JWS (test vectors, non-JSON
    payloads) and is the part both share.
    """

    __slots__ = (
        "_algorithms",
        "_allow_key_headers",
        "_by_alg",
        "_header_cache",
        "_keys",
        "_max_size",
        "_typ",
    )

    def __init__(
        self,
        keys: KeySet,
        *,
        algorithms: Iterable[str],
        typ: str | None = None,
        max_token_size: int = DEFAULT_MAX_TOKEN_SIZE,
        unsafe_ignore_key_headers: bool = False,
    ) -> None:
        if isinstance(algorithms, str):
            raise ValueError("algorithms must be a list, e.g. ['ES256']")
        allowed = frozenset(algorithms)
        if not allowed:
            raise ValueError("an explicit, non-empty algorithm allowlist is required")
        unknown = sorted(a for a in allowed if a not in ALGORITHMS)
        if unknown:
            raise ValueError(f"unsupported algorithms in the allowlist: {unknown}")
        if not isinstance(keys, KeySet):
            raise TypeError("keys must be a KeySet")
        by_alg: dict[str, list[Key]] = {}
        for key in keys:
            if key.alg in allowed:
                by_alg.setdefault(key.alg, []).append(key)
        if not by_alg:
            raise ValueError("no key of the key set uses an allowed algorithm")
        if typ is not None and (not isinstance(typ, str) or not typ):
            raise ValueError("typ must be a non-empty string or None")
        if max_token_size < 64:
            raise ValueError("max_token_size is too small for any JWT")
        self._keys = keys
        self._algorithms = allowed
        self._by_alg = {alg: tuple(ks) for alg, ks in by_alg.items()}
        self._typ = media_type(typ) if typ is not None else None
        self._max_size = max_token_size
        self._allow_key_headers = unsafe_ignore_key_headers
        self._header_cache: dict[str, tuple[Verify, dict[str, Any], Key]] = {}

    @property
    def algorithms(self) -> frozenset[str]:
        return self._algorithms

    @property
    def keys(self) -> KeySet:
        return self._keys

    def _resolve_header(self, segment: str) -> tuple[Verify, dict[str, Any], Key]:
        """Parse and check a header segment and select its key; cache the outcome.

        The result depends only on the segment text and this verifier's immutable
        configuration, so it is cached per segment (a bounded dict: every token a key
        signs carries the same header). Failures are not cached.
        """
        header = parse_header(segment)
        alg = check_header(header, allow_key_headers=self._allow_key_headers)
        if alg not in self._algorithms:
            raise AlgorithmNotAllowed("the token's algorithm is not in the allowlist")
        if self._typ is not None:
            typ = header.get("typ")
            if typ is None or media_type(typ) != self._typ:
                raise BadType("typ", "the token's 'typ' header is not the required type")
        kid = header.get("kid")
        if kid is not None:
            key = self._keys.get(kid)
            if key is None:
                raise UnknownKey("no key with the token's kid")
        else:
            candidates = self._by_alg.get(alg, ())
            if len(candidates) != 1:
                raise UnknownKey("the token has no kid and the key set has no single key for its alg")
            key = candidates[0]
        if key.alg != alg:
            raise AlgorithmNotAllowed("the token's algorithm is not the one bound to its key")
        entry = (key._verify, header, key)  # the prepared primitive, no method hop
        if len(self._header_cache) >= _HEADER_CACHE_SIZE:
            self._header_cache.clear()
        self._header_cache[segment] = entry
        return entry

    def verify_signature(self, token: str | bytes) -> VerifiedJWS:
        """Check format, header rules, key binding and signature; return header and payload."""
        header_segment, payload_segment, signature_segment = split(token, self._max_size)
        entry = self._header_cache.get(header_segment) or self._resolve_header(header_segment)
        verify, header, key = entry
        payload = b64url_decode(payload_segment)
        verify(f"{header_segment}.{payload_segment}".encode("ascii"), b64url_decode(signature_segment))
        return VerifiedJWS(dict(header), payload, key)


class Verifier(JWSVerifier):
    """Verify JWTs against a key set and an explicit policy.

    ::

        verifier = Verifier(public_keys, issuer=ISS, audience=AUD, algorithms=["ES256"])
        claims = verifier.verify(token)   # Claims, or raises a JWTError subclass

    Arguments (all keyword-only after ``keys``):

    - ``issuer``: the expected ``iss`` (a string, or several); compared for exact equality.
    - ``audience``: this service's audience (or several); the token's ``aud`` (a string or
      a list) must contain at least one.
    - ``algorithms``: the allowlist; required, no default. Keys of other algorithms in the
      set are never used.
    - ``typ``: require this ``typ`` header (``"at+jwt"`` for RFC 9068 access tokens),
      compared case-insensitively with an optional ``application/`` prefix.
    - ``leeway``: seconds of clock skew tolerated (default 30, at most 300).
    - ``required_claims``: claims that must be present besides ``exp``, ``iss``, ``aud``.
    - ``clock``: a callable returning Unix time, for tests (default ``time.time``).
    - ``max_token_size``: default 8192 characters.
    - ``unsafe_ignore_key_headers``: accept (and ignore) ``jku``, ``x5u``, ``jwk``,
      ``x5c`` instead of refusing tokens that carry them. The key they name is never used.
    - ``unsafe_allow_cnf``: accept tokens bound to a key (``cnf``) from :meth:`verify`
      without any proof of possession, as bearer tokens. Only for callers that check the
      binding themselves (mutual TLS at a proxy); for DPoP use :meth:`verify_bound`.
    """

    __slots__ = ("_allow_cnf", "_audiences", "_clock", "_issuers", "_leeway", "_required")

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str | Iterable[str],
        audience: str | Iterable[str],
        algorithms: Iterable[str],
        typ: str | None = None,
        leeway: float = DEFAULT_LEEWAY,
        required_claims: Iterable[str] = (),
        clock: Clock = system_clock,
        max_token_size: int = DEFAULT_MAX_TOKEN_SIZE,
        unsafe_ignore_key_headers: bool = False,
        unsafe_allow_cnf: bool = False,
    ) -> None:
        super().__init__(
            keys,
            algorithms=algorithms,
            typ=typ,
            max_token_size=max_token_size,
            unsafe_ignore_key_headers=unsafe_ignore_key_headers,
        )
        self._allow_cnf = bool(unsafe_allow_cnf)
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        if not callable(clock):
            raise TypeError("clock must be a callable returning Unix time")
        self._issuers = string_set(issuer, "issuer")
        self._audiences = string_set(audience, "audience")
        self._leeway = float(leeway)
        self._clock = clock
        required = tuple(required_claims)
        if isinstance(required_claims, str) or not all(isinstance(c, str) for c in required):
            raise ValueError("required_claims must be a list of claim names")
        self._required = tuple(c for c in required if c not in ("exp", "iss", "aud"))

    @property
    def issuers(self) -> frozenset[str]:
        return self._issuers

    @property
    def audiences(self) -> frozenset[str]:
        return self._audiences

    @property
    def leeway(self) -> float:
        return self._leeway

    def verify(self, token: str | bytes) -> Claims:
        """Verify ``token`` completely and return its claims; raise a ``JWTError`` otherwise."""
        result: Claims = _new_claims(Claims)
        _set(result, "_data", self._verified_claims(token, False))
        return result

    def verify_bound(self, token: str | bytes, proof: DPoPProof) -> Claims:
        """Verify a DPoP-bound ``token`` presented with ``proof`` (RFC 9449 section 7).

        Everything :meth:`verify` checks, except that the token must carry ``cnf`` with a
        ``jkt`` equal to the thumbprint of the proof's key, and the proof must have been
        checked against this very token (its ``ath``): ``proof`` comes from
        :meth:`jwtwarden.dpop.DPoPVerifier.verify` called with ``access_token=token``. A
        token without ``cnf`` is refused too (``MissingClaim``): a proof adds nothing to a
        bearer token, and accepting it would hide a token that was never bound.
        """
        claims = self._verified_claims(token, True)
        self._check_binding(claims, token, proof)
        result: Claims = _new_claims(Claims)
        _set(result, "_data", claims)
        return result

    @staticmethod
    def _check_binding(claims: dict[str, Any], token: str | bytes, proof: DPoPProof) -> None:
        if not isinstance(proof, DPoPProof):
            raise TypeError("proof must be a DPoPProof from DPoPVerifier")
        cnf = claims.get("cnf")
        if cnf is None:
            raise MissingClaim("cnf", "the token is not bound to a key, yet a DPoP proof came with it")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(jkt, str):
            raise MalformedClaim("cnf", "the token's cnf has no jkt")
        text = token.decode("ascii") if isinstance(token, bytes | bytearray) else token
        if proof.ath is None or not hmac.compare_digest(proof.ath.encode(),
                                                        access_token_hash(text).encode()):
            raise InvalidDPoPProof("the DPoP proof was not checked against this token (ath)",
                                   reason="bad_ath")
        if not hmac.compare_digest(jkt.encode("ascii", "replace"), proof.jkt.encode()):
            raise InvalidDPoPProof("the DPoP proof is signed by another key than the token is "
                                   "bound to", reason="key_mismatch")

    def _verified_claims(self, token: str | bytes, bound: bool) -> dict[str, Any]:
        # The steps of split() and verify_signature(), inlined: this is the hot path.
        if type(token) is not str or len(token) > self._max_size:
            token = as_text(token, self._max_size)  # bytes, or raises the right error
        parts = token.split(".")
        if len(parts) != 3 or not token.isascii():
            raise MalformedToken("a compact JWS has exactly three ASCII segments")
        header_segment, payload_segment, signature_segment = parts
        entry = self._header_cache.get(header_segment) or self._resolve_header(header_segment)
        # Every segment is decoded (a format error is 'malformed', whatever the signature),
        # but the payload JSON is parsed only once the signature has vouched for it.
        payload = b64url_decode(payload_segment)
        if not payload:
            raise MalformedToken("a JWT payload cannot be empty")
        entry[0](
            token[: len(header_segment) + len(payload_segment) + 1].encode("ascii"),
            b64url_decode(signature_segment),
        )
        claims = parse_object(payload, "payload")
        self._check_claims(claims, bound)
        return claims

    def _check_claims(self, claims: dict[str, Any], bound: bool = False) -> None:
        now = self._clock()
        leeway = self._leeway
        exp = claims.get("exp")
        t = type(exp)
        if t is not int and t is not float:
            raise MissingClaim("exp") if exp is None and "exp" not in claims else MalformedClaim("exp")
        if now - leeway >= exp:  # type: ignore[operator]
            raise Expired("exp", "the token has expired")
        if "nbf" in claims:
            nbf = claims["nbf"]
            if type(nbf) is not int and type(nbf) is not float:
                raise MalformedClaim("nbf")
            if nbf > now + leeway:
                raise NotYetValid("nbf", "the token is not valid yet")
        if "iat" in claims:
            iat = claims["iat"]
            if type(iat) is not int and type(iat) is not float:
                raise MalformedClaim("iat")
            if iat > now + leeway:
                raise IssuedInFuture("iat", "the token claims to be issued in the future")
        iss = claims.get("iss")
        if type(iss) is not str:
            raise MissingClaim("iss") if iss is None and "iss" not in claims else MalformedClaim("iss")
        if iss not in self._issuers:
            raise BadIssuer("iss", "the token's issuer is not the expected one")
        aud = claims.get("aud")
        if type(aud) is str:
            if aud not in self._audiences:
                raise BadAudience("aud", "the token is not meant for this audience")
        elif type(aud) is list:
            if not all(type(a) is str for a in aud):
                raise MalformedClaim("aud")
            if self._audiences.isdisjoint(aud):
                raise BadAudience("aud", "the token is not meant for this audience")
        elif aud is None and "aud" not in claims:
            raise MissingClaim("aud")
        else:
            raise MalformedClaim("aud")
        for name in ("sub", "jti"):
            if name in claims and type(claims[name]) is not str:
                raise MalformedClaim(name)
        for name in self._required:
            if name not in claims:
                raise MissingClaim(name)
        if not bound and "cnf" in claims and not self._allow_cnf:
            raise SenderConstrained


_sha256 = hashlib.sha256
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flat(data: dict[str, Any]) -> bool:
    """Scalars only, or objects of scalars one level down (``cnf``): cheap to copy per caller."""
    return all(type(value) in _SCALARS or (type(value) is dict and all(
        type(inner) in _SCALARS for inner in value.values())) for value in data.values())
_MISSING: Any = object()


class CachingVerifier(Verifier):
    """A :class:`Verifier` that remembers which exact tokens it has verified.

    For services that see the same token on many requests (every request of a session
    carries it for up to 15 minutes). A token seen again — looked up by the SHA-256 of its
    full text, so only the same bytes match, and no token is kept in memory — skips the
    header checks, the signature and, when every claim is a string, number, boolean or
    null (or an object of those, such as a DPoP token's ``cnf``), the JSON parsing: their outcome depends only on the token text and this
    verifier's immutable key set and policy. **Every claim is checked again** (``exp``,
    ``nbf``, ``iat``, ``iss``, ``aud``, required claims) exactly as on the first
    verification, and each caller gets its own copy. Tokens carrying lists or objects are
    parsed again each time (objects of scalars are copied), so no caller can change what
    another sees. Only tokens that
    verified are remembered, at most ``cache_size`` (the cache is emptied when full); the
    cache dies with the verifier, so build a new one when the key set changes (a retired or
    revoked key is then forgotten at once).
    """

    __slots__ = ("_verified", "_verified_max")

    def __init__(self, keys: KeySet, *, cache_size: int = 4096, **options: Any) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError("cache_size must be a whole number, 0 or more")
        super().__init__(keys, **options)
        self._verified: dict[bytes, dict[str, Any] | None] = {}
        self._verified_max = cache_size

    def _verified_claims(self, token: str | bytes, bound: bool) -> dict[str, Any]:
        if type(token) is not str or not self._verified_max:
            return super()._verified_claims(token, bound)
        try:
            digest = _sha256(token.encode("ascii")).digest()
        except UnicodeEncodeError:
            return super()._verified_claims(token, bound)  # raises the right error
        cached = self._verified.get(digest, _MISSING)
        if cached is _MISSING:
            data = super()._verified_claims(token, bound)
            if len(self._verified) >= self._verified_max:
                self._verified.clear()
            self._verified[digest] = dict(data) if _flat(data) else None
            return data
        if cached is None:
            claims = parse_object(b64url_decode(token.split(".")[1]), "payload")
        else:  # each caller its own copy, objects one level down (cnf) included
            claims = {name: dict(value) if type(value) is dict else value
                      for name, value in cached.items()}
        self._check_claims(claims, bound)
        return claims
