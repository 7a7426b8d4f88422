"""Building tokens by hand, including broken ones, for the audit tests."""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

ISS = "https://auth.example.com"
AUD = "api.example.com"
NOW = 1_700_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(part: dict[str, Any] | list[Any] | bytes) -> str:
    """A base64url segment of a JSON value, or of raw bytes as they are."""
    return b64(part if isinstance(part, bytes) else json.dumps(part).encode())


def token(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | list[Any] | bytes,
    signature: bytes = b"\x01" * 64,
) -> str:
    """A compact JWS with any header, payload and signature (nothing is signed)."""
    return f"{segment(header)}.{segment(payload)}.{b64(signature)}"


def good_claims(**changes: Any) -> dict[str, Any]:
    """Claims that raise no finding at ``NOW``; ``changes`` set (or, with None, drop) claims."""
    claims: dict[str, Any] = {
        "iss": ISS, "sub": "user-42", "aud": AUD, "iat": int(NOW), "exp": int(NOW) + 900,
        "jti": "q3JHf0xk2Yp9dLwZ1mN8rA",
    }  # fmt: skip
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def hs_token(secret: bytes, alg: str = "HS256", payload: dict[str, Any] | None = None) -> str:
    """A correctly HMAC-signed token (the secret may be weak, unlike with HMACKey)."""
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(payload or {'sub': 'u1'})}"
    mac = hmac.digest(secret, signing_input.encode(), f"sha{alg[2:]}")
    return f"{signing_input}.{b64(mac)}"


def tamper(text: str) -> str:
    """``text`` with one character of its signature changed (still valid base64url)."""
    head, _, signature = text.rpartition(".")
    index = len(signature) // 2
    replacement = "A" if signature[index] != "A" else "B"
    return f"{head}.{signature[:index]}{replacement}{signature[index + 1 :]}"
