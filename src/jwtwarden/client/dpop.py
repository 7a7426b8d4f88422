"""The client side of DPoP (RFC 9449): a key kept in memory and a fresh proof per request.

:class:`DPoPSigner` holds one private key (a new P-256 key by default: it never leaves the
process and is never written anywhere) and the last nonce each server handed out
(``DPoP-Nonce``, per origin). :meth:`DPoPSigner.proof` makes a proof for one request — a new
``jti`` every time, so a retry gets a new proof too — and :meth:`DPoPSigner.needs_nonce` reads an
answer: it remembers a new nonce and says whether the request should be sent again with it
(``use_dpop_nonce``, RFC 9449 sections 8 and 9).
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from jwtwarden.dpop import create_proof
from jwtwarden.keys import AsymmetricKey, Key
from jwtwarden.policy import Clock, system_clock

__all__ = ["DPoPSigner"]

_MAX_NONCE = 512


def _origin(url: str | httpx.URL) -> str:
    parsed = httpx.URL(str(url))
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"


class DPoPSigner:
    """One client's DPoP key and the nonces servers gave it. Thread-safe."""

    __slots__ = ("_clock", "_key", "_lock", "_nonces")

    def __init__(self, key: Key | None = None, *, clock: Clock = system_clock) -> None:
        key = Key.generate("ES256") if key is None else key
        if not isinstance(key, AsymmetricKey) or not key.is_private:
            raise ValueError("a DPoP key is a private asymmetric Key (ES256 or EdDSA)")
        self._key = key
        self._clock = clock
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def jkt(self) -> str:
        """The key's RFC 7638 thumbprint: what the tokens it gets are bound to (``cnf.jkt``)."""
        return self._key.thumbprint()

    def proof(self, method: str, url: str | httpx.URL, access_token: str | None = None) -> str:
        """A new proof for one request (with ``ath`` when presenting ``access_token``)."""
        with self._lock:
            nonce = self._nonces.get(_origin(url))
        return create_proof(self._key, method, str(url), access_token=access_token, nonce=nonce,
                            clock=self._clock)

    def needs_nonce(self, url: str | httpx.URL, response: httpx.Response) -> bool:
        """Remember the answer's ``DPoP-Nonce``; True when it refused the proof for want of a
        (fresh) nonce, so the request should go again with a new proof."""
        nonce = response.headers.get("dpop-nonce")
        if not nonce or len(nonce) > _MAX_NONCE or not nonce.isascii() or not nonce.isprintable():
            return False
        with self._lock:
            self._nonces[_origin(url)] = nonce
        if response.status_code == 401:
            return 'error="use_dpop_nonce"' in response.headers.get("www-authenticate", "")
        if response.status_code == 400:
            try:
                body: Any = response.json()
            except ValueError:
                return False
            return isinstance(body, dict) and body.get("error") == "use_dpop_nonce"
        return False

    def authorize(self, request: httpx.Request, access_token: str) -> None:
        """Present ``access_token`` on ``request`` the DPoP way, with a new proof."""
        request.headers["Authorization"] = f"DPoP {access_token}"
        request.headers["DPoP"] = self.proof(request.method, request.url, access_token)

    def __repr__(self) -> str:
        return f"DPoPSigner({self._key.alg}, jkt={self.jkt!r})"
