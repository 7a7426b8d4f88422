"""Look-alike usernames (issue #11 item 4): one canonical form per name (RFC 8265
UsernameCaseMapped, with NFKC and case folding) at ``users add`` and at login, mixed-script
names refused, and users stored before the change still log in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.db import database_url as async_url
from jwtwarden.service.storage.migrations import migrate
from jwtwarden.service.usernames import check_new_username, letter_scripts, username_key
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import (
    FAST_HASHER,
    PASSWORD,
    ServerProcess,
    make_settings,
    running_server,
    server_env,
    service_state,
)

FULLWIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"  # alice in full-width letters
CYRILLIC_A_LICE = "\u0430lice"  # Cyrillic small a, then Latin "lice"
GREEK_OMICRON = "b\u03bfb"  # Greek omicron between Latin b's
CYRILLIC_ONLY_LOOKALIKE = "\u0440\u0430\u0443\u0440\u0430"  # "paypa" in Cyrillic letters


def users_add(env: dict[str, str], name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jwtwarden", "users", "add", name], env=env,
                          input=PASSWORD + "\n", capture_output=True, text=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = server_env(tmp_path_factory.mktemp("names"))
    with running_server(env) as running:
        yield running


def login(server: ServerProcess, name: str) -> httpx.Response:
    return httpx.post(server.url + "/v1/auth/login", json={"username": name, "password": PASSWORD},
                      timeout=30)


def test_case_and_width_variants_are_one_user(server: ServerProcess) -> None:
    added = users_add(server.env, "Alice")
    assert added.returncode == 0 and "added alice" in added.stdout
    for variant in ("alice", "ALICE", FULLWIDTH_ALICE):  # before the fix: three more users
        again = users_add(server.env, variant)
        assert again.returncode == 1 and "exists" in again.stderr, variant
    subjects = set()
    for variant in ("Alice", "alice", "ALICE", FULLWIDTH_ALICE):
        response = login(server, variant)
        assert response.status_code == 200, (variant, response.text)
        info = httpx.get(server.url + "/v1/auth/userinfo",
                         headers={"authorization": "Bearer " + response.json()["access_token"]})
        subjects.add(info.json()["sub"])
    assert len(subjects) == 1


@pytest.mark.parametrize("name", [CYRILLIC_A_LICE, GREEK_OMICRON, CYRILLIC_ONLY_LOOKALIKE])
def test_look_alike_names_are_refused_with_a_clear_message(server: ServerProcess, name: str) -> None:
    refused = users_add(server.env, name)
    assert refused.returncode == 1  # before the fix: added beside the Latin name
    assert "look" in refused.stderr and "letters" in refused.stderr
    assert login(server, name).status_code == 400


@pytest.mark.parametrize(("name", "key"), [
    ("Straße", "strasse"), ("\ufb01le", "file"), ("José", "josé"), ("Dmitri", "dmitri"),
    ("\u0414\u043c\u0438\u0442\u0440\u0438\u0439", "\u0434\u043c\u0438\u0442\u0440\u0438\u0439"),
    ("\u5c71\u7530\u305f\u308d\u3046", "\u5c71\u7530\u305f\u308d\u3046"),  # Han + Hiragana
    ("user\u00b9", "user1"),
])
def test_names_in_one_script_or_an_allowed_mix_are_accepted(name: str, key: str) -> None:
    assert check_new_username(name) == key == username_key(key)


def test_script_detection_counts_letters_only() -> None:
    assert letter_scripts("bob-42_x") == ["Latin"]
    assert letter_scripts(CYRILLIC_A_LICE) == ["Cyrillic", "Latin"]
    assert letter_scripts("\u13a0\u13a1") == ["Cherokee"]


@pytest.mark.anyio
async def test_users_stored_before_normalisation_still_log_in(tmp_path: Path, database_url: str) -> None:
    """Schema 2 stored names as typed: ``Alice`` logs in as typed and as ``alice``; of two
    names with one canonical form the older keeps it and the newer is disabled, reachable by
    its exact name for the operator."""
    (tmp_path / "data").mkdir()
    db = Database(async_url(database_url, tmp_path / "data"))
    await migrate(db, target=2)
    hashed = FAST_HASHER.hash(PASSWORD)
    async with db.transaction() as conn:
        for i, name in enumerate(("Alice", "ALICE", "bob")):
            await conn.execute(sa.text(
                "INSERT INTO users (id, username, password_hash, scope, disabled, created_at, updated_at)"
                " VALUES (:id, :name, :hash, '', false, :t, :t)"), {"id": f"u{i}", "name": name, "hash": hashed,
                                                                   "t": NOW + i})
    await db.dispose()
    async with service_state(make_settings(tmp_path, database_url), FakeClock(NOW)) as state:
        for typed in ("Alice", "alice", "ALICE"):
            assert (await state.sessions.login(typed, PASSWORD)).subject == "u0"
        assert (await state.sessions.login("BOB", PASSWORD)).subject == "u2"
        newer = await state.accounts.get_user("ALICE")  # the exact name reaches the newer one
        assert newer is not None and newer.id == "u1" and newer.disabled
        user, _ = await state.accounts.delete_user("ALICE")
        assert user.id == "u1"
        assert (await state.accounts.get_user("alice")) is not None
