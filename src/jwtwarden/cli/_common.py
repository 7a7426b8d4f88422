"""What every command shares: reading tokens and keys, writing secrets safely, failing clearly."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from jwtwarden.errors import JWTError
from jwtwarden.keys import KeySet

__all__ = [
    "EXIT_REJECTED",
    "fail",
    "load_keyset",
    "read_token",
    "redact",
    "write_json",
    "write_secret_file",
]

EXIT_REJECTED = 1
"""Exit status when a token (or a request) was rejected; 2 is a usage error."""


def fail(error: JWTError | str, code: str | None = None) -> NoReturn:
    """Print ``error: CODE: message`` on stderr and exit with status 1."""
    if isinstance(error, JWTError):
        code, message = error.code, error.message
    else:
        message = error
    click.echo(f"error: {code}: {message}" if code else f"error: {message}", err=True)
    sys.exit(EXIT_REJECTED)


def read_token(token: str | None) -> str:
    """The token argument, or stdin when it is ``-`` or absent and stdin is not a terminal.

    Passing tokens on stdin keeps them out of shell history and the process list.
    """
    if token in (None, "-"):
        if token is None and sys.stdin.isatty():
            raise click.UsageError("give a token as argument or on stdin")
        token = sys.stdin.read()
    token = token.strip()
    if not token:
        raise click.UsageError("the token is empty")
    return token


def load_keyset(path: Path, *, public_only: bool = False) -> KeySet:
    """A key set from a JWKS file (a single JWK works too)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise click.BadParameter(f"{path} is not JSON") from None
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    try:
        return KeySet.from_jwks(data, allow_private=not public_only)
    except JWTError as exc:
        raise click.BadParameter(f"{path}: {exc.message}") from None


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (refusing to overwrite) and write ``text``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; refusing to overwrite a key file") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def redact(secret: str, keep: int = 4) -> str:
    """``abcd…`` plus the length: enough to recognise a secret, not to use it."""
    if len(secret) <= keep * 2:
        return "…" * 3
    return f"{secret[:keep]}…({len(secret)} chars)"
