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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _initial),
    Migration(2, "expiry indexes and session client", _expiry_indexes_and_session_client),
    Migration(3, "b_revocation feed order and one row per revocation", _b_revocation_feed_order),
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
