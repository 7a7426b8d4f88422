"""The credential epoch (issue #11 item 5, issue #16 F8): no session outlives the credentials
it was created with.

- logins with the old password running while ``jwtwarden users set-password`` (or ``users
  disable``) runs: every session they got is refused at refresh and at userinfo — against
  ``jwtwarden serve`` as a process, on SQLite and on PostgreSQL;
- a login racing "log out everywhere" (in the same second) cannot keep a refreshable session;
- a refresh re-checks the account in its rotation transaction, whatever the deny list says;
- an account change and the end of its sessions are one transaction;
- a password rehash on login never overwrites a password set meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from click.testing import CliRunner

from jwtwarden import errors
from jwtwarden.cli import main
from jwtwarden.service.sessions.denylist import DenyList
from jwtwarden.service.storage.schema import users
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import (
    FAST_HASHER,
    PASSWORD,
    TEST_KEK,
    add_user,
    make_settings,
    running_server,
    server_env,
    service_state,
)

NEW_PASSWORD = "a brand new password"


# ---- against the service as a process, on SQLite and PostgreSQL ----------------------------------


def _logins_during(url: str, name: str, change: Callable[[], None], workers: int = 6) -> list[dict[str, Any]]:
    """Log in with the (old) password from ``workers`` clients at once, over and over, while
    ``change()`` runs, and for a moment after; return every pair obtained."""
    pairs: list[dict[str, Any]] = []
    started = threading.Event()
    done = threading.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        rounds_after = 0
        while rounds_after < 3:
            response = await client.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
            if response.status_code == 200:
                pairs.append(response.json())
                started.set()
            else:
                assert response.status_code == 400, response.text
            if done.is_set():
                rounds_after += 1

    async def main() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await asyncio.gather(*(worker(client) for _ in range(workers)))

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    try:
        assert started.wait(60), "no login succeeded before the change"
        change()
    finally:
        done.set()
        thread.join(120)
    return pairs


def _userinfo_refused(url: str, access_token: str) -> bool:
    """The service learns the CLI's revocations from the database within a poll interval."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = httpx.get(url + "/v1/auth/userinfo", headers={"authorization": f"Bearer {access_token}"})
        if answer.status_code == 401:
            return True
        assert answer.status_code == 200, answer.text
        time.sleep(0.1)  # waiting for the other process's poll, not for the clock
    return False


@pytest.mark.parametrize("command", ["set-password", "disable"])
def test_no_session_from_a_login_racing_an_account_change_survives_it(
    tmp_path: Path, database_url: str, command: str
) -> None:
    env = server_env(tmp_path, JWTWARDEN_DATABASE_URL=database_url, JWTWARDEN_KEK=TEST_KEK,
                     JWTWARDEN_LOGIN_MAX_FAILURES="100000",
                     JWTWARDEN_LOGIN_MAX_FAILURES_PER_ADDRESS="100000")
    add_user(env, "alice")
    with running_server(env) as server:

        def change() -> None:
            subprocess.run([sys.executable, "-m", "jwtwarden", "users", command, "alice"], env=server.env,
                           input=(NEW_PASSWORD + "\n").encode(), check=True, capture_output=True)

        pairs = _logins_during(server.url, "alice", change)
        survivors = [p for p in pairs if httpx.post(server.url + "/v1/auth/refresh", json={
            "refresh_token": p["refresh_token"]}).status_code == 200]
        # before the fix: about four sessions per run refreshed after the change
        assert survivors == [], f"{len(survivors)} of {len(pairs)} sessions survived `users {command}`"
        assert all(_userinfo_refused(server.url, p["access_token"]) for p in pairs)
        old = httpx.post(server.url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        assert old.status_code == 400


# ---- in process, with the interleavings forced -----------------------------------------------------


class _Interleaved(PasswordHasher):
    """A hasher that runs ``during`` (once) while a password is being verified."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.during: Callable[[], None] | None = None

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        ok = super().verify(hash, password)
        job, self.during = self.during, None
        if job is not None:
            job()
        return ok


def _on_loop(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(30)


@pytest.mark.anyio
async def test_a_login_racing_logout_everywhere_in_the_same_second_keeps_nothing(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock(NOW)  # time stands still: everything happens within one second
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        user = await state.accounts.add_user("alice", PASSWORD)
        hasher = _Interleaved()
        state.accounts.hashing.hasher = hasher
        loop = asyncio.get_running_loop()
        hasher.during = lambda: _on_loop(loop, state.sessions.logout_all(user.id))
        # it verified the password before "log out everywhere" committed: refused (before the
        # fix its session was created after the logout, in the same second, and refreshed)
        with pytest.raises(errors.InvalidCredentials):
            await state.sessions.login("alice", PASSWORD)
        await state.sessions.login("alice", PASSWORD)  # logging in again works at once


@pytest.mark.anyio
async def test_a_login_verifying_the_old_password_during_a_change_gets_no_session(
    tmp_path: Path, database_url: str
) -> None:
    async with service_state(make_settings(tmp_path, database_url), FakeClock(NOW)) as state:
        await state.accounts.add_user("alice", PASSWORD)
        hasher = _Interleaved()
        state.accounts.hashing.hasher = hasher
        loop = asyncio.get_running_loop()
        hasher.during = lambda: _on_loop(loop, state.accounts.set_password("alice", NEW_PASSWORD))
        with pytest.raises(errors.InvalidCredentials):  # before the fix: a fresh session
            await state.sessions.login("alice", PASSWORD)
        await state.sessions.login("alice", NEW_PASSWORD)


@pytest.mark.anyio
async def test_a_refresh_rechecks_the_account_in_its_transaction(tmp_path: Path, database_url: str) -> None:
    async with service_state(make_settings(tmp_path, database_url), FakeClock(NOW)) as state:
        await state.accounts.add_user("alice", PASSWORD)
        pair = await state.sessions.login("alice", PASSWORD)
        # the account changes behind the sessions' back (no revocation recorded at all)
        async with state.db.transaction() as conn:
            await conn.execute(users.update().values(credential_epoch=users.c.credential_epoch + 1))
        with pytest.raises(errors.RefreshRevoked) as refused:  # before the fix: a new pair
            await state.sessions.refresh(pair.refresh_token)
        assert "account changed" in refused.value.message
        # and the family is revoked for good, its access token deny-listed
        with pytest.raises(errors.Revoked):
            await state.sessions.verify_access(pair.access_token)


@pytest.mark.anyio
async def test_a_refresh_of_a_disabled_or_deleted_users_session_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    async with service_state(make_settings(tmp_path, database_url), FakeClock(NOW)) as state:
        for name in ("alice", "bob"):
            await state.accounts.add_user(name, PASSWORD)
        alice = await state.sessions.login("alice", PASSWORD)
        bob = await state.sessions.login("bob", PASSWORD)
        async with state.db.transaction() as conn:  # behind the service's back, as a raw edit
            await conn.execute(users.update().where(users.c.username == "alice").values(disabled=True))
            await conn.execute(users.delete().where(users.c.username == "bob"))
        for pair in (alice, bob):
            with pytest.raises(errors.RefreshRevoked):
                await state.sessions.refresh(pair.refresh_token)


def _cli(tmp_path: Path, *args: str, input: str | None = None) -> Any:
    env = {"JWTWARDEN_DATA_DIR": str(tmp_path / "data"), "JWTWARDEN_KEK": TEST_KEK}
    return CliRunner(env=env).invoke(main, list(args), input=input)


@pytest.mark.parametrize("command", [["set-password", "alice"], ["disable", "alice"], ["delete", "alice"]])
def test_an_account_change_and_the_end_of_its_sessions_are_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    assert _cli(tmp_path, "users", "add", "alice", input=PASSWORD + "\n").exit_code == 0
    settings = make_settings(tmp_path)

    async def login() -> str:
        async with service_state(settings) as state:
            return (await state.sessions.login("alice", PASSWORD)).refresh_token

    refresh_token = asyncio.run(login())

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the deny list write failed")

    with monkeypatch.context() as patched:  # ending the sessions fails half-way
        patched.setattr(DenyList, "record", broken)
        failed = _cli(tmp_path, "users", *command, input=NEW_PASSWORD + "\n")
    assert failed.exit_code != 0

    async def after() -> None:
        async with service_state(settings) as state:
            # nothing happened: before the fix the change was committed and the sessions lived on
            await state.sessions.login("alice", PASSWORD)
            await state.sessions.refresh(refresh_token)

    asyncio.run(after())


@pytest.mark.anyio
async def test_a_rehash_on_login_never_undoes_a_password_change(tmp_path: Path) -> None:
    old_params = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    async with service_state(make_settings(tmp_path), FakeClock(NOW)) as state:
        state.accounts.hashing.hasher = old_params
        await state.accounts.add_user("alice", PASSWORD)
        loop = asyncio.get_running_loop()
        changed = threading.Event()

        class Upgrading(PasswordHasher):  # newer parameters: every login rehashes
            def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
                if not changed.is_set():  # the operator changes the password meanwhile
                    changed.set()
                    state.accounts.hashing.hasher = FAST_HASHER
                    _on_loop(loop, state.accounts.set_password("alice", NEW_PASSWORD))
                    state.accounts.hashing.hasher = self
                return super().hash(password, salt=salt)

        state.accounts.hashing.hasher = Upgrading(time_cost=2, memory_cost=1024, parallelism=1)
        # the old password verified before the change: that login is refused, anyway
        with contextlib.suppress(errors.InvalidCredentials):
            await state.sessions.login("alice", PASSWORD)
        assert changed.is_set()
        with pytest.raises(errors.InvalidCredentials):  # before the fix: the old password worked again
            await state.sessions.login("alice", PASSWORD)
        await state.sessions.login("alice", NEW_PASSWORD)
        async with state.db.read() as conn:
            epoch = (await conn.execute(sa.select(users.c.credential_epoch))).scalar()
        assert epoch is not None and epoch >= 1
