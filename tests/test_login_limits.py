"""Login limits as an attacker tries them (issue #11 items 1-3, issue #16 F8).

- a burst of simultaneous guesses gets at most the limit verified, the rest 429, and the right
  password is refused while the account is limited (attempts are counted before hashing);
- a locked account still admits its owner from a device that logged in before (OWASP device
  cookies), while untrusted attempts and forged cookies stay locked out;
- with Redis, replicas share one budget (and a Redis that is down means 503, not no limit);
- filling the limiter with other keys never resets a victim's count.

The red-team tests run ``jwtwarden serve`` as a process (real argon2id); the unit tests drive
the counters with a fake clock, in memory and in a real Redis.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from jwtwarden.errors import RateLimited, TemporarilyUnavailable
from jwtwarden.service.cookies import DEVICE_COOKIE
from jwtwarden.service.ratelimit import LoginLimiter, MemoryCounters, RedisCounters
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.infra import private_redis
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    ServerProcess,
    add_user,
    asgi_client,
    free_port,
    make_settings,
    running_server,
    server_env,
    start_together,
)

pytestmark = pytest.mark.anyio
WRONG = "not the password"


def _login(name: str, password: str, **extra: Any) -> dict[str, Any]:
    return {"json": {"username": name, "password": password}, **extra}


def _device_cookie(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(DEVICE_COOKIE + "="):
            return header.split(";")[0].split("=", 1)[1]
    raise AssertionError("no device cookie was issued")


def _as_device(cookie: str) -> dict[str, str]:
    return {"cookie": f"{DEVICE_COOKIE}={cookie}"}


def _from(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


# ---- item 1: a burst of guesses --------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default limits (5 per account, 20 per address, 300 s), behind a pretend proxy so each
    test can be its own client address."""
    env = server_env(tmp_path_factory.mktemp("limits"), JWTWARDEN_TRUST_PROXY_HEADERS="1")
    for name in ("burst", "victim", "spray", "owner"):
        add_user(env, name)
    with running_server(env) as running:
        yield running


async def test_forty_simultaneous_guesses_get_at_most_the_limit_verified(server: ServerProcess) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = _from("198.51.100.10")
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
        first_429 = asyncio.Event()

        async def guess() -> httpx.Response:
            response = await client.post("/v1/auth/login", headers=headers, **_login("burst", WRONG))
            if response.status_code == 429:
                first_429.set()
            return response

        burst = [asyncio.create_task(guess()) for _ in range(40)]
        limited: asyncio.Future[Any] = asyncio.ensure_future(first_429.wait())
        # the account is limited now, while guesses are still in flight (before the fix no
        # 429 ever came: wait for the burst then)
        await asyncio.wait([limited, asyncio.gather(*burst)], return_when=asyncio.FIRST_COMPLETED)
        limited.cancel()
        right = await client.post("/v1/auth/login", headers=_from("198.51.100.11"),
                                  **_login("burst", PASSWORD))
        answers = [r.status_code for r in await asyncio.gather(*burst)]
    assert answers.count(400) <= 5, answers  # before the fix: all 40 were verified (400)
    assert answers.count(429) >= 35 and set(answers) <= {400, 429}
    assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1


# ---- item 2: the owner is not locked out -------------------------------------------------------


def test_a_locked_account_still_admits_its_owner_from_a_known_device(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        owner = client.post("/v1/auth/login", headers=_from("192.0.2.1"), **_login("victim", PASSWORD))
        assert owner.status_code == 200
        device = _device_cookie(owner)
        for _ in range(5):  # the attacker, elsewhere, locks the account for untrusted clients
            assert client.post("/v1/auth/login", headers=_from("203.0.113.5"),
                               **_login("victim", WRONG)).status_code == 400
        client.cookies.clear()
        untrusted = client.post("/v1/auth/login", headers=_from("192.0.2.2"), **_login("victim", PASSWORD))
        forged = client.post("/v1/auth/login", headers={**_from("203.0.113.5"),
                                                        **_as_device(device[:-4] + "AAAA")},
                             **_login("victim", PASSWORD))
        trusted = client.post("/v1/auth/login", headers={**_from("192.0.2.1"), **_as_device(device)},
                              **_login("victim", PASSWORD))
    assert untrusted.status_code == 429  # the untrusted-attempt limit still stops guessing
    assert forged.status_code == 429  # a cookie that does not verify is no device
    assert trusted.status_code == 200  # before the fix: 429 for 300 s
    assert _device_cookie(trusted) != device  # a new device cookie on every success


def test_a_device_cookie_is_good_only_for_its_account(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        device = _device_cookie(client.post("/v1/auth/login", headers=_from("192.0.2.30"),
                                            **_login("owner", PASSWORD)))
        client.cookies.clear()
        for _ in range(5):
            client.post("/v1/auth/login", headers=_from("203.0.113.30"), **_login("spray", WRONG))
        # owner's device cookie does not make attempts on another account trusted
        other = client.post("/v1/auth/login", headers={**_from("192.0.2.30"), **_as_device(device)},
                            **_login("spray", PASSWORD))
    assert other.status_code == 429


def test_guessing_from_a_known_device_locks_out_that_device_only(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        stolen = _device_cookie(client.post("/v1/auth/login", headers=_from("192.0.2.40"),
                                            **_login("owner", PASSWORD)))
        client.cookies.clear()
        laptop = _device_cookie(client.post("/v1/auth/login", headers=_from("192.0.2.41"),
                                            **_login("owner", PASSWORD)))
        client.cookies.clear()
        guesses = [client.post("/v1/auth/login", headers={**_from("203.0.113.40"), **_as_device(stolen)},
                               **_login("owner", WRONG)).status_code for _ in range(7)]
        after = client.post("/v1/auth/login", headers={**_from("203.0.113.40"), **_as_device(stolen)},
                            **_login("owner", PASSWORD))
        elsewhere = client.post("/v1/auth/login", headers={**_from("192.0.2.41"), **_as_device(laptop)},
                                **_login("owner", PASSWORD))
        untrusted = client.post("/v1/auth/login", headers=_from("192.0.2.42"), **_login("owner", PASSWORD))
    assert guesses == [400] * 5 + [429] * 2 and after.status_code == 429
    assert elsewhere.status_code == 200 and untrusted.status_code == 200


# ---- item 3: one budget for every replica ------------------------------------------------------


def test_replicas_share_the_failure_budget_through_redis(tmp_path: Path, postgres_url: str) -> None:
    with private_redis() as redis:
        common = {"JWTWARDEN_DATABASE_URL": postgres_url, "JWTWARDEN_REDIS_URL": redis.url,
                  "JWTWARDEN_KEK": TEST_KEK, "JWTWARDEN_ISSUER": "http://127.0.0.1:8000"}
        replicas = [ServerProcess(server_env(tmp_path / n, **common), free_port()) for n in "ab"]
        start_together(*replicas)
        try:
            add_user(replicas[0].env, "alice")
            with httpx.Client(timeout=60) as client:
                answers = [client.post(replicas[i % 2].url + "/v1/auth/login",
                                       **_login("alice", WRONG)).status_code for i in range(12)]
                right = [client.post(r.url + "/v1/auth/login", **_login("alice", PASSWORD)).status_code
                         for r in replicas]
                redis.stop()  # the shared counters are gone: fail closed, not "no limit"
                down = client.post(replicas[1].url + "/v1/auth/login", **_login("alice", PASSWORD))
        finally:
            for replica in replicas:
                replica.stop()
    assert answers == [400] * 5 + [429] * 7  # before the fix: 10 verified, 5 on each replica
    assert right == [429, 429]
    assert down.status_code == 503 and down.json()["reason"] == "temporarily_unavailable"


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    with private_redis() as redis:
        yield RedisCounters(redis.url)


async def test_counters_are_sliding_windows_that_give_back_successes(counters: Any) -> None:
    clock = FakeClock(NOW)
    limiter = LoginLimiter(counters, per_account=3, per_address=100, per_device=2, window=60, clock=clock)
    try:
        first = await limiter.reserve("alice", "192.0.2.1")
        clock.advance(10)
        await limiter.reserve("alice", "192.0.2.1")
        success = await limiter.reserve("alice", "192.0.2.1")
        with pytest.raises(RateLimited) as limited:
            await limiter.reserve("alice", "192.0.2.2")
        assert limited.value.retry_after == 50  # the first place frees 60 s after it was taken
        await limiter.release(success)  # a success is not a failure
        await limiter.reserve("alice", "192.0.2.3")
        with pytest.raises(RateLimited):
            await limiter.reserve("alice", "192.0.2.3")
        await limiter.reserve("bob", "192.0.2.3")  # another account is not affected
        clock.advance(50.5)  # the first reservation has left the window
        again = await limiter.reserve("alice", "192.0.2.4")
        assert first.member != again.member
        # a trusted device has its own budget, whatever the account's
        await limiter.reserve("alice", "192.0.2.4", device="dev-1")
        await limiter.reserve("alice", "192.0.2.4", device="dev-1")
        with pytest.raises(RateLimited):
            await limiter.reserve("alice", "192.0.2.4", device="dev-1")
        await limiter.reserve("alice", "192.0.2.4", device="dev-2")
    finally:
        await limiter.close()


async def test_a_place_frees_exactly_one_window_after_it_was_taken(counters: Any) -> None:
    """The window's edge, with the clock injected: a failure counts for ``window`` seconds
    and not a moment longer (issue #17: ``<`` for ``<=`` went unnoticed)."""
    clock = FakeClock(NOW)
    limiter = LoginLimiter(counters, per_account=2, per_address=100, per_device=2, window=60, clock=clock)
    try:
        await limiter.reserve("alice", "192.0.2.1")
        clock.advance(10)
        await limiter.reserve("alice", "192.0.2.1")
        clock.advance(20)
        with pytest.raises(RateLimited) as limited:  # the limit is 2: the third waits
            await limiter.reserve("alice", "192.0.2.1")
        assert limited.value.retry_after == 30
        clock.set(NOW + 59.999)
        with pytest.raises(RateLimited) as limited:
            await limiter.reserve("alice", "192.0.2.1")
        assert limited.value.retry_after == 1
        clock.set(NOW + 60)  # the first place is exactly one window old: it has left
        await limiter.reserve("alice", "192.0.2.1")
        with pytest.raises(RateLimited) as limited:  # the second leaves at NOW + 70
            await limiter.reserve("alice", "192.0.2.1")
        assert limited.value.retry_after == 10
    finally:
        await limiter.close()


async def test_a_full_memory_map_frees_keys_exactly_one_window_after_their_last_use() -> None:
    clock = FakeClock(NOW)
    limiter = LoginLimiter(MemoryCounters(max_keys=2), per_account=5, per_address=5, per_device=5,
                           window=60, clock=clock)
    await limiter.reserve("alice", "192.0.2.1")  # two keys: the account and the address
    clock.set(NOW + 59.999)
    with pytest.raises(RateLimited) as limited:  # a new account and address: no room yet
        await limiter.reserve("bob", "192.0.2.2")
    assert limited.value.retry_after == 1
    clock.set(NOW + 60)
    await limiter.reserve("bob", "192.0.2.2")  # alice's keys are exactly one window old: dropped


async def test_a_reservation_is_all_or_nothing(counters: Any) -> None:
    limiter = LoginLimiter(counters, per_account=5, per_address=2, per_device=5, window=60,
                           clock=FakeClock(NOW))
    try:
        await limiter.reserve("a", "198.51.100.1")
        await limiter.reserve("b", "198.51.100.1")
        with pytest.raises(RateLimited):  # the address is full: the account must not be charged
            await limiter.reserve("c", "198.51.100.1")
        for _ in range(5):
            await limiter.reserve("c", "198.51.100.2" if _ < 2 else f"198.51.100.{_ + 10}")
    finally:
        await limiter.close()


async def test_redis_down_is_a_refusal_not_a_free_pass() -> None:
    with private_redis() as redis:
        limiter = LoginLimiter(RedisCounters(redis.url, timeout=0.5), per_account=5, per_address=5,
                               per_device=5, window=60)
        await limiter.reserve("alice", "192.0.2.1")
        redis.stop()
        with pytest.raises(TemporarilyUnavailable):
            await limiter.reserve("alice", "192.0.2.1")
        await limiter.close()


# ---- F8: the limiter forgets nobody --------------------------------------------------------------


async def test_filling_the_memory_counters_never_forgets_a_live_count() -> None:
    clock = FakeClock(NOW)
    counters = MemoryCounters(max_keys=50)
    limiter = LoginLimiter(counters, per_account=3, per_address=1000, per_device=3, window=300, clock=clock)
    for _ in range(3):
        await limiter.reserve("victim", "203.0.113.1")
    refused = 0
    for i in range(500):  # rotating addresses and names, as with a /64 of IPv6
        try:
            await limiter.reserve(f"user-{i}", f"2001:db8::{i:x}")
        except RateLimited:
            refused += 1
    assert len(counters) <= 50 and refused > 0
    with pytest.raises(RateLimited):  # before the fix: the victim's count was evicted
        await limiter.reserve("victim", "203.0.113.2")
    clock.advance(301)  # a window later everything expired and is dropped to make room
    await limiter.reserve("newcomer", "2001:db8::ffff")


async def test_rotating_addresses_cannot_reset_a_victims_count_over_http(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, login_max_failures=3, trust_proxy_headers=True)
    async with asgi_client(settings) as (client, state):
        await state.accounts.add_user("bob", PASSWORD)
        state.login_limiter.counters.max_keys = 40  # type: ignore[attr-defined]
        for _ in range(3):
            await client.post("/v1/auth/login", headers=_from("198.51.100.7"), **_login("bob", WRONG))
        answers = [(await client.post("/v1/auth/login", headers=_from(f"2001:db8::{i:x}"),
                                      **_login(f"name-{i}", WRONG))).status_code for i in range(60)]
        victim = await client.post("/v1/auth/login", headers=_from("198.51.100.8"), **_login("bob", PASSWORD))
    assert 429 in answers
    assert victim.status_code == 429


# ---- per-account concurrency of verifications --------------------------------------------------------


async def test_verifications_of_one_account_run_at_most_two_at_a_time(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, login_max_failures=100, login_max_failures_per_address=100)
    running = peak = 0
    lock = threading.Lock()
    go = threading.Event()  # verifications block until the test has seen how many run at once

    class Blocking(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Any:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                go.wait(30)
                return super().verify(hash, password)
            finally:
                with lock:
                    running -= 1

    async with asgi_client(settings) as (client, state):
        await state.accounts.add_user("carol", PASSWORD)
        state.accounts.hashing.hasher = Blocking(time_cost=1, memory_cost=1024, parallelism=1)
        burst = asyncio.gather(*(client.post("/v1/auth/login", **_login("carol", WRONG)) for _ in range(12)))
        waiting = asyncio.ensure_future(burst)
        # until a third verification runs (the bug), or all twelve are at the gate and two
        # of them verifying
        deadline = asyncio.get_running_loop().time() + 20
        while peak < 3 and not (_queued(state, "carol") == 12 and running == 2):
            assert asyncio.get_running_loop().time() < deadline, (peak, _queued(state, "carol"))
            await asyncio.sleep(0.01)  # yielding to the requests, not waiting for the clock
        go.set()
        answers = await waiting
    assert {r.status_code for r in answers} == {400}
    assert peak == 2  # before the fix: one per worker thread (six on this machine)


def _queued(state: Any, account: str) -> int:
    gates = getattr(getattr(state, "login_limiter", None), "_gates", {})
    return int(gates[account][1]) if account in gates else 0


def test_cookies_of_the_device_scheme_are_hardened(server: ServerProcess) -> None:
    response = httpx.post(server.url + "/v1/auth/login", headers=_from("192.0.2.77"),
                          **_login("owner", PASSWORD))
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith(DEVICE_COOKIE))
    lowered = header.lower()
    assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered
    assert "path=/v1/auth/login" in lowered and "owner" not in header


@pytest.mark.parametrize("bad", [{"per_account": 0}, {"per_address": 0}, {"per_device": 0},
                                 {"concurrent_per_account": 0}, {"window": 0}])
def test_every_limit_must_be_at_least_one_and_the_window_positive(bad: dict[str, Any]) -> None:
    limits: dict[str, Any] = {"per_account": 1, "per_address": 1, "per_device": 1, "window": 0.5,
                              "concurrent_per_account": 1}
    LoginLimiter(MemoryCounters(max_keys=1), **limits)  # the smallest that is allowed
    with pytest.raises(ValueError, match="at least 1"):
        LoginLimiter(MemoryCounters(), **{**limits, **bad})
    with pytest.raises(ValueError, match="max_keys"):
        MemoryCounters(max_keys=0)
