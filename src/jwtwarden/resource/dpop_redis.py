"""A DPoP replay store shared by replicas: Redis ``SET key 1 NX PX ttl`` (RFC 9449 section 11.1).

::

    import redis.asyncio
    store = RedisReplayStore(redis.asyncio.Redis.from_url("redis://cache:6379/0"))
    server = ResourceServer(..., dpop_verifier=DPoPVerifier(replay=store))

The store is given a client the application built (``redis.asyncio.Redis`` or anything with
the same ``set``), so this module imports no driver. Keys are ``prefix`` + the hex of
SHA-256(thumbprint, jti): no proof identifier is stored in the clear. Any error of the client
(unreachable, timeout) is :class:`~jwtwarden.errors.DPoPReplayUnavailable`: the proof is
refused (fail closed, 503).
"""

from __future__ import annotations

import logging
from typing import Any

from jwtwarden.errors import DPoPReplayUnavailable

__all__ = ["RedisReplayStore"]

log = logging.getLogger("jwtwarden.resource")


class RedisReplayStore:
    """An :class:`~jwtwarden.dpop.AsyncReplayStore` over an asynchronous Redis client."""

    __slots__ = ("_client", "_prefix")

    def __init__(self, client: Any, *, prefix: str = "jwtwarden:dpop:") -> None:
        if not callable(getattr(client, "set", None)):
            raise TypeError("client must be a redis.asyncio.Redis (or have its set())")
        self._client = client
        self._prefix = prefix

    async def aadd(self, key: bytes, ttl: float) -> bool:
        try:
            stored = await self._client.set(self._prefix + key.hex(), b"1", nx=True,
                                            px=max(1, int(ttl * 1000)))
        except Exception as error:  # noqa: BLE001 - any client failure: fail closed
            log.warning("DPoP replay store unavailable (%s); refusing proofs", type(error).__name__)
            raise DPoPReplayUnavailable("the DPoP replay store is unavailable") from None
        return bool(stored)

    def __repr__(self) -> str:
        return f"RedisReplayStore(prefix={self._prefix!r})"
