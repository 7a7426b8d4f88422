"""One token cannot grow the deny list or the revocation feed (issue #16 F4).

Revoking what is already revoked changes nothing: the table and the feed hold at most one
entry per live revocation, a newer "log out everywhere" cutoff replaces the older one (and
is announced again), anonymous feed snapshots are not rebuilt per request, and the upgrade
merges the duplicates earlier versions stored.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from jwtwarden.service.sessions.denylist import DenyList
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.db import database_url as database_url_for
from jwtwarden.service.storage.migrations import migrate
from jwtwarden.service.storage.schema import revocation_feed, revocations
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
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
BURST = 200


async def count_rows(database_url: str, data_dir: Path) -> int:
    if database_url.startswith("postgresql"):
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM revocations"))
        finally:
            await conn.close()
    db = sqlite3.connect(f"file:{data_dir / 'jwtwarden.db'}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute("SELECT count(*) FROM revocations").fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    extra = {"JWTWARDEN_KEK": TEST_KEK}
    if database_url.startswith("postgresql"):
        extra["JWTWARDEN_DATABASE_URL"] = database_url
    env = server_env(tmp_path, **extra)
    with running_server(env) as server:
        add_user(env)
        yield server


async def feed(http: httpx.AsyncClient, service: ServerProcess, since: str | None = None) -> dict[str, Any]:
    params = {} if since is None else {"since": since}
    response = await http.get(service.url + "/v1/revocations", params=params)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_a_burst_of_anonymous_revocations_of_one_token_is_recorded_once(
    tmp_path: Path, database_url: str, service: ServerProcess
) -> None:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        login = await http.post(service.url + "/v1/auth/login",
                                json={"username": "alice", "password": PASSWORD})
        pair = login.json()
        before = await feed(http, service)

        async def revoke(token: str) -> int:
            return (await http.post(service.url + "/v1/auth/revoke", data={"token": token})).status_code

        # the access token BURST times, then its refresh token (its session) BURST times
        statuses = await asyncio.gather(*(revoke(pair["access_token"]) for _ in range(BURST)))
        statuses += await asyncio.gather(*(revoke(pair["refresh_token"]) for _ in range(BURST)))
        news = await feed(http, service, before["cursor"])
        snapshot = await feed(http, service)
        quiet = await feed(http, service, news["cursor"])
    rows = await count_rows(database_url, tmp_path / "data")
    assert set(statuses) == {200}
    # one jti (the access token, also the session's last one) and one sid (the session)
    assert sorted(r["kind"] for r in news["revocations"]) == ["jti", "sid"]
    assert sorted(r["kind"] for r in snapshot["revocations"]) == ["jti", "sid"]
    assert rows == 2
    assert quiet["revocations"] == [] and quiet["cursor"] == news["cursor"]


async def test_log_out_everywhere_again_replaces_the_cutoff_and_announces_it_once(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock(NOW)
    async with asgi_client(make_settings(tmp_path, database_url), clock) as (http, state):
        await state.accounts.add_user("alice", PASSWORD)
        user = await state.accounts.get_user("alice")
        assert user is not None
        await state.sessions.logout_all(user.id)
        first = (await http.get("/v1/revocations")).json()
        await state.sessions.logout_all(user.id)  # the same second: nothing new
        same = (await http.get("/v1/revocations", params={"since": first["cursor"]})).json()
        clock.advance(60)
        await state.sessions.logout_all(user.id)
        newer = (await http.get("/v1/revocations", params={"since": first["cursor"]})).json()
        async with state.db.read() as conn:
            stored = (await conn.execute(sa.select(revocations.c.kind, revocations.c.cutoff))).all()
    assert [r["cutoff"] for r in first["revocations"]] == [NOW]
    assert same["revocations"] == [] and same["cursor"] == first["cursor"]
    assert [(r["kind"], r["cutoff"]) for r in newer["revocations"]] == [("sub", NOW + 60)]
    assert newer["revocations"][0]["exp"] > first["revocations"][0]["exp"]
    assert stored == [("sub", NOW + 60)]


async def test_anonymous_snapshots_are_not_rebuilt_for_every_request(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with asgi_client(make_settings(tmp_path), clock) as (http, state):
        for user in range(200):
            await state.sessions.logout_all(f"user-{user}")
        statements: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        engine = state.db.engine.sync_engine
        sa.event.listen(engine, "before_cursor_execute", seen)
        try:
            answers = await asyncio.gather(*(http.get("/v1/revocations") for _ in range(50)))
        finally:
            sa.event.remove(engine, "before_cursor_execute", seen)
    bodies = {a.content for a in answers}
    snapshots = [s for s in statements if "FROM revocations" in s and "WHERE revocations.expires_at >" in s]
    assert {a.status_code for a in answers} == {200} and len(bodies) == 1
    assert len(next(iter(bodies))) > 200 * 50  # 200 entries in every answer
    assert len(snapshots) == 1


async def test_the_upgrade_merges_the_duplicates_earlier_versions_stored(
    tmp_path: Path, database_url: str
) -> None:
    db = Database(database_url_for(database_url, tmp_path))
    rows = [("jti", "a", None, NOW + 900), ("jti", "a", None, NOW + 900), ("jti", "a", None, NOW + 900),
            ("sub", "u", NOW - 60, NOW + 840), ("sub", "u", NOW, NOW + 900),
            ("sub", "u", NOW - 30, NOW + 870),  # the newest row is not the latest cutoff
            ("sid", "s", None, NOW + 900)]
    try:
        await migrate(db, target=2)
        async with db.transaction() as conn:
            for kind, value, cutoff, exp in rows:
                await conn.execute(revocations.insert().values(
                    kind=kind, value=value, cutoff=cutoff, expires_at=exp, created_at=NOW))
        await migrate(db)
        async with db.read() as conn:
            stored = (await conn.execute(sa.select(revocations.c.kind, revocations.c.value,
                                                   revocations.c.cutoff, revocations.c.expires_at,
                                                   revocations.c.seq, revocations.c.id)
                                         .order_by(revocations.c.id))).all()
            feed_row = (await conn.execute(sa.select(revocation_feed))).mappings().one()
        denylist = DenyList(db, clock=FakeClock(NOW))
        await denylist.load()
        snapshot = await denylist.changes(None, 0)
        old_cursor = await denylist.changes("7", 0)  # what the id-based feed handed out
    finally:
        await db.dispose()
    assert [(r.kind, r.value, r.cutoff, r.expires_at) for r in stored] == [
        ("jti", "a", None, NOW + 900), ("sub", "u", NOW, NOW + 900), ("sid", "s", None, NOW + 900)]
    assert all(r.seq == r.id for r in stored)
    assert feed_row["seq"] == 7 and len(feed_row["epoch"]) == 8
    assert len(snapshot["revocations"]) == 3 and snapshot["cursor"] == f"{feed_row['epoch']}.7"
    assert old_cursor["reset"] is True and len(old_cursor["revocations"]) == 3
