"""What a copy of the data directory or of the database gives away (issue #16 F5).

The attacker of these tests holds a spent refresh token and a copy of the data directory
(or a dump of the database, on SQLite and PostgreSQL), and sometimes the key-encryption key
as well. They know every algorithm jwtwarden has used: the old successor derivation
``HMAC-SHA-512(HKDF(KEK, "jwtwarden refresh successor v1"), predecessor)`` in particular.
They must not end up with a refresh token the service accepts, and the owner of the session
must not notice them (no reuse detection tripped by their guesses).

The upgrade tests start the current code on a database written by the code before these
changes (``tests/fixtures/legacy_secrets_db.sql``, made by that code itself): its sessions,
access tokens, signing key and API clients keep working.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from jwtwarden import errors
from jwtwarden.errors import MalformedToken
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.service.storage import schema
from jwtwarden.service.storage.db import Database, database_url
from jwtwarden.service.storage.migrations import MIGRATIONS, applied_versions, migrate
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    add_user,
    make_settings,
    running_server,
    server_env,
    service_state,
    tokens,
)

FIXTURES = Path(__file__).parent / "fixtures"
JSON = {"content-type": "application/json"}


# ---- the attacker's tools --------------------------------------------------------------------


def format_token(random_part: bytes) -> str:
    """The ``jwr_`` format, written from its documentation (not imported)."""
    body = b64url_encode(random_part)
    return "jwr_" + body + b64url_encode(zlib.crc32(body.encode()).to_bytes(4, "big"))


def old_successor(token: str, kek: bytes) -> str:
    """The successor derivation jwtwarden used before issue #16."""
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"jwtwarden refresh successor v1").derive(kek)
    return format_token(hmac.new(key, token.encode(), hashlib.sha512).digest()[:64])


def sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def keys_in(root: Path) -> set[bytes]:
    """Every 32-byte key written as base64url anywhere under ``root`` (how a KEK is stored)."""
    found = set()
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        for word in path.read_bytes().split():
            if len(word) != 43:
                continue
            try:
                raw = b64url_decode(word.decode("ascii"))
            except (UnicodeDecodeError, MalformedToken):
                continue
            found.add(raw)
    return found


def walk_chains(spent: list[str], keks: set[bytes], steps: int = 8) -> set[str]:
    """Every token the old derivation gives from the spent tokens under each key."""
    out = set()
    for kek in keks:
        for token in spent:
            for _ in range(steps):
                token = old_successor(token, kek)
                out.add(token)
    return out


def live_hashes_sqlite(db_file: Path) -> set[bytes]:
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as db:
        return {bytes(h) for (h,) in db.execute(
            "SELECT token_hash FROM refresh_tokens WHERE used_at IS NULL")}


# ---- F5: a copied data directory plus a spent token ----------------------------------------------


def test_a_copied_data_directory_and_a_spent_refresh_token_do_not_give_the_live_one(
    tmp_path: Path,
) -> None:
    """The development layout (no JWTWARDEN_KEK), the service as a process, copied while it runs."""
    env = server_env(tmp_path)
    add_user(env)
    with running_server(env) as server:
        def refresh(token: str) -> httpx.Response:
            return httpx.post(server.url + "/v1/auth/refresh", json={"refresh_token": token}, timeout=30)

        pair = tokens(httpx.post(server.url + "/v1/auth/login", timeout=30,
                                 json={"username": "alice", "password": PASSWORD}))
        spent = [pair["refresh_token"]]
        for _ in range(3):
            pair = tokens(refresh(spent[-1]))
            spent.append(pair["refresh_token"])
        live = spent.pop()
        stolen = shutil.copytree(tmp_path / "data", tmp_path / "stolen")  # while it serves

        # offline: every key in the copy, the old chain from each spent token, checked
        # against the copy's own hashes of unused tokens
        keks = keys_in(stolen)
        candidates = walk_chains(spent[:1], keks)
        unused = live_hashes_sqlite(stolen / "jwtwarden.db")
        assert sha256(live) in unused  # the copy is a good one
        assert [c for c in candidates if sha256(c) in unused] == []
        # online: what is left to try, without presenting a token the copy shows as spent
        # (that would be reuse, which the owner would notice)
        spent_hashes = {sha256(t) for t in spent}
        for candidate in sorted(c for c in candidates if sha256(c) not in spent_hashes):
            answer = refresh(candidate)
            assert answer.status_code == 400 and answer.json()["reason"] == "invalid_refresh_token"
        # and the owner's session goes on, none the wiser
        assert refresh(live).status_code == 200


def test_the_data_directory_holds_no_copy_of_the_development_kek(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    add_user(env)  # creates the database and the development KEK, as `serve` would
    data = tmp_path / "data"
    kek_files = [p for p in (data / "kek", tmp_path / "data.kek") if p.exists()]
    assert kek_files, "the development KEK was not created where the documentation says"
    kek = kek_files[0].read_text().strip()
    assert len(b64url_decode(kek)) == 32
    assert not (data / "kek").exists()
    for path in data.rglob("*"):
        if path.is_file():
            assert kek.encode() not in path.read_bytes(), path


@pytest.mark.anyio
async def test_a_database_dump_with_the_kek_and_every_spent_token_gives_no_live_token(
    tmp_path: Path, database_url: str,
) -> None:
    """Worse than a copy of the data directory: the attacker also holds JWTWARDEN_KEK."""
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        await state.accounts.add_user("alice", PASSWORD)
        pair = await state.sessions.login("alice", PASSWORD)
        spent = [pair.refresh_token]
        for _ in range(3):
            clock.advance(10)
            spent.append((await state.sessions.refresh(spent[-1])).refresh_token)
        live = spent.pop()
        async with state.db.read() as conn:  # the dump
            rows = (await conn.execute(sa.select(schema.refresh_tokens))).mappings().all()
        unused = {bytes(r["token_hash"]) for r in rows if r["used_at"] is None}
        dump = b"".join(repr(dict(r)).encode() for r in rows)
        candidates = walk_chains(spent, {b64url_decode(TEST_KEK)})
        assert sha256(live) in unused
        assert [c for c in candidates if sha256(c) in unused] == []
        assert live.encode() not in dump
        for candidate in candidates - set(spent):
            with pytest.raises(errors.InvalidRefreshToken):
                await state.sessions.refresh(candidate)
        clock.advance(10)
        await state.sessions.refresh(live)  # the owner is unaffected


# ---- the grace window, and what it keeps -----------------------------------------------------------


@pytest.mark.anyio
async def test_a_retry_within_the_grace_window_gets_the_same_successor_and_only_then(
    tmp_path: Path, database_url: str,
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url, grace_window=10), clock) as state:
        await state.accounts.add_user("alice", PASSWORD)
        first = await state.sessions.login("alice", PASSWORD)
        second = await state.sessions.refresh(first.refresh_token)
        clock.advance(10)
        again = await state.sessions.refresh(first.refresh_token)  # a second tab, 10 s later
        assert again.refresh_token == second.refresh_token
        assert again.access_token != second.access_token
        clock.advance(0.5)
        with pytest.raises(errors.RefreshReused):
            await state.sessions.refresh(first.refresh_token)
        with pytest.raises(errors.RefreshRevoked):
            await state.sessions.refresh(second.refresh_token)


async def grace_copies(state: Any) -> list[bytes]:
    async with state.db.read() as conn:
        return [bytes(v) for (v,) in await conn.execute(
            sa.select(schema.families.c.grace_successor).where(
                schema.families.c.grace_successor.is_not(None)))]


@pytest.mark.anyio
async def test_the_grace_copy_of_a_successor_is_sealed_and_erased_after_its_window(
    tmp_path: Path, database_url: str,
) -> None:
    """With a grace window the successor is kept, sealed under a key derived from the KEK and
    the predecessor, until the next rotation, a revocation or the first GC after the window."""
    from jwtwarden.service.sessions.refresh_tokens import open_successor

    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url, grace_window=10), clock) as state:
        await state.accounts.add_user("alice", PASSWORD)
        first = await state.sessions.login("alice", PASSWORD)
        assert await grace_copies(state) == []  # nothing kept before a rotation
        second = await state.sessions.refresh(first.refresh_token)
        [sealed] = await grace_copies(state)
        assert second.refresh_token.encode() not in sealed
        # the documented exposure: the KEK, the database and the immediate predecessor at once
        grace_key = state.session_keys.grace
        assert open_successor(sealed, first.refresh_token, grace_key) == second.refresh_token
        for token, key in ((second.refresh_token, grace_key), (first.refresh_token, bytes(32))):
            with pytest.raises(InvalidTag):
                open_successor(sealed, token, key)
        third = await state.sessions.refresh(second.refresh_token)  # the next rotation erases it
        [sealed] = await grace_copies(state)
        assert open_successor(sealed, second.refresh_token, grace_key) == third.refresh_token
        clock.advance(10.5)
        await state.sessions.gc()  # the first GC after the window erases the last one
        assert await grace_copies(state) == []
        # ending a session erases its copy too
        other = await state.sessions.refresh((await state.sessions.login("alice", PASSWORD)).refresh_token)
        assert len(await grace_copies(state)) == 1
        await state.sessions.logout(None, other.refresh_token)
        assert await grace_copies(state) == []


@pytest.mark.anyio
async def test_strict_mode_keeps_no_successor_at_all(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        await state.accounts.add_user("alice", PASSWORD)
        token = (await state.sessions.login("alice", PASSWORD)).refresh_token
        for _ in range(3):
            token = (await state.sessions.refresh(token)).refresh_token
        assert await grace_copies(state) == []


# ---- upgrading a database written by the code before issue #16 ------------------------------------


def legacy() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "legacy_secrets_db.json").read_text())
    return data


def restore_legacy_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript((FIXTURES / "legacy_secrets_db.sql").read_text())
    db.close()


async def restore_legacy(tmp_path: Path, url: str) -> None:
    """The legacy rows on the database under test (copied from SQLite for PostgreSQL)."""
    source = tmp_path / "legacy.db"
    restore_legacy_sqlite(source)
    if url.startswith("sqlite"):
        shutil.copy(source, url.removeprefix("sqlite:///"))
        return
    db = Database(database_url(url, tmp_path))
    try:
        await migrate(db, target=2)
        with sqlite3.connect(source) as src:
            src.row_factory = sqlite3.Row
            async with db.transaction() as conn:
                for table in ("users", "clients", "families", "refresh_tokens", "signing_keys", "meta"):
                    rows = [dict(r) for r in src.execute(f"SELECT * FROM {table}")]  # noqa: S608
                    # the current table's types (booleans...), only the legacy columns
                    await conn.execute(schema.metadata.tables[table].insert(), rows)
        src.close()
    finally:
        await db.dispose()


@pytest.mark.anyio
async def test_a_database_written_before_the_upgrade_still_serves_its_sessions(
    tmp_path: Path, database_url: str,
) -> None:
    old = legacy()
    await restore_legacy(tmp_path, database_url)
    clock = FakeClock(old["now"] + 30)
    settings = make_settings(tmp_path, database_url)
    async with service_state(settings, clock) as state:
        assert await applied_versions(state.db) == [m.version for m in MIGRATIONS]
        claims = await state.sessions.verify_access(old["alice_access"])  # the old signing key
        assert claims.sid == old["alice_family"]
        alice = await state.sessions.refresh(old["alice_refresh"])
        bob = await state.sessions.refresh(old["bob_refresh"])
        assert bob.subject == old["bob_subject"]
        client = await state.accounts.authenticate_client(old["client_id"], old["client_secret"], "sessions")
        assert client.name == "backend"
        await state.accounts.authenticate_client(old["viewer_id"], old["viewer_secret"], "introspect")
        with pytest.raises(errors.InvalidCredentials):
            await state.accounts.authenticate_client(old["viewer_id"], old["viewer_secret"], "sessions")
        with pytest.raises(errors.InvalidCredentials):
            await state.accounts.authenticate_client(old["client_id"], old["viewer_secret"], "sessions")
        with pytest.raises(errors.RefreshReused):  # the old spent token is still reuse
            await state.sessions.refresh(old["alice_spent_refresh"])
        with pytest.raises(errors.RefreshRevoked):
            await state.sessions.refresh(alice.refresh_token)
        async with state.db.read() as conn:
            blob = (await conn.execute(sa.select(schema.signing_keys.c.encrypted_private))).scalar_one()
    # the private key is now wrapped under an HKDF-derived key, not the raw KEK
    with pytest.raises(InvalidTag):
        AESGCM(b64url_decode(TEST_KEK)).decrypt(blob[:12], blob[12:], f"signing key {old['kid']}".encode())
    async with service_state(settings, clock) as state:  # a second start changes nothing
        await state.sessions.refresh(bob.refresh_token)
        await state.accounts.authenticate_client(old["client_id"], old["client_secret"], "sessions")
