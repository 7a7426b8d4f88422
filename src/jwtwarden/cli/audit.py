"""``jwtwarden inspect``, ``jwtwarden crack`` and ``jwtwarden debugger``: tools for auditors.

Exit statuses (documented in ``docs/audit.md``):

- ``inspect``: 0 no finding at or above ``--fail-on`` (default ``medium``); 1 at least one
  (a malformed token and a failed verification are HIGH findings); 2 usage error (bad
  option, unreadable or unusable key, refused JWKS URL); 3 the JWKS URL could not be fetched.
- ``crack``: 0 no candidate is the secret; 1 the secret was found (the token's key is weak);
  2 usage error (not an HMAC token, a malformed token, an unreadable word list).
- ``debugger``: 0 after Ctrl-C; 2 usage error (non-loopback address without
  ``--allow-remote``, unusable JWKS file, port in use).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from jwtwarden.audit.crack import count_candidates, crack_hmac
from jwtwarden.audit.inspect import INSPECT_MAX_SIZE, Report, Severity, audit_token
from jwtwarden.audit.keysource import (
    JWKSUnavailable,
    JWKSURLRefused,
    fetch_jwks,
    load_jwks_file,
    load_key_file,
)
from jwtwarden.audit.render import render_plain, render_rich, safe
from jwtwarden.cli._common import read_token, write_json
from jwtwarden.errors import JWTError
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.keys import KeySet
from jwtwarden.policy import DEFAULT_LEEWAY, MAX_LEEWAY, is_loopback
from jwtwarden.unverified import decode_unverified

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "crack_command",
    "debugger_command",
    "inspect_command",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
"""inspect: a finding at or above --fail-on; crack: the secret was found."""
EXIT_USAGE = 2
"""click's status for usage errors, also used for unusable keys and tokens crack cannot use."""
EXIT_UNAVAILABLE = 3
"""inspect: the JWKS URL could not be fetched, so the audit is incomplete."""

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_FAIL_ON = ["info", "low", "medium", "high", "critical", "never"]


class _Unavailable(click.ClickException):
    exit_code = EXIT_UNAVAILABLE


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _token_kid(token: str) -> str | None:
    """The token's kid when readable, for a --key without one (the key given is the key used)."""
    try:
        kid = decode_unverified(token, max_token_size=INSPECT_MAX_SIZE).header.get("kid")
    except JWTError:
        return None
    return kid if isinstance(kid, str) and kid else None


def _load_keys(
    jwks_file: Path | None,
    jwks_url: str | None,
    key_file: Path | None,
    algs: tuple[str, ...],
    kid: str | None,
) -> KeySet | None:
    given = [n for n, v in (("--jwks", jwks_file), ("--jwks-url", jwks_url), ("--key", key_file)) if v]
    if len(given) > 1:
        _usage(f"give one key source, not {' and '.join(given)}")
    try:
        if jwks_file is not None:
            return load_jwks_file(jwks_file)
        if jwks_url is not None:
            return fetch_jwks(jwks_url)
        if key_file is not None:
            if len(algs) > 1:
                _usage("--key binds one key to one algorithm: give --alg once")
            return load_key_file(key_file, algs[0] if algs else None, kid=kid)
    except JWKSURLRefused as exc:
        raise click.BadParameter(f"{exc.code}: {exc.message}", param_hint="--jwks-url") from None
    except JWKSUnavailable as exc:
        raise _Unavailable(f"{exc.code}: {exc.message}") from None
    except JWTError as exc:  # InvalidKey, WeakKey
        raise click.BadParameter(f"{exc.code}: {exc.message}", param_hint=given[0]) from None
    except OSError as exc:
        raise click.BadParameter(f"cannot read the key file: {exc.strerror}") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return None


def _use_rich(color: str) -> bool:
    if color == "always":
        return True
    if color == "never":
        return False
    return sys.stdout.isatty()


@click.command(name="inspect")
@click.argument("token", required=False)
@click.option("--jwks", "jwks_file", type=_FILE, help="Verify with this JWKS file.")
@click.option("--jwks-url", metavar="URL",
              help="Verify with the JWKS at this URL (https, or http to loopback; 5 s, 1 MiB).")
@click.option("--key", "key_file", type=_FILE,
              help="Verify with this key file: PEM, JWK, JWKS, or a raw HMAC secret with --alg HS*. "
                   "A key without a kid is used for the token's kid.")
@click.option("--alg", "algs", multiple=True, type=click.Choice(list(ALGORITHMS)),
              help="Algorithm of a --key that does not name one; restricts the allowlist. Repeatable.")
@click.option("--iss", multiple=True, help="Expected issuer (default: accept the token's). Repeatable.")
@click.option("--aud", multiple=True, help="Expected audience (default: accept the token's). Repeatable.")
@click.option("--typ", default=None, help="Require this typ header when verifying (e.g. at+jwt).")
@click.option("--leeway", default=DEFAULT_LEEWAY, show_default=True,
              type=click.FloatRange(0, MAX_LEEWAY), help="Seconds of clock skew when verifying.")
@click.option("--now", "now", type=float, default=None, metavar="UNIX_TIME",
              help="Judge times as of this instant (default: the current time).")
@click.option("--fail-on", default="medium", show_default=True, type=click.Choice(_FAIL_ON),
              help="Exit 1 when a finding is at least this severe ('never': always 0).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--show-secrets", is_flag=True,
              help="Print claim values the payload linter flags (masked by default).")
@click.option("--color", default="auto", show_default=True,
              type=click.Choice(["auto", "always", "never"]),
              help="Colour and layout (rich): auto = only when stdout is a terminal.")
def inspect_command(
    token: str | None, jwks_file: Path | None, jwks_url: str | None, key_file: Path | None,
    algs: tuple[str, ...], iss: tuple[str, ...], aud: tuple[str, ...], typ: str | None,
    leeway: float, now: float | None, fail_on: str, as_json: bool, show_secrets: bool,
    color: str,
) -> None:
    """Decode a token, list what is wrong with it and how to fix it, and verify it.

    TOKEN may be omitted (or '-') to read it from stdin. Without a key the report is
    UNVERIFIED. With --jwks, --jwks-url or --key the strict verifier runs and the report
    names the check that failed. Exit status: 0 no finding at or above --fail-on, 1 some,
    2 usage error, 3 JWKS URL unreachable.

    \b
    Example:
      jwtwarden inspect < token.txt
      jwtwarden inspect --jwks-url https://auth.example.com/.well-known/jwks.json \\
          --iss https://auth.example.com --aud api.example.com --fail-on high < token.txt
      jwtwarden inspect --json --fail-on low "$TOKEN" | jq .findings
    """
    text = read_token(token)
    keys = _load_keys(jwks_file, jwks_url, key_file, algs, _token_kid(text))
    moment = time.time() if now is None else now
    try:
        report = audit_token(
            text, now=moment, keys=keys, issuer=iss or None, audience=aud or None,
            algorithms=algs or None, typ=typ, leeway=leeway,
        )  # fmt: skip
    except ValueError as exc:  # verifier options that cannot work with these keys
        _usage(str(exc))
    if as_json:
        write_json(report.to_dict(show_secrets=show_secrets))
    elif _use_rich(color):
        console = Console(file=sys.stdout, force_terminal=True, highlight=False, soft_wrap=False)
        render_rich(report, console, show_secrets=show_secrets)
    else:
        click.echo(render_plain(report, show_secrets=show_secrets), nl=False)
    sys.exit(inspect_exit_status(report, fail_on))


def inspect_exit_status(report: Report, fail_on: str) -> int:
    """0, or 1 when a finding is at least as severe as ``fail_on`` (``never``: always 0)."""
    if fail_on == "never" or report.worst is None:
        return EXIT_OK
    return EXIT_FINDINGS if report.worst >= Severity[fail_on.upper()] else EXIT_OK


@click.command(name="crack")
@click.argument("token", required=False)
@click.option("--wordlist", "wordlists", multiple=True, type=_FILE,
              help="Also try every line of this file (bytes as they are). Repeatable.")
@click.option("--no-builtin", is_flag=True, help="Skip the built-in list of weak secrets.")
@click.option("--jobs", type=click.IntRange(1, 256), default=None,
              help="Worker processes (default: one per core).")
@click.option("--show", is_flag=True, help="Print the secret found (masked by default).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def crack_command(
    token: str | None, wordlists: tuple[Path, ...], no_builtin: bool, jobs: int | None,
    show: bool, as_json: bool,
) -> None:
    """Check whether an HS256/384/512 token is signed with a guessable secret.

    Tries the empty secret, a built-in list of common and framework-default secrets and
    every --wordlist, on every core. Exit status: 0 not found, 1 found (the secret is weak:
    rotate it), 2 usage error (not an HMAC token, malformed token, unreadable list). Not
    finding the secret does not prove it is strong.

    \b
    Example:
      jwtwarden crack < token.txt
      jwtwarden crack --wordlist rockyou.txt --show "$TOKEN"
    """
    text = read_token(token)
    builtin = not no_builtin
    try:
        total = count_candidates(wordlists, builtin=builtin)
    except OSError as exc:
        raise click.BadParameter(f"cannot read a word list: {exc.strerror}") from None
    bar = _progress_bar() if sys.stderr.isatty() and not as_json else None
    try:
        if bar is None:
            result = crack_hmac(text, wordlists=wordlists, builtin=builtin, jobs=jobs)
        else:
            with bar:
                task = bar.add_task("trying secrets", total=total)
                result = crack_hmac(
                    text, wordlists=wordlists, builtin=builtin, jobs=jobs,
                    progress=lambda n: bar.advance(task, n),
                )  # fmt: skip
    except JWTError as exc:  # MalformedToken, AlgorithmNotAllowed
        raise click.UsageError(f"{exc.code}: {exc.message}") from None
    except OSError as exc:
        raise click.BadParameter(f"cannot read a word list: {exc.strerror}") from None
    secret_text = None
    if result.secret is not None:
        secret_text = safe(result.secret.decode("utf-8", errors="backslashreplace"))
    if as_json:
        write_json(
            {
                "found": result.found,
                "source": result.source,
                "secret": secret_text if show else None,
                "secret_bytes": len(result.secret) if result.secret is not None else None,
                "tried": result.tried,
                "seconds": round(result.seconds, 3),
                "secrets_per_second": round(result.rate),
            }
        )
    elif result.secret is not None:
        shown = secret_text if show else "(hidden; --show prints it)"
        click.echo(
            f"FOUND: the token's secret is in {result.source} ({len(result.secret)} bytes): "
            f"{shown}\nAnyone can forge tokens with it: rotate the secret, and prefer ES256."
        )
    else:
        click.echo(
            f"not found: none of {result.tried:,} candidates is the token's secret "
            f"({result.rate:,.0f} secrets/s). That does not prove the secret is strong."
        )
    sys.exit(EXIT_FINDINGS if result.found else EXIT_OK)


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )


@click.command(name="debugger")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--jwks", "jwks_file", type=_FILE,
              help="A public JWKS the page can verify with, served at /.well-known/jwks.json.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host (the page is then reachable from the network).")
def debugger_command(host: str, port: int, jwks_file: Path | None, allow_remote: bool) -> None:
    """Serve the token debugger page on this machine (loopback only by default).

    Everything happens in the browser: decoding, the findings of `jwtwarden inspect`, and
    verification with WebCrypto against the JWKS given here or a pasted key. The page never
    sends a token anywhere. Stop with Ctrl-C.

    \b
    Example:
      jwtwarden debugger --jwks jwks.json
      # then open http://127.0.0.1:8765/debugger
    """
    from jwtwarden.audit.debugger import serve_standalone

    if not allow_remote and not is_loopback(host):
        _usage(f"{host} is not a loopback address; add --allow-remote to listen on it")
    try:
        serve_standalone(
            host, port, jwks_file,
            on_ready=lambda url: click.echo(f"jwtwarden debugger on {url} (Ctrl-C to stop)", err=True),
        )  # fmt: skip
    except JWTError as exc:
        raise click.BadParameter(f"{exc.code}: {exc.message}", param_hint="--jwks") from None
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    sys.exit(EXIT_OK)

