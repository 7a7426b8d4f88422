"""Every revocation reaches every follower, whatever the order of commits (issue #16 F2).

The token service runs as a ``jwtwarden serve`` process on a real PostgreSQL database.
Followers: a resource server's :class:`RevocationFeed` over HTTP, and the service process
itself, which learns other writers' revocations by polling the database (a replica without
Redis). The attack: one revocation's transaction takes its place in the table, then stays
open while later revocations commit; a follower that pages by "highest id seen" moves past
the slow one and never delivers it. And a cursor the database never issued (another
database, the id-based cursors of earlier versions) is answered with a full snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from jwtwarden import decode_unverified
from jwtwarden.policy import DEFAULT_LEEWAY
from jwtwarden.resource.feed_client import FEED_PATH, RevocationFeed
from jwtwarden.revocation import Revocation
from jwtwarden.service.sessions.denylist import DenyList
from jwtwarden.service.storage.db import Database, database_url
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    ServerProcess,
    add_user,
    asgi_client,
    make_settings,
    running_server,
    server_env,
)

pytestmark = pytest.mark.anyio


async def until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Wait (real time: the service is another process) until ``condition`` holds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.02)


async def login(http: httpx.AsyncClient, service: ServerProcess) -> dict[str, Any]:
    response = await http.post(service.url + "/v1/auth/login",
                               json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def userinfo(http: httpx.AsyncClient, service: ServerProcess, token: str) -> int:
    response = await http.get(service.url + "/v1/auth/userinfo",
                              headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def jti_of(token: str) -> str:
    return str(decode_unverified(token).payload["jti"])


async def lock_waiters(pg_url: str) -> int:
    """Backends of this database waiting for a lock."""
    conn = await asyncpg.connect(pg_url, timeout=5)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"))
    finally:
        await conn.close()


async def test_a_revocation_committed_after_later_ones_still_reaches_every_follower(
    tmp_path: Path, postgres_url: str
) -> None:
    env = server_env(tmp_path, JWTWARDEN_DATABASE_URL=postgres_url, JWTWARDEN_KEK=TEST_KEK)
    with running_server(env) as service:
        add_user(env)
        feed = RevocationFeed(service.url + FEED_PATH, wait=5, retry_initial=0.05, retry_max=0.2)
        # a second writer, as the CLI is: its transaction takes its place and stays open
        db = Database(database_url(postgres_url, tmp_path))
        writer = DenyList(db)
        held, release = asyncio.Event(), asyncio.Event()
        async with httpx.AsyncClient(timeout=60) as http:
            tokens = [(await login(http, service))["access_token"] for _ in range(3)]
            jtis = [jti_of(t) for t in tokens]
            await feed.astart()
            try:
                assert await feed.await_synced(10)
                slow_claims = decode_unverified(tokens[0]).payload
                slow = Revocation("jti", jtis[0], float(slow_claims["exp"]) + DEFAULT_LEEWAY)

                async def slow_writer() -> None:
                    async with db.transaction() as conn:
                        await conn.run_sync(lambda c: writer.record(c, [slow]))
                        held.set()
                        await release.wait()

                slow_task = asyncio.create_task(slow_writer())
                await held.wait()
                later = [asyncio.create_task(http.post(service.url + "/v1/auth/revoke", data={"token": t}))
                         for t in tokens[1:]]

                async def later_ones_committed_or_queued() -> bool:
                    return all(t.done() for t in later) or await lock_waiters(postgres_url) >= 2

                await until(later_ones_committed_or_queued, 10, "the later revocations neither ended nor queued")
                if all(t.done() for t in later):  # they committed first: let the followers pass them

                    async def followers_saw_the_later_ones() -> bool:
                        return all(feed.revocations.is_revoked({"jti": j}) for j in jtis[1:])

                    await until(followers_saw_the_later_ones, 5, "the feed did not deliver the later revocations")
                release.set()
                await slow_task
                assert all(r.status_code == 200 for r in await asyncio.gather(*later))

                async def every_follower_has_all_three() -> bool:
                    return (all(feed.revocations.is_revoked({"jti": j}) for j in jtis)
                            and await userinfo(http, service, tokens[0]) == 401)

                await until(every_follower_has_all_three, 5, "a revocation was skipped")
            finally:
                release.set()
                await feed.astop()
                await db.dispose()


async def test_a_cursor_this_database_never_issued_gets_a_full_snapshot(
    tmp_path: Path, database_url: str
) -> None:
    async with asgi_client(make_settings(tmp_path, database_url)) as (http, state):
        await state.sessions.logout_all("user-1")
        first = (await http.get(FEED_PATH)).json()
        await state.sessions.logout_all("user-2")
        epoch, seq = first["cursor"].split(".")
        other_epoch = f"{(int(epoch, 16) + 1) % 2**32:08x}"
        answers = {
            "news": (await http.get(FEED_PATH, params={"since": first["cursor"]})).json(),
            "another database": (await http.get(FEED_PATH, params={"since": f"{other_epoch}.{seq}"})).json(),
            "an id of the old feed": (await http.get(FEED_PATH, params={"since": seq})).json(),
            "ahead": (await http.get(FEED_PATH, params={"since": f"{epoch}.{int(seq) + 5}"})).json(),
            "garbage": (await http.get(FEED_PATH, params={"since": "x" * 40})).json(),
        }
    assert first["reset"] is True and len(first["revocations"]) == 1
    assert answers.pop("news")["reset"] is False
    for name, answer in answers.items():
        assert answer["reset"] is True and len(answer["revocations"]) == 2, name
