"""The deny list in Redis, written by the token service (the format: :mod:`jwtwarden.resource.redis_wire`).

One key per revocation with a TTL, and a broadcast on the channel, so each replica (and any
resource server following Redis, :class:`~jwtwarden.resource.redis_follower.RedisFollower`)
keeps the whole deny list in a :class:`~jwtwarden.revocation.RevocationSet` and answers
checks without a network hop.

**Every write is a merge, atomic with its broadcast.** A Lua script sets each key to the
later cutoff and the later expiry of what it held and what is written, and publishes exactly
the entries that changed, in the same atomic step. So writing what Redis already holds is a
no-op that publishes nothing (the same revocation sent by every replica, a burst of identical
revocations), a newer "log out everywhere" cutoff replaces an older one, an older one never
replaces a newer one, and no change can reach Redis without reaching the channel.

**The database is the source; Redis is loaded from it.** Revocations are committed in the
database first. The replica that made one writes it to Redis at once; every replica's
database poll writes what it finds too (so a revocation made by the CLI, or by a replica that
crashed or lost Redis before writing it, still arrives); and after every (re)connection the
replica's follower first writes every live revocation of the database, then sets the loaded
marker that followers wait for. Until its follower is in sync the replica checks tokens in
Redis in one round trip (``MGET``, which includes the marker: a Redis that restarted empty
holds none), and when Redis cannot be reached, or holds no deny list, checks fail closed with
:class:`~jwtwarden.errors.RevocationUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jwtwarden.errors import RevocationUnavailable
from jwtwarden.policy import Clock, system_clock
from jwtwarden.resource import redis_wire as wire
from jwtwarden.resource.redis_follower import RedisFollower
from jwtwarden.revocation import Revocation, RevocationSet, subject_revocation_key

__all__ = ["CHANNEL", "KEY_PREFIX", "MERGE_SCRIPT", "RedisRevocations"]

log = logging.getLogger("jwtwarden.redis")
CHANNEL = wire.CHANNEL
KEY_PREFIX = wire.KEY_PREFIX
_BATCH = 256  # entries per script call: keeps each atomic step short

# KEYS[i]: a revocation key. ARGV, four per key: the value to store; the TTL in ms; "c" when
# the value is a cutoff (sub) else "-"; the entry's feed JSON. Then the channel.
# A key is written only when it gains a later cutoff or an expiry more than a second later
# (replicas compute TTLs on their own clocks); the JSON of every written entry is published
# as one array, in the same atomic step.
MERGE_SCRIPT = """
local changed = {}
local n = #KEYS
for i = 1, n do
  local value, ttl, cutoff, entry = ARGV[4*i-3], tonumber(ARGV[4*i-2]), ARGV[4*i-1], ARGV[4*i]
  local old = redis.call('GET', KEYS[i])
  local write = true
  if old then
    write = false
    local left = redis.call('PTTL', KEYS[i])
    if cutoff == 'c' and tonumber(value) > (tonumber(old) or 0) then
      write = true
    else
      value = old
    end
    if left < 0 or ttl > left + 1000 then
      write = true
    elseif left > ttl then
      ttl = left
    end
  end
  if write then
    redis.call('SET', KEYS[i], value, 'PX', ttl)
    changed[#changed + 1] = entry
  end
end
if #changed > 0 then
  redis.call('PUBLISH', ARGV[4*n+1], '[' .. table.concat(changed, ',') .. ']')
end
return #changed
"""


class RedisRevocations:
    """Write revocations to Redis, follow everyone else's, check remotely when needed.

    ``revocation_set``: the replica's in-process set, which the follower fills too.
    ``reconcile()``: every live revocation of the database, written to Redis before each sync.
    """

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
        self._merge = self._client.register_script(MERGE_SCRIPT)
        self._set = revocation_set
        self._clock = clock
        self._reconcile = reconcile
        self._usable = False
        # The replica's own set is complete from the database poll anyway: a busy event loop
        # that delays a pong a few seconds should not cost a full reload of Redis.
        self.follower = RedisFollower(
            url, revocations=revocation_set, timeout=timeout, max_silence=10.0, clock=clock,
            prepare=self._load_redis, on_sync=self._on_sync,
        )
        self.synced = asyncio.Event()

    def __repr__(self) -> str:
        return f"RedisRevocations(healthy={self.healthy})"

    @property
    def healthy(self) -> bool:
        """The in-process set holds everything Redis holds (the follower is in sync)."""
        return self._usable and self.follower.healthy

    @healthy.setter
    def healthy(self, value: bool) -> None:
        """``False`` distrusts the set until the next sync (tests simulate a reconnection)."""
        self._usable = value

    def _on_sync(self, in_sync: bool) -> None:
        self._usable = in_sync
        if in_sync:
            self.synced.set()
        else:
            self.synced.clear()

    async def start(self) -> None:
        """Follow the channel in the background (reconnecting forever)."""
        await self.follower.astart()

    async def stop(self) -> None:
        await self.follower.astop()
        await self._client.aclose()

    # ---- writing --------------------------------------------------------------------------

    async def publish(self, entries: Iterable[Revocation]) -> int:
        """Merge entries into Redis and broadcast those that changed; returns how many did.

        Raises :class:`RevocationUnavailable` when Redis fails; the follower then syncs again
        from the start, which writes the database's revocations into Redis first.
        """
        try:
            return await self._write(list(entries))
        except (RedisError, OSError) as error:
            self._down(error)
            raise RevocationUnavailable("Redis is unreachable; the revocation is kept in the database") from None

    async def _write(self, entries: list[Revocation]) -> int:
        now = self._clock()
        batch = [e for e in entries if e.expires_at > now]  # an expired one protects nothing
        changed = 0
        for start in range(0, len(batch), _BATCH):
            part = batch[start:start + _BATCH]
            now = self._clock()
            keys: list[str] = []
            args: list[str | int] = []
            for entry in part:
                keys.append(wire.key(entry.kind, entry.value))
                args += [wire.stored_value(entry), max(1, math.ceil((entry.expires_at - now) * 1000)),
                         "c" if entry.cutoff is not None else "-", wire.encode_message([entry])[1:-1]]
            args.append(wire.CHANNEL)
            changed += int(await self._merge(keys=keys, args=args))
        return changed

    async def _load_redis(self) -> None:
        """Before each sync: the database's live revocations into Redis, then the marker."""
        if self._reconcile is None:
            return
        entries = list(await self._reconcile())
        changed = await self._write(entries)
        run_id = (await self._client.info("server")).get("run_id")
        await self._client.set(wire.LOADED_KEY, str(run_id))
        if changed:
            log.info("Redis deny list: %d revocation(s) from the database written", changed)

    def _down(self, error: BaseException) -> None:
        if self._usable:
            log.warning("Redis deny list unavailable (%s); failing closed", type(error).__name__)
        self._usable = False
        self.synced.clear()
        self.follower.resync()

    # ---- reading ------------------------------------------------------------------------

    async def check_remote(self, claims: Mapping[str, Any]) -> bool:
        """Whether Redis holds a revocation covering these claims (one MGET).

        Raises :class:`RevocationUnavailable` when Redis fails or holds no deny list (no
        loaded marker: it restarted empty and no replica has loaded it yet).
        """
        keys = [wire.LOADED_KEY, wire.key("jti", str(claims.get("jti"))),
                wire.key("sid", str(claims.get("sid")))]
        sub = subject_revocation_key(claims)
        if sub is not None:
            keys.append(wire.key("sub", sub))
        try:
            values = await self._client.mget(keys)
        except (RedisError, OSError) as error:
            self._down(error)
            raise RevocationUnavailable("the deny list (Redis) is unreachable") from None
        if values[0] is None:
            raise RevocationUnavailable("Redis holds no deny list yet")
        if values[1] is not None or values[2] is not None:
            return True
        if len(values) > 3 and values[3] is not None:
            iat = claims.get("iat")
            return not isinstance(iat, int | float) or iat < float(values[3])
        return False

    def check(self, claims: Mapping[str, Any]) -> None:
        """The in-process set, failing closed while the follower is not in sync."""
        if not self.healthy:
            raise RevocationUnavailable("the deny list (Redis) is not in sync")
        self._set.check(claims)

    async def ping(self) -> bool:
        with contextlib.suppress(RedisError, OSError):
            return bool(await self._client.ping())
        return False
