"""The key-encryption key (KEK): private signing keys are stored encrypted under it.

Given as ``JWTWARDEN_KEK`` (32 random bytes, base64url; ``jwtwarden config gen-kek`` makes
one). Without it, development mode creates ``<data_dir>/kek`` (mode 0600) once and warns
loudly on every start: anyone who can read the data directory can then read the keys.

Encryption is AES-256-GCM with a random 96-bit nonce and the key id as associated data, so
a ciphertext cannot be moved to another key's row. Sub-keys for other purposes (refresh
successor derivation, CSRF token signing) are derived with HKDF-SHA-256, one label each.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from jwtwarden.errors import MalformedToken
from jwtwarden.jose.b64 import b64url_decode, b64url_encode

__all__ = ["KEK", "KEKError", "generate_kek_text", "load_kek"]

log = logging.getLogger("jwtwarden.kek")
_NONCE = 12


class KEKError(ValueError):
    """The KEK is malformed, unreadable, or not the one the stored keys were encrypted with."""


def generate_kek_text() -> str:
    return b64url_encode(os.urandom(32))


class KEK:
    """Encrypt/decrypt small secrets and derive purpose-bound sub-keys. Never printed."""

    __slots__ = ("_aead", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KEKError("the key-encryption key must be 32 bytes")
        self._key = key
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode("utf-8"))

    def decrypt(self, blob: bytes, *, context: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise KEKError(
                "stored secrets do not decrypt with this key-encryption key; every replica "
                "must use the same JWTWARDEN_KEK"
            ) from None

    def derive(self, label: str, length: int = 32) -> bytes:
        """A sub-key for one purpose (HKDF-SHA-256, ``label`` as info)."""
        return HKDF(hashes.SHA256(), length, salt=None, info=label.encode()).derive(self._key)

    def __repr__(self) -> str:
        return "KEK(****)"


def load_kek(kek_text: str | None, data_dir: Path) -> KEK:
    """The KEK from configuration, else the development file (created once, mode 0600)."""
    if kek_text is not None:
        try:
            return KEK(b64url_decode(kek_text))
        except (MalformedToken, KEKError):
            raise KEKError("JWTWARDEN_KEK must be 32 bytes, base64url without padding") from None
    path = data_dir / "kek"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".kek.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_kek_text() + "\n")
        try:
            os.link(tmp, path)  # atomic: exactly one concurrent starter creates it
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    log.warning(
        "DEVELOPMENT KEY-ENCRYPTION KEY in use (%s): signing keys are only as safe as this "
        "file. Set JWTWARDEN_KEK (jwtwarden config gen-kek) in production.",
        path,
    )
    try:
        text = path.read_text(encoding="ascii").strip()
        return KEK(b64url_decode(text))
    except (OSError, MalformedToken, KEKError):
        raise KEKError(f"{path} does not hold a valid key-encryption key") from None
