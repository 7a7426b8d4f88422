"""The deny list's wire format in Redis, shared by the token service (writer) and followers.

Pure data, no I/O and no ``redis`` import: the token service's writer
(:mod:`jwtwarden.service.storage.redis`) and the resource servers' follower
(:mod:`jwtwarden.resource.redis_follower`) both use it, so the two sides cannot drift apart.

- **Keys**: ``jwtwarden:rv:{kind}:{value}`` (``kind`` is ``jti``, ``sid``, ``sub`` or ``kid``;
  a ``sub`` value is :func:`~jwtwarden.revocation.subject_revocation_key`), each with a TTL ending when
  nothing it covers can still be valid. The stored value is ``1``, or for ``sub`` the cutoff
  (``repr`` of a float: tokens issued before it are revoked).
- **Channel** ``jwtwarden:revocations``: every change to a key is published there, in the
  same atomic step as the write, as a JSON array of feed entries
  (:meth:`~jwtwarden.revocation.Revocation.to_json`).
- **Loaded marker** ``jwtwarden:rv-loaded`` (no TTL): set by a token service once Redis holds
  every live revocation of its database, to the ``run_id`` of that Redis server (``INFO
  server``), which changes at every restart. A Redis that restarted (with or without
  persistence: what it saved lacks what was revoked while it was down), failed over or was
  flushed has no valid marker, and a follower does not trust it until a token service has
  loaded it again (:func:`is_loaded`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jwtwarden.revocation import KINDS, Revocation

__all__ = [
    "CHANNEL",
    "KEY_PREFIX",
    "LOADED_KEY",
    "SCAN_PATTERN",
    "decode_message",
    "encode_message",
    "entry_from_key",
    "is_loaded",
    "key",
    "stored_value",
]

CHANNEL = "jwtwarden:revocations"
KEY_PREFIX = "jwtwarden:rv:"
SCAN_PATTERN = KEY_PREFIX + "*"
LOADED_KEY = "jwtwarden:rv-loaded"


def key(kind: str, value: str) -> str:
    """The Redis key of one revocation."""
    return f"{KEY_PREFIX}{kind}:{value}"


def stored_value(entry: Revocation) -> str:
    """What the key holds: the cutoff of a ``sub`` revocation, else ``1``."""
    return repr(entry.cutoff) if entry.cutoff is not None else "1"


def entry_from_key(name: str, stored: bytes | str | None, ttl_ms: int | None, now: float) -> Revocation | None:
    """The revocation a key describes (its expiry from the remaining TTL), or None when the
    key is gone, has no TTL, or is not one of ours."""
    if stored is None or ttl_ms is None or ttl_ms < 0 or not name.startswith(KEY_PREFIX):
        return None
    kind, _, value = name[len(KEY_PREFIX):].partition(":")
    if kind not in KINDS or not value:
        return None
    text = stored.decode("ascii", "replace") if isinstance(stored, bytes) else stored
    try:
        cutoff = float(text) if kind == "sub" else None
        return Revocation(kind, value, now + ttl_ms / 1000, cutoff)
    except ValueError:
        return None


def is_loaded(marker: bytes | str | None, run_id: object) -> bool:
    """Whether a token service loaded this very Redis server since it (re)started."""
    if marker is None or not isinstance(run_id, str) or not run_id:
        return False
    text = marker.decode("ascii", "replace") if isinstance(marker, bytes) else marker
    return text == run_id


def encode_message(entries: Iterable[Revocation]) -> str:
    return json.dumps([e.to_json() for e in entries], separators=(",", ":"))


def decode_message(data: Any) -> list[Revocation]:
    """The entries of one channel message; :class:`ValueError` when it is not one."""
    try:
        items = json.loads(data)
    except (TypeError, ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(items, list):
        raise ValueError("not a list of revocations")
    return [Revocation.from_json(item) for item in items]
