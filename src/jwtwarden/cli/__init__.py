"""The ``jwtwarden`` command line. Every command has ``--help`` with an example."""

from __future__ import annotations

import click

from jwtwarden import __version__
from jwtwarden.cli.audit import crack_command, debugger_command, inspect_command
from jwtwarden.cli.backup import backup
from jwtwarden.cli.keys import keys
from jwtwarden.cli.scan import scan
from jwtwarden.cli.service import clients, config, gc, serve, users
from jwtwarden.cli.tokens import issue, verify

__all__ = ["main"]

EXTRA_OF_MODULE = {
    # the token service: pip install 'jwtwarden[server]'
    **dict.fromkeys(("fastapi", "starlette", "pydantic", "pydantic_core", "uvicorn", "sqlalchemy",
                     "aiosqlite", "greenlet", "argon2", "_argon2_cffi_bindings"), "server"),
    "asyncpg": "postgres",
    "redis": "redis",
    "fastapi_offline": "docs",
}
"""The extra that brings each optional module a command may need."""


class _Commands(click.Group):
    """A library-only install has no token service: a command that needs it says which
    ``pip install`` line brings it, in one line, instead of a ModuleNotFoundError traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as error:
            extra = EXTRA_OF_MODULE.get((error.name or "").partition(".")[0])
            if extra is None:
                raise
            command = " ".join(["jwtwarden", *filter(None, [ctx.invoked_subcommand])])
            click.echo(f"error: {command} needs the '{extra}' extra, which is not installed "
                       f"(no module {error.name}): pip install 'jwtwarden[{extra}]'", err=True)
            ctx.exit(1)


@click.group(cls=_Commands,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="jwtwarden")
def main() -> None:
    """jwtwarden: secure-by-default JSON Web Tokens.

    \b
    Example:
      jwtwarden keys generate --alg ES256 --out keys.json
      jwtwarden issue --keys keys.json --iss https://auth.example.com --aud api --sub u1 > token
      jwtwarden verify --keys keys.json --iss https://auth.example.com --aud api --alg ES256 < token
    """


main.add_command(keys)
main.add_command(issue)
main.add_command(verify)
main.add_command(serve)
main.add_command(config)
main.add_command(users)
main.add_command(clients)
main.add_command(gc)
main.add_command(backup)
main.add_command(scan)
main.add_command(inspect_command)
main.add_command(crack_command)
main.add_command(debugger_command)
