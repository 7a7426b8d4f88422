"""Sessions on SQLite and on PostgreSQL: pairs, rotation, reuse, grace, lifetimes, logout."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from jwtwarden import decode_unverified, errors
from jwtwarden.service.app import ServiceState
from jwtwarden.service.sessions.refresh_tokens import TOKEN_LENGTH, refresh_token_hash
from jwtwarden.service.sessions.service import TokenPair
from jwtwarden.service.storage.schema import families, refresh_tokens
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import PASSWORD, make_settings, service_state

pytestmark = pytest.mark.anyio

DAY = 86_400


async def login(state: ServiceState, name: str = "alice") -> TokenPair:
    if await state.accounts.get_user(name) is None:
        await state.accounts.add_user(name, PASSWORD)
    return await state.sessions.login(name, PASSWORD)


async def usable_tokens(state: ServiceState, family_id: str) -> int:
    """Refresh tokens of a family that a client could still exchange."""
    now = state.clock()
    async with state.db.read() as conn:
        fam = (await conn.execute(sa.select(families).where(families.c.id == family_id))).mappings().one()
        if fam["revoked_at"] is not None or now >= fam["expires_at"]:
            return 0
        return int((await conn.execute(sa.select(sa.func.count()).select_from(refresh_tokens).where(
            refresh_tokens.c.family_id == family_id, refresh_tokens.c.used_at.is_(None),
            refresh_tokens.c.expires_at > now))).scalar_one())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


async def test_login_gives_a_pair_with_the_registered_claims(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        claims = (await state.sessions.verify_access(pair.access_token))
        header = decode_unverified(pair.access_token).header
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert claims.sid == pair.family_id and claims.iss == "http://127.0.0.1:8000" and claims.aud == ("api",)
    assert claims.exp - claims.iat == 900 and claims.jti  # type: ignore[operator]
    assert pair.refresh_token.startswith("jwr_") and len(pair.refresh_token) == TOKEN_LENGTH
    assert pair.expires_in == 900 and pair.refresh_expires_in == 7 * DAY


async def test_refresh_tokens_are_stored_only_as_sha256(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        async with state.db.read() as conn:
            stored = (await conn.execute(sa.select(refresh_tokens.c.token_hash))).scalars().all()
    assert stored == [hashlib.sha256(pair.refresh_token.encode()).digest()]


async def test_refresh_rotates_and_spends_the_old_token(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        first = await login(state)
        clock.advance(60)
        second = await state.sessions.refresh(first.refresh_token)
        assert second.refresh_token != first.refresh_token
        assert second.family_id == first.family_id
        assert (await state.sessions.verify_access(second.access_token)).iat == NOW + 60
        assert await usable_tokens(state, first.family_id) == 1


async def test_reuse_revokes_the_family_and_its_access_tokens(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        first = await login(state)
        second = await state.sessions.refresh(first.refresh_token)
        with pytest.raises(errors.RefreshReused):
            await state.sessions.refresh(first.refresh_token)
        # the thief's and the user's successors are both dead now
        with pytest.raises(errors.RefreshRevoked):
            await state.sessions.refresh(second.refresh_token)
        with pytest.raises(errors.Revoked):
            (await state.sessions.verify_access(second.access_token))
        with pytest.raises(errors.Revoked):
            (await state.sessions.verify_access(first.access_token))
        assert await usable_tokens(state, first.family_id) == 0


async def test_reuse_is_recorded_durably_for_other_replicas(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, database_url)
    async with service_state(settings, clock) as state:
        first = await login(state)
        second = await state.sessions.refresh(first.refresh_token)
        with pytest.raises(errors.RefreshReused):
            await state.sessions.refresh(first.refresh_token)
    async with service_state(settings, clock) as other:  # a fresh process: nothing in memory
        with pytest.raises(errors.Revoked):
            (await other.sessions.verify_access(second.access_token))


async def test_grace_window_replays_the_same_successor(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url, grace_window=5), clock) as state:
        first = await login(state)
        second = await state.sessions.refresh(first.refresh_token)
        clock.advance(4)
        again = await state.sessions.refresh(first.refresh_token)
        assert again.refresh_token == second.refresh_token
        assert again.access_token != second.access_token
        assert await usable_tokens(state, first.family_id) == 1
        third = await state.sessions.refresh(second.refresh_token)
        assert third.refresh_token != second.refresh_token


async def test_grace_window_does_not_cover_late_or_older_tokens(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url, grace_window=5), clock) as state:
        first = await login(state)
        await state.sessions.refresh(first.refresh_token)
        clock.advance(6)
        with pytest.raises(errors.RefreshReused):
            await state.sessions.refresh(first.refresh_token)
        second = await login(state)
        third = await state.sessions.refresh(second.refresh_token)
        await state.sessions.refresh(third.refresh_token)
        with pytest.raises(errors.RefreshReused):  # two generations back: not the predecessor
            await state.sessions.refresh(second.refresh_token)


async def test_idle_refresh_token_expires(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        clock.advance(7 * DAY)
        with pytest.raises(errors.RefreshExpired):
            await state.sessions.refresh(pair.refresh_token)


async def test_family_has_an_absolute_lifetime(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        for _ in range(5):  # keep it busy: refresh every 5 days, up to day 25
            clock.advance(5 * DAY)
            pair = await state.sessions.refresh(pair.refresh_token)
        assert pair.refresh_expires_in == 5 * DAY  # capped by the family, not 7 days
        clock.set(NOW + 30 * DAY)
        with pytest.raises(errors.FamilyTooOld):
            await state.sessions.refresh(pair.refresh_token)


async def test_refresh_token_lifetime_never_exceeds_the_family(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        for _ in range(4):  # refresh every 7 days minus a second, up to day 28
            clock.advance(7 * DAY - 1)
            pair = await state.sessions.refresh(pair.refresh_token)
        assert pair.refresh_expires_in == 2 * DAY + 4


@pytest.mark.parametrize("garbage", ["", "jwr_", "x" * 96, "jwr_" + "A" * 92, "eyJhbGciOi.x.y"])
async def test_garbage_refresh_tokens_are_refused_without_a_database_hit(
    tmp_path: Path, clock: FakeClock, garbage: str
) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        await state.db.dispose()  # any database access would now fail differently
        with pytest.raises(errors.InvalidRefreshToken):
            await state.sessions.refresh(garbage)


async def test_an_unknown_well_formed_token_is_invalid(tmp_path: Path, clock: FakeClock) -> None:
    from jwtwarden.service.sessions.refresh_tokens import new_refresh_token

    async with service_state(make_settings(tmp_path), clock) as state:
        with pytest.raises(errors.InvalidRefreshToken):
            await state.sessions.refresh(new_refresh_token())


async def test_logout_revokes_the_family_and_the_access_token(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        other = await login(state)
        claims = (await state.sessions.verify_access(pair.access_token))
        await state.sessions.logout(claims, pair.refresh_token)
        with pytest.raises(errors.Revoked):
            (await state.sessions.verify_access(pair.access_token))
        with pytest.raises(errors.RefreshRevoked):
            await state.sessions.refresh(pair.refresh_token)
        (await state.sessions.verify_access(other.access_token))  # another session is untouched
        await state.sessions.refresh(other.refresh_token)


async def test_logout_cannot_end_someone_elses_session(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        alice = await login(state, "alice")
        mallory = await login(state, "mallory")
        claims = (await state.sessions.verify_access(mallory.access_token))
        await state.sessions.logout(claims, alice.refresh_token)
        await state.sessions.refresh(alice.refresh_token)


async def test_logout_all_ends_every_session_and_earlier_tokens(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        sessions = [await login(state) for _ in range(3)]
        bob = await login(state, "bob")
        sub = (await state.sessions.verify_access(sessions[0].access_token)).sub
        assert sub is not None
        clock.advance(1)
        assert await state.sessions.logout_all(sub) == 3
        for pair in sessions:
            with pytest.raises(errors.Revoked):
                (await state.sessions.verify_access(pair.access_token))
            with pytest.raises(errors.RefreshRevoked):
                await state.sessions.refresh(pair.refresh_token)
        (await state.sessions.verify_access(bob.access_token))
        clock.advance(1)
        fresh = await login(state)  # logging in again works at once
        (await state.sessions.verify_access(fresh.access_token))


async def test_rfc7009_revoking_a_refresh_token_ends_its_family(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        pair = await login(state)
        await state.sessions.revoke(pair.refresh_token)
        with pytest.raises(errors.RefreshRevoked):
            await state.sessions.refresh(pair.refresh_token)
        with pytest.raises(errors.Revoked):
            (await state.sessions.verify_access(pair.access_token))


async def test_rfc7009_revoking_an_access_token_deny_lists_only_it(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        pair = await login(state)
        await state.sessions.revoke(pair.access_token, "access_token")
        with pytest.raises(errors.Revoked):
            (await state.sessions.verify_access(pair.access_token))
        renewed = await state.sessions.refresh(pair.refresh_token)
        (await state.sessions.verify_access(renewed.access_token))


async def test_revoking_garbage_is_not_an_error(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        for garbage in ("x", "jwr_" + "A" * 92, "a.b.c"):
            await state.sessions.revoke(garbage)


async def test_introspection_of_both_token_kinds(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        pair = await login(state)
        access = await state.sessions.introspect(pair.access_token)
        refresh = await state.sessions.introspect(pair.refresh_token)
        assert access["active"] is True and access["token_type"] == "access_token"
        assert refresh["active"] is True and refresh["sid"] == pair.family_id
        await state.sessions.refresh(pair.refresh_token)
        assert await state.sessions.introspect(pair.refresh_token) == {"active": False}
        assert await state.sessions.introspect("garbage") == {"active": False}


async def test_trusted_backend_sessions_carry_linted_claims(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        pair = await state.sessions.create_session("ext-42", scope="read", claims={"tenant": "acme"})
        claims = (await state.sessions.verify_access(pair.access_token))
        assert (claims.sub, claims["tenant"], claims.scopes) == ("ext-42", "acme", frozenset({"read"}))
        renewed = await state.sessions.refresh(pair.refresh_token)
        assert (await state.sessions.verify_access(renewed.access_token))["tenant"] == "acme"
        with pytest.raises(errors.SensitiveClaim):
            await state.sessions.create_session("ext-42", claims={"password": "hunter2"})
        async with state.db.read() as conn:  # the refused session left nothing behind
            assert (await conn.execute(sa.select(sa.func.count()).select_from(families))).scalar_one() == 1


async def test_access_lifetime_jitter_shortens_tokens_a_little(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, access_jitter=60), clock) as state:
        lifetimes = set()
        for _ in range(30):
            claims = await state.sessions.verify_access((await login(state)).access_token)
            lifetimes.add(claims.exp - claims.iat)  # type: ignore[operator]
    assert lifetimes <= set(range(840, 901)) and len(lifetimes) > 3


async def test_a_database_dump_holds_no_usable_refresh_token(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        pair = await login(state)
        await state.sessions.refresh(pair.refresh_token)
    dump = (tmp_path / "data" / "jwtwarden.db").read_bytes()
    assert pair.refresh_token.encode() not in dump
    assert refresh_token_hash(pair.refresh_token) in dump


async def test_concurrent_refreshes_of_one_token_give_one_successor(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url), clock) as state:
        pair = await login(state)
        results = await asyncio.gather(
            *(state.sessions.refresh(pair.refresh_token) for _ in range(50)), return_exceptions=True)
        ok = [r for r in results if isinstance(r, TokenPair)]
        refused = [r for r in results if isinstance(r, errors.RefreshError)]
        assert len(ok) == 1 and len(refused) == 49
        assert {type(r) for r in refused} <= {errors.RefreshReused, errors.RefreshRevoked}
        async with state.db.read() as conn:
            successors = (await conn.execute(sa.select(sa.func.count()).select_from(refresh_tokens).where(
                refresh_tokens.c.generation == 1))).scalar_one()
        assert successors == 1
        assert await usable_tokens(state, pair.family_id) == 0  # strict: the duplicates were reuse


async def test_concurrent_refreshes_within_grace_all_get_the_same_successor(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock(NOW)
    async with service_state(make_settings(tmp_path, database_url, grace_window=10), clock) as state:
        pair = await login(state)
        results = await asyncio.gather(*(state.sessions.refresh(pair.refresh_token) for _ in range(50)))
        assert len({r.refresh_token for r in results}) == 1
        assert await usable_tokens(state, pair.family_id) == 1


async def test_an_emergency_key_revocation_refuses_its_tokens_at_once(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path), clock) as state:
        pair = await login(state)
        kid = decode_unverified(pair.access_token).header["kid"]
        replacement = await state.sessions.revoke_signing_key(kid)
        with pytest.raises(errors.UnknownKey):
            (await state.sessions.verify_access(pair.access_token))
        assert kid not in {k["kid"] for k in state.keyring.jwks()["keys"]}
        assert replacement is not None and replacement != kid
        renewed = await state.sessions.refresh(pair.refresh_token)  # the session itself survives
        assert decode_unverified(renewed.access_token).header["kid"] == replacement
        feed = await state.denylist.changes(None, 0)
    assert {"kind": "kid", "value": kid} in [{k: r[k] for k in ("kind", "value")} for r in feed["revocations"]]


async def test_key_rotation_publishes_first_and_signs_later(tmp_path: Path, clock: FakeClock) -> None:
    async with service_state(make_settings(tmp_path, jwks_max_age=300), clock) as state:
        old = state.keyring.issuer().key.kid
        token = (await login(state)).access_token
        new = await state.keyring.rotate()
        published = {k["kid"] for k in state.keyring.jwks()["keys"]}
        assert published == {old, new.kid}
        assert state.keyring.issuer().key.kid == old  # not signing yet
        assert state.keyring.jwks_max_age() <= 300
        clock.advance(300)
        assert state.keyring.issuer().key.kid == new.kid
        (await state.sessions.verify_access(token))  # the old key still verifies its tokens
        clock.advance(900 + 30)
        assert {k["kid"] for k in state.keyring.jwks()["keys"]} == {new.kid}


async def test_the_event_log_says_why_a_refresh_was_refused(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    async with service_state(make_settings(tmp_path), clock) as state:
        pair = await login(state)
        await state.sessions.refresh(pair.refresh_token)
        with caplog.at_level(logging.INFO, "jwtwarden.events"), pytest.raises(errors.RefreshReused):
            await state.sessions.refresh(pair.refresh_token)
    assert f"refresh refused: refresh_reused (session {pair.family_id})" in caplog.text
    assert pair.refresh_token not in caplog.text


async def test_automatic_rotation_happens_once_the_interval_has_passed(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, key_rotation_interval=7 * DAY, jwks_max_age=300)
    async with service_state(settings, clock) as state:
        first = state.keyring.issuer().key.kid
        assert await state.keyring.rotate_if_due() is None
        clock.advance(7 * DAY)
        new = await state.keyring.rotate_if_due()
        assert new is not None and new.activate_at == clock() + 300
        assert await state.keyring.rotate_if_due() is None  # one pending key at a time
        clock.advance(300)
        assert state.keyring.issuer().key.kid == new.kid != first
