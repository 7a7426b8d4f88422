"""``jwtwarden serve``, ``config``, ``users``, ``clients``, ``gc``: running the token service.

These commands read the same configuration as the service (``JWTWARDEN_*`` variables or
``--config FILE``) and work directly on its database, so they can run while it serves:
a running service sees revocations within a second and key changes within five.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from jwtwarden.errors import JWTError
from jwtwarden.service.config import ConfigError, Settings, load_settings

__all__ = [
    "clients",
    "config",
    "gc",
    "serve",
    "service_settings",
    "settings_option",
    "users",
    "with_state",
]

T = TypeVar("T")


def service_settings(config_file: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config_file=config_file, **overrides)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None


settings_option = click.option(
    "--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None, help="TOML configuration file (else JWTWARDEN_CONFIG; env vars override it).",
)


@asynccontextmanager
async def _open(settings: Settings) -> AsyncIterator[Any]:
    from jwtwarden.service.app import build_state  # the server extra, imported on use

    state = await build_state(settings)
    try:
        yield state
    finally:
        await state.close()


def with_state(settings: Settings, job: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``job(state)`` against the service's database; errors become clean exits."""

    async def main() -> T:
        async with _open(settings) as state:
            return await job(state)

    try:
        return asyncio.run(main())
    except (LookupError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise click.ClickException(str(message)) from None
    except JWTError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from None


# ---- serve ----------------------------------------------------------------------------------


@click.command()
@settings_option
@click.option("--host", default=None, help="Address to bind (default JWTWARDEN_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port (default 8000).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(config_file: Path | None, host: str | None, port: int | None, log_level: str) -> None:
    """Run the token service (FastAPI on uvicorn).

    On first start it creates the data directory, the SQLite database (or migrates the
    configured one) and an ES256 signing key. OpenAPI docs are at /docs.

    \b
    Example:
      JWTWARDEN_ISSUER=http://127.0.0.1:8000 jwtwarden serve --port 8000
    """
    import uvicorn

    from jwtwarden.service.app import create_app

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = service_settings(config_file, **overrides)
    # the event log (logins, refusals with their reason, reuse, logouts) and warnings go to
    # stderr next to uvicorn's access log; tokens and secrets are never logged
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
        server_header=False, proxy_headers=settings.trust_proxy_headers,
    )


# ---- config ---------------------------------------------------------------------------------


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@settings_option
@click.option("--show-secrets", is_flag=True, help="Print secrets instead of ****.")
def config_show(config_file: Path | None, show_secrets: bool) -> None:
    """Print the effective configuration (defaults < TOML file < environment).

    \b
    Example:
      JWTWARDEN_ACCESS_LIFETIME=600 jwtwarden config show
    """
    settings = service_settings(config_file)
    rows = settings.describe(show_secrets=show_secrets)
    width = max(len(name) for name, _, _ in rows)
    for name, value, doc in rows:
        click.echo(f"{name:<{width}}  {value or '-'}")
        if sys.stdout.isatty():
            click.echo(f"{'':<{width}}    {doc}")


@config.command("gen-kek")
def gen_kek() -> None:
    """Print a new random key-encryption key for JWTWARDEN_KEK.

    \b
    Example:
      export JWTWARDEN_KEK=$(jwtwarden config gen-kek)
    """
    from jwtwarden.service.sessions.kek import generate_kek_text

    click.echo(generate_kek_text())


# ---- users ------------------------------------------------------------------------------------


def _password(prompt: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    if not prompt:
        raise click.UsageError("no password on stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """Manage the users who can log in."""


@users.command("add")
@settings_option
@click.argument("name")
@click.option("--scope", default="", help="OAuth scope put into this user's access tokens.")
def users_add(config_file: Path | None, name: str, scope: str) -> None:
    """Add a user; the password is read from stdin when it is not a terminal.

    The name is stored in its canonical form (Unicode NFKC and case folding: "Alice" is
    "alice"); names mixing scripts (a Cyrillic "a" in "alice") are refused.

    \b
    Example:
      printf '%s\\n' 'correct horse battery' | jwtwarden users add alice --scope "read write"
    """
    password = _password(prompt=True)
    user = with_state(service_settings(config_file), lambda s: s.accounts.add_user(name, password, scope=scope))
    click.echo(f"added {user.username} (subject {user.id})")


@users.command("list")
@settings_option
def users_list(config_file: Path | None) -> None:
    """List users: name, subject id, state, scope.

    \b
    Example:
      jwtwarden users list
    """
    for user in with_state(service_settings(config_file), lambda s: s.accounts.list_users()):
        state = "disabled" if user.disabled else "active"
        click.echo(f"{user.username}\t{user.id}\t{state}\t{user.scope}")


@users.command("disable")
@settings_option
@click.argument("name")
def users_disable(config_file: Path | None, name: str) -> None:
    """Disable a user and end all their sessions (one transaction).

    \b
    Example:
      jwtwarden users disable alice
    """
    _, ended = with_state(service_settings(config_file), lambda s: s.accounts.set_disabled(name, True))
    click.echo(f"disabled {name}; {ended} session(s) ended")


@users.command("enable")
@settings_option
@click.argument("name")
def users_enable(config_file: Path | None, name: str) -> None:
    """Enable a disabled user again.

    \b
    Example:
      jwtwarden users enable alice
    """
    with_state(service_settings(config_file), lambda s: s.accounts.set_disabled(name, False))
    click.echo(f"enabled {name}")


@users.command("delete")
@settings_option
@click.argument("name")
def users_delete(config_file: Path | None, name: str) -> None:
    """Delete a user and end all their sessions (one transaction).

    \b
    Example:
      jwtwarden users delete alice
    """
    _, ended = with_state(service_settings(config_file), lambda s: s.accounts.delete_user(name))
    click.echo(f"deleted {name}; {ended} session(s) ended")


@users.command("set-password")
@settings_option
@click.argument("name")
def users_set_password(config_file: Path | None, name: str) -> None:
    """Set a new password (from stdin when not a terminal) and end all sessions (one
    transaction; a login with the old password still running is refused).

    \b
    Example:
      printf '%s\\n' 'a new long password' | jwtwarden users set-password alice
    """
    password = _password(prompt=True)
    _, ended = with_state(service_settings(config_file),
                          lambda s: s.accounts.set_password(name, password))
    click.echo(f"password of {name} changed; {ended} session(s) ended")


# ---- clients ----------------------------------------------------------------------------------


@click.group()
def clients() -> None:
    """Manage API clients (trusted backends and introspection callers)."""


@clients.command("add")
@settings_option
@click.argument("name")
@click.option("--permission", "permissions", multiple=True, required=True,
              type=click.Choice(["sessions", "introspect"]),
              help="sessions: POST /v1/sessions; introspect: RFC 7662/7009. Repeatable.")
def clients_add(config_file: Path | None, name: str, permissions: tuple[str, ...]) -> None:
    """Create a client and print its id and secret (the secret is shown only this once).

    \b
    Example:
      jwtwarden clients add billing-backend --permission sessions
    """
    client, secret = with_state(
        service_settings(config_file), lambda s: s.accounts.add_client(name, set(permissions)))
    click.echo(f"client_id={client.id}")
    click.echo(f"client_secret={secret}")
    click.echo("store the secret now: only its hash is kept", err=True)


@clients.command("list")
@settings_option
def clients_list(config_file: Path | None) -> None:
    """List clients (never their secrets).

    \b
    Example:
      jwtwarden clients list
    """
    for client in with_state(service_settings(config_file), lambda s: s.accounts.list_clients()):
        click.echo(f"{client.name}\t{client.id}\t{' '.join(sorted(client.permissions))}")


@clients.command("delete")
@settings_option
@click.argument("name")
def clients_delete(config_file: Path | None, name: str) -> None:
    """Delete a client.

    \b
    Example:
      jwtwarden clients delete billing-backend
    """
    with_state(service_settings(config_file), lambda s: s.accounts.delete_client(name))
    click.echo(f"deleted {name}")


# ---- gc -----------------------------------------------------------------------------------


@click.command()
@settings_option
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Rows deleted per transaction.")
def gc(config_file: Path | None, batch: int) -> None:
    """Delete expired refresh tokens, dead sessions and deny-list rows, in bounded batches.

    \b
    Example:
      jwtwarden gc --batch 5000
    """
    counts = with_state(service_settings(config_file), lambda s: s.sessions.gc(batch=batch))
    click.echo(" ".join(f"{name}={count}" for name, count in counts.items()))
