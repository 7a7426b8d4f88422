"""Running the service: configuration, the KEK, migrations, and the operator's CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jwtwarden import Key, errors
from jwtwarden.cli import main
from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.service.config import ConfigError, load_settings
from jwtwarden.service.sessions.accounts import Accounts
from jwtwarden.service.sessions.kek import KEKError, load_kek
from jwtwarden.service.sessions.keyring import KeyRing
from jwtwarden.service.sessions.subkeys import RowMAC
from jwtwarden.service.storage import schema
from jwtwarden.service.storage.db import Database, database_url
from jwtwarden.service.storage.migrations import MIGRATIONS, applied_versions, migrate
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import FAST_HASHER, PASSWORD, TEST_KEK, make_settings, service_state

# ---- configuration --------------------------------------------------------------------------


def test_environment_overrides_the_toml_file_which_overrides_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "jwtwarden.toml"
    toml.write_text('access_lifetime = 600\naudience = ["a", "b"]\ngrace_window = 2\n')
    settings = load_settings({"JWTWARDEN_GRACE_WINDOW": "5"}, config_file=toml)
    assert settings.access_lifetime == 600
    assert settings.audience == ("a", "b")
    assert settings.grace_window == 5.0
    assert settings.algorithm == "ES256"


@pytest.mark.parametrize(("name", "value"), [
    ("ACCESS_LIFETIME", "3600"), ("ACCESS_LIFETIME", "ten"), ("ISSUER", "ftp://x"),
    ("ISSUER", "http://auth.example.com"), ("ALGORITHM", "none"), ("GRACE_WINDOW", "600"),
    ("COOKIE_MODE", "maybe"), ("ALLOWED_ORIGINS", "https://a.example/path"), ("AUDIENCE", ""),
])
def test_unsafe_or_malformed_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"JWTWARDEN_{name}"):
        load_settings({f"JWTWARDEN_{name}": value})


def test_unknown_toml_keys_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("acess_lifetime = 600\n")
    with pytest.raises(ConfigError, match="acess_lifetime"):
        load_settings({}, config_file=toml)


def test_config_show_masks_secrets_unless_asked() -> None:
    env = {"JWTWARDEN_KEK": TEST_KEK, "JWTWARDEN_DATABASE_URL": "postgresql://app:s3cret@db/jw"}
    result = CliRunner(env=env).invoke(main, ["config", "show"])
    assert result.exit_code == 0
    assert TEST_KEK not in result.output and "s3cret" not in result.output
    assert "postgresql://app:****@db/jw" in result.output
    shown = CliRunner(env=env).invoke(main, ["config", "show", "--show-secrets"])
    assert TEST_KEK in shown.output


def test_config_gen_kek_makes_a_usable_key(tmp_path: Path) -> None:
    text = CliRunner().invoke(main, ["config", "gen-kek"]).output.strip()
    load_kek(text, tmp_path)


# ---- the key-encryption key -----------------------------------------------------------------


def test_without_a_kek_a_private_file_is_created_once_with_a_loud_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "jwtwarden.kek"):
        first = load_kek(None, tmp_path / "data")
        again = load_kek(None, tmp_path / "data")
    assert stat.S_IMODE((tmp_path / "data.kek").stat().st_mode) == 0o600
    assert first.derive("x") == again.derive("x")
    assert "DEVELOPMENT KEY-ENCRYPTION KEY" in caplog.text
    assert repr(first) == "KEK(****)"


@pytest.mark.parametrize("bad", ["short", "A" * 44, "*" * 43])
def test_a_malformed_kek_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(KEKError):
        load_kek(bad, tmp_path)


@pytest.mark.anyio
async def test_another_kek_cannot_open_the_stored_keys(tmp_path: Path) -> None:
    async with service_state(make_settings(tmp_path)):
        pass
    other = make_settings(tmp_path, kek="AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
    with pytest.raises(KEKError, match="JWTWARDEN_KEK"):
        async with service_state(other):
            pass


@pytest.mark.anyio
async def test_signing_keys_are_stored_encrypted(tmp_path: Path) -> None:
    async with service_state(make_settings(tmp_path)) as state:
        key = next(iter(state.keyring.public_keyset()))
        async with state.db.read() as conn:
            row = (await conn.execute(sa.select(schema.signing_keys))).mappings().one()
    assert b'"d"' not in row["encrypted_private"]
    assert json.loads(row["public_jwk"])["kid"] == key.kid
    assert "d" not in json.loads(row["public_jwk"])


# ---- migrations -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_upgrade_never_loses_a_session(tmp_path: Path, database_url: str) -> None:
    """A session created on schema version 1 refreshes after upgrading to the latest."""
    db = Database(_async(database_url, tmp_path))
    (tmp_path / "data").mkdir(exist_ok=True)
    assert [m.version for m in await migrate(db, target=1)] == [1]
    clock = FakeClock(NOW)
    from jwtwarden.service.sessions.refresh_tokens import new_refresh_token, refresh_token_hash

    token = new_refresh_token()
    check = AESGCM(b64url_decode(TEST_KEK))  # what a v1 service wrote at its first start
    nonce = os.urandom(12)
    async with db.transaction() as conn:  # what a v1 service would have written
        await conn.execute(sa.text("INSERT INTO meta (name, value) VALUES ('kek_check', :v)"), {
            "v": nonce + check.encrypt(nonce, b"jwtwarden key-encryption key check v1", b"kek_check")})
        await conn.execute(sa.text(
            "INSERT INTO families (id, subject, scope, created_at, expires_at, generation, last_used_at) "
            "VALUES ('fam1', 'sub1', '', :now, :end, 0, :now)"), {"now": NOW, "end": NOW + 86_400})
        await conn.execute(sa.text(
            "INSERT INTO refresh_tokens (token_hash, family_id, generation, created_at, expires_at) "
            "VALUES (:h, 'fam1', 0, :now, :end)"), {"h": refresh_token_hash(token), "now": NOW, "end": NOW + 3600})
    await db.dispose()
    async with service_state(make_settings(tmp_path, database_url), clock) as state:  # migrates to latest
        assert await applied_versions(state.db) == [m.version for m in MIGRATIONS]
        pair = await state.sessions.refresh(token)
    assert pair.family_id == "fam1" and pair.subject == "sub1"


def _async(url: str, tmp_path: Path) -> str:
    return database_url(url, tmp_path / "data")


@asynccontextmanager
async def _replicas(url: str, tmp_path: Path, n: int, *, ready: bool = False) -> AsyncIterator[list[Database]]:
    """``n`` Database objects on one database, as ``n`` replicas would hold, disposed after.

    ``ready``: migrated, and every one already connected, so what the test starts with
    ``gather`` reaches the server together instead of staggered by connection set-up.
    """
    (tmp_path / "data").mkdir(exist_ok=True)
    dbs = [Database(_async(url, tmp_path)) for _ in range(n)]
    try:
        if ready:
            await migrate(dbs[0])
            await asyncio.gather(*(db.ping() for db in dbs))
        yield dbs
    finally:
        for db in dbs:
            await db.dispose()


@pytest.mark.anyio
async def test_the_migrated_schema_matches_the_query_schema(tmp_path: Path, database_url: str) -> None:
    db = Database(_async(database_url, tmp_path))
    (tmp_path / "data").mkdir(exist_ok=True)
    await migrate(db)
    async with db.read() as conn:
        actual = await conn.run_sync(lambda c: {
            t: {col["name"] for col in sa.inspect(c).get_columns(t)} for t in sa.inspect(c).get_table_names()
        })
    await db.dispose()
    for table in schema.metadata.tables.values():
        assert {c.name for c in table.columns} == actual[table.name], table.name


@pytest.mark.anyio
async def test_replicas_migrating_the_same_empty_database_at_once_do_not_fail(
    tmp_path: Path, database_url: str
) -> None:
    async with _replicas(database_url, tmp_path, 4) as dbs:
        results = await asyncio.gather(*(migrate(db) for db in dbs))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(MIGRATIONS)]


@pytest.mark.anyio
async def test_replicas_starting_at_once_share_one_signing_key(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)

    async def start() -> str:
        async with service_state(settings) as state:
            return state.keyring.issuer().key.kid

    kids = await asyncio.gather(*(start() for _ in range(3)))
    assert len(set(kids)) == 1


@pytest.mark.anyio
async def test_replicas_checking_the_kek_at_once_store_one_check_value(
    tmp_path: Path, database_url: str
) -> None:
    # The window the start-up test above hits only by luck: every replica has migrated and
    # reads "no check value yet" before any of them inserts one.
    settings = make_settings(tmp_path, database_url)
    async with _replicas(database_url, tmp_path, 4, ready=True) as dbs:
        kek = load_kek(TEST_KEK, tmp_path / "data")
        rings = [KeyRing(db, kek, settings) for db in dbs]
        await asyncio.gather(*(ring.check_kek() for ring in rings))
        await asyncio.gather(*(ring.check_kek() for ring in rings))  # and it reads back
        async with dbs[0].read() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(schema.meta).where(
                schema.meta.c.name == "kek_check"))).scalar()
    assert count == 1


@pytest.mark.anyio
async def test_two_operators_adding_the_same_user_or_client_at_once_get_a_clear_error(
    tmp_path: Path, database_url: str
) -> None:
    async with _replicas(database_url, tmp_path, 2, ready=True) as dbs:
        macs = RowMAC.from_kek(load_kek(TEST_KEK, tmp_path / "data"))
        accounts = [Accounts(db, macs=macs, hasher=FAST_HASHER) for db in dbs]
        users = await asyncio.gather(*(a.add_user("alice", PASSWORD) for a in accounts),
                                     return_exceptions=True)
        clients = await asyncio.gather(*(a.add_client("app", {"introspect"}) for a in accounts),
                                       return_exceptions=True)
    for outcome in (users, clients):
        refused = [r for r in outcome if isinstance(r, BaseException)]
        assert len(refused) == 1, outcome
        assert isinstance(refused[0], ValueError) and "exists" in str(refused[0])


# ---- the operator's CLI -------------------------------------------------------------------


def cli(tmp_path: Path, *args: str, input: str | None = None) -> Result:
    env = {"JWTWARDEN_DATA_DIR": str(tmp_path / "data"), "JWTWARDEN_KEK": TEST_KEK}
    return CliRunner(env=env).invoke(main, list(args), input=input, catch_exceptions=False)


def test_users_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    added = cli(tmp_path, "users", "add", "alice", "--scope", "read", input=PASSWORD + "\n")
    listed = cli(tmp_path, "users", "list")
    assert added.exit_code == 0 and "subject" in added.output
    assert "alice" in listed.output and "active" in listed.output and "read" in listed.output
    assert PASSWORD not in listed.output


def test_users_add_refuses_short_passwords_and_duplicates(tmp_path: Path) -> None:
    assert cli(tmp_path, "users", "add", "alice", input="short\n").exit_code == 1
    assert cli(tmp_path, "users", "add", "alice", input=PASSWORD + "\n").exit_code == 0
    duplicate = cli(tmp_path, "users", "add", "alice", input=PASSWORD + "\n")
    assert duplicate.exit_code == 1 and "exists" in duplicate.output


@pytest.mark.parametrize("command", [["disable", "alice"], ["delete", "alice"], ["set-password", "alice"]])
def test_disable_delete_and_new_password_end_every_session(tmp_path: Path, command: list[str]) -> None:
    cli(tmp_path, "users", "add", "alice", input=PASSWORD + "\n")
    settings = load_settings({}, data_dir=tmp_path / "data", kek=TEST_KEK)

    async def login() -> tuple[str, str]:
        async with service_state(settings) as state:
            pair = await state.sessions.login("alice", PASSWORD)
            return pair.refresh_token, pair.access_token

    refresh_token, access_token = asyncio.run(login())
    result = cli(tmp_path, "users", *command, input="another long password\n")
    assert result.exit_code == 0 and "1 session(s) ended" in result.output

    async def after() -> None:
        async with service_state(settings) as state:
            with pytest.raises(errors.RefreshRevoked):
                await state.sessions.refresh(refresh_token)
            with pytest.raises(errors.Revoked):
                (await state.sessions.verify_access(access_token))

    asyncio.run(after())


def test_users_commands_on_unknown_users_fail_cleanly(tmp_path: Path) -> None:
    for command in (["disable", "zed"], ["enable", "zed"], ["delete", "zed"]):
        result = cli(tmp_path, "users", *command)
        assert result.exit_code == 1 and "no user" in result.output


def test_clients_add_shows_the_secret_once_and_list_never(tmp_path: Path) -> None:
    added = cli(tmp_path, "clients", "add", "backend", "--permission", "sessions")
    secret = added.output.split("client_secret=")[1].split()[0]
    listed = cli(tmp_path, "clients", "list")
    assert secret.startswith("jws_") and secret not in listed.output and "backend" in listed.output


def test_keys_import_makes_a_pem_key_the_signing_key(tmp_path: Path) -> None:
    key = Key.generate("RS256")
    pem = tmp_path / "old.pem"
    from jwtwarden.keys import AsymmetricKey

    assert isinstance(key, AsymmetricKey)
    pem.write_bytes(key.to_pem(private=True))
    assert cli(tmp_path, "keys", "import", str(pem)).exit_code == 2  # PEM needs --alg
    imported = cli(tmp_path, "keys", "import", str(pem), "--alg", "RS256")
    listed = cli(tmp_path, "keys", "list")
    assert imported.exit_code == 0 and key.kid in imported.output
    active = [line for line in listed.output.splitlines() if "\tactive\t" in line]
    assert len(active) == 1 and active[0].startswith(key.kid)


def test_keys_import_refuses_public_and_weak_keys(tmp_path: Path) -> None:
    public = tmp_path / "pub.json"
    public.write_text(json.dumps(Key.generate("ES256").public().to_jwk()))
    assert cli(tmp_path, "keys", "import", str(public)).exit_code == 2
    weak = tmp_path / "weak.json"
    weak.write_text(json.dumps({"kty": "oct", "k": "c2hvcnQ", "alg": "HS256"}))
    assert cli(tmp_path, "keys", "import", str(weak)).exit_code == 2


def test_gc_reports_what_it_deleted(tmp_path: Path) -> None:
    result = cli(tmp_path, "gc", "--batch", "10")
    assert result.exit_code == 0 and "refresh_tokens=0" in result.output
