"""Service-to-service calls: :class:`ClientCredentials`, an :class:`httpx.Auth` that gets its
own access token with the OAuth 2.0 client_credentials grant (RFC 6749 section 4.4).

::

    auth = ClientCredentials("https://auth.example.com/v1/auth/token", "jwc_...",
                             private_key=Key.from_pem(pem, "ES256"), scope="orders:read")
    with httpx.Client(auth=auth) as api:
        api.get("https://orders.example.com/v1/orders")

- **Client authentication**: ``client_secret=`` sends HTTP Basic (``client_secret_basic``);
  ``private_key=`` (a private :class:`~jwtwarden.Key`) signs a fresh RFC 7523 assertion
  for every token request (``private_key_jwt``: ``iss`` = ``sub`` = the client id, ``aud``
  = the token endpoint, a random ``jti``, valid ``assertion_lifetime`` seconds, default 60)
  — then no shared secret exists anywhere.
- **Caching**: the token is reused until ``refresh_margin`` seconds (default 60, at most
  half its lifetime) before it expires, measured from ``expires_in`` on this process's
  clock; one request for all threads (and one for all tasks) that need it at once.
- **A 401 ``invalid_token``** from an API drops the token, gets a new one and resends the
  request once.
- **Errors**: :class:`~jwtwarden.errors.InvalidClient` (wrong secret or key, or a refused
  assertion: ``reason`` says why), :class:`~jwtwarden.errors.UnauthorizedClient` (not
  registered for the grant), :class:`~jwtwarden.errors.InvalidScope`,
  :class:`~jwtwarden.errors.TemporarilyUnavailable`,
  :class:`~jwtwarden.errors.TokenEndpointError`.

The same object serves :class:`httpx.Client` and :class:`httpx.AsyncClient`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import Any

import httpx

from jwtwarden.client._common import (
    DEFAULT_REFRESH_MARGIN,
    DEFAULT_TIMEOUT,
    Clock,
    Lifetime,
    check_base_url,
    expires_in,
    invalid_token_challenge,
    positive,
    read_answer,
    string_field,
    transport_error,
)
from jwtwarden.client.dpop import DPoPSigner
from jwtwarden.errors import TokenEndpointError
from jwtwarden.issue import Issuer
from jwtwarden.keys import HMACKey, Key
from jwtwarden.policy import system_clock

__all__ = ["ASSERTION_TYPE", "ClientCredentials"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300  # what jwtwarden's token endpoint accepts


@dataclass(frozen=True)
class _Token:
    access: str
    lifetime: Lifetime
    scope: str | None
    bound: bool = False  # DPoP-bound: presented with a proof


def _post_once(send: Any, url: str, form: dict[str, str], basic: Any, dpop: DPoPSigner | None,
               timeout: float) -> Any:
    headers = {"DPoP": dpop.proof("POST", url)} if dpop is not None else {}
    return send(url, data=form, auth=basic or httpx.USE_CLIENT_DEFAULT, headers=headers,
                timeout=timeout)


class ClientCredentials(httpx.Auth):
    """Access tokens for this client itself, from ``token_url`` (see the module docstring).

    ``token_url``: the token endpoint (``{issuer}/v1/auth/token`` on jwtwarden; https, http
    only on loopback unless ``unsafe_allow_http=True``). Exactly one of ``client_secret``
    and ``private_key``. ``scope``: what to ask for (default: everything the client may
    have). ``client`` / ``async_client``: httpx clients for the token endpoint (used, never
    closed). ``clock`` (monotonic seconds) and ``wall_clock`` (Unix time, for the assertion's
    ``iat``/``exp``) are for tests. ``dpop=True`` (or a
    :class:`~jwtwarden.client.dpop.DPoPSigner`): the tokens are bound to a key kept in memory
    (RFC 9449), each request carrying a fresh proof of it.
    """

    requires_request_body = True  # a request may be sent again after a 401

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        private_key: Key | None = None,
        scope: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        assertion_lifetime: int = 60,
        retry_on_401: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = system_clock,
        unsafe_allow_http: bool = False,
        dpop: bool | DPoPSigner = False,
    ) -> None:
        self._dpop: DPoPSigner | None = (dpop if isinstance(dpop, DPoPSigner)
                                         else DPoPSigner(clock=wall_clock) if dpop else None)
        self._url = check_base_url(token_url, "token endpoint URL", allow_http=unsafe_allow_http)
        if not isinstance(client_id, str) or not client_id or not client_id.isprintable() or ":" in client_id:
            raise ValueError("client_id must be a printable string without ':'")
        if (client_secret is None) == (private_key is None):
            raise ValueError("give exactly one of client_secret and private_key")
        if private_key is not None and (not isinstance(private_key, Key) or isinstance(private_key, HMACKey)
                                        or not private_key.is_private):
            raise ValueError("private_key must be a private asymmetric Key (RS*, PS*, ES*, EdDSA)")
        if type(assertion_lifetime) is not int or not 1 <= assertion_lifetime <= MAX_ASSERTION_LIFETIME:
            raise ValueError(f"assertion_lifetime must be 1-{MAX_ASSERTION_LIFETIME} seconds")
        self._client_id = client_id
        self._secret = client_secret
        self._signer = None if private_key is None else Issuer(
            private_key, issuer=client_id, audience=self._url, lifetime=assertion_lifetime,
            typ="JWT", clock=wall_clock)
        self._scope = scope
        self._margin = positive(refresh_margin, "refresh_margin")
        self._timeout = positive(timeout, "timeout")
        self._retry_on_401 = bool(retry_on_401)
        self._client = client
        self._async_client = async_client
        self._clock = clock
        self._token: _Token | None = None
        self._lock = threading.Lock()
        self._alock: asyncio.Lock | None = None

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def token_url(self) -> str:
        return self._url

    @property
    def auth_method(self) -> str:
        return "client_secret_basic" if self._signer is None else "private_key_jwt"

    def __repr__(self) -> str:
        return f"ClientCredentials({self._url!r}, {self._client_id!r}, {self.auth_method})"

    # ---- the token request ----------------------------------------------------------------

    def _request(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        form = {"grant_type": "client_credentials"}
        if self._scope is not None:
            form["scope"] = self._scope
        if self._signer is not None:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._signer.issue(self._client_id)
            return form, None
        assert self._secret is not None  # noqa: S101 - one of the two is set
        return form, (self._client_id, self._secret)

    def _accept(self, response: httpx.Response) -> _Token:
        body = read_answer(response, "client_credentials")
        kind = str(body.get("token_type", "")).lower()
        if kind != "bearer" and not (kind == "dpop" and self._dpop is not None):
            raise TokenEndpointError("the token endpoint issued a token of another type than "
                                     "asked for", status=response.status_code)
        scope = body.get("scope")
        token = _Token(string_field(body, "access_token", "client_credentials"),
                       Lifetime.of(expires_in(body, "client_credentials"), self._clock(), self._margin),
                       scope if isinstance(scope, str) else None, kind == "dpop")
        self._token = token
        return token

    def _fresh(self) -> str | None:
        token = self._token
        return token.access if token is not None and self._clock() < token.lifetime.renew_at else None

    def _present(self, request: httpx.Request, token: str) -> None:
        current = self._token
        if self._dpop is not None and current is not None and current.bound:
            self._dpop.authorize(request, token)
        else:
            request.headers["Authorization"] = f"Bearer {token}"

    def invalidate(self) -> None:
        """Forget the cached token: the next request gets a new one."""
        self._token = None

    # ---- sync -------------------------------------------------------------------------------

    def token(self) -> str:
        """A valid access token (from the cache, or one request for all threads)."""
        if (cached := self._fresh()) is not None:
            return cached
        with self._lock:
            if (cached := self._fresh()) is not None:
                return cached
            return self._fetch().access

    def _fetch(self) -> _Token:
        form, basic = self._request()
        client = self._client or httpx.Client(timeout=self._timeout, follow_redirects=False)
        try:
            response = _post_once(client.post, self._url, form, basic, self._dpop, self._timeout)
            if self._dpop is not None and self._dpop.needs_nonce(self._url, response):
                form, basic = self._request()  # a new assertion too: each is single-use
                response = _post_once(client.post, self._url, form, basic, self._dpop, self._timeout)
        except httpx.HTTPError as error:
            raise transport_error(error, "client_credentials") from None
        finally:
            if client is not self._client:
                client.close()
        return self._accept(response)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        self._present(request, token)
        response = yield request
        if self._dpop is not None and self._dpop.needs_nonce(request.url, response):
            self._present(request, token)
            response = yield request
        if self._retry_on_401 and invalid_token_challenge(response):
            with self._lock:
                current = self._token
                if current is None or current.access == token:
                    current = self._fetch()
            self._present(request, current.access)
            yield request

    # ---- async ------------------------------------------------------------------------------

    async def atoken(self) -> str:
        """A valid access token (from the cache, or one request for all tasks)."""
        if (cached := self._fresh()) is not None:
            return cached
        async with self._async_lock():
            if (cached := self._fresh()) is not None:
                return cached
            return (await self._afetch()).access

    def _async_lock(self) -> asyncio.Lock:
        if self._alock is None:
            self._alock = asyncio.Lock()
        return self._alock

    async def _afetch(self) -> _Token:
        form, basic = self._request()
        client = self._async_client or httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        try:
            response = await _post_once(client.post, self._url, form, basic, self._dpop, self._timeout)
            if self._dpop is not None and self._dpop.needs_nonce(self._url, response):
                form, basic = self._request()
                response = await _post_once(client.post, self._url, form, basic, self._dpop,
                                            self._timeout)
        except httpx.HTTPError as error:
            raise transport_error(error, "client_credentials") from None
        finally:
            if client is not self._async_client:
                await client.aclose()
        return self._accept(response)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.atoken()
        self._present(request, token)
        response = yield request
        if self._dpop is not None and self._dpop.needs_nonce(request.url, response):
            self._present(request, token)
            response = yield request
        if self._retry_on_401 and invalid_token_challenge(response):
            async with self._async_lock():
                current = self._token
                if current is None or current.access == token:
                    current = await self._afetch()
            self._present(request, current.access)
            yield request
