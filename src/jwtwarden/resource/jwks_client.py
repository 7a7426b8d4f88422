"""A remote JWKS, cached, for resource servers: :class:`RemoteJWKS` and :class:`RemoteVerifier`.

::

    jwks = RemoteJWKS("https://auth.example.com/.well-known/jwks.json", algorithms=["ES256"])
    verifier = jwks.verifier(issuer="https://auth.example.com", audience="api.example.com")
    claims = verifier.verify(token)          # or: await verifier.averify(token)

What :class:`RemoteJWKS` guarantees (defaults in brackets, each configurable):

- **https only**, except on loopback (``127.0.0.0/8``, ``::1``, ``localhost``); redirects are
  not followed. Anything else is a :class:`ValueError` when the object is built.
- **Cache**: a fetched key set is fresh for the response's ``Cache-Control: max-age`` (minus
  ``Age``), bounded to [``min_age`` (30 s), ``max_age`` (10 min)]; without the header, for
  ``max_age``. An expired set is refetched by the first request that needs it.
- **Cooldown and single flight**: at most one request per ``cooldown`` (30 s), whatever the
  reason (expiry, an unknown ``kid``, a failure). While a request is in flight every caller
  waits for it: one task awaited by every coroutine (async), one request behind a lock
  (threads). A burst of tokens with new or bogus ``kid`` values therefore costs one request.
- **Stale on error**: when a refetch fails, the last good key set keeps being served for up
  to ``max_stale`` (24 h) past its freshness; after that every call raises
  :class:`JWKSUnavailable` (fail closed).
- **Limits**: ``timeout`` (5 s) for the whole request, and a response size cap
  (``max_size``, 512 KiB) enforced while the body streams in, before anything is parsed;
  compressed responses are refused (the cap must hold on what is parsed).
- **Keys**: only public keys. A JWKS carrying any private member (``d``, ``p``, ``k``...) is
  refused as a whole (:class:`JWKSInvalid`). Keys marked ``"use": "enc"``, keys whose ``alg``
  is not one of ``algorithms`` and keys that cannot be loaded (weak, malformed, unknown
  ``kty``) are skipped. A key without ``alg`` is bound through ``algorithms`` only: it is used
  when exactly one configured algorithm fits its ``kty`` (and ``crv``), and skipped otherwise.
  Two usable keys with the same ``kid`` make the JWKS invalid.

Errors (every one a :class:`~jwtwarden.errors.JWTError`)::

    JWKSUnavailable        jwks_unavailable   no usable key set: unreachable, timeout, HTTP
    │                                         status, or the stale copy is too old
    └── JWKSInvalid        jwks_invalid       the answer is not an acceptable public JWKS
        └── JWKSTooLarge   jwks_too_large     the answer is over the size cap

A verification whose ``kid`` is not in the set raises :class:`~jwtwarden.errors.UnknownKey`
after the (cooldown-bound) refetch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from jwtwarden.dpop import DPoPProof
from jwtwarden.errors import (
    BadKey,
    JWKSInvalid,
    JWKSTooLarge,
    JWKSUnavailable,
    MalformedToken,
    UnknownKey,
)
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.jose.jwk import PRIVATE_MEMBERS
from jwtwarden.jose.jws import DEFAULT_MAX_TOKEN_SIZE
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.keys import Key, KeySet
from jwtwarden.policy import DEFAULT_LEEWAY, Claims, Clock, is_loopback, system_clock
from jwtwarden.verify import CachingVerifier, Verifier

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MAX_STALE",
    "DEFAULT_TIMEOUT",
    "JWKSInvalid",
    "JWKSTooLarge",
    "JWKSUnavailable",
    "RemoteJWKS",
    "RemoteVerifier",
    "check_url",
    "load_public_jwks",
]

log = logging.getLogger("jwtwarden.jwks")

DEFAULT_MAX_AGE = 600.0
DEFAULT_COOLDOWN = 30.0
# After an emergency key revocation the issuer's replacement key may reach its JWKS a few
# seconds after the revocation reaches us: for one cooldown, an unknown kid may refetch this
# often instead of once per cooldown.
RECOVERY_INTERVAL = 1.0
DEFAULT_MAX_STALE = 86_400.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_SIZE = 512 * 1024
DEFAULT_VERIFIED_CACHE_SIZE = 4096

_ANY_PRIVATE_MEMBER = frozenset().union(*PRIVATE_MEMBERS.values())
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)
_ACCEPT = {"accept": "application/jwk-set+json, application/json", "accept-encoding": "identity"}


# ---- errors ------------------------------------------------------------------------------


# ---- configuration checks ----------------------------------------------------------------


def check_url(url: str, what: str = "JWKS URL") -> httpx.URL:
    """Parse ``url`` and refuse it unless it is https, or http on a loopback address.

    Raises :class:`ValueError` (a configuration mistake) for any other scheme, for a missing
    host, and for credentials in the URL.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"the {what} must be a non-empty string")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ValueError(f"the {what} is not a valid URL") from None
    if not parsed.host:
        raise ValueError(f"the {what} has no host")
    if parsed.userinfo:
        raise ValueError(f"the {what} must not carry credentials")
    if parsed.scheme == "https":
        return parsed
    if parsed.scheme == "http" and is_loopback(parsed.host):
        return parsed
    raise ValueError(f"the {what} must use https (plain http is allowed only on loopback)")


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds")
    return float(value)


def _allowlist(algorithms: Iterable[str]) -> frozenset[str]:
    if isinstance(algorithms, str):
        raise ValueError("algorithms must be a list, e.g. ['ES256']")
    allowed = frozenset(algorithms)
    if not allowed:
        raise ValueError("an explicit, non-empty algorithm allowlist is required")
    unknown = sorted(a for a in allowed if a not in ALGORITHMS)
    if unknown:
        raise ValueError(f"unsupported algorithms in the allowlist: {unknown}")
    return allowed


# ---- loading -----------------------------------------------------------------------------


def _fitting(jwk: Mapping[str, Any], algorithms: frozenset[str]) -> list[str]:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    return [
        name for name in sorted(algorithms)
        if ALGORITHMS[name].kty == kty and ALGORITHMS[name].curve in (None, crv)
    ]


def load_public_jwks(document: bytes | str, algorithms: Iterable[str]) -> KeySet:
    """Load a JWKS document for verification with the keys usable under ``algorithms``.

    Raises :class:`JWKSInvalid` when the document is not a strict JSON object with a
    ``keys`` array, when any key carries a private member, or when two usable keys share a
    ``kid``. Keys that are not usable are skipped (see the module docstring); the result may
    be empty.
    """
    allowed = _allowlist(algorithms)
    raw = document.encode("utf-8") if isinstance(document, str) else document
    try:
        data = parse_object(raw, "JWKS")
    except MalformedToken:
        raise JWKSInvalid("the JWKS is not a strict JSON object") from None
    entries = data.get("keys")
    if not isinstance(entries, list):
        raise JWKSInvalid("a JWKS is an object with a 'keys' array")
    keys: list[Key] = []
    skipped = 0
    for jwk in entries:
        if not isinstance(jwk, dict):
            skipped += 1
            continue
        if not _ANY_PRIVATE_MEMBER.isdisjoint(jwk):
            raise JWKSInvalid("the JWKS carries private key material; it is refused as a whole")
        if jwk.get("use", "sig") != "sig":
            continue
        alg = jwk.get("alg")
        if alg is None:
            fitting = _fitting(jwk, allowed)
            if len(fitting) != 1:
                skipped += 1
                continue
            bind: str | None = fitting[0]
        elif alg in allowed:
            bind = None
        else:
            continue
        try:
            keys.append(Key.from_jwk(jwk, alg=bind, allow_private=False))
        except BadKey:
            skipped += 1
    if skipped:
        log.info("JWKS: %d key(s) skipped (unusable with the configured algorithms)", skipped)
    try:
        return KeySet(keys)
    except BadKey:
        raise JWKSInvalid("two usable keys of the JWKS share a kid") from None


def _fingerprint(keys: KeySet) -> frozenset[tuple[str, str, str]]:
    return frozenset((k.kid, k.alg, k.thumbprint()) for k in keys)


def _freshness(headers: httpx.Headers, low: float, high: float) -> float:
    """Seconds a response stays fresh: ``max-age`` minus ``Age``, clamped to [low, high]."""
    control = ",".join(headers.get_list("cache-control"))
    if _NO_CACHE.search(control):
        return low
    match = _MAX_AGE.search(control)
    if match is None:
        return high
    age_text = headers.get("age", "0").strip()
    age = int(age_text) if age_text.isascii() and age_text.isdigit() and len(age_text) <= 10 else 0
    return min(high, max(low, int(match.group(1)) - age))


# ---- the remote key set ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cached:
    keys: KeySet
    fingerprint: frozenset[tuple[str, str, str]]
    fetched_at: float
    expires_at: float
    stale_until: float


class _Flight:
    """One request in progress; everybody who needs its outcome waits on ``done``."""

    __slots__ = ("done", "started", "task")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.started = time.monotonic()  # real time: a flight is network time, not cache age
        self.task: asyncio.Task[None] | None = None


class RemoteJWKS:
    """The public keys published at ``url``, fetched with httpx and cached.

    ``algorithms`` is the allowlist the keys are loaded for (no default). Timing options are
    seconds: ``max_age`` (600) and ``min_age`` (30) bound the ``Cache-Control`` freshness,
    ``cooldown`` (30) is the minimum time between two requests, ``max_stale`` (86400) how long
    past its freshness a key set is still served while the endpoint fails, ``timeout`` (5)
    bounds one whole request. ``max_size`` (524288 bytes) caps a response.

    For tests: ``clock`` (a monotonic seconds callable, default :func:`time.monotonic`) and
    either an httpx ``transport`` (used for both the sync and the async API when it supports
    both, as :class:`httpx.MockTransport` does; see :class:`jwtwarden.testing.MockJWKS`) or
    ready ``client`` / ``async_client`` objects (also the way to set proxies or a CA bundle;
    they are used, never closed).

    The sync API (:meth:`key_set`, :meth:`reload`) and the async API (:meth:`akey_set`,
    :meth:`areload`) share one cache. Both raise :class:`JWKSUnavailable` (or a subclass)
    when no usable key set can be had.
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: Iterable[str],
        max_age: float = DEFAULT_MAX_AGE,
        min_age: float = DEFAULT_COOLDOWN,
        cooldown: float = DEFAULT_COOLDOWN,
        max_stale: float = DEFAULT_MAX_STALE,
        timeout: float = DEFAULT_TIMEOUT,
        max_size: int = DEFAULT_MAX_SIZE,
        clock: Clock = time.monotonic,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = check_url(url)
        self._algorithms = _allowlist(algorithms)
        self._max_age = _positive(max_age, "max_age")
        self._min_age = _positive(min_age, "min_age")
        if self._min_age > self._max_age:
            raise ValueError("min_age cannot be larger than max_age")
        self._cooldown = _positive(cooldown, "cooldown")
        if max_stale < 0:
            raise ValueError("max_stale must be zero or a positive number of seconds")
        self._max_stale = float(max_stale)
        self._timeout = _positive(timeout, "timeout")
        self._flight_limit = 2 * self._timeout + 1  # a fetch ends well before this
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 64:
            raise ValueError("max_size must be a whole number of bytes, at least 64")
        self._max_size = max_size
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds")
        self._clock = clock
        self._transport = transport
        self._client = client
        self._async_client = async_client
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self._flight: _Flight | None = None
        self._last_attempt = -math.inf
        self._last_error: JWKSUnavailable | None = None
        self._requests = 0
        self._revoked_kids: frozenset[str] = frozenset()
        self._recover_until = -math.inf  # see RECOVERY_INTERVAL

    # ---- public state ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self._url)

    @property
    def algorithms(self) -> frozenset[str]:
        return self._algorithms

    @property
    def cooldown(self) -> float:
        return self._cooldown

    @property
    def requests(self) -> int:
        """How many HTTP requests this object has started (for metrics and tests)."""
        return self._requests

    @property
    def last_error(self) -> JWKSUnavailable | None:
        """The error of the last request, or ``None`` when it succeeded."""
        return self._last_error

    def retry_after(self) -> int:
        """Whole seconds until the next request may be made (at least 1): for ``Retry-After``."""
        wait = self._last_attempt + self._cooldown - self._clock()
        return max(1, math.ceil(wait)) if math.isfinite(wait) else 1

    def __repr__(self) -> str:
        state = "empty" if self._cached is None else f"{len(self._cached.keys)} keys"
        return f"RemoteJWKS({self.url!r}, {state})"

    # ---- getting keys ---------------------------------------------------------------------

    def key_set(self) -> KeySet:
        """The current key set, fetched first when there is none or it is no longer fresh."""
        cached = self._cached
        if cached is not None and self._clock() < cached.expires_at:
            return cached.keys
        return self._refresh(force=False)

    def reload(self) -> KeySet:
        """Refetch now (after an unknown ``kid``) unless within the cooldown; then the current set.

        Waits for a request already in flight instead of starting another one.
        """
        return self._refresh(force=True)

    async def akey_set(self) -> KeySet:
        """Async :meth:`key_set`."""
        cached = self._cached
        if cached is not None and self._clock() < cached.expires_at:
            return cached.keys
        return await self._arefresh(force=False)

    async def areload(self) -> KeySet:
        """Async :meth:`reload`: concurrent callers await one request."""
        return await self._arefresh(force=True)

    def set_revoked_kids(self, kids: Iterable[str]) -> None:
        """Never use keys with these ``kid`` values (emergency key revocation).

        Replaces the previous set. A newly revoked key leaves the current key set at once
        (verifiers built on it are rebuilt, their caches dropped) and is filtered out of every
        later fetch, whatever the endpoint still publishes; the next fetch may then happen
        without waiting for the cooldown, to pick up the replacement key, and for one cooldown
        an unknown ``kid`` may refetch every ``RECOVERY_INTERVAL`` (1 s): the issuer's JWKS may
        show the replacement a few seconds after the revocation arrived.
        :class:`~jwtwarden.resource.feed_client.RevocationFeed` calls this for its ``kid`` entries
        when it feeds a :class:`~jwtwarden.resource.server.ResourceServer`.
        """
        revoked = frozenset(kids)
        with self._lock:
            added = revoked - self._revoked_kids
            self._revoked_kids = revoked
            cached = self._cached
            if not added:
                return
            self._last_attempt = -math.inf
            self._recover_until = self._clock() + self._cooldown
            if cached is not None and any(key.kid in added for key in cached.keys):
                keys = KeySet(key for key in cached.keys if key.kid not in revoked)
                self._cached = _Cached(keys, _fingerprint(keys), cached.fetched_at,
                                       cached.expires_at, cached.stale_until)
        log.warning("JWKS: %d signing key(s) revoked in an emergency; no longer used", len(added))

    def verifier(
        self,
        *,
        issuer: str | Iterable[str],
        audience: str | Iterable[str],
        algorithms: Iterable[str] | None = None,
        typ: str | None = None,
        leeway: float = DEFAULT_LEEWAY,
        required_claims: Iterable[str] = (),
        clock: Clock = system_clock,
        max_token_size: int = DEFAULT_MAX_TOKEN_SIZE,
        verified_cache_size: int = DEFAULT_VERIFIED_CACHE_SIZE,
    ) -> RemoteVerifier:
        """A :class:`RemoteVerifier` over these keys; options as for :class:`~jwtwarden.Verifier`.

        ``algorithms`` defaults to this key set's allowlist and must be a subset of it.
        """
        return RemoteVerifier(
            self,
            issuer=issuer,
            audience=audience,
            algorithms=self._algorithms if algorithms is None else algorithms,
            typ=typ,
            leeway=leeway,
            required_claims=required_claims,
            clock=clock,
            max_token_size=max_token_size,
            verified_cache_size=verified_cache_size,
        )

    # ---- the single flight ----------------------------------------------------------------

    def _start(self, force: bool) -> tuple[_Flight | None, bool]:
        """Decide, under the lock, whether to join a flight, start one, or do neither."""
        now = self._clock()
        flight = self._flight
        if flight is not None and time.monotonic() - flight.started < self._flight_limit:
            return flight, False
        # No flight, or one whose event loop went away without ending it: start afresh.
        cached = self._cached
        if not force and cached is not None and now < cached.expires_at:
            return None, False  # refreshed by someone else meanwhile
        wait = self._cooldown
        if force and now < self._recover_until:
            wait = min(wait, RECOVERY_INTERVAL)
        if now - self._last_attempt < wait:
            return None, False
        self._last_attempt = now
        self._requests += 1
        flight = self._flight = _Flight()
        return flight, True

    def _current(self) -> KeySet:
        cached = self._cached
        if cached is not None and self._clock() < cached.stale_until:
            return cached.keys
        error = self._last_error
        if error is None:
            raise JWKSUnavailable("no key set has been fetched yet")
        raise type(error)(error.message)

    def _refresh(self, *, force: bool) -> KeySet:
        with self._lock:
            flight, owner = self._start(force)
        if flight is not None:
            if owner:
                try:
                    self._fetch_sync()
                finally:
                    self._land(flight)
            else:
                flight.done.wait(self._flight_limit)
        return self._current()

    async def _arefresh(self, *, force: bool) -> KeySet:
        loop = asyncio.get_running_loop()
        with self._lock:
            flight, owner = self._start(force)
            if owner:
                assert flight is not None  # noqa: S101 - _start returns a flight to its owner
                flight.task = loop.create_task(self._fetch_async(flight))
        if flight is not None:
            task = flight.task
            if task is not None and task.get_loop() is loop:
                await asyncio.shield(task)
            else:  # a thread (or another loop) is fetching: wait without blocking this loop
                await asyncio.to_thread(flight.done.wait, self._flight_limit)
        return self._current()

    def _land(self, flight: _Flight) -> None:
        with self._lock:
            if self._flight is flight:
                self._flight = None
        flight.done.set()

    # ---- fetching -------------------------------------------------------------------------

    def _accept(self, body: bytes, headers: httpx.Headers) -> None:
        loaded = load_public_jwks(body, self._algorithms)
        fresh = _freshness(headers, self._min_age, self._max_age)
        with self._lock:  # against set_revoked_kids(): a revoked key never slips back in
            revoked = self._revoked_kids
            keys = KeySet(k for k in loaded if k.kid not in revoked) if revoked else loaded
            now = self._clock()
            fingerprint = _fingerprint(keys)
            old = self._cached
            if old is not None and old.fingerprint == fingerprint:
                keys = old.keys  # same keys: keep the object, so verifiers keep their caches
            self._cached = _Cached(keys, fingerprint, now, now + fresh,
                                   now + fresh + self._max_stale)
            self._last_error = None
        if not keys:
            log.warning("JWKS has no key usable with algorithms %s", sorted(self._algorithms))

    def _fail(self, error: JWKSUnavailable) -> None:
        self._last_error = error
        stale = self._cached is not None and self._clock() < self._cached.stale_until
        log.warning(
            "JWKS fetch failed (%s)%s", error.code, "; serving the stale key set" if stale else ""
        )

    def _check_response(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise JWKSUnavailable(f"the JWKS endpoint answered HTTP {response.status_code}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise JWKSInvalid("compressed JWKS responses are refused (the size cap must hold)")
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self._max_size:
            raise JWKSTooLarge(f"the JWKS is larger than {self._max_size} bytes")

    def _append(self, body: bytearray, chunk: bytes) -> None:
        body += chunk
        if len(body) > self._max_size:
            raise JWKSTooLarge(f"the JWKS is larger than {self._max_size} bytes")

    def _fetch_sync(self) -> None:
        deadline = time.monotonic() + self._timeout
        client = self._client
        owned = client is None
        if client is None:
            transport = self._transport if isinstance(self._transport, httpx.BaseTransport) else None
            client = httpx.Client(transport=transport, follow_redirects=False)
            owned = transport is None
        try:
            with client.stream("GET", self._url, headers=_ACCEPT, timeout=self._timeout) as response:
                self._check_response(response)
                body = bytearray()
                for chunk in response.iter_bytes():  # identity only: bytes as sent
                    self._append(body, chunk)
                    if time.monotonic() > deadline:
                        raise JWKSUnavailable("the JWKS request timed out")
            self._accept(bytes(body), response.headers)
        except JWKSUnavailable as error:
            self._fail(error)
        except httpx.TimeoutException:
            self._fail(JWKSUnavailable("the JWKS request timed out"))
        except httpx.HTTPError:
            self._fail(JWKSUnavailable("the JWKS endpoint could not be reached"))
        except Exception as error:  # noqa: BLE001 - every failure becomes a typed error
            self._fail(JWKSUnavailable(f"the JWKS fetch failed ({type(error).__name__})"))
        finally:
            if owned:
                client.close()

    async def _fetch_async(self, flight: _Flight) -> None:
        client = self._async_client
        owned = client is None
        if client is None:
            transport = (
                self._transport if isinstance(self._transport, httpx.AsyncBaseTransport) else None
            )
            client = httpx.AsyncClient(transport=transport, follow_redirects=False)
            owned = transport is None
        try:
            async with asyncio.timeout(self._timeout):
                async with client.stream(
                    "GET", self._url, headers=_ACCEPT, timeout=self._timeout
                ) as response:
                    self._check_response(response)
                    body = bytearray()
                    async for chunk in response.aiter_bytes():  # identity only
                        self._append(body, chunk)
            self._accept(bytes(body), response.headers)
        except JWKSUnavailable as error:
            self._fail(error)
        except (TimeoutError, httpx.TimeoutException):
            self._fail(JWKSUnavailable("the JWKS request timed out"))
        except httpx.HTTPError:
            self._fail(JWKSUnavailable("the JWKS endpoint could not be reached"))
        except Exception as error:  # noqa: BLE001 - every failure becomes a typed error
            self._fail(JWKSUnavailable(f"the JWKS fetch failed ({type(error).__name__})"))
        finally:
            if owned:
                await client.aclose()
            self._land(flight)


# ---- the verifier on top -----------------------------------------------------------------


_PROBE: list[KeySet] = []


def _probe_keys() -> KeySet:
    """A public ES256 key set used only to validate verifier options at construction."""
    if not _PROBE:
        _PROBE.append(KeySet.generate("ES256").public())
    return _PROBE[0]


def _no_keys() -> UnknownKey:
    return UnknownKey("the key set has no key usable for this verifier")


class RemoteVerifier:
    """Verify tokens against a :class:`RemoteJWKS`: ``verify(token)`` or ``await averify(token)``.

    Checks everything :class:`~jwtwarden.Verifier` checks (same options) and returns the
    verified :class:`~jwtwarden.Claims`. The inner verifier is rebuilt only when the key set
    changes, so its caches stay warm. A token whose ``kid`` is unknown triggers one
    (cooldown-bound, single-flight) refetch and one more attempt; it then raises
    :class:`~jwtwarden.errors.UnknownKey` if the key is still unknown. Raises
    :class:`JWKSUnavailable` (or a subclass) when there is no usable key set.

    ``verified_cache_size`` (default 4096, 0 turns it off): how many verified tokens are
    remembered so that a token presented again skips the signature check (its claims are
    still checked every time); see :class:`_CachingVerifier`.
    """

    __slots__ = ("_jwks", "_options", "_size", "_state")

    def __init__(
        self,
        jwks: RemoteJWKS,
        *,
        issuer: str | Iterable[str],
        audience: str | Iterable[str],
        algorithms: Iterable[str],
        typ: str | None = None,
        leeway: float = DEFAULT_LEEWAY,
        required_claims: Iterable[str] = (),
        clock: Clock = system_clock,
        max_token_size: int = DEFAULT_MAX_TOKEN_SIZE,
        verified_cache_size: int = DEFAULT_VERIFIED_CACHE_SIZE,
    ) -> None:
        allowed = _allowlist(algorithms)
        if not allowed <= jwks.algorithms:
            raise ValueError("the verifier's algorithms must be among the RemoteJWKS algorithms")
        if isinstance(verified_cache_size, bool) or not isinstance(verified_cache_size, int) \
                or verified_cache_size < 0:
            raise ValueError("verified_cache_size must be a whole number, 0 or more")
        self._jwks = jwks
        self._size = verified_cache_size
        self._options: dict[str, Any] = {
            "issuer": issuer,
            "audience": audience,
            "algorithms": sorted(allowed),
            "typ": typ,
            "leeway": leeway,
            "required_claims": tuple(required_claims),
            "clock": clock,
            "max_token_size": max_token_size,
        }
        # A configuration mistake (issuer, leeway, typ...) is a ValueError now, not per token.
        Verifier(_probe_keys(), **{**self._options, "algorithms": ["ES256"]})
        self._state: tuple[KeySet | None, Verifier | None] = (None, None)

    @property
    def jwks(self) -> RemoteJWKS:
        return self._jwks

    def _build(self, keys: KeySet) -> tuple[KeySet, Verifier | None]:
        try:
            verifier: Verifier | None = CachingVerifier(keys, cache_size=self._size, **self._options)
        except ValueError:  # no key of the set fits the allowlist: every token is unknown_key
            verifier = None
        state = self._state = (keys, verifier)
        return state

    def verify(self, token: str | bytes, *, proof: DPoPProof | None = None) -> Claims:
        """Verify ``token`` and return its claims; raise a ``JWTError`` otherwise.

        With ``proof`` (a checked DPoP proof for this token), the token must be bound to the
        proof's key (:meth:`~jwtwarden.Verifier.verify_bound`); without it, a bound token is
        refused (:class:`~jwtwarden.errors.SenderConstrained`).
        """
        keys = self._fresh_keys()
        if keys is None:
            keys = self._jwks.key_set()
        try:
            return self._attempt(keys, token, proof)
        except UnknownKey:
            fresh = self._jwks.reload()
            if fresh is keys:
                raise
        return self._attempt(fresh, token, proof)

    async def averify(self, token: str | bytes, *, proof: DPoPProof | None = None) -> Claims:
        """Async :meth:`verify`: fetches never block the event loop."""
        keys = self._fresh_keys()
        if keys is None:
            keys = await self._jwks.akey_set()
        try:
            return self._attempt(keys, token, proof)
        except UnknownKey:
            fresh = await self._jwks.areload()
            if fresh is keys:
                raise
        return self._attempt(fresh, token, proof)

    def _fresh_keys(self) -> KeySet | None:
        """The cached key set while it is fresh (no lock, no I/O: the hot path)."""
        cached = self._jwks._cached
        return cached.keys if cached is not None and self._jwks._clock() < cached.expires_at else None

    def _attempt(self, keys: KeySet, token: str | bytes, proof: DPoPProof | None = None) -> Claims:
        """One verification with the verifier built for ``keys`` (built once per key set)."""
        state = self._state if self._state[0] is keys else self._build(keys)
        if state[1] is None:
            raise _no_keys()
        return state[1].verify(token) if proof is None else state[1].verify_bound(token, proof)

    def __repr__(self) -> str:
        return f"RemoteVerifier({self._jwks!r})"
