"""The browser SDK with DPoP (``dpop: true``, RFC 9449) end to end: Debian's Chromium, driven
by Playwright, on the example page (``examples/spa/serve.py --dpop --dpop-nonce``) against a
real ``jwtwarden serve`` in cookie mode that requires DPoP nonces (``JWTWARDEN_DPOP_NONCE=1``),
and the example's resource server requiring nonces of its own. So every first proof of the
page is answered ``use_dpop_nonce`` and the SDK's one retry is exercised on both kinds of
server (400 at the token endpoints, 401 at the resource server).

The proofs the browser sent are read off the wire and checked here with jwtwarden's own
verifier; the key is read back from IndexedDB in the page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from jwtwarden import Key
from jwtwarden.dpop import (
    DPoPVerifier,
    access_token_hash,
    create_proof,
    decode_proof,
    thumbprint_of,
)
from jwtwarden.jose.b64 import b64url_decode
from tests.debugger.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    add_user,
    free_port,
    read_families,
    running_server,
    server_env,
)
from tests.test_client_browser import SERVE_SPA, _wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Response

READ_KEY = """async service => {
    const db = await new Promise((resolve, reject) => {
        const open = indexedDB.open('jwtwarden-dpop');
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
    });
    const pair = await new Promise((resolve, reject) => {
        const get = db.transaction('keys').objectStore('keys').get(service);
        get.onsuccess = () => resolve(get.result);
        get.onerror = () => reject(get.error);
    });
    db.close();
    const refused = async format => crypto.subtle.exportKey(format, pair.privateKey).then(() => false, () => true);
    return {
        type: pair.privateKey.type, extractable: pair.privateKey.extractable,
        usages: pair.privateKey.usages, curve: pair.privateKey.algorithm.namedCurve,
        jwkRefused: await refused('jwk'), pkcs8Refused: await refused('pkcs8'),
        publicJwk: await crypto.subtle.exportKey('jwk', pair.publicKey),
    };
}"""


@dataclass
class Stack:
    service: str
    page: str
    api: str
    database: Path
    sub: str


@dataclass
class Wire:
    """What the page sent: (method, url, headers, status) of each request, in order."""

    calls: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)

    def to(self, path: str) -> list[tuple[str, str, dict[str, str], int]]:
        return [c for c in self.calls if c[1].split("?")[0].endswith(path)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser-dpop")
    service_port, page_port, api_port = free_port(), free_port(), free_port()
    service = f"http://localhost:{service_port}"
    page = f"http://localhost:{page_port}"
    env = server_env(tmp, JWTWARDEN_COOKIE_MODE="1", JWTWARDEN_ALLOWED_ORIGINS=page,
                     JWTWARDEN_ISSUER=service, JWTWARDEN_KEK=TEST_KEK, JWTWARDEN_DPOP_NONCE="1")
    sub = add_user(env, "alice", PASSWORD)
    with running_server(env, service_port):
        spa_env = {k: v for k, v in os.environ.items() if not k.startswith("JWTWARDEN_")}
        with (tmp / "spa.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(SERVE_SPA), "--service", service, "--port", str(page_port),
                 "--api-port", str(api_port), "--dpop", "--dpop-nonce"],
                env=spa_env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            _wait_until(lambda: httpx.get(f"http://127.0.0.1:{page_port}/config.json").json()["dpop"] is True
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
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    ctx = browser.new_context()
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


def watch(page: Page) -> Wire:
    wire = Wire()

    def answered(response: Response) -> None:
        request = response.request
        wire.calls.append((request.method, request.url, request.all_headers(), response.status))

    page.on("response", answered)
    return wire


def finished(path: str, status: int = 200) -> Any:
    """For ``page.expect_event``: the answer ``status`` to ``path`` has arrived (so every earlier
    answer has reached :func:`watch`: events arrive in order)."""
    def done(response: Response) -> bool:
        return response.url.split("?")[0].endswith(path) and response.status == status
    return done


def log_in(page: Page, stack: Stack) -> None:
    from playwright.sync_api import expect

    page.goto(stack.page)
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("#login")
    expect(page.locator("#who")).to_have_text(stack.sub)


def claims_of(token: str) -> dict[str, Any]:
    return dict(json.loads(b64url_decode(token.split(".")[1])))


def check(proof: str, method: str, url: str, access_token: str | None = None) -> str:
    """jwtwarden's verifier on a proof the browser sent; the proof key's thumbprint."""
    checked = DPoPVerifier(replay=None).verify([proof], method=method, url=url, access_token=access_token)
    return checked.jkt


def test_login_binds_the_tokens_to_a_non_extractable_key_in_indexeddb(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    wire = watch(page)
    with (page.expect_response(lambda r: r.url.endswith("/v1/auth/login") and r.status == 200) as login,
          page.expect_event("response", finished("/v1/auth/userinfo"))):
        log_in(page, stack)
    answer = login.value.json()
    assert answer["token_type"] == "DPoP"
    jkt = page.evaluate("() => jwtwardenDemo.client.getDPoPThumbprint()")
    assert claims_of(answer["access_token"])["cnf"] == {"jkt": jkt}

    # the service asked for its nonce once (400 use_dpop_nonce); the SDK retried with a new proof
    logins = wire.to("/v1/auth/login")
    assert [status for *_, status in logins] == [400, 200]
    first, second = (decode_proof(headers["dpop"])[1] for _, _, headers, _ in logins)
    assert "nonce" not in first and second["nonce"] and first["jti"] != second["jti"]
    assert "ath" not in second and second["htm"] == "POST"
    assert check(logins[1][2]["dpop"], "POST", f"{stack.service}/v1/auth/login") == jkt

    key = page.evaluate(READ_KEY, stack.service)
    assert key["type"] == "private" and key["curve"] == "P-256"
    assert key["extractable"] is False and key["usages"] == ["sign"]
    assert key["jwkRefused"] and key["pkcs8Refused"]
    assert thumbprint_of(key["publicJwk"]) == jkt
    # and the userinfo call the page makes went with Authorization: DPoP and a proof with ath
    (_, url, headers, _), *_ = [c for c in wire.to("/v1/auth/userinfo") if c[3] == 200]
    token = headers["authorization"].removeprefix("DPoP ")
    assert headers["authorization"].startswith("DPoP ") and token == answer["access_token"]
    assert check(headers["dpop"], "GET", url, access_token=token) == jkt


def test_a_resource_request_with_dpop_works_and_its_proof_cannot_be_replayed(stack: Stack, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    page = context.new_page()
    log_in(page, stack)
    wire = watch(page)
    with page.expect_event("response", finished("/hello")):
        page.click("#call")
    expect(page.locator("#result")).to_have_text(f'200 {{"sub":"{stack.sub}"}}')
    calls = wire.to("/hello")
    assert [status for *_, status in calls] == [401, 200]  # the API's nonce, then the retry
    _, url, headers, _ = calls[-1]
    token = headers["authorization"].removeprefix("DPoP ")
    proof = headers["dpop"]
    jkt = page.evaluate("() => jwtwardenDemo.client.getDPoPThumbprint()")
    _, claims = decode_proof(proof)
    assert claims["htu"] == f"{stack.api}/hello" and claims["htm"] == "GET"
    assert claims["ath"] == access_token_hash(token) and claims["nonce"]
    assert claims_of(token)["cnf"] == {"jkt": jkt}

    # the request again, byte for byte, as someone who copied it would send it
    replay = httpx.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["www-authenticate"]
    assert "already used" in replay.headers["www-authenticate"]
    # the stolen token as a bearer token, or with a proof of the thief's own key
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401
    thief = create_proof(Key.generate("ES256"), "GET", url, access_token=token, nonce=claims["nonce"])
    stolen = httpx.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": thief})
    assert stolen.status_code == 401
    assert 'error="invalid_dpop_proof"' in stolen.headers["www-authenticate"]
    assert "bound to" in stolen.headers["www-authenticate"]


def test_a_reload_keeps_the_key_and_the_bound_session(stack: Stack, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    before = read_families(stack.database)
    page = context.new_page()
    log_in(page, stack)
    jkt = page.evaluate("() => jwtwardenDemo.client.getDPoPThumbprint()")
    with page.expect_response(lambda r: r.url.endswith("/v1/auth/refresh") and r.status == 200) as refreshed:
        page.reload()  # a new SDK instance: the key comes from IndexedDB, the session from the cookie
    expect(page.locator("#who")).to_have_text(stack.sub)
    assert page.evaluate("() => jwtwardenDemo.client.getDPoPThumbprint()") == jkt
    assert claims_of(refreshed.value.json()["access_token"])["cnf"] == {"jkt": jkt}
    created = [row for fid, row in read_families(stack.database).items() if fid not in before]
    assert len(created) == 1 and created[0].generation == 1 and created[0].revoked_reason is None
    page.click("#call")
    expect(page.locator("#result")).to_have_text(f'200 {{"sub":"{stack.sub}"}}')


def test_a_stolen_refresh_cookie_cannot_refresh_without_the_key(stack: Stack, context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, stack)
    (cookie,) = [c for c in context.cookies() if c["name"] == "__Secure-jwtwarden-refresh"]
    stolen = httpx.post(f"{stack.service}/v1/auth/refresh", json={"refresh_token": cookie["value"]})
    assert stolen.status_code == 400
    assert stolen.json()["error"] in ("invalid_dpop_proof", "use_dpop_nonce")
    key, url = Key.generate("ES256"), f"{stack.service}/v1/auth/refresh"
    ask = httpx.post(url, json={"refresh_token": cookie["value"]}, headers={"DPoP": create_proof(key, "POST", url)})
    assert ask.json()["error"] == "use_dpop_nonce"
    thief = create_proof(key, "POST", url, nonce=ask.headers["dpop-nonce"])
    with_key = httpx.post(url, json={"refresh_token": cookie["value"]}, headers={"DPoP": thief})
    assert with_key.status_code == 400 and with_key.json()["reason"] == "refresh_key_mismatch"
    # the session was neither rotated nor revoked: the page refreshes as usual
    page.evaluate("() => jwtwardenDemo.client.refresh()")
    assert page.evaluate("() => jwtwardenDemo.client.isAuthenticated") is True
