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
async def _open(settings: Settings, *, read_only: bool = False) -> AsyncIterator[Any]:
    from jwtwarden.service.app import build_state  # the server extra, imported on use

    if read_only:
        await _require_existing_store(settings)
    state = await build_state(settings, follow=False)  # one-shot: no Redis subscription
    try:
        yield state
    finally:
        await state.close()


async def _require_existing_store(settings: Settings) -> None:
    """A read-only command must not create a data directory, a database, a KEK and a key
    where there was nothing (a command run in the wrong directory): say so instead."""
    import sqlalchemy as sa

    from jwtwarden.service.config import mask_url
    from jwtwarden.service.storage.db import Database, database_url
    from jwtwarden.service.storage.migrations import applied_versions

    url = database_url(settings.database_url, settings.data_dir)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or ":memory:")
        if path.name == ":memory:" or not path.is_file():
            where = (f"{settings.data_dir.resolve()} (JWTWARDEN_DATA_DIR)" if settings.sqlite_default
                     else f"{path} (JWTWARDEN_DATABASE_URL)")
            raise click.ClickException(
                f"no token service data in {where}: run this where the service keeps its data, "
                "or point JWTWARDEN_DATA_DIR / --config at it")
        return
    db = Database(url, pool_size=1, max_overflow=0, pool_timeout=settings.db_pool_timeout)
    try:
        versions = await applied_versions(db)
    finally:
        await db.dispose()
    if not versions:
        raise click.ClickException(
            f"the database {mask_url(settings.database_url or url)} holds no token service data "
            "(JWTWARDEN_DATABASE_URL): nothing to read")


def with_state(settings: Settings, job: Callable[[Any], Awaitable[T]], *, read_only: bool = False) -> T:
    """Run ``job(state)`` against the service's database; errors become clean exits.

    ``read_only``: the command only reads, so a missing data directory or an empty database
    is an error (exit 1) instead of being created.
    """

    async def main() -> T:
        async with _open(settings, read_only=read_only) as state:
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
@click.option("--log-level", default=None, help="Default JWTWARDEN_LOG_LEVEL, else info.",
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--workers", default="1", show_default=True, metavar="N|auto",
              help="Worker processes sharing the port, the database and the deny list "
              "(auto: one per core this process may use).")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="uvicorn's access log (one line per request, in JWTWARDEN_LOG_FORMAT).")
def serve(config_file: Path | None, host: str | None, port: int | None, log_level: str | None,
          workers: str, access_log: bool) -> None:
    """Run the token service (FastAPI on uvicorn).

    On first start it creates the data directory, the SQLite database (or migrates the
    configured one) and an ES256 signing key. Without JWTWARDEN_ISSUER the issuer is
    http://HOST:PORT of the address it binds (loopback only). The OpenAPI document is at
    /openapi.json; JWTWARDEN_DOCS=1 adds the interactive docs at /docs and /redoc.
    With --workers N the start-up is done once, then N processes serve (docs/deployment.md).

    \b
    Example:
      JWTWARDEN_ISSUER=http://127.0.0.1:8000 jwtwarden serve --port 8000 --workers auto
    """
    import os

    from jwtwarden.service import logs
    from jwtwarden.service.config import cores
    from jwtwarden.service.metrics import MULTIPROC_ENV
    from jwtwarden.service.workers import run_workers, uvicorn_config

    count = _worker_count(workers, cores())
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if log_level is not None:
        overrides["log_level"] = log_level
    settings = service_settings(config_file, **overrides)
    # the event log (logins, refusals with their reason, reuse, logouts) and warnings go to
    # stderr, with the access log when asked for; tokens and secrets are never logged
    logs.configure(settings.log_format, settings.log_level)
    logging.getLogger("jwtwarden.service").info(
        "issuer %s (tokens, metadata and jwks_uri name it; resource servers must expect it)",
        settings.issuer)
    if count > 1:
        # the workers read the configuration as this process did: the command line's
        # overrides become the variables they read
        environment = {f"JWTWARDEN_{name.upper()}": str(value) for name, value in overrides.items()}
        if config_file is not None:
            environment["JWTWARDEN_CONFIG"] = str(config_file.resolve())
        try:
            run_workers(settings, workers=count, access_log=access_log, environment=environment)
        except ConfigError as error:
            raise click.ClickException(f"configuration: {error}") from None
        return
    os.environ.pop(MULTIPROC_ENV, None)  # one process: its own registry
    from jwtwarden.service.app import create_app

    try:
        app = create_app(settings)
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    _run_until_stopped(app, uvicorn_config(app, settings, access_log=access_log))


def _worker_count(text: str, available: int) -> int:
    if text.strip().lower() == "auto":
        return available
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 256:
        raise click.BadParameter("must be a number from 1 to 256, or auto", param_hint="--workers")
    return count


def _run_until_stopped(app: Any, config: Any) -> None:
    """uvicorn's server, which on the stop signal also ends the revocation feed's long-polls:
    uvicorn waits for open requests before it stops, and a long-poll waits up to 25 s."""
    import uvicorn

    class Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None

        async def startup(self, sockets: Any = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            state = getattr(app.state, "jwtwarden", None)
            if self.loop is not None and state is not None:
                self.loop.call_soon_threadsafe(state.end_long_polls)

    Server(config).run()


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
    for user in with_state(service_settings(config_file), lambda s: s.accounts.list_users(), read_only=True):
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
    """Manage API clients (trusted backends, introspection callers, OAuth clients)."""


@clients.command("add")
@settings_option
@click.argument("name")
@click.option("--permission", "permissions", multiple=True,
              type=click.Choice(["sessions", "introspect"]),
              help="sessions: POST /v1/sessions; introspect: RFC 7662/7009. Repeatable.")
@click.option("--grant", "grants", multiple=True,
              type=click.Choice(["client_credentials", "refresh_token"]),
              help="Grant type at POST /v1/auth/token. Repeatable.")
@click.option("--scope", default="",
              help="Space-separated scopes its client_credentials tokens may carry.")
@click.option("--audience", default=None,
              help="aud of its client_credentials tokens (default: the service's audience).")
@click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Its public JWKS file: private_key_jwt, no secret at all.")
@click.option("--jwks-url", default=None,
              help="Where its public JWKS is served (https): private_key_jwt, no secret at all.")
@click.option("--dpop-bound", is_flag=True, default=False,
              help="Its token requests must carry a DPoP proof (RFC 9449 dpop_bound_access_tokens).")
def clients_add(
    config_file: Path | None, name: str, permissions: tuple[str, ...], grants: tuple[str, ...],
    scope: str, audience: str | None, jwks_file: Path | None, jwks_url: str | None,
    dpop_bound: bool,
) -> None:
    """Create a client and print its id and secret (the secret is shown only this once).

    A client given --jwks or --jwks-url has no secret: it authenticates at the token
    endpoint with assertions signed by its private key (private_key_jwt, RFC 7523).

    \b
    Examples:
      jwtwarden clients add billing-backend --permission sessions
      jwtwarden clients add reports --grant client_credentials --scope "orders:read" --audience orders-api
      jwtwarden clients add batch --grant client_credentials --scope "orders:read" --jwks batch.jwks.json
    """
    if not permissions and not grants:
        raise click.UsageError("give at least one --permission or --grant")
    settings = service_settings(config_file)
    if jwks_file is not None or jwks_url is not None:
        jwks = jwks_file.read_text(encoding="utf-8") if jwks_file is not None else None
        if permissions:
            raise click.UsageError("--permission needs a client secret; a client with --jwks or "
                                   "--jwks-url authenticates only at the token endpoint")
        client = with_state(settings, lambda s: s.accounts.add_client_with_keys(
            name, grants=set(grants), scope=scope, audience=audience, jwks=jwks, jwks_url=jwks_url,
            dpop_bound_access_tokens=dpop_bound))
        click.echo(f"client_id={client.id}")
        click.echo("token_endpoint_auth_method=private_key_jwt")
        return
    client, secret = with_state(settings, lambda s: s.accounts.add_client(
        name, set(permissions), grants=set(grants), scope=scope, audience=audience,
        dpop_bound_access_tokens=dpop_bound))
    click.echo(f"client_id={client.id}")
    click.echo(f"client_secret={secret}")
    click.echo("store the secret now: only its hash is kept", err=True)


@clients.command("list")
@settings_option
def clients_list(config_file: Path | None) -> None:
    """List clients (never their secrets): name, id, permissions and grants, auth method, scope.

    \b
    Example:
      jwtwarden clients list
    """
    for client in with_state(service_settings(config_file), lambda s: s.accounts.list_clients(),
                             read_only=True):
        rights = " ".join([*sorted(client.permissions), *sorted(client.grants)])
        click.echo(f"{client.name}\t{client.id}\t{rights}\t{client.auth_method}\t{client.scope}")


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
