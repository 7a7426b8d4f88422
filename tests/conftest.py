"""Shared fixtures: one key set per algorithm (generated once per session), a fake clock."""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jwtwarden import Issuer, KeySet, Verifier
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.testing import FakeClock

ISS = "https://auth.example.com"
AUD = "api.example.com"
NOW = 1_700_000_000.0
ALL_ALGS = tuple(ALGORITHMS)

_KEYSETS: dict[str, KeySet] = {}


def keyset_for(alg: str) -> KeySet:
    """A private key set for ``alg``, generated once per test session (RSA is slow)."""
    if alg not in _KEYSETS:
        _KEYSETS[alg] = KeySet.generate(alg)
    return _KEYSETS[alg]


def verify_keys(keys: KeySet) -> KeySet:
    """What a verifier holds: the public half, or the secret itself for HMAC."""
    return keys if next(iter(keys)).alg.startswith("HS") else keys.public()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(params=ALL_ALGS)
def alg(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def es256() -> KeySet:
    return keyset_for("ES256")


@pytest.fixture
def make_pair(clock: FakeClock) -> Callable[..., tuple[Issuer, Verifier]]:
    """Build an issuer and a verifier for one algorithm sharing the fake clock."""

    def make(alg: str = "ES256", **verifier_options: Any) -> tuple[Issuer, Verifier]:
        keys = keyset_for(alg)
        issuer = Issuer(keys, issuer=ISS, audience=AUD, clock=clock)
        options: dict[str, Any] = {"issuer": ISS, "audience": AUD, "algorithms": [alg]}
        options.update(verifier_options)
        return issuer, Verifier(verify_keys(keys), clock=clock, **options)

    return make


# ---- real services (PostgreSQL, Redis, Chromium) ---------------------------------------------

REQUIRE_SERVICES = os.environ.get("JWTWARDEN_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "JWTWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_TEST_URL = os.environ.get("JWTWARDEN_TEST_REDIS", "redis://127.0.0.1:6379/15")


def require_service(available: bool, what: str) -> None:
    """Skip when ``what`` is missing, or fail when JWTWARDEN_REQUIRE_SERVICES=1 (CI)."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is not available and JWTWARDEN_REQUIRE_SERVICES=1")
    pytest.skip(f"{what} is not available (set it up, or see .ci/run)")


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@functools.cache
def postgres_available() -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def create_postgres_database() -> str:
    """A new, empty database on the test server; returns its URL (drop it when done)."""
    import asyncpg

    name = f"jwtwarden_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]

    async def drop() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    require_service(postgres_available(), "PostgreSQL at " + POSTGRES_ADMIN_URL)
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on the embedded default (SQLite) and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jwtwarden.db'}"
        return
    yield request.getfixturevalue("postgres_url")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
