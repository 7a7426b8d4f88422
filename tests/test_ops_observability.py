"""Issue #12, observability: ``GET /metrics`` (protected, parsed with prometheus_client's own
parser), outcomes of logins and refreshes, ``GET /readyz``, request ids, JSON logs that carry
them and never a token or password, the access log off by default, secrets from files."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from jwtwarden.cli import main
from jwtwarden.service.config import ConfigError, load_settings
from jwtwarden.service.logs import PROCESS_TAG, REQUEST, JSONFormatter, RequestContext
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.infra import private_redis
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    add_user,
    asgi_client,
    make_settings,
    running_server,
    server_env,
    tokens,
)

pytestmark = pytest.mark.anyio

TOKEN = "metrics-bearer-0123456789"
GENERATED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{16}")


def parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float:
    found = [s.value for s in families[family].samples
             if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family, labels, found)
    return float(found[0])


async def scrape(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def login(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"username": "alice", "password": password})


# ---- /metrics: never open by default ------------------------------------------------------------


async def test_metrics_do_not_exist_without_a_token_configured(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        response = await client.get("/metrics")
        spec = (await client.get("/openapi.json")).json()
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert "/metrics" not in spec["paths"] and "/readyz" in spec["paths"]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}",
                                           f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"])
async def test_metrics_refuse_anything_but_the_configured_bearer(
        tmp_path: Path, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    async with asgi_client(make_settings(tmp_path, metrics_token=TOKEN)) as (client, _):
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert "jwtwarden_" not in response.text


def test_a_short_metrics_token_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JWTWARDEN_METRICS_TOKEN"):
        make_settings(tmp_path, metrics_token="short")


# ---- what the metrics count ---------------------------------------------------------------------


async def test_logins_and_refreshes_are_counted_by_outcome(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    settings = make_settings(tmp_path, metrics_token=TOKEN, grace_window=5.0, login_max_failures=2)
    async with asgi_client(settings, clock) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        pair = (await login(client)).json()
        expiring = (await login(client)).json()
        assert (await login(client, "wrong")).status_code == 400
        assert (await login(client, "wrong")).status_code == 400
        assert (await login(client, "wrong")).status_code == 429
        spent = pair["refresh_token"]
        fresh = (await client.post("/v1/auth/refresh", json={"refresh_token": spent})).json()
        clock.advance(1)
        again = await client.post("/v1/auth/refresh", json={"refresh_token": spent})  # grace
        assert again.json()["refresh_token"] == fresh["refresh_token"]
        clock.advance(10)
        reused = await client.post("/v1/auth/refresh", json={"refresh_token": spent})
        assert reused.json()["reason"] == "refresh_reused"
        revoked = await client.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
        assert revoked.json()["reason"] == "refresh_revoked"
        garbage = await client.post("/v1/auth/refresh", json={"refresh_token": "jwr_" + "A" * 90})
        assert garbage.json()["reason"] == "invalid_refresh_token"
        clock.advance(settings.refresh_idle_lifetime + 1)
        expired = await client.post("/v1/auth/refresh", json={"refresh_token": expiring["refresh_token"]})
        assert expired.json()["reason"] == "refresh_expired"
        assert (await client.post("/v1/auth/refresh", json={})).status_code == 400
        families = await scrape(client)
    logins = {s.labels["outcome"]: s.value for s in families["jwtwarden_logins"].samples
              if s.name == "jwtwarden_logins_total"}
    refreshes = {s.labels["outcome"]: s.value for s in families["jwtwarden_refreshes"].samples
                 if s.name == "jwtwarden_refreshes_total"}
    assert logins == {"success": 2, "invalid_credentials": 2, "rate_limited": 1}
    assert refreshes == {"rotated": 1, "grace": 1, "reused": 1, "revoked": 1, "invalid": 1,
                         "expired": 1, "invalid_request": 1}
    # the reuse ended one session, the expiry another
    assert value(families, "jwtwarden_families_revoked", "jwtwarden_families_revoked_total") == 2
    assert value(families, "jwtwarden_revocations", "jwtwarden_revocations_total", kind="sid") == 2
    assert value(families, "jwtwarden_http_request_duration_seconds",
                 "jwtwarden_http_request_duration_seconds_count",
                 method="POST", route="/v1/auth/refresh", status="400") == 5


async def test_the_token_endpoint_counts_its_refreshes_and_not_its_client_credentials(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, metrics_token=TOKEN)) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        app_client, secret = await state.accounts.add_client(
            "app", set(), grants={"client_credentials", "refresh_token"}, scope="read")
        basic = {"authorization": "Basic " + base64.b64encode(f"{app_client.id}:{secret}".encode()).decode()}
        issued = await client.post("/v1/auth/token", data={"grant_type": "client_credentials"}, headers=basic)
        assert issued.status_code == 200
        pair = await state.sessions.create_session("alice-sub", client_id=app_client.id)
        form = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}
        assert (await client.post("/v1/auth/token", data=form, headers=basic)).status_code == 200
        reused = await client.post("/v1/auth/token", data=form, headers=basic)
        assert reused.json()["reason"] == "refresh_reused"
        bad_client = await client.post("/v1/auth/token", data=form,
                                       headers={"authorization": "Basic " + base64.b64encode(b"x:y").decode()})
        assert bad_client.status_code == 401
        families = await scrape(client)
    refreshes = {s.labels["outcome"]: s.value for s in families["jwtwarden_refreshes"].samples
                 if s.name == "jwtwarden_refreshes_total"}
    assert refreshes == {"rotated": 1, "reused": 1}


async def test_the_gauges_tell_the_deny_list_the_signing_key_and_the_pool(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    settings = make_settings(tmp_path, metrics_token=TOKEN, key_rotation_interval=10 * 86_400)
    async with asgi_client(settings, clock) as (client, state):
        await state.accounts.add_user("alice", PASSWORD)
        pair = (await login(client)).json()
        await client.post("/v1/auth/logout", headers={"authorization": f"Bearer {pair['access_token']}"})
        clock.advance(86_400)
        families = await scrape(client)
    assert value(families, "jwtwarden_denylist_entries") == len(state.denylist.set) == 2  # sid, jti
    assert value(families, "jwtwarden_signing_key_age_seconds") == 86_400
    assert value(families, "jwtwarden_signing_key_next_rotation_days") == 9
    assert value(families, "jwtwarden_db_connections_in_use") == 0
    assert value(families, "jwtwarden_denylist_sync_age_seconds", source="database") >= 0
    assert value(families, "jwtwarden_workers") == 1
    assert "jwtwarden_denylist_redis_in_sync" not in families  # no Redis configured
    assert value(families, "jwtwarden_revocations", "jwtwarden_revocations_total", kind="jti") == 1


async def test_without_automatic_rotation_the_next_rotation_is_infinitely_far(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, metrics_token=TOKEN)) as (client, _):
        families = await scrape(client)
    assert value(families, "jwtwarden_signing_key_next_rotation_days") == float("inf")


async def test_with_redis_the_metrics_say_whether_it_is_in_sync(tmp_path: Path) -> None:
    with private_redis() as redis:
        settings = make_settings(tmp_path, metrics_token=TOKEN, redis_url=redis.url)
        async with asgi_client(settings) as (client, state):
            await state.denylist.redis.synced.wait()  # type: ignore[union-attr]
            in_sync = await scrape(client)
            state.denylist.redis.healthy = False  # type: ignore[union-attr]
            lost = await scrape(client)
    assert value(in_sync, "jwtwarden_denylist_redis_in_sync") == 1
    assert value(lost, "jwtwarden_denylist_redis_in_sync") == 0
    assert value(in_sync, "jwtwarden_denylist_sync_age_seconds", source="redis") >= 0


async def test_requests_are_labelled_by_route_template_not_by_raw_path(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path, metrics_token=TOKEN, docs=True)) as (client, _):
        for name in ("a.css", "b.js", "c.png"):
            await client.get(f"/docs/assets/{name}")
        for n in range(3):
            await client.get(f"/no/such/path/{n}")
        families = await scrape(client)
    routes = {s.labels["route"] for s in families["jwtwarden_http_request_duration_seconds"].samples}
    assert "/docs/assets/{name}" in routes and "<unmatched>" in routes
    assert not any("no/such" in r or r.endswith((".css", ".js")) for r in routes)


# ---- /readyz ----------------------------------------------------------------------------------


async def test_readyz_is_ready_when_the_database_and_the_deny_list_are(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        response = await client.get("/readyz")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "denylist": "ok"}}


async def test_readyz_is_503_while_the_deny_list_is_stale(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        state.denylist.watch(max_staleness=10.0)
        real = state.denylist._monotonic
        state.denylist._monotonic = lambda: real() + 11  # no poll succeeded for 11 s
        stale = await client.get("/readyz")
        await state.denylist.poll()
        fresh = await client.get("/readyz")
    assert stale.status_code == 503 and stale.headers["retry-after"] == "5"
    assert stale.json() == {"status": "unready", "checks": {"database": "ok", "denylist": "stale"}}
    assert fresh.status_code == 200


async def test_readyz_is_503_when_the_database_does_not_answer(tmp_path: Path) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, state):
        db_file = tmp_path / "data" / "jwtwarden.db"
        await state.db.dispose()
        db_file.rename(db_file.with_suffix(".gone"))
        db_file.mkdir()  # a directory where the database was: nothing can open it
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unavailable", "denylist": "ok"}


async def test_readyz_is_503_while_redis_is_not_in_sync(tmp_path: Path) -> None:
    with private_redis() as redis:
        async with asgi_client(make_settings(tmp_path, redis_url=redis.url)) as (client, state):
            assert state.denylist.redis is not None
            await state.denylist.redis.synced.wait()
            ready = await client.get("/readyz")
            state.denylist.redis.healthy = False
            unready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
    assert unready.status_code == 503 and unready.json()["checks"]["redis"] == "not_in_sync"


# ---- request ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(("inbound", "kept"), [
    ("req-42.a:b_c", True),
    ("0123456789abcdef0123456789abcdef", True),
    ("x" * 64, True),
    ("x" * 65, False),  # longer than an id: a token, perhaps
    ("has space", False),
    ("é", False),
    ("", False),
])
async def test_a_sane_inbound_request_id_is_echoed_and_any_other_replaced(
        tmp_path: Path, inbound: str, kept: bool) -> None:
    async with asgi_client(make_settings(tmp_path)) as (client, _):
        response = await client.get("/healthz", headers=[(b"x-request-id", inbound.encode("utf-8"))])
        missing = await client.get("/nope")
    assert (response.headers["x-request-id"] == inbound) is kept
    if not kept:
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    assert missing.status_code == 404 and GENERATED_ID.fullmatch(missing.headers["x-request-id"])
    assert missing.headers["x-request-id"].startswith(PROCESS_TAG + "-")


def test_the_json_formatter_writes_one_object_with_the_event_and_the_request_id() -> None:
    record = logging.LogRecord("jwtwarden.events", logging.WARNING, __file__, 1,
                               "refresh token reuse: %s", ("family revoked",), None)
    record.event = "reuse_detected"
    record.family = "fam-1"
    token = REQUEST.set(RequestContext("req-1"))
    try:
        from jwtwarden.service.logs import ContextFilter

        ContextFilter().filter(record)
    finally:
        REQUEST.reset(token)
    line = JSONFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["event"] == "reuse_detected" and data["request_id"] == "req-1"
    assert data["level"] == "WARNING" and data["logger"] == "jwtwarden.events"
    assert data["message"] == "refresh token reuse: family revoked" and data["family"] == "fam-1"
    assert data["time"].endswith("+00:00") and data["pid"] == os.getpid()


# ---- logs of a real process ---------------------------------------------------------------------


def test_json_logs_carry_request_ids_and_never_a_token_or_password(tmp_path: Path) -> None:
    env = server_env(tmp_path, JWTWARDEN_KEK=TEST_KEK, JWTWARDEN_LOG_FORMAT="json")
    add_user(env, "alice", PASSWORD)
    wrong = "Tr0ub4dor&3-but-wrong"
    with running_server(env, args=("--access-log", "--log-level", "debug")) as server:
        url = server.url
        logged_in = httpx.post(url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD},
                               headers={"x-request-id": "login-from-proxy-1"})
        pair = tokens(logged_in)
        httpx.post(url + "/v1/auth/login", json={"username": "alice", "password": wrong})
        fresh = tokens(httpx.post(url + "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}))
        reused = httpx.post(url + "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        httpx.get(url + "/v1/auth/userinfo", params={"access_token": fresh["access_token"]},
                  headers={"authorization": f"Bearer {fresh['access_token']}"})
        httpx.post(url + "/v1/auth/logout", headers={"authorization": f"Bearer {fresh['access_token']}"},
                   json={"refresh_token": fresh["refresh_token"]})
    assert server.log is not None
    text = server.log.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    for secret in (pair["access_token"], pair["refresh_token"], fresh["access_token"],
                   fresh["refresh_token"], PASSWORD, wrong, TEST_KEK):
        assert secret not in text
        assert secret.split(".")[-1] not in text  # not even a JWT's signature
    events = {r["event"]: r for r in records if "event" in r and r["event"] != "access"}
    assert events["login"]["request_id"] == "login-from-proxy-1"
    assert events["reuse_detected"]["request_id"] == reused.headers["x-request-id"]
    assert events["refresh_refused"]["request_id"] == reused.headers["x-request-id"]
    assert events["refresh_refused"]["reason"] == "refresh_reused"
    access = [r for r in records if r.get("event") == "access"]
    assert {"/v1/auth/login", "/v1/auth/refresh", "/v1/auth/userinfo", "/v1/auth/logout"} <= {
        r["path"] for r in access}
    assert all("?" not in r["path"] and "?" not in r["message"] for r in access)
    assert all(r["request_id"] for r in access)


def test_the_access_log_is_off_by_default_and_text_lines_name_the_request(tmp_path: Path) -> None:
    env = server_env(tmp_path, JWTWARDEN_KEK=TEST_KEK)
    add_user(env, "alice", PASSWORD)
    with running_server(env, args=("--log-level", "info")) as server:
        pair = tokens(httpx.post(server.url + "/v1/auth/login",
                                 json={"username": "alice", "password": PASSWORD}))
        httpx.post(server.url + "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        refused = httpx.post(server.url + "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert server.log is not None
    text = server.log.read_text()
    assert "uvicorn.access" not in text and '"POST /v1/auth/login' not in text
    assert "jwtwarden.events: login: session" in text and pair["refresh_token"] not in text
    assert f"[{refused.headers['x-request-id']}]" in text  # the refused refresh's line names it


# ---- secrets from files (JWTWARDEN_<SECRET>_FILE) ---------------------------------------------


def _secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_kek_and_the_metrics_token_can_come_from_files(tmp_path: Path) -> None:
    env = {"JWTWARDEN_KEK_FILE": str(_secret(tmp_path / "kek", TEST_KEK + "\n", 0o400)),
           "JWTWARDEN_METRICS_TOKEN_FILE": str(_secret(tmp_path / "metrics", TOKEN))}
    settings = load_settings(env)
    assert settings.kek == TEST_KEK and settings.metrics_token == TOKEN


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: {"JWTWARDEN_KEK_FILE": str(_secret(d / "k", TEST_KEK, 0o604))}, "readable or writable by every user"),
    (lambda d: {"JWTWARDEN_KEK_FILE": str(d / "missing")}, "cannot read"),
    (lambda d: {"JWTWARDEN_KEK_FILE": str(d)}, "not a regular file"),
    (lambda d: {"JWTWARDEN_KEK_FILE": str(_secret(d / "k", TEST_KEK)), "JWTWARDEN_KEK": TEST_KEK}, "not both"),
])
def test_a_secret_file_that_cannot_be_trusted_is_refused(tmp_path: Path, setup: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(setup(tmp_path))


def test_a_secret_file_behind_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(_secret(tmp_path / "kek", TEST_KEK))
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"JWTWARDEN_KEK_FILE": str(tmp_path / "link")})


# ---- serve's options ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["0", "-1", "many", "257"])
def test_serve_refuses_a_worker_count_that_is_not_one(workers: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--workers", workers],
                                env={"JWTWARDEN_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 2 and "--workers" in result.output


def test_serve_documents_workers_and_the_access_log() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--workers N|auto" in result.output and "--access-log / --no-access-log" in result.output
    assert sys.executable  # the CLI runs in process
