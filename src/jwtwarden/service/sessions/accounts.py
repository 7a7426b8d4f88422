"""Users (passwords hashed with argon2id) and API clients (for trusted-backend sessions
and introspection).

Authentication takes the same time whether the user exists or not: an unknown name is
checked against a dummy hash made with the same parameters. Client secrets are 32 random
bytes; what is stored is an HMAC, under a key derived from the KEK, of the client's id, its
permissions and the secret's SHA-256 (:meth:`RowMAC.client_secret`), compared in constant
time: whoever writes the database without the KEK can neither set a secret they know nor
widen a client's permissions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from jwtwarden.errors import InvalidCredentials
from jwtwarden.policy import Clock, system_clock
from jwtwarden.service.sessions.subkeys import RowMAC
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.schema import clients, users

__all__ = ["Accounts", "Client", "User"]

CLIENT_PERMISSIONS = frozenset({"sessions", "introspect"})


@dataclass(frozen=True)
class User:
    id: str
    username: str
    scope: str
    disabled: bool
    created_at: float


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    permissions: frozenset[str]
    disabled: bool


class Accounts:
    """User and client administration and authentication."""

    def __init__(
        self, db: Database, *, macs: RowMAC, hasher: PasswordHasher | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._macs = macs
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._clock = clock
        self._dummy_hash: str | None = None

    # ---- users --------------------------------------------------------------------------

    async def add_user(self, username: str, password: str, *, scope: str = "") -> User:
        _check_username(username)
        _check_password(password)
        now = self._clock()
        user = User(secrets.token_urlsafe(16), username, scope, False, now)
        password_hash = await self._hash(password)
        try:  # the unique constraint decides, so two operators at once cannot both add it
            async with self._db.transaction() as conn:
                await conn.execute(users.insert().values(
                    id=user.id, username=username, password_hash=password_hash, scope=scope,
                    disabled=False, created_at=now, updated_at=now))
        except sa.exc.IntegrityError:
            raise ValueError(f"user {username!r} exists") from None
        return user

    async def get_user(self, username: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(
                sa.select(users).where(users.c.username == username))).mappings().first()
        return None if row is None else _user(row)

    async def list_users(self) -> list[User]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(users).order_by(users.c.username))).mappings()
            return [_user(r) for r in rows]

    async def set_disabled(self, username: str, disabled: bool) -> User:
        async with self._db.transaction() as conn:
            result = await conn.execute(users.update().where(users.c.username == username)
                                        .values(disabled=disabled, updated_at=self._clock()))
            if result.rowcount != 1:
                raise LookupError(f"no user {username!r}")
        user = await self.get_user(username)
        assert user is not None  # noqa: S101 - just updated
        return user

    async def set_password(self, username: str, password: str) -> User:
        _check_password(password)
        password_hash = await self._hash(password)
        async with self._db.transaction() as conn:
            result = await conn.execute(users.update().where(users.c.username == username)
                                        .values(password_hash=password_hash, updated_at=self._clock()))
            if result.rowcount != 1:
                raise LookupError(f"no user {username!r}")
        user = await self.get_user(username)
        assert user is not None  # noqa: S101 - just updated
        return user

    async def delete_user(self, username: str) -> User:
        user = await self.get_user(username)
        if user is None:
            raise LookupError(f"no user {username!r}")
        async with self._db.transaction() as conn:
            await conn.execute(users.delete().where(users.c.id == user.id))
        return user

    async def authenticate(self, username: str, password: str) -> User:
        """The user, or :class:`InvalidCredentials` after the same amount of work either way."""
        row = None
        if _plausible(username):  # no name with control characters exists; don't ask the database
            async with self._db.read() as conn:
                row = (await conn.execute(
                    sa.select(users).where(users.c.username == username))).mappings().first()
        stored = row["password_hash"] if row is not None else await self._dummy()
        ok = await asyncio.to_thread(self._verify, stored, password)
        if row is None or not ok or row["disabled"]:
            raise InvalidCredentials("unknown user, wrong password or disabled account")
        if self._hasher.check_needs_rehash(stored):
            new_hash = await self._hash(password)
            async with self._db.transaction() as conn:
                await conn.execute(users.update().where(users.c.id == row["id"])
                                   .values(password_hash=new_hash))
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
        granted = " ".join(sorted(permissions))
        try:  # the unique constraint decides (see add_user)
            async with self._db.transaction() as conn:
                await conn.execute(clients.insert().values(
                    id=client_id, name=name, permissions=granted, disabled=False,
                    secret_hash=self._macs.client_secret(client_id, granted, _digest(secret)),
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
        permissions = row["permissions"] if row is not None else ""
        ok = hmac.compare_digest(
            self._macs.client_secret(client_id, permissions, _digest(secret)), bytes(expected))
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


def _check_username(name: str) -> None:
    if not isinstance(name, str) or not _plausible(name) or name != name.strip():
        raise ValueError("names are 1-128 printable characters without surrounding spaces")


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not 8 <= len(password) <= 1024:
        raise ValueError("passwords are 8-1024 characters")


def _user(row: object) -> User:
    r = row  # a RowMapping
    return User(r["id"], r["username"], r["scope"], bool(r["disabled"]), r["created_at"])  # type: ignore[index]


def _client(row: object) -> Client:
    r = row
    perms = frozenset(str(r["permissions"]).split())  # type: ignore[index]
    return Client(r["id"], r["name"], perms, bool(r["disabled"]))  # type: ignore[index]
