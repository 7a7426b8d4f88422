"""Building the token service in tests: settings, state, an ASGI client, a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

from jwtwarden.config import Settings, load_settings
from jwtwarden.policy import Clock
from jwtwarden.testing import FakeClock
from jwtwarden.web.service import ServiceState, build_state, create_app
from tests.conftest import NOW

ISSUER = "http://127.0.0.1:8000"
PASSWORD = "correct horse battery"
TEST_KEK = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # 32 bytes 0..31, tests only
# argon2id with test-sized cost: the same code path, a millisecond instead of 130
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "issuer": ISSUER, "audience": ("api",),
                              "gc_interval": 0, "kek": TEST_KEK}
    if database_url is not None:
        values["database_url"] = database_url
    values.update(overrides)
    return load_settings({}, **values)


@asynccontextmanager
async def service_state(settings: Settings, clock: Clock | None = None) -> AsyncIterator[ServiceState]:
    state = await build_state(settings, clock=clock or FakeClock(NOW), hasher=FAST_HASHER)
    try:
        yield state
    finally:
        await state.db.dispose()


@asynccontextmanager
async def asgi_client(
    settings: Settings, clock: Clock | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceState]]:
    """The app with its lifespan run, and an httpx client talking to it in process."""
    app = create_app(settings, clock=clock or FakeClock(NOW), hasher=FAST_HASHER, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            yield client, app.state.jwtwarden


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``jwtwarden serve`` as a real process on loopback."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jwtwarden", "serve", "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"jwtwarden serve exited: {err[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # waiting for a process to listen, not for the clock
        raise TimeoutError("jwtwarden serve did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWTWARDEN_")}
    env.update({
        "JWTWARDEN_DATA_DIR": str(tmp_path / "data"),
        "JWTWARDEN_AUDIENCE": "api",
        "JWTWARDEN_GC_INTERVAL": "0",
    })
    env.update(extra)
    return env


@contextmanager
def running_server(env: dict[str, str], port: int | None = None) -> Iterator[ServerProcess]:
    server = ServerProcess(env, port or free_port())
    server.env.setdefault("JWTWARDEN_ISSUER", server.url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def add_user(env: dict[str, str], name: str = "alice", password: str = PASSWORD, scope: str = "") -> str:
    """Add a user through the CLI, as an operator would; returns its subject id."""
    args = [sys.executable, "-m", "jwtwarden", "users", "add", name]
    if scope:
        args += ["--scope", scope]
    out = subprocess.run(args, env=env, input=(password + "\n").encode(), capture_output=True, check=True)
    return out.stdout.decode().split("subject ")[1].rstrip(")\n")


def tokens(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = json.loads(response.text)
    return data
