"""The HTTP defences of the token service, against ``jwtwarden serve`` as a process (issue #17).

Each test removes nothing itself: it states a defence as a behaviour that fails when the
defence is taken out of the code (checked by hand for each, and by ``scripts/mutate``).

- CSRF (double submit): the ``X-CSRF-Token`` header must equal the CSRF cookie, not merely
  be some valid token of the session;
- ``Sec-Fetch-Site: same-site`` is accepted only from an allowed origin (the browser SDK on
  another origin of the site), refused without an ``Origin`` or from any other origin;
- logout and logout-all authenticated by a cookie need the CSRF header and an allowed origin;
- behind a proxy, the client address is the last ``X-Forwarded-For`` hop (the one the proxy
  appended), so a client choosing the first hop cannot escape the per-address login limit.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servicekit import (
    PASSWORD,
    ServerProcess,
    add_user,
    free_port,
    running_server,
    server_env,
)

APP = "https://app.example.com"  # another origin of the site, allowed: the browser SDK's page
EVIL = "https://evil.example.com"  # another origin of the site too, not allowed
REFRESH = "__Secure-jwtwarden-refresh"
CSRF = "__Secure-jwtwarden-csrf"
ACCESS = "__Secure-jwtwarden-access"
PER_ADDRESS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Cookie mode with the access cookie, one extra allowed origin, behind a proxy, and a
    per-address login limit of 3 (per account: 100, so only the address counts)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = server_env(
        tmp_path_factory.mktemp("defences"),
        JWTWARDEN_ISSUER=issuer,
        JWTWARDEN_COOKIE_MODE="1",
        JWTWARDEN_ACCESS_COOKIE="1",
        JWTWARDEN_ALLOWED_ORIGINS=f"{issuer},{APP}",
        JWTWARDEN_TRUST_PROXY_HEADERS="1",
        JWTWARDEN_LOGIN_MAX_FAILURES="100",
        JWTWARDEN_LOGIN_MAX_FAILURES_PER_ADDRESS=str(PER_ADDRESS),
    )
    add_user(env, "alice")
    with running_server(env, port) as running:
        yield running


class Browser:
    """What a browser keeps for the service's origin: its cookies (all ``Secure``, which an
    http:// test server would never get back from httpx's jar, so they are sent by hand)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def keep(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if "max-age=0" in header.lower() or value in ("", '""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def send(self, method: str, path: str, cookies: dict[str, str] | None = None, /,
             **headers: str) -> httpx.Response:
        """One request with the browser's cookies (or ``cookies``); header names are written
        with ``_`` for ``-``."""
        jar = self.cookies if cookies is None else cookies
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if jar:
            sent["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        return self.keep(httpx.request(method, self.server.url + path, headers=sent, timeout=10))

    def login(self) -> str:
        """Log in from the service's own origin; returns the CSRF token."""
        response = self.keep(httpx.post(
            self.server.url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD},
            headers={"origin": self.server.url, "sec-fetch-site": "same-origin",
                     "x-forwarded-for": "192.0.2.1"}, timeout=10))
        assert response.status_code == 200, response.text
        assert {REFRESH, CSRF, ACCESS} <= self.cookies.keys()
        csrf: str = response.json()["csrf_token"]
        assert self.cookies[CSRF] == csrf
        return csrf

    def own_origin(self) -> dict[str, str]:
        return {"origin": self.server.url, "sec_fetch_site": "same-origin"}


def refused_as_csrf(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.json()["reason"] == "csrf"


# ---- the CSRF header must be the cookie ------------------------------------------------------


def test_a_csrf_token_of_the_session_that_is_not_the_cookie_is_refused(server: ServerProcess) -> None:
    browser = Browser(server)
    first = browser.login()
    rotated = browser.send("POST", "/v1/auth/refresh", x_csrf_token=first, **browser.own_origin())
    assert rotated.status_code == 200, rotated.text
    second = browser.cookies[CSRF]
    assert second != first  # both minted by the service for this very session

    header_is_the_old_one = browser.send("POST", "/v1/auth/refresh", x_csrf_token=first,
                                         **browser.own_origin())
    cookie_is_the_old_one = browser.send("POST", "/v1/auth/refresh", {**browser.cookies, CSRF: first},
                                         x_csrf_token=second, **browser.own_origin())
    assert refused_as_csrf(header_is_the_old_one)
    assert refused_as_csrf(cookie_is_the_old_one)
    # the refused requests spent nothing: the matching pair still rotates
    again = browser.send("POST", "/v1/auth/refresh", x_csrf_token=second, **browser.own_origin())
    assert again.status_code == 200, again.text


# ---- Sec-Fetch-Site: same-site ---------------------------------------------------------------


def test_a_same_site_request_without_an_allowed_origin_is_refused(server: ServerProcess) -> None:
    browser = Browser(server)
    csrf = browser.login()
    for origin in (None, EVIL, "null"):
        headers = {"x_csrf_token": csrf, "sec_fetch_site": "same-site"}
        if origin is not None:
            headers["origin"] = origin
        assert refused_as_csrf(browser.send("POST", "/v1/auth/refresh", **headers)), origin
        assert refused_as_csrf(browser.send("GET", "/v1/auth/csrf", **headers)), origin


def test_a_cross_site_request_is_refused_even_from_an_allowed_origin(server: ServerProcess) -> None:
    browser = Browser(server)
    csrf = browser.login()
    response = browser.send("POST", "/v1/auth/refresh", x_csrf_token=csrf, origin=APP,
                            sec_fetch_site="cross-site")
    assert refused_as_csrf(response)


def test_the_browser_sdk_on_an_allowed_origin_of_the_site_refreshes(server: ServerProcess) -> None:
    """What the SDK's fetch(credentials: "include") sends from https://app.example.com: the
    browser adds Origin and Sec-Fetch-Site: same-site; the SDK reads the CSRF token from
    GET /v1/auth/csrf (it cannot read the service's cookie) and sends it back."""
    browser = Browser(server)
    browser.login()
    from_app = {"origin": APP, "sec_fetch_site": "same-site", "sec_fetch_mode": "cors"}
    preflight = browser.send("OPTIONS", "/v1/auth/refresh", {}, origin=APP,
                             access_control_request_method="POST",
                             access_control_request_headers="x-csrf-token")
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == APP
    csrf = browser.send("GET", "/v1/auth/csrf", **from_app)
    assert csrf.status_code == 200, csrf.text
    assert csrf.headers["access-control-allow-origin"] == APP
    refreshed = browser.send("POST", "/v1/auth/refresh", x_csrf_token=csrf.json()["csrf_token"],
                             **from_app)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["access-control-allow-credentials"] == "true"


# ---- logout and logout-all by cookie ---------------------------------------------------------


def _session_lives(browser: Browser, jar: dict[str, str] | None = None) -> bool:
    """Whether the session's refresh cookie (the browser's, or ``jar``) still refreshes."""
    jar = dict(browser.cookies if jar is None else jar)
    refreshed = browser.send("POST", "/v1/auth/refresh", jar, x_csrf_token=jar[CSRF],
                             **browser.own_origin())
    return refreshed.status_code == 200


@pytest.mark.parametrize("credential", ["refresh cookie", "access cookie"])
def test_logout_by_cookie_without_the_csrf_header_is_refused(server: ServerProcess,
                                                           credential: str) -> None:
    browser = Browser(server)
    browser.login()
    jar = dict(browser.cookies)
    if credential == "refresh cookie":
        del jar[ACCESS]
    else:
        del jar[REFRESH]
    out = browser.send("POST", "/v1/auth/logout", jar, **browser.own_origin())
    assert refused_as_csrf(out)
    assert _session_lives(browser)


def test_logout_by_cookie_from_an_origin_not_allowed_is_refused(server: ServerProcess) -> None:
    browser = Browser(server)
    csrf = browser.login()
    out = browser.send("POST", "/v1/auth/logout", x_csrf_token=csrf, origin=EVIL,
                       sec_fetch_site="same-site")
    assert refused_as_csrf(out)
    assert _session_lives(browser)
    before = dict(browser.cookies)
    ok = browser.send("POST", "/v1/auth/logout", x_csrf_token=browser.cookies[CSRF],
                      **browser.own_origin())
    assert ok.status_code == 204
    assert not _session_lives(browser, before)


def test_logout_all_by_the_access_cookie_without_the_csrf_header_is_refused(
    server: ServerProcess,
) -> None:
    browser = Browser(server)
    csrf = browser.login()
    without_csrf = browser.send("POST", "/v1/auth/logout-all", **browser.own_origin())
    only_access = browser.send("POST", "/v1/auth/logout-all", {ACCESS: browser.cookies[ACCESS]},
                               **browser.own_origin())
    foreign = browser.send("POST", "/v1/auth/logout-all", x_csrf_token=csrf, origin=EVIL)
    assert refused_as_csrf(without_csrf)
    assert refused_as_csrf(only_access)
    assert refused_as_csrf(foreign)
    assert _session_lives(browser)
    before = dict(browser.cookies)
    ok = browser.send("POST", "/v1/auth/logout-all", x_csrf_token=browser.cookies[CSRF],
                      **browser.own_origin())
    assert ok.status_code == 204
    assert not _session_lives(browser, before)


# ---- the client address behind a proxy ------------------------------------------------------------


def _failed_login(server: ServerProcess, forwarded_for: str, n: int) -> int:
    return httpx.post(server.url + "/v1/auth/login",
                      json={"username": f"nobody-{n}", "password": "wrong password"},
                      headers={"x-forwarded-for": forwarded_for}, timeout=10).status_code


def test_a_spoofed_first_forwarded_hop_does_not_move_the_client_address(server: ServerProcess) -> None:
    """The proxy appends the address it saw; whatever the client put before it is its own."""
    answers = [_failed_login(server, f"198.51.100.{i}, 203.0.113.7", i) for i in range(PER_ADDRESS + 2)]
    assert answers == [400] * PER_ADDRESS + [429] * 2
    # the same spoofed first hops through another proxy hop: another client, its own budget
    assert _failed_login(server, "198.51.100.1, 203.0.113.8", 99) == 400


def test_the_last_forwarded_hop_is_the_client_address(server: ServerProcess) -> None:
    answers = [_failed_login(server, f"203.0.113.20, 192.0.2.{100 + i}", 200 + i) for i in range(PER_ADDRESS + 1)]
    assert answers == [400] * (PER_ADDRESS + 1)  # one first hop, as many clients as last hops
