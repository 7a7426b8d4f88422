"""What DPoP costs a resource server: Bearer and DPoP requests side by side, in one run.

Two measurements, each printed with the DPoP/Bearer cost ratio:

1. **HTTP**: one Starlette app behind :class:`~jwtwarden.resource.asgi.BearerAuthMiddleware`
   (a :class:`~jwtwarden.resource.server.ResourceServer` with the defaults: verified-token
   cache on, ``dpop="allowed"``, in-memory replay store) in its own uvicorn process (one
   worker). The load comes from this process over ``--connections`` keep-alive connections:
   Bearer requests cycle through ``--tokens`` tokens; DPoP requests carry bound tokens and a
   proof made for that very request (all proofs are made before the clock starts, so the
   client's signing is not counted: every proof is used once, as the replay store demands).
   Rounds are interleaved. The cost is the **server process's CPU time per request** (user +
   system, from ``/proc``), so a slow load generator or a busy machine does not hide it; the
   req/s are shown too, but on a shared machine they measure the client as much as the server.
2. **In process**: ``ResourceServer.aauthenticate`` alone, per call, Bearer (a cached token)
   and DPoP (a new proof per call: one more ECDSA verification, the proof's claims, the
   replay store), to show where the time goes.

    python bench/bench_dpop.py [--rounds 5] [--requests 3000] [--connections 16] [--tokens 100]

This is a measurement, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from jwtwarden import Issuer, Key, KeySet
from jwtwarden.dpop import create_proof

ISS = "https://auth.bench"
AUD = "api.bench"
ROOT = Path(__file__).resolve().parents[1]


def build_server(jwks_file: str, public_url: str) -> Any:
    from jwtwarden.resource.jwks_client import RemoteJWKS
    from jwtwarden.resource.server import ResourceServer
    from jwtwarden.testing import MockJWKS

    keys = KeySet.from_jwks(Path(jwks_file).read_text())
    jwks = RemoteJWKS("https://auth.bench/jwks", algorithms=["ES256"], transport=MockJWKS(keys).transport)
    return ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=None, public_url=public_url)


def app() -> Any:
    """The app of the child process (``uvicorn bench_dpop:app``)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from jwtwarden.resource.asgi import BearerAuthMiddleware, claims_of

    server = build_server(os.environ["BENCH_JWKS"], os.environ["BENCH_PUBLIC_URL"])

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"sub": claims_of(request).sub})

    return Starlette(routes=[Route("/hello", hello)],
                     middleware=[Middleware(BearerAuthMiddleware, server=server)])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(url: str, requests: list[dict[str, str]], connections: int) -> tuple[float, int]:
    """req/s of sending every request once, and how many answers were not 200."""
    queue = list(requests)
    bad = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        async def worker() -> None:
            nonlocal bad
            while queue:
                headers = queue.pop()
                response = await http.get(url, headers=headers)
                bad += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return len(requests) / elapsed, bad


def in_process(keys: KeySet, bearer: list[str], client: Key, bound: str, calls: int) -> tuple[float, float]:
    """µs per aauthenticate call: (Bearer, DPoP)."""
    public_url = "https://api.bench"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(json.dumps(keys.to_jwks(private=True)))
    server = build_server(f.name, public_url)
    os.unlink(f.name)
    url = public_url + "/hello"
    proofs = [create_proof(client, "GET", url, access_token=bound) for _ in range(calls)]

    async def run() -> tuple[float, float]:
        for token in bearer:  # warm: keys fetched, tokens in the verified cache
            await server.aauthenticate(f"Bearer {token}")
        await server.aauthenticate(f"DPoP {bound}", dpop=create_proof(client, "GET", url, access_token=bound),
                                   method="GET", path="/hello")
        started = time.perf_counter()
        for i in range(calls):
            await server.aauthenticate(f"Bearer {bearer[i % len(bearer)]}")
        bearer_us = (time.perf_counter() - started) / calls * 1e6
        started = time.perf_counter()
        for proof in proofs:
            await server.aauthenticate(f"DPoP {bound}", dpop=proof, method="GET", path="/hello")
        dpop_us = (time.perf_counter() - started) / calls * 1e6
        return bearer_us, dpop_us

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()

    keys = KeySet.generate("ES256")
    issuer = Issuer(keys, issuer=ISS, audience=AUD)
    client = Key.generate("ES256")
    bearer = [issuer.issue(subject=f"user{i}") for i in range(args.tokens)]
    bound = issuer.issue(subject="dpop-user", claims={"cnf": {"jkt": client.thumbprint()}})

    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    url = public_url + "/hello"
    with tempfile.TemporaryDirectory() as tmp:
        jwks_file = Path(tmp) / "jwks.json"
        jwks_file.write_text(json.dumps(keys.to_jwks(private=True)))
        env = os.environ | {"BENCH_JWKS": str(jwks_file), "BENCH_PUBLIC_URL": public_url}
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "--factory",
             "bench_dpop:app", "--port", str(port), "--log-level", "warning", "--http", "h11",
             "--loop", "asyncio", "--no-access-log"], env=env)
        try:
            for _ in range(200):
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            results: dict[str, list[float]] = {"bearer": [], "dpop": []}
            cpu: dict[str, list[float]] = {"bearer": [], "dpop": []}
            ratios = []
            failures = 0
            for number in range(args.rounds):
                order = ["bearer", "dpop"]
                random.shuffle(order)
                rates = {}
                for variant in order:
                    if variant == "bearer":
                        requests = [{"Authorization": f"Bearer {bearer[i % len(bearer)]}"}
                                    for i in range(args.requests)]
                    else:
                        requests = [{"Authorization": f"DPoP {bound}",
                                     "DPoP": create_proof(client, "GET", url, access_token=bound)}
                                    for _ in range(args.requests)]
                    before = cpu_seconds(proc.pid)
                    rate, bad = asyncio.run(load(url, requests, args.connections))
                    cpu[variant].append((cpu_seconds(proc.pid) - before) / args.requests * 1e6)
                    failures += bad
                    rates[variant] = rate
                    results[variant].append(rate)
                ratios.append(cpu["dpop"][-1] / cpu["bearer"][-1])
                print(f"round {number + 1}/{args.rounds}: bearer {rates['bearer']:.0f} req/s "
                      f"{cpu['bearer'][-1]:.0f} µs CPU/req, dpop {rates['dpop']:.0f} req/s "
                      f"{cpu['dpop'][-1]:.0f} µs CPU/req", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(10)

    bearer_us, dpop_us = in_process(keys, bearer, client, bound, 2000)
    print(f"\nHTTP: one uvicorn worker, {args.connections} connections, {args.requests} requests "
          f"per variant and round, {args.rounds} rounds (medians)\n")
    print("| variant | server CPU µs/request | cost ÷ Bearer | req/s |")
    print("|---|---:|---:|---:|")
    print(f"| Bearer | {statistics.median(cpu['bearer']):.0f} | 1.00 "
          f"| {statistics.median(results['bearer']):.0f} |")
    print(f"| DPoP | {statistics.median(cpu['dpop']):.0f} | {statistics.median(ratios):.2f} "
          f"| {statistics.median(results['dpop']):.0f} |")
    print(f"\nnon-200 answers: {failures}")
    print("\nIn process, ResourceServer.aauthenticate per call:\n")
    print("| variant | µs/call | cost ÷ Bearer |")
    print("|---|---:|---:|")
    print(f"| Bearer (cached token) | {bearer_us:.1f} | 1.00 |")
    print(f"| DPoP (new proof each call) | {dpop_us:.1f} | {dpop_us / bearer_us:.2f} |")


if __name__ == "__main__":
    main()
