"""The token service's Prometheus metrics (``prometheus-client``).

=============================================  =========  ================================================
metric                                         type       what
=============================================  =========  ================================================
``jwtwarden_http_request_duration_seconds``    histogram  per ``method``, ``route`` (the template, e.g.
                                                          ``/v1/auth/refresh``; ``<unmatched>`` for paths no
                                                          route has) and ``status``; ``_count`` counts requests
``jwtwarden_logins_total``                     counter    per ``outcome``: ``success``, ``invalid_credentials``,
                                                          ``rate_limited``, ``refused`` (CSRF/Origin),
                                                          ``invalid_request``, ``unavailable``
``jwtwarden_refreshes_total``                  counter    per ``outcome``: ``rotated``, ``grace``, ``reused``,
                                                          ``expired``, ``revoked``, ``too_old``, ``invalid``,
                                                          ``refused``, ``invalid_request``, ``unavailable``
``jwtwarden_families_revoked_total``           counter    sessions ended by this process (logout, reuse...)
``jwtwarden_revocations_total``                counter    deny-list entries this process added, per ``kind``
``jwtwarden_denylist_entries``                 gauge      live entries in the in-process mirror
``jwtwarden_denylist_sync_age_seconds``        gauge      per ``source``: since the mirror last read the
                                                          ``database``; since ``redis`` was last heard from
``jwtwarden_denylist_redis_in_sync``           gauge      1 while the Redis follower is in sync (with Redis)
``jwtwarden_signing_key_age_seconds``          gauge      since the signing key started signing
``jwtwarden_signing_key_next_rotation_days``   gauge      until the next key signs (+Inf: none scheduled)
``jwtwarden_db_connections_in_use``            gauge      database connections checked out of the pools
``jwtwarden_workers``                          gauge      live worker processes
=============================================  =========  ================================================

Outcomes come from what the HTTP layer already knows (the status and the error's ``reason``)
and from the events the session service logs (``refresh_grace``, ``client_credentials``), so
no decision code counts anything. With ``jwtwarden serve --workers N`` (N > 1) each worker
writes its values to ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory per run, made and removed
by ``serve``) and any worker answers a scrape with the sum over all of them; gauges say how
they combine (max, min or sum over the live workers).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from jwtwarden.revocation import Revocation

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "Metrics", "outcome"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# the classic text format every Prometheus reads (our names need none of 1.0.0's escaping)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
DAY = 86_400.0
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LIVE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")

LOGIN = "/v1/auth/login"
REFRESH_ROUTES = frozenset({"/v1/auth/refresh", "/v1/auth/token"})
_REFRESH_REASONS = {
    "refresh_reused": "reused",
    "refresh_expired": "expired",
    "refresh_revoked": "revoked",
    "family_too_old": "too_old",
    "invalid_refresh_token": "invalid",
}


def outcome(route: str, status: int, reason: str | None, events: Iterable[str]) -> tuple[str, str] | None:
    """``("login" | "refresh", outcome)`` for an answer of the login or a refresh endpoint."""
    seen = set(events)
    if route == LOGIN:
        if status == 200:
            return "login", "success"
        return "login", {429: "rate_limited", 403: "refused", 503: "unavailable"}.get(
            status, "invalid_credentials" if reason == "invalid_credentials" else "invalid_request")
    if route not in REFRESH_ROUTES:
        return None
    if status == 200:
        if "client_credentials" in seen:
            return None  # the token endpoint's other grant
        return "refresh", "grace" if "refresh_grace" in seen else "rotated"
    if reason in _REFRESH_REASONS:
        return "refresh", _REFRESH_REASONS[reason]
    if route == "/v1/auth/token":
        return None  # client authentication and the like: not a refresh decision
    return "refresh", {403: "refused", 503: "unavailable"}.get(status, "invalid_request")


class Metrics:
    """Every metric of one app. ``multiprocess_dir``: the directory the workers share, or None
    for a single process (its own registry)."""

    def __init__(self, *, multiprocess_dir: str | None, redis: bool) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry: CollectorRegistry | None = None if multiprocess_dir else CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "jwtwarden_http_request_duration_seconds",
            "Time to answer an HTTP request, per method, route template and status",
            ["method", "route", "status"], buckets=BUCKETS, registry=r)
        self.logins = Counter("jwtwarden_logins", "Login attempts by outcome", ["outcome"], registry=r)
        self.refreshes = Counter("jwtwarden_refreshes", "Refresh-token exchanges by outcome",
                                 ["outcome"], registry=r)
        self.families_revoked = Counter("jwtwarden_families_revoked",
                                        "Sessions (token families) ended by this service", registry=r)
        self.revocations = Counter("jwtwarden_revocations",
                                   "Deny-list entries added by this service, per kind", ["kind"], registry=r)
        self.denylist_entries = Gauge("jwtwarden_denylist_entries", "Live entries in the deny list",
                                      registry=r, multiprocess_mode="livemax")
        self.sync_age = Gauge("jwtwarden_denylist_sync_age_seconds",
                              "Seconds since the deny-list mirror last read its source",
                              ["source"], registry=r, multiprocess_mode="livemax")
        self.redis_in_sync = Gauge("jwtwarden_denylist_redis_in_sync",
                                   "1 while every worker follows Redis in sync", registry=r,
                                   multiprocess_mode="livemin") if redis else None
        self.key_age = Gauge("jwtwarden_signing_key_age_seconds",
                             "Seconds since the current signing key started signing", registry=r,
                             multiprocess_mode="livemax")
        self.next_rotation = Gauge("jwtwarden_signing_key_next_rotation_days",
                                   "Days until the next signing key signs (+Inf: none scheduled)",
                                   registry=r, multiprocess_mode="livemin")
        self.db_in_use = Gauge("jwtwarden_db_connections_in_use",
                               "Database connections checked out of the pools", registry=r,
                               multiprocess_mode="livesum")
        self.workers = Gauge("jwtwarden_workers", "Live worker processes", registry=r,
                             multiprocess_mode="livesum")
        self.workers.set(1)
        self._children: dict[tuple[str, str, int], Any] = {}

    # ---- recording ----------------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(method, route, str(status))
        child.observe(seconds)

    def revoked(self, entries: list[Revocation]) -> None:
        """The deny list's hook: entries this process just added."""
        for entry in entries:
            self.revocations.labels(entry.kind).inc()
            if entry.kind == "sid":
                self.families_revoked.inc()

    def update(self, state: Any) -> None:
        """Set the gauges from the service's state (before a scrape, and every second in workers)."""
        now = state.clock()
        denylist = state.denylist
        self.denylist_entries.set(len(denylist.set))
        self.sync_age.labels("database").set(denylist.sync_age())
        if denylist.redis is not None and self.redis_in_sync is not None:
            self.sync_age.labels("redis").set(denylist.redis.follower.silence())
            self.redis_in_sync.set(1 if denylist.redis.healthy else 0)
        keyring = state.keyring
        active = keyring.active(now)
        self.key_age.set(now - active.activate_at if active is not None else math.nan)
        keys = keyring.keys()  # a KeyRing, not a dict
        pending = [k.activate_at for k in keys if k.revoked_at is None and k.activate_at > now]
        interval = state.settings.key_rotation_interval
        if pending:
            due = min(pending)
        elif interval and active is not None:
            due = active.activate_at + interval
        else:
            due = math.inf
        self.next_rotation.set(max(0.0, (due - now) / DAY))
        self.db_in_use.set(connections_in_use(state.db))

    # ---- exposition ---------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format: this process's registry, or every worker's files."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=self.multiprocess_dir)
        return generate_latest(registry)

    def forget_dead_workers(self) -> None:
        """Drop the live gauges of worker processes that died (uvicorn restarts them)."""
        if self.multiprocess_dir is None:
            return
        pids = set()
        for path in Path(self.multiprocess_dir).iterdir():
            match = _LIVE_FILE.fullmatch(path.name)
            if match:
                pids.add(int(match.group(1)))
        for pid in pids - {os.getpid()}:
            if not _alive(pid):
                prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                    pid, self.multiprocess_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connections_in_use(db: Any) -> int:
    """Connections checked out of every pool the database object holds."""
    total = 0
    for value in vars(db).values():
        engine = getattr(value, "sync_engine", value)
        if isinstance(engine, sa.Engine):
            checkedout = getattr(engine.pool, "checkedout", None)
            if callable(checkedout):
                total += int(checkedout())
    return total
