"""Requests/s of one resource-server endpoint: unprotected, jwtwarden, and PyJWT + PyJWKClient.

Every variant is the same Starlette app (``GET /hello`` answering a small JSON document) in
its own uvicorn process (one worker, h11, asyncio loop), protected by a pure ASGI middleware:

- ``none``: no authentication at all (the ceiling);
- ``jwtwarden``: :class:`~jwtwarden.resource.asgi.BearerAuthMiddleware` with a
  :class:`~jwtwarden.resource.server.ResourceServer` (remote JWKS, revocation feed on, ``at+jwt``
  required, verified-token cache on: the defaults);
- ``jwtwarden-nocache``: the same with ``verified_cache_size=0`` (every request runs ECDSA);
- ``pyjwt``: PyJWT's ``PyJWKClient.get_signing_key_from_jwt`` + ``jwt.decode`` with ``iss``,
  ``aud`` and ``exp`` required, the way its documentation shows.

A separate uvicorn process plays the token service (JWKS + revocation feed, from
:mod:`jwtwarden.testing`). The load comes from ``wrk`` when it is installed (one thread,
``--connections`` connections, cycling through ``--tokens`` distinct ES256 tokens: one per
user, each reused as real clients do), otherwise from an httpx client in its own process.
Rounds are interleaved (variant order shuffled per round) because the machine is shared;
the table shows the median req/s, its ratio to the unprotected endpoint's median, and the
median of the per-round ratios (each round's variants run back to back, so that ratio is the
steadier one on a busy machine). Every answer must be a
200: a run with any other status is reported as failed.

    python bench/bench_resource.py [--rounds 5] [--seconds 5] [--connections 32] [--tokens 100]

This is a measurement, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from jwtwarden import Issuer, KeySet

ISS = "https://auth.bench"
AUD = "api.bench"
VARIANTS = ("none", "jwtwarden", "jwtwarden-nocache", "pyjwt")
ROOT = Path(__file__).resolve().parents[1]


# ---- the servers (run in child processes) --------------------------------------------------------


def build_app(variant: str, auth_url: str) -> Any:
    """The Starlette app of one variant."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    if variant == "none":
        async def hello_open(request: Request) -> JSONResponse:
            return JSONResponse({"sub": "anonymous"})

        return Starlette(routes=[Route("/hello", hello_open)])

    jwks_url = f"{auth_url}/.well-known/jwks.json"
    if variant.startswith("jwtwarden"):
        from jwtwarden.resource.asgi import BearerAuthMiddleware, claims_of
        from jwtwarden.resource.server import ResourceServer

        server = ResourceServer(jwks_url, issuer=ISS, audience=AUD,
                                verified_cache_size=0 if variant.endswith("nocache") else 4096)

        async def hello_jwtwarden(request: Request) -> JSONResponse:
            return JSONResponse({"sub": claims_of(request).sub})

        return Starlette(routes=[Route("/hello", hello_jwtwarden)],
                         middleware=[Middleware(BearerAuthMiddleware, server=server)])

    import jwt

    jwks_client = jwt.PyJWKClient(jwks_url)

    class PyJWTMiddleware:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            try:
                if not header.lower().startswith("bearer "):
                    raise jwt.InvalidTokenError("no bearer token")
                token = header[7:]
                key = jwks_client.get_signing_key_from_jwt(token)
                scope["claims"] = jwt.decode(token, key.key, algorithms=["ES256"], audience=AUD,
                                             issuer=ISS, options={"require": ["exp", "iss", "aud"]})
            except jwt.PyJWTError:
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"www-authenticate", b'Bearer error="invalid_token"')]})
                await send({"type": "http.response.body", "body": b""})
                return
            await self.app(scope, receive, send)

    async def hello_pyjwt(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.scope["claims"]["sub"]})

    return Starlette(routes=[Route("/hello", hello_pyjwt)], middleware=[Middleware(PyJWTMiddleware)])


def build_auth(jwks_path: str) -> Any:
    """The token service's public side: JWKS and revocation feed."""
    from jwtwarden.testing import MockJWKS, MockRevocationFeed

    jwks = MockJWKS(json.loads(Path(jwks_path).read_text()))
    feed = MockRevocationFeed()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await (feed if scope["path"] == "/v1/revocations" else jwks)(scope, receive, send)

    return app


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    app = build_auth(args.jwks) if args.serve == "auth" else build_app(args.serve, args.auth)
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False,
                log_level="critical" if args.serve == "auth" else "error",
                http="h11", loop="asyncio", lifespan="on" if args.serve == "auth" else "auto",
                timeout_graceful_shutdown=1)  # long polls are held open: do not wait for them


# ---- load -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(variant: str, port: int, **extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--serve", variant, "--port", str(port)]
    for name, value in extra.items():
        command += [f"--{name}", value]
    return subprocess.Popen(command, cwd=ROOT)  # noqa: S603 - our own script


def wait_until_up(url: str, headers: dict[str, str], expect: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url, headers=headers, timeout=5).status_code
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        if status != expect:
            raise SystemExit(f"{url} answered {status}, expected {expect}")
        return
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, tokens: list[str], seconds: int, connections: int) -> tuple[float, int]:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    with script:
        script.write("tokens = {" + ",".join(json.dumps(t) for t in tokens) + "}\n"
                     "i = 0\n"
                     "request = function()\n"
                     "  i = i % #tokens + 1\n"
                     "  return wrk.format('GET', nil, {['Authorization'] = 'Bearer ' .. tokens[i]})\n"
                     "end\n")
    try:
        output = subprocess.run(  # noqa: S603
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, seconds)}s", "-s", script.name, url],  # noqa: S607
            capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", output)
    failures = int(bad.group(1)) if bad else 0
    if errors:
        failures += sum(int(errors.group(n)) for n in range(1, 5))
    return rate, failures


def httpx_load(url: str, tokens: list[str], seconds: int, connections: int) -> tuple[float, int]:
    async def run() -> tuple[float, int]:
        done = failures = 0
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            async def worker(offset: int) -> None:
                nonlocal done, failures
                i = offset
                while time.monotonic() < deadline:
                    i = (i + 1) % len(tokens)
                    response = await client.get(url, headers={"Authorization": f"Bearer {tokens[i]}"})
                    done += 1
                    failures += response.status_code != 200

            started = time.monotonic()
            await asyncio.gather(*(worker(n) for n in range(connections)))
            return done / (time.monotonic() - started), failures

    return asyncio.run(run())


# ---- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=100, help="distinct tokens (users)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--auth", help=argparse.SUPPRESS)
    parser.add_argument("--jwks", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    keys = KeySet.generate("ES256")
    issuer = Issuer(keys, issuer=ISS, audience=AUD)
    tokens = [issuer.issue(subject=f"user-{n}") for n in range(args.tokens)]
    load = wrk if shutil.which("wrk") else httpx_load
    with tempfile.TemporaryDirectory() as tmp:
        jwks_path = Path(tmp) / "jwks.json"
        jwks_path.write_text(json.dumps(keys.public().to_jwks()))
        auth_port = free_port()
        processes = [start("auth", auth_port, jwks=str(jwks_path))]
        auth_url = f"http://127.0.0.1:{auth_port}"
        urls: dict[str, str] = {}
        try:
            wait_until_up(f"{auth_url}/.well-known/jwks.json", {}, 200)
            for variant in args.variants:
                port = free_port()
                processes.append(start(variant, port, auth=auth_url))
                urls[variant] = f"http://127.0.0.1:{port}/hello"
            good = {"Authorization": f"Bearer {tokens[0]}"}
            for variant, url in urls.items():
                wait_until_up(url, good, 200)
                if variant != "none":
                    wait_until_up(url, {}, 401)
            for url in urls.values():  # warm-up: key fetch, feed snapshot, caches
                load(url, tokens, 1, args.connections)
            rates: dict[str, list[float]] = {v: [] for v in urls}
            ratios: dict[str, list[float]] = {v: [] for v in urls}
            failed: dict[str, int] = dict.fromkeys(urls, 0)
            for round_number in range(args.rounds):
                order = list(urls)
                random.shuffle(order)
                for variant in order:
                    rate, failures = load(urls[variant], tokens, args.seconds, args.connections)
                    rates[variant].append(rate)
                    failed[variant] += failures
                if "none" in rates:
                    for variant in urls:
                        ratios[variant].append(rates[variant][-1] / rates["none"][-1])
                print(f"round {round_number + 1}/{args.rounds}: "
                      + ", ".join(f"{v} {rates[v][-1]:.0f}" for v in urls), file=sys.stderr)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    ceiling = statistics.median(rates["none"]) if "none" in rates else float("nan")
    print(f"\nload: {load.__name__}, {args.connections} connections, {args.tokens} tokens, "
          f"{args.rounds} rounds x {args.seconds:g} s, medians")
    print("| variant | req/s | ÷ unprotected | per-round ÷ unprotected | non-200 |")
    print("|---|---:|---:|---:|---:|")
    for variant in urls:
        median = statistics.median(rates[variant])
        paired = statistics.median(ratios[variant]) if ratios[variant] else float("nan")
        print(f"| {variant} | {median:.0f} | {median / ceiling:.2f} | {paired:.2f} "
              f"| {failed[variant]} |")


if __name__ == "__main__":
    main()
