"""Failed-login rate limiting: a sliding window per account and per client address.

In memory, per process (each replica limits on its own: with N replicas an attacker gets at
most N times the budget, still bounded). Memory is bounded: the least recently seen keys are
dropped beyond ``max_keys``.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from jwtwarden.errors import RateLimited
from jwtwarden.policy import Clock, system_clock

__all__ = ["FailureLimiter"]


class FailureLimiter:
    """At most ``max_failures`` failures per key in any ``window`` seconds."""

    def __init__(
        self, max_failures: int, window: float, *, clock: Clock = system_clock, max_keys: int = 100_000
    ) -> None:
        if max_failures < 1 or window <= 0:
            raise ValueError("max_failures must be >= 1 and window > 0")
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, key: str) -> None:
        """Raise :class:`RateLimited` (with ``retry_after``) while ``key`` is over its budget."""
        now = self._clock()
        times = self._recent(key, now)
        if len(times) >= self._max:
            retry = times[len(times) - self._max] + self._window - now
            raise RateLimited(math.ceil(retry))

    def failure(self, key: str) -> None:
        now = self._clock()
        times = self._recent(key, now)
        if not times:
            self._failures[key] = times
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
