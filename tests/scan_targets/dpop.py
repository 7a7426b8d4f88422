"""DPoP targets for the scanner's tests: a deliberately lenient one (TEST CODE ONLY: never copy
it) and jwtwarden's ResourceServer, each as an ASGI app with ``GET /me`` and a bound token."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jwtwarden import Issuer, Key, KeySet, Verifier, errors
from jwtwarden.dpop import DPoPNonces, DPoPVerifier
from jwtwarden.resource.asgi import BearerAuthMiddleware, claims_of
from jwtwarden.resource.jwks_client import RemoteJWKS
from jwtwarden.resource.server import ResourceServer
from jwtwarden.testing import MockJWKS
from tests.scan_targets.vulnerable import AUD, ISS

PATH = "/me"
BASE = "http://testserver"  # what the scanner's in-process transport calls the app


@dataclass(frozen=True)
class DPoPTarget:
    app: Any
    token: str = field(repr=False)
    key: Key = field(repr=False)
    expected: frozenset[str]  # the dpop-* attacks the scan must report accepted


def _bound(keys: KeySet, client: Key) -> str:
    return Issuer(keys, issuer=ISS, audience=AUD).issue("user-1", {"cnf": {"jkt": client.thumbprint()}})


def lenient() -> DPoPTarget:
    """Checks the token properly, but of the proof only that its jwk is the token's key, by
    thumbprint; and takes a bound token as a bearer token too. What a first DPoP
    implementation often looks like."""
    keys = KeySet.generate("ES256")
    client = Key.generate("ES256")
    verifier = Verifier(keys, algorithms=["ES256"], issuer=ISS, audience=AUD, unsafe_allow_cnf=True)

    def jkt(jwk: dict[str, Any]) -> str:  # by hand, over whatever members are there
        canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
        return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()

    async def me(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            claims = verifier.verify(token)
        except errors.JWTError:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        if scheme.lower() == "dpop":
            proof = request.headers.get("dpop", "")
            try:
                header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "=="))
                bound = jkt(header["jwk"]) == claims.get("cnf", {}).get("jkt")
            except (ValueError, KeyError, TypeError, IndexError):
                bound = False
            if not bound:
                return JSONResponse({"error": "invalid_dpop_proof"}, status_code=401)
        elif scheme.lower() != "bearer":
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"sub": claims.sub})

    expected = frozenset({
        "dpop-bound-token-as-bearer", "dpop-proof-replayed", "dpop-wrong-htm", "dpop-wrong-htu",
        "dpop-missing-ath", "dpop-wrong-ath", "dpop-stale-iat", "dpop-alg-none", "dpop-hmac-proof",
        "dpop-private-key-in-jwk",
    })
    return DPoPTarget(Starlette(routes=[Route(PATH, me)]), _bound(keys, client), client, expected)


def resource_server(*, nonces: bool = False, alg: str = "ES256") -> DPoPTarget:
    """jwtwarden's ResourceServer (ASGI middleware), DPoP proofs checked against ``BASE``,
    with server nonces required when ``nonces``."""
    keys = KeySet.generate("ES256")
    client = Key.generate(alg)
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], transport=MockJWKS(keys).transport)
    verifier = (DPoPVerifier(nonces=DPoPNonces(b"n" * 32), require_nonce=True) if nonces else None)
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=None, public_url=BASE,
                            dpop_verifier=verifier)

    async def me(request: Request) -> Response:
        return JSONResponse({"sub": claims_of(request).sub})

    from starlette.middleware import Middleware

    app = Starlette(routes=[Route(PATH, me)], middleware=[Middleware(BearerAuthMiddleware, server=server)])
    return DPoPTarget(app, _bound(keys, client), client, frozenset())
