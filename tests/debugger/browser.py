"""Headless Debian Chromium driven by Playwright, and the standalone debugger server.

When Chromium (or Playwright) is missing, browser tests are skipped, except with
``JWTWARDEN_REQUIRE_SERVICES=1`` (CI), where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jwtwarden.audit.debugger import DebuggerServer, make_server

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def require_chromium() -> None:
    """Skip (or, with JWTWARDEN_REQUIRE_SERVICES=1, fail) when the browser stack is missing."""
    missing = None
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright is not installed (scripts/bootstrap)"
    if missing is None:
        return
    if os.environ.get("JWTWARDEN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{missing}, and JWTWARDEN_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(missing)


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[BrowserContext]:
    """A fresh headless Chromium (new, empty user data directory)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


@contextmanager
def debugger_server(jwks_file: Path | None) -> Iterator[DebuggerServer]:
    """The standalone debugger server on a free loopback port, serving in a thread."""
    server = make_server("127.0.0.1", 0, jwks_file, quiet=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="debugger-server", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
