"""Is this HS256/384/512 token signed with a guessable secret? An offline dictionary check.

:func:`crack_hmac` recomputes the token's HMAC with every candidate secret: the empty
secret, the built-in list (``data/weak_secrets.txt``, written for this project) and any
word lists given, one secret per line (``\\n`` or ``\\r\\n``, bytes as they are, empty lines
skipped). Lists of at least :data:`PARALLEL_MIN` candidates are split into chunks over
worker processes, one per core; smaller ones run in this process, where starting workers
would cost more than the work.

Only HMAC tokens can be checked this way: for any other ``alg``,
:class:`~jwtwarden.errors.AlgorithmNotAllowed`; for a token that is not a compact JWS with
a signature, :class:`~jwtwarden.errors.MalformedToken`. The secret found is in
:attr:`CrackResult.secret`, which ``repr`` never shows.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac

from jwtwarden.errors import AlgorithmNotAllowed, MalformedToken
from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.jose.jws import parse_header, split

__all__ = [
    "BUILTIN_LIST",
    "CHUNK_SIZE",
    "PARALLEL_MIN",
    "CrackResult",
    "Target",
    "builtin_secrets",
    "count_candidates",
    "crack_hmac",
    "search_chunk",
]

BUILTIN_LIST = Path(__file__).with_name("data") / "weak_secrets.txt"
PARALLEL_MIN = 400_000
"""Below this many candidates the search runs in-process. Starting a worker (spawn, then
importing jwtwarden) takes ~0.45 s; at ~350 k secrets/s per core two workers only win
once the list is longer than about 2 x 350 k x 0.45 s."""
CHUNK_SIZE = 20_000
"""Candidates per work item: ~50 ms of HMACs, small enough for a live progress bar."""
_READ_BLOCK = 1 << 20
_BYTES_PER_CANDIDATE = 12  # a typical word-list line, to cut files into chunk_size-ish ranges

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "HS256": hashes.SHA256,
    "HS384": hashes.SHA384,
    "HS512": hashes.SHA512,
}

Progress = Callable[[int], None]
"""Called with the number of candidates tried since the previous call."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a candidate must reproduce: the HMAC of ``signing_input`` equal to ``signature``."""

    alg: str
    signing_input: bytes
    signature: bytes

    @classmethod
    def from_token(cls, token: str) -> Target:
        """Parse ``token``; raise ``MalformedToken`` or ``AlgorithmNotAllowed`` (not HMAC)."""
        header_segment, payload_segment, signature_segment = split(token, max_size=1 << 20)
        alg = parse_header(header_segment).get("alg")
        if alg not in _HASHES:
            raise AlgorithmNotAllowed(
                "only HMAC tokens (HS256, HS384, HS512) have a secret to guess; this token's "
                "alg is not one of them"
            )
        signature = b64url_decode(signature_segment)
        if not signature:
            raise MalformedToken("the token has no signature to check secrets against")
        b64url_decode(payload_segment)  # a strict token throughout, or MalformedToken
        return cls(str(alg), f"{header_segment}.{payload_segment}".encode("ascii"), signature)


@dataclass(frozen=True, slots=True)
class CrackResult:
    """The outcome: ``secret`` (``None`` when no candidate matched), where it came from,
    how many candidates were tried and how long it took. ``repr`` hides the secret."""

    secret: bytes | None = field(repr=False)
    source: str | None
    tried: int
    seconds: float

    @property
    def found(self) -> bool:
        return self.secret is not None

    @property
    def rate(self) -> float:
        """Candidates per second."""
        return self.tried / self.seconds if self.seconds > 0 else 0.0


def search_chunk(alg: str, signing_input: bytes, signature: bytes, chunk: Sequence[bytes]) -> int:
    """The index in ``chunk`` of the secret whose HMAC is ``signature``, or -1.

    The HMAC comes from ``cryptography`` rather than the stdlib ``hmac`` module. Measured
    on the 2-core development machine (Python 3.11; cryptography 50 on OpenSSL 4, the
    stdlib on OpenSSL 3.0), 30 interleaved rounds of 50 000 keys against one message,
    medians: ``hmac.HMAC(key, SHA256()) + update + finalize`` 362 k/s,
    ``hmac.digest(key, msg, "sha256")`` 355 k/s, ``hmac.new(key, msg, sha256).digest()``
    323 k/s, with interquartile ranges of +-60 k/s: no primitive is significantly faster
    (the stdlib one-shot looks the digest up in OpenSSL 3's provider tables on every call,
    which eats what it saves). ``cryptography`` is never behind on the median and is the
    project's one source of primitives, so it stays. The speed-up comes from the cores
    (bench/bench_crack.py). The comparison is ``==``, not constant-time: the signature
    compared with is public and so is every candidate.
    """
    algorithm = _HASHES[alg]()
    new = hmac.HMAC
    for index, secret in enumerate(chunk):
        mac = new(secret, algorithm)
        mac.update(signing_input)
        if mac.finalize() == signature:
            return index
    return -1


@dataclass(frozen=True, slots=True)
class _FileRange:
    """Whole lines ``[start, end)`` of a word list: a worker reads them itself, so the
    parent process neither reads nor pickles the candidates."""

    path: Path
    start: int
    end: int


_Work = list[bytes] | _FileRange
_Checked = tuple[int, bytes | None]
"""(candidates tried, the secret if found): what a work item gives back."""


def _lines(data: bytes) -> list[bytes]:
    """Non-empty lines, ``\\n`` or ``\\r\\n``, with C-level loops only (this runs per byte)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if data.endswith(b"\r"):
            data = data[:-1]
    return list(filter(None, data.split(b"\n")))


def _candidates(work: _Work) -> list[bytes]:
    if isinstance(work, list):
        return work
    with work.path.open("rb") as handle:
        handle.seek(work.start)
        return _lines(handle.read(work.end - work.start))


def _check(target: Target, work: _Work) -> _Checked:
    candidates = _candidates(work)
    index = search_chunk(target.alg, target.signing_input, target.signature, candidates)
    if index < 0:
        return len(candidates), None
    return index + 1, candidates[index]


# Worker processes receive the target once (initializer), then only work items.
_worker_target: Target | None = None


def _init_worker(target: Target) -> None:
    global _worker_target
    _worker_target = target


def _check_in_worker(work: _Work) -> _Checked:
    if _worker_target is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("worker not initialised")
    return _check(_worker_target, work)


@lru_cache(maxsize=1)
def builtin_secrets() -> tuple[bytes, ...]:
    """The built-in list, one secret per line of ``data/weak_secrets.txt``."""
    return tuple(line for line in BUILTIN_LIST.read_bytes().split(b"\n") if line)


def _file_ranges(path: Path, size: int) -> Iterator[_FileRange]:
    """``path`` cut into ranges of about ``size`` bytes, each ending after a line break."""
    total = path.stat().st_size
    with path.open("rb") as handle:
        start = 0
        while start < total:
            end = min(start + size, total)
            handle.seek(end)
            while end < total:
                block = handle.read(4096)
                newline = block.find(b"\n")
                if newline >= 0:
                    end += newline + 1
                    break
                end += len(block)
            yield _FileRange(path, start, min(end, total))
            start = end


def count_candidates(wordlists: Sequence[Path] = (), *, builtin: bool = True) -> int:
    """How many candidates a search will try at most (the empty secret included).

    Lines of the word lists are counted, so empty lines make this an upper bound.
    Raises :class:`OSError` when a list cannot be read.
    """
    total = 1 + (len(builtin_secrets()) if builtin else 0)
    for path in wordlists:
        count = 0
        last = b"\n"
        with path.open("rb") as handle:
            while block := handle.read(_READ_BLOCK):
                count += block.count(b"\n")
                last = block[-1:]
        total += count + (last != b"\n")
    return total


def _work(wordlists: Sequence[Path], builtin: bool, size: int) -> Iterator[tuple[str, _Work]]:
    yield "the empty secret", [b""]
    if builtin:
        secrets = builtin_secrets()
        for start in range(0, len(secrets), size):
            yield "the built-in list", list(secrets[start : start + size])
    for path in wordlists:
        for byte_range in _file_ranges(path, size * _BYTES_PER_CANDIDATE):
            yield f"word list {path.name}", byte_range


def crack_hmac(
    token: str,
    *,
    wordlists: Sequence[Path] = (),
    builtin: bool = True,
    jobs: int | None = None,
    progress: Progress | None = None,
    parallel_min: int = PARALLEL_MIN,
    chunk_size: int = CHUNK_SIZE,
    clock: Callable[[], float] = time.perf_counter,
) -> CrackResult:
    """Search the candidates for the secret that signed ``token``; stop at the first match.

    ``jobs`` is the number of worker processes (default: the number of cores); with one
    job, or fewer than ``parallel_min`` candidates, everything runs in this process.
    ``chunk_size`` is the number of candidates per work item (word lists are cut by size,
    at about ``chunk_size`` lines of 12 bytes). With several workers, ``tried`` counts the
    work items finished when the secret was found.

    Raises :class:`~jwtwarden.errors.MalformedToken` for a token that is not a strict
    compact JWS with a signature, :class:`~jwtwarden.errors.AlgorithmNotAllowed` when its
    ``alg`` is not HS256/384/512, :class:`OSError` when a word list cannot be read and
    :class:`ValueError` for ``jobs`` or ``chunk_size`` below 1.
    """
    target = Target.from_token(token)
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    if workers < 1 or chunk_size < 1:
        raise ValueError("jobs and chunk_size must be at least 1")
    started = clock()
    total = count_candidates(wordlists, builtin=builtin)
    work = _work(wordlists, builtin, chunk_size)
    if workers == 1 or total < parallel_min:
        found, source, tried = _search_here(target, work, progress)
    else:
        found, source, tried = _search_parallel(target, work, progress, workers)
    return CrackResult(found, source, tried, clock() - started)


_Outcome = tuple[bytes | None, str | None, int]


def _search_here(
    target: Target, work: Iterator[tuple[str, _Work]], progress: Progress | None
) -> _Outcome:
    tried = 0
    for source, item in work:
        count, secret = _check(target, item)
        tried += count
        if progress is not None:
            progress(count)
        if secret is not None:
            return secret, source, tried
    return None, None, tried


def _search_parallel(
    target: Target,
    work: Iterator[tuple[str, _Work]],
    progress: Progress | None,
    workers: int,
) -> _Outcome:
    # "spawn": workers start clean, whatever threads this process runs (rich's progress
    # bar has one, and fork() with threads can deadlock a child).
    context = multiprocessing.get_context("spawn")
    tried = 0
    pending: dict[Future[_Checked], str] = {}
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(target,)
    ) as pool:
        try:
            for source, item in work:
                pending[pool.submit(_check_in_worker, item)] = source
                if len(pending) >= 2 * workers:
                    secret, found_in, count = _collect(pending, progress)
                    tried += count
                    if secret is not None:
                        return secret, found_in, tried
            while pending:
                secret, found_in, count = _collect(pending, progress)
                tried += count
                if secret is not None:
                    return secret, found_in, tried
        finally:
            for future in pending:
                future.cancel()
    return None, None, tried


def _collect(pending: dict[Future[_Checked], str], progress: Progress | None) -> _Outcome:
    """Wait for finished work items, drop them from ``pending``; the secret if one found it."""
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    tried = 0
    found: tuple[bytes, str] | None = None
    for future in done:
        source = pending.pop(future)
        count, secret = future.result()
        tried += count
        if progress is not None:
            progress(count)
        if secret is not None and found is None:
            found = (secret, source)
    if found is not None:
        return found[0], found[1], tried
    return None, None, tried
