"""A user's session with the token service, as an :class:`httpx.Auth` that keeps itself fresh:
:class:`UserSession` (threads) and :class:`AsyncUserSession` (asyncio).

::

    session = UserSession("https://auth.example.com", store="~/.config/app/refresh-token")
    if not session.logged_in:
        session.login("alice", password)
    with httpx.Client(auth=session) as api:
        api.get("https://api.example.com/orders")

What it does:

- **Logs in** with ``POST /v1/auth/login`` (:meth:`~UserSession.login`), or adopts a pair a
  trusted backend got from ``POST /v1/sessions`` (:meth:`~UserSession.adopt`).
- **Refreshes ahead of expiry**: an access token is replaced ``refresh_margin`` seconds
  (default 60, at most half its lifetime) before it expires, through
  ``POST /v1/auth/refresh``. Expiry is measured from ``expires_in`` on the client's own
  clock, so clock skew between client and service does not matter. If that early refresh
  fails for a passing reason (service unreachable, 503), the still-valid token is used and
  the refresh is tried again 5 s later.
- **Single flight**: however many threads (or tasks, for :class:`AsyncUserSession`) need a
  token at once, one refresh is made and all of them get its result. This matters: the
  service treats a refresh token presented twice as theft and ends the session.
- **A 401 ``invalid_token``** from an API (the token was revoked, or expired in flight) makes
  it refresh once and resend the request once (``retry_on_401``).
- **Typed errors**: a refused refresh raises the service's reason as its
  :class:`~jwtwarden.errors.RefreshError` subclass — :class:`~jwtwarden.errors.RefreshReused`
  (the token was used twice: the service revoked the session), ``RefreshRevoked``,
  ``RefreshExpired``, ``FamilyTooOld``, ``InvalidRefreshToken`` — and forgets the session
  (and its file); a login refused is :class:`~jwtwarden.errors.InvalidCredentials` or
  :class:`~jwtwarden.errors.RateLimited`; the service down is
  :class:`~jwtwarden.errors.TemporarilyUnavailable`; an answer outside the protocol is
  :class:`~jwtwarden.errors.TokenEndpointError`; no session at all is
  :class:`~jwtwarden.errors.NoSession`.
- **Persistence** (optional, ``store=``): the refresh token is written to a
  :class:`~jwtwarden.client.RefreshTokenFile` (0600, replaced atomically and fsynced) on
  every rotation, *after* the session in memory has moved on; the access token stays in
  memory only. See :class:`~jwtwarden.client.RefreshTokenFile` for what a crash between a
  rotation and the write means. A failed write raises (``OSError``); the session in memory
  is already current.

Tokens never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from jwtwarden.client._common import (
    DEFAULT_REFRESH_MARGIN,
    DEFAULT_TIMEOUT,
    RETRY_PAUSE,
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
from jwtwarden.client.store import RefreshTokenFile
from jwtwarden.errors import (
    NoSession,
    RefreshError,
    TemporarilyUnavailable,
    TokenEndpointError,
)

__all__ = ["AsyncUserSession", "UserSession"]

log = logging.getLogger("jwtwarden.client")

_LOGIN = "/v1/auth/login"
_REFRESH = "/v1/auth/refresh"
_LOGOUT = "/v1/auth/logout"


@dataclass(frozen=True)
class _Tokens:
    access: str | None  # None: only a refresh token is known (loaded from the store)
    refresh: str
    lifetime: Lifetime
    bound: bool = False  # a DPoP-bound access token (token_type DPoP): presented with proofs


class _SessionCore:
    """State, answers and the store; the two subclasses add the I/O."""

    requires_request_body = True  # a request may be sent again after a 401

    def __init__(
        self,
        base_url: str,
        *,
        store: RefreshTokenFile | str | os.PathLike[str] | None,
        refresh_margin: float,
        retry_on_401: bool,
        timeout: float,
        clock: Clock,
        unsafe_allow_http: bool,
        dpop: bool | DPoPSigner = False,
    ) -> None:
        self._base = check_base_url(base_url, "token service URL", allow_http=unsafe_allow_http)
        self._dpop: DPoPSigner | None = (dpop if isinstance(dpop, DPoPSigner)
                                         else DPoPSigner() if dpop else None)
        if store is not None and not isinstance(store, RefreshTokenFile):
            store = RefreshTokenFile(store)
        self._store: RefreshTokenFile | None = store
        self._margin = positive(refresh_margin, "refresh_margin")
        self._timeout = positive(timeout, "timeout")
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds")
        self._clock = clock
        self._retry_on_401 = bool(retry_on_401)
        self._tokens: _Tokens | None = None
        self._retry_after = -float("inf")
        if store is not None:
            saved = store.load()
            if saved is not None:
                self._tokens = _Tokens(None, saved, Lifetime.expired())

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def store(self) -> RefreshTokenFile | None:
        return self._store

    @property
    def logged_in(self) -> bool:
        """Whether a refresh token is held (the service may still refuse it)."""
        return self._tokens is not None

    def __repr__(self) -> str:
        state = "logged in" if self._tokens is not None else "no session"
        return f"{type(self).__name__}({self._base!r}, {state})"

    # ---- decisions shared by both flavours ------------------------------------------------

    def _fresh(self) -> str | None:
        """The current access token when no refresh is due (the lock-free fast path)."""
        tokens = self._tokens
        if tokens is not None and tokens.access is not None and self._clock() < tokens.lifetime.renew_at:
            return tokens.access
        return None

    def _usable_while_down(self) -> str | None:
        """After a failed early refresh: the current token while it is still valid."""
        tokens = self._tokens
        now = self._clock()
        if tokens is not None and tokens.access is not None and now < tokens.lifetime.expires_at - 1:
            return tokens.access
        return None

    def _required(self) -> _Tokens:
        if self._tokens is None:
            raise NoSession("no session: log in (or adopt a pair) first")
        return self._tokens

    def _accept(self, body: Mapping[str, Any], received_at: float, what: str) -> tuple[_Tokens, bool]:
        """The new tokens of an answer, and whether the refresh token changed."""
        access = string_field(body, "access_token", what)
        lifetime = Lifetime.of(expires_in(body, what), received_at, self._margin)
        if "refresh_token" not in body:
            raise TokenEndpointError(
                f"the answer to {what} has no refresh_token (is the service in cookie mode? "
                "this client needs the token in the body)", status=200)
        refresh = string_field(body, "refresh_token", what, limit=1024)
        old = self._tokens
        bound = self._dpop is not None and str(body.get("token_type", "")).lower() == "dpop"
        tokens = _Tokens(access, refresh, lifetime, bound)
        self._tokens = tokens
        return tokens, old is None or old.refresh != refresh

    def _forget(self) -> None:
        self._tokens = None
        if self._store is not None:
            self._store.clear()

    def _refused(self, error: RefreshError) -> None:
        log.warning("session ended by the token service: %s", error.code)
        self._forget()

    def _backoff(self) -> None:
        self._retry_after = self._clock() + RETRY_PAUSE

    def _token_headers(self, url: str) -> dict[str, str]:
        """A token request's DPoP proof (login, refresh): the session is bound to its key."""
        return {"DPoP": self._dpop.proof("POST", url)} if self._dpop is not None else {}

    def _present(self, request: httpx.Request, token: str) -> None:
        tokens = self._tokens
        if self._dpop is not None and tokens is not None and tokens.bound:
            self._dpop.authorize(request, token)
        else:
            request.headers["Authorization"] = f"Bearer {token}"

    def _logout_headers(self, tokens: _Tokens) -> dict[str, str]:
        if tokens.access is None or self._clock() >= tokens.lifetime.expires_at:
            return {}
        if self._dpop is not None and tokens.bound:
            return {"authorization": f"DPoP {tokens.access}",
                    "dpop": self._dpop.proof("POST", self._base + _LOGOUT, tokens.access)}
        return {"authorization": f"Bearer {tokens.access}"}


class UserSession(_SessionCore, httpx.Auth):
    """A user's session for threaded code: an :class:`httpx.Auth` for :class:`httpx.Client`.

    ``dpop=True`` (or a :class:`~jwtwarden.client.dpop.DPoPSigner`): every token request
    carries a DPoP proof of a key kept in this process's memory only (RFC 9449), so the
    session and its access tokens are bound to it; requests present the token as ``DPoP``
    with a fresh proof each (a retry too), following the servers' nonces. A stolen access or
    refresh token is useless without the key; a session kept in ``store`` does not survive a
    restart of the program (the key is gone with it: log in again).

    ``base_url`` is the token service (https; http only on loopback unless
    ``unsafe_allow_http=True``). ``store``: a path or :class:`RefreshTokenFile` that keeps the
    refresh token across restarts (read at construction). ``client``: an :class:`httpx.Client`
    for the token service (proxies, CA bundle); it is used, never closed. ``clock``: seconds
    (default :func:`time.monotonic`), for tests. See the module docstring for the behaviour.
    """

    def __init__(
        self,
        base_url: str,
        *,
        store: RefreshTokenFile | str | os.PathLike[str] | None = None,
        client: httpx.Client | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        retry_on_401: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
        unsafe_allow_http: bool = False,
        dpop: bool | DPoPSigner = False,
    ) -> None:
        super().__init__(base_url, store=store, refresh_margin=refresh_margin,
                         retry_on_401=retry_on_401, timeout=timeout, clock=clock,
                         unsafe_allow_http=unsafe_allow_http, dpop=dpop)
        self._client = client
        self._owned = client is None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, follow_redirects=False)
        return self._client

    def _post(self, path: str, what: str, **kwargs: Any) -> tuple[dict[str, Any], float]:
        url = self._base + path
        try:
            response = self._http().post(url, timeout=self._timeout,
                                         headers=self._token_headers(url), **kwargs)
            if self._dpop is not None and self._dpop.needs_nonce(url, response):
                response = self._http().post(url, timeout=self._timeout,
                                             headers=self._token_headers(url), **kwargs)
        except httpx.HTTPError as error:
            raise transport_error(error, what) from None
        return read_answer(response, what), self._clock()

    # ---- starting and ending --------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        """Log in (``POST /v1/auth/login``); raises InvalidCredentials, RateLimited..."""
        with self._lock:
            body, now = self._post(_LOGIN, "login", json={"username": username, "password": password})
            tokens, _ = self._accept(body, now, "login")
            self._retry_after = -float("inf")
            if self._store is not None:
                self._store.save(tokens.refresh)

    def adopt(self, pair: Mapping[str, Any]) -> None:
        """Take over a pair (``access_token``, ``refresh_token``, ``expires_in``), e.g. the
        answer of ``POST /v1/sessions`` that a trusted backend handed to this program."""
        with self._lock:
            tokens, _ = self._accept(pair, self._clock(), "adopt")
            self._retry_after = -float("inf")
            if self._store is not None:
                self._store.save(tokens.refresh)

    def logout(self) -> None:
        """End the session at the service (``POST /v1/auth/logout``) and forget it here,
        file included — here even when the service cannot be reached (which then raises)."""
        with self._lock:
            tokens = self._tokens
            if tokens is None:
                return
            try:
                self._logout(tokens)
            finally:
                self._forget()

    def _logout(self, tokens: _Tokens) -> None:
        headers = self._logout_headers(tokens)
        try:
            response = self._http().post(self._base + _LOGOUT, json={"refresh_token": tokens.refresh},
                                         headers=headers, timeout=self._timeout)
            if response.status_code == 401 and headers:  # the access token died meanwhile
                response = self._http().post(self._base + _LOGOUT, json={"refresh_token": tokens.refresh},
                                             timeout=self._timeout)
        except httpx.HTTPError as error:
            raise transport_error(error, "logout") from None
        if response.status_code != 204:
            read_answer(response, "logout")

    def close(self) -> None:
        """Close the HTTP client this session made (not one it was given)."""
        if self._owned and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> UserSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- tokens ---------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token, refreshed first when due (one refresh for all threads)."""
        token = self._fresh()
        if token is not None:
            return token
        with self._lock:
            token = self._fresh()  # another thread may have refreshed while we waited
            if token is not None:
                return token
            if self._clock() < self._retry_after and (token := self._usable_while_down()):
                return token
            return self._refresh_locked(early=True)

    def refresh(self) -> None:
        """Rotate now, whatever the access token's age."""
        with self._lock:
            self._refresh_locked(early=False)

    def _refresh_locked(self, *, early: bool, unless_changed_from: str | None = None) -> str:
        tokens = self._required()
        if unless_changed_from is not None and tokens.access not in (None, unless_changed_from):
            return tokens.access  # another thread has already replaced it
        try:
            body, now = self._post(_REFRESH, "refresh", json={"refresh_token": tokens.refresh})
        except RefreshError as error:
            self._refused(error)
            raise
        except TemporarilyUnavailable:
            self._backoff()
            if early and (token := self._usable_while_down()):
                log.warning("early refresh failed; using the current access token until it expires")
                return token
            raise
        new, rotated = self._accept(body, now, "refresh")
        if rotated and self._store is not None:
            self._store.save(new.refresh)  # memory has moved on already: a failed write raises
        assert new.access is not None  # noqa: S101 - _accept always sets it
        return new.access

    # ---- httpx.Auth -------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.access_token()
        self._present(request, token)
        response = yield request
        if self._dpop is not None and self._dpop.needs_nonce(request.url, response):
            self._present(request, token)  # a new proof, with the server's nonce
            response = yield request
        if self._retry_on_401 and invalid_token_challenge(response):
            with self._lock:
                token = self._refresh_locked(early=False, unless_changed_from=token)
            self._present(request, token)
            yield request

    def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise TypeError("UserSession blocks; use AsyncUserSession with httpx.AsyncClient")


class AsyncUserSession(_SessionCore, httpx.Auth):
    """:class:`UserSession` for asyncio: an :class:`httpx.Auth` for :class:`httpx.AsyncClient`.

    The same options (``client`` is an :class:`httpx.AsyncClient`), the same behaviour; the
    methods are coroutines and the single flight is across tasks. File writes run in a
    worker thread, so the event loop never waits for ``fsync``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        store: RefreshTokenFile | str | os.PathLike[str] | None = None,
        client: httpx.AsyncClient | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        retry_on_401: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
        unsafe_allow_http: bool = False,
        dpop: bool | DPoPSigner = False,
    ) -> None:
        super().__init__(base_url, store=store, refresh_margin=refresh_margin,
                         retry_on_401=retry_on_401, timeout=timeout, clock=clock,
                         unsafe_allow_http=unsafe_allow_http, dpop=dpop)
        self._client = client
        self._owned = client is None
        self._lock = asyncio.Lock()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._client

    async def _post(self, path: str, what: str, **kwargs: Any) -> tuple[dict[str, Any], float]:
        url = self._base + path
        try:
            response = await self._http().post(url, timeout=self._timeout,
                                               headers=self._token_headers(url), **kwargs)
            if self._dpop is not None and self._dpop.needs_nonce(url, response):
                response = await self._http().post(url, timeout=self._timeout,
                                                   headers=self._token_headers(url), **kwargs)
        except httpx.HTTPError as error:
            raise transport_error(error, what) from None
        return read_answer(response, what), self._clock()

    async def _save(self, token: str) -> None:
        if self._store is not None:
            await asyncio.to_thread(self._store.save, token)

    async def _forget_async(self) -> None:
        self._tokens = None
        if self._store is not None:
            await asyncio.to_thread(self._store.clear)

    # ---- starting and ending --------------------------------------------------------------

    async def login(self, username: str, password: str) -> None:
        """Log in (``POST /v1/auth/login``); raises InvalidCredentials, RateLimited..."""
        async with self._lock:
            body, now = await self._post(_LOGIN, "login", json={"username": username, "password": password})
            tokens, _ = self._accept(body, now, "login")
            self._retry_after = -float("inf")
            await self._save(tokens.refresh)

    async def adopt(self, pair: Mapping[str, Any]) -> None:
        """Take over a pair from ``POST /v1/sessions`` (see :meth:`UserSession.adopt`)."""
        async with self._lock:
            tokens, _ = self._accept(pair, self._clock(), "adopt")
            self._retry_after = -float("inf")
            await self._save(tokens.refresh)

    async def logout(self) -> None:
        """End the session at the service and forget it here (see :meth:`UserSession.logout`)."""
        async with self._lock:
            tokens = self._tokens
            if tokens is None:
                return
            try:
                await self._logout(tokens)
            finally:
                await self._forget_async()

    async def _logout(self, tokens: _Tokens) -> None:
        headers = self._logout_headers(tokens)
        try:
            response = await self._http().post(self._base + _LOGOUT, json={"refresh_token": tokens.refresh},
                                               headers=headers, timeout=self._timeout)
            if response.status_code == 401 and headers:
                response = await self._http().post(self._base + _LOGOUT,
                                                   json={"refresh_token": tokens.refresh},
                                                   timeout=self._timeout)
        except httpx.HTTPError as error:
            raise transport_error(error, "logout") from None
        if response.status_code != 204:
            read_answer(response, "logout")

    async def aclose(self) -> None:
        """Close the HTTP client this session made (not one it was given)."""
        if self._owned and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> AsyncUserSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- tokens ---------------------------------------------------------------------------

    async def access_token(self) -> str:
        """A valid access token, refreshed first when due (one refresh for all tasks)."""
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()
            if token is not None:
                return token
            if self._clock() < self._retry_after and (token := self._usable_while_down()):
                return token
            return await self._refresh_locked(early=True)

    async def refresh(self) -> None:
        """Rotate now, whatever the access token's age."""
        async with self._lock:
            await self._refresh_locked(early=False)

    async def _refresh_locked(self, *, early: bool, unless_changed_from: str | None = None) -> str:
        tokens = self._required()
        if unless_changed_from is not None and tokens.access not in (None, unless_changed_from):
            return tokens.access  # another task has already replaced it
        try:
            body, now = await self._post(_REFRESH, "refresh", json={"refresh_token": tokens.refresh})
        except RefreshError as error:
            log.warning("session ended by the token service: %s", error.code)
            await self._forget_async()
            raise
        except TemporarilyUnavailable:
            self._backoff()
            if early and (token := self._usable_while_down()):
                log.warning("early refresh failed; using the current access token until it expires")
                return token
            raise
        new, rotated = self._accept(body, now, "refresh")
        if rotated:
            await self._save(new.refresh)
        assert new.access is not None  # noqa: S101 - _accept always sets it
        return new.access

    # ---- httpx.Auth -------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("AsyncUserSession needs httpx.AsyncClient; use UserSession with httpx.Client")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        self._present(request, token)
        response = yield request
        if self._dpop is not None and self._dpop.needs_nonce(request.url, response):
            self._present(request, token)  # a new proof, with the server's nonce
            response = yield request
        if self._retry_on_401 and invalid_token_challenge(response):
            async with self._lock:
                token = await self._refresh_locked(early=False, unless_changed_from=token)
            self._present(request, token)
            yield request
