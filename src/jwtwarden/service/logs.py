"""The token service's log: text or one JSON object per line, every line of a request with its id.

``JWTWARDEN_LOG_FORMAT=json`` writes each record as one JSON object: ``time`` (UTC, ISO
8601), ``level``, ``logger``, ``message``, ``pid``, ``event`` (the names the service logs under:
``login``, ``refresh_refused``, ``reuse_detected``, ``logout``...), ``request_id`` while a
request is being answered, and the record's other structured fields (``reason``,
``family``...). uvicorn's access log, when on (``jwtwarden serve --access-log``), goes
through the same formatter as ``event: "access"`` with ``client``, ``method``, ``path``,
``status``; its query string is never logged (a client may put a token there).

The request id is a :class:`contextvars.ContextVar` set by the outermost middleware (see
:mod:`jwtwarden.service.ops`), so it is on every line logged while the request runs,
including lines logged in the worker threads of the database (``asyncio.to_thread``
copies the context). An inbound ``X-Request-ID`` of 1-64 characters from ``A-Za-z0-9._:-``
is kept (a proxy's id); any other is replaced by a generated one, ``<process>-<random>``,
whose first part names the process that answered (one per worker). No token, key or
password is ever logged: the service logs codes and session ids, never secrets.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "PROCESS_TAG",
    "REQUEST",
    "JSONFormatter",
    "RequestContext",
    "TextFormatter",
    "configure",
    "request_id_from",
]

PROCESS_TAG = secrets.token_hex(4)
"""Random per process: the first part of every request id it generates."""

_INBOUND = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_random = random.Random(secrets.randbits(128))  # noqa: S311 - ids, not secrets; seeded per process
EVENTS_LOGGER = "jwtwarden.events"


class RequestContext:
    """What the log and the metrics know about the request being answered."""

    __slots__ = ("events", "id")

    def __init__(self, request_id: str) -> None:
        self.id = request_id
        self.events: list[str] = []  # event names logged while answering (metrics read them)


REQUEST: ContextVar[RequestContext | None] = ContextVar("jwtwarden_request", default=None)


def request_id_from(inbound: bytes | None) -> str:
    """The inbound ``X-Request-ID`` when it is sane, else a new ``<process>-<random>`` id."""
    if inbound is not None and _INBOUND.fullmatch(inbound):
        return inbound.decode("ascii")
    # an id, not a secret: the fast generator will do (a request-id guess grants nothing)
    return f"{PROCESS_TAG}-{_random.getrandbits(64):016x}"


class ContextFilter(logging.Filter):
    """Puts ``request_id`` on every record; strips the query string off access-log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = REQUEST.get()
        record.request_id = context.id if context is not None else None
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            path = str(path).split("?", 1)[0]
            record.args = (client, method, path, version, status)
            record.event = "access"
            record.client = client
            record.method = method
            record.path = path
            record.status = status
        return True


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "request_id", "color_message", "taskName"}


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            out["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, and ``[request id]`` while a request is answered."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [{request_id}]" if request_id else text


def configure(log_format: str, level: str) -> None:
    """Send every log line (jwtwarden's, uvicorn's) to stderr in ``log_format`` from ``level``.

    The events logger stays at INFO at least, whatever ``level`` is: the metrics count its
    events (a refresh within the grace window) even when they are not printed.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "jwtwarden", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.jwtwarden = True  # type: ignore[attr-defined]
    handler.setLevel(level.upper())
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    events = logging.getLogger(EVENTS_LOGGER)
    events.setLevel(min(logging.INFO, logging.getLevelName(level.upper())))
