"""Browser clients: the refresh token in an HttpOnly cookie, CSRF proof for cookie requests.

Cookies (all ``Secure``, ``SameSite=Strict``):

- ``__Secure-jwtwarden-refresh``: the refresh token, ``HttpOnly``, ``Path=/v1/auth`` so it
  is only ever sent to the auth endpoints;
- ``__Secure-jwtwarden-csrf``: the CSRF token, readable by the page's script (double submit);
- ``__Secure-jwtwarden-access`` (only with ``access_cookie``): the access token, ``HttpOnly``,
  for server-rendered apps; single-page apps keep the access token from the JSON body in memory.

A CSRF token is ``random.mac`` where ``mac = HMAC-SHA-256(csrf_key, family_id "." random)``
(truncated to 128 bits): it is bound to one session and cannot be minted without the key.
Every state-changing request authenticated by a cookie must send it back in the
``X-CSRF-Token`` header (equal to the cookie), and must not come from another site
(``Sec-Fetch-Site: cross-site``, or an ``Origin`` outside the allowed origins, is refused).
Another origin of the same site (an app on ``https://app.example.com`` calling
``https://auth.example.com``) is accepted only when its ``Origin`` is one of the allowed ones.
Header and cookie are compared as bytes: a header may carry any byte.

A **device cookie** (``__Secure-jwtwarden-device``, ``HttpOnly``, ``Path=/v1/auth/login``,
one year) is issued on every successful login, in every mode: ``nonce.mac`` with
``mac = HMAC-SHA-256(device_key, "device" username_key nonce)`` truncated to 128 bits, where
``username_key`` is the canonical username (:func:`~jwtwarden.service.usernames.username_key`).
It names no user, cannot be minted without the key, and is valid only for logins to the
account it was issued for; its nonce identifies the device to the login limiter
(:mod:`jwtwarden.service.ratelimit`).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from starlette.requests import Request
from starlette.responses import Response

from jwtwarden.jose.b64 import b64url_encode

__all__ = [
    "ACCESS_COOKIE",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "DEVICE_COOKIE",
    "REFRESH_COOKIE",
    "REFRESH_PATH",
    "CsrfError",
    "check_csrf",
    "check_origin",
    "clear_cookies",
    "csrf_token_valid",
    "device_of",
    "make_csrf_token",
    "make_device_cookie",
    "set_device_cookie",
    "set_session_cookies",
]

REFRESH_COOKIE = "__Secure-jwtwarden-refresh"
CSRF_COOKIE = "__Secure-jwtwarden-csrf"
ACCESS_COOKIE = "__Secure-jwtwarden-access"
DEVICE_COOKIE = "__Secure-jwtwarden-device"
CSRF_HEADER = "x-csrf-token"
REFRESH_PATH = "/v1/auth"
LOGIN_PATH = "/v1/auth/login"
DEVICE_MAX_AGE = 365 * 86_400


class CsrfError(Exception):
    """A cookie-authenticated request failed the CSRF or origin check (answered with 403)."""


def _mac(key: bytes, family_id: str, nonce: str) -> str:
    digest = hmac.new(key, f"{family_id}.{nonce}".encode(), hashlib.sha256).digest()
    return b64url_encode(digest[:16])


def make_csrf_token(key: bytes, family_id: str) -> str:
    nonce = b64url_encode(os.urandom(16))
    return f"{nonce}.{_mac(key, family_id, nonce)}"


def csrf_token_valid(key: bytes, family_id: str, token: str) -> bool:
    """``token`` was minted by us for ``family_id``."""
    nonce, _, mac = token.partition(".")
    return bool(nonce) and hmac.compare_digest(_bytes(mac), _mac(key, family_id, nonce).encode())


def check_csrf(request: Request, key: bytes, family_id: str | None) -> None:
    """Header equals cookie, and the token was minted for ``family_id`` by us."""
    header = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not header or not cookie or not hmac.compare_digest(_bytes(header), _bytes(cookie)):
        raise CsrfError("missing or mismatched CSRF token")
    if family_id is None or not csrf_token_valid(key, family_id, header):
        raise CsrfError("the CSRF token does not belong to this session")


def _bytes(text: str) -> bytes:
    """Header and cookie text as bytes (``hmac.compare_digest`` refuses non-ASCII ``str``)."""
    return text.encode("utf-8", "surrogatepass")


def _device_mac(key: bytes, username_key: str, nonce: str) -> str:
    message = b"device\x00" + _bytes(username_key) + b"\x00" + nonce.encode("ascii")
    return b64url_encode(hmac.new(key, message, hashlib.sha256).digest()[:16])


def make_device_cookie(key: bytes, username_key: str) -> str:
    """A new device cookie value for the account ``username_key``."""
    nonce = b64url_encode(os.urandom(16))
    return f"{nonce}.{_device_mac(key, username_key, nonce)}"


def device_of(request: Request, key: bytes, username_key: str) -> str | None:
    """The device id (the nonce) of a valid device cookie for this account, else None."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    nonce, _, mac = value.partition(".")
    if len(nonce) != 22 or not nonce.isascii() or not mac:
        return None
    if not hmac.compare_digest(_bytes(mac), _device_mac(key, username_key, nonce).encode()):
        return None
    return nonce


def set_device_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE, value, max_age=DEVICE_MAX_AGE, path=LOGIN_PATH,
        secure=True, httponly=True, samesite="strict",
    )


def check_origin(request: Request, allowed: frozenset[str]) -> None:
    """Refuse requests a browser marks as cross-site, or whose Origin is not allowed."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    listed_sibling = site == "same-site" and origin is not None and origin in allowed
    if site is not None and site not in ("same-origin", "none") and not listed_sibling:
        raise CsrfError("cross-site request")
    if origin is not None and origin not in allowed:
        raise CsrfError("request from an origin that is not allowed")


def set_session_cookies(
    response: Response,
    *,
    refresh_token: str,
    refresh_max_age: int,
    csrf_token: str,
    access_token: str | None = None,
    access_max_age: int = 0,
) -> None:
    response.set_cookie(
        REFRESH_COOKIE, refresh_token, max_age=refresh_max_age, path=REFRESH_PATH,
        secure=True, httponly=True, samesite="strict",
    )
    response.set_cookie(
        CSRF_COOKIE, csrf_token, max_age=refresh_max_age, path="/",
        secure=True, httponly=False, samesite="strict",
    )
    if access_token is not None:
        response.set_cookie(
            ACCESS_COOKIE, access_token, max_age=access_max_age, path="/",
            secure=True, httponly=True, samesite="strict",
        )


def clear_cookies(response: Response) -> None:
    for name, path, httponly in (
        (REFRESH_COOKIE, REFRESH_PATH, True),
        (CSRF_COOKIE, "/", False),
        (ACCESS_COOKIE, "/", True),
    ):
        response.delete_cookie(name, path=path, secure=True, httponly=httponly, samesite="strict")
