"""``jwtwarden keys``: generate key files and publish their public half."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jwtwarden.cli._common import load_keyset, write_json, write_secret_file
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.keys import KeySet

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """Create and inspect signing keys (JWKS files)."""


@keys.command()
@click.option("--alg", default="ES256", show_default=True, type=click.Choice(list(ALGORITHMS)),
              help="Algorithm the key is bound to.")
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Private JWKS file to create (mode 0600; never overwritten).")
@click.option("--kid", default=None, help="Key id (default: the RFC 7638 thumbprint).")
def generate(alg: str, out: Path, kid: str | None) -> None:
    """Generate a private key bound to one algorithm and write it as a JWKS.

    \b
    Example:
      jwtwarden keys generate --alg ES256 --out signing.jwks.json
    """
    keyset = KeySet.generate(alg, kid=kid)
    write_secret_file(out, json.dumps(keyset.to_jwks(private=True), indent=2) + "\n")
    key = next(iter(keyset))
    click.echo(f"wrote {alg} key {key.kid} to {out} (mode 0600)", err=True)


@keys.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def public(file: Path) -> None:
    """Print the public JWKS of a key file (what verifiers and /.well-known/jwks.json get).

    \b
    Example:
      jwtwarden keys public signing.jwks.json > jwks.json
    """
    try:
        write_json(load_keyset(file).public().to_jwks())
    except ValueError as exc:  # an HMAC secret has no public half
        raise click.ClickException(str(exc)) from None
