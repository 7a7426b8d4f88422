"""What operators see of the token service: request ids, metrics, ``/metrics`` and ``/readyz``.

:func:`install` adds, to an app built by :func:`~jwtwarden.service.app.create_app`:

- the outermost middleware, which gives each request its id (``X-Request-ID``, echoed in
  the answer and put on every log line: :mod:`jwtwarden.service.logs`) and records its
  route template, status and duration, and the outcome of logins and refreshes
  (:mod:`jwtwarden.service.metrics`);
- ``GET /metrics``: the Prometheus text format, only with ``JWTWARDEN_METRICS_TOKEN`` set
  and presented as ``Authorization: Bearer <token>`` (compared in constant time); without
  it the endpoint does not exist (404), so it is never open by default;
- ``GET /readyz``: 200 when the database answers, the deny-list mirror is fresh and, with
  Redis, the Redis follower is in sync; else 503 with what is not ready. ``/healthz`` stays
  the liveness check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jwtwarden.errors import TemporarilyUnavailable
from jwtwarden.service.config import Settings
from jwtwarden.service.logs import EVENTS_LOGGER, REQUEST, RequestContext, request_id_from
from jwtwarden.service.metrics import (
    CONTENT_TYPE,
    LOGIN,
    MULTIPROC_ENV,
    REFRESH_ROUTES,
    Metrics,
    outcome,
)

__all__ = ["Observe", "Readiness", "install"]

log = logging.getLogger("jwtwarden.service")
GAUGE_INTERVAL = 1.0  # seconds between gauge updates in each worker (multi-process mode)
_OUTCOME_ROUTES = REFRESH_ROUTES | {LOGIN}
_ERROR_BODY_LIMIT = 4096


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class _EventTap(logging.Handler):
    """Notes the events logged while a request is answered (the metrics read them)."""

    def emit(self, record: logging.LogRecord) -> None:
        context = REQUEST.get()
        event = getattr(record, "event", None)
        if context is not None and isinstance(event, str):
            context.events.append(event)


def _tap_events() -> None:
    events = logging.getLogger(EVENTS_LOGGER)
    if not any(isinstance(h, _EventTap) for h in events.handlers):
        events.addHandler(_EventTap())
    if events.getEffectiveLevel() > logging.INFO:
        events.setLevel(logging.INFO)  # created for the tap; printed only at the chosen level


class Observe:
    """Request id, and the request's metrics. Outermost: it times and sees every answer."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's, for routes that do not name themselves in the scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                inbound = value
                break
        context = RequestContext(request_id_from(inbound))
        token = REQUEST.set(context)
        header = (b"x-request-id", context.id.encode("ascii"))
        start = time.perf_counter()
        status = 500
        error_body: list[bytes] | None = None

        async def observed(message: Message) -> None:
            nonlocal status, error_body
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                route = getattr(scope.get("route"), "path", None)
                if status >= 400 and route in _OUTCOME_ROUTES:
                    error_body = []
            elif (error_body is not None and message["type"] == "http.response.body"
                  and sum(map(len, error_body)) < _ERROR_BODY_LIMIT):
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except BaseException:
            self._record(scope, context, 500, start, None)
            raise  # the context stays: the 500 handler's log line names the request
        self._record(scope, context, status, start, error_body)
        REQUEST.reset(token)

    def _record(self, scope: Scope, context: RequestContext, status: int, start: float,
                error_body: list[bytes] | None) -> None:
        elapsed = time.perf_counter() - start
        route = getattr(scope.get("route"), "path", None)
        if not isinstance(route, str):
            route = self._template(scope)
        self.metrics.request(scope["method"], route, status, elapsed)
        if route in _OUTCOME_ROUTES:
            result = outcome(route, status, _reason(error_body), context.events)
            if result is not None:
                kind, value = result
                (self.metrics.logins if kind == "login" else self.metrics.refreshes).labels(value).inc()


    def _template(self, scope: Scope) -> str:
        """The path template of the route that answered: FastAPI puts its own routes in the
        scope, plain Starlette routes (the debugger, the API docs) are looked up here."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                path = getattr(route, "path", None)
                return path if isinstance(path, str) else "<unmatched>"
        return "<unmatched>"


def _reason(body: list[bytes] | None) -> str | None:
    """The ``reason`` (else the ``error``) of an RFC 6749 error answer."""
    if not body:
        return None
    try:
        data = json.loads(b"".join(body))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    reason = data.get("reason") or data.get("error")
    return reason if isinstance(reason, str) else None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def install(app: FastAPI, settings: Settings) -> Metrics:
    """Add the request-id/metrics middleware, ``/metrics``, ``/readyz`` and the gauge updates."""
    metrics = Metrics(multiprocess_dir=os.environ.get(MULTIPROC_ENV) or None,
                      redis=settings.redis_url is not None)
    app.state.metrics = metrics
    _tap_events()
    expected = None if settings.metrics_token is None else _digest(settings.metrics_token)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        if expected is None:
            raise StarletteHTTPException(404, "Not Found")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(_digest(presented.strip()), expected):
            return JSONResponse(
                {"error": "invalid_token", "error_description": "the metrics token is required"},
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="jwtwarden-metrics"',
                                          "Cache-Control": "no-store"})
        metrics.update(request.app.state.jwtwarden)
        body = (metrics.exposition() if metrics.registry is not None
                else await asyncio.to_thread(metrics.exposition))
        return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    @app.get("/readyz", tags=["operations"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "not ready: see `checks`"}},
             summary="Readiness: the database answers, the deny list is fresh, Redis (if "
             "configured) is in sync")
    async def readyz(request: Request) -> Response:
        state = request.app.state.jwtwarden
        checks: dict[str, str] = {}
        try:
            await state.db.ping()
            checks["database"] = "ok"
        except TemporarilyUnavailable:
            checks["database"] = "unavailable"
        checks["denylist"] = "ok" if state.denylist.fresh else "stale"
        if state.denylist.redis is not None:
            checks["redis"] = "ok" if state.denylist.redis.healthy else "not_in_sync"
        ready = all(v == "ok" for v in checks.values())
        headers = {"Cache-Control": "no-store"}
        if not ready:
            headers["Retry-After"] = "5"
        return JSONResponse({"status": "ready" if ready else "unready", "checks": checks},
                            status_code=200 if ready else 503, headers=headers)

    app.add_middleware(Observe, metrics=metrics, routes=app.router.routes)
    serve = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with serve(app_) as value:
            state = app_.state.jwtwarden
            state.denylist.on_applied = metrics.revoked
            task = (asyncio.create_task(_gauges(metrics, state))
                    if metrics.multiprocess_dir is not None else None)
            try:
                yield value
            finally:
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    app.router.lifespan_context = lifespan
    return metrics


async def _gauges(metrics: Metrics, state: Any) -> None:
    """Workers: every worker's gauges are current whichever worker answers the scrape."""
    while True:
        try:
            metrics.update(state)
            metrics.forget_dead_workers()
        except Exception:  # a background job must never die
            log.exception("metrics update failed")
        await asyncio.sleep(GAUGE_INTERVAL)
