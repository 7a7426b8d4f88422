"""``jwtwarden backup FILE``: a consistent copy of the service's SQLite database, while it serves."""

from __future__ import annotations

from pathlib import Path

import click

from jwtwarden.cli.service import service_settings, settings_option

__all__ = ["backup"]


@click.command()
@settings_option
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def backup(config_file: Path | None, destination: Path) -> None:
    """Copy the embedded SQLite database to DESTINATION (a new file, mode 0600).

    Safe while `jwtwarden serve` runs: the copy is one consistent snapshot. The
    key-encryption key is not part of it (keep it backed up separately: without it the
    copy's signing keys cannot be decrypted). For PostgreSQL use pg_dump
    (docs/deployment.md).

    \b
    Example:
      jwtwarden backup /var/backups/jwtwarden/$(date +%F).db
    """
    from jwtwarden.service.storage.backup import BackupError, backup_sqlite, sqlite_path

    settings = service_settings(config_file)
    source = sqlite_path(settings.database_url, settings.data_dir)
    if source is None:
        raise click.ClickException(
            "the database is PostgreSQL: back it up with pg_dump (see docs/deployment.md)"
        )
    if not source.is_file():
        raise click.ClickException(f"no database at {source}: nothing to back up")
    try:
        summary = backup_sqlite(source, destination)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    counts = " ".join(f"{table}={count}" for table, count in summary.rows.items())
    click.echo(f"backup written to {summary.path} ({summary.size} bytes): {counts}")
