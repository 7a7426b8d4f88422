"""Follow the token service's deny list through Redis instead of the HTTP feed.

Needs the ``redis`` extra (``pip install 'jwtwarden[redis]'``), imported only when the
follower runs: every other module of :mod:`jwtwarden.resource` works without it.

::

    server = ResourceServer.from_env(revocations="redis://redis:6379/0")   # or:
    server = ResourceServer.from_env(revocations=RedisFollower("redis://redis:6379/0"))

The resource server starts and stops the follower with the app (task or thread), answers
checks from memory, and drops signing keys revoked in an emergency as soon as their ``kid``
entry arrives. One sync, after every (re)connection, in this order:

1. **subscribe** to the channel, so nothing published from then on is missed;
2. **wait for the loaded marker**: a token service sets it once Redis holds every live
   revocation of its database, naming that Redis server's run (``run_id``). A Redis that
   restarted since (with or without persistence: what it saved lacks what was revoked while
   it was down), failed over or was flushed has no valid marker; until a token service has
   loaded it again the follower fails closed (:attr:`RedisFollower.state` ``"waiting"``);
3. **snapshot**: copy every revocation key (value and remaining TTL) into the set;
4. **follow**: apply each message, and ping every second; a server silent for
   ``max_silence`` seconds is treated as gone.

Between a failure and the end of the next sync, :meth:`RedisFollower.check` fails closed
(:class:`~jwtwarden.errors.RevocationUnavailable`, answered 503). Entries only ever add up
(a later expiry or cutoff wins), so a message applied twice or out of order changes nothing.
The format on the wire is :mod:`jwtwarden.resource.redis_wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from jwtwarden.errors import RevocationUnavailable
from jwtwarden.policy import Clock, system_clock
from jwtwarden.resource import redis_wire as wire
from jwtwarden.resource.follower import RevocationFollower
from jwtwarden.revocation import Revocation, RevocationSet

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["RedisFollower"]

log = logging.getLogger("jwtwarden.redis")

_SCHEMES = ("redis://", "rediss://", "unix://")
_RETRY = (0.1, 0.2, 0.5, 1.0)
_BATCH = 1000
_PING_EVERY = 1.0


class _Resync(Exception):
    """End this session and sync again from the start."""


def _stop_if_cancelled() -> None:
    """Raise CancelledError when this task was asked to stop. redis-py's pubsub can swallow a
    cancellation that arrives while it reads from a connection that broke (seen after Redis
    restarted: the follower kept reading and stopping the service waited for it forever)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisFollower(RevocationFollower):
    """Keep a :class:`~jwtwarden.revocation.RevocationSet` equal to the deny list in Redis.

    ``url``: the token service's ``JWTWARDEN_REDIS_URL`` (``redis://``, ``rediss://`` or
    ``unix://``). ``revocations``: the set to fill (default: a new one). ``timeout``: socket
    timeouts, seconds. ``max_silence``: seconds without an answer from Redis after which the
    set is no longer trusted (default 3; a ping goes out every second). ``clock``: wall-clock
    seconds, for the expiry of snapshot entries; ``monotonic``: for silences.

    ``prepare`` and ``on_sync`` are for the token service's own follower: ``prepare()`` runs
    after subscribing and before the snapshot (the service loads Redis from its database
    there, then sets the loaded marker), and then the marker is checked every second, a
    missing one starting a new sync; ``on_sync(in_sync)`` is called whenever the follower
    gets in or out of sync.
    """

    _task_name = "jwtwarden-redis-follower"

    def __init__(
        self,
        url: str,
        *,
        revocations: RevocationSet | None = None,
        timeout: float = 1.0,
        max_silence: float = 3.0,
        clock: Clock = system_clock,
        monotonic: Clock = time.monotonic,
        prepare: Callable[[], Awaitable[None]] | None = None,
        on_sync: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(url, str) or not url.startswith(_SCHEMES):
            raise ValueError("the Redis URL must start with redis://, rediss:// or unix://")
        for name, value in (("timeout", timeout), ("max_silence", max_silence)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if max_silence <= _PING_EVERY:
            raise ValueError("max_silence must be longer than the ping interval (1 s)")
        self._url = url
        self._timeout = float(timeout)
        self._max_silence = float(max_silence)
        self._clock = clock
        self._monotonic = monotonic
        self._set = revocations if revocations is not None else RevocationSet(clock=clock)
        self._prepare = prepare
        self._on_sync = on_sync
        self._in_sync = False
        self._heard_at = -float("inf")
        self._resync = False
        self._synced_once = False  # during the current session
        self._state = "connecting"

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"RedisFollower({self._state}, {self._set!r})"

    # ---- reading ---------------------------------------------------------------------------

    @property
    def revocations(self) -> RevocationSet:
        return self._set

    @property
    def healthy(self) -> bool:
        """In sync, and Redis answered within ``max_silence`` seconds."""
        return self._in_sync and self._monotonic() - self._heard_at <= self._max_silence

    def silence(self) -> float:
        """Seconds since Redis was last heard from (a message, a pong, a sync)."""
        return self._monotonic() - self._heard_at

    @property
    def state(self) -> str:
        """``"in_sync"``; ``"waiting"``: connected, but no token service has loaded this Redis
        since it started; ``"connecting"``: (re)connecting. Only ``"in_sync"`` is healthy."""
        return self._state

    def check(self, claims: Mapping[str, Any]) -> None:
        if not self.healthy:
            raise RevocationUnavailable("the deny list (Redis) is not in sync")
        self._set.check(claims)

    def retry_after(self) -> int:
        return 1

    def resync(self) -> None:
        """Sync again from the start (the token service asks after a failed write)."""
        self._resync = True

    # ---- following ---------------------------------------------------------------------------

    def _down(self, error: BaseException) -> None:
        if self._in_sync:
            log.warning("Redis deny list out of sync (%s); failing closed", type(error).__name__)
        self._in_sync = False
        self._state = "connecting"
        self._synced.clear()
        if self._on_sync is not None:
            self._on_sync(False)

    async def run(self) -> None:
        # the redis extra, imported only by a follower that runs
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        attempt = 0
        while True:
            client = Redis.from_url(
                self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),  # this loop retries, and notices failures at once
            )
            try:
                await self._session(client)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, RevocationUnavailable, _Resync) as error:
                self._down(error)
                if self._synced_once:
                    attempt = 0
            except Exception as error:  # the follower must survive anything
                log.exception("Redis follower failed")
                self._down(error)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            self._settle()
            _stop_if_cancelled()
            await asyncio.sleep(_RETRY[min(attempt, len(_RETRY) - 1)])
            attempt += 1

    async def _session(self, client: Redis) -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            self._synced_once = False
            await pubsub.subscribe(wire.CHANNEL)
            self._heard_at = self._monotonic()
            self._resync = False
            if self._prepare is not None:
                await self._prepare()
            await self._await_loaded(client, pubsub)
            await self._snapshot(client)
            self._in_sync = True
            self._state = "in_sync"
            self._synced_once = True
            self._heard_at = self._monotonic()
            self._synced.set()
            self._settle()
            if self._on_sync is not None:
                self._on_sync(True)
            self._notify()
            log.info("Redis deny list in sync (%d entries)", len(self._set))
            last_ping = self._monotonic()
            while True:
                await self._receive(pubsub, timeout=0.25)
                _stop_if_cancelled()
                now = self._monotonic()
                if self._resync:
                    raise _Resync("a resync was asked for")
                if now - self._heard_at > self._max_silence:
                    raise RevocationUnavailable("Redis has been silent for too long")
                if now - last_ping >= _PING_EVERY:
                    last_ping = now
                    await pubsub.ping()  # its pong proves the subscription is alive
                    if self._prepare is not None and not await self._loaded(client):
                        raise _Resync("Redis lost the deny list (no valid loaded marker)")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _receive(self, pubsub: PubSub, timeout: float) -> bool:
        """Apply one message if one comes within ``timeout``; True when the set changed."""
        message = await pubsub.get_message(timeout=timeout)
        if message is None:
            return False
        self._heard_at = self._monotonic()
        if message.get("type") != "message":
            return False  # a pong
        try:
            entries = wire.decode_message(message["data"])
        except ValueError:
            log.warning("ignored a malformed message on %s", wire.CHANNEL)
            return False
        if not entries:
            return False
        self._set.add_many(entries)
        if self._in_sync:
            self._notify()
        return True

    @staticmethod
    async def _loaded(client: Redis) -> bool:
        marker = await client.get(wire.LOADED_KEY)
        return marker is not None and wire.is_loaded(marker, (await client.info("server")).get("run_id"))

    async def _await_loaded(self, client: Redis, pubsub: PubSub) -> None:
        """Until a token service has loaded this Redis, keep messages coming and wait."""
        warned = False
        while not await self._loaded(client):
            self._heard_at = self._monotonic()
            self._state = "waiting"
            if not warned:
                log.warning("Redis holds no deny list yet (no token service has loaded it); "
                            "failing closed until one does")
                warned = True
                self._settle()  # the first requests need not wait for it
            await self._receive(pubsub, timeout=0.1)

    async def _snapshot(self, client: Redis) -> None:
        """Copy every revocation key (value and remaining TTL) into the set, in batches."""
        batch: list[str] = []
        async for raw in client.scan_iter(match=wire.SCAN_PATTERN, count=_BATCH):
            batch.append(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
            if len(batch) >= _BATCH:
                await self._load(client, batch)
                batch = []
        await self._load(client, batch)

    async def _load(self, client: Redis, keys: list[str]) -> None:
        if not keys:
            return
        async with client.pipeline(transaction=False) as pipe:
            for name in keys:
                pipe.get(name)
                pipe.pttl(name)
            results = await pipe.execute()
        now = self._clock()
        fresh: list[Revocation] = []
        for name, stored, ttl in zip(keys, results[::2], results[1::2], strict=True):
            entry = wire.entry_from_key(name, stored, ttl, now)
            if entry is not None:
                fresh.append(entry)
        self._set.add_many(fresh)
