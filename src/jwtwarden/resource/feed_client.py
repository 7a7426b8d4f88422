"""The revocation feed client: keeps an in-process :class:`~jwtwarden.revocation.RevocationSet` current.

The token service publishes revocations at ``GET /v1/revocations`` (by default the JWKS URL's
origin + ``/v1/revocations``, see :func:`default_feed_url`)::

    GET {url}?since={cursor}&wait={seconds}
    200 application/json
    {"cursor": "<opaque>", "reset": <bool>, "revocations": [{"kind": "jti"|"sid"|"sub",
                                                             "value": "...", "exp": <number>,
                                                             "cutoff"?: <number>}, ...]}

Without ``since`` the answer is a full snapshot (``reset: true``). With ``since`` it holds
the entries added after that cursor (``reset: false``), or a full snapshot with
``reset: true`` when the cursor is too old or unknown, which *replaces* the local set. When
nothing is new the service holds the request up to ``wait`` seconds (long poll), so a
revocation reaches every resource server about as fast as one round trip.

:class:`RevocationFeed` runs that loop as an asyncio task (:meth:`~RevocationFeed.astart`,
ASGI) or a daemon thread (:meth:`~RevocationFeed.start`, WSGI), retrying with a capped
exponential backoff. :meth:`~RevocationFeed.check` answers from memory and **fails closed**:
it raises :class:`~jwtwarden.errors.RevocationUnavailable` before the first snapshot has
arrived and whenever the feed has not answered for longer than ``max_outage`` (default 900 s,
the longest access-token lifetime), because a token revoked during the outage could still be
valid. Any other feeder (Redis pub/sub...) can fill a :class:`RevocationSet` and be checked
the same way: the resource server needs only an object with ``check(claims)``
(:class:`~jwtwarden.resource.redis_follower.RedisFollower` follows Redis instead of HTTP).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from jwtwarden.errors import MalformedToken, RevocationUnavailable
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.policy import Clock
from jwtwarden.resource.follower import RevocationFollower
from jwtwarden.resource.jwks_client import check_url
from jwtwarden.revocation import Revocation, RevocationSet

__all__ = [
    "DEFAULT_MAX_OUTAGE",
    "DEFAULT_WAIT",
    "FEED_PATH",
    "RevocationCheck",
    "RevocationFeed",
    "default_feed_url",
]

log = logging.getLogger("jwtwarden.revocation_feed")

FEED_PATH = "/v1/revocations"
DEFAULT_MAX_OUTAGE = 900.0
DEFAULT_WAIT = 25.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_SIZE = 16 * 1024 * 1024
_MAX_CURSOR = 1024


class RevocationCheck(Protocol):
    """What a resource server needs from a revocation source.

    ``check(claims)`` returns when the (already verified) token is not revoked, raises
    :class:`~jwtwarden.errors.Revoked` when it is, and
    :class:`~jwtwarden.errors.RevocationUnavailable` when it cannot tell. A plain
    :class:`~jwtwarden.revocation.RevocationSet` and a :class:`RevocationFeed` both qualify.
    """

    def check(self, claims: Mapping[str, Any]) -> None: ...


def default_feed_url(jwks_url: str) -> str:
    """The feed URL the token service serves next to its JWKS: the JWKS origin + ``/v1/revocations``."""
    url = check_url(jwks_url)
    return str(url.copy_with(path=FEED_PATH, query=None, fragment=None))


class RevocationFeed(RevocationFollower):
    """A long-polling client of the revocation feed, feeding a :class:`RevocationSet`.

    ``max_outage``: seconds without an answer after which :meth:`check` fails closed
    (default 900). ``wait``: the long-poll time asked of the service (default 25; the
    service caps it at 25). ``timeout``: connect/write timeout, and the read timeout on top
    of ``wait``. ``retry_initial`` / ``retry_max``: the backoff between failed polls (0.5 s
    doubling up to 30 s, with jitter). ``max_size``: response cap (16 MiB), enforced while
    reading. ``on_update``: called (in the feed's task or thread) after every answer that
    changed the set. ``clock``: monotonic seconds for the outage measure (tests inject one).
    ``transport`` / ``client`` / ``async_client``: as for
    :class:`~jwtwarden.resource.jwks_client.RemoteJWKS`. The URL must be https (http on loopback).
    Running it (task or thread), listeners and the first sync: see
    :class:`~jwtwarden.resource.follower.RevocationFollower`.
    """

    _task_name = "jwtwarden-revocation-feed"

    def __init__(
        self,
        url: str,
        *,
        max_outage: float = DEFAULT_MAX_OUTAGE,
        wait: float = DEFAULT_WAIT,
        timeout: float = DEFAULT_TIMEOUT,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        max_size: int = DEFAULT_MAX_SIZE,
        on_update: Callable[[], None] | None = None,
        clock: Clock = time.monotonic,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__()
        self._url = check_url(url, "revocation feed URL")
        for name, value in (("timeout", timeout), ("retry_initial", retry_initial),
                            ("retry_max", retry_max), ("max_outage", max_outage)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
            raise ValueError("wait must be zero or a positive number of seconds")
        if max_outage <= wait + timeout:
            raise ValueError("max_outage must be longer than one long poll (wait + timeout)")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 64:
            raise ValueError("max_size must be a whole number of bytes, at least 64")
        self._max_outage = float(max_outage)
        self._wait = float(wait)
        self._timeout = float(timeout)
        self._retry_initial = float(retry_initial)
        self._retry_max = float(max(retry_max, retry_initial))
        self._max_size = max_size
        self._on_update = on_update
        self._clock = clock
        self._transport = transport
        self._client = client
        self._async_client = async_client
        self._set = RevocationSet()
        self._cursor: str | None = None
        self._last_ok: float | None = None
        self._retry_in = self._retry_initial

    # ---- reading ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self._url)

    @property
    def revocations(self) -> RevocationSet:
        """The current set (replaced by a new object on every snapshot)."""
        return self._set

    @property
    def cursor(self) -> str | None:
        return self._cursor

    @property
    def healthy(self) -> bool:
        """True when a snapshot arrived and the feed answered within ``max_outage``."""
        last = self._last_ok
        return last is not None and self._clock() - last <= self._max_outage

    def retry_after(self) -> int:
        """Whole seconds (at least 1) until the next attempt: for ``Retry-After``."""
        return max(1, math.ceil(self._retry_in))

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`~jwtwarden.errors.Revoked` for a revoked token and
        :class:`~jwtwarden.errors.RevocationUnavailable` when the feed is not healthy."""
        last = self._last_ok
        if last is None:
            raise RevocationUnavailable("the revocation feed has not been read yet")
        if self._clock() - last > self._max_outage:
            raise RevocationUnavailable("the revocation feed has been unreachable for too long")
        self._set.check(claims)

    # ---- one poll --------------------------------------------------------------------------

    def _params(self, wait: float) -> dict[str, str]:
        if self._cursor is None:
            return {}
        return {"since": self._cursor, "wait": str(int(wait))}

    def _apply(self, body: bytes) -> bool:
        try:
            data = parse_object(body, "revocation feed")
        except MalformedToken:
            raise RevocationUnavailable("the revocation feed answered invalid JSON") from None
        cursor, reset, items = data.get("cursor"), data.get("reset"), data.get("revocations")
        if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_CURSOR \
                or type(reset) is not bool or not isinstance(items, list):
            raise RevocationUnavailable("the revocation feed answer is not in the feed format")
        try:
            entries = [Revocation.from_json(item) for item in items]
        except ValueError:
            raise RevocationUnavailable("the revocation feed sent a malformed entry") from None
        changed = bool(entries)
        if reset or self._cursor is None:
            self._set = RevocationSet(entries)  # swapped whole: readers never see it half-built
            changed = True
        elif entries:
            self._set.add_many(entries)
        self._cursor = cursor
        self._last_ok = self._clock()
        self._retry_in = self._retry_initial
        self._synced.set()
        self._settle()
        if changed:
            self._notify()
            if self._on_update is not None:
                self._on_update()
        return changed

    def _read_checks(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise RevocationUnavailable(f"the revocation feed answered HTTP {response.status_code}")
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self._max_size:
            raise RevocationUnavailable("the revocation feed answer is over the size cap")

    def _grow(self, body: bytearray, chunk: bytes) -> None:
        body += chunk
        if len(body) > self._max_size:
            raise RevocationUnavailable("the revocation feed answer is over the size cap")

    def _httpx_timeout(self, wait: float) -> httpx.Timeout:
        return httpx.Timeout(self._timeout, read=self._timeout + wait)

    def _poll_with(self, client: httpx.Client, wait: float) -> bool:
        try:
            with client.stream(
                "GET", self._url, params=self._params(wait), timeout=self._httpx_timeout(wait)
            ) as response:
                self._read_checks(response)
                body = bytearray()
                for chunk in response.iter_bytes():
                    self._grow(body, chunk)
        except httpx.HTTPError:
            raise RevocationUnavailable("the revocation feed could not be reached") from None
        return self._apply(bytes(body))

    async def _apoll_with(self, client: httpx.AsyncClient, wait: float) -> bool:
        try:
            async with client.stream(
                "GET", self._url, params=self._params(wait), timeout=self._httpx_timeout(wait)
            ) as response:
                self._read_checks(response)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    self._grow(body, chunk)
        except httpx.HTTPError:
            raise RevocationUnavailable("the revocation feed could not be reached") from None
        return self._apply(bytes(body))

    def _new_client(self) -> tuple[httpx.Client, bool]:
        if self._client is not None:
            return self._client, False
        transport = self._transport if isinstance(self._transport, httpx.BaseTransport) else None
        return httpx.Client(transport=transport, follow_redirects=False), transport is None

    def _new_async_client(self) -> tuple[httpx.AsyncClient, bool]:
        if self._async_client is not None:
            return self._async_client, False
        transport = (
            self._transport if isinstance(self._transport, httpx.AsyncBaseTransport) else None
        )
        return httpx.AsyncClient(transport=transport, follow_redirects=False), transport is None

    def poll(self, *, wait: float = 0.0) -> bool:
        """Make one request now and apply the answer; True when the set changed.

        Raises :class:`~jwtwarden.errors.RevocationUnavailable` when the feed cannot be read
        (the set is then left as it was). The background loop calls this repeatedly.
        """
        client, owned = self._new_client()
        try:
            return self._poll_with(client, wait)
        finally:
            if owned:
                client.close()

    async def apoll(self, *, wait: float = 0.0) -> bool:
        """Async :meth:`poll`."""
        client, owned = self._new_async_client()
        try:
            return await self._apoll_with(client, wait)
        finally:
            if owned:
                await client.aclose()

    def _backoff(self, error: RevocationUnavailable) -> float:
        self._settle()
        delay = self._retry_in
        self._retry_in = min(self._retry_max, delay * 2)
        log.warning("revocation feed: %s; retrying in %.1f s", error.code, delay)
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret

    # ---- running in the background ----------------------------------------------------------

    async def run(self) -> None:
        """Poll forever (until cancelled): the loop :meth:`astart` runs as a task."""
        client, owned = self._new_async_client()
        try:
            while True:
                try:
                    await self._apoll_with(client, self._wait)
                except RevocationUnavailable as error:
                    await asyncio.sleep(self._backoff(error))
                except Exception as error:  # noqa: BLE001 - the loop must outlive any bug
                    await asyncio.sleep(self._backoff(RevocationUnavailable(type(error).__name__)))
        finally:
            if owned:
                await client.aclose()

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else "not healthy"
        return f"RevocationFeed({self.url!r}, {state}, {self._set!r})"
