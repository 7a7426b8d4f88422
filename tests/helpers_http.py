"""Real HTTP servers on loopback for tests: an ASGI app under uvicorn, a WSGI app under werkzeug.

::

    with serve_asgi(app) as base_url:          # "http://127.0.0.1:54321"
        httpx.get(base_url + "/hello")

    with serve_wsgi(flask_app) as base_url:
        ...

Each server listens on an ephemeral port of 127.0.0.1 before the context is entered (the
socket is bound and listening, so no request can race the start-up) and runs in a daemon
thread; leaving the context shuts it down and joins the thread. Nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn
from werkzeug.serving import make_server

__all__ = ["serve_asgi", "serve_wsgi"]

_START_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server, telling the test thread when start-up (incl. lifespan) is over."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


@contextmanager
def serve_asgi(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "auto", timeout_graceful: float = 2.0
) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread; yield its base URL (``http://127.0.0.1:PORT``).

    ``lifespan``: uvicorn's setting ("auto", "on", "off"). Requests still running at exit get
    ``timeout_graceful`` seconds before their connections are closed.
    """
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        loop="asyncio",
        http="h11",
        # uvicorn types it as int but waits with asyncio.wait_for: fractions work
        timeout_graceful_shutdown=timeout_graceful,  # type: ignore[arg-type]
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(_START_TIMEOUT) or not server.started:
            raise RuntimeError("the ASGI test server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT + timeout_graceful)
        sock.close()


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Run ``app`` with werkzeug's threaded server in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(_START_TIMEOUT)
