"""The current schema, as SQLAlchemy Core tables, for queries.

The database is created and upgraded only by :mod:`jwtwarden.service.storage.migrations`; these
definitions describe what the last migration leaves behind (a test checks they agree).
Times are Unix seconds as double precision; secrets are never stored: refresh tokens as
SHA-256 hashes, client secrets as an HMAC (keyed from the KEK) of their SHA-256, passwords
as argon2id hashes, private keys encrypted under a key derived from the key-encryption key.
``mac`` columns authenticate the rows that decide what a token may say
(:mod:`jwtwarden.service.sessions.subkeys`); ``families.grace_successor`` is the session's
latest successor, sealed, during the grace window only (:mod:`jwtwarden.service.sessions.refresh_tokens`).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "client_assertions",
    "clients",
    "families",
    "meta",
    "metadata",
    "refresh_tokens",
    "revocation_feed",
    "revocations",
    "signing_keys",
    "users",
]

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("username", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False, server_default=""),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    # migration 5 (d_): the canonical name that decides identity (usernames.username_key),
    # unique; and the credential epoch, bumped by every password change, disable, delete
    # and log-out-everywhere: a session created under an older epoch cannot refresh
    sa.Column("username_key", sa.Text, nullable=True, unique=True),
    sa.Column("credential_epoch", sa.Integer, nullable=False, server_default="0"),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("permissions", sa.Text, nullable=False, server_default=""),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Double, nullable=False),
    # migration 3: the token endpoint (space-separated grant types and scope; no secret is
    # usable when jwks or jwks_url is set: those clients authenticate with private_key_jwt)
    sa.Column("grants", sa.Text, nullable=False, server_default=""),
    sa.Column("scope", sa.Text, nullable=False, server_default=""),
    sa.Column("audience", sa.Text, nullable=True),
    sa.Column("jwks", sa.Text, nullable=True),
    sa.Column("jwks_url", sa.Text, nullable=True),
    # migration 7: RFC 9449 section 5.2, its token requests must carry a DPoP proof
    sa.Column("dpop_bound_access_tokens", sa.Boolean, nullable=False, server_default=sa.false()),
)

# migration 3: the jti of each accepted client assertion (RFC 7523), until it expires
client_assertions = sa.Table(
    "client_assertions",
    metadata,
    sa.Column("client_id", sa.Text, primary_key=True),
    sa.Column("jti", sa.Text, primary_key=True),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
)

families = sa.Table(
    "families",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, nullable=False, index=True),
    sa.Column("user_id", sa.Text, nullable=True),
    sa.Column("scope", sa.Text, nullable=False, server_default=""),
    sa.Column("claims", sa.Text, nullable=True),  # extra access-token claims, JSON
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),  # absolute lifetime
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("last_used_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Column("revoked_reason", sa.Text, nullable=True),
    sa.Column("last_access_jti", sa.Text, nullable=True),
    sa.Column("last_access_exp", sa.Double, nullable=True),
    sa.Column("client_id", sa.Text, nullable=True),  # migration 2
    sa.Column("mac", sa.LargeBinary, nullable=True),  # migration 4 (c_)
    sa.Column("grace_successor", sa.LargeBinary, nullable=True),
    sa.Column("grace_until", sa.Double, nullable=True, index=True),
    sa.Column("user_epoch", sa.Integer, nullable=True),  # migration 5: the user's epoch at login
    # migration 7: RFC 7638 thumbprint of the DPoP key every refresh must prove (NULL: unbound)
    sa.Column("dpop_jkt", sa.Text, nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
    sa.Column(
        "family_id",
        sa.Text,
        sa.ForeignKey("families.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),  # idle lifetime
    sa.Column("used_at", sa.Double, nullable=True),
    sa.Column("mac", sa.LargeBinary, nullable=True),  # migration 4 (c_)
)

# One row per revoked thing (kind, value), merged in place: a later cutoff or expiry updates
# it and moves it to the feed's end (seq); revoking it again changes nothing (migration 6).
revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("cutoff", sa.Double, nullable=True),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=True, index=True),  # feed position; always written
    sa.UniqueConstraint("kind", "value", name="uq_revocations_kind_value"),
)

# The revocation feed's clock: one row. A transaction that changes revocations first takes
# the next seq by updating this row, whose lock it holds until it commits, so seqs become
# visible in order and a follower reading "seq > cursor" never skips one (issue #16 F2).
# ``epoch`` is random per database: a cursor of another database is recognised as unknown.
revocation_feed = sa.Table(
    "revocation_feed",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("epoch", sa.Text, nullable=False),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
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
    sa.Column("mac", sa.LargeBinary, nullable=True),  # migration 4 (c_)
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
