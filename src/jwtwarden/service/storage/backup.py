"""Online backups of the embedded SQLite database.

:func:`backup_sqlite` copies a live database with SQLite's online backup API in one step: the
copy is one read transaction of the source, so it is a consistent snapshot even while the
service rotates refresh tokens (in WAL mode readers never block writers). The copy is written
to a new file created exclusively with mode 0600, checked with ``PRAGMA integrity_check``,
switched to a rollback journal (a single self-contained file), synced, and only then renamed
into place: a failed or interrupted backup never leaves a half-written file under the name.

The key-encryption key is not in the database and so not in the backup: signing keys are
stored encrypted under it. A backup without the KEK still restores users, clients, sessions
and revocations, but its signing keys cannot be decrypted, and refresh-token successors
derived under the KEK cannot be recomputed; keep the KEK backed up separately.

PostgreSQL has its own tools (``pg_dump``); see docs/deployment.md.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from jwtwarden.service.storage.db import database_url

__all__ = ["BackupError", "BackupSummary", "backup_sqlite", "sqlite_path"]

_COUNTED = ("users", "clients", "families", "refresh_tokens", "revocations", "signing_keys")


class BackupError(Exception):
    """The backup could not be made; nothing was left at the destination."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    size: int
    rows: dict[str, int]


def sqlite_path(url: str | None, data_dir: Path) -> Path | None:
    """The file of the configured SQLite database, or ``None`` for PostgreSQL."""
    parsed = sa.make_url(database_url(url, data_dir))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _create_private(path: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    os.close(os.open(path, flags, 0o600))


def backup_sqlite(source: Path, destination: Path) -> BackupSummary:
    """Copy the SQLite database ``source`` to ``destination`` (which must not exist)."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if destination.exists() or destination.is_symlink():
        raise BackupError(f"{destination} exists; choose a new file")
    parent = destination.parent
    if not parent.is_dir():
        raise BackupError(f"{parent} is not a directory")
    partial = parent / f".{destination.name}.partial-{os.getpid()}"
    try:
        _create_private(partial)
    except OSError as error:
        raise BackupError(f"cannot create {partial}: {error.strerror}") from None
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # pages=-1: the whole database in one read transaction
                dst.execute("PRAGMA journal_mode=DELETE")
                verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
                if verdict != "ok":
                    raise BackupError(f"the copy failed its integrity check: {verdict}")
                tables = {r[0] for r in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                rows = {
                    t: int(dst.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])  # noqa: S608
                    for t in _COUNTED if t in tables
                }
            finally:
                dst.close()
        finally:
            src.close()
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.link(partial, destination)  # fails rather than replacing a file created meanwhile
    except sqlite3.Error as error:
        raise BackupError(f"backup failed: {error}") from None
    except FileExistsError:
        raise BackupError(f"{destination} exists; choose a new file") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    with contextlib.suppress(OSError):
        directory = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return BackupSummary(destination, destination.stat().st_size, rows)
