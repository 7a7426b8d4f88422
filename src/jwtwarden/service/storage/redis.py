"""The deny list in Redis: one key per revocation with a TTL, and a pub/sub broadcast.

Keys: ``jwtwarden:rv:{kind}:{value}`` (``kind`` is jti, sid, sub or kid; a ``sub`` key's
value is its cutoff), each expiring when nothing it covers can still be valid. Every
revocation is also published on ``jwtwarden:revocations``, so each replica (and any resource
server that subscribes) keeps the whole deny list in a
:class:`~jwtwarden.revocation.RevocationSet` and answers checks without a network hop.

The subscriber subscribes *before* it copies the keys into memory, so nothing published in
between is lost; after every (re)connection it first pushes the database's live revocations
into Redis (``reconcile``), because a revocation committed while Redis was down exists only
in the database. Until that is done the set is not trusted: checks go to Redis in one
round trip (``MGET``), and when Redis cannot be reached they fail closed with
:class:`~jwtwarden.errors.RevocationUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jwtwarden.errors import RevocationUnavailable
from jwtwarden.policy import Clock, system_clock
from jwtwarden.revocation import Revocation, RevocationSet, subject_revocation_key

__all__ = ["CHANNEL", "KEY_PREFIX", "RedisRevocations"]

log = logging.getLogger("jwtwarden.redis")
CHANNEL = "jwtwarden:revocations"
KEY_PREFIX = "jwtwarden:rv:"
_RETRY = (0.1, 0.2, 0.5, 1.0)


def _key(kind: str, value: str) -> str:
    return f"{KEY_PREFIX}{kind}:{value}"


class RedisRevocations:
    """Publish revocations to Redis, follow everyone else's, check remotely when needed."""

    def __init__(
        self,
        url: str,
        revocation_set: RevocationSet,
        *,
        clock: Clock = system_clock,
        reconcile: Callable[[], Awaitable[Iterable[Revocation]]] | None = None,
        timeout: float = 1.0,
    ) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry_on_timeout=False, health_check_interval=5,
        )
        self._set = revocation_set
        self._clock = clock
        self._reconcile = reconcile
        self._task: asyncio.Task[None] | None = None
        self.healthy = False
        self.synced = asyncio.Event()

    def __repr__(self) -> str:
        return f"RedisRevocations(healthy={self.healthy})"

    async def start(self) -> None:
        """Follow the channel in the background (reconnecting forever)."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    # ---- writing --------------------------------------------------------------------------

    async def publish(self, entries: Iterable[Revocation]) -> None:
        """SET every entry with its TTL and broadcast it; RevocationUnavailable if Redis fails."""
        batch = list(entries)
        if not batch:
            return
        now = self._clock()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for entry in batch:
                    ttl = max(1, math.ceil(entry.expires_at - now))
                    value = repr(entry.cutoff) if entry.cutoff is not None else "1"
                    pipe.set(_key(entry.kind, entry.value), value, ex=ttl)
                pipe.publish(CHANNEL, json.dumps([e.to_json() for e in batch]))
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._down(error)
            raise RevocationUnavailable("Redis is unreachable; the revocation is kept in the database") from None

    # ---- reading ------------------------------------------------------------------------

    async def check_remote(self, claims: Mapping[str, Any]) -> bool:
        """Whether Redis holds a revocation covering these claims (one MGET)."""
        keys = [_key("jti", str(claims.get("jti"))), _key("sid", str(claims.get("sid")))]
        sub = subject_revocation_key(claims)
        if sub is not None:
            keys.append(_key("sub", sub))
        try:
            values = await self._client.mget(keys)
        except (RedisError, OSError) as error:
            self._down(error)
            raise RevocationUnavailable("the deny list (Redis) is unreachable") from None
        if values[0] is not None or values[1] is not None:
            return True
        if len(values) > 2 and values[2] is not None:
            iat = claims.get("iat")
            return not isinstance(iat, int | float) or iat < float(values[2])
        return False

    def check(self, claims: Mapping[str, Any]) -> None:
        """For resource servers following Redis: the in-process set, failing closed while
        the subscription is not in sync (``RevocationUnavailable``)."""
        if not self.healthy:
            raise RevocationUnavailable("the deny list (Redis) is not in sync")
        self._set.check(claims)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    # ---- following ------------------------------------------------------------------------

    def _down(self, error: BaseException) -> None:
        if self.healthy:
            log.warning("Redis deny list unavailable (%s); failing closed", type(error).__name__)
        self.healthy = False
        self.synced.clear()

    async def _follow(self) -> None:
        attempt = 0
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RevocationUnavailable) as error:
                self._down(error)
            except Exception as error:  # the follower must survive anything
                log.exception("Redis follower failed")
                self._down(error)
            await asyncio.sleep(_RETRY[min(attempt, len(_RETRY) - 1)])
            attempt += 1

    async def _session(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            if self._reconcile is not None:
                await self._push(await self._reconcile())
            await self._snapshot()
            self.healthy = True
            self.synced.set()
            log.info("Redis deny list in sync (%d entries)", len(self._set))
            last_ping = self._clock()
            while True:
                message = await pubsub.get_message(timeout=0.5)
                if message is not None and message.get("type") == "message":
                    self._set.add_many(_entries(message["data"]))
                now = self._clock()
                if now - last_ping >= 1.0 or now < last_ping:
                    await pubsub.ping()  # notices a dead server within a second
                    last_ping = now
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _push(self, entries: Iterable[Revocation]) -> None:
        """Reconcile: the database's live revocations into Redis, without shortening any."""
        batch = list(entries)
        if not batch:
            return
        now = self._clock()
        async with self._client.pipeline(transaction=False) as pipe:
            for entry in batch:
                ttl = max(1, math.ceil(entry.expires_at - now))
                value = repr(entry.cutoff) if entry.cutoff is not None else "1"
                pipe.set(_key(entry.kind, entry.value), value, ex=ttl, nx=True)
            await pipe.execute()

    async def _snapshot(self) -> None:
        """Copy every revocation key (value and remaining TTL) into the set, in batches."""
        now = self._clock()
        batch: list[str] = []
        async for raw in self._client.scan_iter(match=KEY_PREFIX + "*", count=1000):
            batch.append(raw.decode() if isinstance(raw, bytes) else str(raw))
            if len(batch) >= 1000:
                await self._load(batch, now)
                batch = []
        await self._load(batch, now)

    async def _load(self, keys: list[str], now: float) -> None:
        if not keys:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            results = await pipe.execute()
        fresh: list[Revocation] = []
        for key, stored, pttl in zip(keys, results[::2], results[1::2], strict=True):
            kind, _, value = key[len(KEY_PREFIX):].partition(":")
            if stored is None or pttl is None or pttl < 0:
                continue
            with contextlib.suppress(ValueError):
                cutoff = float(stored) if kind == "sub" else None
                fresh.append(Revocation(kind, value, now + pttl / 1000, cutoff))  # type: ignore[arg-type]
        self._set.add_many(fresh)


def _entries(data: Any) -> list[Revocation]:
    try:
        items = json.loads(data)
        return [Revocation.from_json(item) for item in items]
    except (ValueError, TypeError):
        log.warning("ignored a malformed message on %s", CHANNEL)
        return []
