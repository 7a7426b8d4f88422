"""The deny list: durable in the database, answered from memory.

Revocations are rows of the ``revocations`` table, written in the same transaction as the
session change that causes them (a logout, a detected reuse), so a crash can never leave a
revoked session whose access token is still accepted. Every replica mirrors the table in a
:class:`~jwtwarden.revocation.RevocationSet`: its own revocations at once, everybody else's
(other replicas, the CLI) within a poll interval. The same rows feed the public revocation
feed (``GET /v1/revocations``) that resource servers follow.

**One row per revoked thing.** A row is keyed by (kind, value) and merged in place: a later
cutoff ("log out everywhere" again) or a later expiry updates it, anything else is a no-op
that writes nothing and announces nothing. The table, the feed and its snapshots therefore
hold at most one entry per live revocation, however often a token is revoked.

**A feed that cannot skip.** Each transaction that changes rows takes the next position
(``seq``) from the single ``revocation_feed`` row, as its last statement, and holds that
row's lock until it commits. Positions therefore become visible in order: a reader that saw
position *n* has seen every position below it, and paging by ``seq > cursor`` never passes a
revocation whose transaction is still open (with ids taken at insert time it did; issue #16
F2). The price is that revocation transactions commit one at a time, which is cheap because
they take the lock only at their very end, and only when they change something. Cursors are
``<epoch>.<seq>``; the epoch is random per database, so a cursor of another database, or
of the id-based feed before, is unknown and answered with a full snapshot.

Once a poller runs (:meth:`DenyList.watch`), a mirror that could not be refreshed for longer
than ``max_staleness`` seconds (wall-clock, monotonic) makes checks fail closed with
:class:`~jwtwarden.errors.RevocationUnavailable` (or, with ``fail_open=True``, pass with a
warning in the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from jwtwarden.errors import RevocationUnavailable, Revoked
from jwtwarden.policy import Clock, system_clock
from jwtwarden.revocation import Revocation, RevocationSet
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.schema import revocation_feed, revocations

Row = Mapping[Any, Any]  # a database row (RowMapping)

if TYPE_CHECKING:
    from jwtwarden.service.storage.redis import RedisRevocations

__all__ = ["DenyList"]

log = logging.getLogger("jwtwarden.denylist")
FEED_MAX_WAIT = 25.0
SNAPSHOT_MAX_AGE = 5.0  # seconds a cached snapshot is served while nothing changes
_CURSOR = re.compile(r"([0-9a-f]{8})\.([0-9]{1,18})")


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
        self._epoch: str | None = None
        self._synced_at = monotonic()
        self._changed = asyncio.Event()
        self._snapshot: tuple[int, float, bytes] | None = None  # (seq, built at, body)
        self._snapshot_lock = asyncio.Lock()
        self.on_key_revoked: Callable[[], Awaitable[object]] | None = None
        self.on_applied: Callable[[list[Revocation]], object] | None = None  # metrics
        self.redis: RedisRevocations | None = None
        if redis_url is not None:
            from jwtwarden.service.storage.redis import RedisRevocations  # the redis extra

            self.redis = RedisRevocations(redis_url, self.set, clock=clock, reconcile=self.live)

    def watch(self, max_staleness: float) -> None:
        """From now on, fail closed when no poll succeeded for ``max_staleness`` seconds."""
        self._max_staleness = max_staleness
        self._synced_at = self._monotonic()

    def sync_age(self) -> float:
        """Seconds since the mirror was last brought up to date from the database."""
        return self._monotonic() - self._synced_at

    @property
    def fresh(self) -> bool:
        """Whether checks trust the database mirror: polled within ``max_staleness`` (always
        while nothing watches it). With Redis, :attr:`redis` says whether it is in sync."""
        return self._max_staleness is None or self.sync_age() <= self._max_staleness

    @property
    def cursor(self) -> int:
        """The feed position up to which this replica has read the table."""
        return self._cursor

    async def _position(self, conn: Any) -> tuple[int, str]:
        row = (await conn.execute(sa.select(revocation_feed.c.seq, revocation_feed.c.epoch)
                                  .where(revocation_feed.c.id == 1))).one()
        self._epoch = str(row.epoch)
        return int(row.seq), self._epoch

    async def load(self) -> None:
        """(Re)build the mirror from every live row."""
        now = self._clock()
        async with self._db.read() as conn:
            top, _ = await self._position(conn)  # first: every position up to it is visible next
            rows = (await conn.execute(
                sa.select(revocations).where(revocations.c.expires_at > now))).mappings().all()
        self.set.clear()  # in place: the Redis follower and others hold this very set
        self.set.add_many(_entry(r) for r in rows)
        self._cursor = top
        self._synced_at = self._monotonic()
        self._wake()

    async def poll(self) -> int:
        """Pull rows other writers changed since the last look; returns how many.

        With Redis, what it finds is written there too (a no-op for what Redis holds): a
        revocation committed by the CLI, or by a replica that could not reach Redis or
        crashed before writing it, reaches Redis and its followers from here.
        """
        async with self._db.read() as conn:
            rows = (await conn.execute(
                sa.select(revocations).where(revocations.c.seq > self._cursor)
                .order_by(revocations.c.seq))).mappings().all()
        if rows:
            entries = [_entry(r) for r in rows]
            self.set.add_many(entries)
            self._cursor = max(self._cursor, int(rows[-1]["seq"]))
            self._wake()
            if self.redis is not None:
                with contextlib.suppress(RevocationUnavailable):
                    await self.redis.publish(entries)
            if self.on_key_revoked is not None and any(r["kind"] == "kid" for r in rows):
                await self.on_key_revoked()  # another process revoked a signing key
        self._synced_at = self._monotonic()
        return len(rows)

    def record(self, conn: Connection, entries: Iterable[Revocation]) -> list[Revocation]:
        """Merge revocations into the table inside the caller's transaction; return those
        that changed something (call :meth:`applied` with them after the commit).

        Must be the transaction's last statement that takes a lock: when something changes it
        takes the feed position, whose lock is held until the commit (see the module).
        """
        merged: dict[tuple[str, str], Revocation] = {}
        for entry in entries:
            key = (entry.kind, entry.value)
            merged[key] = _later(merged[key], entry) if key in merged else entry
        if not merged:
            return []
        # Most repeats end here, without a lock or a write: the row already covers them.
        stored = {(r.kind, r.value): r for r in conn.execute(
            sa.select(revocations.c.kind, revocations.c.value, revocations.c.expires_at,
                      revocations.c.cutoff)
            .where(sa.tuple_(revocations.c.kind, revocations.c.value).in_(list(merged))))}
        news = [e for key, e in merged.items() if key not in stored or _extends(e, stored[key])]
        if not news:
            return []
        seq = conn.execute(
            revocation_feed.update().where(revocation_feed.c.id == 1)
            .values(seq=revocation_feed.c.seq + 1).returning(revocation_feed.c.seq)).scalar_one()
        now = self._clock()
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(revocations)
        new, old = insert.excluded, revocations.c
        cutoff = sa.func.coalesce(new.cutoff, -1.0) > sa.func.coalesce(old.cutoff, -1.0)
        upsert = insert.values([
            {"kind": e.kind, "value": e.value, "cutoff": e.cutoff, "expires_at": e.expires_at,
             "created_at": now, "seq": seq} for e in news
        ]).on_conflict_do_update(
            index_elements=[old.kind, old.value],
            set_={
                "expires_at": sa.case((new.expires_at > old.expires_at, new.expires_at),
                                      else_=old.expires_at),
                "cutoff": sa.case((cutoff, new.cutoff), else_=old.cutoff),
                "seq": new.seq,
            },
            where=sa.or_(new.expires_at > old.expires_at, cutoff),
        ).returning(old.kind, old.value, old.expires_at, old.cutoff)
        # only the rows inserted or changed come back, as they now are (concurrent writers
        # queue on the feed position, so another one may have covered an entry meanwhile)
        return [_entry(r) for r in conn.execute(upsert).mappings()]

    async def applied(self, entries: Iterable[Revocation]) -> None:
        """Mirror committed revocations at once, and write them to Redis if configured.

        A Redis failure here loses nothing: the rows are committed, the database poll writes
        them to Redis, and the follower reloads Redis from the database when it reconnects
        (until then every replica fails closed).
        """
        batch = list(entries)
        if not batch:
            return
        self.set.add_many(batch)
        self._wake()
        if self.on_applied is not None:
            self.on_applied(batch)
        if self.redis is not None:
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
        round trip, else (Redis unreachable, or holding no deny list) fail closed. Without
        Redis: the set, as long as the database poll is not stale.
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

        A cursor this database has never issued (another database, the id-based cursors of
        earlier versions, garbage) gets a full snapshot with ``reset: true``.
        """
        return json.loads(await self.feed_body(since, wait))  # type: ignore[no-any-return]

    async def feed_body(self, since: str | None, wait: float) -> bytes:
        """:meth:`changes` as the JSON body the feed endpoint sends.

        Snapshots are built once per feed position and served from memory while nothing
        changes (up to ``SNAPSHOT_MAX_AGE`` seconds, so expired entries leave them): a
        crowd of anonymous snapshot requests costs one query each, not one table scan.
        """
        cursor = self._parse_cursor(since)
        if cursor is not None and cursor >= self._cursor and wait > 0:
            event = self._changed  # woken by our own revocations and by every poll that finds some
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(wait, FEED_MAX_WAIT))
        async with self._db.read() as conn:
            top, epoch = await self._position(conn)  # first: every position up to it is visible next
            if cursor is not None and cursor <= top:
                rows = (await conn.execute(
                    sa.select(revocations).where(revocations.c.seq > cursor)
                    .order_by(revocations.c.seq))).mappings().all()
                now = self._clock()
                seen = max([top, *(int(r["seq"]) for r in rows)])
                return _body(f"{epoch}.{seen}", False,
                             [_entry(r) for r in rows if r["expires_at"] > now])
        return await self._snapshot_body(top, epoch)

    async def _snapshot_body(self, top: int, epoch: str) -> bytes:
        async with self._snapshot_lock:  # one build at a time; the others then use it
            cached = self._snapshot
            if cached is not None and cached[0] >= top and self._monotonic() - cached[1] < SNAPSHOT_MAX_AGE:
                return cached[2]
            now = self._clock()
            async with self._db.read() as conn:
                top, epoch = await self._position(conn)
                rows = (await conn.execute(
                    sa.select(revocations).where(revocations.c.expires_at > now)
                    .order_by(revocations.c.seq))).mappings().all()
            body = _body(f"{epoch}.{top}", True, [_entry(r) for r in rows])
            self._snapshot = (top, self._monotonic(), body)
            return body

    def _parse_cursor(self, since: str | None) -> int | None:
        match = _CURSOR.fullmatch(since) if since is not None else None
        if match is None or match.group(1) != self._epoch:
            return None
        return int(match.group(2))

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


def _body(cursor: str, reset: bool, entries: list[Revocation]) -> bytes:
    return json.dumps({"cursor": cursor, "reset": reset,
                       "revocations": [e.to_json() for e in entries]},
                      separators=(",", ":")).encode()


def _later(a: Revocation, b: Revocation) -> Revocation:
    """Two revocations of the same thing as one: the later expiry and the later cutoff."""
    cutoff = None if a.cutoff is None or b.cutoff is None else max(a.cutoff, b.cutoff)
    return Revocation(a.kind, a.value, max(a.expires_at, b.expires_at), cutoff)


def _extends(entry: Revocation, stored: Any) -> bool:
    """Whether ``entry`` revokes more than the stored row: later expiry or later cutoff."""
    if entry.expires_at > float(stored.expires_at):
        return True
    return entry.cutoff is not None and (stored.cutoff is None or entry.cutoff > float(stored.cutoff))


def _entry(row: Row) -> Revocation:
    return Revocation(row["kind"], row["value"], float(row["expires_at"]),
                      None if row["cutoff"] is None else float(row["cutoff"]))
