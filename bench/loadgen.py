"""A small closed-loop HTTP/1.1 load generator with per-request latencies.

Each connection sends one request, waits for the whole answer, records how long that took
(``perf_counter``, per request: no synthetic samples) and sends the next, until the duration is
over. A refresh connection follows its own chain: the refresh token of each answer is the next
request's, so no request is a reuse. Run as a process of its own beside the servers:

    python bench/loadgen.py URL --mode get|post|refresh --duration 5 --connections 16 \
        [--header 'Authorization: Bearer …'] [--body JSON] [--tokens FILE]

and it prints one JSON object: requests, seconds, errors (socket errors and statuses other than
the expected one), p50/p90/p99/max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_TOKEN = re.compile(rb'"refresh_token":"([A-Za-z0-9_\-]+)"')


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body


def request_bytes(method: str, host: str, path: str, headers: list[str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def one_connection(
    url: str, mode: str, headers: list[str], body: bytes, token: bytes | None, expected: int,
    deadline: float, latencies: list[float], errors: list[int],
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    conn = Connection(reader, writer)
    path = parts.path or "/"
    static = request_bytes("GET" if mode == "get" else "POST", f"{host}:{port}", path, headers, body)
    try:
        while time.perf_counter() < deadline:
            if mode == "refresh":
                assert token is not None
                request = request_bytes("POST", f"{host}:{port}", path, headers,
                                        b'{"refresh_token":"' + token + b'"}')
            else:
                request = static
            start = time.perf_counter()
            try:
                status, answer = await conn.exchange(request)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors.append(0)
                return
            latencies.append(time.perf_counter() - start)
            if status != expected:
                errors.append(status)
                if mode == "refresh":
                    return  # the chain is broken: a retry would be a reuse
            if mode == "refresh":
                match = _TOKEN.search(answer)
                if match is None:
                    errors.append(-1)
                    return
                token = match.group(1)
    finally:
        writer.close()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tokens: list[bytes] = []
    if args.mode == "refresh":
        tokens = [t.encode() for t in Path(args.tokens).read_text().split()]
        if len(tokens) < args.connections:
            raise SystemExit(f"{args.connections} connections need as many refresh tokens")
    latencies: list[float] = []
    errors: list[int] = []  # a status other than the expected one, 0 for a socket error
    start = time.perf_counter()
    deadline = start + args.duration
    await asyncio.gather(*(
        one_connection(args.url, args.mode, args.header, args.body.replace("{i}", str(i)).encode(),
                       tokens[i] if tokens else None, args.expect, deadline, latencies, errors)
        for i in range(args.connections)
    ))
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "requests": len(latencies), "seconds": elapsed, "rps": len(latencies) / elapsed,
        "errors": len(errors), "statuses": {str(s): errors.count(s) for s in sorted(set(errors))},
        "p50_ms": percentile(ordered, 50) * 1e3,
        "p90_ms": percentile(ordered, 90) * 1e3, "p99_ms": percentile(ordered, 99) * 1e3,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1e3,
    }


def measure(argv: list[str]) -> dict[str, Any]:
    """Run in this process (the benchmark calls it in a process of its own)."""
    args = _parser().parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(args))
    return uvloop.run(run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("--mode", choices=("get", "post", "refresh"), default="get")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body", default="", help="{i} becomes the connection's number")
    parser.add_argument("--tokens", help="a file of refresh tokens, one per connection")
    parser.add_argument("--expect", type=int, default=200)
    return parser


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(measure(sys.argv[1:] if argv is None else argv)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
