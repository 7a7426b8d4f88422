"""Users (passwords hashed with argon2id) and API clients (for trusted-backend sessions,
introspection, and the OAuth token endpoint).

Authentication takes the same time whether the user exists or not: an unknown name is
checked against a dummy hash made with the same parameters. Client secrets are 32 random
bytes; what is stored is an HMAC, under a key derived from the KEK, of the client's id, its
permissions, grants, scope, audience, public keys and the secret's SHA-256
(:meth:`RowMAC.client_secret`), compared in constant time: whoever writes the database
without the KEK can neither set a secret they know nor widen what a client may do.

A client registered with public keys (``jwks`` or ``jwks_url``) has no secret at all: it
authenticates at the token endpoint with ``private_key_jwt`` (RFC 7523) only; its stored
value is the same HMAC over a digest no secret has, so its keys are authenticated too
(:meth:`Accounts.get_client` refuses a row whose HMAC does not match).

A user is found by the canonical form of the name (:func:`~jwtwarden.service.usernames.username_key`):
``Alice`` and ``ALICE`` (in any width) are ``alice``; names that mix scripts are refused when added.
Each user has a **credential epoch**: a password change, a disable, a delete (and a "log out
everywhere") bumps it, in the same transaction that ends the user's sessions. A login commits
its session against the epoch it read before verifying the password, and every refresh checks
the family's epoch against the user's (:mod:`jwtwarden.service.sessions.service`), so no
session created with an old password, or for a disabled or deleted account, can be used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy import Connection

from jwtwarden.errors import InvalidCredentials, JWKSInvalid
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.policy import Clock, system_clock
from jwtwarden.resource.jwks_client import check_url, load_public_jwks
from jwtwarden.revocation import Revocation
from jwtwarden.service.sessions.passwords import PasswordHashing
from jwtwarden.service.sessions.subkeys import RowMAC
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.schema import clients, users
from jwtwarden.service.usernames import check_new_username, username_key

log = logging.getLogger("jwtwarden.events")

__all__ = [
    "ASSERTION_ALGORITHMS", "CLIENT_GRANTS", "Accounts", "Client", "SessionEnder", "User",
    "parse_scope",
]

CLIENT_PERMISSIONS = frozenset({"sessions", "introspect"})
# grant types of the token endpoint a client may be registered for
CLIENT_GRANTS = frozenset({"client_credentials", "refresh_token"})
# what private_key_jwt assertions may be signed with: public-key algorithms only
ASSERTION_ALGORITHMS = tuple(sorted(a for a in ALGORITHMS if not a.startswith("HS")))
_NO_SECRET = bytes(32)
# a row no client has: authenticating an unknown id costs the same HMAC as a known one
_NO_CLIENT = {"id": "", "permissions": "", "grants": "", "scope": "", "audience": None,
              "jwks": None, "jwks_url": None}  # SHA-256 of no string is all zeros: nothing authenticates against it
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 section 3.3


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
    grants: frozenset[str] = frozenset()
    scope: str = ""  # space-separated: the most a client_credentials token may carry
    audience: str | None = None  # aud of its client_credentials tokens (default: the service's)
    jwks: str | None = None  # its public JWKS (JSON), for private_key_jwt
    jwks_url: str | None = None  # or where to fetch it
    dpop_bound_access_tokens: bool = False  # RFC 9449 section 5.2: token requests need a proof

    @property
    def auth_method(self) -> str:
        """How it authenticates at the token endpoint (RFC 8414 method names)."""
        return "private_key_jwt" if self.jwks or self.jwks_url else "client_secret_basic"

    @property
    def allowed_grants(self) -> frozenset[str]:
        """Its grant types; a trusted backend (``sessions``) may refresh the sessions it makes."""
        return self.grants | ({"refresh_token"} if "sessions" in self.permissions else set())


def parse_scope(scope: str) -> list[str]:
    """The scope tokens of an RFC 6749 section 3.3 scope (no duplicates, in order); ValueError
    when it is empty or malformed."""
    if not isinstance(scope, str) or len(scope) > 1024:
        raise ValueError("scope must be a string of at most 1024 characters")
    tokens = scope.split(" ")
    if not all(_SCOPE_TOKEN.fullmatch(t) for t in tokens):
        raise ValueError("scope must be space-separated tokens of printable ASCII (no quote or backslash)")
    return list(dict.fromkeys(tokens))


class SessionEnder(Protocol):
    """What account changes need from the sessions (the SessionService attaches itself)."""

    def end_all_in(self, conn: Connection, subject: str, now: float) -> tuple[int, list[Revocation]]:
        """Inside the caller's transaction: bump the epoch, revoke every family, cut off tokens."""

    async def applied(self, revoked: list[Revocation]) -> None:
        """After commit: mirror and broadcast the revocations."""


class Accounts:
    """User and client administration and authentication."""

    def __init__(
        self, db: Database, *, macs: RowMAC, hashing: PasswordHashing | None = None,
        hasher: PasswordHasher | None = None, clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._macs = macs
        # argon2id on its own bounded pool (passwords.py); ``hasher`` alone: a pool for it
        self.hashing = hashing or PasswordHashing(hasher)
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
        ok = await self.hashing.verify(stored, password)
        if row is None or not ok or row["disabled"]:
            raise InvalidCredentials("unknown user, wrong password or disabled account")
        if self.hashing.needs_rehash(stored):
            new_hash = await self._hash(password)
            async with self._db.transaction() as conn:
                # only over the very hash that was verified: a password set meanwhile stays
                await conn.execute(users.update().where(
                    users.c.id == row["id"], users.c.password_hash == stored,
                    users.c.credential_epoch == row["credential_epoch"],
                ).values(password_hash=new_hash))
        return _user(row)

    async def _hash(self, password: str) -> str:
        return await self.hashing.hash(password)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    # ---- clients ------------------------------------------------------------------------

    async def add_client(
        self,
        name: str,
        permissions: Iterable[str] = (),
        *,
        grants: Iterable[str] = (),
        scope: str = "",
        audience: str | None = None,
        dpop_bound_access_tokens: bool = False,
    ) -> tuple[Client, str]:
        """Create a client with a secret; returns it and the secret (shown once, stored as a hash).

        ``permissions``: ``sessions`` and/or ``introspect`` (HTTP Basic endpoints).
        ``grants``: ``client_credentials`` and/or ``refresh_token`` at the token endpoint
        (``client_secret_basic``); ``scope`` is the most a client_credentials token may carry
        and ``audience`` its ``aud`` (default: the service's). ``dpop_bound_access_tokens``: its
        token requests must carry a DPoP proof (RFC 9449 section 5.2). ``ValueError`` for
        anything else.
        """
        secret = "jws_" + secrets.token_urlsafe(32)
        client = await self._add_client(name, permissions, grants, scope, audience,
                                        secret_digest=_digest(secret), dpop=dpop_bound_access_tokens)
        return client, secret

    async def add_client_with_keys(
        self,
        name: str,
        *,
        grants: Iterable[str],
        scope: str = "",
        audience: str | None = None,
        jwks: str | None = None,
        jwks_url: str | None = None,
        dpop_bound_access_tokens: bool = False,
    ) -> Client:
        """Create a ``private_key_jwt`` client: no secret at all, only its public keys, given
        as a JWKS document (checked: public keys only, at least one usable) or a JWKS URL
        (https, or http on loopback). Other arguments as for :meth:`add_client`."""
        if (jwks is None) == (jwks_url is None):
            raise ValueError("give the client's public keys as a JWKS or as a URL (one of them)")
        if jwks is not None:
            jwks = _public_jwks(jwks)
        if jwks_url is not None:
            check_url(jwks_url)
        return await self._add_client(name, (), grants, scope, audience, secret_digest=_NO_SECRET,
                                      jwks=jwks, jwks_url=jwks_url, dpop=dpop_bound_access_tokens)

    async def _add_client(
        self, name: str, permissions: Iterable[str], grants: Iterable[str], scope: str,
        audience: str | None, *, secret_digest: bytes, jwks: str | None = None,
        jwks_url: str | None = None, dpop: bool = False,
    ) -> Client:
        perms, grant_set = frozenset(permissions), frozenset(grants)
        if not perms <= CLIENT_PERMISSIONS:
            raise ValueError(f"permissions must be some of {sorted(CLIENT_PERMISSIONS)}")
        if not grant_set <= CLIENT_GRANTS:
            raise ValueError(f"grants must be some of {sorted(CLIENT_GRANTS)}")
        if not perms and not grant_set:
            raise ValueError("a client needs at least one permission or grant")
        _check_username(name)
        scope = " ".join(parse_scope(scope)) if scope else ""
        if (scope or audience is not None) and "client_credentials" not in grant_set:
            raise ValueError("scope and audience are for clients with the client_credentials grant")
        if audience is not None and (not 1 <= len(audience) <= 255 or not audience.isprintable()
                                     or " " in audience):
            raise ValueError("the audience is 1-255 printable characters without spaces")
        client_id = "jwc_" + secrets.token_urlsafe(12)
        row = {"id": client_id, "permissions": " ".join(sorted(perms)),
               "grants": " ".join(sorted(grant_set)), "scope": scope, "audience": audience,
               "jwks": jwks, "jwks_url": jwks_url, "dpop_bound_access_tokens": bool(dpop)}
        try:  # the unique constraint decides (see add_user)
            async with self._db.transaction() as conn:
                await conn.execute(clients.insert().values(
                    **row, name=name, disabled=False, created_at=self._clock(),
                    secret_hash=self._macs.client_secret(row, secret_digest)))
        except sa.exc.IntegrityError:
            raise ValueError(f"client {name!r} exists") from None
        return Client(client_id, name, perms, False, grant_set, scope, audience, jwks, jwks_url,
                      bool(dpop))

    async def get_client(self, client_id: str) -> Client | None:
        """The client with this id, or None (also for ids no client can have, and for a
        ``private_key_jwt`` client whose row fails its HMAC: its keys are not the ones
        registered). A secret client's row is authenticated with the secret, by
        :meth:`authenticate_client`."""
        if not _plausible(client_id):
            return None
        async with self._db.read() as conn:
            row = (await conn.execute(
                sa.select(clients).where(clients.c.id == client_id))).mappings().first()
        if row is None:
            return None
        client = _client(row)
        if client.auth_method == "private_key_jwt" and not hmac.compare_digest(
            self._macs.client_secret(row, _NO_SECRET), bytes(row["secret_hash"])
        ):
            log.warning("client row failed its integrity check",
                        extra={"event": "integrity", "client": client.id})
            return None
        return client

    async def list_clients(self) -> list[Client]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(clients).order_by(clients.c.name))).mappings()
            return [_client(r) for r in rows]

    async def delete_client(self, name: str) -> None:
        async with self._db.transaction() as conn:
            result = await conn.execute(clients.delete().where(clients.c.name == name))
            if result.rowcount != 1:
                raise LookupError(f"no client {name!r}")

    async def authenticate_client(self, client_id: str, secret: str, permission: str | None) -> Client:
        """The client if the secret matches and it holds ``permission`` (None: the token
        endpoint, where grants are checked instead); else InvalidCredentials."""
        row = None
        if _plausible(client_id):
            async with self._db.read() as conn:
                row = (await conn.execute(
                    sa.select(clients).where(clients.c.id == client_id))).mappings().first()
        expected = row["secret_hash"] if row is not None else _NO_SECRET
        ok = hmac.compare_digest(
            self._macs.client_secret(row if row is not None else _NO_CLIENT, _digest(secret)),
            bytes(expected))
        if row is None or not ok or row["disabled"]:
            raise InvalidCredentials("unknown client or wrong secret")
        client = _client(row)
        if client.auth_method != "client_secret_basic":  # pragma: no cover - no secret hashes to it
            raise InvalidCredentials("this client has no secret")
        if permission is not None and permission not in client.permissions:
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


def _public_jwks(document: str) -> str:
    """The client's JWKS, checked and normalised: public keys only, at least one usable."""
    try:
        keys = load_public_jwks(document, ASSERTION_ALGORITHMS)
    except JWKSInvalid as error:
        raise ValueError(f"the JWKS is refused: {error.message}") from None
    if not len(keys):
        raise ValueError("the JWKS has no usable public signing key (give each key its 'alg')")
    return json.dumps(keys.to_jwks(), separators=(",", ":"), sort_keys=True)


def _client(row: object) -> Client:
    r: dict[str, Any] = dict(row)  # type: ignore[call-overload]
    return Client(
        r["id"], r["name"], frozenset(str(r["permissions"]).split()), bool(r["disabled"]),
        frozenset(str(r["grants"] or "").split()), r["scope"] or "", r["audience"],
        r["jwks"], r["jwks_url"], bool(r.get("dpop_bound_access_tokens")),
    )
