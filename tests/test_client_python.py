"""The Python clients (``jwtwarden.client``) against ``jwtwarden serve`` as a process.

UserSession / AsyncUserSession: login and adopt, refresh ahead of expiry on the client's
own (fake) clock, one refresh for many threads or tasks (the service would revoke the session
if two went out), refusals as typed errors, the 0600 file rewritten atomically, and a real
crash (SIGKILL) between a rotation and the write, with and without the grace window.
ClientCredentials: client_secret_basic and private_key_jwt, the cache, single flight, errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import jwtwarden.client
from jwtwarden import Key, KeySet, decode_unverified
from jwtwarden.client import AsyncUserSession, ClientCredentials, RefreshTokenFile, UserSession
from jwtwarden.errors import (
    InvalidClient,
    InvalidCredentials,
    InvalidScope,
    NoSession,
    RefreshReused,
    RefreshRevoked,
    TemporarilyUnavailable,
    UnauthorizedClient,
)
from jwtwarden.testing import FakeClock
from tests.servicekit import (
    PASSWORD,
    ServerProcess,
    add_client,
    add_user,
    free_port,
    running_server,
    server_env,
)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Service:
    server: ServerProcess

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token_url(self) -> str:
        return self.server.url + "/v1/auth/token"

    def userinfo(self, auth: httpx.Auth) -> httpx.Response:
        with httpx.Client(auth=auth, timeout=30) as api:
            return api.get(self.url + "/v1/auth/userinfo")


def start(tmp: Path, **extra: str) -> Iterator[Service]:
    with running_server(server_env(tmp, **extra)) as server:
        add_user(server.env, "alice", scope="read write")
        yield Service(server)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The default service: strict reuse detection (grace window 0)."""
    yield from start(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def graceful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with a grace window (30 s: a restart of the client fits comfortably)."""
    yield from start(tmp_path_factory.mktemp("graceful"), JWTWARDEN_GRACE_WINDOW="30")


_OPEN: list[Any] = []  # every client a test made, closed after it


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class Counting:
    """An httpx client for the token service that counts the requests to each path."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=30, event_hooks={"request": [self._seen]})
        _OPEN.append(self.client)

    def _seen(self, request: httpx.Request) -> None:
        with self.lock:
            self.paths.append(request.url.path)

    def count(self, path: str) -> int:
        return self.paths.count(path)


def session(service: Service, **options: Any) -> UserSession:
    options.setdefault("clock", FakeClock(0))
    user = UserSession(service.url, **options)
    _OPEN.append(user)
    return user


# ---- logging in, using, refreshing --------------------------------------------------------------


def test_a_logged_in_session_authenticates_requests(service: Service) -> None:
    with session(service) as user:
        user.login("alice", PASSWORD)
        response = service.userinfo(user)
    assert response.status_code == 200 and response.json()["scope"] == "read write"


def test_the_session_refreshes_ahead_of_expiry_on_its_own_clock(service: Service) -> None:
    clock, http = FakeClock(0), Counting()
    user = session(service, clock=clock, client=http.client)
    user.login("alice", PASSWORD)
    first = user.access_token()
    clock.advance(900 - 62)  # more than 60 s before expiry (expires_in is 899 or 900): still used
    assert user.access_token() == first and http.count("/v1/auth/refresh") == 0
    clock.advance(3)  # less than 60 s before expiry: inside the margin
    assert service.userinfo(user).status_code == 200
    assert http.count("/v1/auth/refresh") == 1 and user.access_token() != first


def test_threads_that_need_a_token_at_once_share_one_refresh(service: Service) -> None:
    clock, http = FakeClock(0), Counting()
    user = session(service, clock=clock, client=http.client)
    user.login("alice", PASSWORD)
    clock.advance(900)  # due
    barrier = threading.Barrier(16)
    got: list[str] = []

    def work() -> None:
        barrier.wait()
        got.append(user.access_token())

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert http.count("/v1/auth/refresh") == 1 and len(set(got)) == 1
    # had two refreshes gone out, the service would have seen reuse and revoked the session
    user.refresh()
    assert service.userinfo(user).status_code == 200


@pytest.mark.anyio
async def test_tasks_that_need_a_token_at_once_share_one_refresh(service: Service) -> None:
    clock = FakeClock(0)
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with httpx.AsyncClient(timeout=30, event_hooks={"request": [hook]}) as http, \
            AsyncUserSession(service.url, clock=clock, client=http) as user:
        await user.login("alice", PASSWORD)
        clock.advance(900)
        tokens = await asyncio.gather(*(user.access_token() for _ in range(16)))
        assert seen.count("/v1/auth/refresh") == 1 and len(set(tokens)) == 1
        async with httpx.AsyncClient(auth=user, timeout=30) as api:
            answers = await asyncio.gather(*(api.get(service.url + "/v1/auth/userinfo") for _ in range(8)))
        assert {a.status_code for a in answers} == {200}
        await user.refresh()  # the chain is intact: no reuse was detected
        await user.logout()
    assert not user.logged_in


def test_a_revoked_access_token_is_refreshed_and_the_request_sent_again(service: Service) -> None:
    http = Counting()
    user = session(service, client=http.client)
    user.login("alice", PASSWORD)
    revoked = user.access_token()
    assert httpx.post(service.url + "/v1/auth/revoke", data={"token": revoked}).status_code == 200
    response = service.userinfo(user)
    assert response.status_code == 200 and user.access_token() != revoked
    assert http.count("/v1/auth/refresh") == 1


def test_without_retry_a_revoked_access_token_answers_401(service: Service) -> None:
    user = session(service, retry_on_401=False)
    user.login("alice", PASSWORD)
    httpx.post(service.url + "/v1/auth/revoke", data={"token": user.access_token()})
    assert service.userinfo(user).status_code == 401


def test_a_pair_from_a_trusted_backend_can_be_adopted(service: Service) -> None:
    backend_id, secret = add_client(service.server.env, "backend", "sessions")
    pair = httpx.post(service.url + "/v1/sessions", json={"subject": "user-7", "scope": "read"},
                      auth=(backend_id, secret)).json()
    user = session(service)
    user.adopt(pair)
    assert service.userinfo(user).json()["sub"] == "user-7"
    user.refresh()
    assert service.userinfo(user).json()["sub"] == "user-7"


# ---- refusals are typed ------------------------------------------------------------------------


def test_a_stolen_refresh_token_used_first_by_the_thief_surfaces_as_refresh_reused(
    service: Service, tmp_path: Path
) -> None:
    store = tmp_path / "token"
    user = session(service, store=store)
    user.login("alice", PASSWORD)
    thief = session(service)
    thief.adopt({"access_token": user.access_token(), "refresh_token": store.read_text().strip(),
                 "expires_in": 900})
    thief.refresh()  # the thief rotates first
    with pytest.raises(RefreshReused) as refused:
        user.refresh()
    assert refused.value.code == "refresh_reused"
    assert not user.logged_in and not store.exists()  # the dead session is forgotten
    with pytest.raises(NoSession):
        user.access_token()
    with pytest.raises(RefreshRevoked):  # and the thief's copy died with the session
        thief.refresh()


def test_a_session_ended_elsewhere_surfaces_as_refresh_revoked(service: Service) -> None:
    user = session(service)
    user.login("alice", PASSWORD)
    other = session(service)
    other.adopt({"access_token": user.access_token(), "refresh_token": user._tokens.refresh,  # type: ignore[union-attr]
                 "expires_in": 900})
    other.logout()  # ends the session at the service
    with pytest.raises(RefreshRevoked):
        user.refresh()
    with pytest.raises(NoSession):
        service.userinfo(user)


def test_a_wrong_password_is_invalid_credentials(service: Service) -> None:
    with pytest.raises(InvalidCredentials):
        session(service).login("alice", "not the password")


def test_an_unreachable_service_is_temporarily_unavailable(tmp_path: Path) -> None:
    user = UserSession(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TemporarilyUnavailable):
        user.login("alice", PASSWORD)


def test_an_early_refresh_that_fails_keeps_the_still_valid_token(service: Service) -> None:
    clock = FakeClock(0)
    user = session(service, clock=clock)
    user.login("alice", PASSWORD)
    token = user.access_token()
    user._base = f"http://127.0.0.1:{free_port()}"  # the service is gone for a moment
    clock.advance(900 - 30)  # due, not expired
    assert user.access_token() == token
    clock.advance(29)  # expires within a second: no longer handed out
    with pytest.raises(TemporarilyUnavailable):
        user.access_token()
    user._base = service.url
    assert user.access_token() != token  # back: the session goes on


def test_the_flavours_refuse_the_wrong_httpx_client(service: Service) -> None:
    user = session(service)
    with pytest.raises(ValueError, match="https"):
        UserSession("http://auth.example.com")
    UserSession("http://auth.internal:8000", unsafe_allow_http=True)

    async def use_async() -> None:
        async with httpx.AsyncClient(auth=user) as api:
            await api.get(service.url + "/healthz")

    with pytest.raises(TypeError, match="AsyncUserSession"):
        asyncio.run(use_async())
    with pytest.raises(TypeError, match="UserSession"), \
            httpx.Client(auth=AsyncUserSession(service.url)) as api:
        api.get(service.url + "/healthz")


def test_no_token_appears_in_a_repr(service: Service, tmp_path: Path) -> None:
    user = session(service, store=tmp_path / "t")
    user.login("alice", PASSWORD)
    text = repr(user) + repr(user.store) + repr(user._tokens)
    assert "jwr_" not in repr(user) + repr(user.store) and user.access_token() not in repr(user)
    assert "eyJ" not in repr(user) and "logged in" in text


# ---- the refresh token on disk -------------------------------------------------------------------


def test_the_file_is_0600_and_follows_every_rotation(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "state" / "token"
    path.parent.mkdir(mode=0o700)
    user = session(service, store=path)
    user.login("alice", PASSWORD)
    seen = [path.read_text().strip()]
    for _ in range(3):
        user.refresh()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        seen.append(path.read_text().strip())
    assert len(set(seen)) == 4 and all(t.startswith("jwr_") for t in seen)
    assert os.listdir(path.parent) == ["token"]  # no temporary file left behind
    # a new process picks the session up from the file
    resumed = session(service, store=path)
    assert resumed.logged_in and service.userinfo(resumed).status_code == 200
    assert path.read_text().strip() != seen[-1]
    resumed.logout()
    assert not path.exists()


def test_the_file_refuses_what_others_could_read_and_symlinks(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("jwr_abc\n")
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="0600"):
        RefreshTokenFile(path).load()
    path.chmod(0o600)
    assert RefreshTokenFile(path).load() == "jwr_abc"
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(PermissionError, match="symlink"):
        RefreshTokenFile(link).load()


def test_a_save_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    planted = tmp_path / "token"
    planted.symlink_to(victim)
    RefreshTokenFile(planted).save("jwr_new")
    assert victim.read_text() == "untouched"
    assert not planted.is_symlink() and planted.read_text() == "jwr_new\n"
    assert stat.S_IMODE(planted.stat().st_mode) == 0o600


def test_a_save_under_a_permissive_umask_is_still_0600(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        RefreshTokenFile(tmp_path / "token").save("jwr_x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600


_CRASHING_CLIENT = textwrap.dedent("""
    import os, signal, sys
    from jwtwarden.client import RefreshTokenFile, UserSession

    class KilledBeforeWriting(RefreshTokenFile):
        def save(self, token):  # the rotation has happened; the process dies before the write
            os.kill(os.getpid(), signal.SIGKILL)

    UserSession(sys.argv[1], store=KilledBeforeWriting(sys.argv[2])).refresh()
    print("not reached")
""")


def _crash_between_rotation_and_write(service: Service, path: Path) -> str:
    """Log in (the file holds the token), then a real process rotates and dies by SIGKILL
    before writing; returns the token the file still holds."""
    user = session(service, store=path)
    user.login("alice", PASSWORD)
    before = path.read_text().strip()
    crashed = subprocess.run([sys.executable, "-c", _CRASHING_CLIENT, service.url, str(path)],
                             capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert path.read_text().strip() == before  # the rotation happened, the write did not
    return before


def test_a_crash_between_rotation_and_write_keeps_the_session_within_the_grace_window(
    graceful: Service, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    spent = _crash_between_rotation_and_write(graceful, path)
    restarted = session(graceful, store=path)
    assert graceful.userinfo(restarted).status_code == 200  # the same successor, given again
    assert path.read_text().strip() != spent
    restarted.refresh()  # and the chain goes on: nothing was taken for reuse
    assert graceful.userinfo(restarted).status_code == 200


def test_a_crash_between_rotation_and_write_without_grace_ends_the_session(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    _crash_between_rotation_and_write(service, path)
    restarted = session(service, store=path)
    with pytest.raises(RefreshReused):  # documented: the user logs in again
        restarted.access_token()
    assert not path.exists() and not restarted.logged_in
    restarted.login("alice", PASSWORD)
    assert service.userinfo(restarted).status_code == 200


# ---- ClientCredentials ------------------------------------------------------------------------------


@dataclass
class Registered:
    client_id: str
    secret: str | None
    key: Key | None


def _register(service: Service, name: str, *extra: str) -> tuple[str, str | None]:
    args = [sys.executable, "-m", "jwtwarden", "clients", "add", name, *extra]
    out = subprocess.run(args, env=service.server.env, capture_output=True, check=True, text=True).stdout
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return fields["client_id"], fields.get("client_secret")


@pytest.fixture(scope="module")
def secret_client(service: Service) -> Registered:
    client_id, secret = _register(service, "reports", "--grant", "client_credentials", "--scope", "read write")
    return Registered(client_id, secret, None)


@pytest.fixture(scope="module")
def key_client(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Registered:
    key = Key.generate("ES256")
    jwks = tmp_path_factory.mktemp("jwks") / "client.jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).public().to_jwks()))
    client_id, secret = _register(service, "batch", "--grant", "client_credentials", "--scope", "read",
                                  "--jwks", str(jwks))
    assert secret is None
    return Registered(client_id, None, key)


def test_client_credentials_with_a_secret_authenticate_api_calls(service: Service, secret_client: Registered) -> None:
    auth = ClientCredentials(service.token_url, secret_client.client_id, client_secret=secret_client.secret)
    claims = service.userinfo(auth).json()
    assert claims["sub"] == claims["client_id"] == secret_client.client_id and claims["scope"] == "read write"


def test_client_credentials_with_a_private_key_need_no_secret(service: Service, key_client: Registered) -> None:
    auth = ClientCredentials(service.token_url, key_client.client_id, private_key=key_client.key)
    assert service.userinfo(auth).json()["sub"] == key_client.client_id
    fresh = ClientCredentials(service.token_url, key_client.client_id, private_key=key_client.key)
    assert fresh.token() != auth.token()  # each token request signs a new assertion (new jti)


def test_the_token_is_cached_until_shortly_before_it_expires(service: Service, secret_client: Registered) -> None:
    clock, http = FakeClock(0), Counting()
    auth = ClientCredentials(service.token_url, secret_client.client_id, client_secret=secret_client.secret,
                             clock=clock, client=http.client)
    first = auth.token()
    for _ in range(3):
        assert service.userinfo(auth).status_code == 200
    clock.advance(900 - 62)
    assert auth.token() == first and http.count("/v1/auth/token") == 1
    clock.advance(3)
    assert auth.token() != first and http.count("/v1/auth/token") == 2


def test_threads_share_one_token_request(service: Service, key_client: Registered) -> None:
    http = Counting()
    auth = ClientCredentials(service.token_url, key_client.client_id, private_key=key_client.key,
                             client=http.client)
    barrier = threading.Barrier(12)
    got: list[str] = []

    def work() -> None:
        barrier.wait()
        got.append(auth.token())

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert http.count("/v1/auth/token") == 1 and len(set(got)) == 1


@pytest.mark.anyio
async def test_client_credentials_serve_async_clients_too(service: Service, key_client: Registered) -> None:
    auth = ClientCredentials(service.token_url, key_client.client_id, private_key=key_client.key, scope="read")
    tokens = await asyncio.gather(*(auth.atoken() for _ in range(8)))
    assert len(set(tokens)) == 1
    async with httpx.AsyncClient(auth=auth, timeout=30) as api:
        response = await api.get(service.url + "/v1/auth/userinfo")
    assert response.json()["scope"] == "read"


def test_client_credentials_refusals_are_typed(service: Service, secret_client: Registered,
                                               key_client: Registered) -> None:
    assert secret_client.secret is not None
    with pytest.raises(InvalidClient):
        ClientCredentials(service.token_url, secret_client.client_id, client_secret=secret_client.secret + "x").token()
    with pytest.raises(InvalidScope):
        ClientCredentials(service.token_url, secret_client.client_id, client_secret=secret_client.secret,
                          scope="admin").token()
    with pytest.raises(InvalidClient) as wrong_key:  # a key the client never registered
        ClientCredentials(service.token_url, key_client.client_id, private_key=Key.generate("ES256")).token()
    assert wrong_key.value.reason is None  # nobody learns more than "no" before the signature
    backend_id, backend_secret = add_client(service.server.env, "introspector", "introspect")
    with pytest.raises(UnauthorizedClient):
        ClientCredentials(service.token_url, backend_id, client_secret=backend_secret).token()


def test_a_revoked_client_token_is_replaced_and_the_request_sent_again(service: Service,
                                                                       secret_client: Registered) -> None:
    auth = ClientCredentials(service.token_url, secret_client.client_id, client_secret=secret_client.secret)
    revoked = auth.token()
    assert httpx.post(service.url + "/v1/auth/revoke", data={"token": revoked}).status_code == 200
    assert service.userinfo(auth).status_code == 200 and auth.token() != revoked
    assert "client_id" in decode_unverified(auth.token()).payload


def test_client_credentials_refuse_bad_configuration() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ClientCredentials("https://auth.example.com/v1/auth/token", "jwc_x")
    with pytest.raises(ValueError, match="private asymmetric"):
        ClientCredentials("https://auth.example.com/v1/auth/token", "jwc_x",
                          private_key=Key.generate("ES256").public())
    with pytest.raises(ValueError, match="https"):
        ClientCredentials("http://auth.example.com/v1/auth/token", "jwc_x", client_secret="s")
    with pytest.raises(ValueError, match="assertion_lifetime"):
        ClientCredentials("https://auth.example.com/t", "jwc_x", private_key=Key.generate("ES256"),
                          assertion_lifetime=3600)


# ---- the public surface ----------------------------------------------------------------------------


def test_every_public_client_name_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Clients", 1)[1].split("\n## ", 1)[0]
    assert [n for n in jwtwarden.client.__all__ if not re.search(rf"\b{n}\b", section)] == []
