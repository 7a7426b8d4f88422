"""Targets for the scanner's tests: deliberately vulnerable apps (test code only) and safe ones.

A :class:`ScanTarget` is an ASGI app with one protected endpoint, a valid token for it, the
keys a scan of it is given, and the vulnerable attack ids the scan must report. Adding a
target is one function here and one line in the ``TARGETS`` table of the tests.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jwtwarden import Issuer, Key, KeySet, Verifier, errors
from jwtwarden.jose.algorithms import ALGORITHMS, make_signer
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.jwk import export_jwk
from jwtwarden.jose.strict_json import dumps
from jwtwarden.keys import AsymmetricKey
from tests.scan_targets import vulnerable
from tests.scan_targets.vulnerable import AUD, ISS, Rejected

__all__ = [
    "AUD",
    "ISS",
    "WEAK_SECRET",
    "ScanTarget",
    "protected_app",
]

PATH = "/me"
WEAK_SECRET = b"your-256-bit-secret"  # jwt.io's example secret, in every word list


@dataclass(frozen=True)
class ScanTarget:
    """An app to scan, how to authenticate to it, and what the scan must find.

    ``expected`` is the exact set of vulnerable attack ids, or with ``at_least`` a subset
    (for apps that accept too much to list). Keys are PEM/raw bytes, written to files for
    the CLI's ``--public-key``, ``--private-key`` and ``--secret-file``.
    """

    app: Any
    token: str = field(repr=False)
    expected: frozenset[str] = frozenset()
    at_least: bool = False
    path: str = PATH
    public_key: bytes | None = field(default=None, repr=False)
    private_key: bytes | None = field(default=None, repr=False)
    secret: bytes | None = field(default=None, repr=False)
    verify: Callable[[str], Any] | None = field(default=None, repr=False)
    lifespan: Literal["on", "off"] = "off"  # "on" for apps that set themselves up at start


def protected_app(verify: Callable[[str], Any], *, cookie: str | None = None,
                  rejects: tuple[type[Exception], ...] = (Rejected,),
                  jwks: Mapping[str, Any] | None = None) -> Starlette:
    """One endpoint, ``GET /me``: 200 with the subject when ``verify`` accepts the bearer token
    (or the ``cookie``), 401 when it raises one of ``rejects`` or there is no token. With
    ``jwks``, also ``GET /jwks.json``."""

    async def me(request: Request) -> Response:
        if cookie is not None:
            token = request.cookies.get(cookie, "")
        else:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                token = ""
        if not token:
            return JSONResponse({"error": "missing_token"}, status_code=401)
        try:
            claims = verify(token)
        except rejects:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"sub": str(claims.get("sub"))})

    async def keys(request: Request) -> Response:
        return JSONResponse(dict(jwks or {}))

    routes = [Route(PATH, me, methods=["GET", "POST"])]
    if jwks is not None:
        routes.append(Route("/jwks.json", keys))
    return Starlette(routes=routes)


def slow_app(*, answer_first: int = 0) -> Any:
    """Answers the first ``answer_first`` requests like a no-verify app, then hangs each
    request for a minute (a dead backend behind a live socket)."""
    served = 0
    inner = protected_app(vulnerable.no_verify())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal served
        if scope["type"] == "http":
            served += 1
            if served > answer_first:
                await asyncio.sleep(60)  # the target sleeps; the test never does
        await inner(scope, receive, send)

    return app


# ---- keys and tokens ------------------------------------------------------------------------


@functools.cache
def _ec_private() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def _rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def _pem_public(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem_private(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISS, "aud": AUD, "sub": "user-1", "iat": now, "exp": now + 600,
            "jti": "jti-1", "role": "user"} | extra


def sign(alg: str, key: bytes | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
         header: Mapping[str, Any] | None = None, **claims: Any) -> str:
    """A token as a typical issuer writes it (``typ: JWT``), signed with ``key``."""
    h = b64url_encode(dumps(dict(header or {"alg": alg, "typ": "JWT"})))
    p = b64url_encode(dumps(_claims(**claims)))
    signature = make_signer(ALGORITHMS[alg], key)(f"{h}.{p}".encode())
    return f"{h}.{p}.{b64url_encode(signature)}"


# ---- the targets ----------------------------------------------------------------------------


def alg_from_header() -> ScanTarget:
    key = _rsa_private()
    verify = vulnerable.alg_from_header(_pem_public(key), key.public_key())
    jwks = {"keys": [export_jwk(public_key=key.public_key()) | {"alg": "RS256", "use": "sig"}]}
    return ScanTarget(protected_app(verify, jwks=jwks), sign("RS256", key),
                      frozenset({"hmac-public-key-pem"}), public_key=_pem_public(key),
                      verify=verify)


def no_verify() -> ScanTarget:
    verify = vulnerable.no_verify()
    expected = {"alg-none-lowercase-unsigned", "alg-none-uppercase-signed", "signature-removed",
                "signature-wrong-key", "claims-tampered-role", "kid-path-traversal-dev-null",
                "kid-sql-injection-union", "embedded-jwk-attacker-key", "jku-attacker-url",
                "ecdsa-zero-signature", "duplicate-member-alg-none", "oversized-token"}
    return ScanTarget(protected_app(verify), sign("ES256", _ec_private()), frozenset(expected),
                      at_least=True, verify=verify)


def weak_secret() -> ScanTarget:
    verify = vulnerable.weak_secret(WEAK_SECRET)
    return ScanTarget(protected_app(verify), sign("HS256", WEAK_SECRET),
                      frozenset({"weak-secret-forged-token"}), verify=verify)


def embedded_jwk() -> ScanTarget:
    key = _ec_private()
    verify = vulnerable.embedded_jwk(key.public_key())
    return ScanTarget(protected_app(verify), sign("ES256", key),
                      frozenset({"embedded-jwk-attacker-key"}), verify=verify)


def accepts_expired() -> ScanTarget:
    key = _ec_private()
    verify = vulnerable.accepts_expired(key.public_key())
    return ScanTarget(protected_app(verify), sign("ES256", key),
                      frozenset({"exp-in-past", "exp-missing", "exp-as-string", "nbf-in-future"}),
                      private_key=_pem_private(key), verify=verify)


@functools.cache
def _jwtwarden_keys(alg: str) -> KeySet:
    return KeySet.generate(alg)


def jwtwarden_verifier(alg: str = "ES256") -> ScanTarget:
    """The safe app: jwtwarden's Verifier behind the same endpoint; every key given to the scan."""
    keys = _jwtwarden_keys(alg)
    hmac_ = alg.startswith("HS")
    verifier = Verifier(keys if hmac_ else keys.public(), issuer=ISS, audience=AUD,
                        algorithms=[alg])
    token = Issuer(keys, issuer=ISS, audience=AUD).issue("user-1", {"role": "user"})
    key = next(iter(keys))
    secret = private = public = None
    if hmac_:
        secret = _secret_of(key)
    else:
        assert isinstance(key, AsymmetricKey)
        private, public = key.to_pem(private=True), key.to_pem()
    return ScanTarget(protected_app(verifier.verify, rejects=(errors.JWTError,)), token,
                      public_key=public, private_key=private, secret=secret,
                      verify=verifier.verify)


def _secret_of(key: Key) -> bytes:
    return b64url_decode(key.to_jwk(private=True)["k"])


def jwtwarden_middleware(alg: str = "ES256") -> ScanTarget:
    """jwtwarden's resource-server middleware (BearerAuthMiddleware + ResourceServer, keys from
    a mock JWKS endpoint, no revocation feed) in front of the same endpoint; every key given."""
    from jwtwarden.resource.asgi import BearerAuthMiddleware, claims_of
    from jwtwarden.resource.jwks_client import RemoteJWKS
    from jwtwarden.resource.server import ResourceServer
    from jwtwarden.testing import MockJWKS

    keys = _jwtwarden_keys(alg)
    jwks = RemoteJWKS(f"{ISS}/.well-known/jwks.json", algorithms=[alg],
                      transport=MockJWKS(keys).transport)
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=None)

    async def me(request: Request) -> Response:
        return JSONResponse({"sub": claims_of(request).sub})

    app = BearerAuthMiddleware(Starlette(routes=[Route(PATH, me)]), server)
    token = Issuer(keys, issuer=ISS, audience=AUD).issue("user-1", {"role": "user"})
    key = next(iter(keys))
    assert isinstance(key, AsymmetricKey)
    return ScanTarget(app, token, public_key=key.to_pem(), private_key=key.to_pem(private=True))


def jwtwarden_service() -> ScanTarget:
    """jwtwarden's own token service: GET /v1/auth/userinfo with a logged-in user's access
    token; the scan gets the service's public key (as anyone can, from its JWKS) and, to
    try every claim check with validly signed tokens, its private signing key."""
    import tempfile
    from pathlib import Path

    from jwtwarden.service.app import build_state, create_app
    from tests.servicekit import FAST_HASHER, PASSWORD, make_settings

    settings = make_settings(Path(tempfile.mkdtemp(prefix="jwtwarden-scan-")))

    async def prepare() -> tuple[str, AsymmetricKey]:
        state = await build_state(settings, hasher=FAST_HASHER)
        try:
            await state.accounts.add_user("user-1", PASSWORD)
            pair = await state.sessions.login("user-1", PASSWORD)
            key = state.keyring.issuer().key
            assert isinstance(key, AsymmetricKey)
            return pair.access_token, key
        finally:
            await state.close()

    token, key = asyncio.run(prepare())
    app = create_app(settings, hasher=FAST_HASHER, background=False)
    return ScanTarget(app, token, path="/v1/auth/userinfo", public_key=key.to_pem(),
                      private_key=key.to_pem(private=True), lifespan="on")
