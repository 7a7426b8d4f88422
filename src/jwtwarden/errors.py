"""Every way jwtwarden can refuse something, as one typed hierarchy.

Each class carries a stable, machine-readable ``code``; tests, logs and HTTP answers use
the code, never the message. Messages say what was wrong without echoing the token, a key
or a secret.

::

    JWTError                                    (code: error)
    ├── MalformedToken                          malformed
    │   ├── TokenTooLarge                       token_too_large
    │   └── MalformedClaim (+ ClaimError)       malformed      .claim
    ├── UnsupportedHeader                       unsupported_header   .header
    ├── AlgorithmNotAllowed                     alg_not_allowed
    ├── UnknownKey                              unknown_key
    ├── BadSignature                            bad_signature
    ├── ClaimError                              (abstract)     .claim
    │   ├── MissingClaim                        missing_claim
    │   ├── Expired                             expired
    │   ├── NotYetValid                         not_yet_valid
    │   ├── IssuedInFuture                      issued_in_future
    │   ├── BadIssuer                           bad_issuer
    │   ├── BadAudience                         bad_audience
    │   ├── BadType                             bad_type       (the ``typ`` header)
    │   └── SenderConstrained                   sender_constrained (``cnf``: needs a proof)
    ├── InvalidDPoPProof                        invalid_dpop_proof   .reason (RFC 9449)
    │   └── UseDPoPNonce                        use_dpop_nonce       .nonce
    ├── Revoked                                 revoked
    ├── InvalidCredentials                      invalid_credentials
    ├── NotTokenOwner                           not_token_owner (RFC 7009: another client's token)
    ├── RateLimited                             rate_limited   .retry_after
    ├── TemporarilyUnavailable                  temporarily_unavailable
    │   ├── RevocationUnavailable               revocation_unavailable
    │   ├── Overloaded                          overloaded   .retry_after (login capacity)
    │   ├── DPoPReplayUnavailable               dpop_replay_unavailable
    │   └── JWKSUnavailable                     jwks_unavailable
    │       └── JWKSInvalid                     jwks_invalid
    │           └── JWKSTooLarge                jwks_too_large
    ├── KeySourceError                          key_source_error (a key file or URL unusable)
    │   └── JWKSURLRefused                      jwks_url_refused (not https, not loopback)
    ├── MissingToken                            missing_token   (no bearer token sent)
    ├── InvalidRequest                          invalid_request (token sent the wrong way, or a
    │                                                            malformed token request)
    ├── InsufficientScope                       insufficient_scope   .scopes .roles
    ├── RefreshError                            (abstract)
    │   ├── InvalidRefreshToken                 invalid_refresh_token
    │   ├── RefreshReused                       refresh_reused
    │   ├── RefreshExpired                      refresh_expired
    │   ├── RefreshRevoked                      refresh_revoked
    │   ├── RefreshKeyMismatch                  refresh_key_mismatch (DPoP: another key)
    │   └── FamilyTooOld                        family_too_old
    ├── OAuthError                              (abstract)     .error .reason   RFC 6749 5.2
    │   ├── InvalidClient                       invalid_client
    │   ├── UnauthorizedClient                  unauthorized_client
    │   ├── InvalidScope                        invalid_scope
    │   └── UnsupportedGrantType                unsupported_grant_type
    ├── NoSession                               no_session     (a client holds no session)
    ├── TokenEndpointError                      token_endpoint_error   .status (an answer
    │                                                                  outside the protocol)
    ├── BadKey                                  (abstract; also a ValueError)
    │   ├── InvalidKey                          invalid_key
    │   └── WeakKey                             weak_key
    └── SensitiveClaim (+ ValueError)           sensitive_claim   .claim

Configuration mistakes made by the programmer (an empty algorithm allowlist, a negative
leeway) raise plain :class:`ValueError` at construction time, never at verification time.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmNotAllowed",
    "BadAudience",
    "BadIssuer",
    "BadKey",
    "BadSignature",
    "BadType",
    "ClaimError",
    "DPoPReplayUnavailable",
    "Expired",
    "FamilyTooOld",
    "InsufficientScope",
    "InvalidClient",
    "InvalidCredentials",
    "InvalidDPoPProof",
    "InvalidKey",
    "InvalidRefreshToken",
    "InvalidRequest",
    "InvalidScope",
    "IssuedInFuture",
    "JWKSInvalid",
    "JWKSTooLarge",
    "JWKSURLRefused",
    "JWKSUnavailable",
    "JWTError",
    "KeySourceError",
    "MalformedClaim",
    "MalformedToken",
    "MissingClaim",
    "MissingToken",
    "NoSession",
    "NotTokenOwner",
    "NotYetValid",
    "OAuthError",
    "Overloaded",
    "RateLimited",
    "RefreshError",
    "RefreshExpired",
    "RefreshKeyMismatch",
    "RefreshReused",
    "RefreshRevoked",
    "RevocationUnavailable",
    "Revoked",
    "SenderConstrained",
    "SensitiveClaim",
    "TemporarilyUnavailable",
    "TokenEndpointError",
    "TokenTooLarge",
    "UnauthorizedClient",
    "UnknownKey",
    "UnsupportedGrantType",
    "UnsupportedHeader",
    "UseDPoPNonce",
    "WeakKey",
]


class JWTError(Exception):
    """Base of every jwtwarden rejection. ``code`` is stable across releases."""

    code: str = "error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.replace("_", " "))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class MalformedToken(JWTError):
    """The token is not a well-formed compact JWS / JWT (encoding, JSON, structure)."""

    code = "malformed"


class TokenTooLarge(MalformedToken):
    """The token exceeds the configured size limit; nothing of it was decoded."""

    code = "token_too_large"


class UnsupportedHeader(JWTError):
    """A header parameter jwtwarden refuses (``jku``, ``x5u``, ``jwk``, ``x5c``, ``crit``, ``b64``, ``zip``...)."""

    code = "unsupported_header"

    def __init__(self, header: str, message: str = "") -> None:
        self.header = header
        super().__init__(message or f"header parameter {header!r} is not accepted")


class AlgorithmNotAllowed(JWTError):
    """The header ``alg`` is not in the allowlist or is not the algorithm bound to the key."""

    code = "alg_not_allowed"


class UnknownKey(JWTError):
    """No key of the key set can be selected for this token (unknown or ambiguous ``kid``)."""

    code = "unknown_key"


class BadSignature(JWTError):
    """The signature does not verify under the selected key."""

    code = "bad_signature"


class ClaimError(JWTError):
    """A claim (or the ``typ`` header) failed validation; ``claim`` names it."""

    code = "invalid_claim"

    def __init__(self, claim: str, message: str = "") -> None:
        self.claim = claim
        super().__init__(message or f"claim {claim!r} failed validation ({self.code})")


class MalformedClaim(MalformedToken, ClaimError):
    """A registered claim has the wrong JSON type (``exp`` as a string, ``aud`` as a number...)."""

    code = "malformed"

    def __init__(self, claim: str, message: str = "") -> None:
        ClaimError.__init__(self, claim, message or f"claim {claim!r} has the wrong type")


class MissingClaim(ClaimError):
    code = "missing_claim"

    def __init__(self, claim: str, message: str = "") -> None:
        super().__init__(claim, message or f"required claim {claim!r} is missing")


class Expired(ClaimError):
    code = "expired"


class NotYetValid(ClaimError):
    code = "not_yet_valid"


class IssuedInFuture(ClaimError):
    code = "issued_in_future"


class BadIssuer(ClaimError):
    code = "bad_issuer"


class BadAudience(ClaimError):
    code = "bad_audience"


class BadType(ClaimError):
    code = "bad_type"


class SenderConstrained(ClaimError):
    """The token is bound to a key (``cnf``, RFC 7800 / RFC 9449): it is accepted only with a
    proof of possession of that key (:meth:`jwtwarden.Verifier.verify_bound`), never as a
    bearer token."""

    code = "sender_constrained"

    def __init__(self, message: str = "") -> None:
        super().__init__("cnf", message or "the token is bound to a key; present it with a "
                                           "DPoP proof of that key")


class InvalidDPoPProof(JWTError):
    """A DPoP proof (RFC 9449) was refused; ``reason`` says why (``bad_htu``, ``replayed``...)."""

    code = "invalid_dpop_proof"

    def __init__(self, message: str = "", *, reason: str = "invalid") -> None:
        self.reason = reason
        super().__init__(message)


class UseDPoPNonce(InvalidDPoPProof):
    """RFC 9449 sections 8 and 9: the proof must carry the server's current nonce, ``nonce``
    (sent back in the ``DPoP-Nonce`` header)."""

    code = "use_dpop_nonce"

    def __init__(self, message: str = "", *, nonce: str) -> None:
        self.nonce = nonce
        super().__init__(message or "a DPoP nonce is required", reason="use_dpop_nonce")


class Revoked(JWTError):
    """The token (its ``jti``, its session or every session of its subject) was revoked."""

    code = "revoked"


class InvalidCredentials(JWTError):
    """Login refused: unknown user, wrong password or disabled account (indistinguishable)."""

    code = "invalid_credentials"


class RateLimited(JWTError):
    """Too many failed attempts; ``retry_after`` says in how many seconds to try again."""

    code = "rate_limited"

    def __init__(self, retry_after: int, message: str = "") -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message or f"too many failed attempts; retry in {self.retry_after} s")


class TemporarilyUnavailable(JWTError):
    """A backing service (database, deny list, key source) is unreachable; retry later.

    The answer is "no" (fail closed); the HTTP layer says 503 with ``Retry-After``.
    """

    code = "temporarily_unavailable"


class Overloaded(TemporarilyUnavailable):
    """More work of one kind (password hashing) than the service takes at once; ``retry_after``
    seconds is a good time to try again. Refused at once instead of queued without bound."""

    code = "overloaded"

    def __init__(self, message: str = "", *, retry_after: int = 1) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message or "too much work at once; retry shortly")


class RevocationUnavailable(TemporarilyUnavailable):
    """The revocation state cannot be read (deny list unreachable); failing closed."""

    code = "revocation_unavailable"


class DPoPReplayUnavailable(TemporarilyUnavailable):
    """The DPoP replay store cannot tell whether a proof is new (full, or unreachable); failing
    closed."""

    code = "dpop_replay_unavailable"


class JWKSUnavailable(TemporarilyUnavailable):
    """No usable key set: the JWKS endpoint failed and no copy fresh enough is left."""

    code = "jwks_unavailable"


class JWKSInvalid(JWKSUnavailable):
    """The JWKS endpoint answered something that is not an acceptable public JWKS."""

    code = "jwks_invalid"


class JWKSTooLarge(JWKSInvalid):
    """The JWKS response is larger than the size cap; it was not read further."""

    code = "jwks_too_large"


class KeySourceError(JWTError):
    """Keys could not be obtained from the source the user named (a file, a URL)."""

    code = "key_source_error"


class JWKSURLRefused(KeySourceError):
    """The JWKS URL is neither ``https://`` nor ``http://`` to a loopback address."""

    code = "jwks_url_refused"


class MissingToken(JWTError):
    """The request carries no bearer token (no ``Authorization`` header, or another scheme)."""

    code = "missing_token"


class InvalidRequest(JWTError):
    """The request presents a token wrongly (several headers, bad syntax, or in the URL), or a
    token request is malformed (a parameter missing or repeated, the wrong content type)."""

    code = "invalid_request"


class InsufficientScope(JWTError):
    """The token is valid but lacks a required scope or role."""

    code = "insufficient_scope"

    def __init__(self, scopes: frozenset[str], roles: frozenset[str]) -> None:
        self.scopes = scopes
        self.roles = roles
        super().__init__("the token lacks a required " + ("scope" if scopes else "role"))


class RefreshError(JWTError):
    """A refresh token was refused."""

    code = "invalid_grant"


class InvalidRefreshToken(RefreshError):
    """Not a jwtwarden refresh token (prefix, length or checksum wrong) or unknown to us."""

    code = "invalid_refresh_token"


class RefreshReused(RefreshError):
    """An already-rotated refresh token came back: the whole family has been revoked."""

    code = "refresh_reused"


class RefreshExpired(RefreshError):
    """The refresh token passed its idle lifetime."""

    code = "refresh_expired"


class RefreshRevoked(RefreshError):
    """The refresh token's family was revoked (logout, reuse, logout-everywhere)."""

    code = "refresh_revoked"


class RefreshKeyMismatch(RefreshError):
    """The refresh token is bound to a DPoP key (RFC 9449) and the request proved another; the
    session is left as it was."""

    code = "refresh_key_mismatch"


class FamilyTooOld(RefreshError):
    """The family passed its absolute lifetime; the user must log in again."""

    code = "family_too_old"


class OAuthError(JWTError):
    """A token-endpoint request was refused with an RFC 6749 section 5.2 error.

    ``error`` is the RFC 6749 error code (the same as ``code``); ``reason`` is jwtwarden's
    finer reason when the service gave one (e.g. ``assertion_replayed``), else ``None``.
    """

    code = "oauth_error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)

    @property
    def error(self) -> str:
        return self.code


class InvalidClient(OAuthError):
    """Client authentication failed: unknown client, wrong secret, a refused assertion, or an
    authentication method this client is not registered for (HTTP 401)."""

    code = "invalid_client"


class UnauthorizedClient(OAuthError):
    """The authenticated client is not registered for this grant type."""

    code = "unauthorized_client"


class InvalidScope(OAuthError):
    """The requested scope is malformed or outside what the client (or session) was granted."""

    code = "invalid_scope"


class UnsupportedGrantType(OAuthError):
    """The token endpoint does not support this ``grant_type``."""

    code = "unsupported_grant_type"


class NoSession(JWTError):
    """A client holds no session: never logged in, logged out, or its refresh token was refused."""

    code = "no_session"


class TokenEndpointError(JWTError):
    """The token service answered outside its protocol (an undocumented status or body).

    ``status`` is the HTTP status (0 when there was no HTTP answer to read).
    """

    code = "token_endpoint_error"

    def __init__(self, message: str = "", *, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class BadKey(JWTError, ValueError):
    """A key could not be loaded. Also a :class:`ValueError`: it is raised at load time."""

    code = "invalid_key"


class InvalidKey(BadKey):
    """The key material is malformed or does not fit its declared ``alg``/``kty``."""

    code = "invalid_key"


class WeakKey(BadKey):
    """The key is below the minimum strength for its algorithm."""

    code = "weak_key"


class SensitiveClaim(JWTError, ValueError):
    """Issuance refused: the payload linter flagged a claim as sensitive."""

    code = "sensitive_claim"

    def __init__(self, claim: str, finding_code: str, message: str = "") -> None:
        self.claim = claim
        self.finding_code = finding_code
        super().__init__(
            message or f"claim {claim!r} looks sensitive ({finding_code}); "
            "remove it or allow it explicitly"
        )


class NotTokenOwner(JWTError):
    """RFC 7009 section 2.1: an authenticated client asked to revoke a token issued to
    another client (or to a user's own login); the token is left alone."""

    code = "not_token_owner"
