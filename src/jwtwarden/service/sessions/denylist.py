"""The deny list: durable in the database, answered from memory.

Revocations are rows of the ``revocations`` table, written in the same transaction as the
session change that causes them (a logout, a detected reuse), so a crash can never leave a
revoked session whose access token is still accepted. Every replica mirrors the table in a
:class:`~jwtwarden.revocation.RevocationSet`: its own revocations at once, everybody else's
(other replicas, the CLI) within a poll interval. The same rows feed the public revocation
feed (``GET /v1/revocations``) that resource servers follow.

Once a poller runs (:meth:`DenyList.watch`), a mirror that could not be refreshed for longer
than ``max_staleness`` seconds (wall-clock, monotonic) makes checks fail closed with
:class:`~jwtwarden.errors.RevocationUnavailable` (or, with ``fail_open=True``, pass with a
warning in the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from jwtwarden.errors import RevocationUnavailable, Revoked
from jwtwarden.policy import Clock, system_clock
from jwtwarden.revocation import Revocation, RevocationSet
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.schema import revocations

Row = Mapping[Any, Any]  # a database row (RowMapping)

if TYPE_CHECKING:
    from jwtwarden.service.storage.redis import RedisRevocations

__all__ = ["DenyList"]

log = logging.getLogger("jwtwarden.denylist")
FEED_MAX_WAIT = 25.0


class DenyList:
    """Record revocations transactionally; check tokens against the in-process mirror."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = system_clock,
        fail_open: bool = False,
        monotonic: Clock = time.monotonic,
        redis_url: str | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._monotonic = monotonic
        self._max_staleness: float | None = None
        self._fail_open = fail_open
        self.set = RevocationSet(clock=clock)
        self._cursor = 0
        self._synced_at = monotonic()
        self._changed = asyncio.Event()
        self.on_key_revoked: Callable[[], Awaitable[object]] | None = None
        self.redis: RedisRevocations | None = None
        if redis_url is not None:
            from jwtwarden.service.storage.redis import RedisRevocations  # the redis extra

            self.redis = RedisRevocations(redis_url, self.set, clock=clock, reconcile=self.live)

    def watch(self, max_staleness: float) -> None:
        """From now on, fail closed when no poll succeeded for ``max_staleness`` seconds."""
        self._max_staleness = max_staleness
        self._synced_at = self._monotonic()

    @property
    def cursor(self) -> int:
        return self._cursor

    async def load(self) -> None:
        """(Re)build the mirror from every live row."""
        now = self._clock()
        async with self._db.read() as conn:
            rows = (await conn.execute(
                sa.select(revocations).where(revocations.c.expires_at > now)
                .order_by(revocations.c.id))).mappings().all()
            top = (await conn.execute(sa.select(sa.func.max(revocations.c.id)))).scalar()
        entries = [_entry(r) for r in rows]
        self.set.clear()  # in place: the Redis follower and others hold this very set
        self.set.add_many(entries)
        self._cursor = int(top or 0)
        self._synced_at = self._monotonic()
        self._wake()

    async def poll(self) -> int:
        """Pull rows other writers added since the last look; returns how many."""
        async with self._db.read() as conn:
            rows = (await conn.execute(
                sa.select(revocations).where(revocations.c.id > self._cursor)
                .order_by(revocations.c.id))).mappings().all()
        if rows:
            self.set.add_many(_entry(r) for r in rows)
            self._cursor = max(self._cursor, int(rows[-1]["id"]))
            self._wake()
            if self.on_key_revoked is not None and any(r["kind"] == "kid" for r in rows):
                await self.on_key_revoked()  # another process revoked a signing key
        self._synced_at = self._monotonic()
        return len(rows)

    def record(self, conn: Connection, entries: Iterable[Revocation]) -> list[Revocation]:
        """Insert revocations inside the caller's transaction. Call :meth:`applied` after commit."""
        batch = list(entries)
        now = self._clock()
        if batch:
            conn.execute(
                revocations.insert(),
                [
                    {"kind": e.kind, "value": e.value, "cutoff": e.cutoff,
                     "expires_at": e.expires_at, "created_at": now}
                    for e in batch
                ],
            )
        return batch

    async def applied(self, entries: Iterable[Revocation]) -> None:
        """Mirror committed revocations at once, and broadcast them through Redis if configured.

        A Redis failure here loses nothing: the rows are committed, and the follower pushes
        them into Redis when it reconnects (until then every replica fails closed).
        """
        batch = list(entries)
        self.set.add_many(batch)
        self._wake()
        if self.redis is not None and batch:
            with contextlib.suppress(RevocationUnavailable):
                await self.redis.publish(batch)

    async def live(self) -> list[Revocation]:
        """Every unexpired revocation in the database (what Redis must hold)."""
        now = self._clock()
        async with self._db.read() as conn:
            rows = (await conn.execute(
                sa.select(revocations).where(revocations.c.expires_at > now))).mappings().all()
        return [_entry(r) for r in rows]

    async def check(self, claims: Mapping[str, Any]) -> None:
        """Raise ``Revoked``; or ``RevocationUnavailable`` when the state cannot be trusted.

        With Redis: the in-process set while the subscription is in sync, else one MGET
        round trip, else (Redis unreachable) fail closed. Without Redis: the set, as long
        as the database poll is not stale.
        """
        if self.redis is not None:
            if not self.redis.healthy:
                try:
                    if await self.redis.check_remote(claims):
                        raise Revoked("the token has been revoked")
                except RevocationUnavailable:
                    if not self._fail_open:
                        raise
                    log.warning("deny list (Redis) unreachable; failing OPEN as configured")
        else:
            stale = self._max_staleness
            if stale is not None and self._monotonic() - self._synced_at > stale:
                if not self._fail_open:
                    raise RevocationUnavailable("the deny list could not be refreshed")
                log.warning("deny list stale; failing OPEN as configured")
        self.set.check(claims)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changes(self, since: str | None, wait: float) -> dict[str, Any]:
        """The revocation feed: a snapshot, or entries after ``since`` (long-poll ``wait`` s).

        A cursor the database has never issued (after a reset) or cannot parse gets a full
        snapshot with ``reset: true``.
        """
        cursor = _parse_cursor(since)
        if cursor is not None and cursor >= self._cursor and wait > 0:
            event = self._changed  # woken by our own revocations and by every poll that finds some
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(wait, FEED_MAX_WAIT))
        now = self._clock()
        async with self._db.read() as conn:
            top = int((await conn.execute(sa.select(sa.func.max(revocations.c.id)))).scalar() or 0)
            reset = cursor is None or cursor > top
            query = sa.select(revocations).where(
                revocations.c.expires_at > now, revocations.c.id <= top).order_by(revocations.c.id)
            if not reset:
                query = query.where(revocations.c.id > cursor)
            rows = (await conn.execute(query)).mappings().all()
        return {
            "cursor": str(top),
            "reset": reset,
            "revocations": [_entry(r).to_json() for r in rows],
        }

    async def gc(self, *, batch: int = 1000) -> int:
        """Delete expired rows in bounded batches; returns how many."""
        now = self._clock()
        total = 0
        while True:
            async with self._db.transaction() as conn:
                ids = [r[0] for r in await conn.execute(
                    sa.select(revocations.c.id).where(revocations.c.expires_at <= now).limit(batch))]
                if ids:
                    await conn.execute(revocations.delete().where(revocations.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < batch:
                return total


def _parse_cursor(since: str | None) -> int | None:
    if since is None or not since.isascii() or not since.isdigit() or len(since) > 18:
        return None
    return int(since)


def _entry(row: Row) -> Revocation:
    return Revocation(row["kind"], row["value"], float(row["expires_at"]),
                      None if row["cutoff"] is None else float(row["cutoff"]))
