"""The token service under load: login, refresh and userinfo against a bare FastAPI endpoint.

Starts, on this machine, ``jwtwarden serve`` (embedded SQLite in a fresh temporary data
directory, one user, fresh sessions) and a bare FastAPI app returning a small JSON document,
both under uvicorn with the same options, each in its own process. ``wrk`` (with Lua scripts)
drives each endpoint in turn; rounds are interleaved and the table shows medians. Refresh load
uses a fresh token for every request: each wrk connection follows its own token chain (every
answer's refresh token is the next request's), so no request is a reuse.

The load generator shares the cores with the servers, so absolute numbers are pessimistic;
the ratio to the bare endpoint is the number to watch.

    python bench/bench_service.py [--duration 5] [--rounds 3] [--connections 16] [--threads 1]

Targets (2 cores): refresh >= 300 requests/s on SQLite without errors; userinfo >= 80 % of the
bare endpoint's requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "bench password, long enough"  # noqa: S105 - a throwaway user of a temporary service
USER = "bench"
ENDPOINTS = ("bare", "userinfo", "refresh", "login")
TARGET_REFRESH = 300.0
WRK = shutil.which("wrk") or "wrk"
TARGET_USERINFO_RATIO = 0.80

# ---- the bare endpoint ---------------------------------------------------------------------------


def serve_bare(port: int) -> None:
    """A minimal FastAPI app with one JSON endpoint, under uvicorn like the service."""
    import uvicorn
    from fastapi import FastAPI
    from starlette.responses import JSONResponse

    app = FastAPI()
    document = {"sub": "bench", "iss": "http://127.0.0.1", "aud": ["api"], "scope": "read"}

    @app.get("/bare")
    async def bare() -> JSONResponse:
        return JSONResponse(document, headers={"Cache-Control": "no-store"})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False,
                proxy_headers=False)


# ---- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(args: list[str], env: dict[str, str], health: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args} exited with {proc.returncode}")
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
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ---- wrk ---------------------------------------------------------------------------------------------

REPORT_LUA = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

bad = 0

function response(status, headers, body)
  if status ~= EXPECTED then
    bad = bad + 1
  end
  on_response(status, body)
end

function done(summary, latency, requests)
  local not_expected = 0
  for _, thread in ipairs(threads) do
    not_expected = not_expected + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"socket_errors": %d, "unexpected_status": %d}\n',
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
    e.connect + e.read + e.write + e.timeout, not_expected))
end
"""

STATIC_LUA = r"""
EXPECTED = 200
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{extra}
function on_response(status, body) end
"""

REFRESH_LUA = r"""
EXPECTED = 200
-- one comma-separated list of refresh tokens per wrk thread, one token per connection
local CHAINS = {chains}
local pool = {{}}

function init(args)
  for token in string.gmatch(CHAINS[id], "[^,]+") do
    table.insert(pool, token)
  end
end

function request()
  -- the token of a chain whose last answer came back; never one already presented
  local token = table.remove(pool) or "exhausted"
  return wrk.format("POST", "/v1/auth/refresh", {{["Content-Type"] = "application/json"}},
                    '{{"refresh_token":"' .. token .. '"}}')
end

function on_response(status, body)
  if status == 200 then
    table.insert(pool, string.match(body, '"refresh_token":"(jwr_[%w_%-]+)"'))
  end
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here (ASCII)


def wrk(url: str, script: str, args: argparse.Namespace, workdir: Path, connections: int) -> dict[str, float]:
    path = workdir / f"wrk-{random.getrandbits(32):08x}.lua"
    path.write_text(script + REPORT_LUA)
    out = subprocess.run(  # noqa: S603 - our own wrk command line
        [WRK, "-t", str(args.threads), "-c", str(connections), "-d", f"{args.duration}s",
         "--timeout", "10s", "-s", str(path), url],
        capture_output=True, text=True, check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    data: dict[str, float] = json.loads(line[4:])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


# ---- the benchmark --------------------------------------------------------------------------------


def login(base: str) -> dict[str, Any]:
    response = httpx.post(base + "/v1/auth/login", json={"username": USER, "password": PASSWORD}, timeout=30)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def chains_lua(base: str, backend: tuple[str, str], args: argparse.Namespace) -> str:
    """Fresh sessions (trusted-backend ones: no argon2 cost), one per wrk connection, spread
    over the wrk threads, plus one spare per thread: wrk calls request() once more than it
    sends, to check the script, and that token is never presented."""
    per_thread: list[list[str]] = [[] for _ in range(args.threads)]
    with httpx.Client(base_url=base, auth=backend, timeout=30) as client:
        for i in range(args.connections + args.threads):
            response = client.post("/v1/sessions", json={"subject": f"bench-{i}"})
            response.raise_for_status()
            per_thread[i % args.threads].append(response.json()["refresh_token"])
    return "{" + ", ".join(lua_string(",".join(chain)) for chain in per_thread) + "}"


def run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    workdir = Path(tempfile.mkdtemp(prefix="jwtwarden-bench-"))
    service_port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{service_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWTWARDEN_")}
    env |= {"JWTWARDEN_DATA_DIR": str(workdir / "data"), "JWTWARDEN_ISSUER": base,
            "JWTWARDEN_AUDIENCE": "api", "JWTWARDEN_GC_INTERVAL": "0",
            "JWTWARDEN_KEK": subprocess.run([sys.executable, "-m", "jwtwarden", "config", "gen-kek"],
                                            capture_output=True, text=True, check=True).stdout.strip()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.only}
    try:
        subprocess.run([sys.executable, "-m", "jwtwarden", "users", "add", USER], env=env,  # noqa: S603
                       input=PASSWORD + "\n", capture_output=True, text=True, check=True)
        added = subprocess.run([sys.executable, "-m", "jwtwarden", "clients", "add", "bench-backend",
                                "--permission", "sessions"], env=env, capture_output=True, text=True,
                               check=True).stdout
        fields = dict(line.split("=", 1) for line in added.splitlines() if "=" in line)
        backend = (fields["client_id"], fields["client_secret"])
        serve = [sys.executable, "-m", "jwtwarden", "serve", "--port", str(service_port),
                 "--log-level", "warning"]
        bare = [sys.executable, __file__, "--serve-bare", str(bare_port)]
        with process(serve, env, base + "/healthz"), \
                process(bare, env, f"http://127.0.0.1:{bare_port}/bare"):
            access = login(base)["access_token"]
            for round_number in range(args.rounds):
                order = list(args.only)
                random.shuffle(order)
                for name in order:
                    if name == "bare":
                        script, url = STATIC_LUA.format(method="GET", body="nil", extra=""), \
                            f"http://127.0.0.1:{bare_port}/bare"
                    elif name == "userinfo":
                        extra = f'wrk.headers["Authorization"] = {lua_string("Bearer " + access)}'
                        script, url = STATIC_LUA.format(method="GET", body="nil", extra=extra), \
                            base + "/v1/auth/userinfo"
                    elif name == "login":
                        body = lua_string(json.dumps({"username": USER, "password": PASSWORD}))
                        script, url = STATIC_LUA.format(method="POST", body=body, extra=""), \
                            base + "/v1/auth/login"
                    else:
                        script, url = REFRESH_LUA.format(chains=chains_lua(base, backend, args)), base
                    connections = args.login_connections if name == "login" else args.connections
                    result = wrk(url, script, args, workdir, connections)
                    results[name].append(result)
                    print(f"round {round_number + 1}: {name:8s} {result['rps']:8.0f} req/s  "
                          f"p50 {result['p50_us'] / 1000:6.1f} ms  p99 {result['p99_us'] / 1000:6.1f} ms  "
                          f"errors {int(result['socket_errors'] + result['unexpected_status'])}",
                          file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--login-connections", type=int, default=4,
                        help="wrk connections for login (argon2id takes ~0.1 s of a core each)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--only", action="append", choices=ENDPOINTS)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    if shutil.which(WRK) is None:
        parser.error("wrk is required (apt-get install wrk)")
    args.only = args.only or list(ENDPOINTS)
    results = run(args)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    bare_rps = median("bare", "rps") if "bare" in results else float("nan")
    print()
    print(f"wrk -t{args.threads} -c{args.connections} (login: -c{args.login_connections}), "
          f"{args.duration} s per run, median of "
          f"{args.rounds} interleaved rounds; {os.cpu_count()} CPUs shared by wrk and both servers")
    print()
    print("| endpoint | requests/s | p50 ms | p99 ms | errors | ÷ bare |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.only:
        errors = sum(int(r["socket_errors"] + r["unexpected_status"]) for r in results[name])
        rps = median(name, "rps")
        print(f"| {name} | {rps:.0f} | {median(name, 'p50_us') / 1000:.1f} | "
              f"{median(name, 'p99_us') / 1000:.1f} | {errors} | {rps / bare_rps:.2f} |")
    print()
    if "refresh" in results:
        errors = sum(int(r["socket_errors"] + r["unexpected_status"]) for r in results["refresh"])
        ok = median("refresh", "rps") >= TARGET_REFRESH and errors == 0
        print(f"refresh: {median('refresh', 'rps'):.0f} req/s, {errors} errors "
              f"(target >= {TARGET_REFRESH:.0f}/s, no errors): {'met' if ok else 'MISSED'}")
    if "userinfo" in results and "bare" in results:
        ratio = median("userinfo", "rps") / bare_rps
        print(f"userinfo: {ratio:.0%} of the bare endpoint (target >= {TARGET_USERINFO_RATIO:.0%}): "
              f"{'met' if ratio >= TARGET_USERINFO_RATIO else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
