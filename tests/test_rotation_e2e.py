"""End to end: the token service, a FastAPI and a Flask resource server, as processes.

Keys rotate twice under continuous traffic without a single failed request; a logout is
refused by both resource servers within a second; an emergency key revocation is refused
within the resource servers' refetch cooldown.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jwtwarden import decode_unverified
from tests.servicekit import PASSWORD, TEST_KEK, ServerProcess, add_user, free_port, server_env

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    service: ServerProcess
    resources: dict[str, str]  # name -> base URL
    env: dict[str, str]


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)  # waiting for a process to listen
    raise TimeoutError(url)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    env = server_env(tmp_path, JWTWARDEN_KEK=TEST_KEK, JWTWARDEN_JWKS_MAX_AGE="5")
    service = ServerProcess(env, free_port())
    service.env["JWTWARDEN_ISSUER"] = service.url
    service.start()
    add_user(env)
    rs_env = {k: v for k, v in env.items() if not k.startswith("JWTWARDEN_")}
    rs_env.update({
        "JWTWARDEN_JWKS_URL": service.url + "/.well-known/jwks.json",
        "JWTWARDEN_ISSUER": service.url,
        "JWTWARDEN_AUDIENCE": "api",
        "JWTWARDEN_JWKS_MIN_AGE": "1",
        "JWTWARDEN_JWKS_COOLDOWN": "1",
    })
    procs: list[subprocess.Popen[bytes]] = []
    resources: dict[str, str] = {}
    commands = {
        "fastapi": [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "examples"),
                    "fastapi_resource:app", "--port", "{port}", "--log-level", "warning"],
        "flask": [sys.executable, "-m", "flask", "--app", str(ROOT / "examples" / "flask_resource.py"),
                  "run", "--port", "{port}", "--with-threads"],
    }
    try:
        for name, command in commands.items():
            port = free_port()
            log = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen([c.replace("{port}", str(port)) for c in command],
                                        env=rs_env, stdout=out, stderr=subprocess.STDOUT)
            procs.append(proc)
            resources[name] = f"http://127.0.0.1:{port}"
            _wait_http(resources[name] + "/hello", proc, log)
        yield Stack(service, resources, env)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        service.stop()


async def login(client: httpx.AsyncClient, stack: Stack) -> dict[str, str]:
    r = await client.post(stack.service.url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def hello(client: httpx.AsyncClient, base: str, token: str) -> int:
    r = await client.get(base + "/hello", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def cli(stack: Stack, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "jwtwarden", *args], env=stack.env,
                         capture_output=True, check=True)
    return out.stdout.decode()


async def test_two_key_rotations_under_traffic_fail_no_request(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        pair = await login(client, stack)
        statuses: list[int] = []
        kids = {decode_unverified(pair["access_token"]).header["kid"]}
        done = asyncio.Event()

        async def traffic() -> None:
            nonlocal pair
            n = 0
            while not done.is_set():
                if n % 20 == 0:  # a fresh access token now and then: signed by the current key
                    r = await client.post(stack.service.url + "/v1/auth/refresh",
                                          json={"refresh_token": pair["refresh_token"]})
                    assert r.status_code == 200, r.text
                    pair = r.json()
                    kids.add(decode_unverified(pair["access_token"]).header["kid"])
                statuses.extend([await hello(client, base, pair["access_token"])
                                 for base in stack.resources.values()])
                n += 1

        load = asyncio.create_task(traffic())
        for _ in range(2):
            before = len(kids)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(cli, stack, "keys", "rotate")
            deadline = time.monotonic() + 20  # published now, signing after JWKS max-age (5 s)
            while len(kids) == before:
                assert time.monotonic() < deadline, "the new key never started signing"
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        done.set()
        await load
    assert len(kids) == 3
    assert len(statuses) > 100
    assert [s for s in statuses if s != 200] == []


async def test_a_logout_is_refused_by_both_resource_servers_within_a_second(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        pair = await login(client, stack)
        for base in stack.resources.values():
            assert await hello(client, base, pair["access_token"]) == 200
        out = await client.post(stack.service.url + "/v1/auth/logout",
                                headers={"Authorization": f"Bearer {pair['access_token']}"})
        assert out.status_code == 204
        start = time.monotonic()
        pending = set(stack.resources)
        while pending:
            for name in list(pending):
                if await hello(client, stack.resources[name], pair["access_token"]) == 401:
                    pending.discard(name)
            assert time.monotonic() - start < 1.0, f"still accepted by {pending}"
            await asyncio.sleep(0.01)


async def test_an_emergency_key_revocation_is_refused_within_the_cooldown(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        pair = await login(client, stack)
        kid = decode_unverified(pair["access_token"]).header["kid"]
        for base in stack.resources.values():
            assert await hello(client, base, pair["access_token"]) == 200
        await asyncio.to_thread(cli, stack, "keys", "revoke", "--yes", "--", kid)  # a kid may start with "-"
        start = time.monotonic()
        pending = set(stack.resources)
        # the service learns it on its next deny-list poll (1 s); the feed then tells the
        # resource servers at once, whose refetch cooldown is 1 s here
        while pending:
            for name in list(pending):
                if await hello(client, stack.resources[name], pair["access_token"]) == 401:
                    pending.discard(name)
            assert time.monotonic() - start < 3.0, f"still accepted by {pending}"
            await asyncio.sleep(0.02)
        fresh = await login(client, stack)  # the service signs with the replacement at once
        assert decode_unverified(fresh["access_token"]).header["kid"] != kid
        for base in stack.resources.values():
            assert await hello(client, base, fresh["access_token"]) == 200
