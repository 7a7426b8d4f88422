"""Named, transactional, recorded schema migrations.

Each migration is a function of a synchronous SQLAlchemy connection, applied inside the
transaction that records it in ``schema_migrations``: it happens entirely or not at all
(SQLite and PostgreSQL both have transactional DDL). Migrations only ever add: an upgrade
never drops or rewrites a session.

Several service replicas may start at once on the same empty database: on PostgreSQL the
migrating transaction holds an advisory lock, on SQLite ``BEGIN IMMEDIATE`` serialises them,
so one applies and the others find nothing left to do.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jwtwarden.service.storage.db import Database

__all__ = ["MIGRATIONS", "Migration", "applied_versions", "migrate"]

_ADVISORY_LOCK_ID = 0x6A77_7477  # "jwtw"

_schema_migrations = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _initial(conn: Connection) -> None:
    """Users, clients, token families, refresh tokens, revocations, signing keys."""
    md = sa.MetaData()
    sa.Table(
        "users", md,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("username", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False, server_default=""),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    sa.Table(
        "clients", md,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("permissions", sa.Text, nullable=False, server_default=""),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    sa.Table(
        "families", md,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False, index=True),
        sa.Column("user_id", sa.Text, nullable=True),
        sa.Column("scope", sa.Text, nullable=False, server_default=""),
        sa.Column("claims", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("last_used_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double, nullable=True),
        sa.Column("revoked_reason", sa.Text, nullable=True),
        sa.Column("last_access_jti", sa.Text, nullable=True),
        sa.Column("last_access_exp", sa.Double, nullable=True),
    )
    sa.Table(
        "refresh_tokens", md,
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("family_id", sa.Text, sa.ForeignKey("families.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double, nullable=True),
    )
    sa.Table(
        "revocations", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("cutoff", sa.Double, nullable=True),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    sa.Table(
        "signing_keys", md,
        sa.Column("kid", sa.Text, primary_key=True),
        sa.Column("alg", sa.Text, nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("encrypted_private", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("publish_at", sa.Double, nullable=False),
        sa.Column("activate_at", sa.Double, nullable=False),
        sa.Column("retire_at", sa.Double, nullable=True),
        sa.Column("remove_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
    )
    sa.Table(
        "meta", md,
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    md.create_all(conn)


def _expiry_indexes_and_session_client(conn: Connection) -> None:
    """Indexes on every expiry column (garbage collection in bounded batches stays cheap as
    sessions accumulate) and the client that created a trusted-backend session."""
    conn.execute(sa.text("ALTER TABLE families ADD COLUMN client_id TEXT"))
    for table in ("families", "refresh_tokens", "revocations"):
        conn.execute(sa.text(f"CREATE INDEX ix_{table}_expires_at ON {table} (expires_at)"))


def _g_client_grants_and_assertion_jtis(conn: Connection) -> None:
    """OAuth clients at the token endpoint (issue #13): each client's grant types, allowed
    scope, audience and public keys (a JWKS, or its URL) for ``private_key_jwt``; and the
    ``jti`` of every client assertion accepted, kept until it expires (the primary key makes a
    replay fail to insert, atomically across replicas)."""
    for column in ("grants TEXT NOT NULL DEFAULT ''", "scope TEXT NOT NULL DEFAULT ''",
                   "audience TEXT", "jwks TEXT", "jwks_url TEXT"):
        conn.execute(sa.text(f"ALTER TABLE clients ADD COLUMN {column}"))
    md = sa.MetaData()
    sa.Table(
        "client_assertions", md,
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("jti", sa.Text, primary_key=True),
        sa.Column("expires_at", sa.Double, nullable=False, index=True),
    )
    md.create_all(conn)


def _c_row_macs_and_sealed_grace_successors(conn: Connection) -> None:
    """Issue #16: a MAC column on sessions, refresh tokens and signing keys, and a session's
    sealed grace-window successor (with its deadline, indexed for garbage collection). Existing
    rows get their MACs (and signing keys their new wrapping) when the service first starts
    with the KEK: see ``KeyRing.check_kek``."""
    binary = sa.LargeBinary().compile(dialect=conn.dialect)
    double = sa.Double().compile(dialect=conn.dialect)
    for table, column, kind in (
        ("families", "mac", binary),
        ("refresh_tokens", "mac", binary),
        ("families", "grace_successor", binary),
        ("families", "grace_until", double),
        ("signing_keys", "mac", binary),
    ):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
    conn.execute(sa.text("CREATE INDEX ix_families_grace_until ON families (grace_until)"))


def _d_username_keys_and_credential_epochs(conn: Connection) -> None:
    """Canonical usernames (unique) and credential epochs (issue #11 items 4 and 5).

    Every existing user gets the canonical form of its name as ``username_key``, so ``Alice``
    still logs in (as ``alice`` too). Where several existing names share one form (``Alice``
    and ``alice``), the oldest keeps it; the newer look-alikes are disabled and given a key no
    login can produce (with a newline), and the operator reaches them by their exact name
    (``jwtwarden users list``). Existing sessions of users keep working: epoch 0 on both sides.
    """
    from jwtwarden.service.usernames import username_key  # pure functions, no service state

    conn.execute(sa.text("ALTER TABLE users ADD COLUMN username_key TEXT"))
    conn.execute(sa.text("ALTER TABLE users ADD COLUMN credential_epoch INTEGER NOT NULL DEFAULT 0"))
    conn.execute(sa.text("ALTER TABLE families ADD COLUMN user_epoch INTEGER"))
    conn.execute(sa.text("UPDATE families SET user_epoch = 0 WHERE user_id IS NOT NULL"))
    rows = conn.execute(sa.text("SELECT id, username FROM users ORDER BY created_at, id")).all()
    taken: set[str] = set()
    for user_id, username in rows:
        key = username_key(username)
        if key in taken:
            conn.execute(sa.text("UPDATE users SET username_key = :k, disabled = :t WHERE id = :i"),
                         {"k": f"{key}\n{user_id}", "t": True, "i": user_id})
        else:
            taken.add(key)
            conn.execute(sa.text("UPDATE users SET username_key = :k WHERE id = :i"),
                         {"k": key, "i": user_id})
    conn.execute(sa.text("CREATE UNIQUE INDEX ix_users_username_key ON users (username_key)"))


def _b_revocation_feed_order(conn: Connection) -> None:
    """Issue #16 F2 and F4: one row per revoked (kind, value), and a feed position (``seq``)
    taken under the lock of the single ``revocation_feed`` row, so positions commit in order.

    Duplicate rows (one per repeated revocation, before) merge into the newest row of their
    (kind, value) with the latest expiry and cutoff. Every row keeps its id as its position.
    """
    conn.execute(sa.text("ALTER TABLE revocations ADD COLUMN seq BIGINT"))
    conn.execute(sa.text(
        "UPDATE revocations SET expires_at = merged.expires_at, cutoff = merged.cutoff "
        "FROM (SELECT max(id) AS id, max(expires_at) AS expires_at, max(cutoff) AS cutoff "
        "      FROM revocations GROUP BY kind, value HAVING count(*) > 1) AS merged "
        "WHERE revocations.id = merged.id"))
    conn.execute(sa.text(
        "DELETE FROM revocations WHERE id NOT IN (SELECT max(id) FROM revocations GROUP BY kind, value)"))
    conn.execute(sa.text("UPDATE revocations SET seq = id"))
    conn.execute(sa.text("CREATE UNIQUE INDEX uq_revocations_kind_value ON revocations (kind, value)"))
    conn.execute(sa.text("CREATE INDEX ix_revocations_seq ON revocations (seq)"))
    feed = sa.Table(
        "revocation_feed", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.Text, nullable=False),
    )
    feed.create(conn)
    top = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM revocations")).scalar()
    conn.execute(feed.insert().values(id=1, seq=int(top or 0), epoch=secrets.token_hex(4)))


def _dpop_key_bindings(conn: Connection) -> None:
    """Issue #14, DPoP (RFC 9449): the thumbprint of the key a session's refresh tokens are bound
    to (every refresh must prove it; NULL: not bound), and a client's
    ``dpop_bound_access_tokens`` (RFC 9449 section 5.2: its token requests need a proof)."""
    boolean = sa.Boolean().compile(dialect=conn.dialect)
    conn.execute(sa.text("ALTER TABLE families ADD COLUMN dpop_jkt TEXT"))
    conn.execute(sa.text(
        f"ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens {boolean} NOT NULL DEFAULT "
        + ("false" if conn.dialect.name == "postgresql" else "0")))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _initial),
    Migration(2, "expiry indexes and session client", _expiry_indexes_and_session_client),
    Migration(3, "g_client grants and assertion jtis", _g_client_grants_and_assertion_jtis),
    Migration(4, "c_row macs and sealed grace successors", _c_row_macs_and_sealed_grace_successors),
    Migration(5, "d_ username keys and credential epochs", _d_username_keys_and_credential_epochs),
    Migration(6, "b_revocation feed order and one row per revocation", _b_revocation_feed_order),
    Migration(7, "dpop key bindings", _dpop_key_bindings),
)


async def applied_versions(db: Database) -> list[int]:
    async with db.read() as conn:
        has_table = await conn.run_sync(
            lambda c: sa.inspect(c).has_table("schema_migrations")
        )
        if not has_table:
            return []
        rows = await conn.execute(sa.select(_schema_migrations.c.version))
        return sorted(r[0] for r in rows)


async def migrate(db: Database, *, target: int | None = None) -> list[Migration]:
    """Apply every pending migration (up to ``target``) in one transaction; return them."""
    async with db.transaction() as conn:
        if db.dialect == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_ID)))
        await conn.run_sync(lambda c: _schema_migrations.create(c, checkfirst=True))
        done = {r[0] for r in await conn.execute(sa.select(_schema_migrations.c.version))}
        pending = [
            m for m in MIGRATIONS if m.version not in done and (target is None or m.version <= target)
        ]
        for migration in pending:
            await conn.run_sync(migration.apply)
            await conn.execute(
                _schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at=time.time()
                )
            )
        return pending
