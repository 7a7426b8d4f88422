"""Scale-out numbers: refresh on PostgreSQL vs SQLite, with few or a million stored sessions,
and the deny-list check through Redis vs the in-process set.

In one run, in process (no HTTP, so the load generator does not compete for the CPU):

1. refresh throughput and p50/p99 latency, ``--concurrency`` tasks each rotating its own
   family, on SQLite and on PostgreSQL;
2. refresh latency with 10^3 and with ``--big`` (default 10^6) stored sessions on each
   database: the index on the token hash keeps it flat (target: within 1.2x);
3. one deny-list check: the in-process set vs a Redis MGET round trip.

    python bench/bench_scaleout.py [--big 1000000] [--seconds 5] [--concurrency 8]

Needs PostgreSQL (JWTWARDEN_BENCH_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test,
a scratch database is created and dropped) and Redis (JWTWARDEN_BENCH_REDIS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from argon2 import PasswordHasher

from jwtwarden.service.app import ServiceState, build_state
from jwtwarden.service.config import load_settings
from jwtwarden.service.storage.schema import families, refresh_tokens

PG_ADMIN = os.environ.get("JWTWARDEN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("JWTWARDEN_BENCH_REDIS", "redis://127.0.0.1:6379/14")
KEK = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def make_pg() -> str:
    name = f"jwtwarden_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def drop_pg(url: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


async def seed(state: ServiceState, count: int) -> None:
    """``count`` live sessions (one family + one refresh token each), inserted in bulk."""
    now = time.time()
    batch = 20_000
    for start in range(0, count, batch):
        n = min(batch, count - start)
        fams = [{"id": secrets.token_urlsafe(16), "subject": f"user-{start + i}", "user_id": None,
                 "scope": "", "claims": None, "created_at": now, "expires_at": now + 86_400 * 30,
                 "generation": 0, "last_used_at": now, "revoked_at": None, "revoked_reason": None,
                 "last_access_jti": None, "last_access_exp": None, "client_id": None} for i in range(n)]
        toks = [{"token_hash": secrets.token_bytes(32), "family_id": f["id"], "generation": 0,
                 "created_at": now, "expires_at": now + 86_400 * 7, "used_at": None} for f in fams]
        macs = state.session_keys.rows  # rows as the service writes them (issue #16)
        fam_rows: list[dict[str, Any]] = [{**f, "mac": macs.family(f)} for f in fams]
        tok_rows: list[dict[str, Any]] = [{**t, "mac": macs.token(t)} for t in toks]
        async with state.db.transaction() as conn:
            await conn.execute(families.insert(), fam_rows)
            await conn.execute(refresh_tokens.insert(), tok_rows)
    if state.db.dialect == "postgresql":
        async with state.db.transaction() as conn:
            await conn.execute(sa.text("ANALYZE"))


async def refresh_run(state: ServiceState, seconds: float, concurrency: int) -> dict[str, float]:
    """Each task rotates its own family as fast as it can; returns req/s, p50, p99 (ms)."""
    user = f"bench-{uuid.uuid4().hex[:6]}"
    await state.accounts.add_user(user, "bench password 123")
    tokens = [(await state.sessions.login(user, "bench password 123")).refresh_token
              for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        token = tokens[i]
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                token = (await state.sessions.refresh(token)).refresh_token
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
                return
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


async def one_database(url: str | None, big: int, seconds: float, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({}, data_dir=Path(tmp), kek=KEK, database_url=url, gc_interval=0)
        state = await build_state(settings, hasher=HASHER)
        try:
            await seed(state, 1000)
            small = await refresh_run(state, seconds, concurrency)
            print(f"  seeded 10^3: {small}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            await seed(state, big - 1000)
            print(f"  seeded {big} sessions in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            large = await refresh_run(state, seconds, concurrency)
            print(f"  seeded {big}: {large}", file=sys.stderr, flush=True)
            return {"small": small, "large": large}
        finally:
            await state.close()


async def denylist_costs(rounds: int = 20_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({}, data_dir=Path(tmp), kek=KEK, redis_url=REDIS, gc_interval=0)
        state = await build_state(settings, hasher=HASHER)
        try:
            assert state.denylist.redis is not None
            await asyncio.wait_for(state.denylist.redis.synced.wait(), 10)
            claims = {"jti": "j" * 22, "sid": "s" * 22, "sub": "user-1", "iat": time.time()}
            t0 = time.perf_counter()
            for _ in range(rounds):
                state.denylist.set.check(claims)
            local = (time.perf_counter() - t0) / rounds * 1e6
            t0 = time.perf_counter()
            for _ in range(rounds // 10):
                await state.denylist.check(claims)
            healthy = (time.perf_counter() - t0) / (rounds // 10) * 1e6
            t0 = time.perf_counter()
            for _ in range(rounds // 10):
                await state.denylist.redis.check_remote(claims)
            remote = (time.perf_counter() - t0) / (rounds // 10) * 1e6
            return {"set": local, "denylist.check (set, Redis in sync)": healthy, "Redis MGET": remote}
        finally:
            await state.close()


async def main_async(args: argparse.Namespace) -> int:
    results: dict[str, dict[str, Any]] = {}
    print("SQLite ...", file=sys.stderr, flush=True)
    results["SQLite"] = await one_database(None, args.big, args.seconds, args.concurrency)
    url = await make_pg()
    try:
        print("PostgreSQL ...", file=sys.stderr, flush=True)
        results["PostgreSQL"] = await one_database(url, args.big, args.seconds, args.concurrency)
    finally:
        await drop_pg(url)
    costs = await denylist_costs()
    print()
    print(f"Refresh, {args.concurrency} concurrent tasks, {args.seconds:g} s per cell, in process:")
    print()
    print("| database | stored sessions | refresh/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for db, cells in results.items():
        for label, cell in (("10^3", cells["small"]), (f"{args.big:,}", cells["large"])):
            print(f"| {db} | {label} | {cell['rps']:.0f} | {cell['p50']:.2f} | {cell['p99']:.2f} | {cell['errors']:.0f} |")
    print()
    for db, cells in results.items():
        ratio = cells["large"]["p50"] / cells["small"]["p50"]
        print(f"{db}: p50 latency with {args.big:,} sessions / with 10^3 = {ratio:.2f}x (target <= 1.2x)")
    print()
    print("Deny-list check per request (µs):")
    print()
    print("| check | µs |")
    print("|---|---:|")
    for name, value in costs.items():
        print(f"| {name} | {value:.2f} |")
    print(f"\nRedis round trip / in-process set: {costs['Redis MGET'] / costs['set']:.0f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
