"""Password hashing (argon2id) on a pool of its own, bounded, below everything else in priority.

An argon2id verification costs ~0.1 s of CPU by design. Run on the event loop's default thread
pool, a burst of logins took every core and every pool thread, and refreshes (~0.5 ms each)
waited behind them (issue #12). Here hashing gets ``threads`` threads of its own; at most
``queue`` more attempts wait for one, and beyond that a login is refused at once with
:class:`~jwtwarden.errors.Overloaded` (503 with ``Retry-After``) instead of waiting without
bound. On Linux the hashing threads run at a lower scheduling priority (nice +10, inherited by
the threads libargon2 starts for its lanes), so when the CPU is short the requests that cost
microseconds are served first and logins take longer, not the other way round.

The parameters (:func:`password_hasher`) default to RFC 9106's second recommended option
(argon2id, t=3, m=64 MiB, p=4), which is also argon2-cffi's default and above OWASP's minimum
(m=19 MiB, t=2, p=1). A hash made with other parameters still verifies and is re-hashed with
the configured ones at the next successful login.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from jwtwarden.errors import Overloaded
from jwtwarden.service.config import cores

__all__ = ["PasswordHashing", "default_threads", "password_hasher"]

log = logging.getLogger("jwtwarden.passwords")
T = TypeVar("T")
NICE = 10  # how much lower the hashing threads run (Linux: per thread)


def password_hasher(*, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4) -> PasswordHasher:
    """argon2id with these costs (``memory_cost`` in KiB)."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism,
                          hash_len=32, salt_len=16, type=Type.ID)


def default_threads() -> int:
    """One hashing thread per core but one (one on a single core): a core stays free for requests."""
    return max(1, cores() - 1)


def _lower_priority() -> None:
    """This thread NICE steps below the process (Linux: nice is per thread)."""
    with contextlib.suppress(AttributeError, OSError):  # elsewhere: the same priority
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + NICE))


class PasswordHashing:
    """argon2id hashing and verification on ``threads`` threads, with ``queue`` places to wait."""

    def __init__(self, hasher: PasswordHasher | None = None, *, threads: int | None = None, queue: int = 16) -> None:
        if (threads is not None and threads < 1) or queue < 0:
            raise ValueError("hashing needs at least one thread and a queue of zero or more")
        self.hasher = hasher or password_hasher()
        self.threads = threads or default_threads()
        self.limit = self.threads + queue
        self._pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="jwtwarden-argon2", initializer=_lower_priority)

    @property
    def pending(self) -> int:
        """Hashes running or waiting (a gauge for /metrics)."""
        return self._pending

    async def verify(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches ``stored`` (False for a malformed hash too)."""
        return await self._run(self._verify, stored, password)

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    def needs_rehash(self, stored: str) -> bool:
        return bool(self.hasher.check_needs_rehash(stored))

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _run(self, job: Callable[..., T], *args: str) -> T:
        # Counted until the hash is done, not until the caller stops waiting: a client that
        # hangs up does not free the thread its hash occupies.
        with self._lock:
            if self._pending >= self.limit:
                log.warning("password hashing at capacity (%d running or waiting): login refused",
                            self._pending, extra={"event": "login_overloaded"})
                raise Overloaded("too many logins at once; retry shortly", retry_after=1)
            self._pending += 1
        try:  # in the request's context: log lines of the hash carry its request id
            future: Future[T] = self._executor.submit(contextvars.copy_context().run, job, *args)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _future: object) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
