"""What a scan costs: deriving the cases, and a whole scan in-process and over loopback HTTP.

For each algorithm: the median time to derive every attack case from a token (with the
public and the signing key, so every family is derived), the number of cases, and the
median wall time of a complete scan (calibration + every case) of a jwtwarden ``Verifier``
called directly, through a Starlette app in-process (httpx ``ASGITransport``), and through
the same app under uvicorn on 127.0.0.1 (real HTTP, rate 1000/s, 8 in flight).

    python bench/bench_scan.py [--rounds 5] [--alg ES256 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jwtwarden import Issuer, KeySet, Verifier, errors
from jwtwarden.scan import ScanLimits, ScanReport, derive_attacks, scan_asgi, scan_url, scan_verify

ALGS = ["ES256", "RS256", "HS256", "EdDSA"]
ISS = "https://auth.example.com"
AUD = "api.example.com"
FAST = ScanLimits(rate=1000, concurrency=8, timeout=5, deadline=60)


def app_for(verifier: Verifier) -> Starlette:
    async def me(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return JSONResponse({"error": "missing"}, status_code=401)
        try:
            claims = verifier.verify(auth[7:])
        except errors.JWTError as exc:
            return JSONResponse({"error": exc.code}, status_code=401)
        return JSONResponse({"sub": claims.sub})

    return Starlette(routes=[Route("/me", me)])


class Server:
    """The app under uvicorn on an ephemeral loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                                http="h11", loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/me"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def median_seconds(run: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bench(alg: str, rounds: int) -> str:
    """One table row: derive, then scan a jwtwarden verifier three ways."""
    keys = KeySet.generate(alg)
    hmac_ = alg.startswith("HS")
    public = None if hmac_ else keys.public()
    verifier = Verifier(keys if hmac_ else keys.public(), issuer=ISS, audience=AUD,
                        algorithms=[alg])
    token = Issuer(keys, issuer=ISS, audience=AUD).issue("user-1")
    derive_attacks(token, public_key=public, signing_key=keys)  # warm the attacker keys
    derive, cases = median_seconds(
        lambda: derive_attacks(token, public_key=public, signing_key=keys), rounds)
    options: dict[str, Any] = {"public_key": public, "signing_key": keys, "limits": FAST}
    direct, _ = median_seconds(
        lambda: asyncio.run(scan_verify(verifier.verify, token, **options)), rounds)
    app = app_for(verifier)
    asgi, _ = median_seconds(
        lambda: asyncio.run(scan_asgi(app, token, path="/me", **options)), rounds)
    server = Server(app)
    try:
        http, report = median_seconds(
            lambda: asyncio.run(scan_url(server.url, token, **options)), rounds)
    finally:
        server.close()
    if not isinstance(report, ScanReport) or report.accepted or not report.complete:
        raise SystemExit(f"{alg}: the scan of jwtwarden was not clean")
    return (f"| {alg} | {len(cases)} | {derive * 1e3:.1f} | {direct * 1e3:.1f} | "
            f"{asgi * 1e3:.1f} | {http * 1e3:.1f} | {report.requests} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--alg", action="append", choices=ALGS)
    args = parser.parse_args()
    print("| alg | cases | derive ms | verify fn ms | ASGI ms | HTTP ms | HTTP requests |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for alg in args.alg or ALGS:
        print(bench(alg, args.rounds))


if __name__ == "__main__":
    main()
