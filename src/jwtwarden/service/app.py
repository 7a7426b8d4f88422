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
import dataclasses
import email.message
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from argon2 import PasswordHasher
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jwtwarden import __version__
from jwtwarden.audit.debugger import mount_debugger
from jwtwarden.dpop import (
    DPoPNonces,
    DPoPProof,
    DPoPVerifier,
    MemoryReplayStore,
    ReplayStore,
    expected_url,
)
from jwtwarden.errors import (
    InvalidClient,
    InvalidCredentials,
    InvalidDPoPProof,
    InvalidRequest,
    JWTError,
    MalformedToken,
    NotTokenOwner,
    Overloaded,
    RateLimited,
    RefreshError,
    SenderConstrained,
    SensitiveClaim,
    TemporarilyUnavailable,
    UnsupportedGrantType,
    UseDPoPNonce,
)
from jwtwarden.errors import OAuthError as OAuthRefusal
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.policy import Claims, Clock, system_clock
from jwtwarden.resource.asgi import dpop_values, request_path
from jwtwarden.resource.dpop_redis import RedisReplayStore
from jwtwarden.service import cookies
from jwtwarden.service.config import Settings
from jwtwarden.service.docs import docs_routes
from jwtwarden.service.ops import install as install_ops
from jwtwarden.service.ratelimit import Counters, LoginLimiter, MemoryCounters, RedisCounters
from jwtwarden.service.sessions.accounts import ASSERTION_ALGORITHMS, Accounts
from jwtwarden.service.sessions.denylist import FEED_MAX_WAIT, DenyList
from jwtwarden.service.sessions.grants import TokenGrants
from jwtwarden.service.sessions.kek import KEK, load_kek
from jwtwarden.service.sessions.keyring import KeyRing
from jwtwarden.service.sessions.passwords import PasswordHashing, password_hasher
from jwtwarden.service.sessions.service import SessionService, TokenPair
from jwtwarden.service.sessions.subkeys import SessionKeys
from jwtwarden.service.storage.db import Database, database_url, private_directory
from jwtwarden.service.storage.migrations import migrate
from jwtwarden.service.usernames import username_key

__all__ = ["ServiceState", "build_state", "create_app"]

log = logging.getLogger("jwtwarden.service")
REALM = "jwtwarden"
RETRY_AFTER = "5"
# other processes' revocations (workers, replicas, the CLI) are refused within this, plus a query
DENYLIST_POLL_INTERVAL = 0.25


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
    device_key: bytes
    login_limiter: LoginLimiter
    grants: TokenGrants
    session_keys: SessionKeys
    _long_poll_ender: asyncio.Task[None] | None = None
    dpop: DPoPVerifier = dataclasses.field(default_factory=DPoPVerifier)  # RFC 9449 proofs
    dpop_redis: Any = None  # the replay store's Redis client, when there is one

    def end_long_polls(self) -> None:
        """The server is stopping: answer every open long-poll of the revocation feed now, and
        any that starts until the state closes, instead of holding shutdown for their wait
        (up to 25 s). Their clients get an ordinary answer and poll again elsewhere."""
        if self._long_poll_ender is None:
            self._long_poll_ender = asyncio.get_running_loop().create_task(self._wake_feed())

    async def _wake_feed(self) -> None:
        while True:
            self.denylist._wake()  # every waiter returns what it has, at once
            await asyncio.sleep(0.05)  # a poll that arrived in between waits no longer

    async def close(self) -> None:
        if self._long_poll_ender is not None:
            self._long_poll_ender.cancel()
            await asyncio.gather(self._long_poll_ender, return_exceptions=True)
        if self.denylist.redis is not None:
            await self.denylist.redis.stop()
        await self.login_limiter.close()
        self.accounts.hashing.close()
        if self.dpop_redis is not None:
            await self.dpop_redis.aclose()
        await self.db.dispose()


async def build_state(
    settings: Settings, *, clock: Clock = system_clock, hasher: PasswordHasher | None = None,
    follow: bool = True,
) -> ServiceState:
    """Open the database (creating the data directory), migrate, load keys and the deny list.

    ``follow=False`` (the CLI's one-shot commands): no background Redis follower; revocations
    are still written to Redis and announced, which needs no subscription.
    """
    if settings.sqlite_default:  # ours, 0700 (refused when another user owns it)
        private_directory(settings.data_dir)
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
        if denylist.redis is not None and follow:
            await denylist.redis.start()
    except BaseException:
        await db.dispose()  # no connection outlives a failed start
        raise
    session_keys = SessionKeys.from_kek(kek)
    hashing = PasswordHashing(
        hasher or password_hasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_cost,
                                  parallelism=settings.argon2_parallelism),
        threads=settings.hash_threads or None, queue=settings.hash_queue)
    accounts = Accounts(db, macs=session_keys.rows, hashing=hashing, clock=clock)
    sessions = SessionService(
        db, settings, keyring, denylist, accounts, keys=session_keys, clock=clock,
    )
    counters: Counters = (MemoryCounters() if settings.redis_url is None
                          else RedisCounters(settings.redis_url))
    # DPoP proofs: one jti store for every replica (Redis) or this process; nonces derived
    # from the KEK, so every replica hands out and accepts the same
    dpop_redis: Any = None
    replay: ReplayStore | RedisReplayStore = MemoryReplayStore(clock=clock)
    if settings.redis_url is not None:
        import redis.asyncio

        dpop_redis = redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=2.0)
        replay = RedisReplayStore(dpop_redis)
    nonces = DPoPNonces(session_keys.dpop_nonce, clock=clock) if settings.dpop_nonce else None
    dpop = DPoPVerifier(clock=clock, replay=replay, nonces=nonces, require_nonce=settings.dpop_nonce)
    return ServiceState(
        settings=settings, db=db, kek=kek, keyring=keyring, denylist=denylist,
        accounts=accounts, sessions=sessions, clock=clock,
        csrf_key=session_keys.csrf, session_keys=session_keys, device_key=session_keys.device,
        login_limiter=LoginLimiter(
            counters, per_account=settings.login_max_failures,
            per_address=settings.login_max_failures_per_address,
            per_device=settings.login_max_failures, window=settings.login_window, clock=clock),
        grants=TokenGrants(db, settings, keyring, accounts, sessions, clock=clock),
        dpop=dpop, dpop_redis=dpop_redis,
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


class OAuthTokenResponse(BaseModel):
    """RFC 6749 section 5.1; refresh_token and refresh_expires_in for the refresh_token grant."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 scheme name
    expires_in: int
    scope: str | None = None
    refresh_token: str | None = None
    refresh_expires_in: int | None = None


class CsrfResponse(BaseModel):
    csrf_token: str


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


DPOP_CHALLENGE = f'DPoP realm="{REALM}", algs="ES256 EdDSA"'


def bearer_error(error: JWTError | None, *, dpop: bool = False) -> JSONResponse:
    """RFC 6750 section 3: no token → a bare challenge (and RFC 9449's DPoP one); a bad one →
    invalid_token, in the DPoP scheme when the token came with it or is bound to a key."""
    if error is None:
        return oauth_error(401, "invalid_request", "a bearer token is required",
                           headers={"WWW-Authenticate": f'Bearer realm="{REALM}", {DPOP_CHALLENGE}'})
    if isinstance(error, TemporarilyUnavailable):
        return unavailable(error)
    description = _quoted(error.message)
    scheme = DPOP_CHALLENGE if dpop or isinstance(error, SenderConstrained) else f'Bearer realm="{REALM}"'
    challenge = f'{scheme}, error="invalid_token", error_description="{description}"'
    return oauth_error(401, "invalid_token", error.message, reason=error.code,
                       headers={"WWW-Authenticate": challenge})


def dpop_error(error: InvalidDPoPProof, status: int) -> JSONResponse:
    """RFC 9449: a refused proof is ``invalid_dpop_proof`` (400 at the token endpoints, 401 with
    a DPoP challenge elsewhere); a missing or stale nonce ``use_dpop_nonce`` + ``DPoP-Nonce``."""
    headers: dict[str, str] = {}
    error_code = "use_dpop_nonce" if isinstance(error, UseDPoPNonce) else "invalid_dpop_proof"
    if isinstance(error, UseDPoPNonce):
        headers["DPoP-Nonce"] = error.nonce
    if status == 401:
        headers["WWW-Authenticate"] = (f'{DPOP_CHALLENGE}, error="{error_code}", '
                                       f'error_description="{_quoted(error.message)}"')
    return oauth_error(status, error_code, error.message, reason=error.reason, headers=headers)


def unavailable(error: JWTError) -> JSONResponse:
    retry_after = str(error.retry_after) if isinstance(error, Overloaded) else RETRY_AFTER
    return oauth_error(503, "temporarily_unavailable", error.message, reason=error.code,
                       headers={"Retry-After": retry_after})


def client_error() -> JSONResponse:
    return oauth_error(401, "invalid_client", "client authentication failed",
                       headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@functools.lru_cache(maxsize=64)  # the same few types on every request; email.message is slow
def _is_json(content_type: str) -> bool:
    """Whether FastAPI parses a body of this type as JSON (its own test, kept in step)."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before they are read whole; and
    refuse JSON bodies that are not strict JSON with 400, before any endpoint sees them.

    Strict is what tokens get (:func:`jwtwarden.jose.strict_json.parse_object`): one UTF-8
    object, unique member names at every depth, no lone surrogate, no NaN, bounded nesting.
    ``{"username": "guest", "username": "alice"}`` is therefore refused, where plain
    ``json.loads`` (and so FastAPI) would quietly keep the last one. Every JSON endpoint is
    covered, present and future: FastAPI parses the same body again after this check.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        json_body = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                response = oauth_error(413, "invalid_request", "request body too large")
                await response(scope, receive, send)
                return
            if name == b"content-type" and _is_json(value.decode("latin-1")):
                json_body = True
        if json_body:
            await self._strict_json(scope, receive, send)
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

    async def _strict_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await oauth_error(413, "invalid_request", "request body too large")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                parse_object(body, "the request body")
            except MalformedToken as error:
                await oauth_error(400, "invalid_request", error.message)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only http.disconnect

        await self.app(scope, replay, send)


class SecurityHeaders:
    """Headers every answer carries: ``nosniff``, ``Referrer-Policy: no-referrer``, a CSP
    that allows nothing (pages with their own CSP keep it: the debugger, the API docs) and,
    when the issuer is https, HSTS."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        ]
        if hsts:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        self.headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class Cors:
    """CORS for the allowed origins only, with credentials (the browser SDK on another origin).

    An ``Origin`` equal to one of ``origins`` gets ``Access-Control-Allow-Origin: <that
    origin>`` and ``Access-Control-Allow-Credentials: true``, never ``*``; any other origin
    (``null`` included) gets no CORS header, so the browser hides the answer from it. A
    preflight is answered here, before routing: 204 when the origin, the method and every
    requested header are allowed, else 403 without CORS headers. Every answer carries
    ``Vary: Origin``, so no cache serves one origin's answer to another.
    """

    METHODS = frozenset({"GET", "HEAD", "POST"})
    HEADERS = frozenset({"authorization", "content-type", "dpop", cookies.CSRF_HEADER})
    EXPOSED = "WWW-Authenticate, Retry-After, DPoP-Nonce"
    MAX_AGE = "600"

    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # the first of a repeated header, as Starlette's .get()
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        origin = headers.get("origin")
        allowed = origin is not None and origin in self.origins
        if scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await self._preflight(origin if allowed else None, headers)(scope, receive, send)
            return
        extra = [(b"vary", b"Origin")]
        if allowed:
            assert origin is not None  # noqa: S101 - narrowed above
            extra += [(b"access-control-allow-origin", origin.encode("latin-1")),
                      (b"access-control-allow-credentials", b"true"),
                      (b"access-control-expose-headers", self.EXPOSED.encode())]

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_cors)

    def _preflight(self, origin: str | None, headers: Mapping[str, str]) -> Response:
        method = headers["access-control-request-method"].strip()
        requested = {h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")}
        requested.discard("")
        vary = {"Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
        if origin is None or method not in self.METHODS or not requested <= self.HEADERS:
            return oauth_error(403, "access_denied", "CORS preflight refused", headers=vary)
        return Response(status_code=204, headers={
            **vary,
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": ", ".join(sorted(self.METHODS)),
            "Access-Control-Allow-Headers": "Authorization, Content-Type, DPoP, X-CSRF-Token",
            "Access-Control-Max-Age": self.MAX_AGE,
        })


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
            tasks.append(asyncio.create_task(
                _every(DENYLIST_POLL_INTERVAL, state.denylist.poll, "deny-list poll")))

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
        # the pages FastAPI would serve load Swagger UI and ReDoc from a CDN: off; with
        # JWTWARDEN_DOCS=1 they come from the installed assets under a strict CSP instead
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    _routes(app, settings)
    _token_endpoint(app)
    _document_errors_as_answered(app)
    mount_debugger(app)  # GET /debugger: the token never leaves the browser (strict CSP)
    if settings.docs:
        app.router.routes.extend(docs_routes(app.title))  # DocsUnavailable without the assets
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Cors, origins=settings.origins)  # a 413 is readable cross-origin too
    # outermost: every answer carries them, CORS preflights included
    app.add_middleware(SecurityHeaders, hsts=urlsplit(settings.issuer).scheme == "https")
    install_ops(app, settings)  # request ids, metrics, /metrics, /readyz (outermost of all)
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
        if scheme.lower() not in ("bearer", "dpop") or not token or " " in token.strip():
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
    dpop = not from_cookie and request.headers.get("authorization", "").partition(" ")[0].lower() == "dpop"
    try:
        proof = None
        if dpop:  # RFC 9449 section 7: the proof of the key the token is bound to
            proof = await _proof(request, state, access_token=token)
            if proof is None:
                raise InvalidDPoPProof("a DPoP proof is required", reason="missing")
        return await state.sessions.verify_access(token, proof), from_cookie
    except InvalidDPoPProof as error:
        raise _Refused(dpop_error(error, 401)) from None
    except JWTError as error:
        raise _Refused(bearer_error(error, dpop=dpop)) from None


async def _proof(request: Request, state: ServiceState, *,
                 access_token: str | None = None) -> DPoPProof | None:
    """The request's checked DPoP proof, or None without a ``DPoP`` header. Its URL is the
    configured issuer plus the path (never the Host header)."""
    values = dpop_values(request.scope)
    if not values:
        return None
    url = expected_url(state.settings.issuer, request_path(request.scope))
    return await state.dpop.averify(values, method=request.method, url=url,
                                    access_token=access_token)


async def _token_proof(request: Request, state: ServiceState, *,
                       required: bool = False) -> DPoPProof | None:
    """The proof of a token request (login, refresh, the token endpoint): a refused one is
    ``400 invalid_dpop_proof``; none at all when DPoP is required, too."""
    try:
        proof = await _proof(request, state)
        if proof is None and (required or state.settings.dpop == "required"):
            raise InvalidDPoPProof("a DPoP proof is required", reason="missing")
    except InvalidDPoPProof as error:
        raise _Refused(dpop_error(error, 400)) from None
    return proof


def _with_nonce(response: Response, proof: DPoPProof | None) -> Response:
    """RFC 9449 section 8.2: a fresh nonce rides on a successful answer."""
    if proof is not None and proof.next_nonce:
        response.headers["DPoP-Nonce"] = proof.next_nonce
    return response


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


async def _authenticate_client(request: Request, state: ServiceState, permission: str | None) -> str:
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
    return await _authenticate_client(request, state, None)


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
            "token_type": pair.token_type,
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
        # The attempt is counted before the password is hashed, and the count is given back
        # only on success (see jwtwarden.service.ratelimit); a valid device cookie for this
        # account makes it a trusted attempt, limited per device instead of per account.
        proof = await _token_proof(request, state)
        account = username_key(body.username)
        device = cookies.device_of(request, state.device_key, account)
        limiter = state.login_limiter
        try:
            reservation = await limiter.reserve(
                account, _client_address(request, state.settings), device)
            async with limiter.verifying(account):
                pair = await state.sessions.login(body.username, body.password,
                                                  jkt=proof.jkt if proof else None)
        except RateLimited as error:
            return oauth_error(429, "rate_limited", error.message, reason=error.code,
                               headers={"Retry-After": str(error.retry_after)})
        except InvalidCredentials as error:
            return oauth_error(400, "invalid_grant", error.message, reason=error.code)
        except Overloaded as error:  # no password was checked: not a failed attempt
            with contextlib.suppress(TemporarilyUnavailable):
                await limiter.release(reservation)
            return unavailable(error)
        with contextlib.suppress(TemporarilyUnavailable):  # kept: counted as a failure
            await limiter.release(reservation)
        response = pair_response(state, pair)
        cookies.set_device_cookie(response, cookies.make_device_cookie(state.device_key, account))
        return _with_nonce(response, proof)

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
        proof = await _token_proof(request, state)
        try:
            pair = await state.sessions.refresh(token, jkt=proof.jkt if proof else None,
                                                require_binding=state.settings.dpop == "required")
        except InvalidDPoPProof as error:
            return dpop_error(error, 400)
        except RefreshError as error:
            response = oauth_error(400, "invalid_grant", error.message, reason=error.code)
            if from_cookie:
                cookies.clear_cookies(response)
            return response
        return _with_nonce(pair_response(state, pair, cookie_mode=from_cookie), proof)

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

    @app.get("/v1/auth/csrf", response_model=CsrfResponse, responses=answers(400, 403, 503),
             tags=["sessions"], summary="Cookie mode: this session's CSRF token, for a page that "
             "cannot read the CSRF cookie (another origin of the site, or after a reload)")
    @_refused
    async def csrf(request: Request) -> Response:
        # Read-only: echoes the CSRF cookie once it is proven to belong to the refresh cookie's
        # session. Only the service's own origin and the allowed origins can read the answer
        # (CORS), the same pages that may send the X-CSRF-Token header.
        state = _state(request)
        if not state.settings.cookie_mode:
            return oauth_error(400, "invalid_request", "cookie mode is not enabled")
        _check_origin_only(request, state)
        token = request.cookies.get(cookies.REFRESH_COOKIE)
        current = request.cookies.get(cookies.CSRF_COOKIE, "")
        if not token:
            return oauth_error(400, "invalid_request", "no session cookie")
        family = await _family_of(state, token)
        if family is None or not cookies.csrf_token_valid(state.csrf_key, family, current):
            return oauth_error(400, "invalid_grant", "no valid session cookie",
                               reason="invalid_refresh_token")
        return JSONResponse({"csrf_token": current}, headers=no_store)

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
            "token_endpoint": f"{base}/v1/auth/token",
            "grant_types_supported": ["client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
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
            "dpop_signing_alg_values_supported": list(state.dpop.algorithms),  # RFC 9449 5.1
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


# ---- the OAuth 2.0 token endpoint (issue #13) ------------------------------------------------


_TOKEN_FORM = _form_schema(["grant_type"], ["scope", "refresh_token", "client_id",
                                             "client_assertion_type", "client_assertion"])


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """HTTP Basic client credentials, each half form-urlencoded (RFC 6749 section 2.3.1);
    None without an Authorization header. Any other header is a failed authentication."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError("not Basic")
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _Refused(_token_refusal(InvalidClient("the Authorization header is not HTTP Basic "
                                                    "client credentials"))) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise _Refused(_token_refusal(InvalidClient("the Authorization header is not HTTP Basic "
                                                    "client credentials")))
    return unquote_plus(client_id), unquote_plus(secret)


def _token_refusal(error: JWTError) -> JSONResponse:
    """RFC 6749 section 5.2: invalid_client is a 401 with a Basic challenge, the rest 400."""
    if isinstance(error, InvalidClient):
        return oauth_error(401, error.code, error.message, reason=error.reason,
                           headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})
    if isinstance(error, OAuthRefusal):
        return oauth_error(400, error.code, error.message, reason=error.reason)
    if isinstance(error, RefreshError):
        return oauth_error(400, "invalid_grant", error.message, reason=error.code)
    return oauth_error(400, "invalid_request", error.message)


def _token_endpoint(app: FastAPI) -> None:
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}

    @app.post("/v1/auth/token", tags=["tokens"], response_model=OAuthTokenResponse,
              summary="OAuth 2.0 token endpoint: client_credentials and refresh_token grants",
              description="RFC 6749 sections 4.4 and 6. Clients authenticate with HTTP Basic "
              "(client_secret_basic) or an RFC 7523 assertion (private_key_jwt); the "
              "refresh_token grant also serves public clients. Errors per section 5.2.",
              responses=answers(400, 401, 413, 503), openapi_extra=_TOKEN_FORM)
    @_refused
    async def token(request: Request) -> Response:
        state = _state(request)
        basic = _basic_credentials(request)
        form = await _form(request)  # a repeated parameter is a 400 (RFC 6749 section 3.2)
        grant_type = form.get("grant_type")
        try:
            client = await state.grants.authenticate(basic, form)
            if not grant_type:
                raise InvalidRequest("grant_type is required")
            # RFC 9449 section 5: a proof binds the token; the client may have to send one
            proof = await _token_proof(request, state, required=bool(
                client is not None and client.dpop_bound_access_tokens))
            jkt = proof.jkt if proof else None
            if grant_type == "client_credentials":
                issued = await state.grants.client_credentials(client, form.get("scope"), jkt=jkt)
                body: dict[str, Any] = {"access_token": issued.access_token,
                                        "token_type": issued.token_type,
                                        "expires_in": issued.expires_in}
                if issued.scope:
                    body["scope"] = issued.scope
                return _with_nonce(JSONResponse(body, headers=no_store), proof)
            if grant_type == "refresh_token":
                pair = await state.grants.refresh(
                    client, form.get("refresh_token"), form.get("scope"), jkt=jkt,
                    require_binding=state.settings.dpop == "required")
                body = {"access_token": pair.access_token, "token_type": pair.token_type,
                        "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
                        "refresh_expires_in": pair.refresh_expires_in}
                if pair.scope:
                    body["scope"] = pair.scope
                return _with_nonce(JSONResponse(body, headers=no_store), proof)
            raise UnsupportedGrantType("grant_type must be client_credentials or refresh_token")
        except InvalidDPoPProof as error:
            return dpop_error(error, 400)
        except (OAuthRefusal, InvalidRequest, RefreshError) as error:
            return _token_refusal(error)
