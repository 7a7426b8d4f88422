"""Rotation sequences as a hypothesis state machine over ``SessionService``.

Whatever the order of logins, refreshes (with the current token, a spent one, within or after
the grace window), logouts, logout-everywhere, RFC 7009 revocations and clock steps (seconds
to days, and exactly onto every boundary), after every step:

- every family has at most one usable refresh token, and a live family has exactly one: the
  last one the client was given (usable = unused, unexpired, family neither revoked nor past
  its absolute lifetime; read from the database, not from the service);
- the database and the model agree on which families are revoked, and a revoked family never
  becomes usable again;
- every access token ever issued is accepted exactly when it is unexpired, its family is not
  revoked and its ``jti`` was not revoked; otherwise ``verify_access`` refuses it with
  ``Revoked`` (or ``Expired`` once it has expired).

The refresh rules check the decisions themselves: reuse outside the grace window always
revokes the family and deny-lists its latest access token; within the window the replay gets
exactly the successor the first call got; a refresh never succeeds for a revoked or expired
family. Each machine runs on SQLite and on PostgreSQL, with a strict (0 s) and a 5 s grace
window. The database is created once per test; examples reset the session tables.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jwtwarden import decode_unverified, errors
from jwtwarden.policy import DEFAULT_LEEWAY, Claims
from jwtwarden.service.app import ServiceState
from jwtwarden.service.config import Settings
from jwtwarden.service.sessions.service import TokenPair
from jwtwarden.service.storage.schema import families, refresh_tokens, revocations
from jwtwarden.testing import FakeClock
from tests.conftest import NOW
from tests.servicekit import PASSWORD, make_settings, service_state

HOUR = 3600
DAY = 86_400
IDLE = DAY  # refresh_idle_lifetime of the machine's service
ABSOLUTE = IDLE + 12 * HOUR  # family_lifetime: refreshes after 12 h get capped by it
USERS = ("alice", "bob")
T = TypeVar("T")

MACHINE_SETTINGS = hypothesis_settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def sha(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


@dataclass
class Family:
    """What the client side knows about one family, and what the rules say about it."""

    id: str
    user: str
    expires: float  # absolute lifetime
    chain: list[str]  # every refresh token handed out, in order; chain[-1] is current
    used_at: list[float] = field(default_factory=list)  # used_at[i]: when chain[i] was rotated
    token_expires: float = 0.0  # of chain[-1]
    access: list[str] = field(default_factory=list)  # every access token handed out
    revoked: bool = False

    def alive(self, now: float) -> bool:
        return not self.revoked and now < self.expires and now < self.token_expires


class SessionMachine(RuleBasedStateMachine):
    """One example: a service on a clean database, a fake clock, two users."""

    service_settings: ClassVar[Settings]

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = FakeClock(NOW)
        self.grace = self.service_settings.grace_window
        self._cm: AbstractAsyncContextManager[ServiceState] = service_state(
            self.service_settings, self.clock)
        self.state = self.run(self._cm.__aenter__())
        self.run(self._reset())
        self.families: list[Family] = []
        self.revoked_jtis: set[str] = set()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    async def _reset(self) -> None:
        async with self.state.db.transaction() as conn:
            for table in (refresh_tokens, families, revocations):
                await conn.execute(table.delete())
        await self.state.denylist.load()  # forget the previous example's revocations
        for user in USERS:
            if await self.state.accounts.get_user(user) is None:
                await self.state.accounts.add_user(user, PASSWORD)

    def teardown(self) -> None:
        try:
            self.run(self._cm.__aexit__(None, None, None))
        finally:
            self.runner.close()

    # ---- helpers ------------------------------------------------------------------------

    def pick(self, n: int, candidates: list[Family] | None = None) -> Family:
        """Family number ``n``: three times in four a live one, when there is one."""
        pool = self.families if candidates is None else candidates
        live = [f for f in pool if not f.revoked]
        if live and n % 4:
            pool = live
        return pool[n // 4 % len(pool)]

    def verify(self, token: str) -> Claims:
        return self.run(self.state.sessions.verify_access(token))

    def subject_of(self, user: str) -> str:
        account = self.run(self.state.accounts.get_user(user))
        assert account is not None
        return account.id

    def check_pair(self, fam: Family, pair: TokenPair) -> None:
        assert pair.family_id == fam.id
        claims = self.verify(pair.access_token)
        assert claims.sid == fam.id
        assert claims.iat == int(self.clock())

    # ---- rules --------------------------------------------------------------------------
    # Few rules, so that hypothesis spends most steps on refreshes; each rule's argument
    # picks among related actions.

    @initialize()
    def first_login(self) -> None:
        self.login(USERS[0])

    @rule(user=st.sampled_from(USERS))
    def login(self, user: str) -> None:
        now = self.clock()
        pair = self.run(self.state.sessions.login(user, PASSWORD))
        assert all(f.id != pair.family_id for f in self.families)
        fam = Family(pair.family_id, user, now + ABSOLUTE, [pair.refresh_token],
                     token_expires=now + IDLE, access=[pair.access_token])
        self.check_pair(fam, pair)
        assert pair.refresh_expires_in == IDLE
        self.families.append(fam)

    @precondition(lambda self: bool(self.families))
    @rule(n=st.integers(0, 255))
    def refresh_with_the_current_token(self, n: int) -> None:
        fam = self.pick(n)
        self.refresh(fam, len(fam.chain) - 1)

    @precondition(lambda self: any(len(f.chain) > 1 for f in self.families))
    @rule(n=st.integers(0, 255), back=st.integers(0, 255))
    def refresh_with_a_spent_token(self, n: int, back: int) -> None:
        fam = self.pick(n, [f for f in self.families if len(f.chain) > 1])
        spent = len(fam.chain) - 1
        # mostly the immediate predecessor (the grace rule's case), sometimes older ones
        index = spent - 1 if back % 3 else (spent - 1 - back % spent)
        self.refresh(fam, index)

    @precondition(lambda self: bool(self.families))
    @rule(n=st.integers(0, 255), rotations=st.integers(1, 3), back=st.integers(1, 3),
          gap=st.integers(0, 3), retry_after=st.integers(0, 7))
    def rotate_quickly_then_replay_a_spent_token(
        self, n: int, rotations: int, back: int, gap: int, retry_after: int
    ) -> None:
        """Several rotations seconds apart, then a spent token again (a client whose answer
        was lost retries; or one that is further behind, inside the window or not)."""
        fam = self.pick(n)
        for _ in range(rotations):
            self.refresh(fam, len(fam.chain) - 1)
            self.clock.advance(gap)
        self.clock.advance(retry_after)
        self.refresh(fam, max(0, len(fam.chain) - 1 - back))

    def refresh(self, fam: Family, index: int) -> None:
        now = self.clock()
        token = fam.chain[index]
        current = index == len(fam.chain) - 1
        outcome: TokenPair | errors.RefreshError
        try:
            outcome = self.run(self.state.sessions.refresh(token))
        except errors.RefreshError as error:
            outcome = error

        if fam.revoked:
            assert isinstance(outcome, errors.RefreshRevoked), outcome
            return
        if now >= fam.expires:
            assert isinstance(outcome, errors.FamilyTooOld), outcome
            fam.revoked = True
            return
        if not current:
            in_grace = (self.grace > 0 and index == len(fam.chain) - 2
                        and now - fam.used_at[index] <= self.grace)
            if in_grace:
                assert isinstance(outcome, TokenPair), outcome
                assert outcome.refresh_token == fam.chain[-1]  # the same successor, no fork
                self.check_pair(fam, outcome)
                fam.access.append(outcome.access_token)
                return
            assert isinstance(outcome, errors.RefreshReused), outcome
            fam.revoked = True
            latest = decode_unverified(fam.access[-1]).payload
            assert self.state.denylist.set.is_revoked(latest)
            if now < latest["exp"] + DEFAULT_LEEWAY:
                with pytest.raises(errors.Revoked):
                    self.verify(fam.access[-1])
            return
        if now >= fam.token_expires:
            assert isinstance(outcome, errors.RefreshExpired), outcome
            fam.revoked = True
            return
        assert isinstance(outcome, TokenPair), outcome
        assert outcome.refresh_token not in fam.chain
        self.check_pair(fam, outcome)
        fam.used_at.append(now)
        fam.chain.append(outcome.refresh_token)
        fam.token_expires = min(now + IDLE, fam.expires)
        assert outcome.refresh_expires_in == int(fam.token_expires - now)
        fam.access.append(outcome.access_token)

    @precondition(lambda self: bool(self.families))
    @rule(how=st.sampled_from(["logout", "logout-everywhere", "revoke-refresh", "revoke-access"]),
          n=st.integers(0, 255), token_index=st.integers(0, 255), with_access=st.booleans())
    def end_something(self, how: str, n: int, token_index: int, with_access: bool) -> None:
        fam = self.pick(n)
        refresh_token = fam.chain[token_index % len(fam.chain)]
        if how == "logout":
            self.logout(fam, refresh_token, with_access=with_access, both=token_index % 2 == 0)
        elif how == "logout-everywhere":
            ended = self.run(self.state.sessions.logout_all(self.subject_of(fam.user)))
            mine = [f for f in self.families if f.user == fam.user and not f.revoked]
            assert ended == len(mine)
            for other in mine:
                other.revoked = True
        elif how == "revoke-refresh":  # RFC 7009 with any refresh token of the family
            self.run(self.state.sessions.revoke(refresh_token))
            fam.revoked = True
        else:
            self.revoke_access(fam.access[token_index % len(fam.access)])

    def logout(self, fam: Family, refresh_token: str, *, with_access: bool, both: bool) -> None:
        claims = None
        if with_access:
            try:
                claims = self.verify(fam.access[-1])
            except errors.JWTError:
                claims = None  # the HTTP layer would answer 401; log out by refresh token
        presented = refresh_token if claims is None or both else None
        self.run(self.state.sessions.logout(claims, presented))
        fam.revoked = True
        if claims is not None:
            self.revoked_jtis.add(str(claims.jti))

    def revoke_access(self, token: str) -> None:
        try:
            self.verify(token)
        except errors.JWTError:
            valid = False  # expired or already revoked: RFC 7009 has nothing to do
        else:
            valid = True
        self.run(self.state.sessions.revoke(token, "access_token"))
        if valid:
            with pytest.raises(errors.Revoked):
                self.verify(token)
            self.revoked_jtis.add(str(decode_unverified(token).payload["jti"]))

    @precondition(lambda self: bool(self.families))
    @rule(n=st.integers(0, 255), which=st.sampled_from(["grace", "idle", "absolute"]),
          delta=st.sampled_from([-1, 0, 1]))
    def refresh_exactly_at_a_boundary(self, n: int, which: str, delta: int) -> None:
        """Present the predecessor at the end of the grace window, or the current token at
        its idle expiry or the family's absolute one (one second before, at, after)."""
        fam = self.pick(n)
        if which == "grace":
            if not fam.used_at:
                return
            target, index = fam.used_at[-1] + self.grace, len(fam.chain) - 2
        else:
            target = fam.token_expires if which == "idle" else fam.expires
            index = len(fam.chain) - 1
        if target + delta > self.clock():
            self.clock.set(target + delta)
        self.refresh(fam, index)

    @rule(how=st.sampled_from(["seconds", "minutes", "hours", "days", "access-expiry"]),
          amount=st.integers(1, 255), n=st.integers(0, 255), delta=st.sampled_from([-1, 0, 1]))
    def time_passes(self, how: str, amount: int, n: int, delta: int) -> None:
        if how == "seconds":
            self.clock.advance(1 + amount % 10)  # around the grace window
        elif how == "minutes":
            self.clock.advance(60 * (1 + amount % 60))
        elif how == "hours":
            self.clock.advance(HOUR * (1 + amount % 30))
        elif how == "days":
            self.clock.advance(DAY * (1 + amount % 2))
        elif self.families:  # the moment a family's latest access token expires (with leeway)
            payload = decode_unverified(self.pick(n).access[-1]).payload
            target = payload["exp"] + DEFAULT_LEEWAY + delta
            if target > self.clock():
                self.clock.set(target)

    # ---- invariants ---------------------------------------------------------------------

    @invariant()
    def at_most_one_usable_refresh_token_and_exactly_the_current_one(self) -> None:
        now = self.clock()

        async def read() -> tuple[dict[str, bool], dict[str, set[bytes]]]:
            async with self.state.db.read() as conn:
                fams = (await conn.execute(sa.select(families))).mappings().all()
                usable = (await conn.execute(
                    sa.select(refresh_tokens.c.family_id, refresh_tokens.c.token_hash)
                    .join(families, families.c.id == refresh_tokens.c.family_id)
                    .where(refresh_tokens.c.used_at.is_(None), refresh_tokens.c.expires_at > now,
                           families.c.revoked_at.is_(None), families.c.expires_at > now))).all()
            out: dict[str, set[bytes]] = {f["id"]: set() for f in fams}
            for family_id, token_hash in usable:
                out[family_id].add(bytes(token_hash))
            return {f["id"]: f["revoked_at"] is not None for f in fams}, out

        revoked, usable = self.run(read())
        assert set(revoked) == {f.id for f in self.families}
        for fam in self.families:
            assert len(usable[fam.id]) <= 1
            assert revoked[fam.id] == fam.revoked
            expected = {sha(fam.chain[-1])} if fam.alive(now) else set()
            assert usable[fam.id] == expected, (fam.id, fam.revoked, now)

    @invariant()
    def access_tokens_are_accepted_exactly_while_unexpired_and_unrevoked(self) -> None:
        now = self.clock()
        for fam in self.families:
            for token in fam.access:
                payload = decode_unverified(token).payload
                if now >= payload["exp"] + DEFAULT_LEEWAY:
                    with pytest.raises(errors.Expired):
                        self.verify(token)
                elif fam.revoked or payload["jti"] in self.revoked_jtis:
                    with pytest.raises(errors.Revoked):
                        self.verify(token)
                else:
                    assert self.verify(token).sid == fam.id


def machine_for(settings: Settings) -> type[SessionMachine]:
    return type("SessionMachineFor", (SessionMachine,), {"service_settings": settings})


@pytest.mark.parametrize("grace", [0.0, 5.0], ids=["strict", "grace5s"])
def test_rotation_sequences_keep_every_family_consistent(
    tmp_path: Path, database_url: str, grace: float
) -> None:
    settings = make_settings(tmp_path, database_url, grace_window=grace,
                             refresh_idle_lifetime=IDLE, family_lifetime=ABSOLUTE)
    run_state_machine_as_test(machine_for(settings), settings=MACHINE_SETTINGS)
