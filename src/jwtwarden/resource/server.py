"""The resource-server core shared by the ASGI, FastAPI and WSGI integrations.

A :class:`ResourceServer` holds what protecting an API needs: a remote key set with its
verifier, a revocation source, the realm, and the mapping of every failure to an RFC 6750
answer. The framework modules (:mod:`jwtwarden.resource.asgi`, :mod:`jwtwarden.resource.fastapi`,
:mod:`jwtwarden.resource.wsgi`) only move headers in and answers out.

For every request, in this order:

1. **The bearer token** comes from exactly one ``Authorization`` header: scheme ``Bearer``
   (any case), one space, one token (no whitespace or comma in it). No header, or another scheme → :class:`MissingToken`
   (401 without an error code, RFC 6750 section 3.1). Several headers, a malformed header, or
   an ``access_token`` in the query string → :class:`InvalidRequest` (400
   ``invalid_request``): tokens in URLs end up in logs, so they are refused.
2. **Verification** by :class:`~jwtwarden.resource.jwks_client.RemoteVerifier` (signature, ``alg``
   bound to the key, ``exp``, ``iss``, ``aud``, ``typ`` = ``at+jwt`` by default...). A
   rejected token → 401 ``invalid_token``. During a migration, tokens whose header names the
   algorithm (and no other ``kid``) of a :class:`~jwtwarden.resource.legacy.LegacyIssuer`
   given as ``also_trust`` are verified by that old issuer's one key instead, until its
   not-after date.
3. **Revocation** from memory (:class:`~jwtwarden.resource.feed_client.RevocationFeed` by
   default, or :class:`~jwtwarden.resource.redis_follower.RedisFollower`) → 401
   ``invalid_token`` when revoked. Their ``kid`` entries (signing keys revoked in an
   emergency) remove those keys from the key set as soon as they arrive, so every token they
   signed fails with ``unknown_key``.
4. **Authorization**: required scopes (``scope`` / ``scp``) and roles (``roles`` / ``role``),
   all of them → 403 ``insufficient_scope`` (:class:`InsufficientScope`).

**DPoP** (RFC 9449), ``dpop="allowed"`` (default) or ``"required"``: ``Authorization: DPoP
<token>`` with one ``DPoP: <proof>`` header is checked by
:class:`~jwtwarden.dpop.DPoPVerifier` against the request's method and its URL built from
``public_url`` (never from the ``Host`` header), the token's hash (``ath``) and the key the
token is bound to (``cnf.jkt``, :meth:`~jwtwarden.Verifier.verify_bound`). A bound token sent
as ``Bearer`` is refused (``invalid_token``, section 7.2), an unbound one sent as ``DPoP`` too;
a refused proof is 401 ``invalid_dpop_proof`` (``use_dpop_nonce`` with a ``DPoP-Nonce``
header when nonces are on), with a ``DPoP`` challenge naming the accepted ``algs``. Without
credentials the answer carries both challenges (only ``DPoP`` when it is required). Browsers
calling the API from another origin need ``DPoP`` allowed as a request header and
``WWW-Authenticate`` and ``DPoP-Nonce`` exposed (:data:`CORS_ALLOW_HEADERS`,
:data:`CORS_EXPOSE_HEADERS`).

Keys or revocation state unavailable → 503 with ``Retry-After`` (fail closed). Nothing maps
to a 500; answers never contain the token or an internal message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from jwtwarden.dpop import DPoPNonces, DPoPVerifier, check_base_url, expected_url
from jwtwarden.errors import (
    ClaimError,
    DPoPReplayUnavailable,
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    JWKSUnavailable,
    JWTError,
    MalformedToken,
    MissingToken,
    RevocationUnavailable,
    SenderConstrained,
    UseDPoPNonce,
)
from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.jose.jws import parse_header
from jwtwarden.policy import DEFAULT_LEEWAY, Claims, Clock, system_clock
from jwtwarden.resource.feed_client import RevocationCheck, RevocationFeed, default_feed_url
from jwtwarden.resource.follower import RevocationFollower
from jwtwarden.resource.jwks_client import RemoteJWKS, RemoteVerifier
from jwtwarden.resource.legacy import LegacyIssuer

__all__ = [
    "CLAIMS_KEY",
    "CORS_ALLOW_HEADERS",
    "CORS_EXPOSE_HEADERS",
    "SERVER_KEY",
    "Denial",
    "Guard",
    "InsufficientScope",
    "InvalidRequest",
    "LegacyIssuer",
    "MissingToken",
    "ResourceServer",
    "averify_environ",
    "bearer_token",
    "credentials",
    "path_rules",
    "request_path",
    "requirements",
    "roles_of",
    "verify_environ",
]

log = logging.getLogger("jwtwarden.resource")

CLAIMS_KEY: Final = "jwtwarden.claims"
"""Where the integrations put the verified :class:`~jwtwarden.Claims` (ASGI scope, WSGI environ)."""
SERVER_KEY: Final = "jwtwarden.server"
"""Where the middlewares put their :class:`ResourceServer` (found by the dependency/decorator)."""

STARTUP_WAIT = 5.0
"""Seconds the first request waits for the first revocation snapshot (unless the first poll
fails sooner) before the checks fail closed."""

CORS_ALLOW_HEADERS: Final = ("Authorization", "DPoP")
"""Request headers a cross-origin caller of the API sends (add them to the CORS allow-list)."""
CORS_EXPOSE_HEADERS: Final = ("WWW-Authenticate", "DPoP-Nonce")
"""Answer headers a cross-origin caller must be able to read (``Access-Control-Expose-Headers``)."""

_FEED: Final = "feed"
_HEADER_CACHE_SIZE = 256
_DPOP_MODES = ("allowed", "required")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 section 3.3 scope-token
_REALM = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")


# ---- errors ------------------------------------------------------------------------------


# ---- the bearer token --------------------------------------------------------------------


def bearer_token(authorization: Sequence[str] | str | None, query: str | bytes = "") -> str:
    """The token of an ``Authorization: Bearer <token>`` header; see the module docstring.

    ``authorization`` is the header value, or every value when the header was repeated.
    Raises :class:`MissingToken` or :class:`InvalidRequest`.
    """
    if query and _has_query_token(query):
        raise InvalidRequest("access tokens are not accepted in the URL")
    if authorization is None:
        raise MissingToken("no access token")
    if not isinstance(authorization, str):
        if len(authorization) != 1:
            if not authorization:
                raise MissingToken("no access token")
            raise InvalidRequest("several Authorization headers")
        authorization = authorization[0]
    scheme, space, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken("no bearer token")
    # One token, nothing around it. Its characters are the verifier's business: anything
    # but strict base64url is a malformed token (401 invalid_token).
    if not space or not token or " " in token or "," in token or not token.isprintable():
        raise InvalidRequest("the Authorization header is not 'Bearer <token>'")
    return token


def credentials(
    authorization: Sequence[str] | str | None, query: str | bytes = ""
) -> tuple[str, str]:
    """``(scheme, token)`` of the one ``Authorization: Bearer|DPoP <token>`` header, the scheme
    in lower case. The same rules as :func:`bearer_token`: several headers (both schemes at
    once included) or a token in the URL are :class:`InvalidRequest`; no header, or another
    scheme, :class:`MissingToken`."""
    if query and _has_query_token(query):
        raise InvalidRequest("access tokens are not accepted in the URL")
    if authorization is None:
        raise MissingToken("no access token")
    if not isinstance(authorization, str):
        if len(authorization) != 1:
            if not authorization:
                raise MissingToken("no access token")
            raise InvalidRequest("several Authorization headers")
        authorization = authorization[0]
    scheme, space, token = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop"):
        raise MissingToken("no bearer or DPoP token")
    if not space or not token or " " in token or "," in token or not token.isprintable():
        raise InvalidRequest("the Authorization header is not 'Bearer <token>' or 'DPoP <token>'")
    return scheme, token


def _has_query_token(query: str | bytes) -> bool:
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    if "access_token" not in text:
        return False
    return any(
        part.partition("=")[0] == "access_token" for part in text.replace(";", "&").split("&")
    )


def requirements(values: Iterable[str] | str, what: str) -> frozenset[str]:
    """A set of scope or role names; a string is split on spaces. :class:`ValueError` if invalid."""
    items = values.split() if isinstance(values, str) else list(values)
    for item in items:
        if not isinstance(item, str) or _SCOPE_TOKEN.fullmatch(item) is None:
            raise ValueError(f"{what} must be non-empty names without spaces, quotes or backslashes")
    return frozenset(items)


def path_rules(paths: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Public paths as (exact paths, prefixes): an entry ending with ``/`` is a prefix."""
    exact, prefixes = set(), []
    for path in ([paths] if isinstance(paths, str) else paths):
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError("public paths start with '/'")
        if path.endswith("/") and path != "/":
            prefixes.append(path)
        else:
            exact.add(path)
    return frozenset(exact), tuple(prefixes)


class Guard:
    """What the ASGI and WSGI middlewares share: the server, public paths, required scopes
    and roles, checked once at construction."""

    def __init__(
        self,
        server: ResourceServer,
        *,
        public_paths: Iterable[str] = (),
        scopes: Iterable[str] | str = (),
        roles: Iterable[str] | str = (),
    ) -> None:
        if not isinstance(server, ResourceServer):
            raise TypeError("server must be a ResourceServer")
        self.server = server
        self._exact, self._prefixes = path_rules(public_paths)
        self._scopes = requirements(scopes, "scopes")
        self._roles = requirements(roles, "roles")

    def is_public(self, path: str) -> bool:
        """Whether ``path`` is served without a token."""
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))


def roles_of(claims: Claims) -> frozenset[str]:
    """The roles a token grants: its ``roles`` (a list, or a space-separated string) and ``role``."""
    roles = claims.get("roles")
    if isinstance(roles, list):
        found = {r for r in roles if isinstance(r, str)}
    elif isinstance(roles, str):
        found = set(roles.split())
    else:
        found = set()
    role = claims.get("role")
    if isinstance(role, str):
        found.add(role)
    return frozenset(found)


def request_path(environ: Mapping[str, Any]) -> str:
    """A WSGI environ's (or Django ``request.META``'s) path as received (percent-encoded,
    without the query), for DPoP's ``htu``: the server's ``RAW_URI``/``REQUEST_URI`` when it
    gives one (gunicorn, werkzeug), else ``SCRIPT_NAME`` + ``PATH_INFO`` encoded again."""
    for name in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(name)
        if isinstance(raw, str) and raw.startswith("/"):
            return raw.partition("?")[0]
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=~") or "/"


def verify_environ(server: ResourceServer, environ: MutableMapping[str, Any],
                   scopes: frozenset[str] = frozenset(),
                   roles: frozenset[str] = frozenset()) -> Claims:
    """The claims of a WSGI environ (or Django ``request.META``): those a middleware already
    verified (``environ["jwtwarden.claims"]``), else the bearer token of its
    ``HTTP_AUTHORIZATION`` verified now (starting the revocation feed's thread first) and
    stored there; then the required scopes and roles. Raises what :meth:`ResourceServer.
    authenticate` and :meth:`ResourceServer.authorize` raise."""
    claims = environ.get(CLAIMS_KEY)
    if not isinstance(claims, Claims):
        server.ensure_started()
        claims = server.authenticate(
            environ.get("HTTP_AUTHORIZATION"), environ.get("QUERY_STRING", ""),
            dpop=environ.get("HTTP_DPOP"), method=environ.get("REQUEST_METHOD", "GET"),
            path=request_path(environ))
        environ[CLAIMS_KEY] = claims
    if scopes or roles:
        server.authorize(claims, scopes, roles)
    return claims


async def averify_environ(server: ResourceServer, environ: MutableMapping[str, Any],
                          scopes: frozenset[str] = frozenset(),
                          roles: frozenset[str] = frozenset()) -> Claims:
    """Async :func:`verify_environ` (Django's async views): key fetches are awaited, and the
    revocation feed's thread is started off the event loop."""
    claims = environ.get(CLAIMS_KEY)
    if not isinstance(claims, Claims):
        if server.needs_start():
            await asyncio.to_thread(server.ensure_started)
        claims = await server.aauthenticate(
            environ.get("HTTP_AUTHORIZATION"), environ.get("QUERY_STRING", ""),
            dpop=environ.get("HTTP_DPOP"), method=environ.get("REQUEST_METHOD", "GET"),
            path=request_path(environ))
        environ[CLAIMS_KEY] = claims
    if scopes or roles:
        server.authorize(claims, scopes, roles)
    return claims


# ---- answers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Denial:
    """An HTTP answer refusing a request: status, headers (``str`` pairs) and a JSON body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    error: str
    description: str

    @property
    def body(self) -> bytes:
        return json.dumps({"error": self.error, "error_description": self.description}).encode()

    @property
    def reason(self) -> str:
        return _REASONS[self.status]


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            503: "Service Unavailable"}
_DESCRIPTIONS = {
    # error code -> what the client is told (RFC 6750 section 3 error_description): fixed
    # text, never the token, a key or an internal message
    "malformed": "The access token is malformed",
    "token_too_large": "The access token is too large",
    "unsupported_header": "The access token has a header parameter that is not accepted",
    "alg_not_allowed": "The access token's algorithm is not accepted",
    "unknown_key": "The access token is signed with an unknown key",
    "bad_signature": "The access token's signature is invalid",
    "missing_claim": "The access token lacks a required claim",
    "invalid_claim": "The access token has an invalid claim",
    "expired": "The access token expired",
    "not_yet_valid": "The access token is not valid yet",
    "issued_in_future": "The access token is issued in the future",
    "bad_issuer": "The access token is from another issuer",
    "bad_audience": "The access token is not meant for this audience",
    "bad_type": "The access token is not an access token (typ)",
    "revoked": "The access token has been revoked",
}
_DESCRIPTIONS["sender_constrained"] = "The access token is bound to a key: present it with DPoP"
_DPOP_DESCRIPTIONS = {
    # InvalidDPoPProof reason -> what the client is told
    "missing": "A DPoP proof is required",
    "multiple": "Exactly one DPoP proof is allowed",
    "replayed": "The DPoP proof was already used",
    "stale": "The DPoP proof is too old",
    "future": "The DPoP proof is issued in the future",
    "bad_htm": "The DPoP proof is for another method",
    "bad_htu": "The DPoP proof is for another URL",
    "bad_ath": "The DPoP proof is for another access token",
    "key_mismatch": "The DPoP proof's key is not the one the access token is bound to",
}
_CLAIM_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")


def _description(error: JWTError) -> str:
    """The safe description of a refused token; a claim error names its claim (a name from
    this server's own policy, such as ``exp`` or a required claim)."""
    text = _DESCRIPTIONS.get(error.code, "The access token is invalid")
    claim = getattr(error, "claim", None)
    if isinstance(error, ClaimError) and isinstance(claim, str) and _CLAIM_NAME.fullmatch(claim) \
            and error.code in ("malformed", "missing_claim", "invalid_claim"):
        text += f" ({claim})"
    return text


def _log_refusal(status: int, code: str, claim: object = None) -> None:
    """Operators learn why each request was refused: the stable code, in the message and as
    structured fields (``event``, ``reason``, ``status``), at INFO; never the token."""
    if log.isEnabledFor(logging.INFO):
        extra = {"event": "token_refused", "reason": code, "status": status}
        if isinstance(claim, str) and _CLAIM_NAME.fullmatch(claim):
            extra["claim"] = claim
        log.info("refused a request: %s (HTTP %d)", code, status, extra=extra)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- the server --------------------------------------------------------------------------


class ResourceServer:
    """Everything a resource server needs to accept or refuse a bearer token.

    ::

        server = ResourceServer("https://auth.example.com/.well-known/jwks.json",
                                issuer="https://auth.example.com", audience="api.example.com")

    ``jwks``: a :class:`~jwtwarden.resource.jwks_client.RemoteJWKS`, or its URL (then built with
    ``algorithms``, default ``["ES256"]``; with a ready ``RemoteJWKS``, ``algorithms``
    defaults to its own and may only narrow them). ``issuer``, ``audience``, ``typ`` (default
    ``"at+jwt"``, RFC 9068 access tokens; ``None`` accepts any), ``leeway``,
    ``required_claims``, ``clock`` and ``verified_cache_size``: as for
    :meth:`RemoteJWKS.verifier`. ``revocations``: ``"feed"`` (default) reads the token
    service's revocation feed at :func:`~jwtwarden.resource.feed_client.default_feed_url`; a URL
    string reads that feed (a ``redis://`` or ``rediss://`` URL follows the service's Redis
    with a :class:`~jwtwarden.resource.redis_follower.RedisFollower`); any
    :class:`~jwtwarden.resource.follower.RevocationFollower` (a :class:`RevocationFeed`, a
    ``RedisFollower``) is started, stopped and listened to for revoked keys; a
    :class:`~jwtwarden.revocation.RevocationSet` or any
    :class:`~jwtwarden.resource.feed_client.RevocationCheck` is used as given; ``None`` turns
    revocation checks off. ``realm`` names the protection space in ``WWW-Authenticate``.
    ``startup_wait``: how long the first request waits for the feed's first answer (5 s).
    ``also_trust``: one or more :class:`~jwtwarden.resource.legacy.LegacyIssuer` (the issuer
    being replaced during a migration), trusted until their not-after dates by ``clock``.

    :meth:`authenticate` / :meth:`aauthenticate` return the verified claims or raise a
    :class:`~jwtwarden.errors.JWTError`; :meth:`authorize` checks scopes and roles;
    :meth:`denial` turns any exception into the HTTP answer.
    """

    def __init__(
        self,
        jwks: RemoteJWKS | str,
        *,
        issuer: str | Iterable[str],
        audience: str | Iterable[str],
        algorithms: Iterable[str] | None = None,
        typ: str | None = "at+jwt",
        leeway: float = DEFAULT_LEEWAY,
        required_claims: Iterable[str] = (),
        revocations: RevocationCheck | str | None = _FEED,
        realm: str = "api",
        clock: Clock = system_clock,
        verified_cache_size: int = 4096,
        startup_wait: float = STARTUP_WAIT,
        also_trust: LegacyIssuer | Iterable[LegacyIssuer] = (),
        dpop: str = "allowed",
        public_url: str | None = None,
        dpop_verifier: DPoPVerifier | None = None,
    ) -> None:
        if dpop not in _DPOP_MODES:
            raise ValueError("dpop must be 'allowed' or 'required'")
        if public_url is not None:
            public_url = check_base_url(public_url)
        elif dpop == "required":
            raise ValueError("dpop='required' needs public_url: the URL clients reach this "
                             "server at, which DPoP proofs name (htu)")
        if dpop_verifier is None:
            dpop_verifier = DPoPVerifier(clock=clock)
        elif not isinstance(dpop_verifier, DPoPVerifier):
            raise TypeError("dpop_verifier must be a DPoPVerifier")
        self._dpop_mode = dpop
        self._public_url = public_url
        self._dpop = dpop_verifier
        algs = " ".join(dpop_verifier.algorithms)
        if isinstance(jwks, str):
            jwks = RemoteJWKS(jwks, algorithms=("ES256",) if algorithms is None else algorithms)
            algorithms = None
        if not isinstance(realm, str) or _REALM.fullmatch(realm) is None:
            raise ValueError("realm must be printable ASCII without quotes or backslashes")
        self._jwks = jwks
        self._verifier: RemoteVerifier = jwks.verifier(
            issuer=issuer,
            audience=audience,
            algorithms=algorithms,
            typ=typ,
            leeway=leeway,
            required_claims=required_claims,
            clock=clock,
            verified_cache_size=verified_cache_size,
        )
        if revocations == _FEED:
            revocations = RevocationFeed(default_feed_url(jwks.url))
        elif isinstance(revocations, str) and revocations.startswith(("redis://", "rediss://")):
            from jwtwarden.resource.redis_follower import RedisFollower

            revocations = RedisFollower(revocations)
        elif isinstance(revocations, str):
            revocations = RevocationFeed(revocations)
        elif revocations is not None and not callable(getattr(revocations, "check", None)):
            raise TypeError("revocations must have a check(claims) method, or be a URL or None")
        self._revocations: RevocationCheck | None = revocations
        # a follower runs with the server, and its kid entries drop keys from the key set
        self._feed = revocations if isinstance(revocations, RevocationFollower) else None
        if self._feed is not None:
            self._feed.add_listener(lambda entries: jwks.set_revoked_kids(entries.revoked_kids()))
        self._realm = realm
        self._challenge = f"Bearer realm={_quoted(realm)}"
        self._dpop_challenge = f"DPoP realm={_quoted(realm)}, algs={_quoted(algs)}"
        self._start_lock = threading.Lock()
        if startup_wait < 0:
            raise ValueError("startup_wait must be zero or more seconds")
        self._startup_wait = float(startup_wait)
        legacy = (also_trust,) if isinstance(also_trust, LegacyIssuer) else tuple(also_trust)
        if not all(isinstance(item, LegacyIssuer) for item in legacy):
            raise TypeError("also_trust takes LegacyIssuer objects")
        self._legacy = legacy
        self._clock = clock
        self._legacy_headers: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> ResourceServer:
        """Build one from ``JWTWARDEN_JWKS_URL``, ``JWTWARDEN_ISSUER``, ``JWTWARDEN_AUDIENCE``.

        ``JWTWARDEN_AUDIENCE`` may list several audiences, comma-separated. Optional:
        ``JWTWARDEN_ALGORITHMS`` (comma-separated, default ``ES256``),
        ``JWTWARDEN_REVOCATION_URL`` (a feed URL, the service's ``redis://`` URL, or ``off``;
        default: the service's feed),
        ``JWTWARDEN_REALM``, and for tuning the key cache ``JWTWARDEN_JWKS_MIN_AGE`` and
        ``JWTWARDEN_JWKS_COOLDOWN`` (seconds, default 30 each). Keyword ``options`` override.
        A missing variable is a :class:`ValueError` naming it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for name in ("JWKS_URL", "ISSUER", "AUDIENCE"):
            value = env.get(f"JWTWARDEN_{name}", "").strip()
            if not value:
                raise ValueError(f"JWTWARDEN_{name} is not set")
            values[name] = value
        settings: dict[str, Any] = {
            "issuer": values["ISSUER"],
            "audience": [a.strip() for a in values["AUDIENCE"].split(",") if a.strip()],
            "algorithms": [
                a.strip() for a in env.get("JWTWARDEN_ALGORITHMS", "ES256").split(",") if a.strip()
            ],
        }
        feed = env.get("JWTWARDEN_REVOCATION_URL", "").strip()
        if feed:
            settings["revocations"] = None if feed.lower() == "off" else feed
        if env.get("JWTWARDEN_REALM", "").strip():
            settings["realm"] = env["JWTWARDEN_REALM"].strip()
        if env.get("JWTWARDEN_PUBLIC_URL", "").strip():
            settings["public_url"] = env["JWTWARDEN_PUBLIC_URL"].strip()
        if env.get("JWTWARDEN_DPOP", "").strip():
            settings["dpop"] = env["JWTWARDEN_DPOP"].strip().lower()
        secret = env.get("JWTWARDEN_DPOP_NONCE_SECRET", "").strip()
        if secret:
            try:
                nonces = DPoPNonces(b64url_decode(secret))
            except (JWTError, ValueError):
                raise ValueError("JWTWARDEN_DPOP_NONCE_SECRET must be 32 or more bytes, "
                                 "base64url") from None
            settings["dpop_verifier"] = DPoPVerifier(nonces=nonces, require_nonce=True)
        jwks_options: dict[str, Any] = {}
        for name, option in (("JWKS_MIN_AGE", "min_age"), ("JWKS_COOLDOWN", "cooldown")):
            text = env.get(f"JWTWARDEN_{name}", "").strip()
            if text:
                try:
                    jwks_options[option] = float(text)
                except ValueError:
                    raise ValueError(f"JWTWARDEN_{name} must be a number of seconds") from None
        settings.update(options)
        jwks: RemoteJWKS | str = values["JWKS_URL"]
        if jwks_options:
            jwks = RemoteJWKS(values["JWKS_URL"], algorithms=settings.pop("algorithms"), **jwks_options)
        return cls(jwks, **settings)

    # ---- properties -------------------------------------------------------------------------

    @property
    def jwks(self) -> RemoteJWKS:
        return self._jwks

    @property
    def verifier(self) -> RemoteVerifier:
        return self._verifier

    @property
    def revocations(self) -> RevocationCheck | None:
        return self._revocations

    @property
    def realm(self) -> str:
        return self._realm

    @property
    def challenge(self) -> str:
        """``WWW-Authenticate`` of a request without credentials: ``Bearer realm="..."`` and,
        unless DPoP is required (then only it), ``DPoP realm="...", algs="..."``."""
        return ", ".join(self._challenges())

    @property
    def also_trusted(self) -> tuple[LegacyIssuer, ...]:
        """The previous issuers trusted until their not-after dates (``also_trust``)."""
        return self._legacy

    @property
    def dpop(self) -> str:
        """``"allowed"`` or ``"required"``."""
        return self._dpop_mode

    @property
    def dpop_verifier(self) -> DPoPVerifier:
        return self._dpop

    @property
    def public_url(self) -> str | None:
        return self._public_url

    # ---- the checks -------------------------------------------------------------------------

    def _legacy_for(self, token: str) -> LegacyIssuer | None:
        """The trusted previous issuer this token's header points to now, if any."""
        segment = token.partition(".")[0]
        header = self._legacy_headers.get(segment)
        if header is None:
            try:
                header = parse_header(segment)
            except MalformedToken:
                return None  # the remote verifier gives the precise error
            if len(self._legacy_headers) >= _HEADER_CACHE_SIZE:
                self._legacy_headers.clear()
            self._legacy_headers[segment] = header
        now = self._clock()
        return next((item for item in self._legacy if item.accepts(header, now)), None)

    def _dpop_url(self, path: str | None) -> str:
        if self._public_url is None:
            log.warning("a DPoP request was refused: set public_url (JWTWARDEN_PUBLIC_URL) to "
                        "the URL clients reach this API at")
            raise InvalidDPoPProof("this server cannot check DPoP proofs", reason="no_public_url")
        if path is None:
            raise InvalidDPoPProof("this integration gives no request path", reason="no_request")
        return expected_url(self._public_url, path)

    def authenticate(
        self, authorization: Sequence[str] | str | None, query: str | bytes = "", *,
        dpop: Sequence[str] | str | None = None, method: str | None = None,
        path: str | None = None,
    ) -> Claims:
        """Token from the header, verified, not revoked: its claims, or a ``JWTError``.

        ``dpop``: the ``DPoP`` header values; ``method`` and ``path`` (as received,
        percent-encoded, without the query) locate the request for the proof.
        """
        scheme, token = credentials(authorization, query)
        if scheme == "dpop":
            try:
                proof = self._dpop.verify(dpop, method=method or "", url=self._dpop_url(path),
                                          access_token=token)
                claims = self._verifier.verify(token, proof=proof)
            except JWTError as error:
                error.dpop_scheme = True  # type: ignore[attr-defined]
                raise
        else:
            if self._dpop_mode == "required":
                raise MissingToken("a DPoP-bound token is required")
            legacy = self._legacy_for(token) if self._legacy else None
            if legacy is not None:
                claims = legacy.verify(token, self._clock())
            else:
                claims = self._verifier.verify(token)
        if self._revocations is not None:
            self._revocations.check(claims)
        return claims

    async def aauthenticate(
        self, authorization: Sequence[str] | str | None, query: str | bytes = "", *,
        dpop: Sequence[str] | str | None = None, method: str | None = None,
        path: str | None = None,
    ) -> Claims:
        """Async :meth:`authenticate` (key fetches and replay stores do not block the loop)."""
        scheme, token = credentials(authorization, query)
        if scheme == "dpop":
            try:
                proof = await self._dpop.averify(dpop, method=method or "",
                                                 url=self._dpop_url(path), access_token=token)
                claims = await self._verifier.averify(token, proof=proof)
            except JWTError as error:
                error.dpop_scheme = True  # type: ignore[attr-defined]
                raise
        else:
            if self._dpop_mode == "required":
                raise MissingToken("a DPoP-bound token is required")
            legacy = self._legacy_for(token) if self._legacy else None
            if legacy is not None:
                claims = legacy.verify(token, self._clock())
            else:
                claims = await self._verifier.averify(token)
        if self._revocations is not None:
            self._revocations.check(claims)
        return claims

    @staticmethod
    def authorize(
        claims: Claims, scopes: frozenset[str] = frozenset(), roles: frozenset[str] = frozenset()
    ) -> None:
        """Raise :class:`InsufficientScope` unless the claims grant every scope and role."""
        if scopes and not scopes <= claims.scopes:
            raise InsufficientScope(scopes, frozenset())
        if roles and not roles <= roles_of(claims):
            raise InsufficientScope(frozenset(), roles)

    def denial(self, error: BaseException) -> Denial:
        """The RFC 6750 answer for ``error`` (any exception; unexpected ones fail closed, 503).

        The answer says why in a fixed ``error_description`` (in the body and in
        ``WWW-Authenticate``); the log gets the stable code at INFO
        (``jwtwarden.resource`` logger, ``extra={"event": "token_refused", "reason": code}``).
        """
        if isinstance(error, MissingToken):
            _log_refusal(401, error.code)
            return self._deny(401, None, "An access token is required", "unauthorized",
                              challenges=self._challenges())
        if isinstance(error, UseDPoPNonce):
            _log_refusal(401, error.code)
            denial = self._deny(401, "use_dpop_nonce", "A DPoP nonce is required",
                                challenges=(self._dpop_challenge,))
            return Denial(denial.status, (*denial.headers, ("dpop-nonce", error.nonce)),
                          denial.error, denial.description)
        if isinstance(error, InvalidDPoPProof):
            _log_refusal(401, f"{error.code}:{error.reason}")
            return self._deny(401, "invalid_dpop_proof", _DPOP_DESCRIPTIONS.get(
                error.reason, "The DPoP proof is invalid"), challenges=(self._dpop_challenge,))
        if isinstance(error, DPoPReplayUnavailable):
            return self._unavailable(5, error.code)
        if isinstance(error, InvalidRequest):
            _log_refusal(400, error.code)
            return self._deny(400, "invalid_request", "The request is malformed")
        if isinstance(error, InsufficientScope):
            _log_refusal(403, error.code)
            if error.scopes:
                return self._deny(403, "insufficient_scope", "The access token lacks a scope",
                                  scope=" ".join(sorted(error.scopes)))
            return self._deny(403, "insufficient_scope", "The access token lacks a role")
        if isinstance(error, JWKSUnavailable):
            return self._unavailable(self._jwks.retry_after(), error.code)
        if isinstance(error, RevocationUnavailable):
            retry = self._feed.retry_after() if self._feed is not None else 5
            return self._unavailable(retry, error.code)
        if isinstance(error, JWTError):
            _log_refusal(401, error.code, getattr(error, "claim", None))
            dpop = isinstance(error, SenderConstrained) or getattr(error, "dpop_scheme", False)
            return self._deny(401, "invalid_token", _description(error),
                              challenges=(self._dpop_challenge,) if dpop else None)
        log.error("unexpected %s while checking a bearer token", type(error).__name__)
        return self._unavailable(5, "internal")

    def _challenges(self) -> tuple[str, ...]:
        """The schemes a request without credentials is told about (RFC 9449 section 7.1)."""
        if self._dpop_mode == "required":
            return (self._dpop_challenge,)
        return (self._challenge, self._dpop_challenge)

    def _deny(self, status: int, error: str | None, description: str,
              body_error: str | None = None, *, scope: str | None = None,
              challenges: tuple[str, ...] | None = None) -> Denial:
        if challenges is None:
            challenges = (self._dpop_challenge,) if self._dpop_mode == "required" and \
                status == 401 else (self._challenge,)
        offered = []
        for challenge in challenges:
            if error is not None:
                challenge += f", error={_quoted(error)}, error_description={_quoted(description)}"
            if scope is not None:
                challenge += f", scope={_quoted(scope)}"
            offered.append(challenge)
        # several challenges in one field (RFC 9110 section 11.6.1): frameworks that keep
        # headers in a dict (FastAPI's HTTPException) keep them all
        headers = (("www-authenticate", ", ".join(offered)), ("cache-control", "no-store"))
        return Denial(status, headers, body_error or error or "unauthorized", description)

    def _unavailable(self, retry_after: int, code: str) -> Denial:
        log.warning("refusing a request: %s (failing closed)", code)
        headers = (("retry-after", str(retry_after)), ("cache-control", "no-store"))
        return Denial(503, headers, "temporarily_unavailable",
                      "Token verification is temporarily unavailable")

    # ---- background work ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the revocation feed's thread (WSGI) and wait briefly for its first snapshot.

        Called by the WSGI integrations on the first request of each process; idempotent.
        """
        feed = self._feed
        if feed is None:
            return
        with self._start_lock:
            feed.start()
        feed.wait_synced(self._startup_wait)

    def stop(self) -> None:
        """Stop the revocation feed's thread."""
        if self._feed is not None:
            self._feed.stop()

    async def astart(self) -> None:
        """Start the revocation feed's task on this loop (ASGI), waiting briefly for a snapshot.

        Called on lifespan startup or on the first request; idempotent.
        """
        feed = self._feed
        if feed is None:
            return
        await feed.astart()
        await feed.await_synced(self._startup_wait)

    async def astop(self) -> None:
        """Cancel the revocation feed's task."""
        if self._feed is not None:
            await self._feed.astop()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """``FastAPI(lifespan=server.lifespan)`` / ``Starlette(lifespan=...)``: start, then stop."""
        await self.astart()
        try:
            yield
        finally:
            await self.astop()

    def ensure_started(self) -> None:
        """:meth:`start` unless the feed already runs in this process (cheap; every request)."""
        if self.needs_start():
            self.start()

    def needs_start(self) -> bool:
        """Whether :meth:`ensure_started` would start the feed's thread (cheap, no I/O)."""
        feed = self._feed
        return feed is not None and not feed.thread_runs_here()

    async def aensure_started(self) -> None:
        """:meth:`astart` unless the feed already runs on this loop (cheap; every request)."""
        feed = self._feed
        if feed is None or feed.task_runs_here():
            return
        if not feed.thread_runs_here():
            await self.astart()

    def __repr__(self) -> str:
        return f"ResourceServer({self._jwks!r}, realm={self._realm!r})"

