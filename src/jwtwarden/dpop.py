"""DPoP proofs (RFC 9449): the one place where a key carried in a header is trusted.

A DPoP proof is a JWS the client signs, for each request, with a key it keeps; the public
half travels in the proof's own ``jwk`` header. That key proves nothing by itself: its
trust comes from equality of its RFC 7638 thumbprint with the ``cnf.jkt`` of an access token
the token service bound to it (:meth:`jwtwarden.Verifier.verify_bound`), or with the key a
session's refresh token is bound to. Everywhere else jwtwarden refuses ``jwk`` headers.

:class:`DPoPVerifier` checks, in this order (RFC 9449 section 4.3), raising
:class:`~jwtwarden.errors.InvalidDPoPProof` with a ``reason``:

1. exactly one ``DPoP`` header (``missing``, ``multiple``), one compact JWS within the size
   limit (``malformed``);
2. the header: ``typ`` exactly ``dpop+jwt`` (``bad_typ``); ``alg`` in the allowlist, which
   holds asymmetric algorithms only — ES256 and EdDSA by default, never ``none`` or HMAC
   (``alg_not_allowed``); ``crit``/``b64``/``zip``/``jku``/``x5u``/``x5c`` refused
   (``unsupported_header``); ``jwk`` a public key of the ``alg``'s type and curve with no
   private member (``bad_key``);
3. the signature, under that key (``bad_signature``);
4. the claims: ``jti`` (1-512 printable characters), ``htm``, ``htu`` strings and ``iat`` a
   number (``missing_claim``, ``malformed``); ``htm`` equal to the request's method
   (``bad_htm``); ``htu`` equal to the request's URL after RFC 3986 section 6.2.2 and 6.2.3
   normalisation, query and fragment ignored (``bad_htu``); ``iat`` at most ``max_age``
   seconds old (``stale``) and at most ``max_future`` seconds ahead (``future``);
5. the server nonce (sections 8 and 9), when :class:`DPoPNonces` are configured: a nonce
   that is not current, or none when one is required, raises
   :class:`~jwtwarden.errors.UseDPoPNonce` carrying the nonce to use;
6. with an access token: ``ath`` equal to the token's SHA-256 (``bad_ath``); with an
   expected thumbprint: the proof key's (``key_mismatch``);
7. the ``jti``, stored for the window under SHA-256(thumbprint, ``jti``): seen before is
   ``replayed`` (section 11.1). A full in-memory store fails closed
   (:class:`~jwtwarden.errors.DPoPReplayUnavailable`).

The result is a :class:`DPoPProof`. :func:`create_proof` makes proofs (clients, tests,
the scanner); :func:`normalize_htu`, :func:`access_token_hash` and :func:`decode_proof`
serve tools that look at proofs without verifying a request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from jwtwarden.errors import (
    BadKey,
    BadSignature,
    DPoPReplayUnavailable,
    InvalidDPoPProof,
    JWTError,
    UseDPoPNonce,
)
from jwtwarden.jose.algorithms import ALGORITHMS, Verify
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.jwk import parse_jwk, thumbprint
from jwtwarden.jose.jws import DEFAULT_MAX_TOKEN_SIZE, REFUSED_HEADERS, encode_header, serialize
from jwtwarden.jose.strict_json import dumps, parse_object
from jwtwarden.keys import AsymmetricKey, Key
from jwtwarden.policy import Clock, system_clock

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "DPOP_TYP",
    "AsyncReplayStore",
    "DPoPNonces",
    "DPoPProof",
    "DPoPVerifier",
    "MemoryReplayStore",
    "ReplayStore",
    "access_token_hash",
    "create_proof",
    "decode_proof",
    "normalize_htu",
    "replay_key",
]

DPOP_TYP = "dpop+jwt"
DEFAULT_DPOP_ALGORITHMS = ("ES256", "EdDSA")
"""What a proof may be signed with unless configured otherwise (RFC 9449 section 5.1 lets the
server choose; both are fast, small and have no parameters to get wrong)."""

DEFAULT_MAX_AGE = 60.0
DEFAULT_MAX_FUTURE = 5.0
MAX_JTI = 512
MAX_URL = 2048
_UNTRUSTED_KEY_HEADERS = ("jku", "x5u", "x5c")
_HEADER_CACHE_SIZE = 256
_HTU_CACHE_SIZE = 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
_NUMBERS = (int, float)


# ---- helpers shared with clients and tools ----------------------------------------------------


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url SHA-256 of the access token's ASCII text (RFC 9449 section 4.2)."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii")).digest())


def replay_key(jkt: str, jti: str) -> bytes:
    """What a replay store keeps for a proof: SHA-256 of (thumbprint, jti), never the jti itself."""
    return hashlib.sha256(f"{jkt}\x00{jti}".encode()).digest()


def _percent_normalized(path: str) -> str:
    """RFC 3986 section 6.2.2.1/6.2.2.2: hex digits upper case, unreserved characters decoded."""
    if "%" not in path:
        return path
    out: list[str] = []
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        pair = path[i + 1:i + 3]
        if len(pair) != 2 or not _HEX.issuperset(pair):
            raise ValueError("a '%' not followed by two hex digits")
        char = chr(int(pair, 16))
        out.append(char if char in _UNRESERVED else "%" + pair.upper())
        i += 3
    return "".join(out)


def _without_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path (linear: one pass over the segments)."""
    segments = path.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == ".":
            if i == last:
                out.append("")
        elif segment == "..":
            if out:
                out.pop()
            if i == last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def normalize_htu(url: str) -> str:
    """``url`` as RFC 9449 compares ``htu``: query and fragment dropped, then RFC 3986 syntax-
    (section 6.2.2) and scheme-based (section 6.2.3) normalisation — scheme and host in lower
    case, default port and empty port dropped, an empty path as ``/``, percent-encodings of
    unreserved characters decoded and the others in upper case, dot segments removed.

    :class:`ValueError` for anything that is not an absolute ``http``/``https`` URL of at most
    2048 printable ASCII characters without user information.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL or not url.isascii() \
            or not url.isprintable() or " " in url or "\\" in url:
        raise ValueError("not a URL of printable ASCII characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc:
        raise ValueError("not an absolute http(s) URL without user information")
    host = parts.hostname or ""
    if not host or "%" in host:
        raise ValueError("no host, or a percent-encoded one")
    port = parts.port  # ValueError when not a number in range
    if ":" in host:
        host = f"[{host}]"
    authority = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _without_dot_segments(_percent_normalized(parts.path or "/"))
    return f"{scheme}://{authority}{path}"


def create_proof(
    key: Key,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    iat: float | None = None,
    jti: str | None = None,
    clock: Clock = system_clock,
) -> str:
    """A DPoP proof for one request: ``typ`` ``dpop+jwt``, the public ``jwk`` of ``key``, a
    fresh 128-bit ``jti``, ``htm``, ``htu`` (``url`` without query and fragment), ``iat``, and
    ``ath``/``nonce`` when given. ``key`` is a private asymmetric :class:`~jwtwarden.Key`."""
    if not isinstance(key, AsymmetricKey) or not key.is_private:
        raise TypeError("a DPoP proof is signed with a private asymmetric key")
    parts = urlsplit(url)
    jwk = key.to_jwk()
    for member in ("kid", "use", "alg"):
        jwk.pop(member, None)  # the key itself; metadata would change nothing
    header = {"typ": DPOP_TYP, "alg": key.alg, "jwk": jwk}
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": method,
        "htu": parts._replace(query="", fragment="").geturl(),
        "iat": int(clock()) if iat is None else iat,
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    return serialize(encode_header(header), dumps(claims), key.sign)


def decode_proof(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a proof, **without verifying anything** (for tools that display
    proofs). Raises :class:`~jwtwarden.errors.MalformedToken` if it is no compact JWS."""
    from jwtwarden.jose.jws import decode_segments

    header, payload, _ = decode_segments(proof)
    return header, parse_object(payload, "payload")


# ---- server nonces (RFC 9449 sections 8 and 9) --------------------------------------------------


class DPoPNonces:
    """Stateless server nonces: HMAC-SHA-256 of a time step under a secret, so every replica
    holding the secret issues and accepts the same nonces without storing any.

    :meth:`current` is the nonce of the current ``step`` (default 60 s); :meth:`check`
    accepts it and those of the two steps before (a nonce lives 2-3 steps), in constant time.
    """

    __slots__ = ("_clock", "_secret", "_step")

    def __init__(self, secret: bytes, *, step: int = 60, clock: Clock = system_clock) -> None:
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise ValueError("a DPoP nonce secret is at least 32 random bytes")
        if isinstance(step, bool) or not isinstance(step, int) or not 10 <= step <= 3600:
            raise ValueError("step must be 10-3600 seconds")
        self._secret = secret
        self._step = step
        self._clock = clock

    def _value(self, step: int) -> str:
        mac = hmac.digest(self._secret, b"jwtwarden dpop nonce v1:%d" % step, "sha256")
        return b64url_encode(mac)

    def current(self) -> str:
        """The nonce to hand out now (``DPoP-Nonce``)."""
        return self._value(int(self._clock() // self._step))

    def check(self, nonce: str) -> bool:
        """Whether ``nonce`` is one this server handed out in the last two or three steps."""
        if not isinstance(nonce, str) or not nonce.isascii():
            return False
        now = int(self._clock() // self._step)
        given = nonce.encode("ascii")
        ok = False
        for step in (now, now - 1, now - 2):
            ok |= hmac.compare_digest(self._value(step).encode("ascii"), given)
        return ok

    def __repr__(self) -> str:
        return f"DPoPNonces(step={self._step})"


# ---- replay stores ------------------------------------------------------------------------------


@runtime_checkable
class ReplayStore(Protocol):
    """Remembers proof identifiers. ``add(key, ttl)``: True if ``key`` was new (now stored for
    ``ttl`` seconds), False if it is there already; raise
    :class:`~jwtwarden.errors.DPoPReplayUnavailable` when it cannot tell (fail closed)."""

    def add(self, key: bytes, ttl: float) -> bool: ...


@runtime_checkable
class AsyncReplayStore(Protocol):
    """:class:`ReplayStore` for event loops (Redis): ``await aadd(key, ttl)``."""

    async def aadd(self, key: bytes, ttl: float) -> bool: ...


class MemoryReplayStore:
    """Proof identifiers of one process, at most ``max_entries`` (default 100 000) at once.

    Entries leave in the order they came once their time is up (the time to live is the
    same for every entry of a verifier, so that order is the expiry order: linear work in
    total). When the store is full of live entries it fails closed: every new proof is
    refused with :class:`~jwtwarden.errors.DPoPReplayUnavailable` (503) until entries expire.
    Thread-safe. For several replicas, use a shared store (Redis).
    """

    __slots__ = ("_clock", "_entries", "_lock", "_max", "_order")

    def __init__(self, max_entries: int = 100_000, *, clock: Clock = system_clock) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive whole number")
        self._max = max_entries
        self._clock = clock
        self._entries: dict[bytes, float] = {}
        self._order: deque[tuple[float, bytes]] = deque()
        self._lock = threading.Lock()

    def add(self, key: bytes, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            entries, order = self._entries, self._order
            while order and order[0][0] <= now:
                expired, old = order.popleft()
                if entries.get(old) == expired:
                    del entries[old]
            expiry = entries.get(key)
            if expiry is not None and expiry > now:
                return False
            if len(entries) >= self._max:
                raise DPoPReplayUnavailable("the DPoP replay store is full; refusing new proofs")
            entries[key] = now + ttl
            order.append((now + ttl, key))
            return True

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryReplayStore({len(self._entries)}/{self._max})"


# ---- the verifier -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A proof that passed :class:`DPoPVerifier`: the key's thumbprint (``jkt``) and claims.

    ``ath`` is the access-token hash the proof carried when it was checked against an access
    token (else ``None``); ``next_nonce`` is a nonce to send back in ``DPoP-Nonce`` (a fresh
    one, when the proof's was not the current one), or ``None``.
    """

    jkt: str
    jti: str
    htm: str
    htu: str
    iat: float
    alg: str
    ath: str | None = None
    nonce: str | None = None
    next_nonce: str | None = None


def _invalid(reason: str, message: str) -> InvalidDPoPProof:
    return InvalidDPoPProof(message, reason=reason)


class DPoPVerifier:
    """Check DPoP proofs; see the module docstring for what and in which order.

    ::

        dpop = DPoPVerifier()                       # ES256 + EdDSA, 60 s window, memory store
        proof = dpop.verify(headers.get_all("DPoP"), method="GET",
                            url="https://api.example.com/items", access_token=token)
        claims = verifier.verify_bound(token, proof)

    ``algorithms``: the allowlist (asymmetric only; :class:`ValueError` otherwise).
    ``max_age`` / ``max_future``: how old / how far ahead ``iat`` may be (60 s / 5 s).
    ``replay``: a :class:`ReplayStore` or :class:`AsyncReplayStore` (default: a
    :class:`MemoryReplayStore`); ``None`` turns replay detection off (only for tools).
    ``nonces``: :class:`DPoPNonces` to hand out and check; ``require_nonce``: refuse proofs
    without one (``use_dpop_nonce``). ``clock``: Unix time, injectable.
    """

    __slots__ = ("_algorithms", "_async_store", "_clock", "_header_cache", "_htu_cache",
                 "_max_age", "_max_future", "_max_size", "_nonces", "_replay", "_require_nonce",
                 "_ttl")

    def __init__(
        self,
        *,
        algorithms: Iterable[str] = DEFAULT_DPOP_ALGORITHMS,
        max_age: float = DEFAULT_MAX_AGE,
        max_future: float = DEFAULT_MAX_FUTURE,
        replay: ReplayStore | AsyncReplayStore | str | None = "memory",
        nonces: DPoPNonces | None = None,
        require_nonce: bool = False,
        clock: Clock = system_clock,
        max_proof_size: int = DEFAULT_MAX_TOKEN_SIZE,
    ) -> None:
        if isinstance(algorithms, str):
            raise ValueError("algorithms must be a list, e.g. ['ES256']")
        allowed = tuple(dict.fromkeys(algorithms))
        if not allowed:
            raise ValueError("an explicit, non-empty DPoP algorithm allowlist is required")
        for name in allowed:
            spec = ALGORITHMS.get(name)
            if spec is None or spec.kty == "oct":
                raise ValueError(f"{name!r} is not an asymmetric signature algorithm; a DPoP "
                                 "proof needs one (never none or HMAC)")
        if not 0 < max_age <= 600 or not 0 <= max_future <= 60:
            raise ValueError("max_age must be 0-600 s and max_future 0-60 s")
        if require_nonce and nonces is None:
            raise ValueError("require_nonce needs nonces")
        if nonces is not None and not isinstance(nonces, DPoPNonces):
            raise TypeError("nonces must be DPoPNonces")
        if replay == "memory":
            replay = MemoryReplayStore(clock=clock)
        elif replay is not None and not isinstance(replay, ReplayStore | AsyncReplayStore):
            raise TypeError("replay must have add(key, ttl) or aadd(key, ttl), or be None")
        self._algorithms = allowed
        self._max_age = float(max_age)
        self._max_future = float(max_future)
        self._ttl = self._max_age + self._max_future + 1.0
        self._replay = replay
        # decided once: isinstance() against a runtime-checkable protocol is slow per request
        self._async_store = replay is not None and callable(getattr(replay, "aadd", None))
        self._nonces = nonces
        self._require_nonce = bool(require_nonce)
        self._clock = clock
        self._max_size = max_proof_size
        self._header_cache: dict[str, tuple[Verify, str, str]] = {}
        self._htu_cache: dict[str, str] = {}

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The allowlist, in the order given (``WWW-Authenticate``'s ``algs`` and the metadata)."""
        return self._algorithms

    @property
    def nonces(self) -> DPoPNonces | None:
        return self._nonces

    @property
    def require_nonce(self) -> bool:
        return self._require_nonce

    @property
    def replay(self) -> ReplayStore | AsyncReplayStore | None:
        return self._replay

    # ---- the steps --------------------------------------------------------------------------

    def _header(self, segment: str) -> tuple[Verify, str, str]:
        """(verify, jkt, alg) of a header segment; cached, as it depends on nothing else."""
        cached = self._header_cache.get(segment)
        if cached is not None:
            return cached
        try:
            header = parse_object(b64url_decode(segment), "header")
        except JWTError:
            raise _invalid("malformed", "the DPoP proof's header is not a JSON object") from None
        if header.get("typ") != DPOP_TYP:
            raise _invalid("bad_typ", "the DPoP proof's typ is not dpop+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _invalid("alg_not_allowed", "the DPoP proof's algorithm is not accepted")
        for name in header:
            if name in REFUSED_HEADERS or name in _UNTRUSTED_KEY_HEADERS:
                raise _invalid("unsupported_header", f"the DPoP proof's header {name!r} is refused")
        jwk = header.get("jwk")
        if not isinstance(jwk, Mapping):
            raise _invalid("bad_key", "the DPoP proof's jwk is missing or not an object")
        try:
            material = parse_jwk(jwk, allow_private=False)
            if material.public_key is None:  # oct: a secret is no public key
                raise BadKey("a symmetric key")
            if material.alg not in (None, alg) or material.use not in (None, "sig"):
                raise BadKey("the jwk is for another use or algorithm")
            key = AsymmetricKey(material.public_key, alg, kid="dpop")
            jkt = key.thumbprint()
        except (BadKey, TypeError):
            raise _invalid("bad_key", "the DPoP proof's jwk is not a public key for its alg") \
                from None
        entry = (key._verify, jkt, alg)
        if len(self._header_cache) >= _HEADER_CACHE_SIZE:
            self._header_cache.clear()
        self._header_cache[segment] = entry
        return entry

    def _normalized(self, url: str) -> str:
        """:func:`normalize_htu`, remembered (a client names the same URLs again and again)."""
        cached = self._htu_cache.get(url)
        if cached is None:
            cached = normalize_htu(url)
            if len(self._htu_cache) >= _HTU_CACHE_SIZE:
                self._htu_cache.clear()
            self._htu_cache[url] = cached
        return cached

    def check(
        self,
        proof: Sequence[str] | str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """Every check but the replay store's: steps 1-6 of the module docstring.

        ``proof``: the ``DPoP`` header value, or every value of it. ``url``: the request's URL
        as this server's public base URL makes it (never from an unchecked ``Host``).
        """
        if proof is None:
            raise _invalid("missing", "a DPoP proof is required")
        if not isinstance(proof, str):
            values = list(proof)
            if len(values) != 1:
                if not values:
                    raise _invalid("missing", "a DPoP proof is required")
                raise _invalid("multiple", "exactly one DPoP header is allowed")
            proof = values[0]
        if not isinstance(proof, str) or not proof:
            raise _invalid("missing", "a DPoP proof is required")
        if len(proof) > self._max_size:
            raise _invalid("malformed", "the DPoP proof is too large")
        parts = proof.split(".")
        if len(parts) != 3 or not proof.isascii():
            raise _invalid("malformed", "the DPoP proof is not one compact JWS")
        verify, key_jkt, alg = self._header(parts[0])
        try:
            payload = b64url_decode(parts[1])
            verify(f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2]))
        except BadSignature:
            raise _invalid("bad_signature", "the DPoP proof's signature is invalid") from None
        except JWTError:
            raise _invalid("malformed", "the DPoP proof is not one compact JWS") from None
        try:
            claims = parse_object(payload, "payload")
        except JWTError:
            raise _invalid("malformed", "the DPoP proof's claims are not a JSON object") from None
        jti, htm, htu, iat = (claims.get(n) for n in ("jti", "htm", "htu", "iat"))
        for name, value in (("jti", jti), ("htm", htm), ("htu", htu), ("iat", iat)):
            if value is None:
                raise _invalid("missing_claim", f"the DPoP proof lacks '{name}'")
        if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI or not jti.isprintable():
            raise _invalid("malformed", "the DPoP proof's jti is not 1-512 printable characters")
        if not isinstance(htm, str) or not isinstance(htu, str):
            raise _invalid("malformed", "the DPoP proof's htm and htu must be strings")
        if type(iat) not in _NUMBERS or iat != iat:
            raise _invalid("malformed", "the DPoP proof's iat is not a number")
        issued = float(iat)  # type: ignore[arg-type]  # a number, checked above
        if htm != method:
            raise _invalid("bad_htm", "the DPoP proof is for another HTTP method")
        try:
            if self._normalized(htu) != self._normalized(url):
                raise ValueError("another URL")
        except ValueError:
            raise _invalid("bad_htu", "the DPoP proof is for another URL") from None
        now = self._clock()
        if now - issued > self._max_age:
            raise _invalid("stale", "the DPoP proof is too old")
        if issued - now > self._max_future:
            raise _invalid("future", "the DPoP proof is issued in the future")
        nonce = claims.get("nonce")
        if nonce is not None and not isinstance(nonce, str):
            raise _invalid("malformed", "the DPoP proof's nonce is not a string")
        next_nonce = None
        nonces = self._nonces
        if nonces is not None:
            if nonce is None and self._require_nonce:
                raise UseDPoPNonce("a DPoP nonce is required", nonce=nonces.current())
            if nonce is not None and not nonces.check(nonce):
                raise UseDPoPNonce("the DPoP nonce is not current", nonce=nonces.current())
            current = nonces.current()
            if nonce != current:
                next_nonce = current
        ath = claims.get("ath")
        if access_token is not None:
            if not isinstance(ath, str) or not hmac.compare_digest(
                    ath.encode("ascii", "replace"), access_token_hash(access_token).encode()):
                raise _invalid("bad_ath", "the DPoP proof is not for this access token (ath)")
        elif ath is not None and not isinstance(ath, str):
            raise _invalid("malformed", "the DPoP proof's ath is not a string")
        if jkt is not None and not hmac.compare_digest(key_jkt.encode(), jkt.encode("ascii", "replace")):
            raise _invalid("key_mismatch", "the DPoP proof is signed by another key than the "
                                           "token is bound to")
        return DPoPProof(jkt=key_jkt, jti=jti, htm=htm, htu=htu, iat=issued, alg=alg,
                         ath=ath if access_token is not None else None, nonce=nonce,
                         next_nonce=next_nonce)

    def _replayed(self, proof: DPoPProof) -> InvalidDPoPProof:
        return _invalid("replayed", "this DPoP proof was already used")

    def verify(
        self,
        proof: Sequence[str] | str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """:meth:`check`, then the replay store (a synchronous one; see :meth:`averify`)."""
        result = self.check(proof, method=method, url=url, access_token=access_token, jkt=jkt)
        store = self._replay
        if store is not None:
            if self._async_store:
                raise TypeError("this replay store is asynchronous: use averify()")
            if not store.add(replay_key(result.jkt, result.jti), self._ttl):  # type: ignore[union-attr]
                raise self._replayed(result)
        return result

    async def averify(
        self,
        proof: Sequence[str] | str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """:meth:`verify` with an asynchronous replay store (or a synchronous one)."""
        result = self.check(proof, method=method, url=url, access_token=access_token, jkt=jkt)
        store = self._replay
        if store is not None:
            key = replay_key(result.jkt, result.jti)
            if self._async_store:
                fresh = await store.aadd(key, self._ttl)  # type: ignore[union-attr]
            else:
                fresh = store.add(key, self._ttl)  # type: ignore[union-attr]
            if not fresh:
                raise self._replayed(result)
        return result

    def __repr__(self) -> str:
        return (f"DPoPVerifier(algorithms={list(self._algorithms)!r}, max_age={self._max_age:g}, "
                f"nonces={self._nonces is not None}, require_nonce={self._require_nonce})")


def expected_url(base_url: str, path: str) -> str:
    """The URL a request for ``path`` (as the server received it, percent-encoded) has when
    clients reach this server's root at ``base_url`` (which may carry a sub-path)."""
    return base_url.rstrip("/") + (path if path.startswith("/") else "/" + path)


def check_base_url(base_url: str) -> str:
    """A public base URL for DPoP (``https://api.example.com`` or with a sub-path), checked:
    :class:`ValueError` unless an absolute http(s) URL without query, fragment or user."""
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise ValueError("a public URL is an absolute http(s) URL without query or fragment")
    normalize_htu(base_url)
    return base_url.rstrip("/")


def thumbprint_of(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of a public JWK (the ``jkt`` a token bound to it carries)."""
    return thumbprint(jwk)
