"""What the browser SDK needs from the service, attacked in process: CORS for the allowed
origins only, cookie requests from another origin of the same site only when it is listed,
and ``GET /v1/auth/csrf`` (the session's CSRF token for a page that cannot read the cookie).

The SDK's own behaviour in Chromium is in test_client_browser.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jwtwarden.service.app import ServiceState
from jwtwarden.service.config import ConfigError
from tests.servicekit import PASSWORD, asgi_client, make_settings

APP = "https://app.example.com"  # the allowed origin: another origin of the service's site
SIBLING = "https://blog.example.com"  # same site, not listed
CSRF = "__Secure-jwtwarden-csrf"
ACA = "access-control-allow-"

pytestmark = pytest.mark.anyio


def from_app(origin: str = APP, site: str = "same-site") -> dict[str, str]:
    return {"Origin": origin, "Sec-Fetch-Site": site}


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceState]]:
    settings = make_settings(tmp_path, cookie_mode=True, allowed_origins=(APP,))
    async with asgi_client(settings) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        await state.accounts.add_user("bob", PASSWORD)
        yield client, state


async def log_in(client: httpx.AsyncClient, name: str = "alice", **headers: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"username": name, "password": PASSWORD},
                             headers=headers or from_app())


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def preflight(method: str = "POST", headers: str = "content-type, x-csrf-token",
              origin: str = APP) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers}


# ---- CORS ------------------------------------------------------------------------------------


async def test_an_allowed_origin_may_read_answers_with_credentials(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    answer = await log_in(client)
    assert answer.status_code == 200
    assert answer.headers[ACA + "origin"] == APP
    assert answer.headers[ACA + "credentials"] == "true"
    assert "WWW-Authenticate" in answer.headers["access-control-expose-headers"]
    assert "Origin" in answer.headers["vary"]


@pytest.mark.parametrize("origin", [SIBLING, "null", "https://app.example.com.evil.example",
                                    "http://app.example.com", "https://APP.example.com", APP + ":443"])
async def test_any_other_origin_gets_no_cors_header(service: tuple[httpx.AsyncClient, ServiceState], origin: str) -> None:
    client, _ = service
    answer = await client.get("/.well-known/jwks.json", headers={"Origin": origin})
    assert answer.status_code == 200
    assert cors_headers(answer) == {}
    assert "Origin" in answer.headers["vary"]  # a shared cache never serves it to APP


async def test_a_preflight_from_the_allowed_origin_names_exactly_what_is_allowed(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    answer = await client.options("/v1/auth/refresh", headers=preflight())
    assert answer.status_code == 204
    assert answer.headers[ACA + "origin"] == APP  # never "*" with credentials
    assert answer.headers[ACA + "credentials"] == "true"
    allowed = {h.strip().lower() for h in answer.headers[ACA + "headers"].split(",")}
    assert allowed == {"authorization", "content-type", "dpop", "x-csrf-token"}  # DPoP: RFC 9449
    assert {m.strip() for m in answer.headers[ACA + "methods"].split(",")} == {"GET", "HEAD", "POST"}
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "Origin" in answer.headers["vary"]


@pytest.mark.parametrize(("origin", "method", "headers"), [
    (SIBLING, "POST", "content-type"),
    ("null", "POST", "content-type"),
    ("https://evil.example", "GET", ""),
    (APP, "DELETE", ""),
    (APP, "PUT", "content-type"),
    (APP, "POST", "content-type, x-forwarded-for"),
    (APP, "POST", "cookie"),
])
async def test_a_preflight_outside_the_policy_is_refused_without_cors_headers(
    service: tuple[httpx.AsyncClient, ServiceState], origin: str, method: str, headers: str,
) -> None:
    client, _ = service
    answer = await client.options("/v1/auth/login", headers=preflight(method, headers, origin))
    assert answer.status_code == 403
    assert cors_headers(answer) == {}
    assert answer.json()["error"] == "access_denied"


async def test_an_options_request_that_is_not_a_preflight_is_routed_as_usual(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    answer = await client.options("/v1/auth/login", headers={"Origin": APP})
    assert answer.status_code == 405 and "POST" in answer.headers["allow"]


async def test_an_oversized_body_is_refused_readably_for_the_allowed_origin(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    answer = await client.post("/v1/auth/login", content=b"{" + b" " * 70_000 + b"}",
                               headers={**from_app(), "Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.headers[ACA + "origin"] == APP


@pytest.mark.parametrize("origin", ["*", "null", "HTTPS://app.example.com", "https://app.example.com:443",
                                    "https://app.example.com/", "https://user@app.example.com"])
def test_allowed_origins_must_be_written_as_browsers_send_them(tmp_path: Path, origin: str) -> None:
    with pytest.raises(ConfigError, match="ALLOWED_ORIGINS"):
        make_settings(tmp_path, allowed_origins=(origin,))


# ---- cookie requests from another origin of the site ------------------------------------------


async def test_a_listed_origin_of_the_same_site_can_log_in_refresh_and_log_out(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    csrf = (await log_in(client)).json()["csrf_token"]
    refreshed = await client.post("/v1/auth/refresh", headers={**from_app(), "X-CSRF-Token": csrf})
    assert refreshed.status_code == 200
    out = await client.post("/v1/auth/logout",
                            headers={**from_app(), "X-CSRF-Token": refreshed.json()["csrf_token"]})
    assert out.status_code == 204


@pytest.mark.parametrize("headers", [
    from_app(SIBLING),  # same site, not listed
    {"Sec-Fetch-Site": "same-site"},  # same site, no Origin to check
    from_app(site="cross-site"),  # listed, but SameSite=Strict cookies are not meant for it
    from_app("null"),
])
async def test_other_same_site_or_cross_site_cookie_requests_are_refused(
    service: tuple[httpx.AsyncClient, ServiceState], headers: dict[str, str],
) -> None:
    client, _ = service
    csrf = (await log_in(client)).json()["csrf_token"]
    login = await log_in(client, "bob", **headers)
    refresh = await client.post("/v1/auth/refresh", headers={**headers, "X-CSRF-Token": csrf})
    read = await client.get("/v1/auth/csrf", headers=headers)
    assert [login.status_code, refresh.status_code, read.status_code] == [403, 403, 403]
    assert refresh.json()["reason"] == "csrf"


# ---- GET /v1/auth/csrf ---------------------------------------------------------------------------


async def test_csrf_returns_the_sessions_token_to_the_allowed_origin(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    csrf = (await log_in(client)).json()["csrf_token"]
    read = await client.get("/v1/auth/csrf", headers=from_app())
    assert read.status_code == 200 and read.json() == {"csrf_token": csrf}
    assert read.headers["cache-control"] == "no-store"
    assert read.headers[ACA + "origin"] == APP
    assert "set-cookie" not in read.headers  # a read: nothing changes
    rotated = (await client.post("/v1/auth/refresh", headers={**from_app(), "X-CSRF-Token": csrf})).json()
    again = await client.get("/v1/auth/csrf", headers=from_app())
    assert again.json() == {"csrf_token": rotated["csrf_token"]} != {"csrf_token": csrf}


async def test_csrf_without_a_session_cookie_is_400(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    read = await client.get("/v1/auth/csrf", headers=from_app())
    assert read.status_code == 400 and read.json()["error"] == "invalid_request"


async def test_csrf_never_echoes_a_token_of_another_session(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    """A cookie tossed into the jar (bob's CSRF token beside alice's refresh cookie) is not
    echoed: only the token bound to the refresh cookie's session is."""
    client, _ = service
    bob_csrf = (await log_in(client, "bob")).json()["csrf_token"]
    alice = await log_in(client)
    assert alice.status_code == 200
    client.cookies.set(CSRF, bob_csrf)
    read = await client.get("/v1/auth/csrf", headers=from_app())
    assert read.status_code == 400 and read.json()["reason"] == "invalid_refresh_token"
    assert bob_csrf not in read.text


async def test_csrf_with_an_unknown_refresh_cookie_is_400(service: tuple[httpx.AsyncClient, ServiceState]) -> None:
    client, _ = service
    csrf = (await log_in(client)).json()["csrf_token"]
    client.cookies.set("__Secure-jwtwarden-refresh", "jwr_garbage", path="/v1/auth")
    read = await client.get("/v1/auth/csrf", headers=from_app())
    assert read.status_code == 400 and csrf not in read.text


async def test_csrf_is_refused_outside_cookie_mode(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        read = await client.get("/v1/auth/csrf")
    assert read.status_code == 400 and "cookie mode" in read.json()["error_description"]
