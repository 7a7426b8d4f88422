"""The token service's HTTP API in process: shapes, RFC 6749/6750 errors, cookies and CSRF."""

from __future__ import annotations

import base64
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher

from jwtwarden.service.app import ServiceState
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import ISSUER, PASSWORD, asgi_client, make_settings

pytestmark = pytest.mark.anyio


async def login(client: httpx.AsyncClient, state: ServiceState, name: str = "alice",
                **headers: str) -> httpx.Response:
    if await state.accounts.get_user(name) is None:
        await state.accounts.add_user(name, PASSWORD, scope="read")
    return await client.post("/v1/auth/login", json={"username": name, "password": PASSWORD},
                             headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> str:
    return str(response.headers.get("www-authenticate", ""))


# ---- the JSON (non-cookie) mode ---------------------------------------------------------------


async def test_login_answers_the_documented_pair(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        response = await login(client, state)
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in",
                         "refresh_expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["scope"] == "read"
    assert response.headers["cache-control"] == "no-store"


async def test_wrong_password_and_unknown_user_get_the_same_answer(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        wrong = await client.post("/v1/auth/login", json={"username": "alice", "password": "nope-nope"})
        unknown = await client.post("/v1/auth/login", json={"username": "zed", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "invalid_grant"


async def test_login_does_the_same_password_work_for_unknown_users(tmp_path: Path) -> None:
    """Timing equality by construction: an unknown user costs one argon2 verification too."""
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        calls: list[str] = []

        class Counting(PasswordHasher):
            def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
                calls.append(str(hash).split("$")[3])  # the cost parameters of the hash checked
                return super().verify(hash, password)

        state.accounts.hashing.hasher = Counting(time_cost=1, memory_cost=1024, parallelism=1)
        await client.post("/v1/auth/login", json={"username": "alice", "password": "wrong-pass"})
        await client.post("/v1/auth/login", json={"username": "nobody", "password": "wrong-pass"})
    assert len(calls) == 2 and calls[0] == calls[1]


async def test_failed_logins_are_rate_limited_per_account_with_retry_after(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with asgi_client(make_settings(tmp_path, login_max_failures=3, login_window=60), clock) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        for _ in range(3):
            r = await client.post("/v1/auth/login", json={"username": "alice", "password": "wrong-pass"})
            assert r.status_code == 400
        limited = await client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        assert limited.status_code == 429 and limited.json()["reason"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        other = await login(client, state, "bob")  # another account is not affected
        assert other.status_code == 200
        clock.advance(61)
        assert (await login(client, state)).status_code == 200


async def test_failed_logins_are_rate_limited_per_client_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, login_max_failures=100, login_max_failures_per_address=4)
    async with asgi_client(settings) as (client, state):
        for i in range(4):
            await client.post("/v1/auth/login", json={"username": f"u{i}", "password": "wrong-pass"})
        limited = await login(client, state)
    assert limited.status_code == 429 and "retry-after" in limited.headers


async def test_refresh_reuse_and_the_reason_in_the_answer(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        first = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        reused = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        userinfo = await client.get("/v1/auth/userinfo", headers=bearer(first.json()["access_token"]))
    assert first.status_code == 200
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant" and reused.json()["reason"] == "refresh_reused"
    assert userinfo.status_code == 401 and 'error="invalid_token"' in challenge(userinfo)


@pytest.mark.parametrize(("body", "reason"), [
    ({"refresh_token": "jwr_nope"}, "invalid_refresh_token"),
    ({"refresh_token": "x" * 96}, "invalid_refresh_token"),
])
async def test_refresh_refusals_say_why(tmp_path: Path, body: dict[str, str], reason: str) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        response = await client.post("/v1/auth/refresh", json=body)
    assert response.status_code == 400 and response.json()["reason"] == reason


async def test_userinfo_returns_the_verified_claims(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        response = await client.get("/v1/auth/userinfo", headers=bearer(pair["access_token"]))
    claims = response.json()
    assert response.status_code == 200 and claims["iss"] == ISSUER and claims["scope"] == "read"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer a b", "Basic abc", "bearer  ", "Token x"])
async def test_userinfo_without_a_proper_bearer_token_is_401(tmp_path: Path, header: str | None) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        headers = {} if header is None else {"Authorization": header}
        response = await client.get("/v1/auth/userinfo", headers=headers)
    assert response.status_code == 401
    assert challenge(response).startswith('Bearer realm="jwtwarden"')
    if header is None:  # RFC 6750 3.1: no error code when no credentials were sent
        assert "error=" not in challenge(response)


async def test_logout_needs_some_credential(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        response = await client.post("/v1/auth/logout")
    assert response.status_code == 401


async def test_logout_with_only_the_refresh_token_works(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        out = await client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
        again = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert out.status_code == 204
    assert again.json()["reason"] == "refresh_revoked"


async def test_logout_all_requires_a_valid_access_token(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        refused = await client.post("/v1/auth/logout-all", headers=bearer("a.b.c"))
        done = await client.post("/v1/auth/logout-all", headers=bearer(pair["access_token"]))
        after = await client.get("/v1/auth/userinfo", headers=bearer(pair["access_token"]))
    assert refused.status_code == 401 and done.status_code == 204 and after.status_code == 401


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_introspection_needs_an_authenticated_client(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        api, secret = await state.accounts.add_client("rs", {"introspect"})
        form = {"token": pair["access_token"]}
        anonymous = await client.post("/v1/auth/introspect", data=form)
        wrong = await client.post("/v1/auth/introspect", data=form, headers=basic(api.id, "nope"))
        ok = await client.post("/v1/auth/introspect", data=form, headers=basic(api.id, secret))
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert ok.status_code == 200 and ok.json()["active"] is True and ok.json()["sub"]


async def test_a_sessions_client_cannot_introspect_and_vice_versa(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        backend, secret = await state.accounts.add_client("backend", {"sessions"})
        response = await client.post("/v1/auth/introspect", data={"token": "x"},
                                     headers=basic(backend.id, secret))
        rs, rs_secret = await state.accounts.add_client("rs", {"introspect"})
        sessions = await client.post("/v1/sessions", json={"subject": "s1"}, headers=basic(rs.id, rs_secret))
    assert response.status_code == 401 and sessions.status_code == 401


async def test_trusted_backend_creates_a_pair_for_its_subject(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        backend, secret = await state.accounts.add_client("backend", {"sessions"})
        response = await client.post("/v1/sessions", headers=basic(backend.id, secret),
                                     json={"subject": "ext-7", "scope": "read", "claims": {"tenant": "t1"}})
        info = await client.get("/v1/auth/userinfo", headers=bearer(response.json()["access_token"]))
        refused = await client.post("/v1/sessions", headers=basic(backend.id, secret),
                                    json={"subject": "ext-7", "claims": {"card": "4111 1111 1111 1111"}})
    assert response.status_code == 201 and "refresh_token" in response.json()
    assert info.json()["sub"] == "ext-7" and info.json()["tenant"] == "t1"
    assert refused.status_code == 400 and refused.json()["reason"] == "sensitive_claim"
    assert "4111" not in refused.text


async def test_rfc7009_revocation_answers_200_even_for_garbage(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        garbage = await client.post("/v1/auth/revoke", data={"token": "garbage"})
        real = await client.post("/v1/auth/revoke", data={"token": pair["refresh_token"],
                                                            "token_type_hint": "refresh_token"})
        refresh = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        bad_hint = await client.post("/v1/auth/revoke", data={"token": "x", "token_type_hint": "id_token"})
        no_token = await client.post("/v1/auth/revoke", data={})
        json_body = await client.post("/v1/auth/revoke", json={"token": "x"})
    assert garbage.status_code == 200 and real.status_code == 200
    assert refresh.json()["reason"] == "refresh_revoked"
    assert bad_hint.json()["error"] == "unsupported_token_type"
    assert no_token.status_code == 400 and json_body.status_code == 400


async def test_jwks_metadata_and_health(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        jwks = await client.get("/.well-known/jwks.json")
        meta = await client.get("/.well-known/oauth-authorization-server")
        health = await client.get("/healthz")
    [key] = jwks.json()["keys"]
    assert key["alg"] == "ES256" and "d" not in key
    assert jwks.headers["cache-control"].startswith("public, max-age=")
    assert meta.json()["issuer"] == ISSUER and meta.json()["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert meta.json()["revocation_endpoint"].endswith("/v1/auth/revoke")
    assert health.json()["status"] == "ok"


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("post", "/v1/auth/login", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/v1/auth/login", {"json": {"username": 5, "password": []}}, 400),
    ("post", "/v1/auth/login", {"json": {"username": "a", "password": "b", "extra": 1}}, 400),
    ("post", "/v1/auth/login", {"data": {"username": "a", "password": "b"}}, 400),
    ("post", "/v1/auth/login", {"content": b"x" * 70_000, "headers": {"content-type": "application/json"}}, 413),
    ("post", "/v1/auth/refresh", {"json": {"refresh_token": 1}}, 400),
    ("post", "/v1/auth/refresh", {"json": []}, 400),
    ("get", "/v1/revocations?since=garbage", {}, 200),
    ("get", "/v1/revocations?wait=nan", {}, 200),
    ("get", "/nope", {}, 404),
    ("delete", "/v1/auth/login", {}, 405),
])
async def test_malformed_requests_get_rfc_errors_never_500(
    tmp_path: Path, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        response = await getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    if status >= 400:
        assert "error" in response.json()
    if status == 405:  # RFC 9110 section 15.5.6: a 405 lists the methods that are allowed
        assert response.headers["allow"] == "POST"


async def test_an_unreachable_database_is_503_with_retry_after(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        db_file = tmp_path / "data" / "jwtwarden.db"
        await state.db.dispose()
        db_file.rename(db_file.with_suffix(".gone"))
        db_file.mkdir()  # a directory where the database was: nothing can open it
        response = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        health = await client.get("/healthz")
    assert response.status_code == 503 and response.headers["retry-after"]
    assert response.json()["error"] == "temporarily_unavailable"
    assert health.status_code == 503


async def test_revocation_feed_snapshot_then_increments(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        pair = (await login(client, state)).json()
        snapshot = (await client.get("/v1/revocations")).json()
        await client.post("/v1/auth/logout", headers=bearer(pair["access_token"]))
        delta = (await client.get("/v1/revocations", params={"since": snapshot["cursor"]})).json()
        quiet = (await client.get("/v1/revocations", params={"since": delta["cursor"]})).json()
    assert snapshot["reset"] is True and snapshot["revocations"] == []
    assert delta["reset"] is False and {r["kind"] for r in delta["revocations"]} == {"sid", "jti"}
    assert quiet["revocations"] == [] and quiet["cursor"] == delta["cursor"]


# ---- cookie mode ---------------------------------------------------------------------------------


def set_cookies(response: httpx.Response) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            out[name] = {"value": morsel.value, **{k: morsel[k] for k in morsel if morsel[k]},
                         "raw": header}
    return out


COOKIE_SETTINGS: dict[str, Any] = {"cookie_mode": True}
SAME_ORIGIN = {"Origin": ISSUER, "Sec-Fetch-Site": "same-origin"}


async def cookie_login(client: httpx.AsyncClient, state: ServiceState) -> tuple[httpx.Response, str]:
    response = await login(client, state, **SAME_ORIGIN)
    return response, response.json()["csrf_token"]


async def test_cookie_mode_sets_hardened_cookies_and_keeps_the_refresh_token_out_of_the_body(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, **COOKIE_SETTINGS)) as (client, state):
        response, csrf = await cookie_login(client, state)
    cookies = set_cookies(response)
    refresh = cookies["__Secure-jwtwarden-refresh"]
    assert "refresh_token" not in response.json() and "access_token" in response.json()
    assert refresh["path"] == "/v1/auth" and refresh["httponly"] and refresh["secure"]
    assert refresh["samesite"].lower() == "strict" and int(refresh["max-age"]) == 7 * 86_400
    assert cookies["__Secure-jwtwarden-csrf"]["value"] == csrf
    assert not cookies["__Secure-jwtwarden-csrf"].get("httponly")
    assert "__Secure-jwtwarden-access" not in cookies


async def test_cookie_refresh_with_the_csrf_token_rotates(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, **COOKIE_SETTINGS)) as (client, state):
        _, csrf = await cookie_login(client, state)
        response = await client.post("/v1/auth/refresh", headers={**SAME_ORIGIN, "X-CSRF-Token": csrf})
        again = await client.post("/v1/auth/refresh",
                                  headers={**SAME_ORIGIN, "X-CSRF-Token": response.json()["csrf_token"]})
    assert response.status_code == 200 and "__Secure-jwtwarden-refresh" in set_cookies(response)
    assert again.status_code == 200


@pytest.mark.parametrize("case", ["missing", "wrong", "other-session", "earlier-token-of-this-session",
                                  "cross-site", "foreign-origin", "same-site-without-origin",
                                  "same-site-foreign-origin"])
async def test_cookie_requests_without_csrf_proof_are_403(tmp_path: Path, case: str) -> None:
    async with asgi_client(make_settings(tmp_path, **COOKIE_SETTINGS)) as (client, state):
        _, csrf = await cookie_login(client, state)
        headers = {**SAME_ORIGIN, "X-CSRF-Token": csrf}
        if case == "missing":
            del headers["X-CSRF-Token"]
        elif case == "wrong":
            headers["X-CSRF-Token"] = csrf[:-2] + "AA"
            client.cookies.set("__Secure-jwtwarden-csrf", headers["X-CSRF-Token"])
        elif case == "other-session":
            other = await login(httpx.AsyncClient(transport=client._transport, base_url="https://testserver"),
                                state, "bob", **SAME_ORIGIN)
            headers["X-CSRF-Token"] = other.json()["csrf_token"]
            client.cookies.set("__Secure-jwtwarden-csrf", headers["X-CSRF-Token"])
        elif case == "earlier-token-of-this-session":  # valid for the session, not the cookie
            rotated = await client.post("/v1/auth/refresh", headers=headers)
            assert rotated.status_code == 200 and rotated.json()["csrf_token"] != csrf
        elif case == "cross-site":
            headers["Sec-Fetch-Site"] = "cross-site"
        elif case == "same-site-without-origin":
            del headers["Origin"]
            headers["Sec-Fetch-Site"] = "same-site"
        elif case == "same-site-foreign-origin":
            headers.update({"Origin": "https://evil.example", "Sec-Fetch-Site": "same-site"})
        else:
            headers["Origin"] = "https://evil.example"
        refresh = await client.post("/v1/auth/refresh", headers=headers)
        logout = await client.post("/v1/auth/logout", headers=headers)
    assert refresh.status_code == 403 and refresh.json()["reason"] == "csrf"
    assert logout.status_code == 403


async def test_a_same_site_request_from_an_allowed_origin_is_accepted(tmp_path: Path) -> None:
    """The browser SDK on another allowed origin of the site (tests/test_service_defences.py
    runs the same against the service as a process)."""
    app_origin = "https://app.example.com"
    settings = make_settings(tmp_path, **COOKIE_SETTINGS, allowed_origins=(ISSUER, app_origin))
    async with asgi_client(settings) as (client, state):
        await cookie_login(client, state)
        from_app = {"Origin": app_origin, "Sec-Fetch-Site": "same-site"}
        csrf = await client.get("/v1/auth/csrf", headers=from_app)
        refresh = await client.post("/v1/auth/refresh",
                                    headers={**from_app, "X-CSRF-Token": csrf.json()["csrf_token"]})
        cross = await client.post("/v1/auth/refresh", headers={
            "Origin": app_origin, "Sec-Fetch-Site": "cross-site",
            "X-CSRF-Token": refresh.json()["csrf_token"]})
    assert csrf.status_code == 200 and refresh.status_code == 200
    assert cross.status_code == 403


@pytest.mark.parametrize("token", ["\u00e9t\u00e9".encode(), b"\xff\xfe.\x80", "\u00e9.x".encode("latin-1")])
async def test_a_non_ascii_csrf_token_is_a_403_not_a_500(tmp_path: Path, token: bytes) -> None:
    """Issue #16 F6: hmac.compare_digest refuses non-ASCII str; the tokens are compared as bytes."""
    async with asgi_client(make_settings(tmp_path, **COOKIE_SETTINGS)) as (client, state):
        await cookie_login(client, state)
        client.cookies.set("__Secure-jwtwarden-csrf", token.decode("latin-1"))
        headers = {k.encode(): v.encode() for k, v in SAME_ORIGIN.items()} | {b"X-CSRF-Token": token}
        refresh = await client.post("/v1/auth/refresh", headers=headers)
        logout = await client.post("/v1/auth/logout", headers=headers)
    assert refresh.status_code == 403 and refresh.json()["reason"] == "csrf"
    assert logout.status_code == 403


async def test_cookie_login_from_another_origin_is_refused(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, **COOKIE_SETTINGS)) as (client, state):
        response = await login(client, state, Origin="https://evil.example")
    assert response.status_code == 403


async def test_cookie_logout_clears_the_cookies(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, **COOKIE_SETTINGS)) as (client, state):
        _, csrf = await cookie_login(client, state)
        out = await client.post("/v1/auth/logout", headers={**SAME_ORIGIN, "X-CSRF-Token": csrf})
    cleared = set_cookies(out)
    assert out.status_code == 204
    assert cleared["__Secure-jwtwarden-refresh"]["value"] == "" or "max-age=0" in cleared["__Secure-jwtwarden-refresh"]["raw"].lower()


async def test_access_cookie_option_sets_an_httponly_access_cookie_usable_for_userinfo(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, cookie_mode=True, access_cookie=True)) as (client, state):
        response, _ = await cookie_login(client, state)
        access = set_cookies(response)["__Secure-jwtwarden-access"]
        info = await client.get("/v1/auth/userinfo")
    assert access["httponly"] and access["secure"] and access["path"] == "/"
    assert info.status_code == 200


async def test_the_service_serves_the_debugger_under_a_strict_csp(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        page = await client.get("/debugger")
    csp = page.headers["content-security-policy"]
    assert page.status_code == 200 and "jwtwarden" in page.text
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
