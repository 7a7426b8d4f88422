"""Purpose-bound keys derived from the KEK, and the row MACs computed with one of them.

Each key is ``HKDF-SHA-256(KEK, info=label)``; no two uses share a key:

=================================  ====================================================
``jwtwarden key wrap v2``          AES-256-GCM wrapping of signing keys (:mod:`.kek`)
``jwtwarden row mac v1``           HMAC-SHA-256 over the rows that decide what a token
                                   may say (:class:`RowMAC`)
``jwtwarden grace successor v1``   sealing a refresh token's successor for the grace
                                   window (:func:`.refresh_tokens.seal_successor`)
``jwtwarden subject handle v1``    the ``srh`` claim, a subject's revocation handle
``jwtwarden csrf v1``              CSRF tokens (:mod:`jwtwarden.service.cookies`)
``jwtwarden dpop nonce v1``        DPoP server nonces (:class:`jwtwarden.dpop.DPoPNonces`)
=================================  ====================================================

**Row MACs.** Whoever can write the database but does not hold the KEK must not be able to
mint or widen a session, borrow another user's, give an API client a secret or a permission,
or bring back a signing key. So the columns that decide those carry an HMAC under the row
MAC key: a session's subject, user, scope, extra claims, client and lifetimes; a refresh
token's hash, session, generation and lifetimes; a signing key's whole schedule; an API
client's id and permissions together with the SHA-256 of its secret (which *is* the stored
secret hash). A row whose MAC does not verify is treated as absent and logged.

MACs cannot tell a row from an *earlier version of itself*: mutable state (a token's
``used_at``, a session's ``revoked_at``) is not covered, and a database restored to an
older state of its own (a backup, rows copied back verbatim) brings that state back, spent
tokens and all; the writer still needs the session's token to use it. The ``users`` table
(password hashes and scopes), the deny list and a client's ``disabled`` flag are not
covered either.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.service.sessions.kek import KEK
from jwtwarden.service.storage.schema import clients, families, refresh_tokens, signing_keys

__all__ = ["RowMAC", "SessionKeys", "upgrade_rows"]

ROW_MAC_LABEL = "jwtwarden row mac v1"
GRACE_LABEL = "jwtwarden grace successor v1"
SUBJECT_HANDLE_LABEL = "jwtwarden subject handle v1"
CSRF_LABEL = "jwtwarden csrf v1"
DEVICE_LABEL = "jwtwarden device cookie v1"
DPOP_NONCE_LABEL = "jwtwarden dpop nonce v1"

_TIME, _INT, _TEXT, _BYTES = "time", "int", "text", "bytes"
_FAMILY = (("id", _TEXT), ("subject", _TEXT), ("user_id", _TEXT), ("scope", _TEXT),
           ("claims", _TEXT), ("client_id", _TEXT), ("created_at", _TIME), ("expires_at", _TIME))
_FAMILY_DPOP = (("dpop_jkt", _TEXT),)
_TOKEN = (("token_hash", _BYTES), ("family_id", _TEXT), ("generation", _INT),
          ("created_at", _TIME), ("expires_at", _TIME))
_SIGNING_KEY = (("kid", _TEXT), ("alg", _TEXT), ("public_jwk", _TEXT), ("created_at", _TIME),
                ("publish_at", _TIME), ("activate_at", _TIME), ("retire_at", _TIME),
                ("remove_at", _TIME), ("revoked_at", _TIME))


_TEXT_OF: dict[str, Callable[[Any], str]] = {
    _TIME: lambda v: repr(float(v)), _INT: lambda v: str(int(v)), _BYTES: lambda v: bytes(v).hex(),
    _TEXT: str,
}


_CLIENT = (
    ("id", _TEXT), ("permissions", _TEXT), ("grants", _TEXT), ("scope", _TEXT),
    ("audience", _TEXT), ("jwks", _TEXT), ("jwks_url", _TEXT), ("digest", _BYTES),
)


_CLIENT_DPOP = (("dpop_bound_access_tokens", _INT),)


class RowMAC:
    """HMAC-SHA-256 of a row's authenticated columns (table name, then each column
    length-prefixed), per table."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a row MAC key is at least 32 bytes")
        self._key = key

    @classmethod
    def from_kek(cls, kek: KEK) -> RowMAC:
        return cls(kek.derive(ROW_MAC_LABEL))

    def _mac(self, table: str, columns: tuple[tuple[str, str], ...], row: Mapping[Any, Any]) -> bytes:
        # each column length-prefixed, "~" for NULL: the encoding is unambiguous
        parts = [table, "|"]
        for name, kind in columns:
            value = row[name]
            if value is None:
                parts.append("~")
            else:
                text = _TEXT_OF[kind](value)
                parts.append(f"{len(text)}:{text}")
        return hmac.digest(self._key, "".join(parts).encode("utf-8"), "sha256")

    def family(self, row: Mapping[Any, Any]) -> bytes:
        # a DPoP-bound session's key is authenticated too; unbound rows keep their MAC
        bound = row.get("dpop_jkt") is not None
        return self._mac("families", _FAMILY + _FAMILY_DPOP if bound else _FAMILY, row)

    def token(self, row: Mapping[Any, Any]) -> bytes:
        return self._mac("refresh_tokens", _TOKEN, row)

    def signing_key(self, row: Mapping[Any, Any]) -> bytes:
        return self._mac("signing_keys", _SIGNING_KEY, row)

    def client_secret(self, row: Mapping[Any, Any], secret_digest: bytes) -> bytes:
        """What ``clients.secret_hash`` holds: the secret's SHA-256 bound to the client's id
        and everything that says what it may do or how it authenticates (permissions, grants,
        scope, audience, public keys). A client with keys and no secret stores this over a
        digest no secret has, so its keys are authenticated the same way."""
        columns = _CLIENT + _CLIENT_DPOP if row.get("dpop_bound_access_tokens") else _CLIENT
        return self._mac("clients", columns, {**row, "digest": secret_digest})

    def valid(self, kind: str, row: Mapping[Any, Any]) -> bool:
        """Whether ``row["mac"]`` is the MAC of ``row`` (``kind``: family, token, signing_key)."""
        stored = row.get("mac")
        if stored is None:
            return False
        expected = {"family": self.family, "token": self.token, "signing_key": self.signing_key}[kind](row)
        return hmac.compare_digest(bytes(stored), expected)

    def __repr__(self) -> str:
        return "RowMAC(****)"


@dataclass(frozen=True, repr=False)
class SessionKeys:
    """The sub-keys the session service uses, derived once at start."""

    rows: RowMAC
    grace: bytes = field(repr=False)
    subject: bytes = field(repr=False)
    csrf: bytes = field(repr=False)
    device: bytes = field(repr=False)  # device cookies of the login limiter
    dpop_nonce: bytes = field(default=b"", repr=False)  # DPoP server nonces

    @classmethod
    def from_kek(cls, kek: KEK) -> SessionKeys:
        return cls(rows=RowMAC.from_kek(kek), grace=kek.derive(GRACE_LABEL),
                   subject=kek.derive(SUBJECT_HANDLE_LABEL), csrf=kek.derive(CSRF_LABEL),
                   device=kek.derive(DEVICE_LABEL), dpop_nonce=kek.derive(DPOP_NONCE_LABEL))

    def subject_handle(self, subject: str) -> str:
        """The ``srh`` claim of ``subject``'s tokens: 128 bits of HMAC-SHA-256, base64url.

        Stable per subject, so "log out everywhere" can be published under it; unlinkable to
        the subject by anyone without the KEK or one of that subject's tokens.
        """
        return b64url_encode(hmac.digest(self.subject, subject.encode("utf-8"), "sha256")[:16])

    def __repr__(self) -> str:
        return "SessionKeys(****)"


# ---- upgrading a database written before issue #16 ----------------------------------------------

_PAGE = 5000


def upgrade_rows(conn: Connection, kek: KEK, macs: RowMAC) -> dict[str, int]:
    """Give every row written before issue #16 what it lacks, in the caller's transaction.

    Signing keys: unwrapped with the raw KEK, wrapped again under the derived wrapping key
    (a revoked key's private half is erased instead), and MACed. Sessions and refresh
    tokens: MACed, in pages. API clients: the stored SHA-256 of the secret becomes the
    keyed :meth:`RowMAC.client_secret` over it, so existing secrets keep working.
    Returns how many rows of each table were upgraded.
    """
    counts = {}
    keys = conn.execute(sa.select(signing_keys)).mappings().all()
    for row in keys:
        context = f"signing key {row['kid']}"
        private = b"" if row["revoked_at"] is not None else kek.encrypt(
            kek.decrypt_legacy(row["encrypted_private"], context=context), context=context)
        conn.execute(signing_keys.update().where(signing_keys.c.kid == row["kid"]).values(
            encrypted_private=private, mac=macs.signing_key(row)))
    counts["signing_keys"] = len(keys)
    counts["families"] = _paged(conn, families, families.c.id, lambda r: {"mac": macs.family(r)})
    counts["refresh_tokens"] = _paged(conn, refresh_tokens, refresh_tokens.c.token_hash,
                                      lambda r: {"mac": macs.token(r)})
    counts["clients"] = _paged(conn, clients, clients.c.id, lambda r: {
        "secret_hash": macs.client_secret(r, bytes(r["secret_hash"]))})
    return counts


def _paged(
    conn: Connection, table: sa.Table, key: sa.Column[Any],
    values: Callable[[Mapping[Any, Any]], dict[str, Any]],
) -> int:
    """Update every row of ``table`` with ``values(row)``, ``_PAGE`` rows per query."""
    done, last = 0, None
    while True:
        query = sa.select(table).order_by(key).limit(_PAGE)
        if last is not None:
            query = query.where(key > last)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return done
        updates = [{"_key": r[key.name], **{f"_{k}": v for k, v in values(r).items()}} for r in rows]
        names = [k.removeprefix("_") for k in updates[0] if k != "_key"]
        conn.execute(table.update().where(key == sa.bindparam("_key")).values(
            {n: sa.bindparam(f"_{n}") for n in names}), updates)
        done += len(rows)
        last = rows[-1][key.name]
