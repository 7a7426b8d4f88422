"""``jwtwarden scan``: fire the known JWT attacks at an API and report what it accepted."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import NoReturn

import click
import httpx

from jwtwarden.cli._common import read_token
from jwtwarden.scan.attacks import AttackCase, derive_attacks, select
from jwtwarden.scan.dpop import dpop_cases
from jwtwarden.scan.errors import CalibrationFailed, ScanError, ScanInputError
from jwtwarden.scan.keys import SigningKey, load_signing_key
from jwtwarden.scan.report import ScanReport, render_text, to_dict, to_junit_xml
from jwtwarden.scan.runner import ScanLimits, display_url, fetch_jwks, scan_url

__all__ = [
    "EXIT_CALIBRATION_FAILED",
    "EXIT_CLEAN",
    "EXIT_TARGET_ERRORS",
    "EXIT_TARGET_FAILED",
    "EXIT_USAGE",
    "EXIT_VULNERABLE",
    "exit_status",
    "scan",
]

EXIT_CLEAN = 0
"""The scan ran to the end and no attack was accepted as a vulnerability."""
EXIT_VULNERABLE = 1
"""At least one attack was accepted: the target is vulnerable (even if the scan stopped early)."""
EXIT_USAGE = 2
"""Bad options or unusable input (token, key file, URL); nothing was sent."""
EXIT_CALIBRATION_FAILED = 3
"""The valid token was refused, or garbage / no token was accepted; no attack was sent."""
EXIT_TARGET_FAILED = 4
"""Unreachable, too slow, JWKS unavailable or over the deadline; the scan is incomplete."""
EXIT_TARGET_ERRORS = 5
"""The scan is complete, nothing was accepted, but some attacks got a 5xx or no answer."""


def exit_status(report: ScanReport) -> int:
    """The exit status for ``report`` (vulnerability first, then why the scan was incomplete)."""
    if report.vulnerabilities:
        return EXIT_VULNERABLE
    if isinstance(report.error, ScanInputError):
        return EXIT_USAGE
    if isinstance(report.error, CalibrationFailed):
        return EXIT_CALIBRATION_FAILED
    if report.error is not None:
        return EXIT_TARGET_FAILED
    if report.errors:
        return EXIT_TARGET_ERRORS
    return EXIT_CLEAN


def _stop(error: ScanError, status: int) -> NoReturn:
    click.echo(f"error: {error.code}: {error.message}", err=True)
    sys.exit(status)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None


def _signing_key(private_key: Path | None, secret_file: Path | None) -> SigningKey | None:
    if secret_file is not None:
        secret = _read(secret_file)
        secret = secret[:-2] if secret.endswith(b"\r\n") else secret.removesuffix(b"\n")
        return SigningKey.from_secret(secret)
    if private_key is None:
        return None
    data = _read(private_key)
    if b"-----BEGIN" not in data and not data.lstrip().startswith(b"{"):
        raise click.BadParameter("expected a PEM private key or a private JWK/JWKS",
                                 param_hint="--private-key")
    try:
        return load_signing_key(data)
    except ScanInputError as exc:
        raise click.BadParameter(exc.message, param_hint="--private-key") from None


def _list_cases(cases: list[AttackCase], as_json: bool, show_tokens: bool) -> None:
    if as_json:
        click.echo(json.dumps([
            {"id": c.id, "category": c.category, "impact": str(c.impact), "title": c.title,
             "vulnerable_if_accepted": c.vulnerable_if_accepted}
            | ({"token": c.token} if show_tokens else {})
            for c in cases
        ], indent=2))
        return
    for case in cases:
        click.echo(f"{case.id:40} {case.category:18} {case.impact!s:9} {case.title}")
        if show_tokens:
            click.echo(f"    {case.token}")
    click.echo(f"{len(cases)} attacks; nothing was sent (--dry-run)", err=True)


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_METHODS = click.Choice(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                        case_sensitive=False)


@click.command()
@click.argument("url")
@click.option("--token", "token_arg", default=None, metavar="TOKEN",
              help="A valid token the endpoint accepts; '-' or omitted: read from stdin.")
@click.option("--other-token", default=None, metavar="TOKEN",
              help="A second genuine token, for the signature-from-other-token attack.")
@click.option("--jwks-url", default=None, metavar="URL",
              help="The target's JWKS URL: its public key enables the key-confusion attacks.")
@click.option("--public-key", "public_key", default=None, type=_FILE,
              help="The target's public key: PEM, certificate, JWK or JWKS file.")
@click.option("--private-key", default=None, type=_FILE,
              help="Your own API's signing key (PEM or JWK/JWKS): enables the signed attacks.")
@click.option("--secret-file", default=None, type=_FILE,
              help="Your own API's HMAC secret, in a file (one trailing newline is ignored).")
@click.option("--dpop-key", default=None, type=_FILE,
              help="The private key (PEM or JWK) a DPoP-bound token is bound to: requests carry "
                   "DPoP proofs, and the DPoP attacks (RFC 9449) are added.")
@click.option("--header", default="Authorization", show_default=True, metavar="NAME",
              help="Request header carrying the token.")
@click.option("--scheme", default=None, metavar="TEXT",
              help="Prefix before the token in the header [default: Bearer for Authorization, "
                   "none otherwise]; '' for none.")
@click.option("--cookie", default=None, metavar="NAME",
              help="Send the token in this cookie instead of a header.")
@click.option("--method", default="GET", show_default=True, type=_METHODS,
              help="HTTP method of the protected endpoint.")
@click.option("--callback-url", default=None, metavar="URL",
              help="URL you control to put in jku/x5u (default: an unresolvable "
                   "attacker.invalid URL). The scanner never hosts anything.")
@click.option("--only", multiple=True, metavar="PATTERN",
              help="Send only attacks whose id or category matches (shell pattern); repeatable.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Requests in flight at once.")
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(0.1, 1000),
              help="Requests per second at most.")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.01, 300),
              help="Seconds for one request.")
@click.option("--deadline", default=120.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds for the whole scan.")
@click.option("--max-attacks", default=200, show_default=True, type=click.IntRange(0, 10_000),
              help="Attacks sent at most; the rest are reported as skipped.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--junit", "junit_file", default=None,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write a JUnit XML report (one testcase per attack) to this file.")
@click.option("--show-tokens", is_flag=True,
              help="Include the valid and the forged tokens in the output (redacted by default).")
@click.option("--dry-run", is_flag=True, help="List the attacks that would be sent; send nothing.")
@click.option("--insecure", is_flag=True, help="Do not verify the target's TLS certificate.")
def scan(
    url: str, token_arg: str | None, other_token: str | None, jwks_url: str | None,
    public_key: Path | None, private_key: Path | None, secret_file: Path | None,
    dpop_key: Path | None, header: str,
    scheme: str | None, cookie: str | None, method: str, callback_url: str | None,
    only: tuple[str, ...], concurrency: int, rate: float, timeout: float, deadline: float,
    max_attacks: int, as_json: bool, junit_file: Path | None, show_tokens: bool, dry_run: bool,
    insecure: bool,
) -> None:
    """Fire the known JWT attacks at an endpoint and report which ones it accepted.

    Calibrates first: the valid token must get a 2xx answer, and a non-JWT string and a
    request without a token must get 401 or 403. Then each attack derived from the valid
    token is sent once. An attack is accepted when it gets a 2xx like the valid token.
    Only scan APIs you are allowed to test.

    \b
    Exit status:
      0  no attack accepted (lenient parsing may be reported)
      1  at least one attack accepted: vulnerable
      2  bad options or input; nothing sent
      3  calibration failed; no attack sent
      4  target unreachable, too slow, JWKS unavailable or deadline hit
      5  complete, nothing accepted, but some attacks got a 5xx or no answer

    \b
    Example:
      jwtwarden scan https://api.example.com/me --jwks-url \\
          https://auth.example.com/.well-known/jwks.json --junit scan.xml < token.txt
      jwtwarden scan http://localhost:8000/me --private-key signing.pem --json < token.txt
      jwtwarden scan https://api.example.com/me --dpop-key dpop.pem < bound-token.txt
    """
    if jwks_url is not None and public_key is not None:
        raise click.UsageError("give --jwks-url or --public-key, not both")
    if private_key is not None and secret_file is not None:
        raise click.UsageError("give --private-key or --secret-file, not both")
    if cookie is not None and header != "Authorization":
        raise click.UsageError("give --cookie or --header, not both")
    token = read_token(token_arg)
    signing = _signing_key(private_key, secret_file)
    public = _read(public_key) if public_key is not None else None
    dpop = _read(dpop_key) if dpop_key is not None else None
    try:
        limits = ScanLimits(concurrency=concurrency, rate=rate, timeout=timeout,
                            deadline=deadline, max_attacks=max_attacks)
        if dry_run:
            if jwks_url is not None:
                public = json.dumps(asyncio.run(_fetch(jwks_url, limits, not insecure))).encode()
            cases = select(derive_attacks(token, public_key=public, signing_key=signing,
                                          other_token=other_token, callback_url=callback_url)
                           + (dpop_cases(token) if dpop is not None else []), only)
            _list_cases(cases, as_json, show_tokens)
            return
        click.echo(f"scanning {display_url(url)} (at most {max_attacks} attacks, "
                   f"{rate:g}/s, deadline {deadline:g} s)…", err=True)
        report = asyncio.run(scan_url(
            url, token, method=method, header=header, scheme=scheme, cookie=cookie,
            public_key=public, jwks_url=jwks_url, signing_key=signing, other_token=other_token,
            callback_url=callback_url, only=only, limits=limits, verify_tls=not insecure,
            dpop_key=dpop,
        ))
    except ScanInputError as exc:
        _stop(exc, EXIT_USAGE)
    except ScanError as exc:  # the JWKS fetch of --dry-run
        _stop(exc, EXIT_TARGET_FAILED)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if junit_file is not None:
        try:
            junit_file.write_text(to_junit_xml(report), encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(junit_file), exc.strerror) from None
    if as_json:
        click.echo(json.dumps(to_dict(report, show_tokens=show_tokens), indent=2))
    else:
        render_text(report, show_tokens=show_tokens)
    status = exit_status(report)
    if report.error is not None:
        click.echo(f"error: {report.error.code}: {report.error.message}", err=True)
    sys.exit(status)


async def _fetch(url: str, limits: ScanLimits, verify_tls: bool) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=limits.timeout, verify=verify_tls,
                                 trust_env=False) as client:
        return await fetch_jwks(client, url, limits.timeout)
