"""RevocationFeed against a loopback feed server that implements the service's protocol.

The outage rules run on an injected clock; real time is spent only on the network: the
long poll waking up when an entry is added, and retries with millisecond backoffs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from jwtwarden import errors
from jwtwarden.resource.feed_client import RevocationFeed, default_feed_url
from jwtwarden.revocation import Revocation, subject_key
from jwtwarden.testing import FakeClock
from tests.helpers_http import serve_asgi

SERVER_MAX_WAIT = 25.0


class FeedServer:
    """``GET /v1/revocations?since=&wait=`` exactly as the token service answers it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.entries: list[tuple[int, Revocation]] = []
            self.seq = 0
            self.horizon = 0  # cursors older than this get a snapshot with reset: true
            self.status = 200
            self.body_override: bytes | None = None
            self.queries: list[dict[str, str]] = []
            self.answers: list[dict[str, Any]] = []
            self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def add(self, entry: Revocation) -> None:
        with self._lock:
            self.seq += 1
            self.entries.append((self.seq, entry))
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def forget(self, value: str) -> None:
        """Drop an entry and the history: every client cursor is now too old."""
        with self._lock:
            self.entries = [(s, e) for s, e in self.entries if e.value != value]
            self.seq += 1
            self.horizon = self.seq

    def _answer(self, since: str | None) -> dict[str, Any] | None:
        with self._lock:
            cursor = int(since[2:]) if since and since.startswith("c-") and since[2:].isascii() and since[2:].isdigit() else None
            if since is None or cursor is None or cursor < self.horizon or cursor > self.seq:
                entries, reset = [e for _, e in self.entries], True
            else:
                entries, reset = [e for s, e in self.entries if s > cursor], False
                if not entries:
                    return None
            return {"cursor": f"c-{self.seq}", "reset": reset,
                    "revocations": [e.to_json() for e in entries]}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.queries.append(query)
        answer: dict[str, Any] | None = None
        if self.status == 200 and self.body_override is None:
            since = query.get("since")
            wait = min(float(query.get("wait", "0")), SERVER_MAX_WAIT)
            answer = self._answer(since)
            if answer is None:
                event = asyncio.Event()
                with self._lock:
                    self._waiters.append((asyncio.get_running_loop(), event))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), wait)
                answer = self._answer(since) or {"cursor": since, "reset": False, "revocations": []}
            self.answers.append(answer)
        body = self.body_override if self.body_override is not None else json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


_SERVER = FeedServer()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_asgi(_SERVER, lifespan="off", timeout_graceful=0.2) as url:
        yield url


@pytest.fixture
def server(base_url: str) -> FeedServer:
    _SERVER.reset()
    return _SERVER


@pytest.fixture
def url(base_url: str) -> str:
    return base_url + "/v1/revocations"


def jti(value: str) -> Revocation:
    return Revocation("jti", value, time.time() + 900)


def claims(jti: str = "j0", sid: str = "s0", sub: str = "u0") -> dict[str, Any]:
    return {"jti": jti, "sid": sid, "sub": sub, "iat": time.time(), "exp": time.time() + 600}


def code_of(feed: RevocationFeed, token_claims: dict[str, Any]) -> str:
    with pytest.raises(errors.JWTError) as info:
        feed.check(token_claims)
    return info.value.code


def feed_for(url: str, **options: Any) -> RevocationFeed:
    options.setdefault("retry_initial", 0.01)
    options.setdefault("retry_max", 0.05)
    return RevocationFeed(url, **options)


# ---- the protocol ------------------------------------------------------------------------------


def test_the_first_poll_loads_a_full_snapshot(server: FeedServer, url: str) -> None:
    server.add(jti("j1"))
    server.add(Revocation("sid", "s1", time.time() + 900))
    feed = feed_for(url)
    assert feed.poll() is True
    assert code_of(feed, claims(jti="j1")) == "revoked"
    assert code_of(feed, claims(sid="s1")) == "revoked"
    feed.check(claims())
    assert server.queries == [{}]


def test_a_later_poll_asks_since_the_cursor_and_adds_only_new_entries(server: FeedServer, url: str) -> None:
    server.add(jti("j1"))
    feed = feed_for(url)
    feed.poll()
    server.add(jti("j2"))
    feed.poll()
    assert server.queries[1]["since"] == "c-1"
    assert server.answers[1]["reset"] is False
    assert [e["value"] for e in server.answers[1]["revocations"]] == ["j2"]
    assert code_of(feed, claims(jti="j1")) == code_of(feed, claims(jti="j2")) == "revoked"


def test_a_subject_cutoff_revokes_older_tokens_of_that_user(server: FeedServer, url: str) -> None:
    now = time.time()
    server.add(Revocation("sub", subject_key("alice"), now + 900, cutoff=now))
    feed = feed_for(url)
    feed.poll()
    assert code_of(feed, claims(sub="alice") | {"iat": now - 10}) == "revoked"
    feed.check(claims(sub="alice") | {"iat": now + 1})


def test_a_reset_replaces_the_whole_set(server: FeedServer, url: str) -> None:
    server.add(jti("j1"))
    server.add(jti("j2"))
    feed = feed_for(url)
    feed.poll()
    server.forget("j1")
    feed.poll()
    assert server.answers[1]["reset"] is True
    feed.check(claims(jti="j1"))
    assert code_of(feed, claims(jti="j2")) == "revoked"


def test_a_long_poll_with_nothing_new_keeps_the_cursor(server: FeedServer, url: str) -> None:
    feed = feed_for(url)
    feed.poll()
    cursor = feed.cursor
    assert feed.poll(wait=0) is False
    assert feed.cursor == cursor and server.queries[1]["wait"] == "0"


# ---- failing closed -----------------------------------------------------------------------------


def test_checks_fail_closed_before_the_first_snapshot(url: str) -> None:
    assert code_of(feed_for(url), claims()) == "revocation_unavailable"


def test_checks_pass_during_an_outage_shorter_than_max_outage(server: FeedServer, url: str) -> None:
    clock = FakeClock(1000.0)
    feed = feed_for(url, clock=clock, max_outage=900)
    feed.poll()
    server.status = 503
    with pytest.raises(errors.RevocationUnavailable):
        feed.poll()
    clock.advance(899)
    feed.check(claims())


def test_checks_fail_closed_after_max_outage(server: FeedServer, url: str) -> None:
    clock = FakeClock(1000.0)
    feed = feed_for(url, clock=clock, max_outage=900)
    feed.poll()
    server.status = 503
    with pytest.raises(errors.RevocationUnavailable):
        feed.poll()
    clock.advance(901)
    assert code_of(feed, claims()) == "revocation_unavailable"


def test_the_feed_recovers_after_an_outage(server: FeedServer, url: str) -> None:
    clock = FakeClock(1000.0)
    feed = feed_for(url, clock=clock, max_outage=900)
    feed.poll()
    server.status = 503
    clock.advance(901)
    server.status = 200
    server.add(jti("j9"))
    feed.poll()
    feed.check(claims())
    assert code_of(feed, claims(jti="j9")) == "revoked"


def test_a_malformed_answer_leaves_the_set_and_cursor_unchanged(server: FeedServer, url: str) -> None:
    server.add(jti("j1"))
    feed = feed_for(url)
    feed.poll()
    cursor = feed.cursor
    for body in (b"not json", b'{"cursor": "c-9", "reset": false}',
                 b'{"cursor": "c-9", "reset": false, "revocations": [{"kind": "jti"}]}',
                 b'{"cursor": 5, "reset": false, "revocations": []}'):
        server.body_override = body
        with pytest.raises(errors.RevocationUnavailable):
            feed.poll()
    assert feed.cursor == cursor
    assert code_of(feed, claims(jti="j1")) == "revoked"


def test_an_answer_over_the_size_cap_is_refused(server: FeedServer, url: str) -> None:
    for i in range(50):
        server.add(jti(f"j{i}"))
    feed = feed_for(url, max_size=1024)
    with pytest.raises(errors.RevocationUnavailable):
        feed.poll()


def test_an_unreachable_feed_is_unavailable() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(errors.RevocationUnavailable):
        feed_for(f"http://127.0.0.1:{port}/v1/revocations").poll()


# ---- running in the background -------------------------------------------------------------------


def test_a_revocation_reaches_a_feed_thread_within_a_second(server: FeedServer, url: str) -> None:
    changed = threading.Event()
    feed = feed_for(url, wait=10, on_update=changed.set)
    feed.start()
    try:
        assert feed.wait_synced(5)
        changed.clear()
        started = time.monotonic()
        server.add(jti("late"))
        assert changed.wait(5)
        assert time.monotonic() - started < 1.0
        assert code_of(feed, claims(jti="late")) == "revoked"
    finally:
        feed.stop()


def test_a_revocation_reaches_a_feed_task_within_a_second(server: FeedServer, url: str) -> None:
    async def scenario() -> float:
        changed = asyncio.Event()
        feed = feed_for(url, wait=10, on_update=changed.set)
        await feed.astart()
        try:
            assert await feed.await_synced(5)
            changed.clear()
            started = time.monotonic()
            await asyncio.to_thread(server.add, jti("late"))
            await asyncio.wait_for(changed.wait(), 5)
            assert code_of(feed, claims(jti="late")) == "revoked"
            return time.monotonic() - started
        finally:
            await feed.astop()

    assert asyncio.run(scenario()) < 1.0


def test_the_feed_thread_retries_until_the_feed_answers(server: FeedServer, url: str) -> None:
    server.status = 503
    synced = threading.Event()
    feed = feed_for(url, wait=10, on_update=synced.set)
    feed.start()
    try:
        assert feed.wait_synced(5) is False  # the first poll failed: no waiting for more
        server.status = 200
        assert synced.wait(5)
        feed.check(claims())
    finally:
        feed.stop()


def test_stopping_the_thread_interrupts_a_long_poll(server: FeedServer, url: str) -> None:
    feed = feed_for(url, wait=20)
    feed.start()
    assert feed.wait_synced(5)
    thread = feed._thread
    started = time.monotonic()
    feed.stop(timeout=5)
    assert thread is not None and not thread.is_alive()
    assert time.monotonic() - started < 2.0


# ---- configuration ------------------------------------------------------------------------------


def test_the_default_feed_url_is_the_jwks_origin_plus_v1_revocations() -> None:
    assert default_feed_url("https://auth.example.com:8443/.well-known/jwks.json?x=1") == \
        "https://auth.example.com:8443/v1/revocations"


def test_the_feed_url_must_be_https_unless_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        RevocationFeed("http://auth.example.com/v1/revocations")


def test_max_outage_must_be_longer_than_one_long_poll() -> None:
    with pytest.raises(ValueError, match="max_outage"):
        RevocationFeed("https://auth.example.com/v1/revocations", max_outage=20, wait=25)
