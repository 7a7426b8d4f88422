"""Two service processes on one PostgreSQL and one Redis, with faults injected.

Each test runs its own PostgreSQL and Redis (tests/infra.py) so it can stop, restart and
kill them without disturbing anything else on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.infra import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    ServerProcess,
    add_user,
    free_port,
    server_env,
    start_together,
)

pytestmark = pytest.mark.anyio


@dataclass
class Cluster:
    pg: PrivatePostgres
    redis: PrivateRedis
    a: ServerProcess
    b: ServerProcess
    env: dict[str, str]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with private_postgres() as pg, private_redis() as redis:
        issuer = "http://127.0.0.1:8000"
        common = {"JWTWARDEN_DATABASE_URL": pg.url, "JWTWARDEN_REDIS_URL": redis.url,
                  "JWTWARDEN_KEK": TEST_KEK, "JWTWARDEN_ISSUER": issuer,
                  "JWTWARDEN_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000"}
        env_a = server_env(tmp_path / "a", **common)
        env_b = server_env(tmp_path / "b", **common)
        a, b = ServerProcess(env_a, free_port()), ServerProcess(env_b, free_port())
        # both replicas start at the same time on the same empty database
        with contextlib.ExitStack() as stack:
            start_together(a, b)
            stack.callback(a.stop)
            stack.callback(b.stop)
            add_user(env_a)
            yield Cluster(pg, redis, a, b, env_a)


async def login(client: httpx.AsyncClient, server: ServerProcess) -> dict[str, Any]:
    r = await client.post(server.url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def refresh(client: httpx.AsyncClient, server: ServerProcess, token: str) -> httpx.Response:
    return await client.post(server.url + "/v1/auth/refresh", json={"refresh_token": token})


async def userinfo(client: httpx.AsyncClient, server: ServerProcess, token: str) -> int:
    try:
        r = await client.get(server.url + "/v1/auth/userinfo", headers={"Authorization": f"Bearer {token}"})
    except httpx.TransportError:
        return 0
    return r.status_code


async def usable_tokens_per_family(pg_url: str) -> dict[str, int]:
    """For each family that is not revoked: how many refresh tokens could still be used."""
    conn = await asyncpg.connect(pg_url.replace("postgresql://", "postgresql://"), timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT f.id, count(t.token_hash) FILTER (WHERE t.used_at IS NULL AND t.expires_at > $1) AS usable "
            "FROM families f LEFT JOIN refresh_tokens t ON t.family_id = f.id "
            "WHERE f.revoked_at IS NULL AND f.expires_at > $1 GROUP BY f.id", time.time())
    finally:
        await conn.close()
    return {r["id"]: r["usable"] for r in rows}


async def test_both_replicas_publish_the_same_jwks_and_a_pair_from_one_refreshes_on_the_other(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        jwks_a = (await client.get(cluster.a.url + "/.well-known/jwks.json")).json()
        jwks_b = (await client.get(cluster.b.url + "/.well-known/jwks.json")).json()
        pair = await login(client, cluster.a)
        renewed = await refresh(client, cluster.b, pair["refresh_token"])
        info = await userinfo(client, cluster.a, renewed.json()["access_token"])
    assert jwks_a == jwks_b and len(jwks_a["keys"]) == 1
    assert renewed.status_code == 200 and info == 200


async def test_a_logout_on_one_replica_is_enforced_by_the_other_within_a_second(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        pair = await login(client, cluster.a)
        token = pair["access_token"]
        assert await userinfo(client, cluster.b, token) == 200
        out = await client.post(cluster.a.url + "/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert out.status_code == 204
        start = time.monotonic()
        while await userinfo(client, cluster.b, token) != 401:
            assert time.monotonic() - start < 1.0, "replica B still accepts the logged-out token"
            await asyncio.sleep(0.01)


async def test_200_concurrent_refreshes_over_both_replicas_give_exactly_one_successor(cluster: Cluster) -> None:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        pair = await login(client, cluster.a)
        servers = [cluster.a, cluster.b]
        responses = await asyncio.gather(
            *(refresh(client, servers[i % 2], pair["refresh_token"]) for i in range(200)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 400]
    assert len(ok) == 1 and len(refused) == 199
    assert {r.json()["reason"] for r in refused} <= {"refresh_reused", "refresh_revoked"}
    assert await usable_tokens_per_family(cluster.pg.url) == {}  # the family is revoked: strict mode


async def _load(client: httpx.AsyncClient, servers: list[ServerProcess], token: str,
                until: asyncio.Event, statuses: list[int]) -> None:
    i = 0
    while not until.is_set():
        statuses.append(await userinfo(client, servers[i % len(servers)], token))
        i += 1


async def test_redis_stopped_under_load_fails_closed_then_recovers_without_a_restart(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        token = (await login(client, cluster.a))["access_token"]
        stop = asyncio.Event()
        statuses: list[int] = []
        load = asyncio.create_task(_load(client, [cluster.a, cluster.b], token, stop, statuses))
        await asyncio.sleep(0.3)  # some traffic while healthy
        cluster.redis.stop()
        deadline = time.monotonic() + 5
        while 503 not in statuses[-10:]:
            assert time.monotonic() < deadline, "requests did not fail closed"
            await asyncio.sleep(0.05)
        down = len(statuses)
        await asyncio.sleep(0.5)
        cluster.redis.start()
        deadline = time.monotonic() + 15
        while statuses[-1:] != [200] or statuses[-20:].count(200) < 20:
            assert time.monotonic() < deadline, "did not recover after Redis came back"
            await asyncio.sleep(0.05)
        stop.set()
        await load
    assert set(statuses) <= {200, 503}
    assert statuses[:10].count(200) == 10 and 503 in statuses[down - 5:]


async def test_postgres_restarted_under_load_gives_503_then_refreshes_succeed(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        pairs = [await login(client, cluster.a) for _ in range(6)]
        held = {i: p["refresh_token"] for i, p in enumerate(pairs)}
        statuses: list[int] = []
        stop = asyncio.Event()

        async def refresher(i: int) -> None:
            servers = [cluster.a, cluster.b]
            n = 0
            while not stop.is_set():
                try:
                    r = await refresh(client, servers[n % 2], held[i])
                except httpx.TransportError as error:
                    raise AssertionError(f"the service did not answer: {error!r}") from None
                statuses.append(r.status_code)
                if r.status_code == 200:
                    held[i] = r.json()["refresh_token"]
                elif r.status_code == 503:
                    await asyncio.sleep(0.05)
                n += 1

        tasks = [asyncio.create_task(refresher(i)) for i in held]
        await asyncio.sleep(0.5)
        cluster.pg.stop("fast")
        await asyncio.sleep(1.0)
        cluster.pg.start()
        deadline = time.monotonic() + 20
        while statuses[-12:].count(200) < 12:
            assert time.monotonic() < deadline, "refreshes did not recover"
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
    assert 503 in statuses
    assert set(statuses) <= {200, 400, 503}
    usable = await usable_tokens_per_family(cluster.pg.url)
    # every family that survived has exactly one usable token; a family can only have been
    # revoked by a refresh whose answer was lost in the outage (its retry looked like reuse)
    assert all(n == 1 for n in usable.values()), usable
    assert statuses.count(400) <= len(held)


async def test_a_replica_killed_mid_rotation_leaves_every_family_consistent(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        pairs = [await login(client, cluster.a) for _ in range(8)]
        held = [p["refresh_token"] for p in pairs]
        stop = asyncio.Event()

        async def refresher(i: int) -> None:
            while not stop.is_set():
                try:
                    r = await refresh(client, cluster.b, held[i])
                except httpx.TransportError:
                    return  # the replica is gone
                if r.status_code != 200:
                    return
                held[i] = r.json()["refresh_token"]

        tasks = [asyncio.create_task(refresher(i)) for i in range(len(held))]
        await asyncio.sleep(0.5)
        cluster.b.kill()
        stop.set()
        await asyncio.gather(*tasks)
        usable = await usable_tokens_per_family(cluster.pg.url)
        assert all(n == 1 for n in usable.values()), usable
        # the survivor carries on: each client's last token (or, if the kill hit after the
        # commit, its successor on a retry within the grace window) still works, or the
        # family was revoked as reuse; never two live tokens
        for token in held:
            r = await refresh(client, cluster.a, token)
            assert r.status_code in (200, 400)
        usable = await usable_tokens_per_family(cluster.pg.url)
        assert all(n == 1 for n in usable.values()), usable
