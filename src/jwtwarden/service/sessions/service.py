"""Sessions: token pairs, rotation with reuse detection, logout, revocation, introspection.

A *family* is one login (or one trusted-backend session); its refresh tokens form a chain.
Refreshing runs in one transaction, under a lock on the family row:

1. the presented token is looked up by hash (unknown → ``invalid_refresh_token``);
2. a revoked family → ``refresh_revoked``; past its absolute lifetime → ``family_too_old``
   (and the family is revoked);
3. a token already used is **reuse**: the family is revoked and its latest access token and
   session id are deny-listed (``refresh_reused``) — unless it is the immediate predecessor
   of the current token and was rotated less than ``grace_window`` seconds ago, in which
   case the caller gets the *same* successor again (sealed for that window only: see
   :mod:`~jwtwarden.service.sessions.refresh_tokens`);
4. a token past its idle lifetime → ``refresh_expired`` (the family is revoked);
   a user's session whose credential epoch is no longer the user's (password changed, account
   disabled or deleted, logged out everywhere) → ``refresh_revoked`` (the family is revoked);
5. otherwise the token is marked used, its successor (64 fresh random bytes) inserted, the
   family advanced, and a new access token issued — all or nothing.

A session created with a DPoP proof (RFC 9449) is bound to the proof's key (``dpop_jkt``,
covered by the row MAC): its access tokens carry ``cnf.jkt``, and every refresh must come with
a proof of that key. It is checked right after the rows are found and authenticated, under the
family lock and before step 2: a missing or wrong proof neither rotates nor revokes anything.

The session and refresh-token rows carry MACs under a key derived from the KEK
(:mod:`~jwtwarden.service.sessions.subkeys`): a row written or changed without the KEK is
an unknown token. Access tokens carry ``srh``, the subject's revocation handle, which is
what "log out everywhere" publishes instead of the subject.

Decisions that revoke something are committed before the error is raised, and every
outcome is written to the ``jwtwarden.events`` log (never a token).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection

from jwtwarden.dpop import DPoPProof
from jwtwarden.errors import (
    FamilyTooOld,
    InvalidCredentials,
    InvalidDPoPProof,
    InvalidRefreshToken,
    JWTError,
    NotTokenOwner,
    RefreshError,
    RefreshExpired,
    RefreshKeyMismatch,
    RefreshReused,
    RefreshRevoked,
)
from jwtwarden.issue import IssuedToken, Issuer
from jwtwarden.policy import DEFAULT_LEEWAY, Claims, Clock, system_clock
from jwtwarden.revocation import SUBJECT_HANDLE_CLAIM, Revocation
from jwtwarden.service.config import Settings
from jwtwarden.service.sessions.accounts import Accounts
from jwtwarden.service.sessions.denylist import DenyList
from jwtwarden.service.sessions.keyring import KeyRing
from jwtwarden.service.sessions.refresh_tokens import (
    PREFIX,
    new_refresh_token,
    open_successor,
    refresh_token_hash,
    seal_successor,
    validate_refresh_token,
)
from jwtwarden.service.sessions.subkeys import SessionKeys
from jwtwarden.service.storage.db import Database, Prepared
from jwtwarden.service.storage.schema import client_assertions, families, refresh_tokens, users

Row = Mapping[Any, Any]  # a database row (RowMapping)

__all__ = ["SessionService", "TokenPair"]

events = logging.getLogger("jwtwarden.events")
# bound to the family or the subject; never the caller's to set
_SESSION_CLAIMS = frozenset({"sid", "scope", SUBJECT_HANDLE_CLAIM})


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    family_id: str
    subject: str
    scope: str
    dpop_jkt: str | None = None  # the key the access token is bound to (RFC 9449), if any

    @property
    def token_type(self) -> str:
        """``DPoP`` for a key-bound access token, ``Bearer`` otherwise (RFC 9449 section 5)."""
        return "DPoP" if self.dpop_jkt else "Bearer"

    def __repr__(self) -> str:  # tokens never appear in a repr
        return f"TokenPair(family_id={self.family_id!r}, subject={self.subject!r}, expires_in={self.expires_in})"


@dataclass(frozen=True)
class _Refused:
    error: RefreshError
    revoked: list[Revocation]
    family: str | None = None


class _Statements:
    """The refresh path's statements, compiled once (see :class:`~jwtwarden.service.storage.db.Prepared`).

    A rotation is the lookup (token, family and user in one, both rows locked), then marking
    the token used (only if it is still unused), its successor and the family's new
    generation: three statements on SQLite, one data-modifying ``WITH`` on PostgreSQL, where a
    rotation is therefore four round trips with BEGIN and COMMIT.
    """

    def __init__(self, db: Database) -> None:
        f, t, u = families, refresh_tokens, users
        self.lookup = db.prepare(
            sa.select(*(c.label(f"f_{c.name}") for c in f.c), *(c.label(f"t_{c.name}") for c in t.c),
                      u.c.credential_epoch.label("u_epoch"), u.c.disabled.label("u_disabled"))
            .select_from(t.join(f, f.c.id == t.c.family_id).outerjoin(u, u.c.id == f.c.user_id))
            .where(t.c.token_hash == sa.bindparam("token_hash"))
            .with_for_update(of=[f, t]))
        self._family_labels = tuple((f"f_{c.name}", c.name) for c in f.c)
        self._token_labels = tuple((f"t_{c.name}", c.name) for c in t.c)
        self.token = db.prepare(sa.select(t).where(t.c.token_hash == sa.bindparam("token_hash")))
        used = (t.update().where(t.c.token_hash == sa.bindparam("token_hash"), t.c.used_at.is_(None))
                .values(used_at=sa.bindparam("now")))
        # the successor's columns bind as new_<column>: its token_hash is not the spent one's
        insert = t.insert().values({c: sa.bindparam(f"new_{c.name}") for c in t.c if c.name != "used_at"})
        advance = f.update().where(f.c.id == sa.bindparam("id")).values(
            generation=sa.bindparam("generation"), last_used_at=sa.bindparam("now"),
            last_access_jti=sa.bindparam("jti"), last_access_exp=sa.bindparam("exp"),
            grace_successor=sa.bindparam("grace_successor"), grace_until=sa.bindparam("grace_until"))
        self._insert = db.prepare(insert)
        self._rotate_steps: tuple[Prepared, ...] | None = None
        self._rotate_once: Prepared | None = None
        if db.is_sqlite:  # three statements; SQLite has no data-modifying WITH
            self._rotate_steps = (db.prepare(used), db.prepare(advance))
        else:  # one statement, one round trip: the token spent, its successor, the family advanced
            spent = used.returning(t.c.token_hash).cte("spent")
            self._rotate_once = db.prepare(
                sa.select(sa.func.count()).select_from(spent)
                .add_cte(insert.cte("successor"), advance.cte("advanced")))

    def insert_token(self, conn: Connection, row: Mapping[str, Any]) -> None:
        """A new refresh-token row (its columns but used_at)."""
        self._insert.execute(conn, **{f"new_{k}": v for k, v in row.items()})

    def rotate(self, conn: Connection, *, token_hash: bytes, now: float, successor: dict[str, Any],
               family: dict[str, Any]) -> None:
        """Spend the token (only if unused), insert its successor, advance the family: all or
        nothing (a token that was no longer unused raises, and the transaction rolls back)."""
        if self._rotate_once is not None:
            found = self._rotate_once.first(conn, token_hash=token_hash, now=now, **family,
                                            **{f"new_{k}": v for k, v in successor.items()})
            spent = 0 if found is None else next(iter(found.values()))
        else:
            assert self._rotate_steps is not None  # noqa: S101 - one of the two
            mark, advance = self._rotate_steps
            spent = mark.execute(conn, token_hash=token_hash, now=now)
            if spent == 1:
                self.insert_token(conn, successor)
                advance.execute(conn, now=now, **family)
        if spent != 1:  # the family lock makes this impossible
            raise RuntimeError("refresh token changed under the family lock")

    def family_of(self, found: Mapping[str, Any]) -> dict[str, Any]:
        """The family's columns out of a lookup row."""
        return {name: found[label] for label, name in self._family_labels}

    def token_of(self, found: Mapping[str, Any]) -> dict[str, Any]:
        """The token's columns out of a lookup row."""
        return {name: found[label] for label, name in self._token_labels}


class SessionService:
    """The token service's decisions; storage is the database given to it."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        keyring: KeyRing,
        denylist: DenyList,
        accounts: Accounts,
        *,
        keys: SessionKeys,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._settings = settings
        self._keyring = keyring
        self._denylist = denylist
        self._accounts = accounts
        self._keys = keys
        self._macs = keys.rows
        self._clock = clock
        self._sql = _Statements(db)
        accounts.sessions = self  # account changes end sessions in their own transaction

    # ---- creating sessions --------------------------------------------------------------

    async def login(self, username: str, password: str, *, jkt: str | None = None) -> TokenPair:
        """A new family for a user whose password checks out (else ``InvalidCredentials``);
        ``jkt``: bound to that DPoP key."""
        user = await self._accounts.authenticate(username, password)
        pair = await self.create_session(user.id, scope=user.scope, user_id=user.id,
                                         user_epoch=user.epoch, jkt=jkt)
        events.info("login: session %s", pair.family_id, extra={"event": "login", "family": pair.family_id})
        return pair

    async def create_session(
        self,
        subject: str,
        *,
        scope: str = "",
        claims: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
        user_epoch: int | None = None,
        jkt: str | None = None,
    ) -> TokenPair:
        """A new family for ``subject`` (logins, and trusted backends via POST /v1/sessions).

        With ``user_id``, the family is committed only while the user's credential epoch is
        still ``user_epoch`` (read before the password was verified) and the account is
        enabled, under a lock on the user row; else ``InvalidCredentials``.
        """
        if not isinstance(subject, str) or not 1 <= len(subject) <= 255 or not subject.isprintable():
            raise ValueError("subject must be 1-255 printable characters")
        if not isinstance(scope, str) or not (scope.isprintable() or not scope):
            raise ValueError("scope must be printable")
        extra = dict(claims or {})
        if not _SESSION_CLAIMS.isdisjoint(extra):
            raise ValueError(f"{sorted(_SESSION_CLAIMS & extra.keys())} are set by the service")
        now = self._clock()
        family_id = secrets.token_urlsafe(16)
        token = new_refresh_token()
        issuer = self._keyring.issuer(now)
        # issue first: a claim the linter refuses must not leave a family behind
        access = self._issue(issuer, subject, family_id, scope, extra, now, jkt)
        expires_at = now + self._settings.family_lifetime
        token_expires = min(now + self._settings.refresh_idle_lifetime, expires_at)

        def insert(conn: Connection) -> None:
            if user_id is not None:
                account = conn.execute(sa.select(users.c.credential_epoch, users.c.disabled).where(
                    users.c.id == user_id).with_for_update()).first()
                if account is None or account.disabled or account.credential_epoch != (user_epoch or 0):
                    raise InvalidCredentials("the account changed while logging in")
            family = {
                "id": family_id, "subject": subject, "user_id": user_id, "scope": scope,
                "claims": json.dumps(extra) if extra else None, "created_at": now,
                "expires_at": expires_at, "client_id": client_id, "dpop_jkt": jkt}
            conn.execute(families.insert().values(
                **family, mac=self._macs.family(family), generation=0, last_used_at=now,
                revoked_at=None, revoked_reason=None, last_access_jti=access.jti,
                last_access_exp=access.exp,
                user_epoch=None if user_id is None else (user_epoch or 0)))
            self._insert_token(conn, token, family_id, 0, now, token_expires)

        await self._db.run(insert)
        return self._pair(access, token, token_expires, now, family_id, subject, scope, jkt)

    def _insert_token(
        self, conn: Connection, token: str, family_id: str, generation: int, now: float,
        expires_at: float,
    ) -> None:
        row = {"token_hash": refresh_token_hash(token), "family_id": family_id,
               "generation": generation, "created_at": now, "expires_at": expires_at}
        self._sql.insert_token(conn, {**row, "mac": self._macs.token(row)})

    def _issue(
        self, issuer: Issuer, subject: str, family_id: str, scope: str, extra: dict[str, Any],
        now: float, jkt: str | None = None,
    ) -> IssuedToken:
        jitter = self._settings.access_jitter
        lifetime = self._settings.access_lifetime - (secrets.randbelow(jitter + 1) if jitter else 0)
        claims: dict[str, Any] = {
            "sid": family_id, SUBJECT_HANDLE_CLAIM: self._keys.subject_handle(subject), **extra}
        if scope:
            claims["scope"] = scope
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 section 6.1
        return issuer.issue_token(subject, claims, lifetime=lifetime)

    def _pair(
        self, access: IssuedToken, refresh: str, refresh_exp: float, now: float,
        family_id: str, subject: str, scope: str, jkt: str | None = None,
    ) -> TokenPair:
        return TokenPair(
            access_token=access.token, refresh_token=refresh,
            expires_in=max(0, int(access.exp - now)), refresh_expires_in=max(0, int(refresh_exp - now)),
            family_id=family_id, subject=subject, scope=scope, dpop_jkt=jkt,
        )

    # ---- refreshing ---------------------------------------------------------------------

    async def refresh(self, token: str, *, jkt: str | None = None,
                      require_binding: bool = False) -> TokenPair:
        """Rotate ``token`` (see the module docstring); raises a ``RefreshError`` subclass.

        ``jkt``: the thumbprint of the DPoP key the request proved (None: no proof). A session
        bound to a key refuses any other (:class:`RefreshKeyMismatch`) or none
        (:class:`InvalidDPoPProof`), and ``require_binding`` refuses unbound sessions, all
        before rotation: nothing changes.
        """
        token = validate_refresh_token(token)
        successor = new_refresh_token()
        outcome = await self._db.run(lambda conn: self._rotate(conn, token, successor, jkt, require_binding))
        if isinstance(outcome, _Refused):
            await self._denylist.applied(outcome.revoked)
            events.info("refresh refused: %s (session %s)", outcome.error.code, outcome.family or "-",
                        extra={"event": "refresh_refused", "reason": outcome.error.code,
                               "family": outcome.family})
            raise outcome.error
        return outcome

    @staticmethod
    def _check_binding(family: str, expected: str | None, jkt: str | None, require_binding: bool) -> None:
        """The DPoP key a session is bound to (``expected``) against the one the request proved."""
        if expected is None:
            if require_binding:
                raise InvalidDPoPProof("this session is not bound to a DPoP key; log in again "
                                       "with a DPoP proof", reason="unbound_session")
            return
        if jkt is None:
            events.warning("refresh refused: no DPoP proof for a bound session",
                           extra={"event": "refresh_refused", "reason": "dpop_missing", "family": family})
            raise InvalidDPoPProof("this session is bound to a DPoP key: prove it", reason="missing")
        if not hmac.compare_digest(expected.encode(), jkt.encode()):
            events.warning("refresh refused: DPoP proof of another key (session %s)", family,
                           extra={"event": "refresh_refused", "reason": RefreshKeyMismatch.code,
                                  "family": family})
            raise RefreshKeyMismatch("the refresh token is bound to another DPoP key")

    def _authentic(self, fam: Row | None, row: Row | None) -> bool:
        """Whether a session row and one of its token rows carry valid MACs (else logged)."""
        if fam is None or row is None:
            return False
        if self._macs.valid("family", fam) and self._macs.valid("token", row) and row["family_id"] == fam["id"]:
            return True
        events.error("integrity: a session or refresh-token row was written without the KEK; "
                     "treated as unknown (session %s)", fam["id"],
                     extra={"event": "integrity", "family": fam["id"]})
        return False

    def _rotate(self, conn: Connection, token: str, successor: str, jkt: str | None = None,
                require_binding: bool = False) -> TokenPair | _Refused:
        now = self._clock()
        token_hash = refresh_token_hash(token)
        # One statement finds the token, its family and the family's user, and locks the
        # family and token rows (PostgreSQL: FOR UPDATE OF both, so under READ COMMITTED a
        # concurrent rotation is waited for and its used_at seen; SQLite: the whole
        # transaction is serialised by BEGIN IMMEDIATE).
        found = self._sql.lookup.first(conn, token_hash=token_hash)
        if found is None:
            return _Refused(InvalidRefreshToken("unknown refresh token"), [])
        fam, row = self._sql.family_of(found), self._sql.token_of(found)
        if not self._authentic(fam, row):
            return _Refused(InvalidRefreshToken("unknown refresh token"), [])
        # the key first: a request without the session's DPoP key changes nothing at all (it
        # raises before anything is written; the transaction ends empty)
        self._check_binding(fam["id"], fam["dpop_jkt"], jkt, require_binding)
        if fam["revoked_at"] is not None:
            return _Refused(RefreshRevoked(f"the session was revoked ({fam['revoked_reason']})"), [], fam["id"])
        if fam["user_id"] is not None and (  # the account as it is now, in this transaction
            found["u_epoch"] is None or found["u_disabled"] or found["u_epoch"] != fam["user_epoch"]
        ):
            revoked = self._revoke_family(conn, fam, "credentials_changed", now)
            return _Refused(RefreshRevoked("the account changed (password, disabled, deleted "
                                           "or logged out everywhere); log in again"),
                            revoked, fam["id"])
        if now >= fam["expires_at"]:
            revoked = self._revoke_family(conn, fam, "family_too_old", now)
            return _Refused(FamilyTooOld("the session reached its absolute lifetime; log in again"),
                            revoked, fam["id"])
        grace = self._settings.grace_window
        if row["used_at"] is not None:
            if (
                grace > 0
                and row["generation"] == fam["generation"] - 1
                and now - row["used_at"] <= grace
            ):
                if fam["grace_successor"] is not None:
                    return self._replay(conn, fam, token, now)
                # rotated while no grace window was configured (or before issue #16): there is
                # no successor to give again, and a retry this recent is no sign of theft
                return _Refused(RefreshReused("this refresh token was already used"), [], fam["id"])
            revoked = self._revoke_family(conn, fam, "refresh_reused", now)
            events.warning("refresh token reuse: family revoked",
                           extra={"event": "reuse_detected", "family": fam["id"]})
            return _Refused(RefreshReused("this refresh token was already used; the session is revoked"),
                            revoked, fam["id"])
        if now >= row["expires_at"]:
            revoked = self._revoke_family(conn, fam, "refresh_expired", now)
            return _Refused(RefreshExpired("the refresh token expired; log in again"), revoked, fam["id"])
        # Sign before writing: a key that cannot sign leaves nothing to roll back. Both locks
        # are held; signing costs ~40 µs.
        access = self._issue_for(fam, now)
        generation = fam["generation"] + 1
        token_expires = min(now + self._settings.refresh_idle_lifetime, fam["expires_at"])
        successor_row = {"token_hash": refresh_token_hash(successor), "family_id": fam["id"],
                         "generation": generation, "created_at": now, "expires_at": token_expires}
        # the grace copy: this rotation's successor replaces the previous one (whose token is
        # no longer the immediate predecessor); none at all in strict mode
        sealed = seal_successor(successor, token, self._keys.grace) if grace > 0 else None
        self._sql.rotate(
            conn, token_hash=token_hash, now=now, successor={**successor_row, "mac": self._macs.token(successor_row)},
            family={"id": fam["id"], "generation": generation, "jti": access.jti, "exp": float(access.exp),
                    "grace_successor": sealed, "grace_until": now + grace if sealed else None})
        return self._pair(access, successor, token_expires, now, fam["id"], fam["subject"], fam["scope"],
                          fam["dpop_jkt"])

    def _replay(self, conn: Connection, fam: Row, token: str, now: float) -> TokenPair | _Refused:
        """The grace rule: the caller gets the successor the first call got, and a new access token."""
        try:
            successor = open_successor(bytes(fam["grace_successor"]), token, self._keys.grace)
        except (InvalidTag, ValueError):
            successor = None
        current = None if successor is None else self._sql.token.first(
            conn, token_hash=refresh_token_hash(successor))
        if successor is None or not self._authentic(fam, current) or current is None or current["used_at"] is not None:
            return _Refused(InvalidRefreshToken("unknown refresh token"), [], fam["id"])
        access = self._issue_for(fam, now)
        conn.execute(families.update().where(families.c.id == fam["id"]).values(
            last_access_jti=access.jti, last_access_exp=access.exp))
        events.info("refresh replayed within the grace window (session %s)", fam["id"],
                    extra={"event": "refresh_grace", "family": fam["id"]})
        return self._pair(access, successor, current["expires_at"], now,
                          fam["id"], fam["subject"], fam["scope"], fam["dpop_jkt"])

    def _issue_for(self, fam: Row, now: float) -> IssuedToken:
        extra = json.loads(fam["claims"]) if fam["claims"] else {}
        return self._issue(self._keyring.issuer(now), fam["subject"], fam["id"], fam["scope"], extra,
                           now, fam.get("dpop_jkt"))

    def _revoke_family(self, conn: Connection, fam: Row, reason: str, now: float) -> list[Revocation]:
        """End one family and record its revocations: the transaction's last locking step."""
        return self._denylist.record(conn, self._end_family(conn, fam, reason, now))

    def _end_family(self, conn: Connection, fam: Row, reason: str, now: float) -> list[Revocation]:
        """Mark a family revoked; the revocations to record, none if it already was (a
        session revoked again must not be recorded, nor announced, again: issue #16 F4)."""
        ended = conn.execute(families.update().where(
            families.c.id == fam["id"], families.c.revoked_at.is_(None)
        ).values(revoked_at=now, revoked_reason=reason, grace_successor=None, grace_until=None))
        return self._family_revocations(fam, now) if ended.rowcount == 1 else []

    def _family_revocations(self, fam: Row, now: float) -> list[Revocation]:
        horizon = now + self._settings.access_lifetime + DEFAULT_LEEWAY
        out = [Revocation("sid", fam["id"], horizon)]
        if fam["last_access_jti"] and (fam["last_access_exp"] or 0) > now:
            out.append(Revocation("jti", fam["last_access_jti"], fam["last_access_exp"] + DEFAULT_LEEWAY))
        return out

    # ---- ending sessions ----------------------------------------------------------------

    async def logout(self, claims: Claims | None, refresh_token: str | None = None) -> None:
        """Revoke the presented session (by the access token's ``sid`` and/or a refresh token)
        and deny-list the presented access token."""
        now = self._clock()

        def work(conn: Connection) -> list[Revocation]:
            family_ids: set[str] = set()
            if claims is not None and isinstance(claims.sid, str):
                family_ids.add(claims.sid)
            if refresh_token is not None:
                fid = self._family_of(conn, refresh_token)
                if fid is not None:
                    family_ids.add(fid)
            ended: list[Revocation] = []
            for fid in sorted(family_ids):
                fam = conn.execute(sa.select(families).where(families.c.id == fid)
                                   .with_for_update()).mappings().first()
                # an access token can only end its own subject's sessions
                if fam is not None and (claims is None or fam["subject"] == claims.sub):
                    ended += self._end_family(conn, fam, "logout", now)
            if claims is not None and claims.jti:
                ended.append(Revocation("jti", claims.jti, float(claims.exp) + DEFAULT_LEEWAY))
            return self._denylist.record(conn, ended)  # last: it takes the feed position

        revoked = await self._db.run(work)
        await self._denylist.applied(revoked)
        events.info("logout: %d session(s) revoked", len({r.value for r in revoked if r.kind == "sid"}),
                    extra={"event": "logout"})

    async def family_of(self, refresh_token: str) -> str | None:
        """The family id of a refresh token (whatever its state), or None."""
        try:
            validate_refresh_token(refresh_token)
        except InvalidRefreshToken:
            return None
        return await self._db.run(lambda conn: self._family_of(conn, refresh_token), write=False)

    def _family_of(self, conn: Connection, refresh_token: str) -> str | None:
        try:
            token_hash = refresh_token_hash(validate_refresh_token(refresh_token))
        except InvalidRefreshToken:
            return None
        fid = conn.execute(sa.select(refresh_tokens.c.family_id).where(
            refresh_tokens.c.token_hash == token_hash)).scalar()
        return None if fid is None else str(fid)

    async def logout_all(self, subject: str) -> int:
        """Revoke every family of ``subject`` and cut off every token issued before now."""
        now = self._clock()
        count, revoked = await self._db.run(lambda conn: self.end_all_in(conn, subject, now))
        await self._denylist.applied(revoked)
        events.info("logout everywhere: %d session(s) revoked", count,
                    extra={"event": "logout_all", "families": count})
        return count

    def end_all_in(self, conn: Connection, subject: str, now: float) -> tuple[int, list[Revocation]]:
        """Inside the caller's transaction: bump the user's credential epoch (which locks the
        user row, so a login committing against the old epoch is refused, and one that
        committed first is seen below), revoke every live family, cut off earlier tokens."""
        conn.execute(users.update().where(users.c.id == subject).values(
            credential_epoch=users.c.credential_epoch + 1))
        rows = conn.execute(sa.select(families).where(
            families.c.subject == subject, families.c.revoked_at.is_(None)
        ).order_by(families.c.id).with_for_update()).mappings().all()
        ended: list[Revocation] = []
        for fam in rows:
            ended += self._end_family(conn, fam, "logout_all", now)
        horizon = now + self._settings.access_lifetime + DEFAULT_LEEWAY
        ended.append(Revocation("sub", self._keys.subject_handle(subject), horizon,
                                cutoff=float(int(now))))
        return len(rows), self._denylist.record(conn, ended)  # last: it takes the feed position

    async def applied(self, revoked: list[Revocation]) -> None:
        """After commit: mirror and broadcast revocations (for account changes)."""
        await self._denylist.applied(revoked)

    async def revoke_user_sessions(self, user_id: str) -> int:
        """For the CLI: a disabled, deleted or re-passworded user loses every session."""
        return await self.logout_all(user_id)

    async def revoke(self, token: str, hint: str | None = None, *, client_id: str | None = None) -> None:
        """RFC 7009: revoke a refresh token (its family) or an access token (its jti).

        ``client_id``: the client that authenticated the request, which may revoke only
        tokens issued to it (RFC 7009 section 2.1), else :class:`NotTokenOwner` and nothing
        changes; ``None``: an unauthenticated caller, who may revoke any token it holds.
        ``hint`` (``token_type_hint``) is not needed: a refresh token (``jwr_`` + checksum)
        and an access token (a JWT) cannot be mistaken for each other, so every token is
        looked up as what it is, whatever the hint says (RFC 7009 section 2.1: the search
        extends to every type). Unknown or invalid tokens are not an error (the RFC's answer
        is 200 either way); revoking what is already revoked changes nothing.
        """
        del hint
        now = self._clock()
        if token.startswith(PREFIX):

            def work(conn: Connection) -> list[Revocation]:
                fid = self._family_of(conn, token)
                if fid is None:
                    return []
                fam = conn.execute(sa.select(families).where(families.c.id == fid)
                                   .with_for_update()).mappings().one()
                self._check_owner(fam, client_id)
                return self._revoke_family(conn, fam, "revoked", now)

            revoked = await self._db.run(work)
        else:
            try:
                claims = self._keyring.verifier(allow_cnf=True).verify(token)
            except JWTError:
                return
            entry = Revocation("jti", str(claims.jti), float(claims.exp) + DEFAULT_LEEWAY)

            def record_jti(conn: Connection) -> list[Revocation]:
                if client_id is not None and claims.sid is None:
                    # a client_credentials token: no session, the client is in its claims
                    self._check_owner({"client_id": claims.get("client_id")}, client_id)
                elif client_id is not None:
                    fam = conn.execute(sa.select(families.c.client_id).where(
                        families.c.id == claims.sid)).mappings().first()
                    self._check_owner(fam, client_id)
                return self._denylist.record(conn, [entry])

            revoked = await self._db.run(record_jti)
        await self._denylist.applied(revoked)

    @staticmethod
    def _check_owner(fam: Row | None, client_id: str | None) -> None:
        """An authenticated client may revoke only its own sessions' tokens."""
        if client_id is not None and (fam is None or fam["client_id"] != client_id):
            events.warning("revocation refused: the token was not issued to this client",
                           extra={"event": "revoke_refused", "reason": NotTokenOwner.code})
            raise NotTokenOwner("the token was not issued to this client")

    async def revoke_signing_key(self, kid: str) -> str | None:
        """Emergency: take a key out of the JWKS, refuse its tokens, tell resource servers.

        Returns the kid of the replacement signing key when the revoked key was signing.
        """
        replacement = await self._keyring.revoke(kid)
        entry = Revocation("kid", kid, self._clock() + self._settings.access_lifetime + DEFAULT_LEEWAY)
        await self._denylist.applied(await self._record(entry))
        return None if replacement is None else replacement.kid

    async def _record(self, *entries: Revocation) -> list[Revocation]:
        return await self._db.run(lambda conn: self._denylist.record(conn, entries))

    # ---- verifying ----------------------------------------------------------------------

    async def verify_access(self, token: str, proof: DPoPProof | None = None) -> Claims:
        """Full verification of one of our access tokens, deny list included. A DPoP-bound
        token needs ``proof`` (checked against it); without one it is refused."""
        verifier = self._keyring.verifier()
        claims = verifier.verify(token) if proof is None else verifier.verify_bound(token, proof)
        await self._denylist.check(claims)
        return claims

    async def introspect(self, token: str, hint: str | None = None) -> dict[str, Any]:
        """RFC 7662 response for an access or refresh token of this service.

        Like :meth:`revoke`, every token is looked up as what it is, whatever the hint says.
        """
        del hint
        if token.startswith(PREFIX):
            return await self._introspect_refresh(token)
        try:
            claims = self._keyring.verifier(allow_cnf=True).verify(token)
            await self._denylist.check(claims)
        except JWTError:
            return {"active": False}
        out = claims.to_dict()
        out["active"] = True
        # RFC 9449 section 6.2: a bound token is a DPoP token, and its cnf is in the answer
        out["token_type"] = "DPoP" if "cnf" in out else "access_token"
        return out

    async def _introspect_refresh(self, token: str) -> dict[str, Any]:
        try:
            token_hash = refresh_token_hash(validate_refresh_token(token))
        except InvalidRefreshToken:
            return {"active": False}
        now = self._clock()

        def read(conn: Connection) -> tuple[Row | None, Row | None]:
            row = conn.execute(sa.select(refresh_tokens).where(
                refresh_tokens.c.token_hash == token_hash)).mappings().first()
            fam = None if row is None else conn.execute(sa.select(families).where(
                families.c.id == row["family_id"])).mappings().first()
            return fam, row

        fam, row = await self._db.run(read, write=False)
        if (
            fam is None or row is None or not self._authentic(fam, row)
            or row["used_at"] is not None or fam["revoked_at"] is not None
            or now >= row["expires_at"] or now >= fam["expires_at"]
        ):
            return {"active": False}
        out: dict[str, Any] = {
            "active": True, "token_type": "refresh_token", "sub": fam["subject"],
            "sid": row["family_id"], "iat": int(row["created_at"]), "exp": int(row["expires_at"]),
            "iss": self._settings.issuer,
        }
        if fam["scope"]:
            out["scope"] = fam["scope"]
        return out

    # ---- housekeeping -------------------------------------------------------------------

    async def gc(self, *, batch: int = 1000) -> dict[str, int]:
        """Delete expired refresh tokens, dead families and deny-list rows, and erase grace-window
        successors whose window has passed, in bounded batches."""
        now = self._clock()
        horizon = now - self._settings.access_lifetime - DEFAULT_LEEWAY

        def tokens(conn: Connection) -> int:
            hashes = [r[0] for r in conn.execute(
                sa.select(refresh_tokens.c.token_hash)
                .where(refresh_tokens.c.expires_at <= now).limit(batch))]
            if hashes:
                conn.execute(refresh_tokens.delete().where(refresh_tokens.c.token_hash.in_(hashes)))
            return len(hashes)

        def dead_families(conn: Connection) -> int:
            ids = [r[0] for r in conn.execute(
                sa.select(families.c.id).where(sa.or_(
                    families.c.expires_at <= horizon, families.c.revoked_at <= horizon,
                )).limit(batch))]
            if ids:
                conn.execute(refresh_tokens.delete().where(refresh_tokens.c.family_id.in_(ids)))
                conn.execute(families.delete().where(families.c.id.in_(ids)))
            return len(ids)

        def assertions(conn: Connection) -> int:  # client assertion jtis past their expiry
            keys = conn.execute(
                sa.select(client_assertions.c.client_id, client_assertions.c.jti)
                .where(client_assertions.c.expires_at <= now).limit(batch)).all()
            if keys:
                conn.execute(client_assertions.delete().where(sa.tuple_(
                    client_assertions.c.client_id, client_assertions.c.jti).in_(
                        [tuple(k) for k in keys])))
            return len(keys)

        def grace_copies(conn: Connection) -> int:
            ids = [r[0] for r in conn.execute(
                sa.select(families.c.id).where(families.c.grace_until <= now).limit(batch))]
            if ids:
                conn.execute(families.update().where(families.c.id.in_(ids))
                             .values(grace_successor=None, grace_until=None))
            return len(ids)

        counts = {"refresh_tokens": 0, "families": 0, "grace_copies": 0, "client_assertions": 0}
        for name, step in (("refresh_tokens", tokens), ("families", dead_families),
                           ("grace_copies", grace_copies), ("client_assertions", assertions)):
            while True:
                done = await self._db.run(step)
                counts[name] += done
                if done < batch:
                    break
        counts["revocations"] = await self._denylist.gc(batch=batch)
        return counts
