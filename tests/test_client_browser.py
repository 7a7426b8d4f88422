"""The browser SDK (clients/js/) end to end: Debian's Chromium, driven by Playwright, on the
example page (examples/spa/) against a real ``jwtwarden serve`` in cookie mode.

Three processes on loopback, as a deployment would have them, all on the site ``localhost``:
the token service (``http://localhost:<p1>``), the page (``http://localhost:<p2>``, the one
allowed origin) and the resource server with ``GET /hello`` (``http://localhost:<p3>``). Two
tabs are two pages of one browser context (one cookie jar, one lock manager). What the
service did is read from its database behind its back: the families, their generations and
why they were revoked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.debugger.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    FamilyRow,
    add_user,
    free_port,
    read_families,
    running_server,
    server_env,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

ROOT = Path(__file__).resolve().parents[1]
SERVE_SPA = ROOT / "examples" / "spa" / "serve.py"


@dataclass
class Stack:
    service: str  # the service as the browser reaches it
    page: str  # the example page: the allowed origin
    api: str  # the resource server
    database: Path
    sub: str  # alice's subject


def _wait_until(ready: Any, what: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if ready():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # waiting for a process to listen, not for the clock
    raise TimeoutError(f"{what} did not start")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser-sdk")
    service_port, page_port, api_port = free_port(), free_port(), free_port()
    service = f"http://localhost:{service_port}"
    page = f"http://localhost:{page_port}"
    env = server_env(tmp, JWTWARDEN_COOKIE_MODE="1", JWTWARDEN_ALLOWED_ORIGINS=page,
                     JWTWARDEN_ISSUER=service, JWTWARDEN_KEK=TEST_KEK)
    sub = add_user(env, "alice", PASSWORD)
    with running_server(env, service_port):
        spa_env = {k: v for k, v in os.environ.items() if not k.startswith("JWTWARDEN_")}
        with (tmp / "spa.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(SERVE_SPA), "--service", service, "--port", str(page_port),
                 "--api-port", str(api_port)],
                env=spa_env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            _wait_until(lambda: httpx.get(f"http://127.0.0.1:{page_port}/config.json").status_code == 200
                        and httpx.get(f"http://127.0.0.1:{api_port}/hello").status_code == 401,
                        "examples/spa/serve.py", proc)
            yield Stack(service, page, f"http://localhost:{api_port}", tmp / "data" / "jwtwarden.db", sub)
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: its own cookie jar, storage and lock manager."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # two shared cores: a login costs an argon2id hash
    ctx = browser.new_context()
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


def open_tab(context: BrowserContext, stack: Stack) -> Page:
    page = context.new_page()
    page.goto(stack.page)
    return page


def log_in(page: Page, stack: Stack) -> None:
    from playwright.sync_api import expect

    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("#login")
    expect(page.locator("#who")).to_have_text(stack.sub)


def new_family(stack: Stack, before: dict[str, FamilyRow]) -> FamilyRow:
    """The one family created since ``before`` (each test logs in once)."""
    created = [row for fid, row in read_families(stack.database).items() if fid not in before]
    assert len(created) == 1, created
    return created[0]


def refresh_cookie(context: BrowserContext) -> dict[str, Any]:
    (cookie,) = [c for c in context.cookies() if c["name"] == "__Secure-jwtwarden-refresh"]
    return dict(cookie)


def events(page: Page) -> list[str]:
    return page.locator("#events li").all_inner_texts()


def test_login_shows_the_subject_and_a_reload_keeps_the_session(stack: Stack, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    before = read_families(stack.database)
    page = open_tab(context, stack)
    expect(page.locator("#status")).to_have_text("signed out")
    log_in(page, stack)
    page.reload()
    expect(page.locator("#who")).to_have_text(stack.sub)
    page.click("#call")
    expect(page.locator("#result")).to_have_text(f'200 {{"sub":"{stack.sub}"}}')
    family = new_family(stack, before)
    assert family.revoked_reason is None and family.generation == 1  # the reload: one rotation


def test_the_tokens_are_never_readable_from_document_cookie_or_storage(stack: Stack, context: BrowserContext) -> None:
    page = open_tab(context, stack)
    with page.expect_response(lambda r: r.url.endswith("/v1/auth/login")) as login:
        log_in(page, stack)
    access_token = login.value.json()["access_token"]
    with page.expect_response(lambda r: r.url.endswith("/v1/auth/refresh")) as refreshed:
        page.evaluate("() => jwtwardenDemo.client.refresh()")
    tokens = [access_token, refreshed.value.json()["access_token"], refresh_cookie(context)["value"]]

    readable = page.evaluate("""async () => ({
        cookie: document.cookie,
        local: JSON.stringify({...localStorage}),
        session: JSON.stringify({...sessionStorage}),
        idb: (await indexedDB.databases()).map(d => d.name),
        caches: await caches.keys(),
    })""")
    assert readable["local"] == "{}" and readable["session"] == "{}"
    assert readable["idb"] == [] and readable["caches"] == []
    for token in tokens:
        assert token not in readable["cookie"]
    # the refresh cookie: HttpOnly, Secure, SameSite=Strict, sent only to the auth endpoints
    cookie = refresh_cookie(context)
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/v1/auth" and cookie["domain"] == "localhost"
    assert not any(token in c["value"] for c in context.cookies() for token in tokens[:2])


def test_two_tabs_racing_a_refresh_rotate_once_and_revoke_nothing(stack: Stack, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    before = read_families(stack.database)
    tab1 = context.new_page()
    tab2 = context.new_page()
    for tab in (tab1, tab2):
        tab.clock.install()  # the pages' clocks run, and can be moved 14.5 minutes on
    tab1.goto(stack.page)
    log_in(tab1, stack)
    tab2.goto(stack.page)
    expect(tab2.locator("#who")).to_have_text(stack.sub)
    generation = new_family(stack, before).generation

    # Both access tokens are now 30 s from expiry, inside the SDK's 60 s margin: the next call
    # of each tab refreshes first. Tab 1 holds the refresh lock so that both tabs are waiting
    # for it at the same time; then it lets go.
    for tab in (tab1, tab2):
        tab.clock.fast_forward("14:30")
    lock = tab1.evaluate("() => jwtwardenDemo.client.lockName")
    tab1.evaluate("""name => { window.held = new Promise(release => {
        window.release = release; navigator.locks.request(name, () => window.held); }); }""", lock)
    tab1.click("#call")
    tab2.click("#call")
    tab1.wait_for_function(  # a predicate must be synchronous: poll the lock manager's answer
        "() => { navigator.locks.query().then(q => { window.waiting = q.pending.length; });"
        " return window.waiting === 2; }")
    tab1.evaluate("() => window.release()")

    for tab in (tab1, tab2):
        expect(tab.locator("#result")).to_have_text(f'200 {{"sub":"{stack.sub}"}}')
    family = new_family(stack, before)
    assert family.revoked_reason is None
    assert family.generation == generation + 1, "exactly one rotation for the two tabs"
    tokens = [tab.evaluate("() => jwtwardenDemo.client.getAccessToken()") for tab in (tab1, tab2)]
    assert tokens[0] == tokens[1]


def test_logout_in_one_tab_ends_the_session_in_the_other_as_one_event(stack: Stack, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    before = read_families(stack.database)
    tab1 = open_tab(context, stack)
    log_in(tab1, stack)
    tab2 = open_tab(context, stack)
    expect(tab2.locator("#who")).to_have_text(stack.sub)

    tab1.click("#logout")
    for tab in (tab1, tab2):
        expect(tab.locator("#status")).to_have_text("signed out (logout)")
        expect(tab.locator("#login-form")).to_be_visible()
    assert [e for e in events(tab2) if e.startswith("sessionended")] == ["sessionended: logout"]
    assert [e for e in events(tab1) if e.startswith("sessionended")] == ["sessionended: logout"]
    assert new_family(stack, before).revoked_reason == "logout"
    assert not [c for c in context.cookies() if c["name"] == "__Secure-jwtwarden-refresh"]
    outcome = tab2.evaluate("() => jwtwardenDemo.client.getAccessToken().catch(e => e.code)")
    assert outcome == "login_required"


def test_a_stolen_refresh_cookie_replayed_after_use_ends_the_session(stack: Stack, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    before = read_families(stack.database)
    page = open_tab(context, stack)
    log_in(page, stack)
    stolen = refresh_cookie(context)["value"]  # the attacker copies the HttpOnly cookie

    with page.expect_response(lambda r: r.url.endswith("/v1/auth/refresh")) as refreshed:
        page.reload()  # the user's tab rotates the refresh token
    expect(page.locator("#who")).to_have_text(stack.sub)
    access_token = refreshed.value.json()["access_token"]

    replay = httpx.post(f"{stack.service}/v1/auth/refresh", json={"refresh_token": stolen})
    assert replay.status_code == 400 and replay.json()["reason"] == "refresh_reused"
    assert new_family(stack, before).revoked_reason == "refresh_reused"

    # the resource server learns the revocation from the service's feed within a second
    deadline = time.monotonic() + 10
    while httpx.get(f"{stack.api}/hello", headers={"Authorization": f"Bearer {access_token}"}).status_code != 401:
        assert time.monotonic() < deadline, "the resource server never learned of the revocation"
        time.sleep(0.05)  # polling another process, not waiting for the clock

    page.click("#call")  # 401 -> the SDK refreshes -> refresh_revoked -> the session ends
    expect(page.locator("#status")).to_have_text("signed out (refresh_revoked)")
    expect(page.locator("#login-form")).to_be_visible()
    assert [e for e in events(page) if e.startswith("sessionended")] == ["sessionended: refresh_revoked"]


def test_another_origin_of_the_site_cannot_log_in_or_read_the_csrf_token(stack: Stack, context: BrowserContext) -> None:
    """The resource server's origin is same-site with the service but not an allowed origin:
    even with the user's cookies in the jar, the browser refuses it the answers."""
    page = open_tab(context, stack)
    log_in(page, stack)
    sibling = context.new_page()
    sibling.goto(f"{stack.api}/hello")  # a document on http://localhost:<api port>
    outcome = sibling.evaluate("""async service => {
        const attempt = (path, init) => fetch(service + path, {credentials: 'include', ...init})
            .then(r => `read ${r.status}`, e => e.name);
        return {
            csrf: await attempt('/v1/auth/csrf'),
            login: await attempt('/v1/auth/login', {method: 'POST', headers: {'content-type': 'application/json'},
                                 body: JSON.stringify({username: 'alice', password: 'x'})}),
            refresh: await attempt('/v1/auth/refresh', {method: 'POST'}),
        };
    }""", stack.service)
    assert outcome == {"csrf": "TypeError", "login": "TypeError", "refresh": "TypeError"}
    # and the page's own session is untouched
    page.click("#call")
    from playwright.sync_api import expect

    expect(page.locator("#result")).to_have_text(f'200 {{"sub":"{stack.sub}"}}')
