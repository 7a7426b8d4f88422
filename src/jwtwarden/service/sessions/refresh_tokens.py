"""The opaque refresh-token format.

``jwr_`` + 86 base64url characters (64 random bytes) + 6 characters of checksum (CRC-32 of
the random part, base64url): 96 characters that secret scanners can recognise by prefix and
that are rejected by shape and checksum before any database access. Only the SHA-256 of the
whole token is stored.

Every token, a successor included, is 64 fresh random bytes: nothing stored or derivable
from the KEK leads from a spent token to the live one. With a grace window, the successor
is also kept for that window, *sealed* (:func:`seal_successor`): AES-256-GCM under
``HMAC-SHA-256(grace_key, predecessor)``, where ``grace_key`` is derived from the KEK:
opening it takes the predecessor token and the KEK together. The service erases it at the next rotation, when the session ends, or at the first garbage collection
after the window.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import zlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jwtwarden.errors import InvalidRefreshToken, MalformedToken
from jwtwarden.jose.b64 import b64url_decode, b64url_encode

__all__ = [
    "PREFIX",
    "TOKEN_LENGTH",
    "new_refresh_token",
    "open_successor",
    "refresh_token_hash",
    "seal_successor",
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


def _grace_aead(predecessor: str, grace_key: bytes) -> AESGCM:
    return AESGCM(hmac.new(grace_key, predecessor.encode("ascii"), hashlib.sha256).digest())


_GRACE_AAD = b"jwtwarden grace successor v1"


def seal_successor(successor: str, predecessor: str, grace_key: bytes) -> bytes:
    """``successor``, readable again only with ``predecessor`` and ``grace_key`` (nonce + AES-GCM)."""
    nonce = os.urandom(12)
    return nonce + _grace_aead(predecessor, grace_key).encrypt(nonce, successor.encode("ascii"), _GRACE_AAD)


def open_successor(sealed: bytes, predecessor: str, grace_key: bytes) -> str:
    """The successor sealed for ``predecessor``; ``cryptography.exceptions.InvalidTag`` otherwise."""
    plain = _grace_aead(predecessor, grace_key).decrypt(sealed[:12], sealed[12:], _GRACE_AAD)
    return plain.decode("ascii")


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
