"""Where ``inspect`` gets verification keys: a key file, a JWKS file or a JWKS URL.

Every key comes out public (private halves are dropped; HMAC secrets stay secrets, they have
no public half) and bound to one algorithm, as everywhere in jwtwarden.

A JWKS URL must be ``https://``, or ``http://`` to a loopback address; it is fetched once,
with a timeout (5 s), without following redirects, and at most 1 MiB is read. Its keys must
be public: a JWKS with private members (or HMAC secrets) is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from jwtwarden.errors import InvalidKey, JWKSUnavailable, JWKSURLRefused, KeySourceError
from jwtwarden.keys import HMACKey, Key, KeySet
from jwtwarden.policy import is_loopback
from jwtwarden.resource.jwks_client import check_url

__all__ = [
    "JWKS_MAX_BYTES",
    "JWKS_TIMEOUT",
    "JWKSURLRefused",
    "JWKSUnavailable",
    "KeySourceError",
    "check_jwks_url",
    "fetch_jwks",
    "load_jwks_file",
    "load_key_file",
    "verification_keys",
]

JWKS_TIMEOUT = 5.0
JWKS_MAX_BYTES = 1 << 20


def verification_keys(keys: KeySet) -> KeySet:
    """The verification half of ``keys``: public keys, and HMAC secrets as they are."""
    return KeySet(key if isinstance(key, HMACKey) else key.public() for key in keys)


def check_jwks_url(url: str) -> httpx.URL:
    """The parsed URL; :class:`JWKSURLRefused` unless https or http to loopback.

    The same rule as the resource servers' :class:`~jwtwarden.resource.jwks_client.RemoteJWKS`.
    """
    try:
        return check_url(url)
    except ValueError as exc:
        raise JWKSURLRefused(str(exc)) from None


def fetch_jwks(
    url: str,
    *,
    timeout: float = JWKS_TIMEOUT,
    max_bytes: int = JWKS_MAX_BYTES,
    transport: httpx.BaseTransport | None = None,
) -> KeySet:
    """Fetch and load a public JWKS.

    Raises :class:`JWKSURLRefused` for a URL that is not https or loopback http,
    :class:`JWKSUnavailable` for a network error, a timeout, a status other than 200
    (redirects are not followed), a body over ``max_bytes`` or a body that is not JSON, and
    :class:`~jwtwarden.errors.InvalidKey` for a JWKS that does not load (private members
    included).
    """
    parsed = check_jwks_url(url)
    body = bytearray()
    try:
        with (
            httpx.Client(
                timeout=timeout,
                follow_redirects=False,
                transport=transport,
                trust_env=not is_loopback(parsed.host),
            ) as client,
            client.stream("GET", parsed, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != httpx.codes.OK:
                raise JWKSUnavailable(f"the JWKS URL answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise JWKSUnavailable(f"the JWKS is larger than {max_bytes} bytes")
    except httpx.HTTPError as exc:
        raise JWKSUnavailable(f"cannot fetch the JWKS ({type(exc).__name__})") from None
    try:
        data = json.loads(bytes(body))
    except ValueError:
        raise JWKSUnavailable("the JWKS URL did not return JSON") from None
    return KeySet.from_public_jwks(data)


def _read_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def load_jwks_file(path: Path) -> KeySet:
    """The verification keys of a JWKS file (a single JWK works too).

    Raises :class:`OSError` when the file cannot be read and
    :class:`~jwtwarden.errors.InvalidKey` (or ``WeakKey``) when it does not load.
    """
    data = _read_json(path.read_bytes())
    if data is None:
        raise InvalidKey("the JWKS file is not JSON")
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    return verification_keys(KeySet.from_jwks(data))


def load_key_file(path: Path, alg: str | None = None, *, kid: str | None = None) -> KeySet:
    """The verification key in ``path``: a PEM key, a JWK, a JWKS, or a raw HMAC secret.

    ``alg`` binds a key that does not name its algorithm (PEM keys never do) and must agree
    with a JWK's own ``alg``. ``kid`` names a single key that has no ``kid`` of its own
    (``inspect --key`` passes the token's, so that the one key given is the key used). A
    file that is neither PEM nor JSON is an HMAC secret when ``alg`` is HS256/384/512 (one
    trailing line break is dropped). Private keys are reduced to their public half.

    Raises :class:`OSError` when the file cannot be read, :class:`ValueError` for an
    unknown ``alg``, and :class:`~jwtwarden.errors.InvalidKey` or
    :class:`~jwtwarden.errors.WeakKey` for a key that does not load.
    """
    raw = path.read_bytes()
    if raw.lstrip().startswith(b"-----BEGIN"):
        if alg is None:
            raise InvalidKey("a PEM key does not say its algorithm; give one with --alg")
        return verification_keys(KeySet([Key.from_pem(raw, alg, kid=kid)]))
    data = _read_json(raw)
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        return verification_keys(
            KeySet(
                Key.from_jwk(jwk, alg=alg if "alg" not in jwk else None)
                for jwk in data["keys"]
                if isinstance(jwk, dict) and jwk.get("use") != "enc"
            )
        )
    if isinstance(data, dict):
        if kid is not None and "kid" not in data:
            data = {**data, "kid": kid}
        return verification_keys(KeySet([Key.from_jwk(data, alg=alg)]))
    if alg is not None and alg.startswith("HS"):
        secret = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        return KeySet([HMACKey(secret, alg, kid=kid)])
    raise InvalidKey(
        "the key file is not a PEM key, a JWK or a JWKS (for an HMAC secret in a file, "
        "give --alg HS256, HS384 or HS512)"
    )
