"""The database connection: SQLite by default, PostgreSQL to scale out, both async.

``database_url()`` maps what people write (``postgresql://user@host/db``, ``sqlite:///x.db``)
to the async drivers (asyncpg, aiosqlite). :class:`Database` gives two kinds of
connection: :meth:`~Database.transaction` for every state change (``BEGIN IMMEDIATE`` on
SQLite, serialised in process so writers never spin on SQLite's busy handler) and
:meth:`~Database.read`. Connection failures become
:class:`~jwtwarden.errors.TemporarilyUnavailable`, which the HTTP layer answers with 503.

An SQLite database file is created before SQLite opens it, exclusively, without following
a symbolic link and with mode 0600 (SQLite gives the ``-wal``, ``-shm`` and ``-journal``
files it creates the database file's mode), whoever opens it first: ``serve``, ``users
add`` or any other command. Existing files of another user are refused; existing files of
ours that others could read are made 0600. :func:`private_directory` does the same for the
data directory (0700).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jwtwarden.errors import TemporarilyUnavailable

__all__ = ["Database", "UnsafeFileError", "database_url", "private_directory"]

log = logging.getLogger("jwtwarden.storage")

T = TypeVar("T")

_READ_OPTION = "jwtwarden_read"
# What a lost or broken database connection looks like through SQLAlchemy and the drivers:
# every driver error except those that mean the statement itself was wrong.
_CONNECTION_ERRORS = (exc.DBAPIError, exc.TimeoutError, OSError, TimeoutError)
_STATEMENT_ERRORS = (exc.IntegrityError, exc.ProgrammingError, exc.DataError, exc.NotSupportedError)


def _statement_error(error: BaseException) -> bool:
    """A value the database refused (SQLSTATE class 22 / 23), not a lost connection."""
    if isinstance(error, _STATEMENT_ERRORS):
        return True
    orig = getattr(error, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


class UnsafeFileError(ValueError):
    """A file or directory of the service's data belongs to another user or is not what it should be."""


def _ours(path: Path, info: os.stat_result) -> None:
    if info.st_uid != os.geteuid():
        raise UnsafeFileError(
            f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}): run "
            "jwtwarden as the user that owns the data, or fix the ownership")


def _tighten(path: Path, info: os.stat_result, bits: int) -> None:
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.chmod(path, bits)
        log.warning("%s was readable by others (mode %04o); it is now %04o", path, mode, bits)


def private_directory(path: Path) -> None:
    """Create ``path`` with mode 0700, or make sure the existing one is ours, and make it 0700."""
    try:
        path.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # whatever the umask
        return
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFileError(f"{path} is not a directory")
    _ours(path, info)
    _tighten(path, info, 0o700)


def _private_sqlite_file(database: str) -> None:
    """Create the database file 0600 (exclusive, no-follow) or check the existing files."""
    path = Path(database)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except (FileExistsError, FileNotFoundError, PermissionError):
        pass  # exists (checked below), or SQLite will say why it cannot create it
    else:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.close(fd)
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        try:
            info = os.stat(path.with_name(name))
        except FileNotFoundError:
            continue
        _ours(path.with_name(name), info)
        _tighten(path.with_name(name), info, 0o600)


def database_url(url: str | None, data_dir: Path) -> str:
    """The async SQLAlchemy URL for ``url`` (default: SQLite in ``data_dir``)."""
    if url is None:
        return f"sqlite+aiosqlite:///{(data_dir / 'jwtwarden.db').resolve()}"
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


class Database:
    """An async engine plus the transaction discipline jwtwarden relies on."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 5.0,
    ) -> None:
        parsed = sa.make_url(url)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError("the database must be SQLite or PostgreSQL")
        self.dialect: Literal["sqlite", "postgresql"] = backend  # type: ignore[assignment]
        self.url = parsed
        options: dict[str, Any] = {}
        if backend == "postgresql":
            options |= {
                "pool_size": pool_size,
                "max_overflow": max_overflow,
                "pool_timeout": pool_timeout,
                "pool_pre_ping": True,
                "connect_args": {"timeout": pool_timeout, "command_timeout": 30},
            }
        else:
            options["connect_args"] = {"timeout": 30}
        self.engine: AsyncEngine = create_async_engine(parsed, **options)
        self._write_lock: asyncio.Lock | None = None
        self._sync_engine: sa.Engine | None = None
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
                _private_sqlite_file(parsed.database)
            self._write_lock = asyncio.Lock()
            _sqlite_discipline(self.engine.sync_engine)
            # A whole unit of work in one worker-thread hop: aiosqlite pays several hops
            # per statement, which dominated the cost of a refresh.
            self._sync_engine = sa.create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            _sqlite_discipline(self._sync_engine)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed when the block ends, rolled back on error.

        A connection that failed (server gone, connection in a broken state) is invalidated,
        never handed out again, and the failure becomes ``TemporarilyUnavailable``.
        """
        if self._write_lock is None:
            async with self._unit(read=False) as conn:
                yield conn
        else:
            async with self._write_lock, self._unit(read=False) as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only unit of work (a deferred transaction on SQLite)."""
        async with self._unit(read=True) as conn:
            yield conn

    @asynccontextmanager
    async def _unit(self, *, read: bool) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await self.engine.connect()
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from None
        try:
            if read:
                await conn.execution_options(**{_READ_OPTION: True})
            async with conn.begin():
                yield conn
        except _CONNECTION_ERRORS as error:
            if _statement_error(error):
                raise
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise _unavailable(error) from None
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def run(self, work: Callable[[sa.Connection], T], *, write: bool = True) -> T:
        """Run ``work(connection)`` as one transaction and return its result.

        ``work`` is plain synchronous code: on SQLite it runs in a worker thread (one hop for
        the whole transaction), on PostgreSQL through the async driver (``run_sync``).
        Failures of the connection become :class:`TemporarilyUnavailable`.
        """
        if self._sync_engine is None:
            async with self._unit(read=not write) as conn:
                return await conn.run_sync(work)
        if write and self._write_lock is not None:
            async with self._write_lock:
                return await asyncio.to_thread(self._sync_unit, work, write)
        return await asyncio.to_thread(self._sync_unit, work, write)

    def _sync_unit(self, work: Callable[[sa.Connection], T], write: bool) -> T:
        assert self._sync_engine is not None  # noqa: S101 - only called for SQLite
        try:
            with self._sync_engine.connect() as conn:
                if not write:
                    conn = conn.execution_options(**{_READ_OPTION: True})
                with conn.begin():
                    return work(conn)
        except _CONNECTION_ERRORS as error:
            if _statement_error(error):
                raise
            raise _unavailable(error) from None

    async def ping(self) -> None:
        """Raise :class:`TemporarilyUnavailable` unless the database answers."""
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _unavailable(error: BaseException) -> TemporarilyUnavailable:
    # The driver's message may contain host names or SQL; the log gets the class only.
    return TemporarilyUnavailable(f"the database is unavailable ({type(error).__name__})")


def _sqlite_discipline(engine: sa.Engine) -> None:
    """WAL, foreign keys, a busy timeout, and explicit BEGIN IMMEDIATE for writers."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
            # WAL is a property of the file: switch once. Switching needs the file to
            # itself, and SQLite answers "locked" at once (no busy wait) while another
            # connection writes, which happens only when replicas start on a new file.
            for attempt in range(100):
                cursor.execute("PRAGMA journal_mode")
                if str(cursor.fetchone()[0]).lower() == "wal":
                    break
                try:
                    cursor.execute("PRAGMA journal_mode=WAL")
                except Exception as error:  # sqlite3's, or aiosqlite's adaptation of it
                    if attempt == 99 or "locked" not in str(error):
                        raise
                    time.sleep(0.05)  # another starter holds the file for a moment
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
