"""The token service's HTTP API (FastAPI): ``create_app(settings)``.

Errors follow RFC 6749 section 5.2 (``{"error", "error_description"}``, plus jwtwarden's
``reason`` code) and RFC 6750 section 3 (``WWW-Authenticate: Bearer ...``) for bearer-token
endpoints. No input produces a 500: malformed bodies are 400 ``invalid_request``, an
unreachable database or deny list is 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from argon2 import PasswordHasher
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jwtwarden import __version__
from jwtwarden.audit.debugger import mount_debugger
from jwtwarden.errors import (
    InvalidCredentials,
    JWTError,
    NotTokenOwner,
    RateLimited,
    RefreshError,
    SensitiveClaim,
    TemporarilyUnavailable,
)
from jwtwarden.policy import Claims, Clock, system_clock
from jwtwarden.service import cookies
from jwtwarden.service.config import Settings
from jwtwarden.service.ratelimit import FailureLimiter
from jwtwarden.service.sessions.accounts import Accounts
from jwtwarden.service.sessions.denylist import FEED_MAX_WAIT, DenyList
from jwtwarden.service.sessions.kek import KEK, load_kek
from jwtwarden.service.sessions.keyring import KeyRing
from jwtwarden.service.sessions.service import SessionService, TokenPair
from jwtwarden.service.storage.db import Database, database_url
from jwtwarden.service.storage.migrations import migrate

__all__ = ["ServiceState", "build_state", "create_app"]

log = logging.getLogger("jwtwarden.service")
REALM = "jwtwarden"
RETRY_AFTER = "5"


# ---- state ----------------------------------------------------------------------------------


@dataclass
class ServiceState:
    settings: Settings
    db: Database
    kek: KEK
    keyring: KeyRing
    denylist: DenyList
    accounts: Accounts
    sessions: SessionService
    clock: Clock
    csrf_key: bytes
    account_limiter: FailureLimiter
    address_limiter: FailureLimiter

    async def close(self) -> None:
        if self.denylist.redis is not None:
            await self.denylist.redis.stop()
        await self.db.dispose()


async def build_state(
    settings: Settings, *, clock: Clock = system_clock, hasher: PasswordHasher | None = None
) -> ServiceState:
    """Open the database (creating the data directory), migrate, load keys and the deny list."""
    if settings.sqlite_default:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(
        database_url(settings.database_url, settings.data_dir),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )
    try:
        await migrate(db)
        kek = load_kek(settings.kek, settings.data_dir)
        keyring = KeyRing(db, kek, settings, clock=clock)
        await keyring.check_kek()
        await keyring.ensure_signing_key()
        denylist = DenyList(db, clock=clock, fail_open=settings.revocation_fail_open,
                            redis_url=settings.redis_url)
        denylist.on_key_revoked = keyring.load
        await denylist.load()
        if denylist.redis is not None:
            await denylist.redis.start()
    except BaseException:
        await db.dispose()  # no connection outlives a failed start
        raise
    accounts = Accounts(db, hasher=hasher, clock=clock)
    sessions = SessionService(
        db, settings, keyring, denylist, accounts,
        successor_key=kek.derive("jwtwarden refresh successor v1"), clock=clock,
    )
    return ServiceState(
        settings=settings, db=db, kek=kek, keyring=keyring, denylist=denylist,
        accounts=accounts, sessions=sessions, clock=clock,
        csrf_key=kek.derive("jwtwarden csrf v1"),
        account_limiter=FailureLimiter(settings.login_max_failures, settings.login_window, clock=clock),
        address_limiter=FailureLimiter(
            settings.login_max_failures_per_address, settings.login_window, clock=clock),
    )


async def _every(seconds: float, job: Callable[[], Awaitable[Any]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except TemporarilyUnavailable:
            log.warning("%s: database unavailable, will retry", name)
        except Exception:  # a background job must never die
            log.exception("%s failed", name)


# ---- request and response models ---------------------------------------------------------------


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(default=None, max_length=256)


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, max_length=255)
    scope: str = Field(default="", max_length=1024)
    claims: dict[str, Any] = Field(default_factory=dict)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 scheme name
    expires_in: int
    refresh_token: str | None = None
    refresh_expires_in: int
    scope: str | None = None
    csrf_token: str | None = None


class OAuthError(BaseModel):
    error: str
    error_description: str
    reason: str | None = None


_ANSWERS = {
    400: "RFC 6749 error (`invalid_request`, `invalid_grant`, ...); `reason` names the cause",
    401: "RFC 6750 bearer or RFC 6749 client authentication failed; see `WWW-Authenticate`",
    403: "cookie mode: the Origin or CSRF check failed",
    413: "request body too large",
    429: "too many failed logins; see `Retry-After`",
    503: "database or deny list unavailable; see `Retry-After`",
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` for the error answers an operation can give."""
    return {code: {"model": OAuthError, "description": _ANSWERS[code]} for code in codes}


# ---- error answers ------------------------------------------------------------------------------


def oauth_error(status: int, error: str, description: str, *, reason: str | None = None,
                headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "error_description": description}
    if reason:
        body["reason"] = reason
    hdrs = {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})}
    return JSONResponse(body, status_code=status, headers=hdrs)


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")


def bearer_error(error: JWTError | None) -> JSONResponse:
    """RFC 6750 section 3: no token → a bare challenge; a bad one → invalid_token."""
    if error is None:
        return oauth_error(401, "invalid_request", "a bearer token is required",
                           headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
    if isinstance(error, TemporarilyUnavailable):
        return unavailable(error)
    description = _quoted(error.message)
    challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
    return oauth_error(401, "invalid_token", error.message, reason=error.code,
                       headers={"WWW-Authenticate": challenge})


def unavailable(error: JWTError) -> JSONResponse:
    return oauth_error(503, "temporarily_unavailable", error.message, reason=error.code,
                       headers={"Retry-After": RETRY_AFTER})


def client_error() -> JSONResponse:
    return oauth_error(401, "invalid_client", "client authentication failed",
                       headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before they are read whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                response = oauth_error(413, "invalid_request", "request body too large")
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # an HTTPException passes through FastAPI's body parsing untouched
                    raise StarletteHTTPException(413, "request body too large")
            return message

        await self.app(scope, limited, send)


# ---- the app ------------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    hasher: PasswordHasher | None = None,
    background: bool = True,
) -> FastAPI:
    """The token service as an ASGI app. State is built in the lifespan (startup)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await build_state(settings, clock=clock, hasher=hasher)
        app.state.jwtwarden = state
        tasks: list[asyncio.Task[None]] = []
        if background:
            state.denylist.watch(max_staleness=10.0)
            tasks.append(asyncio.create_task(_every(1.0, state.denylist.poll, "deny-list poll")))

            async def keys_job() -> None:
                await state.keyring.load()
                await state.keyring.rotate_if_due()

            tasks.append(asyncio.create_task(_every(5.0, keys_job, "key reload")))
            if settings.gc_interval:
                tasks.append(asyncio.create_task(
                    _every(settings.gc_interval, state.sessions.gc, "garbage collection")))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await state.close()

    app = FastAPI(
        title="jwtwarden token service",
        version=__version__,
        description="Short-lived access JWTs, rotating refresh tokens with reuse detection, "
        "revocation and a JWKS. Errors follow RFC 6749/6750.",
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    _routes(app, settings)
    _document_errors_as_answered(app)
    mount_debugger(app)  # GET /debugger: the token never leaves the browser (strict CSP)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _state(request: Request) -> ServiceState:
    return request.app.state.jwtwarden  # type: ignore[no-any-return]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        what = first.get("msg", "invalid")
        return oauth_error(400, "invalid_request", f"{where}: {what}" if where else what)

    @app.exception_handler(TemporarilyUnavailable)
    async def down(_request: Request, exc: TemporarilyUnavailable) -> JSONResponse:
        return unavailable(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        # keeps Starlette's headers: a 405 must say what is Allowed (RFC 9110 section 15.5.6)
        return oauth_error(exc.status_code, error, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def bug(_request: Request, exc: Exception) -> JSONResponse:  # never a traceback out
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return oauth_error(500, "server_error", "internal error")


def _document_errors_as_answered(app: FastAPI) -> None:
    """FastAPI documents a 422 for every operation with parameters; this service answers
    invalid input with an RFC 6749 400 instead, so the 422 and its schemas are dropped."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI; the edits below are idempotent
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---- request helpers ----------------------------------------------------------------------------


def _client_address(request: Request, settings: Settings) -> str:
    if settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return request.client.host if request.client else "unknown"


def _bearer(request: Request, settings: Settings) -> tuple[str | None, bool]:
    """(token, from_cookie). A malformed Authorization header is a refused request."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or " " in token.strip():
            raise _Refused(bearer_error(JWTError("the Authorization header is not 'Bearer <token>'")))
        return token.strip(), False
    if settings.access_cookie:
        cookie = request.cookies.get(cookies.ACCESS_COOKIE)
        if cookie:
            return cookie, True
    return None, False


async def _authenticate_bearer(request: Request, state: ServiceState) -> tuple[Claims, bool]:
    token, from_cookie = _bearer(request, state.settings)
    if token is None:
        raise _Refused(bearer_error(None))
    try:
        return await state.sessions.verify_access(token), from_cookie
    except JWTError as error:
        raise _Refused(bearer_error(error)) from None


def _client_credentials(request: Request) -> tuple[str, str] | None:
    """RFC 6749 section 2.3.1 HTTP Basic client authentication."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep and client_id else None


async def _authenticate_client(request: Request, state: ServiceState, permission: str) -> str:
    credentials = _client_credentials(request)
    if credentials is None:
        raise _Refused(client_error())
    try:
        client = await state.accounts.authenticate_client(*credentials, permission)
    except InvalidCredentials:
        raise _Refused(client_error()) from None
    return client.id


async def _authenticate_any_client(request: Request, state: ServiceState) -> str:
    """RFC 7009: any registered client may authenticate to revoke its own tokens."""
    try:
        return await _authenticate_client(request, state, "sessions")
    except _Refused:
        return await _authenticate_client(request, state, "introspect")


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body with each parameter at most once (RFC 6749 3.2)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise _Refused(oauth_error(400, "invalid_request", "expected application/x-www-form-urlencoded"))
    try:
        parsed = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise _Refused(oauth_error(400, "invalid_request", "malformed form body")) from None
    if any(len(v) != 1 for v in parsed.values()):
        raise _Refused(oauth_error(400, "invalid_request", "a parameter was repeated"))
    return {k: v[0] for k, v in parsed.items()}


def _cookie_request_checks(request: Request, state: ServiceState, family_id: str | None) -> None:
    try:
        cookies.check_origin(request, state.settings.origins)
        cookies.check_csrf(request, state.csrf_key, family_id)
    except cookies.CsrfError as error:
        raise _Refused(oauth_error(403, "access_denied", str(error), reason="csrf")) from None


def _refused(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Let helpers end a request early by raising _Refused with a ready response."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(*args, **kwargs)
        except _Refused as refused:
            return refused.response

    return wrapper


# ---- routes -------------------------------------------------------------------------------------


def _routes(app: FastAPI, settings: Settings) -> None:
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def pair_response(state: ServiceState, pair: TokenPair, status: int = 200,
                      *, cookie_mode: bool | None = None) -> JSONResponse:
        use_cookies = state.settings.cookie_mode if cookie_mode is None else cookie_mode
        body: dict[str, Any] = {
            "access_token": pair.access_token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            "refresh_expires_in": pair.refresh_expires_in,
        }
        if pair.scope:
            body["scope"] = pair.scope
        if not use_cookies:
            body["refresh_token"] = pair.refresh_token
            return JSONResponse(body, status_code=status, headers=no_store)
        csrf = cookies.make_csrf_token(state.csrf_key, pair.family_id)
        body["csrf_token"] = csrf
        response = JSONResponse(body, status_code=status, headers=no_store)
        cookies.set_session_cookies(
            response, refresh_token=pair.refresh_token, refresh_max_age=pair.refresh_expires_in,
            csrf_token=csrf,
            access_token=pair.access_token if state.settings.access_cookie else None,
            access_max_age=pair.expires_in,
        )
        return response

    @app.post("/v1/auth/login", response_model=TokenResponse, responses=answers(400, 403, 413, 429, 503),
              tags=["sessions"], summary="Log in with a username and password")
    @_refused
    async def login(request: Request, body: LoginRequest) -> Response:
        state = _state(request)
        if state.settings.cookie_mode:
            _check_origin_only(request, state)
        address = "addr:" + _client_address(request, state.settings)
        account = "user:" + body.username
        try:
            state.account_limiter.check(account)
            state.address_limiter.check(address)
            pair = await state.sessions.login(body.username, body.password)
        except RateLimited as error:
            return oauth_error(429, "rate_limited", error.message, reason=error.code,
                               headers={"Retry-After": str(error.retry_after)})
        except InvalidCredentials as error:
            state.account_limiter.failure(account)
            state.address_limiter.failure(address)
            return oauth_error(400, "invalid_grant", error.message, reason=error.code)
        state.account_limiter.reset(account)
        return pair_response(state, pair)

    @app.post("/v1/auth/refresh", response_model=TokenResponse, responses=answers(400, 403, 413, 503),
              tags=["sessions"],
              summary="Rotate a refresh token: a new pair, the old refresh token spent")
    @_refused
    async def refresh(request: Request, body: RefreshRequest | None = None) -> Response:
        state = _state(request)
        token = body.refresh_token if body is not None else None
        from_cookie = False
        if token is None and state.settings.cookie_mode:
            token = request.cookies.get(cookies.REFRESH_COOKIE)
            from_cookie = token is not None
        if not token:
            return oauth_error(400, "invalid_request", "refresh_token is required")
        if from_cookie:
            _cookie_request_checks(request, state, await _family_of(state, token))
        try:
            pair = await state.sessions.refresh(token)
        except RefreshError as error:
            response = oauth_error(400, "invalid_grant", error.message, reason=error.code)
            if from_cookie:
                cookies.clear_cookies(response)
            return response
        return pair_response(state, pair, cookie_mode=from_cookie)

    @app.post("/v1/auth/logout", status_code=204, responses=answers(400, 401, 403, 413, 503),
              tags=["sessions"], summary="End this session (its token family)")
    @_refused
    async def logout(request: Request, body: RefreshRequest | None = None) -> Response:
        state = _state(request)
        token, _ = _bearer(request, state.settings)
        refresh_token = body.refresh_token if body is not None else None
        cookie_refresh = request.cookies.get(cookies.REFRESH_COOKIE) if state.settings.cookie_mode else None
        claims: Claims | None = None
        if token is not None:
            claims, from_cookie = await _authenticate_bearer(request, state)
            if from_cookie:
                _cookie_request_checks(request, state, claims.sid)
        elif cookie_refresh is not None and refresh_token is None:
            _cookie_request_checks(request, state, await _family_of(state, cookie_refresh))
            refresh_token = cookie_refresh
        elif refresh_token is None:
            return bearer_error(None)
        await state.sessions.logout(claims, refresh_token or cookie_refresh)
        response = Response(status_code=204, headers=no_store)
        if state.settings.cookie_mode:
            cookies.clear_cookies(response)
        return response

    @app.post("/v1/auth/logout-all", status_code=204, responses=answers(401, 403, 503),
              tags=["sessions"], summary="End every session of the user; tokens issued before now die")
    @_refused
    async def logout_all(request: Request) -> Response:
        state = _state(request)
        claims, from_cookie = await _authenticate_bearer(request, state)
        if from_cookie or (state.settings.cookie_mode and request.cookies.get(cookies.REFRESH_COOKIE)
                           and request.headers.get(cookies.CSRF_HEADER) is not None):
            _cookie_request_checks(request, state, claims.sid)
        assert claims.sub is not None  # noqa: S101 - required by the service's verifier
        await state.sessions.logout_all(claims.sub)
        response = Response(status_code=204, headers=no_store)
        if state.settings.cookie_mode:
            cookies.clear_cookies(response)
        return response

    @app.post("/v1/auth/revoke", tags=["tokens"], summary="RFC 7009 token revocation",
              response_class=Response, response_description="Revoked, or nothing to revoke: "
              "RFC 7009 answers both with an empty 200",
              responses=answers(400, 401, 413, 503),
              openapi_extra=_form_schema(["token"], ["token_type_hint"]))
    @_refused
    async def revoke(request: Request) -> Response:
        state = _state(request)
        client_id: str | None = None  # without credentials: whoever holds a token may revoke it
        if request.headers.get("authorization"):
            client_id = await _authenticate_any_client(request, state)
        form = await _form(request)
        token = form.get("token")
        if not token:
            return oauth_error(400, "invalid_request", "token is required")
        hint: str | None = form.get("token_type_hint")
        if hint not in (None, "access_token", "refresh_token"):
            return oauth_error(400, "unsupported_token_type", "token_type_hint is not supported")
        try:
            await state.sessions.revoke(token, hint, client_id=client_id)
        except NotTokenOwner as error:  # RFC 7009 section 2.1: refused, the token lives on
            return oauth_error(400, "unauthorized_client", error.message, reason=error.code)
        return Response(status_code=200, headers=no_store)

    @app.post("/v1/auth/introspect", tags=["tokens"], summary="RFC 7662 token introspection",
              responses=answers(400, 401, 413, 503),
              openapi_extra=_form_schema(["token"], ["token_type_hint"]))
    @_refused
    async def introspect(request: Request) -> Response:
        state = _state(request)
        await _authenticate_client(request, state, "introspect")
        form = await _form(request)
        token = form.get("token")
        if not token:
            return oauth_error(400, "invalid_request", "token is required")
        result = await state.sessions.introspect(token, form.get("token_type_hint"))
        return JSONResponse(result, headers=no_store)

    @app.get("/v1/auth/userinfo", tags=["tokens"], responses=answers(401, 503),
             summary="The claims of the presented access token, after full verification")
    @_refused
    async def userinfo(request: Request) -> Response:
        claims, _ = await _authenticate_bearer(request, _state(request))
        return JSONResponse(dict(claims), headers=no_store)

    @app.post("/v1/sessions", status_code=201, response_model=TokenResponse,
              responses=answers(400, 401, 413, 503), tags=["sessions"],
              summary="Trusted backend: a token pair for a subject it authenticated itself")
    @_refused
    async def create_session(request: Request, body: SessionRequest) -> Response:
        state = _state(request)
        client_id = await _authenticate_client(request, state, "sessions")
        try:
            pair = await state.sessions.create_session(
                body.subject, scope=body.scope, claims=body.claims, client_id=client_id)
        except SensitiveClaim as error:
            return oauth_error(400, "invalid_request", error.message, reason=error.code)
        except ValueError as error:
            return oauth_error(400, "invalid_request", str(error))
        return pair_response(state, pair, 201, cookie_mode=False)

    @app.get("/v1/revocations", tags=["tokens"], responses=answers(400, 503),
             summary="Revocation feed for resource servers (long-poll with since= and wait=)")
    async def revocation_feed(request: Request, since: str | None = None, wait: float = 0) -> Response:
        state = _state(request)
        wait = min(max(wait, 0.0), FEED_MAX_WAIT)
        body = await state.denylist.feed_body(since, wait)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    @app.get("/.well-known/jwks.json", tags=["discovery"], summary="Public signing keys (JWKS)")
    async def jwks(request: Request) -> Response:
        state = _state(request)
        max_age = state.keyring.jwks_max_age()
        return JSONResponse(state.keyring.jwks(),
                            headers={"Cache-Control": f"public, max-age={max_age}"})

    @app.get("/.well-known/oauth-authorization-server", tags=["discovery"],
             summary="RFC 8414 authorization server metadata")
    async def metadata(request: Request) -> Response:
        state = _state(request)
        base = settings.issuer.rstrip("/")
        algs = sorted({k.alg for k in state.keyring.public_keyset()})
        return JSONResponse({
            "issuer": settings.issuer,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "response_types_supported": [],
            "grant_types_supported": ["password", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint": f"{base}/v1/auth/revoke",
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "introspection_endpoint": f"{base}/v1/auth/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "userinfo_endpoint": f"{base}/v1/auth/userinfo",
            "jwtwarden_login_endpoint": f"{base}/v1/auth/login",
            "jwtwarden_refresh_endpoint": f"{base}/v1/auth/refresh",
            "jwtwarden_sessions_endpoint": f"{base}/v1/sessions",
            "jwtwarden_revocation_feed_endpoint": f"{base}/v1/revocations",
            "jwtwarden_access_token_signing_alg_values_supported": algs,
        }, headers={"Cache-Control": "public, max-age=300"})

    @app.get("/healthz", tags=["operations"], responses=answers(503),
             summary="Liveness and database reachability")
    async def healthz(request: Request) -> Response:
        state = _state(request)
        try:
            await state.db.ping()
        except TemporarilyUnavailable as error:
            return unavailable(error)
        return JSONResponse({"status": "ok", "version": __version__},
                            headers={"Cache-Control": "no-store"})


def _check_origin_only(request: Request, state: ServiceState) -> None:
    try:
        cookies.check_origin(request, state.settings.origins)
    except cookies.CsrfError as error:
        raise _Refused(oauth_error(403, "access_denied", str(error), reason="csrf")) from None


async def _family_of(state: ServiceState, refresh_token: str) -> str | None:
    return await state.sessions.family_of(refresh_token)


def _form_schema(required: list[str], optional: list[str]) -> dict[str, Any]:
    props = {name: {"type": "string"} for name in [*required, *optional]}
    return {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "required": required, "properties": props}}}}}
