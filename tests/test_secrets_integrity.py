"""Defence in depth (issue #16): what someone who can *write* the database can do, what the
KEK's separate keys are for, and what the revocation feed tells about users.

The attacker writes rows directly (SQL injection elsewhere, a leaked database password, a
careless backup restore) but does not hold the KEK. They must not be able to mint a session,
widen one, borrow another user's, change a client's secret or permissions, or bring back a
signing key that was revoked or removed. Rows they forge are treated as absent.
What MACs cannot stop is documented in the README: rows returned to an earlier state of
their own (a backup restored, a token marked unused again), and the ``users`` table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jwtwarden import errors
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.revocation import Revocation, RevocationSet, subject_key
from jwtwarden.service.app import ServiceState
from jwtwarden.service.sessions.refresh_tokens import new_refresh_token
from jwtwarden.service.storage import schema
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.infra import PrivateRedis, private_redis
from tests.servicekit import PASSWORD, TEST_KEK, asgi_service, make_settings, service_state

pytestmark = pytest.mark.anyio


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def write(state: ServiceState, *statements: Any) -> None:
    """The attacker's access: plain SQL on the service's database, no KEK."""
    async with state.db.transaction() as conn:
        for statement in statements:
            await conn.execute(statement)


async def user_id(state: ServiceState, name: str) -> str:
    if await state.accounts.get_user(name) is None:
        await state.accounts.add_user(name, PASSWORD)
    user = await state.accounts.get_user(name)
    assert user is not None
    return user.id


# ---- refresh tokens and sessions --------------------------------------------------------------


async def test_a_database_writer_cannot_mint_a_session_with_a_token_of_their_own(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        victim = await user_id(state, "alice")
        genuine = await state.sessions.login("alice", PASSWORD)
        async with state.db.read() as conn:  # MACs an attacker could copy from a real row
            row = dict((await conn.execute(sa.select(schema.families))).mappings().one())
            token_row = dict((await conn.execute(sa.select(schema.refresh_tokens))).mappings().one())
        token = new_refresh_token()
        forged = dict(row, id="forged", scope="admin")
        await write(state,
                    schema.families.insert().values(**forged),
                    schema.refresh_tokens.insert().values(
                        **dict(token_row, token_hash=sha256(token), family_id="forged")))
        with pytest.raises(errors.InvalidRefreshToken):
            await state.sessions.refresh(token)
        assert forged["subject"] == victim
        assert "integrity" in caplog.text  # the operator is told, the attacker is not
        await state.sessions.refresh(genuine.refresh_token)  # the genuine session is untouched


@pytest.mark.parametrize("tamper", ["move the token", "change the subject", "widen the scope",
                                    "add claims", "extend the session", "extend the token"])
async def test_a_database_writer_cannot_turn_their_own_session_into_another(
    tmp_path: Path, database_url: str, tamper: str,
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        alice = await user_id(state, "alice")
        await user_id(state, "mallory")
        victim = await state.sessions.login("alice", PASSWORD)
        own = await state.sessions.login("mallory", PASSWORD)  # the attacker's legitimate session
        fams, toks = schema.families, schema.refresh_tokens
        statement = {
            "move the token": toks.update().where(toks.c.token_hash == sha256(own.refresh_token))
            .values(family_id=victim.family_id),
            "change the subject": fams.update().where(fams.c.id == own.family_id)
            .values(subject=alice, user_id=alice),
            "widen the scope": fams.update().where(fams.c.id == own.family_id).values(scope="admin"),
            "add claims": fams.update().where(fams.c.id == own.family_id)
            .values(claims=json.dumps({"role": "admin"})),
            "extend the session": fams.update().where(fams.c.id == own.family_id)
            .values(expires_at=NOW + 10 * 365 * 86_400),
            "extend the token": toks.update().where(toks.c.token_hash == sha256(own.refresh_token))
            .values(expires_at=NOW + 10 * 365 * 86_400),
        }[tamper]
        await write(state, statement)
        with pytest.raises(errors.InvalidRefreshToken):
            await state.sessions.refresh(own.refresh_token)
        assert (await state.sessions.introspect(own.refresh_token))["active"] is False
        await state.sessions.refresh(victim.refresh_token)


# ---- API clients -----------------------------------------------------------------------------------


async def test_a_database_writer_cannot_give_a_client_a_secret_they_know(
    tmp_path: Path, database_url: str,
) -> None:
    async with service_state(make_settings(tmp_path, database_url)) as state:
        client, _ = await state.accounts.add_client("backend", {"sessions"})
        mine = "jws_" + secrets.token_urlsafe(32)
        clients = schema.clients
        await write(
            state,
            clients.update().where(clients.c.id == client.id).values(secret_hash=sha256(mine)),
            clients.insert().values(id="jwc_mine", name="mine", secret_hash=sha256(mine),
                                    permissions="sessions introspect", disabled=False, created_at=NOW),
        )
        for client_id in (client.id, "jwc_mine"):
            with pytest.raises(errors.InvalidCredentials):
                await state.accounts.authenticate_client(client_id, mine, "sessions")


async def test_a_database_writer_cannot_widen_a_clients_permissions(
    tmp_path: Path, database_url: str,
) -> None:
    async with service_state(make_settings(tmp_path, database_url)) as state:
        viewer, secret = await state.accounts.add_client("viewer", {"introspect"})
        await state.accounts.authenticate_client(viewer.id, secret, "introspect")
        clients = schema.clients
        await write(state, clients.update().where(clients.c.id == viewer.id)
                    .values(permissions="introspect sessions"))
        for permission in ("sessions", "introspect"):
            with pytest.raises(errors.InvalidCredentials):
                await state.accounts.authenticate_client(viewer.id, secret, permission)


@pytest.mark.parametrize(
    "change",
    [{"grants": "client_credentials refresh_token"}, {"scope": "read write admin"},
     {"audience": "billing"}],
)
async def test_a_database_writer_cannot_widen_an_oauth_client(
    tmp_path: Path, change: dict[str, str],
) -> None:
    async with service_state(make_settings(tmp_path)) as state:
        worker, secret = await state.accounts.add_client(
            "worker", grants={"client_credentials"}, scope="read", audience="api")
        await state.accounts.authenticate_client(worker.id, secret, None)
        clients = schema.clients
        await write(state, clients.update().where(clients.c.id == worker.id).values(**change))
        with pytest.raises(errors.InvalidCredentials):
            await state.accounts.authenticate_client(worker.id, secret, None)


async def test_a_database_writer_cannot_swap_a_private_key_jwt_clients_keys(tmp_path: Path) -> None:
    from jwtwarden import KeySet

    registered, attacker = KeySet.generate("ES256"), KeySet.generate("ES256")
    async with service_state(make_settings(tmp_path)) as state:
        client = await state.accounts.add_client_with_keys(
            "signer", grants={"client_credentials"},
            jwks=json.dumps(registered.public().to_jwks()))
        assert await state.accounts.get_client(client.id) is not None
        clients = schema.clients
        await write(state, clients.update().where(clients.c.id == client.id)
                    .values(jwks=json.dumps(attacker.public().to_jwks())))
        assert await state.accounts.get_client(client.id) is None


# ---- signing keys ---------------------------------------------------------------------------------


async def test_a_database_writer_cannot_bring_back_a_revoked_signing_key(
    tmp_path: Path, database_url: str,
) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        await state.accounts.add_user("alice", PASSWORD)
        captured = (await state.sessions.login("alice", PASSWORD)).access_token  # signed by the old key
        old = state.keyring.active()
        assert old is not None
        await state.sessions.revoke_signing_key(old.kid)
        keys = schema.signing_keys
        await write(state, keys.update().where(keys.c.kid == old.kid).values(revoked_at=None))
        state.denylist.set.clear()  # and the deny list's kid entry has expired or was deleted
        await state.keyring.load()
        assert old.kid not in {k.kid for k in state.keyring.public_keyset()}
        with pytest.raises(errors.JWTError):
            await state.sessions.verify_access(captured)
        await state.sessions.login("alice", PASSWORD)  # the replacement signs


async def test_a_database_writer_cannot_republish_a_removed_key(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock(NOW)
    settings = make_settings(tmp_path, database_url)
    async with service_state(settings, clock) as state:
        old = state.keyring.active()
        assert old is not None
        await state.keyring.rotate()
        clock.advance(settings.jwks_max_age + 1)
        await state.keyring.retire(old.kid)
        clock.advance(settings.access_lifetime + 60)
        assert old.kid not in {k.kid for k in state.keyring.public_keyset()}
        keys = schema.signing_keys
        await write(state, keys.update().where(keys.c.kid == old.kid)
                    .values(retire_at=None, remove_at=None))
        await state.keyring.load()
        assert old.kid not in {k.kid for k in state.keyring.public_keyset()}
        active = state.keyring.active()
        assert active is not None and active.kid != old.kid


async def test_signing_keys_are_wrapped_under_a_key_derived_from_the_kek(tmp_path: Path) -> None:
    """The raw KEK is only ever an HKDF input: the AES-GCM key that wraps is derived from it."""
    async with service_state(make_settings(tmp_path)) as state:
        kid = next(iter(state.keyring.public_keyset())).kid
        async with state.db.read() as conn:
            blob = (await conn.execute(sa.select(schema.signing_keys.c.encrypted_private))).scalar_one()
        assert state.kek.decrypt(blob, context=f"signing key {kid}")
    with pytest.raises(InvalidTag):
        AESGCM(b64url_decode(TEST_KEK)).decrypt(blob[:12], blob[12:], f"signing key {kid}".encode())


# ---- subject handles in the revocation feed ------------------------------------------------------


def unkeyed_hashes(subject: str) -> set[str]:
    """What a feed reader can compute from a guessed subject alone."""
    digest = hashlib.sha256(subject.encode()).digest()
    return {subject, subject_key(subject), b64url_encode(digest), digest.hex(), digest[:16].hex()}


async def test_the_feed_does_not_let_a_reader_link_a_logout_everywhere_to_a_subject(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with asgi_service(make_settings(tmp_path), clock) as (_, http, state):
        client, secret = await state.accounts.add_client("backend", {"sessions"})
        subject = "alice@example.com"
        made = await http.post("/v1/sessions", auth=(client.id, secret), json={"subject": subject})
        access = made.json()["access_token"]
        clock.advance(5)
        answer = await http.post("/v1/auth/logout-all", headers={"authorization": f"Bearer {access}"})
        assert answer.status_code == 204
        feed = (await http.get("/v1/revocations")).json()
        feed_text = json.dumps(feed)
        subs = [Revocation.from_json(e) for e in feed["revocations"] if e["kind"] == "sub"]
        assert len(subs) == 1
        for guess in unkeyed_hashes(subject):
            assert guess not in feed_text
        claims = (await http.get("/v1/auth/userinfo", headers={"authorization": f"Bearer {access}"}))
        assert claims.status_code == 401  # revoked
        # a resource server holding nothing but the feed's sub entry refuses the earlier token
        payload = json.loads(b64url_decode(access.split(".")[1]))
        assert payload["sub"] == subject and payload["srh"] == subs[0].value
        with pytest.raises(errors.Revoked):
            RevocationSet(subs, clock=clock).check(payload)
        later = dict(payload, iat=int(clock()) + 1)
        RevocationSet(subs, clock=clock).check(later)


async def test_a_trusted_backend_cannot_choose_the_revocation_handle(tmp_path: Path) -> None:
    async with asgi_service(make_settings(tmp_path)) as (_, http, state):
        client, secret = await state.accounts.add_client("backend", {"sessions"})
        answer = await http.post("/v1/sessions", auth=(client.id, secret),
                                 json={"subject": "bob", "claims": {"srh": "chosen"}})
        assert answer.status_code == 400
        with pytest.raises(ValueError, match="srh"):
            await state.sessions.create_session("bob", claims={"srh": "chosen"})


async def test_with_redis_the_remote_check_finds_a_logout_everywhere_by_its_handle(tmp_path: Path) -> None:
    with private_redis() as redis_server:
        await _remote_check(tmp_path, redis_server)


async def _remote_check(tmp_path: Path, redis_server: PrivateRedis) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, redis_url=redis_server.url), clock) as state:
        assert state.denylist.redis is not None
        await asyncio.wait_for(state.denylist.redis.synced.wait(), 5)
        pair = await state.sessions.create_session("carol@example.com")
        claims = await state.sessions.verify_access(pair.access_token)
        clock.advance(5)
        await state.sessions.logout_all("carol@example.com")
        assert await state.denylist.redis.check_remote(dict(claims, sid="elsewhere", jti="other"))
