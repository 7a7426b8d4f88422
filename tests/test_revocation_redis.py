"""The deny list in Redis, piece by piece, on a private Redis (issue #16 F3 and F4).

Writes are merges published in the same atomic step: what Redis already holds is not
written or announced again, and an older cutoff never replaces a newer one. A follower
trusts a Redis only once a token service has loaded it since that Redis (re)started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from jwtwarden import errors
from jwtwarden.resource import redis_wire as wire
from jwtwarden.resource.redis_follower import RedisFollower
from jwtwarden.revocation import Revocation, subject_key
from jwtwarden.service.app import ServiceState
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.infra import PrivateRedis, private_redis
from tests.servicekit import make_settings, service_state

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.01)


async def synced(state: ServiceState) -> None:
    assert state.denylist.redis is not None
    await asyncio.wait_for(state.denylist.redis.synced.wait(), 10)


async def test_a_follower_fails_closed_until_a_token_service_has_loaded_redis(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    claims: dict[str, object] = {"jti": "j", "sid": "s", "sub": "alice", "iat": NOW - 1}
    clock = FakeClock(NOW)  # the service's and the follower's: entries expire on it
    follower = RedisFollower(redis_server.url, clock=clock)
    await follower.astart()
    try:
        await eventually(lambda: follower.state == "waiting")
        assert not await follower.await_synced(1)  # the first requests do not wait for it
        with pytest.raises(errors.RevocationUnavailable):
            follower.check(claims)
        async with service_state(make_settings(tmp_path, redis_url=redis_server.url), clock) as state:
            await synced(state)
            await eventually(lambda: follower.healthy)
            follower.check(claims)
            # the service's tokens carry the subject's revocation handle, which is what a
            # "log out everywhere" publishes
            claims["srh"] = state.session_keys.subject_handle("alice")
            await state.sessions.logout_all("alice")
            await eventually(lambda: follower.revocations.is_revoked(claims), within=1.0)
    finally:
        await follower.astop()


async def test_a_marker_left_by_an_earlier_run_of_redis_is_not_trusted(redis_server: PrivateRedis) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set(wire.LOADED_KEY, "the run_id of a Redis that restarted since")
        follower = RedisFollower(redis_server.url)
        await follower.astart()
        try:
            await eventually(lambda: follower.state == "waiting")
            run_id = (await client.info("server"))["run_id"]
            await client.set(wire.LOADED_KEY, run_id)  # what a token service writes once loaded
            await eventually(lambda: follower.healthy)
        finally:
            await follower.astop()
    finally:
        await client.aclose()


async def test_writing_what_redis_holds_announces_nothing_and_an_older_cutoff_never_wins(
    tmp_path: Path, redis_server: PrivateRedis
) -> None:
    key = subject_key("alice")
    newer = Revocation("sub", key, NOW + 900, cutoff=NOW)
    older = Revocation("sub", key, NOW + 840, cutoff=NOW - 60)
    later = Revocation("sub", key, NOW + 960, cutoff=NOW + 60)
    client = aioredis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        async with service_state(make_settings(tmp_path, redis_url=redis_server.url)) as state:
            await synced(state)
            redis = state.denylist.redis
            assert redis is not None
            await pubsub.subscribe(wire.CHANNEL)
            changed = [await redis.publish([newer]), await redis.publish([newer] * 3),
                       await redis.publish([older]), await redis.publish([later])]
            stored = await client.get(wire.key("sub", key))
        messages: list[Any] = []
        for _ in range(20):  # the subscription's confirmation reads as None: look a few times
            message = await pubsub.get_message(timeout=0.1)
            if message is not None:
                messages.append(wire.decode_message(message["data"]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    assert changed == [1, 0, 0, 1]
    assert stored == repr(NOW + 60).encode()
    assert messages == [[newer], [later]]
