"""The opaque refresh-token format.

``jwr_`` + 86 base64url characters (64 random bytes) + 6 characters of checksum (CRC-32 of
the random part, base64url): 96 characters that secret scanners can recognise by prefix and
that are rejected by shape and checksum before any database access. Only the SHA-256 of the
whole token is stored.

A successor is *derived*: ``HMAC-SHA-512(successor_key, predecessor)``. The service can
hand the same successor to a retry of the same refresh (the grace window) without ever
storing a token, while a database dump alone yields nothing usable: the hashes cannot be
inverted and the successor key lives only with the key-encryption key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import zlib

from jwtwarden.errors import InvalidRefreshToken, MalformedToken
from jwtwarden.jose.b64 import b64url_decode, b64url_encode

__all__ = [
    "PREFIX",
    "TOKEN_LENGTH",
    "derive_successor",
    "new_refresh_token",
    "refresh_token_hash",
    "validate_refresh_token",
]

PREFIX = "jwr_"
_RANDOM_BYTES = 64
_BODY = 86  # base64url characters of 64 bytes
_CHECK = 6  # base64url characters of a 4-byte CRC-32
TOKEN_LENGTH = len(PREFIX) + _BODY + _CHECK


def _format(random_part: bytes) -> str:
    body = b64url_encode(random_part)
    check = b64url_encode(zlib.crc32(body.encode("ascii")).to_bytes(4, "big"))
    return f"{PREFIX}{body}{check}"


def new_refresh_token() -> str:
    """A fresh token from 64 bytes of the operating system's CSPRNG."""
    return _format(os.urandom(_RANDOM_BYTES))


def derive_successor(token: str, successor_key: bytes) -> str:
    """The token that follows ``token`` in its family (deterministic, keyed)."""
    mac = hmac.new(successor_key, token.encode("ascii"), hashlib.sha512).digest()
    return _format(mac[:_RANDOM_BYTES])


def validate_refresh_token(token: object) -> str:
    """``token`` if it has the shape of a jwtwarden refresh token, else :class:`InvalidRefreshToken`."""
    if (
        not isinstance(token, str)
        or len(token) != TOKEN_LENGTH
        or not token.startswith(PREFIX)
        or not token.isascii()
    ):
        raise InvalidRefreshToken("not a jwtwarden refresh token")
    body, check = token[len(PREFIX):-_CHECK], token[-_CHECK:]
    try:
        b64url_decode(body)
    except MalformedToken:
        raise InvalidRefreshToken("not a jwtwarden refresh token") from None
    expected = b64url_encode(zlib.crc32(body.encode("ascii")).to_bytes(4, "big"))
    if not hmac.compare_digest(check, expected):
        raise InvalidRefreshToken("the refresh token's checksum is wrong")
    return token


def refresh_token_hash(token: str) -> bytes:
    """What the database stores instead of the token."""
    return hashlib.sha256(token.encode("ascii")).digest()
