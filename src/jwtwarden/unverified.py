"""Reading a token WITHOUT verifying it. Nothing read here may be trusted.

For debugging and auditing only (``jwtwarden inspect`` prints an UNVERIFIED banner over
it). Never authorise anything from the result: anyone can write any header and payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.jose.jws import DEFAULT_MAX_TOKEN_SIZE, parse_header, split
from jwtwarden.jose.strict_json import parse_object

__all__ = ["UnverifiedToken", "decode_unverified"]


@dataclass(frozen=True, slots=True)
class UnverifiedToken:
    """Header, payload and signature of a token nobody has checked."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signature: bytes

    def __repr__(self) -> str:
        return f"UnverifiedToken(header={self.header!r}, payload names={sorted(self.payload)!r})"


def decode_unverified(
    token: str | bytes, *, max_token_size: int = DEFAULT_MAX_TOKEN_SIZE
) -> UnverifiedToken:
    """Decode header and payload strictly, check NO signature and NO claim.

    Raises :class:`~jwtwarden.errors.MalformedToken` when the token is not a well-formed
    compact JWT with JSON object header and payload.
    """
    header_segment, payload_segment, signature_segment = split(token, max_token_size)
    return UnverifiedToken(
        parse_header(header_segment),
        parse_object(b64url_decode(payload_segment), "payload"),
        b64url_decode(signature_segment),
    )
