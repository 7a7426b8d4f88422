"""The OAuth 2.0 token endpoint's decisions: client authentication and the grants.

``POST /v1/auth/token`` (the web layer only parses the form and translates errors) calls:

1. :meth:`TokenGrants.authenticate` — at most one method per request (RFC 6749 section 2.3):

   - ``client_secret_basic``: HTTP Basic with the client id and secret (both
     form-urlencoded first, RFC 6749 section 2.3.1), for clients registered with a secret;
   - ``private_key_jwt`` (RFC 7523 section 2.2): ``client_assertion_type`` =
     ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and a ``client_assertion``
     signed by a key of the client's registered JWKS (or JWKS URL). The assertion goes
     through the same strict :class:`~jwtwarden.Verifier` as every token: public-key
     algorithms only, bound to the key; ``iss`` = ``sub`` = the client id; ``aud`` the
     token endpoint or the issuer; ``exp`` required and at most 5 minutes ahead; a ``jti``
     that is recorded until the assertion expires and never accepted again (the insert of
     its primary key decides, atomically across replicas);
   - none: a public client. Only the ``refresh_token`` grant allows it (sessions from
     ``/v1/auth/login`` belong to no client); a ``client_id`` naming a registered client is
     refused, since registered clients must authenticate.

2. :meth:`TokenGrants.client_credentials` (RFC 6749 section 4.4): the client must be
   registered for the grant; the requested ``scope`` must lie within its allowed scope (none
   requested: all of it). The access token has ``sub`` and ``client_id`` (RFC 9068) = the
   client id, ``aud`` = the client's registered audience (else the service's), the granted
   ``scope``, and no refresh token and no session.

3. :meth:`TokenGrants.refresh` (RFC 6749 section 6): rotation is
   :meth:`SessionService.refresh`'s, with its reuse detection and grace window; before it,
   an authenticated client must hold the grant and the session must not belong to another
   client, and a requested ``scope`` must lie within the session's (the session's scope is
   issued, and named in the answer).

Refusals are :class:`~jwtwarden.errors.OAuthError` subclasses (``invalid_client``,
``unauthorized_client``, ``invalid_scope``, ``unsupported_grant_type``),
:class:`~jwtwarden.errors.InvalidRequest`, or a :class:`~jwtwarden.errors.RefreshError`
(``invalid_grant``). An :class:`~jwtwarden.errors.InvalidClient` carries a ``reason`` only
once the assertion's signature has verified: before that, nobody learns more than "no".
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from jwtwarden.errors import (
    ClaimError,
    InvalidClient,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidRequest,
    InvalidScope,
    JWTError,
    TemporarilyUnavailable,
    UnauthorizedClient,
)
from jwtwarden.keys import KeySet
from jwtwarden.policy import DEFAULT_LEEWAY, Claims, Clock, system_clock
from jwtwarden.resource.jwks_client import RemoteJWKS, RemoteVerifier, load_public_jwks
from jwtwarden.service.config import Settings
from jwtwarden.service.sessions.accounts import ASSERTION_ALGORITHMS, Accounts, Client, parse_scope
from jwtwarden.service.sessions.keyring import KeyRing
from jwtwarden.service.sessions.refresh_tokens import refresh_token_hash, validate_refresh_token
from jwtwarden.service.sessions.service import SessionService, TokenPair
from jwtwarden.service.storage.db import Database
from jwtwarden.service.storage.schema import client_assertions, families, refresh_tokens
from jwtwarden.unverified import decode_unverified
from jwtwarden.verify import Verifier

__all__ = [
    "ASSERTION_TYPE",
    "MAX_ASSERTION_LIFETIME",
    "ClientToken",
    "TokenGrants",
]

events = logging.getLogger("jwtwarden.events")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300  # seconds an assertion's exp may lie ahead (plus the leeway)
# typ values a client assertion may carry (none, plain JWT, draft-ietf-oauth-rfc7523bis)
_ASSERTION_TYPES = frozenset({"jwt", "application/jwt", "client-authentication+jwt",
                              "application/client-authentication+jwt"})
_MAX_JTI = 255
_CACHE_LIMIT = 1024  # verifiers kept per process (one per client and key set)


@dataclass(frozen=True)
class ClientToken:
    """The answer to a client_credentials grant: an access token, no refresh token."""

    access_token: str
    expires_in: int
    scope: str
    client_id: str
    dpop_jkt: str | None = None

    @property
    def token_type(self) -> str:
        return "DPoP" if self.dpop_jkt else "Bearer"

    def __repr__(self) -> str:  # the token never appears in a repr
        return f"ClientToken(client_id={self.client_id!r}, scope={self.scope!r}, expires_in={self.expires_in})"


class TokenGrants:
    """Client authentication and the grants of ``POST /v1/auth/token``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        keyring: KeyRing,
        accounts: Accounts,
        sessions: SessionService,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._settings = settings
        self._keyring = keyring
        self._accounts = accounts
        self._sessions = sessions
        self._clock = clock
        self._local: dict[tuple[str, str], Verifier] = {}
        self._remote: dict[tuple[str, str], RemoteVerifier] = {}

    @property
    def token_endpoint(self) -> str:
        return self._settings.issuer.rstrip("/") + "/v1/auth/token"

    # ---- client authentication ----------------------------------------------------------

    async def authenticate(
        self, basic: tuple[str, str] | None, form: Mapping[str, str]
    ) -> Client | None:
        """The authenticated client, or None for a public client (no credentials at all)."""
        has_assertion = "client_assertion" in form or "client_assertion_type" in form
        if "client_secret" in form:
            raise InvalidClient("client_secret_post is not supported: send the secret with HTTP Basic")
        if basic is not None and has_assertion:
            raise InvalidRequest("use one client authentication method per request")
        claimed = form.get("client_id")
        if basic is not None:
            client_id, secret = basic
            if claimed is not None and claimed != client_id:
                raise InvalidClient("client_id is not the authenticated client")
            try:
                return await self._accounts.authenticate_client(client_id, secret, None)
            except InvalidCredentials:
                raise InvalidClient("client authentication failed") from None
        if has_assertion:
            return await self._assertion_client(form, claimed)
        if claimed is not None and await self._accounts.get_client(claimed) is not None:
            raise InvalidClient("this client is registered and must authenticate")
        return None

    async def _assertion_client(self, form: Mapping[str, str], claimed: str | None) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient("client_assertion_type must be " + ASSERTION_TYPE,
                                reason="unsupported_assertion_type")
        assertion = form.get("client_assertion") or ""
        try:
            unverified = decode_unverified(assertion)
        except JWTError:
            raise InvalidClient("the client assertion is not a well-formed JWT") from None
        client_id = claimed if claimed is not None else unverified.payload.get("sub")
        client = None
        if isinstance(client_id, str):
            client = await self._accounts.get_client(client_id)
        if client is None or client.disabled or client.auth_method != "private_key_jwt":
            raise InvalidClient("client authentication failed")
        claims = await self._verify(client, assertion)
        # Only a holder of the client's private key gets this far: reasons may be precise.
        typ = unverified.header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ASSERTION_TYPES):
            raise InvalidClient("the assertion's typ is not a client assertion's", reason="bad_type")
        if claims.sub != client.id:
            raise InvalidClient("the assertion's sub is not the client id", reason="bad_subject")
        now = self._clock()
        if claims.exp > now + MAX_ASSERTION_LIFETIME + DEFAULT_LEEWAY:
            raise InvalidClient(f"the assertion's exp is more than {MAX_ASSERTION_LIFETIME} s ahead",
                                reason="assertion_lifetime")
        jti = claims.jti
        if not isinstance(jti, str) or not 1 <= len(jti) <= _MAX_JTI or not jti.isprintable():
            raise InvalidClient(f"the assertion's jti must be 1-{_MAX_JTI} printable characters",
                                reason="malformed")
        expires_at = claims.exp + DEFAULT_LEEWAY  # as long as the verifier would accept it

        def record(conn: Connection) -> None:
            conn.execute(client_assertions.insert().values(
                client_id=client.id, jti=jti, expires_at=expires_at))

        try:
            await self._db.run(record)
        except sa.exc.IntegrityError:
            events.warning("client assertion replayed (client %s)", client.id,
                           extra={"event": "assertion_replayed", "client": client.id})
            raise InvalidClient("this client assertion was already used",
                                reason="assertion_replayed") from None
        return client

    async def _verify(self, client: Client, assertion: str) -> Claims:
        options: dict[str, Any] = {
            "issuer": client.id,
            "audience": [self.token_endpoint, self._settings.issuer],
            "required_claims": ("sub", "jti"),
            "clock": self._clock,
        }
        try:
            if client.jwks_url is not None:
                return await self._remote_verifier(client, options).averify(assertion)
            return self._local_verifier(client, options).verify(assertion)
        except ClaimError as error:  # the signature verified: say which claim
            raise InvalidClient(f"the client assertion was refused ({error.code})",
                                reason=error.code) from None
        except InvalidClient:
            raise
        except TemporarilyUnavailable:
            raise  # the client's JWKS URL is down: 503, not the client's fault
        except JWTError:
            raise InvalidClient("client authentication failed") from None

    def _local_verifier(self, client: Client, options: dict[str, Any]) -> Verifier:
        assert client.jwks is not None  # noqa: S101 - private_key_jwt without a URL has a JWKS
        cache_key = (client.id, client.jwks)
        verifier = self._local.get(cache_key)
        if verifier is None:
            keys: KeySet = load_public_jwks(client.jwks, ASSERTION_ALGORITHMS)
            if len(self._local) >= _CACHE_LIMIT:
                self._local.clear()
            verifier = self._local[cache_key] = Verifier(
                keys, algorithms=sorted({k.alg for k in keys}), **options)
        return verifier

    def _remote_verifier(self, client: Client, options: dict[str, Any]) -> RemoteVerifier:
        assert client.jwks_url is not None  # noqa: S101 - checked by the caller
        cache_key = (client.id, client.jwks_url)
        verifier = self._remote.get(cache_key)
        if verifier is None:
            if len(self._remote) >= _CACHE_LIMIT:
                self._remote.clear()
            jwks = RemoteJWKS(client.jwks_url, algorithms=ASSERTION_ALGORITHMS)
            # assertions are single-use: remembering verified ones would only cost memory
            verifier = self._remote[cache_key] = jwks.verifier(verified_cache_size=0, **options)
        return verifier

    # ---- grants ---------------------------------------------------------------------------

    async def client_credentials(self, client: Client | None, scope: str | None, *,
                                 jkt: str | None = None) -> ClientToken:
        """RFC 6749 section 4.4: an access token for the client itself (bound to the DPoP key
        ``jkt`` when the request proved one, RFC 9449 section 5)."""
        if client is None:
            raise InvalidClient("the client_credentials grant needs client authentication")
        if "client_credentials" not in client.allowed_grants:
            raise UnauthorizedClient("this client is not registered for the client_credentials grant")
        allowed = client.scope.split()
        granted = allowed if scope is None else _requested(scope)
        outside = [s for s in granted if s not in allowed]
        if outside:
            raise InvalidScope(f"scope outside what this client may have: {' '.join(outside)}")
        now = self._clock()
        claims: dict[str, Any] = {"client_id": client.id}
        if granted:
            claims["scope"] = " ".join(granted)
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        jitter = self._settings.access_jitter
        lifetime = self._settings.access_lifetime - (secrets.randbelow(jitter + 1) if jitter else 0)
        access = self._keyring.issuer(now).issue_token(
            client.id, claims, lifetime=lifetime, audience=client.audience)
        events.info("client credentials: token for client %s", client.id,
                    extra={"event": "client_credentials", "client": client.id})
        return ClientToken(access.token, max(0, int(access.exp - now)), " ".join(granted), client.id,
                           jkt)

    async def refresh(
        self, client: Client | None, refresh_token: str | None, scope: str | None, *,
        jkt: str | None = None, require_binding: bool = False,
    ) -> TokenPair:
        """RFC 6749 section 6, with the rotation and reuse rules of ``/v1/auth/refresh``."""
        if not refresh_token:
            raise InvalidRequest("refresh_token is required")
        if client is not None and "refresh_token" not in client.allowed_grants:
            raise UnauthorizedClient("this client is not registered for the refresh_token grant")
        requested = _requested(scope) if scope is not None else None
        # A session's owner and scope never change, so reading them before the rotation
        # (which locks the session) decides the same as reading them inside it.
        owner = await self._session_of(refresh_token)
        if owner is not None:
            owner_client, session_scope = owner
            if client is not None and owner_client not in (None, client.id):
                raise InvalidRefreshToken("the refresh token was issued to another client")
            outside = [s for s in requested or () if s not in session_scope.split()]
            if outside:
                raise InvalidScope(f"scope outside the session's: {' '.join(outside)}")
        return await self._sessions.refresh(refresh_token, jkt=jkt, require_binding=require_binding)

    async def _session_of(self, token: str) -> tuple[str | None, str] | None:
        try:
            token_hash = refresh_token_hash(validate_refresh_token(token))
        except InvalidRefreshToken:
            return None  # the rotation answers it
        row = await self._db.run(lambda conn: conn.execute(
            sa.select(families.c.client_id, families.c.scope)
            .join(refresh_tokens, refresh_tokens.c.family_id == families.c.id)
            .where(refresh_tokens.c.token_hash == token_hash)).first(), write=False)
        return None if row is None else (row[0], row[1] or "")


def _requested(scope: str) -> list[str]:
    try:
        return parse_scope(scope)
    except ValueError as error:
        raise InvalidScope(str(error)) from None

