"""Login limits: an attempt is counted *before* its password is hashed.

The scheme follows OWASP's "Slow down online guessing attacks with device cookies":

- an attempt from a **trusted device** (a valid device cookie for this account, see
  :mod:`jwtwarden.service.cookies`) is limited per device: ``per_device`` failures in
  ``window`` seconds lock out that device only;
- every other attempt is **untrusted** and limited per account (``per_account``) and per
  client address (``per_address``): a locked account refuses untrusted attempts, while its
  owner's known devices still get in.

:meth:`LoginLimiter.reserve` takes a place in every counter of the attempt at once (all or
nothing) or raises :class:`~jwtwarden.errors.RateLimited` with a ``retry_after``; the caller
verifies the password only after that, and :meth:`~LoginLimiter.release` gives the place back
on success. Whatever else happens (a wrong password, an error, a dropped connection) the
place stays taken: a failure is recorded before the work that could reveal anything. So 40
guesses sent at once get ``per_account`` verifications and 429 for the rest. On top of that,
:meth:`~LoginLimiter.verifying` bounds how many verifications of one account run at once in
this process (``concurrent_per_account``).

Counters are sliding windows (a sorted log of the reserved places). Without Redis they live in
this process in a bounded map (:class:`MemoryCounters`); with ``JWTWARDEN_REDIS_URL`` they
live in Redis (:class:`RedisCounters`: sorted sets with expiry, reserved by one Lua script, so
every replica shares one budget). Redis unreachable: logins fail closed with
:class:`~jwtwarden.errors.TemporarilyUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jwtwarden.errors import RateLimited, TemporarilyUnavailable
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.policy import Clock, system_clock

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["LoginLimiter", "MemoryCounters", "RedisCounters", "Reservation"]

REDIS_PREFIX = "jwtwarden:login:"


@dataclass(frozen=True)
class Reservation:
    """Places taken in some counters by one login attempt."""

    keys: tuple[str, ...]
    member: str
    trusted: bool


class Counters(Protocol):
    async def reserve(self, limits: Sequence[tuple[str, int]], member: str, now: float,
                      window: float) -> float | None:
        """Take a place in every counter, or none: None, or the seconds until one frees."""

    async def release(self, keys: Sequence[str], member: str) -> None: ...

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters of this process, in at most ``max_keys`` keys.

    An attacker who can choose keys (any username, any IPv6 address) must not be able to push
    a victim's counter out. So nothing live is ever evicted: keys whose whole log has left the
    window are dropped (oldest-updated first, so this costs only what it frees), and when the
    map is still full a reservation that needs a *new* key is refused — a 429 for an
    attempt nobody has counted yet, never a reset of a count someone has. Filling the map
    takes ``max_keys`` verified failures within one window (100,000 argon2 verifications in
    300 s), and it empties by itself one window later.
    """

    def __init__(self, *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._logs: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._logs)

    def _live(self, key: str, horizon: float) -> list[tuple[float, str]]:
        log = self._logs.get(key)
        if log is None:
            return []
        log[:] = [entry for entry in log if entry[0] > horizon]
        return log

    def _drop_expired(self, horizon: float) -> None:
        while self._logs:
            key, log = next(iter(self._logs.items()))
            if log and max(t for t, _ in log) > horizon:
                return
            del self._logs[key]

    async def reserve(self, limits: Sequence[tuple[str, int]], member: str, now: float,
                      window: float) -> float | None:
        horizon = now - window
        for key, limit in limits:
            log = self._live(key, horizon)
            if len(log) >= limit:
                return log[len(log) - limit][0] + window - now
        new = sum(1 for key, _ in limits if key not in self._logs)
        if len(self._logs) + new > self.max_keys:
            self._drop_expired(horizon)
            if len(self._logs) + new > self.max_keys:
                oldest = next(iter(self._logs.values()))
                return max(t for t, _ in oldest) + window - now if oldest else window
        for key, _ in limits:
            self._logs.setdefault(key, []).append((now, member))
            self._logs.move_to_end(key)
        return None

    async def release(self, keys: Sequence[str], member: str) -> None:
        for key in keys:
            log = self._logs.get(key)
            if log is None:
                continue
            log[:] = [entry for entry in log if entry[1] != member]
            if not log:
                del self._logs[key]

    async def close(self) -> None:
        self._logs.clear()


# KEYS: the counters; ARGV: now (ms), window (ms), member, then one limit per key.
_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local limit = tonumber(ARGV[3 + i])
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    return tonumber(oldest[2]) + window - now
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return -1
"""


class RedisCounters:
    """Counters in Redis, shared by every replica: one sorted set per key, expiring one
    window after its last reservation; a reservation is one atomic Lua script."""

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        import redis.asyncio as aioredis  # the redis extra, imported on use

        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry_on_timeout=False, health_check_interval=5,
        )
        self._script = self._client.register_script(_RESERVE)

    def __repr__(self) -> str:
        return "RedisCounters()"

    async def reserve(self, limits: Sequence[tuple[str, int]], member: str, now: float,
                      window: float) -> float | None:
        from redis.exceptions import RedisError

        keys = [REDIS_PREFIX + key for key, _ in limits]
        args: list[Any] = [int(now * 1000), int(window * 1000), member]
        args += [limit for _, limit in limits]
        try:
            result = int(await self._script(keys=keys, args=args))
        except (RedisError, OSError):
            raise TemporarilyUnavailable("the login limiter (Redis) is unreachable") from None
        return None if result < 0 else result / 1000

    async def release(self, keys: Sequence[str], member: str) -> None:
        from redis.exceptions import RedisError

        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.zrem(REDIS_PREFIX + key, member)
                await pipe.execute()
        except (RedisError, OSError):
            # the place stays taken until the window passes: a success counted as a failure
            raise TemporarilyUnavailable("the login limiter (Redis) is unreachable") from None

    async def close(self) -> None:
        await self._client.aclose()


def _key(kind: str, value: str) -> str:
    """Counter names carry no username or address: 128 bits of SHA-256."""
    digest = hashlib.sha256(f"{kind}\x00{value}".encode("utf-8", "surrogatepass")).digest()
    return f"{kind}:{b64url_encode(digest[:16])}"


class LoginLimiter:
    """Failed-login limits per account, per client address and per trusted device."""

    def __init__(
        self,
        counters: Counters,
        *,
        per_account: int,
        per_address: int,
        per_device: int,
        window: float,
        clock: Clock = system_clock,
        concurrent_per_account: int = 2,
        max_verifying_accounts: int = 10_000,
    ) -> None:
        if min(per_account, per_address, per_device, concurrent_per_account) < 1 or window <= 0:
            raise ValueError("limits must be at least 1 and the window positive")
        self.counters = counters
        self._limits = {"user": per_account, "addr": per_address, "device": per_device}
        self._window = window
        self._clock = clock
        self._concurrent = concurrent_per_account
        self._max_verifying = max_verifying_accounts
        self._gates: dict[str, tuple[asyncio.Semaphore, int]] = {}

    async def reserve(self, account: str, address: str, device: str | None = None) -> Reservation:
        """Count this attempt now; :class:`RateLimited` when a counter is at its limit.

        ``account`` is the canonical username, ``address`` the client's, ``device`` the id
        of a valid device cookie for this account (None: an untrusted attempt).
        """
        if device is not None:
            limits = [(_key("device", device), self._limits["device"])]
        else:
            limits = [(_key("user", account), self._limits["user"]),
                      (_key("addr", address), self._limits["addr"])]
        member = secrets.token_urlsafe(12)
        retry = await self.counters.reserve(limits, member, self._clock(), self._window)
        if retry is not None:
            raise RateLimited(max(1, math.ceil(retry)))
        return Reservation(tuple(key for key, _ in limits), member, device is not None)

    async def release(self, reservation: Reservation) -> None:
        """Give the places back: the attempt succeeded."""
        await self.counters.release(reservation.keys, reservation.member)

    @contextlib.asynccontextmanager
    async def verifying(self, account: str) -> AsyncIterator[None]:
        """At most ``concurrent_per_account`` verifications of one account at once; the map
        holds only accounts being verified right now, at most ``max_verifying_accounts``."""
        entry = self._gates.get(account)
        if entry is None:
            if len(self._gates) >= self._max_verifying:
                raise RateLimited(1)
            entry = (asyncio.Semaphore(self._concurrent), 0)
        gate, users = entry
        self._gates[account] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._gates[account]
            if users <= 1:
                del self._gates[account]
            else:
                self._gates[account] = (gate, users - 1)

    async def close(self) -> None:
        await self.counters.close()
