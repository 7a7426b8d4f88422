"""A clock that moves only when a test says so."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that only moves when told to. Call it for the current Unix time."""

    __slots__ = ("now",)

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward (or back, with a negative number) and return the new time."""
        self.now += seconds
        return self.now

    def set(self, now: float) -> None:
        self.now = float(now)

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r})"
