"""Rotation when something goes wrong half-way, and when two writers meet (issue #17).

Stated as behaviours that any correct rotation keeps, whatever statements it runs:

- a refresh that fails after the old token was marked spent (here: no key can sign) changes
  nothing — the old token still refreshes, no successor was stored — because the whole
  rotation is one transaction that rolls back (SQLite and PostgreSQL);
- two refreshes of one token that meet in the database (PostgreSQL, READ COMMITTED): one
  gets the pair, the other is reuse and the session ends — the family row lock; without it,
  both read an unspent token;
- a token spent by another writer while a refresh waits to spend it is not spent twice (the
  ``used_at IS NULL`` guard of the rotation's UPDATE, which nothing else reaches).

The PostgreSQL tests make the meeting deterministic: a transaction of the test holds the
token's row lock until the refreshes are seen waiting (``pg_stat_activity``), then lets go.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jwtwarden import errors
from jwtwarden.service.app import ServiceState
from jwtwarden.service.sessions.service import TokenPair
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import (
    PASSWORD,
    FamilyRow,
    make_settings,
    read_families,
    service_state,
    token_hash,
)

pytestmark = pytest.mark.anyio


async def login(state: ServiceState) -> TokenPair:
    await state.accounts.add_user("alice", PASSWORD)
    return await state.sessions.login("alice", PASSWORD)


async def family(database_url: str, family_id: str, now: float) -> FamilyRow:
    """The family as stored, read behind the service's back (in a thread: read_families
    runs its own event loop for PostgreSQL)."""
    where: Path | str = database_url
    if database_url.startswith("sqlite:///"):
        where = Path(database_url.removeprefix("sqlite:///"))
    return (await asyncio.to_thread(read_families, where, now))[family_id]


async def outcome(refresh: Any) -> object:
    """A refresh's pair, or the exception it ended with (which one does not matter here)."""
    try:
        return await refresh
    except Exception as error:  # noqa: BLE001 - any refusal will do; a pair would not
        return error


# ---- a failure half-way rolls the whole rotation back ------------------------------------------


async def test_a_refresh_that_cannot_sign_leaves_the_old_token_usable_and_no_successor(
    tmp_path: Path, database_url: str,
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        # The operator rotates, then revokes the new key before it signs: once the old key
        # retires, no key may sign. A refresh then fails after its token was marked spent.
        pending = await state.keyring.rotate()
        assert await state.sessions.revoke_signing_key(pending.kid) is None  # the old key still signs
        clock.advance(state.settings.jwks_max_age)
        assert state.keyring.active() is None

        failed = await outcome(state.sessions.refresh(pair.refresh_token))

        assert not isinstance(failed, TokenPair)
        stored = await family(database_url, pair.family_id, clock())
        assert stored.tokens == 1 and stored.generation == 0  # no orphan successor
        assert stored.usable == {token_hash(pair.refresh_token)}  # the old token is not spent
        assert stored.revoked_reason is None

        await state.keyring.ensure_signing_key()  # the operator's fix: a key signs again
        renewed = await state.sessions.refresh(pair.refresh_token)  # the client's retry: not reuse
        await state.sessions.verify_access(renewed.access_token)
        stored = await family(database_url, pair.family_id, clock())
        assert stored.tokens == 2 and stored.usable == {token_hash(renewed.refresh_token)}


# ---- two writers meet (PostgreSQL) --------------------------------------------------------------


class RowLock:
    """A transaction of the test holding the row lock of one refresh token."""

    def __init__(self, url: str, token: str) -> None:
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        self.digest = token_hash(token)
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> RowLock:
        self.conn = await asyncpg.connect(self.dsn)
        await self.conn.execute("BEGIN")
        locked = await self.conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE) t",
            self.digest)
        assert locked == 1
        return self

    async def wait_for_waiters(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` other sessions of this database wait for a lock."""
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        while True:
            async with asyncpg.create_pool(self.dsn, min_size=1, max_size=1) as pool:
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            if waiting >= count:
                return
            assert time.monotonic() < deadline, f"only {waiting} of {count} refreshes reached a lock"
            await asyncio.sleep(0.01)  # waiting for other processes, not for the clock

    async def spend(self, now: float) -> None:
        """Mark the token used in this transaction, as a writer without the family lock would."""
        assert self.conn is not None
        await self.conn.execute("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1",
                                self.digest, now)

    async def __aexit__(self, *exc: object) -> None:
        assert self.conn is not None
        await self.conn.execute("COMMIT")
        await self.conn.close()


async def test_two_refreshes_of_one_token_meeting_in_postgres_give_one_pair_and_reuse(
    tmp_path: Path, postgres_url: str,
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, postgres_url), clock) as state:
        pair = await login(state)
        async with RowLock(postgres_url, pair.refresh_token) as lock:
            racing = [asyncio.ensure_future(outcome(state.sessions.refresh(pair.refresh_token)))
                      for _ in range(2)]
            await lock.wait_for_waiters(2)  # both are past their first reads, waiting
        results = await asyncio.gather(*racing)
        pairs = [r for r in results if isinstance(r, TokenPair)]
        reused = [r for r in results if isinstance(r, errors.RefreshReused)]
        assert len(pairs) == 1 and len(reused) == 1, results
        stored = await family(postgres_url, pair.family_id, clock())
        assert stored.revoked_reason == "refresh_reused"  # strict mode: the session ends
        assert stored.tokens == 2 and stored.usable == frozenset()


async def test_a_token_spent_by_another_writer_while_a_refresh_waits_is_not_spent_twice(
    tmp_path: Path, postgres_url: str,
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, postgres_url), clock) as state:
        pair = await login(state)
        async with RowLock(postgres_url, pair.refresh_token) as lock:
            waiting = asyncio.ensure_future(outcome(state.sessions.refresh(pair.refresh_token)))
            await lock.wait_for_waiters(1)
            await lock.spend(clock())
        result = await waiting
        assert not isinstance(result, TokenPair)
        stored = await family(postgres_url, pair.family_id, clock())
        assert stored.tokens == 1 and stored.generation == 0  # no successor for a spent token
