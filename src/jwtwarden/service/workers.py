"""``jwtwarden serve --workers N``: one token service on every core.

The parent process resolves the configuration and does the one-time start-up *once*, before
any worker exists: the data directory, the migrations, the development KEK file and the
first signing key (:func:`prepare`). It then binds the socket and hands it to N worker
processes (uvicorn's supervisor, ``spawn``ed: nothing of the parent's state is inherited but
the environment). Each worker builds the app from the same configuration through
:func:`worker_app`: the command line's ``--config``, ``--host``, ``--port`` and
``--log-level`` reach it as ``JWTWARDEN_CONFIG``, ``JWTWARDEN_HOST``, ``JWTWARDEN_PORT`` and
``JWTWARDEN_LOG_LEVEL``, which the workers read exactly as the parent did (secrets such as
the KEK are read by each worker from where the parent read them, never copied into the
environment). A worker's own start finds everything there and changes nothing.

The workers share the database (so the signing keys and every session) and the deny list:
a worker's revocation is in the database when it answers, and every other worker refuses
the token within its deny-list poll (0.25 s) or, with Redis, on the pub/sub message.

Metrics: the parent makes a fresh ``PROMETHEUS_MULTIPROC_DIR`` for the run (removed when it
stops), where every worker writes; a scrape answered by any worker sums them all.

A worker that dies (killed, out of memory) is replaced by uvicorn's supervisor within about
a second; requests it was answering fail, the others carry on. SIGTERM or SIGINT to the
parent stops every worker gracefully (open revocation-feed long-polls are answered at once).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from types import FrameType
from typing import Any

from fastapi import FastAPI

from jwtwarden.service import logs
from jwtwarden.service.config import Settings, load_settings
from jwtwarden.service.metrics import MULTIPROC_ENV

__all__ = ["WORKER_APP", "prepare", "run_workers", "uvicorn_config", "worker_app"]

WORKER_APP = "jwtwarden.service.workers:worker_app"


def prepare(settings: Settings) -> None:
    """The one-time start-up: data directory, migrations, KEK file, first signing key."""
    from jwtwarden.service.app import build_state

    async def main() -> None:
        state = await build_state(settings, follow=False)
        await state.close()

    asyncio.run(main())


def uvicorn_config(app: Any, settings: Settings, *, access_log: bool, **options: Any) -> Any:
    """uvicorn's options for the service, one process or several: our logging (not uvicorn's),
    no Server header, proxy headers only when trusted; httptools and uvloop (the ``server``
    extra installs them; uvicorn's "auto" picks them)."""
    import uvicorn

    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, log_level=settings.log_level,
        access_log=access_log, server_header=False, proxy_headers=settings.trust_proxy_headers,
        **options)


def run_workers(settings: Settings, *, workers: int, access_log: bool,
                environment: Mapping[str, str]) -> None:
    """Prepare once, then serve with ``workers`` processes until stopped."""
    from uvicorn.supervisors import Multiprocess

    os.environ.update(environment)
    directory = tempfile.mkdtemp(prefix="jwtwarden-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        prepare(settings)
        config = uvicorn_config(WORKER_APP, settings, access_log=access_log, factory=True, workers=workers)
        sock = config.bind_socket()
        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app of one worker (uvicorn calls this in each worker process)."""
    from jwtwarden.service.app import create_app

    settings = load_settings()
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    _end_long_polls_on_stop(app)
    return app


def _end_long_polls_on_stop(app: FastAPI) -> None:
    """On SIGTERM/SIGINT, answer the revocation feed's open long-polls at once (uvicorn waits
    for open requests before it stops, and a long-poll waits up to 25 s), then let uvicorn's
    own handler, installed before the app is built, begin its graceful shutdown."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stop(sig: int, frame: FrameType | None) -> None:
        state: Any = getattr(app.state, "jwtwarden", None)
        if state is not None:
            loop.call_soon_threadsafe(state.end_long_polls)
        handler = previous[sig]
        if callable(handler):
            handler(sig, frame)

    for sig in previous:
        signal.signal(sig, stop)
