"""What every background revocation source of a resource server shares.

A :class:`RevocationFollower` keeps a :class:`~jwtwarden.revocation.RevocationSet` current
from somewhere (the service's HTTP feed: :class:`~jwtwarden.resource.feed_client.RevocationFeed`;
Redis: :class:`~jwtwarden.resource.redis_follower.RedisFollower`), answers ``check(claims)``
from memory and fails closed when it cannot vouch for its set. This base class runs the
follower as an asyncio task (:meth:`~RevocationFollower.astart`, ASGI) or in a daemon thread
with its own event loop (:meth:`~RevocationFollower.start`, WSGI), tells listeners about every
change (the resource server drops emergency-revoked signing keys that way), and lets the first
requests wait briefly for the first sync. :class:`~jwtwarden.resource.server.ResourceServer`
starts and stops any follower it is given.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from jwtwarden.revocation import RevocationSet

__all__ = ["RevocationFollower"]


class RevocationFollower(abc.ABC):
    """A revocation source that follows its origin in the background (see the module)."""

    _task_name = "jwtwarden-revocations"

    def __init__(self) -> None:
        self._listeners: list[Callable[[RevocationSet], None]] = []
        self._synced = threading.Event()  # in sync (the feed: a snapshot has arrived)
        self._settled = threading.Event()  # the first attempt has ended, well or not
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_task: asyncio.Task[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- what a follower provides -------------------------------------------------------------

    @property
    @abc.abstractmethod
    def revocations(self) -> RevocationSet:
        """The current set."""

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """Whether :meth:`check` answers from the set (else it fails closed)."""

    @abc.abstractmethod
    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`~jwtwarden.errors.Revoked` for a revoked token and
        :class:`~jwtwarden.errors.RevocationUnavailable` while not :attr:`healthy`."""

    @abc.abstractmethod
    def retry_after(self) -> int:
        """Whole seconds (at least 1) a refused client should wait: for ``Retry-After``."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Follow forever (until cancelled), surviving every error: what the task runs."""

    # ---- listeners and the first sync -----------------------------------------------------------

    def add_listener(self, listener: Callable[[RevocationSet], None]) -> None:
        """Call ``listener(revocations)`` after every change of the set: the resource server
        uses it to drop emergency-revoked keys. Called from the follower's task or thread."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self.revocations)

    def _settle(self) -> None:
        if self._settled.is_set():
            return
        self._settled.set()
        for loop, event in list(self._waiters):
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(event.set)

    def wait_synced(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for the first attempt to end; True if in sync.

        Returns early (False) when that first attempt failed: callers then fail closed at
        once instead of holding requests while the follower retries.
        """
        self._settled.wait(timeout)
        return self._synced.is_set()

    async def await_synced(self, timeout: float) -> bool:
        """Async :meth:`wait_synced`, without blocking the event loop."""
        if self._settled.is_set():
            return self._synced.is_set()
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        self._waiters.append((loop, event))
        try:
            if self._settled.is_set():  # settled between the first check and the registration
                return self._synced.is_set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
            return self._synced.is_set()
        finally:
            self._waiters.remove((loop, event))

    # ---- running in the background ----------------------------------------------------------------

    def task_runs_here(self) -> bool:
        """Whether :meth:`astart`'s task runs on the running event loop."""
        task = self._task
        return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()

    def thread_runs_here(self) -> bool:
        """Whether :meth:`start`'s thread runs in this process (not a forked parent's)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._thread_pid == os.getpid()

    async def astart(self) -> None:
        """Run :meth:`run` as a task on the running loop, unless it already runs there."""
        if self.task_runs_here():
            return
        self._task = asyncio.get_running_loop().create_task(self.run(), name=self._task_name)

    async def astop(self) -> None:
        """Cancel the task started by :meth:`astart` and wait for it to end."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _run_thread(self, started: threading.Event) -> None:
        async def main() -> None:
            self._thread_loop = asyncio.get_running_loop()
            self._thread_task = asyncio.current_task()
            started.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self.run()

        try:
            asyncio.run(main())
        finally:
            started.set()

    def start(self) -> None:
        """Run the loop in a daemon thread (WSGI servers), unless it runs in this process.

        The thread runs its own event loop, so :meth:`stop` can interrupt it at once. After a
        fork (pre-forking servers) the child starts its own thread.
        """
        if self.thread_runs_here():
            return
        started = threading.Event()
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run_thread, args=(started,), name=self._task_name, daemon=True,
        )
        self._thread.start()
        started.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread started by :meth:`start`, interrupting whatever it waits for."""
        thread, self._thread = self._thread, None
        loop, task = self._thread_loop, self._thread_task
        self._thread_loop = self._thread_task = None
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(task.cancel)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
