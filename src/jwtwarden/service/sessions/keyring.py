"""The service's signing keys: stored encrypted in the database, shared by every replica.

Each key has a schedule rather than a mutable state, so replicas agree without talking:

- ``publish_at``: from then on the key is in the JWKS;
- ``activate_at``: from then on it may sign (the newest activated, unretired key signs);
- ``retire_at``: it stops signing (when its successor activates);
- ``remove_at``: it leaves the JWKS, once every token it signed has expired;
- ``revoked_at``: emergency; out of the JWKS and refused at once.

A rotation publishes the new key immediately and activates it one JWKS cache lifetime
later (``jwks_max_age``), so every resource server that honours ``Cache-Control`` already
has it when the first token signed by it arrives; the old key stays published for an
access-token lifetime (plus leeway) after it stops signing. Nobody notices a rotation.

Each row carries a MAC of its whole schedule under a key derived from the KEK
(:class:`~jwtwarden.service.sessions.subkeys.RowMAC`): a row someone changed without the
KEK (a revoked key un-revoked, a removed key republished) is ignored and logged. Revoking a
key also erases its encrypted private half.

:meth:`KeyRing.check_kek` is where a database written before issue #16 is upgraded, once,
in one transaction: private keys unwrapped with the raw KEK and wrapped again under the
derived wrapping key, and every session, refresh-token, signing-key and client row given
its MAC (:func:`~jwtwarden.service.sessions.subkeys.upgrade_rows`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jwtwarden.issue import Issuer
from jwtwarden.keys import Key, KeySet
from jwtwarden.policy import DEFAULT_LEEWAY, Clock, system_clock
from jwtwarden.service.config import Settings
from jwtwarden.service.sessions.kek import KEK, KEKError
from jwtwarden.service.sessions.subkeys import RowMAC, upgrade_rows
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.schema import meta, signing_keys
from jwtwarden.verify import CachingVerifier, Verifier

__all__ = ["KeyRing", "StoredKey"]

log = logging.getLogger("jwtwarden.keys")
_KEK_CHECK = "kek_check"
_KEK_CHECK_LEGACY = b"jwtwarden key-encryption key check v1"  # raw KEK, before issue #16
_KEK_CHECK_PLAINTEXT = b"jwtwarden key-encryption key check v2"  # derived wrapping key, row MACs


@dataclass(frozen=True)
class StoredKey:
    """A signing key's public half and schedule (never the private half)."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    created_at: float
    publish_at: float
    activate_at: float
    retire_at: float | None
    remove_at: float | None
    revoked_at: float | None

    def published(self, now: float) -> bool:
        return (
            self.revoked_at is None
            and self.publish_at <= now
            and (self.remove_at is None or now < self.remove_at)
        )

    def may_sign(self, now: float) -> bool:
        return (
            self.published(now)
            and self.activate_at <= now
            and (self.retire_at is None or now < self.retire_at)
        )

    def state(self, now: float) -> str:
        """A word for people: pending, next, active, retiring, removed, revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if now < self.publish_at:
            return "pending"
        if self.remove_at is not None and now >= self.remove_at:
            return "removed"
        if now < self.activate_at:
            return "next"
        if self.retire_at is not None and now >= self.retire_at:
            return "retiring"
        return "active"


class KeyRing:
    """Loads, creates, rotates and revokes signing keys; hands out the issuer and verifier."""

    def __init__(self, db: Database, kek: KEK, settings: Settings, *, clock: Clock = system_clock):
        self._db = db
        self._kek = kek
        self._macs = RowMAC.from_kek(kek)
        self._settings = settings
        self._clock = clock
        self._keys: list[StoredKey] = []
        self._private: dict[str, Key] = {}
        self._issuer: tuple[str, Issuer] | None = None
        self._verifiers: dict[bool, tuple[frozenset[str], Verifier]] = {}

    # ---- reading ----------------------------------------------------------------------

    async def load(self) -> None:
        """Read every key (decrypting the private halves) from the database."""
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(signing_keys))).mappings().all()
        keys, private = [], {}
        for row in self._authentic(rows):
            stored = _stored(row)
            keys.append(stored)
            if stored.revoked_at is None:
                blob = self._kek.decrypt(row["encrypted_private"], context=f"signing key {stored.kid}")
                private[stored.kid] = Key.from_jwk(json.loads(blob))
        keys.sort(key=lambda k: (k.activate_at, k.created_at))
        self._keys, self._private = keys, private

    def _authentic(self, rows: Any) -> list[Any]:
        """The rows whose MAC verifies; the others are logged and treated as absent."""
        out = []
        for row in rows:
            if self._macs.valid("signing_key", row):
                out.append(row)
            else:
                log.error("integrity: signing key %r was changed without the KEK; ignored",
                          row["kid"], extra={"event": "integrity", "table": "signing_keys"})
        return out

    def keys(self) -> list[StoredKey]:
        return list(self._keys)

    def active(self, now: float | None = None) -> StoredKey | None:
        now = self._clock() if now is None else now
        candidates = [k for k in self._keys if k.may_sign(now)]
        return candidates[-1] if candidates else None

    def issuer(self, now: float | None = None) -> Issuer:
        """An Issuer for the key that signs now (cached per key)."""
        active = self.active(now)
        if active is None:
            raise RuntimeError("no active signing key; call ensure_signing_key() at start")
        if self._issuer is None or self._issuer[0] != active.kid:
            key = self._private[active.kid]
            self._issuer = (
                active.kid,
                Issuer(
                    key,
                    issuer=self._settings.issuer,
                    audience=list(self._settings.audience),
                    lifetime=self._settings.access_lifetime,
                    clock=self._clock,
                ),
            )
        return self._issuer[1]

    def public_keyset(self, now: float | None = None) -> KeySet:
        now = self._clock() if now is None else now
        return KeySet(self._private[k.kid].public() for k in self._keys if k.published(now))

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        return self.public_keyset(now).to_jwks()

    def jwks_max_age(self, now: float | None = None) -> int:
        """Cache lifetime for the JWKS: the configured maximum, shortened before a change."""
        now = self._clock() if now is None else now
        changes = [t for k in self._keys for t in (k.publish_at, k.remove_at) if t and t > now]
        limit = self._settings.jwks_max_age
        if changes:
            limit = min(limit, max(1, int(min(changes) - now)))
        return limit

    def verifier(self, now: float | None = None, *, allow_cnf: bool = False) -> Verifier:
        """A strict verifier for this service's own access tokens (published keys only).

        Built once per set of published keys: a verifier keeps its caches (checked headers,
        tokens verified before) until a key is published, removed or revoked. It refuses
        DPoP-bound tokens (``cnf``) except through ``verify_bound``; ``allow_cnf=True`` gives
        one that accepts them as they are, for introspection and revocation, which look at a
        token without being asked for access by it.
        """
        now = self._clock() if now is None else now
        kids = frozenset(k.kid for k in self._keys if k.published(now))
        cached = self._verifiers.get(allow_cnf)
        if cached is None or cached[0] != kids:
            keyset = KeySet(self._private[kid].public() for kid in sorted(kids))
            cached = self._verifiers[allow_cnf] = (
                kids,
                CachingVerifier(
                    keyset,
                    issuer=self._settings.issuer,
                    audience=self._settings.audience,
                    algorithms=sorted({k.alg for k in keyset}),
                    typ="at+jwt",
                    required_claims=("sub", "jti", "iat"),
                    clock=self._clock,
                    unsafe_allow_cnf=allow_cnf,
                ),
            )
        return cached[1]

    # ---- changing ---------------------------------------------------------------------

    async def check_kek(self) -> None:
        """Fail fast when the configured KEK is not the one this database was set up with.

        A database whose check value is still the one written before issue #16 (under the
        raw KEK) is upgraded here, in the same transaction as the new check value.
        """
        async with self._db.transaction() as conn:
            # Replicas starting at once each find no check value; the lock makes the second
            # one wait and then read the first one's instead of inserting a duplicate.
            await _lock_keys(conn, self._db)
            row = (await conn.execute(sa.select(meta.c.value).where(meta.c.name == _KEK_CHECK))).first()
            if row is None:
                blob = self._kek.encrypt(_KEK_CHECK_PLAINTEXT, context=_KEK_CHECK)
                await conn.execute(meta.insert().values(name=_KEK_CHECK, value=blob))
                return
            try:
                current = self._kek.decrypt(row[0], context=_KEK_CHECK) == _KEK_CHECK_PLAINTEXT
            except KEKError:
                current = False
            if current:
                return
            if self._kek.decrypt_legacy(row[0], context=_KEK_CHECK) != _KEK_CHECK_LEGACY:
                raise KEKError("the key-encryption key check value does not match")
            counts = await conn.run_sync(lambda c: upgrade_rows(c, self._kek, self._macs))
            await conn.execute(meta.update().where(meta.c.name == _KEK_CHECK).values(
                value=self._kek.encrypt(_KEK_CHECK_PLAINTEXT, context=_KEK_CHECK)))
        log.warning("upgraded this database's secrets (issue #16): %s", counts)

    async def ensure_signing_key(self) -> None:
        """At start: make sure some key signs now (create the first one, or after a gap)."""
        await self.load()
        if self.active() is not None:
            return
        async with self._db.transaction() as conn:
            await _lock_keys(conn, self._db)
            rows = self._authentic((await conn.execute(sa.select(signing_keys))).mappings().all())
            now = self._clock()
            if any(_stored(r).may_sign(now) for r in rows):
                pass  # another replica created it while we waited for the lock
            else:
                key = Key.generate(self._settings.algorithm)
                await self._insert(conn, key, publish_at=now, activate_at=now)
                log.info("created signing key %s (%s)", key.kid, key.alg)
        await self.load()

    async def rotate(self) -> StoredKey:
        """Publish a new key now; it signs from one JWKS cache lifetime on."""
        now = self._clock()
        activate_at = now + self._settings.jwks_max_age
        key = Key.generate(self._settings.algorithm)
        async with self._db.transaction() as conn:
            await _lock_keys(conn, self._db)
            await self._retire_current(conn, now, retire_at=activate_at)
            await self._insert(conn, key, publish_at=now, activate_at=activate_at)
        await self.load()
        log.info("rotated: key %s published, signs from %.0f", key.kid, activate_at)
        return self._by_kid(key.kid)

    async def import_key(self, key: Key) -> StoredKey:
        """Make an existing private key the signing key now (migration from another issuer)."""
        if not key.is_private:
            raise ValueError("import needs a private key")
        now = self._clock()
        async with self._db.transaction() as conn:
            await _lock_keys(conn, self._db)
            exists = (await conn.execute(
                sa.select(signing_keys.c.kid).where(signing_keys.c.kid == key.kid))).first()
            if exists is not None:
                raise ValueError(f"a key with kid {key.kid!r} is already stored")
            await self._retire_current(conn, now, retire_at=now)
            await self._insert(conn, key, publish_at=now, activate_at=now)
        await self.load()
        return self._by_kid(key.kid)

    async def retire(self, kid: str) -> StoredKey:
        """Stop publishing a key that no longer signs, once its tokens have expired."""
        now = self._clock()
        stored = self._by_kid(kid)
        if stored.may_sign(now):
            raise ValueError("the key signs now; rotate first, then retire it")
        remove_at = max(now, (stored.retire_at or now) + self._token_horizon())
        async with self._db.transaction() as conn:
            await _lock_keys(conn, self._db)
            await self._update(conn, kid, retire_at=stored.retire_at or now, remove_at=remove_at)
        await self.load()
        return self._by_kid(kid)

    async def revoke(self, kid: str) -> StoredKey | None:
        """Emergency: remove a compromised key at once. Returns the replacement, if one was needed.

        The encrypted private half is erased with it: a revoked key can never sign again.
        """
        now = self._clock()
        self._by_kid(kid)  # KeyError for an unknown kid
        replacement = None
        async with self._db.transaction() as conn:
            await _lock_keys(conn, self._db)
            await self._update(conn, kid, revoked_at=now, encrypted_private=b"")
            rows = self._authentic((await conn.execute(sa.select(signing_keys))).mappings().all())
            if not any(_stored(r).may_sign(now) for r in rows):
                key = Key.generate(self._settings.algorithm)
                await self._insert(conn, key, publish_at=now, activate_at=now)
                replacement = key.kid
        await self.load()
        log.warning("signing key %s REVOKED", kid)
        return self._by_kid(replacement) if replacement else None

    async def rotate_if_due(self) -> StoredKey | None:
        """Automatic rotation: when the signing key is older than the interval."""
        interval = self._settings.key_rotation_interval
        now = self._clock()
        active = self.active(now)
        if not interval or active is None:
            return None
        pending = [k for k in self._keys if k.revoked_at is None and k.activate_at > now]
        if pending or now - active.activate_at < interval:
            return None
        return await self.rotate()

    def _token_horizon(self) -> float:
        return self._settings.access_lifetime + DEFAULT_LEEWAY

    def _by_kid(self, kid: str) -> StoredKey:
        for k in self._keys:
            if k.kid == kid:
                return k
        raise KeyError(kid)

    async def _retire_current(self, conn: Any, now: float, *, retire_at: float) -> None:
        rows = self._authentic((await conn.execute(sa.select(signing_keys))).mappings().all())
        for stored in (_stored(r) for r in rows):
            if stored.revoked_at is None and stored.retire_at is None:
                await self._update(
                    conn, stored.kid,
                    retire_at=max(retire_at, stored.activate_at),
                    remove_at=max(retire_at, stored.activate_at) + self._token_horizon(),
                )

    async def _update(self, conn: Any, kid: str, **values: Any) -> None:
        """Change a key's row and its MAC together (the caller holds the key lock)."""
        row = (await conn.execute(sa.select(signing_keys).where(signing_keys.c.kid == kid))).mappings().one()
        if not self._macs.valid("signing_key", row):
            raise KeyError(kid)  # changed without the KEK: not ours to rewrite
        new = {**row, **values}
        await conn.execute(signing_keys.update().where(signing_keys.c.kid == kid).values(
            **values, mac=self._macs.signing_key(new)))

    async def _insert(self, conn: Any, key: Key, *, publish_at: float, activate_at: float) -> None:
        blob = self._kek.encrypt(
            json.dumps(key.to_jwk(private=True)).encode(), context=f"signing key {key.kid}"
        )
        row = {
            "kid": key.kid,
            "alg": key.alg,
            "public_jwk": json.dumps(key.public().to_jwk()),
            "encrypted_private": blob,
            "created_at": self._clock(),
            "publish_at": publish_at,
            "activate_at": activate_at,
            "retire_at": None,
            "remove_at": None,
            "revoked_at": None,
        }
        await conn.execute(signing_keys.insert().values(**row, mac=self._macs.signing_key(row)))


async def _lock_keys(conn: Any, db: Database) -> None:
    """Serialise key changes across replicas (SQLite's BEGIN IMMEDIATE already does)."""
    if db.dialect == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x6A77_6B79)))


def _stored(row: Any) -> StoredKey:
    return StoredKey(
        kid=row["kid"],
        alg=row["alg"],
        public_jwk=json.loads(row["public_jwk"]),
        created_at=row["created_at"],
        publish_at=row["publish_at"],
        activate_at=row["activate_at"],
        retire_at=row["retire_at"],
        remove_at=row["remove_at"],
        revoked_at=row["revoked_at"],
    )
