"""``jwtwarden keys``: generate key files and publish their public half."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from jwtwarden.cli._common import load_keyset, write_json, write_secret_file
from jwtwarden.cli.service import service_settings, settings_option, with_state
from jwtwarden.errors import JWTError
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.keys import Key, KeySet
from jwtwarden.service.config import SERVICE_ALGORITHMS

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


# ---- the token service's stored keys ---------------------------------------------------------


def _when(now: float, t: float | None) -> str:
    if t is None:
        return "-"
    delta = t - now
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t))}Z ({'+' if delta >= 0 else ''}{delta:.0f}s)"


@keys.command("list")
@settings_option
def list_keys(config_file: Path | None) -> None:
    """List the service's signing keys with their schedule (never private material).

    \b
    Example:
      jwtwarden keys list
    """

    async def job(state: Any) -> list[Any]:
        return state.keyring.keys()  # type: ignore[no-any-return]

    now = time.time()
    for k in with_state(service_settings(config_file), job, read_only=True):
        click.echo(f"{k.kid}\t{k.alg}\t{k.state(now)}\tpublish {_when(now, k.publish_at)}\t"
                   f"activate {_when(now, k.activate_at)}\tretire {_when(now, k.retire_at)}\t"
                   f"remove {_when(now, k.remove_at)}")


@keys.command("rotate")
@settings_option
def rotate(config_file: Path | None) -> None:
    """Publish a new signing key now; it signs after one JWKS cache lifetime.

    \b
    Example:
      jwtwarden keys rotate
    """
    stored = with_state(service_settings(config_file), lambda s: s.keyring.rotate())
    click.echo(f"new key {stored.kid} published; signs from {_when(time.time(), stored.activate_at)}")


@keys.command("retire")
@settings_option
@click.argument("kid")
def retire(config_file: Path | None, kid: str) -> None:
    """Stop publishing a key that no longer signs, once the tokens it signed have expired.

    \b
    Example:
      jwtwarden keys retire 3x9Vw0...
      jwtwarden keys retire -- -x9Vw0...   (a kid may start with "-")
    """
    stored = with_state(service_settings(config_file), lambda s: s.keyring.retire(kid))
    click.echo(f"key {stored.kid} leaves the JWKS at {_when(time.time(), stored.remove_at)}")


@keys.command("revoke")
@settings_option
@click.argument("kid")
@click.confirmation_option(prompt="Revoke this key now? Every token it signed stops working.")
def revoke(config_file: Path | None, kid: str) -> None:
    """EMERGENCY: remove a compromised key from the JWKS at once; its tokens are refused.

    \b
    Example:
      jwtwarden keys revoke 3x9Vw0... --yes
      jwtwarden keys revoke --yes -- -x9Vw0...   (a kid may start with "-")
    """
    replacement = with_state(service_settings(config_file), lambda s: s.sessions.revoke_signing_key(kid))
    click.echo(f"key {kid} revoked")
    if replacement is not None:
        click.echo(f"new signing key {replacement} active now")


@keys.command("import")
@settings_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--alg", default=None, type=click.Choice(list(ALGORITHMS)),
              help="Algorithm, required for PEM files and JWKs without 'alg'.")
@click.option("--kid", default=None, help="Key id for a PEM key (default: its thumbprint).")
def import_key(config_file: Path | None, file: Path, alg: str | None, kid: str | None) -> None:
    """Make an existing private key (JWK, JWKS or PEM) the service's signing key now.

    For teams migrating from another issuer: tokens it signed keep verifying.

    \b
    Example:
      jwtwarden keys import old-issuer.pem --alg RS256
    """
    key = _load_private_key(file, alg, kid)
    stored = with_state(service_settings(config_file), lambda s: s.keyring.import_key(key))
    click.echo(f"imported {stored.alg} key {stored.kid}; it signs from now on")


def _load_private_key(file: Path, alg: str | None, kid: str | None) -> Key:
    data = file.read_bytes()
    try:
        if b"-----BEGIN" in data:
            if alg is None:
                raise click.BadParameter("a PEM key needs --alg", param_hint="--alg")
            key = Key.from_pem(data, alg, kid=kid)
        else:
            parsed = json.loads(data)
            jwks = parsed.get("keys") if isinstance(parsed, dict) else None
            if isinstance(jwks, list):
                if len(jwks) != 1:
                    raise click.BadParameter("the JWKS must hold exactly one key", param_hint="FILE")
                parsed = jwks[0]
            key = Key.from_jwk(parsed, alg=alg)
    except (ValueError, JWTError) as error:
        message = error.message if isinstance(error, JWTError) else str(error)
        raise click.BadParameter(message, param_hint="FILE") from None
    if not key.is_private:
        raise click.BadParameter("this is a public key; the service needs the private key", param_hint="FILE")
    if key.alg not in SERVICE_ALGORITHMS:
        raise click.BadParameter(
            f"{key.alg} is an HMAC key: the token service publishes its keys in a JWKS for "
            f"resource servers, so it signs with {', '.join(SERVICE_ALGORITHMS)} only",
            param_hint="FILE")
    return key
