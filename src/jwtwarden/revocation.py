"""Revocation of access tokens that have not expired yet, answered from memory.

Three scopes, each an entry that expires by itself once no token it covers can be valid:

- ``jti``: one access token (logout, RFC 7009 revoke); kept until the token's ``exp``;
- ``sid``: every access token of one session (token family), after logout or refresh-token
  reuse; kept for the longest access-token lifetime;
- ``sub``: every access token of a user issued before a cutoff (log out everywhere); kept for
  the longest access-token lifetime. The entry does not name the user: it is stored under
  the tokens' ``srh`` claim, a revocation handle the issuer derives from the subject with
  a key of its own, so a reader of a published revocation list cannot test a guessed
  subject (an e-mail address) against it. Tokens without ``srh`` (other issuers, or
  jwtwarden before issue #16) are looked up by :func:`subject_key`, an unkeyed hash
  (:func:`subject_revocation_key` chooses);
- ``kid``: an emergency-revoked signing key. Claims cannot show it (the ``kid`` is in the
  header), so it is not checked here: whoever holds the keys drops that key and refetches
  (see :meth:`RevocationSet.revoked_kids`).

:class:`RevocationSet` holds them in process and answers a check without I/O. The token
service fills it from its database or Redis; resource servers fill it from the service's
revocation feed. Whoever fills it must fail closed when the source is unreachable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jwtwarden.errors import Revoked
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.policy import Clock, system_clock

__all__ = [
    "SUBJECT_HANDLE_CLAIM",
    "Revocation",
    "RevocationKind",
    "RevocationSet",
    "subject_key",
    "subject_revocation_key",
]

RevocationKind = Literal["jti", "sid", "sub", "kid"]
KINDS: tuple[RevocationKind, ...] = ("jti", "sid", "sub", "kid")


SUBJECT_HANDLE_CLAIM = "srh"


def subject_key(subject: str) -> str:
    """The unkeyed key of a ``sub`` revocation for tokens without ``srh``: 128 bits of
    SHA-256, base64url. Anyone can compute it from a guessed subject."""
    return b64url_encode(hashlib.sha256(subject.encode("utf-8")).digest()[:16])


def subject_revocation_key(claims: Mapping[str, Any]) -> str | None:
    """The key ``sub`` revocations covering these (verified) claims are stored under: the
    ``srh`` claim when the token carries one, else :func:`subject_key` of ``sub``."""
    handle = claims.get(SUBJECT_HANDLE_CLAIM)
    if isinstance(handle, str) and handle:
        return handle
    sub = claims.get("sub")
    return subject_key(sub) if isinstance(sub, str) else None


@dataclass(frozen=True, slots=True)
class Revocation:
    """One deny-list entry. ``cutoff`` (``sub`` only): tokens with ``iat`` < cutoff are revoked."""

    kind: RevocationKind
    value: str
    expires_at: float
    cutoff: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"revocation kind must be one of {KINDS}")
        if not isinstance(self.value, str) or not self.value:
            raise ValueError("a revocation needs a non-empty value")
        if (self.kind == "sub") != (self.cutoff is not None):
            raise ValueError("a cutoff is required for, and only for, 'sub' revocations")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "value": self.value, "exp": self.expires_at}
        if self.cutoff is not None:
            data["cutoff"] = self.cutoff
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Revocation:
        """Parse one entry of the revocation feed; :class:`ValueError` when malformed."""
        try:
            kind, value, exp = data["kind"], data["value"], data["exp"]
            cutoff = data.get("cutoff")
        except (KeyError, TypeError):
            raise ValueError("a revocation entry needs kind, value and exp") from None
        numbers = (exp,) if cutoff is None else (exp, cutoff)
        if not all(type(n) in (int, float) for n in numbers):
            raise ValueError("revocation times must be numbers")
        return cls(kind, value, float(exp), None if cutoff is None else float(cutoff))


class RevocationSet:
    """An in-process deny list: ``check(claims)`` raises :class:`Revoked` or returns.

    Not thread-safe for writers; one task or thread should feed it. Readers only do dict
    lookups. Expired entries are dropped by :meth:`prune` (called on every :meth:`add`
    batch, at most once a second).
    """

    __slots__ = ("_clock", "_jti", "_kid", "_last_prune", "_sid", "_sub")

    def __init__(self, entries: Iterable[Revocation] = (), *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._jti: dict[str, float] = {}
        self._sid: dict[str, float] = {}
        self._sub: dict[str, tuple[float, float]] = {}  # key -> (cutoff, expires_at)
        self._kid: dict[str, float] = {}
        self._last_prune = 0.0
        self.add_many(entries)

    def add(self, entry: Revocation) -> None:
        self.add_many((entry,))

    def add_many(self, entries: Iterable[Revocation]) -> None:
        for e in entries:
            if e.kind == "jti":
                self._jti[e.value] = max(e.expires_at, self._jti.get(e.value, 0.0))
            elif e.kind == "sid":
                self._sid[e.value] = max(e.expires_at, self._sid.get(e.value, 0.0))
            elif e.kind == "kid":
                self._kid[e.value] = max(e.expires_at, self._kid.get(e.value, 0.0))
            else:
                assert e.cutoff is not None  # noqa: S101 - __post_init__ guarantees it
                old_cutoff, old_exp = self._sub.get(e.value, (0.0, 0.0))
                self._sub[e.value] = (max(e.cutoff, old_cutoff), max(e.expires_at, old_exp))
        now = self._clock()
        if now - self._last_prune >= 1.0:
            self.prune(now)

    def prune(self, now: float | None = None) -> int:
        """Drop entries that can no longer match a valid token; return how many."""
        now = self._clock() if now is None else now
        self._last_prune = now
        dropped = 0
        for table in (self._jti, self._sid, self._kid):
            dead = [k for k, exp in table.items() if exp <= now]
            for k in dead:
                del table[k]
            dropped += len(dead)
        dead_subs = [k for k, (_, exp) in self._sub.items() if exp <= now]
        for k in dead_subs:
            del self._sub[k]
        return dropped + len(dead_subs)

    def clear(self) -> None:
        self._jti.clear()
        self._sid.clear()
        self._sub.clear()
        self._kid.clear()

    def revoked_kids(self) -> frozenset[str]:
        """Signing keys revoked in an emergency (drop them from any key set)."""
        return frozenset(self._kid)

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """True when any entry covers these (already verified) claims."""
        if self._jti and claims.get("jti") in self._jti:
            return True
        if self._sid and claims.get("sid") in self._sid:
            return True
        if self._sub:
            key = subject_revocation_key(claims)
            if key is not None:
                entry = self._sub.get(key)
                if entry is not None:
                    iat = claims.get("iat")
                    # no iat: cannot prove it was issued after the cutoff
                    return not isinstance(iat, int | float) or iat < entry[0]
        return False

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`~jwtwarden.errors.Revoked` when the token has been revoked."""
        if self.is_revoked(claims):
            raise Revoked("the token has been revoked")

    def entries(self) -> list[Revocation]:
        """Every live entry, for publishing or copying."""
        out = [Revocation("jti", k, v) for k, v in self._jti.items()]
        out += [Revocation("sid", k, v) for k, v in self._sid.items()]
        out += [Revocation("sub", k, exp, cutoff) for k, (cutoff, exp) in self._sub.items()]
        out += [Revocation("kid", k, v) for k, v in self._kid.items()]
        return out

    def __len__(self) -> int:
        return len(self._jti) + len(self._sid) + len(self._sub) + len(self._kid)

    def __repr__(self) -> str:
        return (f"RevocationSet(jti={len(self._jti)}, sid={len(self._sid)}, "
                f"sub={len(self._sub)}, kid={len(self._kid)})")
