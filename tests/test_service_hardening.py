"""Issue #11, items 6, 8, 10-12, 15, 17, 18: the token service, attacked as a separate process.

A real ``jwtwarden serve`` (SQLite; PostgreSQL where the item is about it), configured by
environment as an operator would, users and clients added with the CLI. Each test states one
behaviour the issue found broken.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jwtwarden import decode_unverified
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.server import ResourceServer
from jwtwarden.service.config import Settings, load_settings
from tests.servicekit import (
    PASSWORD,
    ServerProcess,
    add_client,
    add_user,
    free_port,
    running_server,
    server_env,
    tokens,
)

JSON = {"content-type": "application/json"}


@dataclass
class Service:
    server: ServerProcess
    backend: tuple[str, str]  # a client with the 'sessions' permission

    @property
    def url(self) -> str:
        return self.server.url

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def session(self, body: bytes) -> httpx.Response:
        return self.post("/v1/sessions", content=body, headers={**JSON, **basic(*self.backend)})


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def cli(env: dict[str, str], *args: str, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jwtwarden", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_server(server_env(tmp_path_factory.mktemp("hardening"))) as server:
        add_user(server.env, "alice")
        add_user(server.env, "guest", "guest password 1234")
        yield Service(server, add_client(server.env, "backend", "sessions"))


# ---- item 6: everything issued must verify -------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("claims", "why"), [
    ({"deep": nested(16)}, "nested deeper"),
    ({"name": "\ud800"}, "lone surrogate"),
    ({"\udfff": "x"}, "lone surrogate"),
    ({f"c{i}": "word " * 20 for i in range(90)}, "characters, over the 8192"),
], ids=["nested-16-deep", "lone-surrogate-value", "lone-surrogate-name", "over-8-KiB"])
def test_sessions_refuses_claims_whose_token_no_verifier_would_accept(
        service: Service, claims: dict[str, Any], why: str) -> None:
    body = json.dumps({"subject": "ext-1", "claims": claims}).encode()  # \ud800 as an escape
    response = service.session(body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert why in response.json()["error_description"]


def test_the_largest_claims_sessions_accepts_verify_and_refresh(service: Service) -> None:
    # the size check is on the token itself: claims just under it pass, and keep passing
    claims = {f"c{i}": "word " * 20 for i in range(50)}
    pair = tokens(service.session(json.dumps({"subject": "ext-2", "claims": claims}).encode()))
    assert 7000 < len(pair["access_token"]) <= 8192
    assert service.get("/v1/auth/userinfo", headers=bearer(pair["access_token"])).status_code == 200
    again = tokens(service.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}))
    assert service.get("/v1/auth/userinfo", headers=bearer(again["access_token"])).status_code == 200


_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # surrogates too
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), _text,
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.text(st.sampled_from("ab c"), min_size=500, max_size=3000))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=12)
_claims = st.dictionaries(st.one_of(_text, st.sampled_from(["role", "tenant", "x"])), st.one_of(
    _json, st.integers(0, 20).map(nested)), max_size=6)


@hypothesis_settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(claims=_claims)
def test_any_claims_sessions_accepts_give_a_token_userinfo_and_refresh_accept(
        service: Service, claims: dict[str, Any]) -> None:
    body = json.dumps({"subject": "prop", "claims": claims}, allow_nan=True).encode()
    response = service.session(body)
    assert response.status_code in (201, 400), response.text
    event(f"HTTP {response.status_code}")
    if response.status_code == 400:
        assert response.json()["error"] == "invalid_request"
        return
    pair = response.json()
    assert service.get("/v1/auth/userinfo", headers=bearer(pair["access_token"])).status_code == 200
    refreshed = service.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    again = service.get("/v1/auth/userinfo", headers=bearer(refreshed.json()["access_token"]))
    assert again.status_code == 200, again.text


# ---- item 8: request bodies are strict JSON --------------------------------------------------


def test_a_duplicate_username_does_not_log_in_as_the_last_one(service: Service) -> None:
    body = ('{"username": "guest", "username": "alice", '
            f'"password": "{PASSWORD}"}}').encode()
    response = service.post("/v1/auth/login", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request",
                               "error_description": "the request body has duplicate member names"}


def test_a_duplicate_subject_on_sessions_is_refused(service: Service) -> None:
    response = service.session(b'{"subject": "someone", "subject": "admin"}')
    assert response.status_code == 400 and "duplicate" in response.json()["error_description"]


def test_duplicate_members_deep_in_the_claims_are_refused(service: Service) -> None:
    response = service.session(b'{"subject": "x", "claims": {"org": {"role": "user", "role": "admin"}}}')
    assert response.status_code == 400 and "duplicate" in response.json()["error_description"]


@pytest.mark.parametrize("body", [
    b'{"username": "alice\\ud800", "password": "x"}',  # a lone surrogate, escaped
    json.dumps({"username": "alice", "password": PASSWORD}).encode("utf-16"),  # json.loads takes it
    '{"username": "alic\xe9", "password": "x"}'.encode("latin-1"),  # not UTF-8
    b'\xef\xbb\xbf{"username": "alice", "password": "x"}',  # a byte-order mark
], ids=["lone-surrogate", "utf-16", "latin-1", "bom"])
def test_login_bodies_that_are_not_strict_json_are_400(service: Service, body: bytes) -> None:
    response = service.post("/v1/auth/login", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_json_media_type_with_parameters_or_a_suffix_is_checked_too(service: Service) -> None:
    body = f'{{"username": "guest", "username": "alice", "password": "{PASSWORD}"}}'.encode()
    for media_type in ("application/json; charset=utf-8", "Application/JSON", "application/x+json"):
        response = service.post("/v1/auth/login", content=body, headers={"content-type": media_type})
        assert response.status_code == 400, media_type
        assert response.json()["error"] == "invalid_request"


def test_strict_bodies_still_log_in_and_still_cap_the_size(service: Service) -> None:
    ok = service.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert ok.status_code == 200
    big = b'{"username": "alice", "password": "' + b"x" * 70_000 + b'"}'

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while reading
        yield big[:1000]
        yield big[1000:]

    response = service.post("/v1/auth/login", content=chunks(), headers=JSON)
    assert response.status_code == 413


# ---- item 10: security headers on every response --------------------------------------------


def _assert_security_headers(response: httpx.Response, *, hsts: bool) -> None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "no-referrer", where
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, where
    if response.headers.get("content-type", "").startswith("text/html"):
        assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "http" not in csp, where
    assert ("strict-transport-security" in response.headers) is hsts, where


def _every_answer(url: str) -> Iterator[httpx.Response]:
    """One request to every operation of the OpenAPI document, and the pages outside it."""
    spec = httpx.get(url + "/openapi.json", timeout=30).json()
    with httpx.Client(base_url=url, timeout=30) as client:
        for path, operations in spec["paths"].items():
            for method in operations:
                yield client.request(method.upper(), path)
        for path in ("/openapi.json", "/debugger", "/nothing-here", "/docs", "/redoc"):
            yield client.get(path)
        yield client.delete("/healthz")  # 405
        yield client.post("/v1/auth/login", content=b"{}" + b" " * 70_000, headers=JSON)  # 413
        yield client.post("/v1/auth/login", content=b'{"a":1,"a":2}', headers=JSON)  # 400


def test_every_answer_of_an_http_issuer_has_the_security_headers_but_hsts(service: Service) -> None:
    statuses = set()
    for response in _every_answer(service.url):
        statuses.add(response.status_code)
        _assert_security_headers(response, hsts=False)
    assert {200, 400, 401, 404, 405, 413} <= statuses


def test_an_https_issuer_adds_hsts_to_every_answer(tmp_path: Path) -> None:
    env = server_env(tmp_path, JWTWARDEN_ISSUER="https://auth.example.test", JWTWARDEN_DOCS="1")
    with running_server(env) as server:
        answers = list(_every_answer(server.url))
    for response in answers:
        _assert_security_headers(response, hsts=True)
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    html = [r for r in answers if r.headers.get("content-type", "").startswith("text/html")]
    assert {r.request.url.path for r in html} == {"/debugger", "/docs", "/redoc"}


# ---- item 11: config show masks every credential ----------------------------------------------


SECRETS = ("hunter2pg", "redisPW77", "qPass99", "tok3nValue", "sslPW4")


def test_config_show_masks_passwords_in_urls_in_every_form(tmp_path: Path) -> None:
    env = server_env(
        tmp_path,
        JWTWARDEN_DATABASE_URL="postgresql://app:hunter2pg@db:5432/jw?sslmode=require&sslpassword=sslPW4",
        JWTWARDEN_REDIS_URL="redis://default:redisPW77@cache:6379/0?password=qPass99&auth_token=tok3nValue",
        JWTWARDEN_KEK="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    )
    shown = cli(env, "config", "show")
    assert shown.returncode == 0, shown.stderr
    for secret in (*SECRETS, "AAECAwQF"):
        assert secret not in shown.stdout
    assert "postgresql://app:****@db:5432/jw?sslmode=require&sslpassword=****" in shown.stdout
    assert "redis://default:****@cache:6379/0?password=****&auth_token=****" in shown.stdout
    revealed = cli(env, "config", "show", "--show-secrets")
    assert all(secret in revealed.stdout for secret in SECRETS)


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://app@db/jw?password=hunter2pg", "postgresql://app@db/jw?password=****"),
    ("postgresql://app:p%40ss@db/jw", "postgresql://app:****@db/jw"),
    ("postgresql://app:pa@ss@db/jw", "postgresql://app:****@db/jw"),  # '@' in the password
    ("redis://:redisPW77@cache:6379/0", "redis://:****@cache:6379/0"),
    ("rediss://cache/0?PassWord=a;ssl_keyfile=/k", "rediss://cache/0?PassWord=****;ssl_keyfile=****"),
    ("postgresql://u:x@h1:5432,h2:5432/jw", "postgresql://u:****@h1:5432,h2:5432/jw"),
    ("host=db password=hunter2pg", "****"),  # a libpq keyword string is no URL: all of it
    ("sqlite:////var/lib/jw/jw.db", "sqlite:////var/lib/jw/jw.db"),
])
def test_mask_url_hides_each_credential_form(url: str, masked: str) -> None:
    from jwtwarden.service.config import mask_url

    assert mask_url(url) == masked


# ---- item 12: HMAC algorithms are refused by the config check ----------------------------------


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_an_hmac_algorithm_fails_the_config_check_in_one_sentence(tmp_path: Path, alg: str) -> None:
    env = server_env(tmp_path, JWTWARDEN_ALGORITHM=alg)
    checked = cli(env, "config", "show")
    served = cli(env, "serve", "--port", str(free_port()))
    for result in (checked, served):
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{alg} is an HMAC algorithm" in lines[0], result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_keys_import_refuses_an_hmac_key_the_service_could_not_publish(tmp_path: Path) -> None:
    env = server_env(tmp_path, JWTWARDEN_KEK="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
    secret = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
    key_file = tmp_path / "hmac.jwk"
    key_file.write_text(json.dumps({"kty": "oct", "k": secret, "alg": "HS256", "kid": "h1"}))
    result = cli(env, "keys", "import", str(key_file))
    assert result.returncode == 2 and "HS256 is an HMAC key" in result.stderr, result.stderr
    assert "h1" not in cli(env, "keys", "list").stdout


def test_asymmetric_algorithms_pass_the_config_check() -> None:
    for alg in ("ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"):
        assert load_settings({"JWTWARDEN_ALGORITHM": alg}).algorithm == alg


# ---- item 15: the issuer follows --host/--port ------------------------------------------------


def test_serve_on_another_port_issues_tokens_a_resource_server_at_that_address_accepts(
        tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path)  # no JWTWARDEN_ISSUER
    assert "JWTWARDEN_ISSUER" not in env
    add_user(env, "alice")
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "jwtwarden", "serve", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    server = ServerProcess(env, port)
    server.proc = proc
    try:
        _wait_healthy(server)
        url = f"http://127.0.0.1:{port}"
        metadata = httpx.get(url + "/.well-known/oauth-authorization-server").json()
        pair = tokens(httpx.post(url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD}))
        resource = ResourceServer(RemoteJWKS(url + "/.well-known/jwks.json", algorithms=["ES256"]),
                                  issuer=url, audience="api", revocations=None)
        claims = resource.authenticate(f"Bearer {pair['access_token']}")
    finally:
        server.stop()
    assert metadata["issuer"] == url and metadata["jwks_uri"] == url + "/.well-known/jwks.json"
    assert decode_unverified(pair["access_token"]).payload["iss"] == url
    assert claims.iss == url
    assert f"issuer {url}" in log.read_text()


def _wait_healthy(server: ServerProcess) -> None:
    assert server.proc is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError("jwtwarden serve exited")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # waiting for a process to listen, not for the clock
    raise AssertionError("jwtwarden serve did not start")


def test_the_issuer_follows_host_and_port_and_an_explicit_one_wins() -> None:
    assert load_settings({}, port=18310).issuer == "http://127.0.0.1:18310"
    assert load_settings({"JWTWARDEN_HOST": "::1", "JWTWARDEN_PORT": "9"}).issuer == "http://[::1]:9"
    assert load_settings({"JWTWARDEN_HOST": "localhost"}).issuer == "http://localhost:8000"
    explicit = {"JWTWARDEN_ISSUER": "https://auth.example.com", "JWTWARDEN_HOST": "0.0.0.0"}  # noqa: S104 - not bound
    assert load_settings(explicit, port=18310).issuer == "https://auth.example.com"
    assert Settings().issuer == "http://127.0.0.1:8000"


def test_binding_another_address_without_an_issuer_is_a_config_error(tmp_path: Path) -> None:
    # 127.0.0.2 stands for any address but 127.0.0.1, localhost and ::1 (a test binds no other)
    result = cli(server_env(tmp_path), "serve", "--host", "127.0.0.2", "--port", str(free_port()),
                 timeout=30)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "JWTWARDEN_ISSUER is not set and the service binds 127.0.0.2" in result.stderr


# ---- item 17: read-only commands change nothing ------------------------------------------------


@pytest.mark.parametrize("command", [["users", "list"], ["keys", "list"], ["clients", "list"]])
def test_a_read_only_command_in_the_wrong_directory_creates_nothing(
        tmp_path: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWTWARDEN_")}
    result = cli(env, *command, cwd=tmp_path)
    assert result.returncode == 1
    assert f"no token service data in {tmp_path / '.jwtwarden'}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_read_only_commands_still_read_an_existing_store(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    add_user(env, "alice")
    listed = cli(env, "users", "list")
    keys = cli(env, "keys", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("alice\t")
    assert keys.returncode == 0 and "ES256" in keys.stdout


def test_a_read_only_command_on_an_empty_postgres_database_creates_no_schema(
        tmp_path: Path, postgres_url: str) -> None:
    import asyncio

    import asyncpg

    env = server_env(tmp_path, JWTWARDEN_DATABASE_URL=postgres_url,
                     JWTWARDEN_KEK="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
    result = cli(env, "users", "list")

    async def tables() -> list[str]:
        conn = await asyncpg.connect(postgres_url)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await conn.close()
        return [r[0] for r in rows]

    assert result.returncode == 1 and "holds no token service data" in result.stderr
    assert asyncio.run(tables()) == []
    assert not (tmp_path / "data").exists()


# ---- item 18: smaller ones -------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("JWTWARDEN_PORT", "abc", "JWTWARDEN_PORT: expected a whole number, got 'abc'"),
    ("JWTWARDEN_GRACE_WINDOW", "soon", "JWTWARDEN_GRACE_WINDOW: expected a number, got 'soon'"),
    ("JWTWARDEN_DB_POOL_TIMEOUT", "nan", "JWTWARDEN_DB_POOL_TIMEOUT: expected a finite number"),
])
def test_a_number_that_is_not_one_is_named_plainly(tmp_path: Path, variable: str, value: str,
                                                   says: str) -> None:
    result = cli(server_env(tmp_path, **{variable: value}), "config", "show")
    assert result.returncode != 0
    assert says in result.stderr and "invalid literal" not in result.stderr


def _server_has_read(server_port: int, client_port: int) -> bool:
    """Whether the server's end of this loopback connection has nothing left unread (the
    kernel's own account, /proc/net/tcp): the request is in the server's hands."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if (int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port
                and fields[3] == "01"):  # ESTABLISHED
            return int(queues.split(":")[1], 16) == 0
    return False


def test_stopping_serve_ends_an_open_revocation_long_poll_at_once(tmp_path: Path) -> None:
    with running_server(server_env(tmp_path)) as server:
        cursor = httpx.get(server.url + "/v1/revocations").json()["cursor"]
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(f"GET /v1/revocations?since={cursor}&wait=25 HTTP/1.1\r\n"
                     f"Host: 127.0.0.1\r\n\r\n".encode())
        client_port = sock.getsockname()[1]
        deadline = time.monotonic() + 10
        while not _server_has_read(server.port, client_port):  # not a timer: the kernel's state
            assert time.monotonic() < deadline, "the server never read the long-poll"
            time.sleep(0.01)
        answer: list[bytes] = []

        def read_to_the_end() -> None:
            while chunk := sock.recv(65536):
                answer.append(chunk)

        reader = threading.Thread(target=read_to_the_end, daemon=True)
        reader.start()
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)
        stopped = time.monotonic() - started
        reader.join(5)
        sock.close()
    assert stopped < 5, f"serve took {stopped:.1f} s to stop with a long-poll open"
    response = b"".join(answer)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert re.search(rb'"cursor":"[0-9a-f]+\.\d+"', response)  # the feed's epoch.position
