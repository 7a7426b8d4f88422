"""What the verifier and the issuer agree on: defaults, the clock, and verified claims.

Defaults (each can be changed per :class:`~jwtwarden.Verifier` / :class:`~jwtwarden.Issuer`):

- ``DEFAULT_LEEWAY`` = 30 s of clock skew tolerated on ``exp``, ``nbf`` and ``iat``;
  at most ``MAX_LEEWAY`` = 300 s can be configured.
- ``DEFAULT_LIFETIME`` = ``MAX_LIFETIME`` = 900 s (15 minutes) for access tokens; longer
  lifetimes need ``unsafe_allow_long_lifetime=True``.
"""

from __future__ import annotations

import copy
import ipaddress
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_LIFETIME",
    "MAX_LEEWAY",
    "MAX_LIFETIME",
    "REGISTERED_CLAIMS",
    "Claims",
    "Clock",
    "is_loopback",
    "system_clock",
]

Clock = Callable[[], float]
"""Returns the current time as Unix seconds; inject a fake one in tests."""

system_clock: Clock = time.time

DEFAULT_LEEWAY = 30.0
MAX_LEEWAY = 300.0
DEFAULT_LIFETIME = 900
MAX_LIFETIME = 900

REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
"""RFC 7519 section 4.1."""


def string_set(value: str | Iterable[str], what: str) -> frozenset[str]:
    """A non-empty set of non-empty strings from one string or an iterable of them."""
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{what} must be a non-empty string or a non-empty list of them")
    return frozenset(values)


class Claims(Mapping[str, Any]):
    """The verified claims of a token: a read-only mapping with typed accessors.

    Returned only by a successful verification. ``claims["role"]`` reads any claim;
    ``sub``, ``iss``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti``, ``sid`` and ``scopes``
    are shortcuts. :meth:`to_dict` gives a deep copy to modify.
    """

    __slots__ = ("_data",)

    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("claims are read-only")

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def get(self, name: str, default: Any = None) -> Any:
        return self._data.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    @property
    def sub(self) -> str | None:
        return self._data.get("sub")

    @property
    def iss(self) -> str:
        return self._data["iss"]  # type: ignore[no-any-return]

    @property
    def aud(self) -> tuple[str, ...]:
        aud = self._data.get("aud")
        if aud is None:
            return ()
        return (aud,) if isinstance(aud, str) else tuple(aud)

    @property
    def exp(self) -> float:
        return self._data["exp"]  # type: ignore[no-any-return]

    @property
    def iat(self) -> float | None:
        return self._data.get("iat")

    @property
    def nbf(self) -> float | None:
        return self._data.get("nbf")

    @property
    def jti(self) -> str | None:
        return self._data.get("jti")

    @property
    def sid(self) -> str | None:
        return self._data.get("sid")

    @property
    def scopes(self) -> frozenset[str]:
        """OAuth scopes from ``scope`` (space-separated, RFC 8693) or ``scp`` (a list)."""
        scope = self._data.get("scope")
        if isinstance(scope, str):
            return frozenset(scope.split())
        scp = self._data.get("scp")
        if isinstance(scp, list):
            return frozenset(s for s in scp if isinstance(s, str))
        if isinstance(scp, str):
            return frozenset(scp.split())
        return frozenset()

    def __repr__(self) -> str:
        return f"Claims(sub={self.sub!r}, iss={self._data.get('iss')!r}, names={sorted(self._data)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Claims):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (``[::1]`` with or without brackets): where plain
    http may carry tokens, since nothing crosses a network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
