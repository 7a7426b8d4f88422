"""Password hashing on its own bounded pool (issue #12): logins queue up to a bound, then get
503 + Retry-After at once; a refused login is not a failed attempt; the hashing threads run
below the requests in priority; the argon2id parameters are configurable but not below OWASP's
minimum."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher

from jwtwarden.errors import Overloaded
from jwtwarden.service.config import ConfigError
from jwtwarden.service.sessions.passwords import NICE, PasswordHashing, password_hasher
from tests.servicekit import PASSWORD, asgi_client, make_settings

pytestmark = pytest.mark.anyio
CHEAP: dict[str, Any] = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


class Gated(PasswordHasher):
    """Verifications wait at a gate the test opens; ``running`` counts those inside."""

    def __init__(self) -> None:
        super().__init__(**CHEAP)
        self.gate = threading.Event()
        self.running = 0
        self.lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.lock:
            self.running += 1
        try:
            assert self.gate.wait(30)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


async def _until(condition: Any) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)  # yielding to the pool, not waiting for the clock


async def test_past_threads_plus_queue_a_hash_is_refused_at_once_and_the_count_frees_when_done() -> None:
    hasher = Gated()
    hashing = PasswordHashing(hasher, threads=1, queue=1)
    stored = hasher.hash(PASSWORD)
    try:
        first = asyncio.ensure_future(hashing.verify(stored, PASSWORD))
        second = asyncio.ensure_future(hashing.verify(stored, PASSWORD))
        await _until(lambda: hasher.running == 1 and hashing.pending == 2)
        with pytest.raises(Overloaded) as refused:
            await hashing.verify(stored, PASSWORD)
        assert refused.value.retry_after == 1
        assert refused.value.code == "overloaded"
        assert hashing.pending == 2  # the refusal took no place
        # a caller that stops waiting while its hash runs does not free the place: the hash
        # still occupies the thread; one that leaves the queue frees its place (never hashed)
        first.cancel()
        await asyncio.sleep(0)
        assert hashing.pending == 2
        second.cancel()
        await _until(lambda: hashing.pending == 1)
        assert hasher.running == 1
        hasher.gate.set()
        await _until(lambda: hashing.pending == 0)
        assert await hashing.verify(stored, PASSWORD) is True
        assert await hashing.verify(stored, "wrong") is False
        assert await hashing.verify("not a hash", PASSWORD) is False
    finally:
        hasher.gate.set()
        hashing.close()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are a Linux feature")
async def test_hashing_threads_run_below_the_event_loop_in_priority() -> None:
    hashing = PasswordHashing(password_hasher(**{**CHEAP, "time_cost": 2, "memory_cost": 19456}), threads=1)
    try:
        here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        there = await hashing._run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert there == min(19, here + NICE)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here  # the loop's own
    finally:
        hashing.close()


async def test_a_login_storm_past_the_bound_gets_503_with_retry_after_and_no_failure_is_counted(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, hash_threads=1, hash_queue=2, login_max_failures=3)
    async with asgi_client(settings) as (client, state):
        for name in ("alice", "bob", "carol", "dave"):
            await state.accounts.add_user(name, PASSWORD)
        hasher = Gated()
        state.accounts.hashing.hasher = hasher

        def login(name: str) -> Any:
            return client.post("/v1/auth/login", json={"username": name, "password": PASSWORD})

        # three accounts fill the thread and the queue (one account may verify two at a time)
        held = [asyncio.ensure_future(login(name)) for name in ("alice", "bob", "carol")]
        await _until(lambda: state.accounts.hashing.pending == 3)
        refused = [await login("dave") for _ in range(5)]
        assert {r.status_code for r in refused} == {503}
        assert all(r.headers["retry-after"] == "1" for r in refused)
        assert {r.json()["error"] for r in refused} == {"temporarily_unavailable"}
        hasher.gate.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200, 200]
        # five refusals past a limit of three failures: none of them counted as one
        assert (await login("dave")).status_code == 200


def test_argon2_parameters_are_configurable_but_not_below_owasp(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, argon2_time_cost=2, argon2_memory_cost=19456, argon2_parallelism=1)
    assert (settings.argon2_time_cost, settings.argon2_memory_cost) == (2, 19456)
    weak_settings: list[dict[str, Any]] = [
        {"argon2_time_cost": 1}, {"argon2_memory_cost": 8192}, {"argon2_parallelism": 0}]
    for weak in weak_settings:
        with pytest.raises(ConfigError):
            make_settings(tmp_path, **weak)
    hasher = password_hasher(time_cost=2, memory_cost=19456, parallelism=1)
    assert hasher.hash(PASSWORD).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
