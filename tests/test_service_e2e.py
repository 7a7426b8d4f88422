"""End to end: a real ``jwtwarden serve`` process on loopback; users and clients added with the CLI.

Most tests share one server (module scope) and each logs in its own session; tests that need
another configuration (low rate limits, a grace window) start their own. After the race the
database file is read behind the server's back (SQLite, read-only). Malformed input goes to
the real server too, and is fuzzed with hypothesis over every OpenAPI operation of the ASGI
app on SQLite and PostgreSQL: no input may produce a 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jwtwarden import KeySet, Verifier, decode_unverified
from tests.servicekit import (
    PASSWORD,
    ServerProcess,
    add_client,
    add_user,
    asgi_service,
    make_settings,
    read_families,
    running_server,
    server_env,
    token_hash,
    tokens,
)

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
INVALID_TOKEN = re.compile(r'^Bearer realm="[^"]*", error="invalid_token"')
PAIR_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in", "refresh_expires_in"}


@dataclass
class Service:
    server: ServerProcess
    db: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def login(self, user: str = "alice", password: str = PASSWORD, **kwargs: Any) -> httpx.Response:
        return self.post("/v1/auth/login", json={"username": user, "password": password}, **kwargs)

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.post("/v1/auth/refresh", json={"refresh_token": refresh_token})

    def userinfo(self, access_token: str) -> httpx.Response:
        return self.get("/v1/auth/userinfo", headers=bearer(access_token))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def start_service(tmp: Path, users: tuple[str, ...], **extra: str) -> Iterator[Service]:
    with running_server(server_env(tmp, **extra)) as server:
        for user in users:
            add_user(server.env, user)  # the CLI, on the database the server is using
        yield Service(server, tmp / "data" / "jwtwarden.db")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from start_service(tmp_path_factory.mktemp("e2e"), ("alice", "carol"))


@pytest.fixture(scope="module")
def introspector(service: Service) -> tuple[str, str]:
    return add_client(service.env, "introspector", "introspect")


@pytest.fixture(scope="module")
def backend(service: Service) -> tuple[str, str]:
    return add_client(service.env, "backend", "sessions")


def assert_invalid_token(response: httpx.Response, reason: str | None = None) -> None:
    assert response.status_code == 401
    assert INVALID_TOKEN.match(response.headers["www-authenticate"])
    assert response.json()["error"] == "invalid_token"
    if reason is not None:
        assert response.json()["reason"] == reason


def assert_invalid_grant(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 400
    assert (response.json()["error"], response.json()["reason"]) == ("invalid_grant", reason)


# ---- the session life cycle --------------------------------------------------------------------


def test_login_userinfo_and_refresh_give_a_new_pair_of_the_same_session(service: Service) -> None:
    first = tokens(service.login())
    info = service.userinfo(first["access_token"])
    second = tokens(service.refresh(first["refresh_token"]))
    assert info.status_code == 200
    assert set(first) == set(second) == PAIR_FIELDS and second["token_type"] == "Bearer"
    assert second["refresh_token"] != first["refresh_token"]
    assert service.userinfo(second["access_token"]).json()["sid"] == info.json()["sid"]


def test_reusing_a_refresh_token_is_refused_and_revokes_the_session(service: Service) -> None:
    first = tokens(service.login())
    second = tokens(service.refresh(first["refresh_token"]))
    assert_invalid_grant(service.refresh(first["refresh_token"]), "refresh_reused")
    assert_invalid_token(service.userinfo(second["access_token"]), "revoked")
    assert_invalid_token(service.userinfo(first["access_token"]), "revoked")
    assert_invalid_grant(service.refresh(second["refresh_token"]), "refresh_revoked")


def test_logout_with_bearer_and_refresh_token_ends_the_session(service: Service) -> None:
    pair = tokens(service.login())
    response = service.post("/v1/auth/logout", headers=bearer(pair["access_token"]),
                            json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 204
    assert_invalid_token(service.userinfo(pair["access_token"]), "revoked")
    assert_invalid_grant(service.refresh(pair["refresh_token"]), "refresh_revoked")


def test_logout_all_ends_every_session_of_the_user_and_only_theirs(service: Service) -> None:
    mine = [tokens(service.login("carol")) for _ in range(2)]
    theirs = tokens(service.login("alice"))
    response = service.post("/v1/auth/logout-all", headers=bearer(mine[0]["access_token"]))
    assert response.status_code == 204
    for pair in mine:
        assert_invalid_token(service.userinfo(pair["access_token"]), "revoked")
        assert_invalid_grant(service.refresh(pair["refresh_token"]), "refresh_revoked")
    assert service.userinfo(theirs["access_token"]).status_code == 200


# ---- discovery and operations -------------------------------------------------------------------


def test_jwks_is_cacheable_and_verifies_the_issued_access_tokens(service: Service) -> None:
    response = service.get("/.well-known/jwks.json")
    max_age = re.search(r"\bmax-age=(\d+)\b", response.headers["cache-control"])
    assert response.status_code == 200 and max_age is not None and int(max_age.group(1)) > 0
    verifier = Verifier(KeySet.from_public_jwks(response.json()), issuer=service.url,
                        audience="api", algorithms=["ES256"], typ="at+jwt")
    access = tokens(service.login())["access_token"]
    assert verifier.verify(access).sid == decode_unverified(access).payload["sid"]


def test_rfc8414_metadata_names_this_issuer_and_its_endpoints(service: Service) -> None:
    response = service.get("/.well-known/oauth-authorization-server")
    meta = response.json()
    assert response.status_code == 200
    assert meta["issuer"] == service.url
    assert meta["jwks_uri"] == service.url + "/.well-known/jwks.json"
    assert meta["revocation_endpoint"] == service.url + "/v1/auth/revoke"
    assert meta["introspection_endpoint"] == service.url + "/v1/auth/introspect"
    assert httpx.get(meta["jwks_uri"]).json()["keys"]


def test_healthz_answers_ok_and_is_not_cached(service: Service) -> None:
    response = service.get("/healthz")
    assert (response.status_code, response.json()["status"]) == (200, "ok")
    assert response.headers["cache-control"] == "no-store"


# ---- clients: introspection, revocation, trusted backends ------------------------------------------


def test_introspection_by_a_cli_client_over_basic_auth(service: Service, introspector: tuple[str, str]) -> None:
    pair = tokens(service.login())
    auth = basic(*introspector)
    access = service.post("/v1/auth/introspect", headers=auth, data={"token": pair["access_token"]})
    refresh = service.post("/v1/auth/introspect", headers=auth, data={"token": pair["refresh_token"]})
    assert access.status_code == refresh.status_code == 200
    assert (access.json()["active"], access.json()["token_type"]) == (True, "access_token")
    assert (refresh.json()["active"], refresh.json()["token_type"]) == (True, "refresh_token")
    assert access.json()["sid"] == refresh.json()["sid"]
    tokens(service.refresh(pair["refresh_token"]))
    spent = service.post("/v1/auth/introspect", headers=auth, data={"token": pair["refresh_token"]})
    assert spent.json() == {"active": False}


@pytest.mark.parametrize("authorization", [
    "wrong-secret", "unknown-client", "Basic", "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    "Basic " + base64.b64encode(b":only-secret").decode(), "Bearer x", "Basic " + "QQ==" * 1000,
])
def test_introspection_refuses_bad_client_credentials_with_401(
    service: Service, introspector: tuple[str, str], authorization: str
) -> None:
    client_id, secret = introspector
    if authorization == "wrong-secret":
        authorization = basic(client_id, secret + "x")["authorization"]
    elif authorization == "unknown-client":
        authorization = basic("jwc_unknown", secret)["authorization"]
    response = service.post("/v1/auth/introspect", headers={"authorization": authorization},
                            data={"token": "x"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_rfc7009_revoking_a_refresh_token_ends_its_session(service: Service) -> None:
    pair = tokens(service.login())
    response = service.post("/v1/auth/revoke", data={"token": pair["refresh_token"],
                                                     "token_type_hint": "refresh_token"})
    assert response.status_code == 200
    assert_invalid_grant(service.refresh(pair["refresh_token"]), "refresh_revoked")
    assert_invalid_token(service.userinfo(pair["access_token"]), "revoked")


def test_rfc7009_revoking_an_access_token_keeps_the_session(service: Service) -> None:
    pair = tokens(service.login())
    response = service.post("/v1/auth/revoke", data={"token": pair["access_token"]})
    assert response.status_code == 200
    assert_invalid_token(service.userinfo(pair["access_token"]), "revoked")
    assert service.refresh(pair["refresh_token"]).status_code == 200


def test_trusted_backend_creates_a_session_for_its_own_subject(service: Service, backend: tuple[str, str]) -> None:
    response = service.post("/v1/sessions", headers=basic(*backend),
                            json={"subject": "ext-7", "scope": "read"})
    assert response.status_code == 201
    pair = response.json()
    claims = service.userinfo(pair["access_token"]).json()
    assert (claims["sub"], claims["scope"]) == ("ext-7", "read")
    assert service.refresh(pair["refresh_token"]).status_code == 200


def test_trusted_backend_sessions_need_the_sessions_permission(
    service: Service, introspector: tuple[str, str]
) -> None:
    response = service.post("/v1/sessions", headers=basic(*introspector), json={"subject": "ext-7"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


# ---- failed logins are rate limited -------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Low limits; behind a (pretend) proxy, so each test can be its own client address."""
    yield from start_service(
        tmp_path_factory.mktemp("limits"), ("bob",), JWTWARDEN_LOGIN_MAX_FAILURES="3",
        JWTWARDEN_LOGIN_MAX_FAILURES_PER_ADDRESS="5", JWTWARDEN_LOGIN_WINDOW="300",
        JWTWARDEN_TRUST_PROXY_HEADERS="1")


def from_address(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 300


def test_failed_logins_are_limited_per_account_from_any_address(limited: Service) -> None:
    for i in range(3):  # three failures, each from another address
        failed = limited.login("bob", "wrong password", headers=from_address(f"198.51.100.{i}"))
        assert failed.status_code == 400
    # the account is closed for now, even to the right password from a fresh address
    assert_rate_limited(limited.login("bob", headers=from_address("198.51.100.99")))


def test_failed_logins_are_limited_per_client_address_across_accounts(limited: Service) -> None:
    attacker = from_address("203.0.113.7")
    for i in range(5):  # one failure for each of five names: no account reaches its limit
        assert limited.login(f"nobody-{i}", "wrong password", headers=attacker).status_code == 400
    assert_rate_limited(limited.login("nobody-5", "wrong password", headers=attacker))
    other = limited.login("nobody-5", "wrong password", headers=from_address("203.0.113.8"))
    assert other.status_code == 400  # another address is not affected


# ---- the race -----------------------------------------------------------------------------------


async def concurrent_refreshes(url: str, refresh_token: str, n: int = 50) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        return list(await asyncio.gather(*(
            client.post("/v1/auth/refresh", json={"refresh_token": refresh_token}) for _ in range(n))))


def test_fifty_concurrent_refreshes_of_one_token_give_exactly_one_successor(service: Service) -> None:
    pair = tokens(service.login())
    sid = decode_unverified(pair["access_token"]).payload["sid"]
    responses = asyncio.run(concurrent_refreshes(service.url, pair["refresh_token"]))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 400]
    assert len(ok) == 1 and len(refused) == 49
    assert {r.json()["reason"] for r in refused} <= {"refresh_reused", "refresh_revoked"}
    family = read_families(service.db)[sid]
    assert (family.generation, family.tokens) == (1, 2)  # one successor, no fork
    # strict mode: the 49 duplicates were reuse, so the family is revoked, winner included
    assert family.revoked_reason == "refresh_reused" and family.usable == frozenset()
    assert_invalid_token(service.userinfo(ok[0].json()["access_token"]), "revoked")


@pytest.fixture(scope="module")
def graceful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from start_service(tmp_path_factory.mktemp("grace"), ("alice",), JWTWARDEN_GRACE_WINDOW="10")


def test_fifty_concurrent_refreshes_within_the_grace_window_all_get_the_same_successor(
    graceful: Service,
) -> None:
    pair = tokens(graceful.login())
    sid = decode_unverified(pair["access_token"]).payload["sid"]
    responses = asyncio.run(concurrent_refreshes(graceful.url, pair["refresh_token"]))
    assert [r.status_code for r in responses] == [200] * 50
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    family = read_families(graceful.db)[sid]
    assert (family.revoked_reason, family.generation, family.tokens) == (None, 1, 2)
    assert family.usable == {token_hash(successors.pop())}


# ---- malformed input never gets a 500 -------------------------------------------------------------

HUGE = b'{"username": "' + b"a" * 70_000 + b'", "password": "x"}'
MALFORMED: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
    ("POST", "/v1/auth/login", b"this is not json", JSON, 400),
    ("POST", "/v1/auth/login", b'{"username": "alice", "password": ', JSON, 400),
    ("POST", "/v1/auth/login", b'\xff\xfe{"username": 1}', JSON, 400),
    ("POST", "/v1/auth/login", b'{"username": 1, "password": ["x"]}', JSON, 400),
    ("POST", "/v1/auth/login", b'[{"username": "alice"}]', JSON, 400),
    ("POST", "/v1/auth/login", b'{"username": "alice", "password": "x", "admin": true}', JSON, 400),
    ("POST", "/v1/auth/login", b"username=alice&password=x", FORM, 400),
    ("POST", "/v1/auth/login", b'{"username": "alice", "password": "x"}', {"content-type": "text/plain"}, 400),
    ("POST", "/v1/auth/login", b"", {}, 400),
    ("POST", "/v1/auth/refresh", b"refresh_token=jwr_x", FORM, 400),
    ("POST", "/v1/auth/refresh", b'{"refresh_token": 12}', JSON, 400),
    ("POST", "/v1/auth/refresh", b'{"refresh_token": "' + b"A" * 300 + b'"}', JSON, 400),
    ("POST", "/v1/auth/refresh", b'{"refresh_token": "jwr_garbage"}', JSON, 400),
    ("POST", "/v1/auth/refresh", b'{"refresh_token": "x", "extra": 1}', JSON, 400),
    ("POST", "/v1/auth/refresh", b'"jwr_x"', JSON, 400),
    ("POST", "/v1/auth/logout", b'{"refresh_token": {}}', JSON, 400),
    ("POST", "/v1/auth/logout", b"{}", {**JSON, "authorization": "Bearer"}, 401),
    ("POST", "/v1/auth/logout-all", None, {"authorization": "Bearer a.b.c"}, 401),
    ("POST", "/v1/auth/revoke", b"token=a&token=b", FORM, 400),
    ("POST", "/v1/auth/revoke", b"token=x&token_type_hint=id_token", FORM, 400),
    ("POST", "/v1/auth/revoke", b'{"token": "x"}', JSON, 400),
    ("POST", "/v1/auth/revoke", b"token=%ff%fe", FORM, 200),  # RFC 7009: unknown tokens are fine
    ("POST", "/v1/auth/introspect", b"token=x", FORM, 401),
    ("POST", "/v1/sessions", b'{"subject": "x"}', JSON, 401),
    ("POST", "/v1/sessions", b'{"subject": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", JSON, 400),
    ("GET", "/v1/auth/userinfo", None, {}, 401),
    ("GET", "/v1/auth/userinfo", None, {"authorization": "Basic YTpi"}, 401),
    ("GET", "/v1/auth/userinfo", None, {"authorization": "Bearer a b"}, 401),
    ("GET", "/v1/auth/userinfo", None, {"authorization": "Bearer not-a-jwt"}, 401),
    ("GET", "/v1/auth/userinfo", None, {"authorization": "Bearer " + "A" * 9000}, 401),
    ("GET", "/v1/auth/userinfo", None, {"authorization": "Bearer e30.e30."}, 401),
    ("GET", "/v1/revocations?since=garbage", None, {}, 200),
    ("GET", "/v1/revocations?since=-1", None, {}, 200),
    ("GET", "/v1/revocations?since=" + "9" * 40, None, {}, 200),
    ("GET", "/v1/revocations?since=%C2%B2", None, {}, 200),  # '²': str.isdigit() but not int()
    ("GET", "/v1/revocations?since=%F0%9D%9F%98", None, {}, 200),  # mathematical digit zero
    ("GET", "/v1/revocations?wait=soon", None, {}, 400),
    ("POST", "/v1/revocations", None, {}, 405),
    ("GET", "/v1/no-such-endpoint", None, {}, 404),
    ("POST", "/v1/auth/login", HUGE, JSON, 413),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), MALFORMED,
                         ids=[f"{m} {p[:40]} {i}" for i, (m, p, *_) in enumerate(MALFORMED)])
def test_malformed_requests_get_a_client_error_never_a_500(
    service: Service, method: str, path: str, body: bytes | None, headers: dict[str, str], status: int
) -> None:
    response = httpx.request(method, service.url + path, content=body, headers=headers, timeout=30)
    assert response.status_code == status
    if status >= 400:
        assert isinstance(response.json()["error"], str)


def test_a_huge_chunked_body_is_refused_with_413(service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(100):
            yield b"a" * 1024
        yield b'", "password": "x"}'

    response = httpx.post(service.url + "/v1/auth/login", content=chunks(), headers=JSON, timeout=30)
    assert response.status_code == 413


@pytest.mark.anyio
async def test_a_nul_character_in_a_username_is_a_failed_login_on_either_database(
    tmp_path: Path, database_url: str
) -> None:
    async with asgi_service(make_settings(tmp_path, database_url)) as (_, client, _state):
        response = await client.post("/v1/auth/login", json={"username": "al\u0000ice", "password": PASSWORD})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.anyio
async def test_a_nul_character_in_a_client_id_is_a_failed_client_authentication_on_either_database(
    tmp_path: Path, database_url: str
) -> None:
    async with asgi_service(make_settings(tmp_path, database_url)) as (_, client, _state):
        response = await client.post("/v1/auth/introspect", headers=basic("jwc_\u0000", "x"),
                                     data={"token": "x"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.anyio
async def test_a_nul_character_in_a_trusted_backend_subject_is_no_server_error_on_either_database(
    tmp_path: Path, database_url: str
) -> None:
    async with asgi_service(make_settings(tmp_path, database_url)) as (_, client, state):
        created, secret = await state.accounts.add_client("backend", {"sessions"})
        response = await client.post("/v1/sessions", headers=basic(created.id, secret),
                                     json={"subject": "ext\u00007"})
    assert response.status_code in (201, 400)  # accepted or refused as invalid_request; never 500


# ---- a fuzz over the OpenAPI operations (in process) ----------------------------------------------

FIELDS = ("username", "password", "refresh_token", "subject", "scope", "claims", "token",
          "token_type_hint", "since", "wait")
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
json_bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=4),
    json_values,
).map(lambda value: json.dumps(value).encode())
form_bodies = st.dictionaries(st.sampled_from(FIELDS) | printable, st.text(max_size=30), max_size=4).map(
    lambda fields: str(httpx.QueryParams(fields)).encode())
bodies = st.one_of(st.none(), json_bodies, form_bodies, st.binary(max_size=200))
content_types = st.sampled_from([None, "application/json", "application/x-www-form-urlencoded",
                                 "text/plain", "application/json; charset=utf-16", "multipart/form-data",
                                 "application/x-www-form-urlencoded; charset=latin-1"])


@st.composite
def requests(draw: st.DrawFn, operations: list[tuple[str, str]], credentials: list[str]) -> dict[str, Any]:
    method, path = draw(st.sampled_from(operations))
    headers: dict[str, str] = {}
    content_type = draw(content_types)
    if content_type:
        headers["content-type"] = content_type
    authorization = draw(st.one_of(
        st.none(), st.sampled_from(credentials), printable,
        printable.map(lambda t: "Bearer " + t),
        st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    ))
    if authorization is not None:
        headers["authorization"] = authorization
    params = draw(st.dictionaries(st.sampled_from(FIELDS) | printable, st.text(max_size=20), max_size=3))
    params.pop("wait", None)  # a long poll would only make the fuzz wait
    return {"method": method, "url": path, "headers": headers, "params": params,
            "content": draw(bodies)}


def test_fuzzed_requests_to_every_operation_never_get_a_500(tmp_path: Path, database_url: str) -> None:
    with asyncio.Runner() as runner:
        service_cm = asgi_service(make_settings(tmp_path, database_url))
        app, client, state = runner.run(service_cm.__aenter__())
        try:
            async def setup() -> list[str]:
                await state.accounts.add_user("alice", PASSWORD)
                created, secret = await state.accounts.add_client("c", {"sessions", "introspect"})
                login = await client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD})
                return [f"Bearer {login.json()['access_token']}", basic(created.id, secret)["authorization"]]

            credentials = runner.run(setup())
            operations = sorted((method.upper(), path) for path, item in app.openapi()["paths"].items()
                                for method in item)
            assert len(operations) >= 12

            @hypothesis_settings(max_examples=200, deadline=None, derandomize=True,
                                 suppress_health_check=[HealthCheck.too_slow])
            @given(request=requests(operations, credentials))
            def no_500(request: dict[str, Any]) -> None:
                response = runner.run(client.request(**request, timeout=10))
                assert response.status_code < 500, (request, response.status_code, response.text)

            no_500()
        finally:
            runner.run(service_cm.__aexit__(None, None, None))
