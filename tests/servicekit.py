"""Building the token service in tests: settings, state, an ASGI client, a real process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from argon2 import PasswordHasher

from jwtwarden.policy import Clock
from jwtwarden.service.app import ServiceState, build_state, create_app
from jwtwarden.service.config import Settings, load_settings
from jwtwarden.testing import FakeClock
from tests.conftest import NOW

ISSUER = "http://127.0.0.1:8000"
PASSWORD = "correct horse battery"
TEST_KEK = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # 32 bytes 0..31, tests only
# argon2id with test-sized cost: the same code path, a millisecond instead of 130
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    # four hashing threads: tests that block a verification to interleave a password change
    # need a second thread for the change's own hash
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "issuer": ISSUER, "audience": ("api",),
                              "gc_interval": 0, "kek": TEST_KEK, "hash_threads": 4}
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
        await state.close()


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

    def __init__(self, env: dict[str, str], port: int, args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.port = port
        self.args = args  # more `jwtwarden serve` options (--workers 2, --access-log)
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    def start(self, timeout: float = 30.0) -> None:
        log_path = Path(self.env.get("JWTWARDEN_DATA_DIR", ".")).parent / f"serve-{self.port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jwtwarden", "serve", "--port", str(self.port),
                 "--log-level", "warning", *self.args],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jwtwarden serve exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # waiting for a process to listen, not for the clock
        self.stop()
        raise TimeoutError("jwtwarden serve did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            self.proc.wait(10)


def start_together(*servers: ServerProcess) -> None:
    """Start several ``jwtwarden serve`` processes at the same moment (replicas racing their
    start-up on one database); the first failure is raised once all have tried."""
    errors: list[BaseException] = []

    def run(server: ServerProcess) -> None:
        try:
            server.start()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


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
def running_server(env: dict[str, str], port: int | None = None, args: tuple[str, ...] = (),
                   timeout: float = 30.0) -> Iterator[ServerProcess]:
    server = ServerProcess(env, port or free_port(), args)
    server.env.setdefault("JWTWARDEN_ISSUER", server.url)
    server.start(timeout)
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


# ---- helpers of the end-to-end, crash and attack tests (appended) ---------------------------


@asynccontextmanager
async def asgi_service(
    settings: Settings, clock: Clock | None = None
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, ServiceState]]:
    """Like :func:`asgi_client`, also yielding the app, and answering an exception escaping
    the app with the 500 a real server would send (instead of raising it in the test)."""
    app = create_app(settings, clock=clock or FakeClock(NOW), hasher=FAST_HASHER, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            yield app, client, app.state.jwtwarden


def add_client(env: dict[str, str], name: str, *permissions: str) -> tuple[str, str]:
    """``jwtwarden clients add NAME --permission P...`` as an operator would; (id, secret)."""
    args = [sys.executable, "-m", "jwtwarden", "clients", "add", name]
    for permission in permissions:
        args += ["--permission", permission]
    out = subprocess.run(args, env=env, capture_output=True, check=True, text=True)
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return fields["client_id"], fields["client_secret"]


class FamilyRow(NamedTuple):
    """One token family as stored, read behind the service's back."""

    id: str
    revoked_reason: str | None
    generation: int
    tokens: int  # refresh tokens stored for the family
    usable: frozenset[bytes]  # SHA-256 of the refresh tokens a client could still exchange


_FAMILIES_SQL = "SELECT id, revoked_at, revoked_reason, generation, expires_at FROM families"
_TOKENS_SQL = "SELECT family_id, token_hash, used_at, expires_at FROM refresh_tokens"


def read_families(database: Path | str, now: float | None = None) -> dict[str, FamilyRow]:
    """Every family of a SQLite file (opened read-only) or a ``postgresql://`` database.

    Usable = unused and unexpired, in a family neither revoked nor past its absolute
    lifetime (``now`` defaults to the wall clock, the time of a real server).
    """
    now = time.time() if now is None else now
    if isinstance(database, Path):
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        try:
            conn.execute("BEGIN")  # one snapshot for both reads
            fams = conn.execute(_FAMILIES_SQL).fetchall()
            toks = conn.execute(_TOKENS_SQL).fetchall()
        finally:
            conn.close()
    else:
        import asyncpg

        async def fetch() -> tuple[list[Any], list[Any]]:
            pg = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                async with pg.transaction(isolation="repeatable_read", readonly=True):
                    return await pg.fetch(_FAMILIES_SQL), await pg.fetch(_TOKENS_SQL)
            finally:
                await pg.close()

        fams, toks = asyncio.run(fetch())
    alive = {f[0] for f in fams if f[1] is None and now < f[4]}
    usable: dict[str, set[bytes]] = {f[0]: set() for f in fams}
    counts: dict[str, int] = dict.fromkeys(usable, 0)
    for family_id, digest, used_at, expires_at in toks:
        counts[family_id] += 1
        if family_id in alive and used_at is None and now < expires_at:
            usable[family_id].add(bytes(digest))
    return {f[0]: FamilyRow(f[0], f[2], int(f[3]), counts[f[0]], frozenset(usable[f[0]]))
            for f in fams}


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()
