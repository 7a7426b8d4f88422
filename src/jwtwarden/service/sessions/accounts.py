"""Users (passwords hashed with argon2id) and API clients (for trusted-backend sessions
and introspection).

Authentication takes the same time whether the user exists or not: an unknown name is
checked against a dummy hash made with the same parameters. Client secrets are 32 random
bytes, stored as SHA-256 and compared in constant time.

A user is found by the canonical form of the name (:func:`~jwtwarden.service.usernames.username_key`):
``Alice`` and ``ALICE`` (in any width) are ``alice``; names that mix scripts are refused when added.
Each user has a **credential epoch**: a password change, a disable, a delete (and a "log out
everywhere") bumps it, in the same transaction that ends the user's sessions. A login commits
its session against the epoch it read before verifying the password, and every refresh checks
the family's epoch against the user's (:mod:`jwtwarden.service.sessions.service`), so no
session created with an old password, or for a disabled or deleted account, can be used.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection

from jwtwarden.errors import InvalidCredentials
from jwtwarden.policy import Clock, system_clock
from jwtwarden.revocation import Revocation
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.schema import clients, users
from jwtwarden.service.usernames import check_new_username, username_key

__all__ = ["Accounts", "Client", "SessionEnder", "User"]

CLIENT_PERMISSIONS = frozenset({"sessions", "introspect"})


@dataclass(frozen=True)
class User:
    id: str
    username: str
    scope: str
    disabled: bool
    created_at: float
    epoch: int = 0  # the credential epoch read with the row


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    permissions: frozenset[str]
    disabled: bool


class SessionEnder(Protocol):
    """What account changes need from the sessions (the SessionService attaches itself)."""

    def end_all_in(self, conn: Connection, subject: str, now: float) -> tuple[int, list[Revocation]]:
        """Inside the caller's transaction: bump the epoch, revoke every family, cut off tokens."""

    async def applied(self, revoked: list[Revocation]) -> None:
        """After commit: mirror and broadcast the revocations."""


class Accounts:
    """User and client administration and authentication."""

    def __init__(
        self, db: Database, *, hasher: PasswordHasher | None = None, clock: Clock = system_clock
    ) -> None:
        self._db = db
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._clock = clock
        self._dummy_hash: str | None = None
        self.sessions: SessionEnder | None = None

    # ---- users --------------------------------------------------------------------------

    async def add_user(self, username: str, password: str, *, scope: str = "") -> User:
        """Add a user under the canonical form of ``username`` (``ValueError`` when the name
        is malformed, mixes scripts, imitates a Latin name, or is taken in any spelling)."""
        key = check_new_username(username)
        _check_password(password)
        now = self._clock()
        user = User(secrets.token_urlsafe(16), key, scope, False, now)
        password_hash = await self._hash(password)
        try:  # the unique constraint decides, so two operators at once cannot both add it
            async with self._db.transaction() as conn:
                await conn.execute(users.insert().values(
                    id=user.id, username=key, username_key=key, password_hash=password_hash,
                    scope=scope, disabled=False, created_at=now, updated_at=now,
                    credential_epoch=0))
        except sa.exc.IntegrityError:
            raise ValueError(f"user {key!r} exists") from None
        return user

    async def get_user(self, username: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_by_name(username))).mappings().first()
        return None if row is None else _user(row)

    async def list_users(self) -> list[User]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(users).order_by(users.c.username))).mappings()
            return [_user(r) for r in rows]

    async def set_disabled(self, username: str, disabled: bool) -> tuple[User, int]:
        """Disable (ending every session, in the same transaction) or enable a user; returns
        the user and how many sessions ended."""
        values: dict[str, Any] = {"disabled": disabled}
        if disabled:
            values["credential_epoch"] = users.c.credential_epoch + 1
        return await self._change(username, values, end_sessions=disabled)

    async def set_password(self, username: str, password: str) -> tuple[User, int]:
        """A new password; every session ends in the same transaction."""
        _check_password(password)
        password_hash = await self._hash(password)
        return await self._change(username, {
            "password_hash": password_hash, "credential_epoch": users.c.credential_epoch + 1,
        }, end_sessions=True)

    async def delete_user(self, username: str) -> tuple[User, int]:
        """Delete a user; every session ends in the same transaction."""
        return await self._change(username, None, end_sessions=True)

    async def _change(
        self, username: str, values: dict[str, Any] | None, *, end_sessions: bool
    ) -> tuple[User, int]:
        """One transaction: lock the user row, change it (or delete it: ``values`` None),
        end the user's sessions; then publish the revocations."""
        now = self._clock()

        def work(conn: Connection) -> tuple[User, int, list[Revocation]]:
            row = conn.execute(_by_name(username).with_for_update()).mappings().first()
            if row is None:
                raise LookupError(f"no user {username!r}")
            if values is not None:
                conn.execute(users.update().where(users.c.id == row["id"])
                             .values(**values, updated_at=now))
            ended, revoked = 0, list[Revocation]()
            if end_sessions and self.sessions is not None:
                ended, revoked = self.sessions.end_all_in(conn, row["id"], now)
            if values is None:
                conn.execute(users.delete().where(users.c.id == row["id"]))
                return _user(row), ended, revoked
            fresh = conn.execute(sa.select(users).where(users.c.id == row["id"])).mappings().one()
            return _user(fresh), ended, revoked

        user, ended, revoked = await self._db.run(work)
        if revoked and self.sessions is not None:
            await self.sessions.applied(revoked)
        return user, ended

    async def authenticate(self, username: str, password: str) -> User:
        """The user, or :class:`InvalidCredentials` after the same amount of work either way.

        The returned user's ``epoch`` is the credential epoch read *before* the password was
        verified: a session must be committed against it (see ``SessionService.login``).
        """
        key = username_key(username)
        row = None
        if _plausible(key):  # no name with control characters exists; don't ask the database
            async with self._db.read() as conn:
                row = (await conn.execute(
                    sa.select(users).where(users.c.username_key == key))).mappings().first()
        stored = row["password_hash"] if row is not None else await self._dummy()
        ok = await asyncio.to_thread(self._verify, stored, password)
        if row is None or not ok or row["disabled"]:
            raise InvalidCredentials("unknown user, wrong password or disabled account")
        if self._hasher.check_needs_rehash(stored):
            new_hash = await self._hash(password)
            async with self._db.transaction() as conn:
                # only over the very hash that was verified: a password set meanwhile stays
                await conn.execute(users.update().where(
                    users.c.id == row["id"], users.c.password_hash == stored,
                    users.c.credential_epoch == row["credential_epoch"],
                ).values(password_hash=new_hash))
        return _user(row)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    # ---- clients ------------------------------------------------------------------------

    async def add_client(self, name: str, permissions: set[str]) -> tuple[Client, str]:
        """Create a client; returns it and its secret (shown once, stored as a hash)."""
        unknown = set(permissions) - CLIENT_PERMISSIONS
        if unknown or not permissions:
            raise ValueError(f"permissions must be some of {sorted(CLIENT_PERMISSIONS)}")
        _check_username(name)
        client_id = "jwc_" + secrets.token_urlsafe(12)
        secret = "jws_" + secrets.token_urlsafe(32)
        try:  # the unique constraint decides (see add_user)
            async with self._db.transaction() as conn:
                await conn.execute(clients.insert().values(
                    id=client_id, name=name, secret_hash=_digest(secret),
                    permissions=" ".join(sorted(permissions)), disabled=False,
                    created_at=self._clock()))
        except sa.exc.IntegrityError:
            raise ValueError(f"client {name!r} exists") from None
        return Client(client_id, name, frozenset(permissions), False), secret

    async def list_clients(self) -> list[Client]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(clients).order_by(clients.c.name))).mappings()
            return [_client(r) for r in rows]

    async def delete_client(self, name: str) -> None:
        async with self._db.transaction() as conn:
            result = await conn.execute(clients.delete().where(clients.c.name == name))
            if result.rowcount != 1:
                raise LookupError(f"no client {name!r}")

    async def authenticate_client(self, client_id: str, secret: str, permission: str) -> Client:
        """The client if the secret matches and it holds ``permission``; else InvalidCredentials."""
        row = None
        if _plausible(client_id):
            async with self._db.read() as conn:
                row = (await conn.execute(
                    sa.select(clients).where(clients.c.id == client_id))).mappings().first()
        expected = row["secret_hash"] if row is not None else bytes(32)
        ok = hmac.compare_digest(_digest(secret), bytes(expected))
        if row is None or not ok or row["disabled"]:
            raise InvalidCredentials("unknown client or wrong secret")
        client = _client(row)
        if permission not in client.permissions:
            raise InvalidCredentials(f"this client may not use {permission}")
        return client


def _plausible(name: str) -> bool:
    """Names and ids are printable and short; anything else cannot be stored, so is unknown."""
    return 1 <= len(name) <= 128 and name.isprintable()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _by_name(name: str) -> sa.Select[Any]:
    """The user an operator means by ``name``: the exact stored name first (a look-alike
    the migration disabled), else the canonical form."""
    key = username_key(name)
    exact = users.c.username == name
    return (sa.select(users).where(sa.or_(exact, users.c.username_key == key))
            .order_by(sa.case((exact, 0), else_=1)).limit(1))


def _check_username(name: str) -> None:
    if not isinstance(name, str) or not _plausible(name) or name != name.strip():
        raise ValueError("names are 1-128 printable characters without surrounding spaces")


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not 8 <= len(password) <= 1024:
        raise ValueError("passwords are 8-1024 characters")


def _user(row: object) -> User:
    r = row  # a RowMapping
    return User(r["id"], r["username"], r["scope"], bool(r["disabled"]), r["created_at"],  # type: ignore[index]
                int(r["credential_epoch"]))  # type: ignore[index]


def _client(row: object) -> Client:
    r = row
    perms = frozenset(str(r["permissions"]).split())  # type: ignore[index]
    return Client(r["id"], r["name"], perms, bool(r["disabled"]))  # type: ignore[index]
