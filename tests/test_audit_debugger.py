"""The web debugger: served assets and headers, privacy, and end-to-end in headless Chromium.

The browser tests drive Debian's Chromium with Playwright against the standalone server on
loopback. They also prove that the page's JavaScript engine reports exactly what
``jwtwarden inspect`` reports (a corpus of ~1500 tokens) and fails verification at the same
check as the Python verifier.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from jwtwarden import Issuer
from jwtwarden.audit import _jstables, audit_token
from jwtwarden.audit.debugger import (
    ASSET_DIR,
    CSP,
    SECURITY_HEADERS,
    DebuggerServer,
    debugger_pages,
    debugger_routes,
    mount_debugger,
)
from jwtwarden.audit.inspect import format_duration
from jwtwarden.audit.keysource import verification_keys
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.keys import AsymmetricKey, HMACKey, Key, KeySet
from jwtwarden.testing import FakeClock
from tests.conftest import ALL_ALGS, keyset_for
from tests.debugger.browser import ARTIFACTS, chromium, debugger_server, require_chromium
from tests.debugger.corpus import inspect_corpus
from tests.debugger.tokens import AUD, ISS, NOW, good_claims, segment, tamper, token

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Request

REQUIRED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ES256_PUBLIC_JWKS = keyset_for("ES256").public().to_jwks()


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback test server
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def issued(alg: str = "ES256", **claims: Any) -> str:
    return Issuer(keyset_for(alg), issuer=ISS, audience=AUD, clock=FakeClock(NOW)).issue("u1", claims)


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(ES256_PUBLIC_JWKS))
    return path


@pytest.fixture(scope="module")
def server(jwks_file: Path) -> Iterator[DebuggerServer]:
    with debugger_server(jwks_file) as running:
        yield running


# ----------------------------------------------------------------------------- the assets


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self.tags and data.strip():
            self.data.append((self.tags[-1][0], data))


def parsed_index() -> _Tags:
    parser = _Tags()
    parser.feed(debugger_pages()["/debugger"][0].decode())
    return parser


def test_the_csp_is_at_least_the_required_policy() -> None:
    assert CSP.startswith(REQUIRED_CSP)


def test_the_page_has_no_inline_script_style_or_event_handler() -> None:
    page = parsed_index()
    assert [t for t, a in page.tags if t == "script" and not a.get("src")] == []
    assert [t for t, a in page.tags if t == "style" or "style" in a] == []
    assert [n for _, a in page.tags for n in a if n.startswith("on")] == []


def test_the_page_loads_nothing_from_another_origin() -> None:
    urls = [v for _, a in parsed_index().tags for n, v in a.items() if n in ("src", "href") and v]
    assert urls and all(u.startswith("/debugger/") or u == "data:," for u in urls)


def test_the_stylesheet_loads_nothing() -> None:
    css = (ASSET_DIR / "debugger.css").read_text()
    assert "url(" not in css and "@import" not in css


@pytest.mark.parametrize(
    "pattern",
    [r"localStorage", r"sessionStorage", r"indexedDB", r"document\.cookie", r"\.innerHTML",
     r"outerHTML", r"insertAdjacentHTML", r"document\.write", r"\beval\(", r"new Function",
     r"location\.(?:hash|search|href)\s*=", r"history\.(?:push|replace)State", r"sendBeacon",
     r"XMLHttpRequest", r"WebSocket", r"postMessage", r"https?://"],
)  # fmt: skip
def test_the_javascript_never_uses(pattern: str) -> None:
    for name in ("audit.js", "debugger.js"):
        assert not re.search(pattern, (ASSET_DIR / name).read_text()), (name, pattern)


def test_the_only_request_the_javascript_makes_is_one_fetch_of_the_jwks() -> None:
    ui, engine = ((ASSET_DIR / n).read_text() for n in ("debugger.js", "audit.js"))
    assert re.findall(r"\bfetch\(([^,)]*)", ui) == ["jwksPath"] and "fetch(" not in engine


def test_the_generated_tables_in_audit_js_are_up_to_date() -> None:
    assert _jstables.render_block() in (ASSET_DIR / "audit.js").read_text(encoding="utf-8")


@pytest.mark.parametrize("prefix", ["debugger", "/a/../b", "/a b", "/x/", "", "/a?b", '/"x'])
def test_odd_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        debugger_pages(prefix)


def test_the_page_links_its_assets_under_its_prefix() -> None:
    html = debugger_pages("/tools/debug", "/keys.json")["/tools/debug"][0].decode()
    assert 'src="/tools/debug/audit.js"' in html and 'content="/keys.json"' in html


# ----------------------------------------------------------------------------- serving


def assert_security_headers(headers: dict[str, str]) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, value in SECURITY_HEADERS.items():
        assert lowered.get(name.lower()) == value, name


@pytest.mark.parametrize(
    "path", ["/debugger", "/debugger/", "/debugger/audit.js", "/debugger/debugger.js",
             "/debugger/debugger.css", "/.well-known/jwks.json", "/missing", "/"],
)  # fmt: skip
def test_every_standalone_response_has_the_security_headers(server: DebuggerServer, path: str) -> None:
    _, headers, _ = get(server.url.removesuffix("/debugger") + path)
    assert_security_headers(headers)


def test_the_standalone_server_serves_the_page_as_html(server: DebuggerServer) -> None:
    status, headers, body = get(server.url)
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert b"jwtwarden token debugger" in body


def test_the_standalone_root_redirects_to_the_page(server: DebuggerServer) -> None:
    request = urllib.request.Request(server.url.removesuffix("/debugger") + "/")  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request)
    with redirect.value as answer:
        assert (answer.code, answer.headers["Location"]) == (302, "/debugger")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_the_standalone_server_answers_post_with_405(server: DebuggerServer) -> None:
    assert get(server.url, method="POST")[0] == 405


def test_the_standalone_server_serves_the_public_jwks_it_was_given(server: DebuggerServer) -> None:
    _, _, body = get(server.url.removesuffix("/debugger") + "/.well-known/jwks.json")
    assert json.loads(body) == ES256_PUBLIC_JWKS


def test_without_a_jwks_the_page_offers_pasted_keys_only() -> None:
    with debugger_server(None) as bare:
        status, _, _ = get(bare.url.removesuffix("/debugger") + "/.well-known/jwks.json")
        _, _, page = get(bare.url)
    assert status == 404 and b'name="jwtwarden-jwks" content=""' in page


def asgi_get(app: Any, path: str) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def test_starlette_routes_serve_the_page_with_the_security_headers() -> None:
    response = asgi_get(Starlette(routes=debugger_routes()), "/debugger")
    assert response.status_code == 200
    assert_security_headers(dict(response.headers))


def test_starlette_routes_serve_the_javascript_as_javascript() -> None:
    response = asgi_get(Starlette(routes=debugger_routes()), "/debugger/audit.js")
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"


def test_mount_debugger_adds_the_page_to_a_fastapi_app_at_its_prefix() -> None:
    app = FastAPI()
    mount_debugger(app, prefix="/tools/debugger", jwks_path="/jwks")
    response = asgi_get(app, "/tools/debugger/debugger.css")
    assert response.status_code == 200
    assert_security_headers(dict(response.headers))


def test_mounted_debugger_routes_stay_out_of_the_openapi_schema() -> None:
    app = FastAPI()
    mount_debugger(app)
    assert not any("debugger" in path for path in app.openapi()["paths"])


# ----------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    require_chromium()
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


class Recorder:
    """Everything a page sends and every problem it reports."""

    def __init__(self, page: Page) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes | None]] = []
        self.problems: list[str] = []
        page.on("request", self._request)
        page.on("console", lambda m: self.problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.problems.append(str(e)))

    def _request(self, request: Request) -> None:
        self.requests.append((request.method, request.url, request.headers, request.post_data_buffer))


@pytest.fixture
def page(browser: BrowserContext, server: DebuggerServer) -> Iterator[Page]:
    page = browser.new_page()
    page.clock.set_fixed_time(datetime.fromtimestamp(NOW, UTC))
    page.recorder = Recorder(page)  # type: ignore[attr-defined]
    page.goto(server.url)
    yield page
    page.close()


def recorder(page: Page) -> Recorder:
    result: Recorder = page.recorder  # type: ignore[attr-defined]
    return result


def paste(page: Page, text: str) -> None:
    page.fill("#token", text)


def verify_with_jwks(page: Page) -> str:
    page.click("#verify")
    locator = page.locator("#verification[data-state=verified], #verification[data-state=failed], #verification[data-state=key-error]")
    locator.wait_for()
    return str(page.get_attribute("#verification", "data-code"))


def shown_codes(page: Page) -> list[str]:
    return [str(li.get_attribute("data-code")) for li in page.query_selector_all("#findings li")]


def test_the_page_shows_the_findings_inspect_reports(page: Page) -> None:
    text = token({"alg": "HS256", "typ": "JWT"}, good_claims(aud=["a", "b"], card="4111 1111 1111 1111"))
    paste(page, text)
    assert shown_codes(page) == [f.code for f in audit_token(text, now=NOW).findings]


def test_the_page_is_unverified_until_a_key_checks_the_token(page: Page) -> None:
    paste(page, issued())
    assert page.get_attribute("#banner", "data-state") == "unverified"


def test_the_page_verifies_a_token_with_the_service_jwks(page: Page) -> None:
    paste(page, issued())
    assert verify_with_jwks(page) == "verified"
    assert page.get_attribute("#banner", "data-state") == "verified"


def test_the_page_reports_bad_signature_after_one_byte_is_tampered(page: Page) -> None:
    paste(page, issued())
    verify_with_jwks(page)
    paste(page, tamper(issued()))
    assert verify_with_jwks(page) == "bad_signature"
    assert "verification_failed" in shown_codes(page)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "debugger-tampered.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_no_request_carries_the_token_or_any_of_its_parts(page: Page, server: DebuggerServer) -> None:
    text = issued(note="x" * 40)
    paste(page, text)
    verify_with_jwks(page)
    paste(page, tamper(text))
    verify_with_jwks(page)
    page.check("#source-secret")
    page.fill("#secret", "s" * 32)
    page.select_option("#alg", "HS256")
    page.click("#verify")
    page.locator("#verification[data-state=failed], #verification[data-state=key-error]").wait_for()
    secrets = {text, *text.split("."), *tamper(text).split("."), "s" * 32}
    sent = recorder(page).requests
    assert sent, "the page made no request at all: the recorder is broken"
    for method, url, headers, body in sent:
        blob = url + json.dumps(headers) + (body or b"").decode("latin-1")
        assert not [s for s in secrets if s and s in blob], url
        assert method == "GET" and url.startswith(server.url.removesuffix("/debugger"))


def test_the_page_requests_only_itself_its_assets_and_the_jwks(page: Page) -> None:
    paste(page, issued())
    verify_with_jwks(page)
    paths = {re.sub(r"^http://[^/]+", "", url) for _, url, _, _ in recorder(page).requests}
    assert paths == {"/debugger", "/debugger/audit.js", "/debugger/debugger.js", "/debugger/debugger.css", "/.well-known/jwks.json"}


def test_the_page_stores_nothing_and_keeps_its_url(page: Page, server: DebuggerServer) -> None:
    paste(page, issued())
    verify_with_jwks(page)
    stored = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert (stored, page.url) == ([0, 0, ""], server.url)


def test_the_page_is_served_with_the_strict_csp(browser: BrowserContext, server: DebuggerServer) -> None:
    page = browser.new_page()
    try:
        response = page.goto(server.url)
        assert response is not None and response.headers["content-security-policy"] == CSP
    finally:
        page.close()


def test_the_page_runs_without_csp_violations_or_script_errors(page: Page) -> None:
    paste(page, issued(note="<img src=x onerror=alert(1)>"))
    verify_with_jwks(page)
    page.check("#show-secrets")
    page.click("#clear")
    assert recorder(page).problems == []


def test_token_content_is_shown_as_text_never_as_html(page: Page) -> None:
    paste(page, issued(note="<b id=injected>x</b>"))
    assert page.query_selector("#injected") is None and "<b id=injected>" in page.inner_text("#payload")


def test_the_page_masks_flagged_values_until_asked(page: Page) -> None:
    text = token({"alg": "ES256", "typ": "JWT"}, good_claims(password="hunter2-secret"))
    paste(page, text)
    masked = page.inner_text("#payload")
    page.check("#show-secrets")
    assert ("hunter2-secret" not in masked, "hunter2-secret" in page.inner_text("#payload")) == (True, True)


def test_the_page_can_be_used_with_the_keyboard_alone(page: Page) -> None:
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.insert_text(issued())
    page.focus("#aud")
    page.keyboard.press("Tab")  # to the Verify button
    assert page.evaluate("document.activeElement.id") == "verify"
    page.keyboard.press("Enter")
    page.locator("#verification[data-state=verified]").wait_for()


def test_every_form_control_has_a_label_and_results_are_announced(page: Page) -> None:
    unlabeled = page.evaluate(
        "() => [...document.querySelectorAll('input, textarea, select')]"
        ".filter(c => !c.labels || !c.labels.length).map(c => c.id)"
    )
    live = page.evaluate("() => ['banner', 'findings-summary', 'verification'].map(id => document.getElementById(id).getAttribute('aria-live'))")
    assert (unlabeled, live) == ([], ["polite", "polite", "polite"])


def test_the_page_verifies_with_a_pasted_pem_public_key(page: Page) -> None:
    key = keyset_for("ES256").signing_key()
    assert isinstance(key, AsymmetricKey)
    paste(page, issued())
    page.check("#source-key")
    page.fill("#key", key.to_pem().decode())
    page.select_option("#alg", "ES256")
    assert verify_with_jwks(page) == "verified"


def test_the_page_refuses_a_pasted_private_key(page: Page) -> None:
    key = keyset_for("ES256").signing_key()
    assert isinstance(key, AsymmetricKey)
    paste(page, issued())
    page.check("#source-key")
    page.fill("#key", key.to_pem(private=True).decode())
    page.select_option("#alg", "ES256")
    assert verify_with_jwks(page) == "invalid_key"


def test_the_page_refuses_a_weak_hmac_secret(page: Page) -> None:
    paste(page, token({"alg": "HS256", "typ": "JWT"}, good_claims()))
    page.check("#source-secret")
    page.fill("#secret", "short")
    page.select_option("#alg", "HS256")
    assert verify_with_jwks(page) == "weak_key"


# ----------------------------------------------------------------------------- parity with Python


def test_the_page_engine_reports_exactly_what_inspect_reports(page: Page) -> None:
    tokens = inspect_corpus()
    from_js = page.evaluate(
        "([tokens, now]) => tokens.map(t => JwtwardenAudit.audit(t, {now}).findings)", [tokens, NOW]
    )
    from_python = [[f.to_dict() for f in audit_token(t, now=NOW).findings] for t in tokens]
    differences = [(t[:80], p, j) for t, p, j in zip(tokens, from_python, from_js, strict=True) if p != j]
    assert len(tokens) > 1000 and differences == []


def sign(key: Key, header: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
    signing_input = f"{segment(header)}.{segment(payload)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"


def verification_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def jwks_case(alg: str, text: str, **extra: Any) -> dict[str, Any]:
        keys = keyset_for(alg)
        jwks = keys.to_jwks(private=True) if alg.startswith("HS") else keys.public().to_jwks()
        return {"token": text, "jwks": jwks, "now": NOW, "issuer": None, "audience": None, **extra}

    for alg in ALL_ALGS:
        cases.append(jwks_case(alg, issued(alg)))
        cases.append(jwks_case(alg, tamper(issued(alg))))
    es = keyset_for("ES256").signing_key()
    header = {"alg": "ES256", "kid": es.kid, "typ": "at+jwt"}
    odd_claims = (
        good_claims(nbf=int(NOW) + 600), good_claims(exp=None), good_claims(exp="later"),
        good_claims(iat=int(NOW) + 600), good_claims(iss=None), good_claims(aud=None),
        good_claims(aud=["x", 5]), good_claims(sub=5), good_claims(jti=None),
    )  # fmt: skip
    cases += [jwks_case("ES256", sign(es, header, claims)) for claims in odd_claims]
    odd_headers = ({"jku": "https://x"}, {"crit": ["exp"]}, {"zip": "DEF"}, {"cty": "JWT"}, {"kid": "nope"})
    cases += [jwks_case("ES256", sign(es, {**header, **extra}, good_claims())) for extra in odd_headers]
    cases += [
        jwks_case("ES256", issued(), now=NOW + 3600),
        jwks_case("ES256", issued(), issuer=["https://other.example.com"]),
        jwks_case("ES256", issued(), audience=["other"]),
        jwks_case("ES256", issued(), audience=[AUD], issuer=[ISS]),
        jwks_case("ES256", sign(es, {"alg": "ES256"}, good_claims())),
        jwks_case("ES256", sign(es, header, b"")),
        jwks_case("ES256", sign(es, header, b"[1]")),
        jwks_case("ES256", token({"alg": "none"}, good_claims(), b"")),
        jwks_case("ES256", token({**header, "alg": "HS256"}, good_claims())),
        jwks_case("ES256", "not.a.token"),
        jwks_case("ES256", "a" * 9000),
        jwks_case("ES256", issued()[:-2]),
    ]
    pem = es.to_pem() if isinstance(es, AsymmetricKey) else b""
    cases.append({"token": issued(), "pem": pem.decode(), "alg": "ES256", "kid": es.kid, "now": NOW, "issuer": None, "audience": None})
    secret = "correct horse battery staple, 32+"
    hs = HMACKey(secret.encode(), "HS256", kid="hs-kid")
    hs_text = sign(hs, {"alg": "HS256", "kid": "hs-kid", "typ": "JWT"}, good_claims())
    cases.append({"token": hs_text, "secret": secret, "alg": "HS256", "kid": "hs-kid", "now": NOW, "issuer": None, "audience": None})
    cases.append({"token": hs_text, "secret": secret + "!", "alg": "HS256", "kid": "hs-kid", "now": NOW, "issuer": None, "audience": None})
    return cases


def python_keys(case: dict[str, Any]) -> KeySet:
    if "jwks" in case:
        return verification_keys(KeySet.from_jwks(case["jwks"]))
    if "pem" in case:
        return KeySet([Key.from_pem(case["pem"], case["alg"], kid=case["kid"])])
    return KeySet([HMACKey(case["secret"].encode(), case["alg"], kid=case["kid"])])


def python_verdict(case: dict[str, Any]) -> dict[str, Any]:
    report = audit_token(
        case["token"], now=case["now"], keys=python_keys(case), issuer=case["issuer"], audience=case["audience"]
    )
    assert report.verification is not None
    v = report.verification
    return {"verified": v.verified, "code": v.code, "error": v.error, "part": v.part, "path": v.path,
            "kid": v.kid, "alg": v.alg, "issuerPinned": v.issuer_pinned, "audiencePinned": v.audience_pinned}  # fmt: skip


VERIFY_IN_PAGE = """async (cases) => {
  const A = JwtwardenAudit;
  const out = [];
  for (const c of cases) {
    let keys;
    if (c.jwks) keys = await A.keysFromJwks(c.jwks, {allowSecret: true});
    else if (c.pem) keys = await A.keysFromText(c.pem, {alg: c.alg, kid: c.kid});
    else keys = await A.keysFromSecret(c.secret, c.alg, c.kid);
    const v = await A.verify(c.token, keys, {now: c.now, issuer: c.issuer, audience: c.audience});
    out.push({verified: v.verified, code: v.code, error: v.error, part: v.part, path: v.path,
              kid: v.kid, alg: v.alg, issuerPinned: v.issuerPinned, audiencePinned: v.audiencePinned});
  }
  return out;
}"""


def test_the_page_verifier_fails_at_the_same_check_as_the_python_verifier(page: Page) -> None:
    cases = verification_cases()
    from_js = page.evaluate(VERIFY_IN_PAGE, cases)
    from_python = [python_verdict(case) for case in cases]
    differences = [(c["token"][:60], p, j) for c, p, j in zip(cases, from_python, from_js, strict=True) if p != j]
    assert differences == []
    assert {p["code"] for p in from_python} >= {
        None, "bad_signature", "expired", "not_yet_valid", "issued_in_future", "missing_claim",
        "malformed", "bad_issuer", "bad_audience", "unsupported_header", "unknown_key",
        "alg_not_allowed", "token_too_large",
    }


# ---- DPoP (RFC 9449): proofs decoded, bound tokens explained ----------------------------------


def dpop_rows(page: Page) -> dict[str, str]:
    page.locator("#dpop:not([hidden]) #dpop-body tr").first.wait_for()
    rows = page.query_selector_all("#dpop-body tr")
    return {str(r.get_attribute("data-field")): r.query_selector("td").inner_text() for r in rows}  # type: ignore[union-attr]


def test_the_page_decodes_a_dpop_proof_and_shows_its_key_thumbprint(page: Page) -> None:
    from jwtwarden.dpop import access_token_hash, create_proof

    client = Key.generate("ES256")
    access = issued(cnf={"jkt": client.thumbprint()})
    proof = create_proof(client, "POST", "https://api.example.com/orders?page=2", access_token=access,
                         nonce="n-1", clock=lambda: NOW - 30)
    paste(page, proof)
    page.wait_for_selector("#dpop[data-kind=proof] tr[data-field=jkt]")
    page.wait_for_function("() => !document.querySelector('#dpop-body [data-field=jkt] td')"
                           ".textContent.startsWith('(')")
    rows = dpop_rows(page)
    assert rows["htm"] == "POST" and rows["htu"] == "https://api.example.com/orders"
    assert rows["ath"] == access_token_hash(access) and rows["nonce"] == "n-1"
    assert rows["jkt"] == client.thumbprint()  # what the access token's cnf.jkt must equal
    assert rows["iat"] == f"{int(NOW - 30)} ({format_duration(30)} ago)"
    assert len(rows["jti"]) >= 16 and rows["alg"] == "ES256"
    assert "private" not in rows
    assert "not verified" in page.inner_text("#dpop-summary")
    assert not recorder(page).problems


def test_the_page_flags_a_proof_carrying_its_private_key(page: Page) -> None:
    client = Key.generate("ES256")
    jwk = client.to_jwk(private=True)
    proof = sign(client, {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk},
                 {"jti": "j" * 22, "htm": "GET", "htu": "https://api.example.com/", "iat": int(NOW)})
    paste(page, proof)
    page.wait_for_selector("#dpop tr[data-field=private]")
    assert "d" in dpop_rows(page)["private"]


def test_the_page_explains_a_dpop_bound_token_and_nothing_for_a_plain_one(page: Page) -> None:
    jkt = Key.generate("ES256").thumbprint()
    paste(page, issued(cnf={"jkt": jkt}))
    page.wait_for_selector("#dpop[data-kind=bound]")
    assert dpop_rows(page) == {"cnf-jkt": jkt}
    paste(page, issued())
    assert page.locator("#dpop").is_hidden()


def test_a_dpop_bound_token_verifies_in_the_page_as_with_inspect(page: Page) -> None:
    text = issued(cnf={"jkt": Key.generate("ES256").thumbprint()})
    paste(page, text)
    assert verify_with_jwks(page) == "verified"
    keys = keyset_for("ES256").public()
    assert audit_token(text, now=NOW, keys=keys).verified
