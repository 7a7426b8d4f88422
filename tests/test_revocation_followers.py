"""Resource servers converge on the service's deny list, whichever way they follow it, after
any outage (issue #16 F3).

The token service runs as a ``jwtwarden serve`` process on PostgreSQL and a private Redis;
operators act through the ``jwtwarden`` CLI (another process). Three resource servers watch
the same service, each through its own :class:`ResourceServer` holding a JWKS that stays
fresh for 10 minutes (so a revoked key is gone only if the revocation removed it):

- ``feed``: the HTTP revocation feed (asyncio task);
- ``redis``: a :class:`RedisFollower` (asyncio task);
- ``redis-thread``: ``revocations="redis://..."``, run in a thread as WSGI servers do.

Every fault script below runs against all three, and ends when each holds exactly what the
service publishes as its feed snapshot (same entries, expiries within the TTL rounding).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwtwarden import decode_unverified, errors
from jwtwarden.resource.feed_client import FEED_PATH, RevocationFeed
from jwtwarden.resource.follower import RevocationFollower
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.redis_follower import RedisFollower
from jwtwarden.resource.server import ResourceServer
from jwtwarden.revocation import Revocation, RevocationSet
from tests.infra import PrivateRedis, _wait_port, private_redis
from tests.servicekit import PASSWORD, TEST_KEK, ServerProcess, add_user, free_port, server_env

pytestmark = pytest.mark.anyio


class PersistentRedis(PrivateRedis):
    """A private Redis that, when ``persistent``, keeps its data across restarts (AOF,
    fsync on every write), as production Redis usually does."""

    def __init__(self, directory: Path, persistent: bool) -> None:
        super().__init__()
        self.directory = directory
        self.persistent = persistent

    def start(self) -> None:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.directory), *persistence, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)


@dataclass
class Follower:
    name: str
    source: RevocationFollower
    server: ResourceServer
    threaded: bool

    async def accepts(self, token: str) -> bool | None:
        """True: accepted; False: refused (revoked, unknown key...); None: fails closed."""
        header = f"Bearer {token}"
        try:
            if self.threaded:
                await asyncio.to_thread(self.server.authenticate, header)
            else:
                await self.server.aauthenticate(header)
        except errors.RevocationUnavailable:
            return None
        except errors.JWTError:
            return False
        return True


@dataclass
class Stack:
    service: ServerProcess
    env: dict[str, str]
    redis: PersistentRedis
    followers: list[Follower]
    http: httpx.AsyncClient

    async def cli(self, *args: str) -> str:
        """An operator's command, in a thread: the followers' tasks run on this loop."""
        out = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "jwtwarden", *args], env=self.env,
            capture_output=True, check=True, timeout=60)
        return out.stdout.decode()

    async def add_user(self, name: str) -> None:
        await asyncio.to_thread(add_user, self.env, name)

    async def login(self, user: str = "alice") -> dict[str, Any]:
        response = await self.http.post(self.service.url + "/v1/auth/login",
                                        json={"username": user, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def snapshot(self) -> list[Revocation]:
        response = await self.http.get(self.service.url + FEED_PATH)
        assert response.status_code == 200
        return [Revocation.from_json(e) for e in response.json()["revocations"]]

    @property
    def redis_followers(self) -> list[Follower]:
        return [f for f in self.followers if isinstance(f.source, RedisFollower)]


async def until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Wait (real time: the service is another process) until ``condition``; how long it took."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def differences(follower: RevocationSet, service: list[Revocation]) -> list[str]:
    """What differs between a follower's set and the service's snapshot (empty: the same)."""
    mine = {(e.kind, e.value): e for e in follower.entries()}
    theirs = {(e.kind, e.value): e for e in service}
    out = [f"missing {k}" for k in theirs.keys() - mine.keys()]
    out += [f"extra {k}" for k in mine.keys() - theirs.keys()]
    for k in mine.keys() & theirs.keys():
        a, b = mine[k], theirs[k]
        # a Redis follower derives expiries from TTLs: the same within a second or two
        if a.cutoff != b.cutoff or abs(a.expires_at - b.expires_at) > 2.0:
            out.append(f"{k}: cutoff {a.cutoff} vs {b.cutoff}, exp {a.expires_at} vs {b.expires_at}")
    return out


async def converged(stack: Stack, within: float = 15.0) -> float:
    """Every follower in sync and holding exactly the service's deny list."""
    last: dict[str, Any] = {}

    async def same() -> bool:
        service = await stack.snapshot()
        for f in stack.followers:
            last[f.name] = differences(f.source.revocations, service) if f.source.healthy else "not healthy"
        return all(v == [] for v in last.values())

    try:
        return await until(same, within, "the followers did not converge")
    except AssertionError as error:
        raise AssertionError(f"{error}: {last}") from None


def claims_of(token: str) -> dict[str, Any]:
    return dict(decode_unverified(token).payload)


def kid_of(token: str) -> str:
    return str(decode_unverified(token).header["kid"])


@pytest.fixture
async def stack(tmp_path: Path, postgres_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    persistent = bool(getattr(request, "param", False))
    with private_redis():  # skips (or fails in CI) without redis-server
        pass
    redis = PersistentRedis(tmp_path / "redis", persistent)
    redis.start()
    env = server_env(tmp_path, JWTWARDEN_DATABASE_URL=postgres_url, JWTWARDEN_REDIS_URL=redis.url,
                     JWTWARDEN_KEK=TEST_KEK)
    service = ServerProcess(env, free_port())
    env["JWTWARDEN_ISSUER"] = service.url
    followers: list[Follower] = []
    try:
        service.start()
        add_user(env, "alice")

        def jwks() -> RemoteJWKS:
            return RemoteJWKS(service.url + "/.well-known/jwks.json", algorithms=["ES256"],
                              min_age=600, max_age=600, cooldown=1)

        def resource_server(source: RevocationFollower | str) -> ResourceServer:
            return ResourceServer(jwks(), issuer=service.url, audience="api", revocations=source)

        feed = RevocationFeed(service.url + FEED_PATH, wait=5, retry_initial=0.05, retry_max=0.5)
        followers.append(Follower("feed", feed, resource_server(feed), threaded=False))
        follower = RedisFollower(redis.url)
        followers.append(Follower("redis", follower, resource_server(follower), threaded=False))
        threaded = resource_server(redis.url)
        assert isinstance(threaded.revocations, RedisFollower)
        followers.append(Follower("redis-thread", threaded.revocations, threaded, threaded=True))
        for f in followers:
            if f.threaded:
                await asyncio.to_thread(f.server.start)
            else:
                await f.server.astart()
        async with httpx.AsyncClient(timeout=60) as http:
            stack = Stack(service, env, redis, followers, http)
            await converged(stack)
            yield stack
    finally:
        for f in followers:
            if f.threaded:
                await asyncio.to_thread(f.server.stop)
            else:
                await f.server.astop()
        if service.proc is not None and service.proc.poll() is None:
            service.proc.send_signal(signal.SIGCONT)
        service.stop()
        redis.stop()


async def test_a_key_revoked_with_the_cli_is_dropped_by_every_resource_server(stack: Stack) -> None:
    token = (await stack.login())["access_token"]
    assert [await f.accepts(token) for f in stack.followers] == [True] * len(stack.followers)
    await stack.cli("keys", "revoke", "--yes", "--", kid_of(token))  # a kid may start with "-"

    async def refused_everywhere() -> bool:
        return [await f.accepts(token) for f in stack.followers] == [False] * len(stack.followers)

    took = await until(refused_everywhere, 5, "a resource server still trusts the revoked key")
    fresh = (await stack.login())["access_token"]  # signed by the replacement key
    assert kid_of(fresh) != kid_of(token)

    async def replacement_accepted_everywhere() -> bool:
        # the service's JWKS may show the replacement a few seconds after the revocation
        # reached a resource server: it refetches once a second meanwhile, not once a cooldown
        return [await f.accepts(fresh) for f in stack.followers] == [True] * len(stack.followers)

    await until(replacement_accepted_everywhere, 8, "the replacement key is still unknown somewhere")
    await converged(stack)
    print(f"key revocation refused by every resource server {took:.2f} s after the CLI returned")


@pytest.mark.parametrize("stack", [False, True], ids=["redis-restarts-empty", "redis-persists"],
                         indirect=True)
async def test_revocations_made_while_redis_was_down_reach_every_follower(stack: Stack) -> None:
    await stack.add_user("bob")
    alice = await stack.login("alice")
    bob = (await stack.login("bob"))["access_token"]
    stack.redis.stop()
    # while Redis is down: a logout (HTTP), a user disabled and a key revoked (the CLI)
    out = await stack.http.post(stack.service.url + "/v1/auth/logout",
                                json={"refresh_token": alice["refresh_token"]})
    assert out.status_code == 204
    await stack.cli("users", "disable", "bob")
    kid = kid_of(alice["access_token"])
    await stack.cli("keys", "revoke", "--yes", "--", kid)
    # Redis returns while the service is paused (a slow replica): followers reconnect first
    assert stack.service.proc is not None
    stack.service.proc.send_signal(signal.SIGSTOP)
    try:
        stack.redis.start()

        async def reconnected() -> bool:
            return all(f.source.healthy or getattr(f.source, "state", None) == "waiting"
                       for f in stack.redis_followers)

        await until(reconnected, 10, "the Redis followers did not reconnect")
        for f in stack.redis_followers:
            # what Redis holds now lacks the outage's revocations: it must not be trusted
            with pytest.raises((errors.Revoked, errors.RevocationUnavailable)):
                f.source.check(claims_of(alice["access_token"]))
    finally:
        stack.service.proc.send_signal(signal.SIGCONT)
    took = await converged(stack)
    for f in stack.followers:
        assert f.source.revocations.is_revoked(claims_of(alice["access_token"])), f.name
        assert f.source.revocations.is_revoked(claims_of(bob)), f.name
        assert kid in f.source.revocations.revoked_kids(), f.name
    print(f"converged {took:.2f} s after the service resumed")


@pytest.mark.parametrize("stack", [True], ids=["redis-persists"], indirect=True)
async def test_a_newer_log_out_everywhere_replaces_the_older_one_in_redis(stack: Stack) -> None:
    await stack.add_user("carol")
    first = (await stack.login("carol"))["access_token"]
    out = await stack.http.post(stack.service.url + "/v1/auth/logout-all",
                                headers={"Authorization": f"Bearer {first}"})
    assert out.status_code == 204
    later = (await stack.login("carol"))["access_token"]  # issued after the first cutoff
    assert [await f.accepts(later) for f in stack.followers] == [True] * len(stack.followers)
    # cutoffs are whole seconds of the service's (wall) clock: the next one must be later
    issued = int(claims_of(later)["iat"])

    async def next_second() -> bool:
        return int(time.time()) > issued

    await until(next_second, 2, "the clock did not move")
    stack.redis.stop()  # Redis keeps the first cutoff on disk
    await stack.cli("users", "disable", "carol")  # the second cutoff, in the database only
    stack.redis.start()
    await converged(stack)
    for f in stack.followers:
        assert f.source.revocations.is_revoked(claims_of(later)), f.name
        assert await f.accepts(later) is False, f.name


async def test_revocations_made_while_the_service_was_down_reach_every_follower(stack: Stack) -> None:
    await stack.add_user("dave")
    dave = (await stack.login("dave"))["access_token"]
    stack.service.kill()
    await stack.cli("users", "disable", "dave")  # the CLI writes the database and Redis itself
    await asyncio.to_thread(stack.service.start)  # same port and database: feed cursors stay valid
    await converged(stack)
    for f in stack.followers:
        assert await f.accepts(dave) is False, f.name
