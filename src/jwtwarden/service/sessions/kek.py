"""The key-encryption key (KEK): every secret the service keeps at rest depends on it.

Given as ``JWTWARDEN_KEK`` (32 random bytes, base64url; ``jwtwarden config gen-kek`` makes
one). Without it, development mode keeps one in a file *next to* the data directory,
``<data_dir>.kek`` (``.jwtwarden.kek`` beside ``.jwtwarden/``), and warns loudly on every
start. It is never inside the data directory, so a copy of that directory or of the
database holds no key: anyone who can read the KEK file can read the signing keys.

The file is created once, atomically (a random ``O_EXCL | O_NOFOLLOW`` temporary file,
mode 0600, hard-linked into place: exactly one of several starters creates it), and refused
when it is a symbolic link, not a regular file, owned by another user, or readable or
writable by anyone but its owner. A ``<data_dir>/kek`` left by an older version is checked
the same way and moved out.

The raw KEK is only ever an HKDF-SHA-256 input; each use gets its own key, one ``info``
label each: ``jwtwarden key wrap v2`` (AES-256-GCM wrapping of the signing keys and the
check value, with a random 96-bit nonce and the key id as associated data, so a ciphertext
cannot be moved to another row) and the labels of
:mod:`jwtwarden.service.sessions.subkeys`. Databases written before issue #16 wrapped with
the raw KEK itself: :meth:`KEK.decrypt_legacy` reads them, once, when the key ring upgrades
such a database.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from jwtwarden.errors import MalformedToken
from jwtwarden.jose.b64 import b64url_decode, b64url_encode

__all__ = ["KEK", "KEKError", "dev_kek_path", "generate_kek_text", "load_kek"]

log = logging.getLogger("jwtwarden.kek")
_NONCE = 12
WRAP_LABEL = "jwtwarden key wrap v2"


class KEKError(ValueError):
    """The KEK is malformed, unreadable, unsafe, or not the one the stored keys were encrypted with."""


def generate_kek_text() -> str:
    return b64url_encode(os.urandom(32))


class KEK:
    """Wrap/unwrap small secrets and derive purpose-bound sub-keys. Never printed."""

    __slots__ = ("_key", "_wrap")

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KEKError("the key-encryption key must be 32 bytes")
        self._key = key
        self._wrap = AESGCM(self.derive(WRAP_LABEL))

    def encrypt(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._wrap.encrypt(nonce, plaintext, context.encode("utf-8"))

    def decrypt(self, blob: bytes, *, context: str) -> bytes:
        return _open(self._wrap, blob, context)

    def decrypt_legacy(self, blob: bytes, *, context: str) -> bytes:
        """What code before issue #16 wrapped under the raw KEK (only to upgrade a database)."""
        return _open(AESGCM(self._key), blob, context)

    def derive(self, label: str, length: int = 32) -> bytes:
        """A sub-key for one purpose (HKDF-SHA-256, ``label`` as info)."""
        return HKDF(hashes.SHA256(), length, salt=None, info=label.encode()).derive(self._key)

    def __repr__(self) -> str:
        return "KEK(****)"


def _open(aead: AESGCM, blob: bytes, context: str) -> bytes:
    try:
        return aead.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode("utf-8"))
    except (InvalidTag, ValueError):
        raise KEKError(
            "stored secrets do not decrypt with this key-encryption key; every replica "
            "must use the same JWTWARDEN_KEK"
        ) from None


def dev_kek_path(data_dir: Path) -> Path:
    """Where development mode keeps the KEK: ``<data_dir>.kek``, beside the data directory."""
    absolute = Path(os.path.abspath(data_dir))
    if not absolute.name:
        raise KEKError("the data directory cannot be / without JWTWARDEN_KEK")
    return absolute.with_name(absolute.name + ".kek")


def load_kek(kek_text: str | None, data_dir: Path) -> KEK:
    """The KEK from configuration, else the development file (created once, mode 0600)."""
    if kek_text is not None:
        try:
            return KEK(b64url_decode(kek_text))
        except (MalformedToken, KEKError):
            raise KEKError("JWTWARDEN_KEK must be 32 bytes, base64url without padding") from None
    path = dev_kek_path(data_dir)
    _move_legacy(Path(os.path.abspath(data_dir)) / "kek", path)
    if not os.path.lexists(path):
        _create(path)
    log.warning(
        "DEVELOPMENT KEY-ENCRYPTION KEY in use (%s): signing keys are only as safe as this "
        "file. Set JWTWARDEN_KEK (jwtwarden config gen-kek) in production.",
        path,
    )
    return _parse(_read_private(path), path)


def _parse(text: bytes, path: Path) -> KEK:
    try:
        return KEK(b64url_decode(text.decode("ascii").strip()))
    except (UnicodeDecodeError, MalformedToken, KEKError):
        raise KEKError(f"{path} does not hold a valid key-encryption key") from None


def _create(path: Path) -> None:
    """A new KEK at ``path`` unless some other starter creates one first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a random name, O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_kek_text() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() never follows or replaces what is at ``path``: exactly one starter creates it
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _read_private(path: Path) -> bytes:
    """The content of a regular file of ours that nobody else can read or write; else KEKError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise KEKError(f"{path} is a symbolic link; the KEK file must be a regular file") from None
        raise KEKError(f"{path} cannot be read ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KEKError(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise KEKError(
                f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}): "
                "refusing a key-encryption key someone else could have written")
        if info.st_mode & 0o077:
            raise KEKError(
                f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: a KEK file must be 0600 "
                "(owner only). If nobody else could have read it, chmod 600 it; else the "
                "signing keys should be considered exposed")
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _move_legacy(legacy: Path, path: Path) -> None:
    """Move ``<data_dir>/kek`` (versions before issue #16) to ``path``, after the same checks."""
    if not os.path.lexists(legacy):
        return
    try:
        text = _read_private(legacy)
    except KEKError:
        if not os.path.lexists(legacy):
            return  # another starter moved it meanwhile
        raise
    _parse(text, legacy)
    try:
        os.link(legacy, path, follow_symlinks=False)
    except FileExistsError:
        if _read_private(path) != text:
            raise KEKError(
                f"both {legacy} and {path} exist and differ: keep the one this database was "
                "set up with") from None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(legacy)
    log.warning("moved the development KEK out of the data directory, from %s to %s: copies "
                "of the data directory made before this still hold it", legacy, path)
