"""The token service's public endpoints inside a test: a JWKS and the revocation feed.

Each mock is an httpx transport (sync and async: pass ``mock.transport`` to
:class:`~jwtwarden.resource.jwks_client.RemoteJWKS` / :class:`~jwtwarden.resource.feed_client.RevocationFeed`)
and also an ASGI app (serve it on loopback to test over real HTTP). Both count requests and
can be told to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import httpx

from jwtwarden.keys import KeySet
from jwtwarden.revocation import Revocation

__all__ = ["MockJWKS", "MockRevocationFeed"]

_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
SERVER_MAX_WAIT = 25.0


async def _send_json(send: _Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _Transport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Both httpx transport interfaces over one mock."""

    def __init__(self, mock: MockJWKS | MockRevocationFeed) -> None:
        self._mock = mock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        status, body, headers = self._mock._respond(request.url.params)
        return httpx.Response(status, content=body, headers=headers)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        status, body, headers = await self._mock._arespond(request.url.params)
        return httpx.Response(status, content=body, headers=headers)


class MockJWKS:
    """A JWKS endpoint serving a key set's public JWKS; counts requests.

    ::

        keys = KeySet.generate("ES256")
        mock = MockJWKS(keys)                       # serves keys.public().to_jwks()
        jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"],
                          transport=mock.transport)
        ...
        mock.rotate(KeySet.generate("ES256"))       # publish other keys
        mock.fail(503)                              # answer 503 from now on (None: stop failing)
        mock.delay = 0.2                            # seconds before each answer
        assert mock.requests == 2

    ``keys`` may be a :class:`~jwtwarden.KeySet` (only its public half is ever published) or
    a ready JWKS dict (to serve deliberately odd documents). ``max_age`` sets
    ``Cache-Control: max-age`` (``None``: no header).
    """

    def __init__(self, keys: KeySet | dict[str, Any], *, max_age: int | None = 600) -> None:
        self._lock = threading.Lock()
        self._document = b""
        self.max_age = max_age
        self.status: int | None = None
        self.delay = 0.0
        self.requests = 0
        self.rotate(keys)
        self.transport = _Transport(self)

    def rotate(self, keys: KeySet | dict[str, Any]) -> None:
        """Serve these keys (their public half) from the next request on."""
        document = keys.public().to_jwks() if isinstance(keys, KeySet) else keys
        self._document = json.dumps(document).encode("utf-8")

    def fail(self, status: int | None = 503) -> None:
        """Answer every request with ``status`` (an error page), or serve again with ``None``."""
        self.status = status

    def _respond(self, params: Any = None) -> tuple[int, bytes, dict[str, str]]:
        if self.delay:
            time.sleep(self.delay)
        return self._answer()

    async def _arespond(self, params: Any = None) -> tuple[int, bytes, dict[str, str]]:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._answer()

    def _answer(self) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.requests += 1
        if self.status is not None:
            return self.status, b"unavailable", {"content-type": "text/plain"}
        headers = {"content-type": "application/jwk-set+json"}
        if self.max_age is not None:
            headers["cache-control"] = f"public, max-age={self.max_age}"
        return 200, self._document, headers

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: _Send) -> None:
        """The same endpoint as an ASGI app (any path)."""
        if scope["type"] != "http":
            return
        await _send_json(send, *(await self._arespond()))


class MockRevocationFeed:
    """The token service's revocation feed (``GET /v1/revocations?since=&wait=``).

    ::

        feed = MockRevocationFeed()
        server = ResourceServer(jwks, issuer=ISS, audience=AUD,
                                revocations=RevocationFeed("https://auth.test/v1/revocations",
                                                           transport=feed.transport))
        feed.revoke(Revocation("jti", claims.jti, claims.exp))   # wakes waiting long polls
        feed.fail(503)                                           # None: answer again

    Cursors are opaque strings; an unknown one gets a full snapshot with ``reset: true``, as
    does :meth:`forget_history`. A long poll with nothing new is held (async transport and
    ASGI) until an entry arrives or ``wait`` (at most 25 s) passes; the sync transport never
    holds.
    """

    def __init__(self, entries: Iterable[Revocation] = ()) -> None:
        self._lock = threading.Lock()
        self._log: list[Revocation] = list(entries)
        self._epoch = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.status: int | None = None
        self.requests = 0
        self.transport = _Transport(self)

    def revoke(self, entry: Revocation) -> None:
        """Publish one more entry and wake the long polls waiting for it."""
        with self._lock:
            self._log.append(entry)
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has ended
                loop.call_soon_threadsafe(event.set)

    def forget_history(self) -> None:
        """Make every cursor handed out so far unknown: the next answers are snapshots."""
        with self._lock:
            self._epoch += 1

    def fail(self, status: int | None = 503) -> None:
        """Answer every request with ``status``, or answer normally again with ``None``."""
        self.status = status

    def _snapshot_or_news(self, since: str | None) -> tuple[dict[str, Any] | None, str]:
        with self._lock:
            cursor = f"{self._epoch}.{len(self._log)}"
            epoch, _, position = (since or "").partition(".")
            if since is None or epoch != str(self._epoch) or not (position.isascii() and position.isdigit()) \
                    or int(position) > len(self._log):
                entries, reset = self._log, True
            else:
                entries, reset = self._log[int(position):], False
                if not entries:
                    return None, cursor
            return {"cursor": cursor, "reset": reset,
                    "revocations": [e.to_json() for e in entries]}, cursor

    def _start(self) -> tuple[int, bytes, dict[str, str]] | None:
        with self._lock:
            self.requests += 1
        if self.status is not None:
            return self.status, b"unavailable", {"content-type": "text/plain"}
        return None

    @staticmethod
    def _json(answer: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        return 200, json.dumps(answer).encode("utf-8"), {"content-type": "application/json"}

    def _respond(self, params: Any) -> tuple[int, bytes, dict[str, str]]:
        failed = self._start()
        if failed is not None:
            return failed
        since = params.get("since")
        answer, _ = self._snapshot_or_news(since)
        return self._json(answer or {"cursor": since, "reset": False, "revocations": []})

    async def _arespond(self, params: Any) -> tuple[int, bytes, dict[str, str]]:
        failed = self._start()
        if failed is not None:
            return failed
        since = params.get("since")
        answer, _ = self._snapshot_or_news(since)
        if answer is None:
            try:
                wait = min(max(float(params.get("wait", "0")), 0.0), SERVER_MAX_WAIT)
            except ValueError:
                wait = 0.0
            event = asyncio.Event()
            with self._lock:
                self._waiters.append((asyncio.get_running_loop(), event))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), wait)
            answer, _ = self._snapshot_or_news(since)
        return self._json(answer or {"cursor": since, "reset": False, "revocations": []})

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: _Send) -> None:
        """The same feed as an ASGI app (any path)."""
        if scope["type"] != "http":
            return
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        await _send_json(send, *(await self._arespond(query)))
