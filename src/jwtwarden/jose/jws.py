"""Compact JWS serialisation (RFC 7515 sections 3.1, 5.1, 5.2, 7.1).

Parsing is strict: exactly three segments, a size limit checked before anything is decoded,
strict base64url, strict JSON, and a protected header that names a registered algorithm and
none of the parameters jwtwarden refuses (see :data:`REFUSED_HEADERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jwtwarden.errors import MalformedToken, TokenTooLarge, UnsupportedHeader
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.strict_json import dumps, parse_object

__all__ = [
    "DEFAULT_MAX_TOKEN_SIZE",
    "KEY_HEADERS",
    "REFUSED_HEADERS",
    "as_text",
    "check_header",
    "decode_segments",
    "encode_header",
    "media_type",
    "parse_header",
    "serialize",
    "split",
]

DEFAULT_MAX_TOKEN_SIZE = 8192
"""Tokens longer than this many characters are refused before decoding (8 KiB)."""

KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
"""Header parameters that fetch or embed a key; the key in them is never trusted."""

REFUSED_HEADERS: Mapping[str, str] = {
    "crit": "no critical header extension is understood (RFC 7515 section 4.1.11)",
    "b64": "unencoded payloads (RFC 7797) are not accepted",
    "zip": "compressed payloads are not accepted (RFC 8725 section 3.6)",
    "enc": "this is an encrypted JWE, not a JWS",
}
"""Header parameters whose presence alone makes a token unacceptable."""

_STRING_HEADERS = ("kid", "typ", "cty")


def as_text(token: str | bytes, max_size: int = DEFAULT_MAX_TOKEN_SIZE) -> str:
    """The token as ASCII text, after the type, size and character checks."""
    if isinstance(token, bytes | bytearray):
        if len(token) > max_size:
            raise TokenTooLarge(f"token longer than {max_size} bytes")
        try:
            return bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise MalformedToken("token has non-ASCII characters") from None
    if not isinstance(token, str):
        raise MalformedToken("a token must be a string")
    if len(token) > max_size:
        raise TokenTooLarge(f"token longer than {max_size} bytes")
    if not token.isascii():
        raise MalformedToken("token has non-ASCII characters")
    return token


def split(token: str | bytes, max_size: int = DEFAULT_MAX_TOKEN_SIZE) -> list[str]:
    """The three segments of a compact JWS, after the type, size and character checks."""
    parts = as_text(token, max_size).split(".")
    if len(parts) != 3:
        raise MalformedToken("a compact JWS has exactly three segments")
    return parts


def parse_header(segment: str) -> dict[str, Any]:
    """Decode and parse the protected header segment (JSON object, no checks of content)."""
    return parse_object(b64url_decode(segment), "header")


def check_header(header: Mapping[str, Any], *, allow_key_headers: bool = False) -> str:
    """Apply the header rules and return ``alg``.

    Raises :class:`UnsupportedHeader` for :data:`REFUSED_HEADERS` and, unless
    ``allow_key_headers``, for :data:`KEY_HEADERS`; :class:`MalformedToken` when ``alg`` is
    missing or a string-valued parameter is not a string. ``cty: JWT`` (a nested JWT) is
    refused: jwtwarden verifies one signature layer and never unwraps another.
    """
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise MalformedToken("header 'alg' is missing or not a string")
    for name in header:
        if name in REFUSED_HEADERS:
            raise UnsupportedHeader(name, f"header {name!r}: {REFUSED_HEADERS[name]}")
        if name in KEY_HEADERS and not allow_key_headers:
            raise UnsupportedHeader(name, f"header {name!r} would name its own key; refused")
    for name in _STRING_HEADERS:
        value = header.get(name)
        if value is not None and not isinstance(value, str):
            raise MalformedToken(f"header {name!r} must be a string")
        if value is not None and name == "cty" and media_type(value) == "jwt":
            raise UnsupportedHeader("cty", "nested JWTs are not accepted")
    return alg


def media_type(value: str) -> str:
    """RFC 7515 section 4.1.9: case-insensitive, the ``application/`` prefix optional."""
    value = value.lower()
    return value[12:] if value.startswith("application/") else value


def encode_header(header: Mapping[str, Any]) -> str:
    """The base64url segment of a protected header (compact JSON)."""
    return b64url_encode(dumps(dict(header)))


def serialize(header_segment: str, payload: bytes, sign: Callable[[bytes], bytes]) -> str:
    """``header.payload.signature`` for an already-encoded header segment."""
    signing_input = f"{header_segment}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"


def decode_segments(token: str | bytes, max_size: int = DEFAULT_MAX_TOKEN_SIZE) -> tuple[
    dict[str, Any], bytes, bytes
]:
    """Header object, payload bytes and signature bytes, checking nothing but the format."""
    header_segment, payload_segment, signature_segment = split(token, max_size)
    return (
        parse_header(header_segment),
        b64url_decode(payload_segment),
        b64url_decode(signature_segment),
    )
