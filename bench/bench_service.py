"""The token service under load, side by side with its floor, in one run.

Started on this machine, each as a process of its own, all under uvicorn with the options
``jwtwarden serve`` uses (httptools, uvloop, no access log):

- **minimal**: ``bench/minimal_app.py``, a FastAPI app doing one SQLite WAL transaction and one
  ES256 signature per refresh and nothing else (no family lock, reuse detection, row MACs,
  grace window or deny list): the floor;
- **sqlite**: ``jwtwarden serve`` on its embedded SQLite;
- **postgres**: ``jwtwarden serve`` on a fresh PostgreSQL database (``--pg URL``);
- **sqlite-2w**: ``jwtwarden serve --workers 2`` on SQLite.

Each measurement is ``bench/loadgen.py`` in its own process: closed-loop connections, latency
taken per request (no synthetic samples). A refresh connection follows its own chain of refresh
tokens, seeded (trusted-backend sessions, no argon2 cost) before the timed window, so no request
is a reuse. Rounds are interleaved; the table shows the median round. The load generator shares
the cores with the servers: absolute numbers are pessimistic, the ratios are the result.

    python bench/bench_service.py [--duration 5] [--rounds 3] [--connections 16] [--pg URL | --no-pg]

Goals (issue #12, 2 cores): refresh on SQLite >= 0.7x minimal, p99 <= 50 ms, no errors;
PostgreSQL >= 0.6x SQLite; with a login storm beside it, refresh p99 <= 100 ms and logins
answered (200) or refused with 503 + Retry-After, never left waiting without bound;
userinfo with 2 workers >= 1.4x one; refresh with 2 workers on SQLite no slower than one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
PASSWORD = "bench password, long enough"  # noqa: S105 - a throwaway user of a temporary service
USER = "bench"
STORM_CONNECTIONS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(args: list[str], env: dict[str, str], health: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[:4]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{args} did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def loadgen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HERE / "loadgen.py"), *args],  # noqa: S603
                            stdout=subprocess.PIPE, text=True)


def result_of(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode})")
    data: dict[str, Any] = json.loads(out)
    return data


# ---- the servers ---------------------------------------------------------------------------------


@dataclass
class Service:
    """One ``jwtwarden serve`` with its data, a user and a trusted backend for seeding chains."""

    name: str
    url: str
    env: dict[str, str]
    backend: tuple[str, str] = ("", "")
    access: str = ""

    def chains(self, count: int, path: Path) -> Path:
        with httpx.Client(base_url=self.url, auth=self.backend, timeout=30) as client:
            tokens = []
            for _ in range(count):
                response = client.post("/v1/sessions", json={"subject": f"bench-{secrets.token_hex(4)}"})
                response.raise_for_status()
                tokens.append(response.json()["refresh_token"])
        path.write_text("\n".join(tokens) + "\n")
        return path


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return subprocess.run([sys.executable, "-m", "jwtwarden", *args], env=env, input=stdin,  # noqa: S603
                          capture_output=True, text=True, check=True).stdout


def prepare_service(name: str, workdir: Path, port: int, database_url: str | None) -> Service:
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWTWARDEN_")}
    env |= {"JWTWARDEN_DATA_DIR": str(workdir / name / "data"), "JWTWARDEN_ISSUER": url,
            "JWTWARDEN_AUDIENCE": "api", "JWTWARDEN_GC_INTERVAL": "0",
            "JWTWARDEN_KEK": cli(dict(os.environ), "config", "gen-kek").strip()}
    if database_url:
        env["JWTWARDEN_DATABASE_URL"] = database_url
    for user in (USER, *(f"{USER}{i}" for i in range(STORM_CONNECTIONS))):
        cli(env, "users", "add", user, stdin=PASSWORD + "\n")
    fields = dict(line.split("=", 1) for line in cli(
        env, "clients", "add", "bench-backend", "--permission", "sessions").splitlines() if "=" in line)
    return Service(name, url, env, (fields["client_id"], fields["client_secret"]))


def serve_args(port: int, workers: int) -> list[str]:
    args = [sys.executable, "-m", "jwtwarden", "serve", "--port", str(port), "--log-level", "warning"]
    return args + (["--workers", str(workers)] if workers != 1 else [])


def supports_workers() -> bool:
    return "--workers" in subprocess.run([sys.executable, "-m", "jwtwarden", "serve", "--help"],
                                         capture_output=True, text=True, check=False).stdout


class PostgresDatabase:
    """A fresh database on the server at ``url``, dropped afterwards."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.admin = sa.make_url(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        self.name = f"jwtwarden_bench_{secrets.token_hex(4)}"

    async def _run(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(user=self.admin.username or "postgres", host=self.admin.host,
                                     port=self.admin.port or 5432, database=self.admin.database or "postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def __enter__(self) -> str:
        asyncio.run(self._run(f'CREATE DATABASE "{self.name}"'))
        user = self.admin.username or "postgres"
        return f"postgresql://{user}@{self.admin.host}:{self.admin.port or 5432}/{self.name}"

    def __exit__(self, *_: object) -> None:
        asyncio.run(self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


# ---- the measurements ----------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    measure: Callable[[Path], dict[str, Any]]
    rounds: list[dict[str, Any]] = field(default_factory=list)


def refresh(service: Service, args: argparse.Namespace, path: str = "/v1/auth/refresh") -> Callable[[Path], dict[str, Any]]:
    def measure(workdir: Path) -> dict[str, Any]:
        tokens = service.chains(args.connections, workdir / f"{service.name}.tokens")
        return result_of(loadgen(service.url + path, "--mode", "refresh", "--tokens", str(tokens),
                                 "--duration", str(args.duration), "--connections", str(args.connections)))
    return measure


def refresh_with_storm(service: Service, args: argparse.Namespace) -> Callable[[Path], dict[str, Any]]:
    # a user per connection: concurrent attempts at one account are limited (issue #9)
    login = json.dumps({"username": USER + "{i}", "password": PASSWORD})

    def measure(workdir: Path) -> dict[str, Any]:
        tokens = service.chains(args.connections, workdir / f"{service.name}.tokens")
        storm = loadgen(service.url + "/v1/auth/login", "--mode", "post", "--body", login,
                        "--duration", str(args.duration + 1), "--connections", str(STORM_CONNECTIONS))
        time.sleep(0.5)  # the storm is on before the refresh window opens
        result = result_of(loadgen(service.url + "/v1/auth/refresh", "--mode", "refresh", "--tokens",
                                   str(tokens), "--duration", str(args.duration),
                                   "--connections", str(args.connections)))
        logins = result_of(storm)
        result["logins"] = {"answered": logins["requests"], "p99_ms": logins["p99_ms"],
                            "max_ms": logins["max_ms"], "refused": logins["statuses"]}
        return result
    return measure


def userinfo(service: Service, args: argparse.Namespace) -> Callable[[Path], dict[str, Any]]:
    def measure(_workdir: Path) -> dict[str, Any]:
        return result_of(loadgen(service.url + "/v1/auth/userinfo", "--header",
                                 f"Authorization: Bearer {service.access}", "--duration", str(args.duration),
                                 "--connections", str(args.connections)))
    return measure


def run(args: argparse.Namespace) -> list[Scenario]:
    workdir = Path(tempfile.mkdtemp(prefix="jwtwarden-bench-"))
    scenarios: list[Scenario] = []
    try:
        with ExitStack() as stack:
            minimal_port = free_port()
            stack.enter_context(process(
                [sys.executable, str(HERE / "minimal_app.py"), str(minimal_port), str(workdir / "minimal.db"),
                 str(workdir / "minimal.tokens"), str(args.connections * args.rounds)],
                dict(os.environ), f"http://127.0.0.1:{minimal_port}/docs", workdir / "minimal.log"))
            minimal_tokens = (workdir / "minimal.tokens").read_text().split()

            def minimal(_workdir: Path) -> dict[str, Any]:
                chunk = [minimal_tokens.pop() for _ in range(args.connections)]
                path = workdir / "minimal.round"
                path.write_text("\n".join(chunk) + "\n")
                return result_of(loadgen(f"http://127.0.0.1:{minimal_port}/refresh", "--mode", "refresh",
                                         "--tokens", str(path), "--duration", str(args.duration),
                                         "--connections", str(args.connections)))

            services: dict[str, Service] = {}
            plan: list[tuple[str, str | None, int]] = [("sqlite", None, 1)]
            if args.pg:
                plan.append(("postgres", stack.enter_context(PostgresDatabase(args.pg)), 1))
            if supports_workers():
                plan.append(("sqlite-2w", None, 2))
            else:
                print("jwtwarden serve has no --workers: the 2-worker rows are left out", file=sys.stderr)
            for name, database_url, workers in plan:
                port = free_port()
                service = prepare_service(name, workdir, port, database_url)
                stack.enter_context(process(serve_args(port, workers), service.env, service.url + "/healthz",
                                            workdir / f"{name}.log"))
                response = httpx.post(service.url + "/v1/auth/login", json={"username": USER, "password": PASSWORD},
                                      timeout=30)
                response.raise_for_status()
                service.access = response.json()["access_token"]
                services[name] = service

            scenarios.append(Scenario("refresh, minimal app (floor)", minimal))
            scenarios.append(Scenario("refresh, SQLite", refresh(services["sqlite"], args)))
            if "postgres" in services:
                scenarios.append(Scenario("refresh, PostgreSQL", refresh(services["postgres"], args)))
            scenarios.append(Scenario("refresh, SQLite, login storm beside it",
                                      refresh_with_storm(services["sqlite"], args)))
            scenarios.append(Scenario("userinfo, 1 worker", userinfo(services["sqlite"], args)))
            if "sqlite-2w" in services:
                scenarios.append(Scenario("refresh, SQLite, 2 workers", refresh(services["sqlite-2w"], args)))
                scenarios.append(Scenario("userinfo, 2 workers", userinfo(services["sqlite-2w"], args)))
            for number in range(args.rounds):
                order = scenarios[:]
                if number % 2:
                    order.reverse()
                for scenario in order:
                    result = scenario.measure(workdir)
                    scenario.rounds.append(result)
                    print(f"round {number + 1}: {scenario.name:40s} {result['rps']:7.0f}/s  "
                          f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  "
                          f"errors {result['errors']}"
                          + (f"  logins {result['logins']}" if "logins" in result else ""),
                          file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return scenarios


def median_round(scenario: Scenario) -> dict[str, Any]:
    ordered = sorted(scenario.rounds, key=lambda r: r["rps"])
    return ordered[len(ordered) // 2]


def report(scenarios: list[Scenario], args: argparse.Namespace) -> None:
    by_name = {s.name: median_round(s) for s in scenarios}

    def rps(name: str) -> float:
        return float(by_name[name]["rps"]) if name in by_name else float("nan")

    floor = rps("refresh, minimal app (floor)")
    sqlite = rps("refresh, SQLite")
    print()
    print(f"{args.connections} connections, {args.duration} s per measurement, median of {args.rounds} "
          f"interleaved rounds; {os.cpu_count()} CPUs shared by the load generator and the servers")
    print()
    print("| measurement | requests/s | p50 ms | p99 ms | errors | ratio |")
    print("|---|---:|---:|---:|---:|---|")
    ratios = {
        "refresh, SQLite": ("minimal", floor),
        "refresh, PostgreSQL": ("SQLite", sqlite),
        "refresh, SQLite, login storm beside it": ("SQLite alone", sqlite),
        "refresh, SQLite, 2 workers": ("1 worker", sqlite),
        "userinfo, 2 workers": ("1 worker", rps("userinfo, 1 worker")),
    }
    for scenario in scenarios:
        r = by_name[scenario.name]
        errors = sum(x["errors"] for x in scenario.rounds)
        label, base = ratios.get(scenario.name, ("", float("nan")))
        ratio = f"{r['rps'] / base:.2f}× {label}" if label else ""
        print(f"| {scenario.name} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {errors} | {ratio} |")
    storm = by_name.get("refresh, SQLite, login storm beside it", {}).get("logins")
    if storm:
        print(f"\nlogin storm ({STORM_CONNECTIONS} connections, median round): {storm['answered']} answers, "
              f"p99 {storm['p99_ms']:.0f} ms, max {storm['max_ms']:.0f} ms, not 200: {storm['refused'] or 'none'}")
    print()

    def goal(text: str, ok: bool) -> None:
        print(f"{'met   ' if ok else 'MISSED'} {text}")

    sq = by_name["refresh, SQLite"]
    goal(f"refresh SQLite >= 0.7x minimal: {sqlite / floor:.2f}x", sqlite / floor >= 0.7)
    goal(f"refresh SQLite p99 <= 50 ms: {sq['p99_ms']:.1f} ms", sq["p99_ms"] <= 50)
    goal(f"refresh without errors: {sum(x['errors'] for s in scenarios for x in s.rounds if 'refresh' in s.name)}",
         all(x["errors"] == 0 for s in scenarios for x in s.rounds if s.name.startswith("refresh, ")))
    if "refresh, PostgreSQL" in by_name:
        goal(f"refresh PostgreSQL >= 0.6x SQLite: {rps('refresh, PostgreSQL') / sqlite:.2f}x",
             rps("refresh, PostgreSQL") / sqlite >= 0.6)
    storm_row = by_name["refresh, SQLite, login storm beside it"]
    goal(f"refresh p99 with a login storm <= 100 ms: {storm_row['p99_ms']:.1f} ms", storm_row["p99_ms"] <= 100)
    if "userinfo, 2 workers" in by_name:
        factor = rps("userinfo, 2 workers") / rps("userinfo, 1 worker")
        goal(f"userinfo 2 workers >= 1.4x one: {factor:.2f}x", factor >= 1.4)
        factor = rps("refresh, SQLite, 2 workers") / sqlite
        goal(f"refresh SQLite 2 workers no slower than one: {factor:.2f}x", factor >= 0.95)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server to create a fresh database on")
    parser.add_argument("--no-pg", dest="pg", action="store_const", const=None)
    args = parser.parse_args(argv)
    scenarios = run(args)
    report(scenarios, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
