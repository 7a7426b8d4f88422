"""The Redis deny list: keys with TTL, pub/sub between replicas, failing closed, recovering."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from jwtwarden import errors
from jwtwarden.service.app import ServiceState
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.infra import PrivateRedis, private_redis
from tests.servicekit import PASSWORD, make_settings, service_state

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 1.0) -> float:
    """Wait (on the event loop, not the token clock) until ``condition`` holds; return how long."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await condition():
        if loop.time() - start > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def synced(state: ServiceState) -> None:
    assert state.denylist.redis is not None
    await asyncio.wait_for(state.denylist.redis.synced.wait(), 5)


async def login(state: ServiceState) -> tuple[str, str]:
    if await state.accounts.get_user("alice") is None:
        await state.accounts.add_user("alice", PASSWORD)
    pair = await state.sessions.login("alice", PASSWORD)
    return pair.access_token, pair.refresh_token


async def is_refused(state: ServiceState, token: str) -> bool:
    """Refused as revoked. Failing closed (the first command after Redis restarted may meet a
    connection of before) is a refusal too, but not the one waited for: not yet."""
    try:
        await state.sessions.verify_access(token)
    except errors.Revoked:
        return True
    except errors.RevocationUnavailable:
        return False
    return False


async def test_a_revocation_is_a_redis_key_expiring_with_the_token(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, redis_url=redis_server.url), clock) as state:
        await synced(state)
        access, _ = await login(state)
        claims = await state.sessions.verify_access(access)
        await state.sessions.revoke(access, "access_token")
    client = redis.Redis.from_url(redis_server.url)
    ttl = client.ttl(f"jwtwarden:rv:jti:{claims.jti}")
    assert 900 <= ttl <= 930


async def test_logout_on_one_replica_is_enforced_by_another_within_a_second(
    tmp_path: Path, database_url: str, redis_server: PrivateRedis
) -> None:
    settings = make_settings(tmp_path, database_url, redis_url=redis_server.url)
    clock = FakeClock(NOW)
    async with service_state(settings, clock) as a, service_state(settings, clock) as b:
        await synced(a)
        await synced(b)
        access, _ = await login(a)
        await b.sessions.verify_access(access)
        claims = await a.sessions.verify_access(access)
        await a.sessions.logout(claims)
        took = await eventually(lambda: is_refused(b, access), within=1.0)
    assert took < 1.0


async def test_redis_down_fails_closed_and_recovers_by_itself(
    tmp_path: Path, redis_server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    async with service_state(make_settings(tmp_path, redis_url=redis_server.url)) as state:
        await synced(state)
        access, _ = await login(state)
        await state.sessions.verify_access(access)
        redis_server.stop()

        async def unavailable() -> bool:
            try:
                await state.sessions.verify_access(access)
            except errors.RevocationUnavailable:
                return True
            return False

        await eventually(unavailable, within=3.0)
        redis_server.start()
        assert state.denylist.redis is not None
        await asyncio.wait_for(state.denylist.redis.synced.wait(), 10)
        assert (await state.sessions.verify_access(access)).jti


async def test_a_revocation_made_while_redis_was_down_reaches_redis_when_it_returns(
    tmp_path: Path, database_url: str, redis_server: PrivateRedis
) -> None:
    settings = make_settings(tmp_path, database_url, redis_url=redis_server.url)
    async with service_state(settings) as a, service_state(settings) as b:
        await synced(a)
        await synced(b)
        access, refresh = await login(a)
        redis_server.stop()
        await a.sessions.logout(None, refresh)  # committed in the database only
        redis_server.start()
        assert b.denylist.redis is not None
        await asyncio.wait_for(b.denylist.redis.synced.wait(), 10)
        await eventually(lambda: is_refused(b, access), within=5.0)


async def test_the_remote_check_answers_in_one_round_trip_before_the_set_is_synced(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    async with service_state(settings) as a:
        await synced(a)
        access, _ = await login(a)
        await a.sessions.revoke(access, "access_token")
        assert a.denylist.redis is not None
        a.denylist.redis.healthy = False  # as right after a reconnection
        a.denylist.set.clear()
        with pytest.raises(errors.Revoked):
            await a.sessions.verify_access(access)


async def test_failing_open_is_explicit_and_logged(
    tmp_path: Path, redis_server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, redis_url=redis_server.url, revocation_fail_open=True)
    async with service_state(settings) as state:
        await synced(state)
        access, _ = await login(state)
        redis_server.stop()
        with caplog.at_level(logging.WARNING, "jwtwarden"):
            async def accepted() -> bool:
                assert state.denylist.redis is not None
                return not state.denylist.redis.healthy and bool(await state.sessions.verify_access(access))

            await eventually(accepted, within=3.0)
    assert "failing OPEN" in caplog.text


async def test_pubsub_messages_that_are_not_revocations_are_ignored(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    async with service_state(make_settings(tmp_path, redis_url=redis_server.url)) as state:
        await synced(state)
        client = redis.Redis.from_url(redis_server.url)
        client.publish("jwtwarden:revocations", b"not json")
        client.publish("jwtwarden:revocations", b'[{"kind": "nope"}]')
        access, _ = await login(state)
        await state.sessions.verify_access(access)
        assert state.denylist.redis is not None and state.denylist.redis.healthy


async def test_a_resource_server_can_follow_the_deny_list_through_redis(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    from jwtwarden.resource.redis_follower import RedisFollower

    clock = FakeClock(NOW)  # the service's and the follower's: entries expire on it
    follower = RedisFollower(redis_server.url, clock=clock)
    await follower.astart()
    try:
        async with service_state(make_settings(tmp_path, redis_url=redis_server.url), clock) as state:
            await synced(state)

            async def in_sync() -> bool:
                return follower.healthy

            await eventually(in_sync, within=5.0)
            access, _ = await login(state)
            claims = await state.sessions.verify_access(access)
            follower.check(claims)
            await state.sessions.logout(claims)

            async def refused() -> bool:
                try:
                    follower.check(claims)
                except errors.Revoked:
                    return True
                return False

            await eventually(refused, within=1.0)
            redis_server.stop()

            async def closed() -> bool:
                try:
                    follower.check({"jti": "other", "sub": "x", "iat": 1})
                except errors.RevocationUnavailable:
                    return True
                return False

            await eventually(closed, within=3.0)
    finally:
        await follower.astop()
