"""What the clients share: URL checks, the token service's answers as typed errors, token
lifetimes measured on the client's own clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from jwtwarden.errors import (
    FamilyTooOld,
    InvalidClient,
    InvalidCredentials,
    InvalidDPoPProof,
    InvalidRefreshToken,
    InvalidRequest,
    InvalidScope,
    JWTError,
    OAuthError,
    RateLimited,
    RefreshError,
    RefreshExpired,
    RefreshKeyMismatch,
    RefreshReused,
    RefreshRevoked,
    TemporarilyUnavailable,
    TokenEndpointError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from jwtwarden.policy import is_loopback

Clock = Callable[[], float]

DEFAULT_REFRESH_MARGIN = 60.0
DEFAULT_TIMEOUT = 10.0
RETRY_PAUSE = 5.0  # after a failed early refresh, the still-valid token is used this long
MAX_ANSWER = 64 * 1024  # a token answer is a few KiB; anything larger is not one

_REFRESH_ERRORS: dict[str, type[RefreshError]] = {
    cls.code: cls for cls in (RefreshReused, RefreshRevoked, RefreshExpired, FamilyTooOld,
                              InvalidRefreshToken, RefreshKeyMismatch)
}
_OAUTH_ERRORS: dict[str, type[OAuthError]] = {
    cls.code: cls for cls in (InvalidClient, UnauthorizedClient, InvalidScope, UnsupportedGrantType)
}


def check_base_url(url: str, what: str, *, allow_http: bool) -> str:
    """``url`` without a trailing slash; https only (http on loopback, or when allowed)."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"the {what} must be a non-empty string")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ValueError(f"the {what} is not a valid URL") from None
    if not parsed.host or parsed.userinfo or parsed.query or parsed.fragment:
        raise ValueError(f"the {what} needs a host and no credentials, query or fragment")
    if parsed.scheme == "https" or (parsed.scheme == "http" and (allow_http or is_loopback(parsed.host))):
        return url.rstrip("/")
    raise ValueError(f"the {what} must use https (plain http only on loopback, or with "
                     "unsafe_allow_http=True): tokens must not cross a network in clear")


def positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive number of seconds")
    return float(value)


@dataclass(frozen=True)
class Lifetime:
    """When a token expires and when it should be replaced, on the client's clock.

    Measured from ``expires_in`` when the answer arrived, so the client's clock needs no
    agreement with the server's. The token is renewed ``margin`` seconds before it expires
    (at most half its lifetime ahead).
    """

    expires_at: float
    renew_at: float

    @classmethod
    def of(cls, expires_in: float, received_at: float, margin: float) -> Lifetime:
        return cls(received_at + expires_in, received_at + expires_in - min(margin, expires_in / 2))

    @classmethod
    def expired(cls) -> Lifetime:
        return cls(-math.inf, -math.inf)


def _text(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(c for c in text[:limit] if c.isprintable())


def read_answer(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; every other answer raised as its typed error.

    400/401/403 bodies are RFC 6749 errors: ``invalid_grant`` with jwtwarden's ``reason``
    becomes the matching :class:`RefreshError` (or :class:`InvalidCredentials` for a
    login), the section 5.2 codes their :class:`OAuthError`, ``invalid_request``
    :class:`InvalidRequest`. 429 is :class:`RateLimited`, 5xx :class:`TemporarilyUnavailable`;
    anything else :class:`TokenEndpointError`.
    """
    status = response.status_code
    if status >= 500:
        raise TemporarilyUnavailable(f"the token service answered {status} to {what}")
    if status == 429:
        retry = response.headers.get("retry-after", "")
        raise RateLimited(int(retry) if retry.isdigit() else 1)
    body = _json(response)
    if 200 <= status < 300:
        if body is None:
            raise TokenEndpointError(f"the answer to {what} is not a JSON object", status=status)
        return body
    if status in (400, 401, 403) and body is not None and isinstance(body.get("error"), str):
        raise _oauth_error(body)
    raise TokenEndpointError(f"the token service answered {status} to {what}", status=status)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    if len(response.content) > MAX_ANSWER:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _oauth_error(body: Mapping[str, Any]) -> JWTError:
    error, reason = body["error"], body.get("reason")
    description = _text(body.get("error_description")) or error
    reason = reason if isinstance(reason, str) else None
    if error in ("invalid_dpop_proof", "use_dpop_nonce"):
        return InvalidDPoPProof(description, reason=reason or error)
    if error == "invalid_grant":
        if reason == InvalidCredentials.code:
            return InvalidCredentials(description)
        return _REFRESH_ERRORS.get(reason or "", RefreshError)(description)
    if error in _OAUTH_ERRORS:
        return _OAUTH_ERRORS[error](description, reason=reason)
    if error == "invalid_request":
        return InvalidRequest(description)
    return TokenEndpointError(f"{_text(error, 64)}: {description}")


def transport_error(error: httpx.HTTPError, what: str) -> TemporarilyUnavailable:
    # the exception text may carry the URL; the class name says enough
    return TemporarilyUnavailable(f"the token service could not be reached for {what} "
                                  f"({type(error).__name__})")


def expires_in(body: Mapping[str, Any], what: str) -> float:
    value = body.get("expires_in")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 86_400 * 366:
        raise TokenEndpointError(f"the answer to {what} has no usable expires_in", status=200)
    return float(value)


def string_field(body: Mapping[str, Any], name: str, what: str, *, limit: int = 16_384) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit or not value.isascii() \
            or not value.isprintable() or " " in value:
        raise TokenEndpointError(f"the answer to {what} has no usable {name}", status=200)
    return value


def invalid_token_challenge(response: httpx.Response) -> bool:
    """A 401 whose RFC 6750 challenge says the presented token is invalid (expired, revoked)."""
    if response.status_code != 401:
        return False
    challenge = response.headers.get("www-authenticate", "")
    scheme = challenge.partition(" ")[0].lower()
    return scheme in ("bearer", "dpop") and 'error="invalid_token"' in challenge
