"""Weak-secret search speed: ``jwtwarden crack``'s engine vs a plain single-loop HMAC, in one run.

The plain loop is what anyone would write first: ``hmac.new(secret, message,
hashlib.sha256).digest() == signature`` over a list already in memory. The engine
(:func:`jwtwarden.audit.crack.crack_hmac`) reads the same candidates from a word-list
file, splits them into chunks and runs them on every core (``cryptography``'s HMAC); it is
measured with one job and with all cores, worker start-up and file reading included.
Two in-memory single loops show the primitive choice: the stdlib one-shot
``hmac.digest`` and the engine's own chunk search (``cryptography``).

Every variant runs in the same process, interleaved round by round in a shuffled order,
because the machines are shared and noisy; the table shows medians and ratios.

    python bench/bench_crack.py [--candidates 2000000] [--rounds 3] [--alg HS256]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from jwtwarden.audit.crack import crack_hmac, search_chunk
from jwtwarden.jose.b64 import b64url_encode

Run = Callable[[], int]


def make_token(alg: str, secret: bytes) -> tuple[str, bytes, bytes]:
    header = b64url_encode(f'{{"alg":"{alg}","typ":"JWT"}}'.encode())
    payload = b64url_encode(b'{"sub":"user-42","iat":1700000000,"exp":1700000900}')
    message = f"{header}.{payload}".encode()
    signature = hmac.digest(secret, message, f"sha{alg[2:]}")
    return f"{header}.{payload}.{b64url_encode(signature)}", message, signature


def plain_loop(candidates: list[bytes], message: bytes, signature: bytes, alg: str) -> Run:
    digest = getattr(hashlib, f"sha{alg[2:]}")

    def run() -> int:
        tried = 0
        for secret in candidates:
            tried += 1
            if hmac.new(secret, message, digest).digest() == signature:
                break
        return tried

    return run


def digest_loop(candidates: list[bytes], message: bytes, signature: bytes, alg: str) -> Run:
    name = f"sha{alg[2:]}"

    def run() -> int:
        tried = 0
        for secret in candidates:
            tried += 1
            if hmac.digest(secret, message, name) == signature:
                break
        return tried

    return run


def chunk_loop(candidates: list[bytes], message: bytes, signature: bytes, alg: str) -> Run:
    def run() -> int:
        assert search_chunk(alg, message, signature, candidates) < 0
        return len(candidates)

    return run


def engine(token: str, path: Path, jobs: int) -> Run:
    def run() -> int:
        result = crack_hmac(token, wordlists=[path], builtin=False, jobs=jobs, parallel_min=0)
        assert not result.found
        return result.tried

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--candidates", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--alg", default="HS256", choices=["HS256", "HS384", "HS512"])
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    rng = random.Random(1)
    candidates = [f"{rng.getrandbits(64):016x}".encode() for _ in range(args.candidates)]
    token, message, signature = make_token(args.alg, b"not-among-the-candidates")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "candidates.txt"
        path.write_bytes(b"\n".join(candidates) + b"\n")
        runs: dict[str, Run] = {
            "plain loop (stdlib hmac)": plain_loop(candidates, message, signature, args.alg),
            "in-memory loop, stdlib hmac.digest": digest_loop(candidates, message, signature, args.alg),
            "in-memory loop, cryptography (search_chunk)": chunk_loop(candidates, message, signature, args.alg),
            "engine, 1 job": engine(token, path, 1),
            f"engine, {cores} jobs": engine(token, path, cores),
        }
        rates: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for round_number in range(args.rounds):
            random.shuffle(names)
            for name in names:
                started = time.perf_counter()
                tried = runs[name]()
                rates[name].append(tried / (time.perf_counter() - started))
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    baseline = medians["plain loop (stdlib hmac)"]
    print()
    print(f"{args.alg}, {args.candidates:,} candidates, {cores} cores, median of {args.rounds} rounds")
    print(
        f"load average before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f} "
        "(other processes share the cores: above ~0.5 the multi-core figure is understated)"
    )
    print()
    print("| variant | secrets/s | ÷ plain loop |")
    print("|---|---:|---:|")
    for name, rate in medians.items():
        print(f"| {name} | {rate:,.0f} | {rate / baseline:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
