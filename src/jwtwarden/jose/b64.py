"""Strict base64url (RFC 7515 section 2, RFC 4648 section 5) without padding.

Rejected: padding (``=``), the standard alphabet (``+`` ``/``), whitespace or any other
byte, a length of 1 mod 4, and non-canonical trailing bits (``QR`` for ``QQ``), so every
byte string has exactly one accepted encoding.
"""

from __future__ import annotations

import binascii

from jwtwarden.errors import MalformedToken

__all__ = ["b64url_decode", "b64url_encode"]

# One translate pass maps the url-safe alphabet onto the standard one and turns every byte
# that must not occur ('+', '/', '=', whitespace) into '!', which strict a2b_base64 refuses.
_TO_STD = bytes.maketrans(b"-_+/= \t\r\n\v\f", b"+/!!!!!!!!!")
_TO_URL = bytes.maketrans(b"+/", b"-_")
_PAD = (b"", b"", b"==", b"=")  # indexed by len % 4; 1 is impossible and rejected below

# The last character of a 2- or 3-character final group carries 4 or 2 unused bits, which
# must be zero. These are the characters whose value has those low bits clear.
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_LAST_OK: tuple[frozenset[int], ...] = (
    frozenset(),  # len % 4 == 0: the final group is complete, no unused bits
    frozenset(),  # len % 4 == 1: never valid
    frozenset(c for i, c in enumerate(_ALPHABET) if i & 0x0F == 0),
    frozenset(c for i, c in enumerate(_ALPHABET) if i & 0x03 == 0),
)


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URL).decode("ascii")


def b64url_decode(data: str | bytes) -> bytes:
    """Decode strict unpadded base64url; raise :class:`~jwtwarden.errors.MalformedToken` otherwise."""
    if isinstance(data, str):
        if not data.isascii():
            raise MalformedToken("non-ASCII character in base64url")
        raw = data.encode("ascii")
    else:
        raw = data
    rem = len(raw) & 3
    if rem:
        if rem == 1 or raw[-1] not in _LAST_OK[rem]:
            raise MalformedToken("invalid base64url length or trailing bits")
        raw = raw.translate(_TO_STD) + _PAD[rem]
    else:
        raw = raw.translate(_TO_STD)
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        raise MalformedToken("invalid base64url") from None
