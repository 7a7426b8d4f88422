"""``jwtwarden issue`` and ``jwtwarden verify``: tokens from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jwtwarden.cli._common import fail, load_keyset, read_token, write_json
from jwtwarden.errors import JWTError
from jwtwarden.issue import Issuer
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.keys import HMACKey, KeySet
from jwtwarden.policy import DEFAULT_LEEWAY, DEFAULT_LIFETIME
from jwtwarden.verify import Verifier

__all__ = ["issue", "verify"]

_KEYS_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _parse_claim(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected NAME=VALUE, got {text!r}", param_hint="--claim")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value  # not JSON: a plain string


@click.command()
@click.option("--keys", "keys_file", required=True, type=_KEYS_FILE, help="Private JWKS file.")
@click.option("--iss", required=True, help="Issuer (the iss claim).")
@click.option("--aud", required=True, multiple=True, help="Audience; repeat for several.")
@click.option("--sub", required=True, help="Subject (the sub claim).")
@click.option("--claim", "claim_args", multiple=True, metavar="NAME=VALUE",
              help="Extra claim; VALUE is JSON if it parses, else a string. Repeatable.")
@click.option("--lifetime", default=DEFAULT_LIFETIME, show_default=True, type=click.IntRange(1),
              help="Seconds until exp (at most 900 without --unsafe-long-lifetime).")
@click.option("--kid", default=None, help="Signing key id when the file holds several.")
@click.option("--typ", default="at+jwt", show_default=True, help="The typ header.")
@click.option("--allow-sensitive", multiple=True, metavar="NAME",
              help="Claim allowed despite the sensitive-data check. Repeatable.")
@click.option("--unsafe-long-lifetime", is_flag=True, help="Allow lifetimes over 15 minutes.")
def issue(
    keys_file: Path, iss: str, aud: tuple[str, ...], sub: str, claim_args: tuple[str, ...],
    lifetime: int, kid: str | None, typ: str, allow_sensitive: tuple[str, ...],
    unsafe_long_lifetime: bool,
) -> None:
    """Sign a JWT and print it (exp, iat and jti are always set).

    \b
    Example:
      jwtwarden issue --keys signing.jwks.json --iss https://auth.example.com \\
          --aud api.example.com --sub user-42 --claim role=admin
    """
    claims = dict(_parse_claim(c) for c in claim_args)
    try:
        issuer = Issuer(
            load_keyset(keys_file), issuer=iss, audience=list(aud), kid=kid, typ=typ,
            lifetime=lifetime, unsafe_allow_long_lifetime=unsafe_long_lifetime,
        )
        token = issuer.issue(sub, claims, allow_sensitive=allow_sensitive)
    except JWTError as exc:
        fail(exc)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)


@click.command()
@click.argument("token", required=False)
@click.option("--keys", "keys_file", required=True, type=_KEYS_FILE,
              help="JWKS file (public, or private: only its public half is used).")
@click.option("--iss", required=True, multiple=True, help="Expected issuer; repeat for several.")
@click.option("--aud", required=True, multiple=True, help="This service's audience; repeatable.")
@click.option("--alg", "algs", required=True, multiple=True, type=click.Choice(list(ALGORITHMS)),
              help="Allowed algorithm; repeatable. There is no default.")
@click.option("--typ", default=None, help="Require this typ header (e.g. at+jwt).")
@click.option("--leeway", default=DEFAULT_LEEWAY, show_default=True, type=click.FloatRange(0, 300),
              help="Seconds of clock skew tolerated.")
@click.option("--require", multiple=True, metavar="CLAIM", help="Also require this claim.")
def verify(
    token: str | None, keys_file: Path, iss: tuple[str, ...], aud: tuple[str, ...],
    algs: tuple[str, ...], typ: str | None, leeway: float, require: tuple[str, ...],
) -> None:
    """Verify a JWT; print its claims as JSON (exit 0) or the error code (exit 1).

    TOKEN may be omitted (or '-') to read it from stdin.

    \b
    Example:
      jwtwarden verify --keys jwks.json --iss https://auth.example.com \\
          --aud api.example.com --alg ES256 < token.txt
    """
    text = read_token(token)
    keyset = load_keyset(keys_file)
    if not all(isinstance(k, HMACKey) for k in keyset):
        keyset = KeySet(k.public() for k in keyset if not isinstance(k, HMACKey))
    try:
        verifier = Verifier(
            keyset, issuer=iss, audience=aud, algorithms=algs, typ=typ, leeway=leeway,
            required_claims=require,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        claims = verifier.verify(text)
    except JWTError as exc:
        fail(exc)
    write_json(claims.to_dict())
