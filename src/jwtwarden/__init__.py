"""jwtwarden: secure-by-default JSON Web Tokens.

::

    from jwtwarden import KeySet, Issuer, Verifier, errors

    keys = KeySet.generate("ES256")
    token = Issuer(keys, issuer=ISS, audience=AUD).issue(subject="u1", claims={"role": "user"})
    claims = Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"]).verify(token)

Every rejection raises a subclass of :class:`jwtwarden.errors.JWTError` with a stable
``code``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jwtwarden import errors
from jwtwarden.issue import Issuer
from jwtwarden.keys import AsymmetricKey, HMACKey, Key, KeySet
from jwtwarden.lint import Finding, Severity, lint_claims
from jwtwarden.policy import Claims, Clock
from jwtwarden.unverified import UnverifiedToken, decode_unverified
from jwtwarden.verify import CachingVerifier, JWSVerifier, VerifiedJWS, Verifier

if TYPE_CHECKING:
    from jwtwarden.resource.jwks_client import RemoteJWKS, RemoteVerifier
    from jwtwarden.resource.server import ResourceServer
    from jwtwarden.revocation import RevocationSet

# Resource-server pieces load httpx; import them only when first used.
_LAZY = {
    "RemoteJWKS": "jwtwarden.resource.jwks_client",
    "RemoteVerifier": "jwtwarden.resource.jwks_client",
    "ResourceServer": "jwtwarden.resource.server",
    "RevocationSet": "jwtwarden.revocation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jwtwarden' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

__all__ = [
    "AsymmetricKey",
    "CachingVerifier",
    "Claims",
    "Clock",
    "Finding",
    "HMACKey",
    "Issuer",
    "JWSVerifier",
    "Key",
    "KeySet",
    "RemoteJWKS",
    "RemoteVerifier",
    "ResourceServer",
    "RevocationSet",
    "Severity",
    "UnverifiedToken",
    "VerifiedJWS",
    "Verifier",
    "__version__",
    "decode_unverified",
    "errors",
    "lint_claims",
]

__version__ = "0.1.0.dev0"
