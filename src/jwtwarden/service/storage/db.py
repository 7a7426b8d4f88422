"""The database connection: SQLite by default, PostgreSQL to scale out, both async.

``database_url()`` maps what people write (``postgresql://user@host/db``, ``sqlite:///x.db``)
to the async drivers (asyncpg, aiosqlite). :class:`Database` gives two kinds of
connection: :meth:`~Database.transaction` for every state change (``BEGIN IMMEDIATE`` on
SQLite, serialised in process so writers never spin on SQLite's busy handler) and
:meth:`~Database.read`. Connection failures become
:class:`~jwtwarden.errors.TemporarilyUnavailable`, which the HTTP layer answers with 503.

**The hot path** (issue #12). :meth:`Database.run` takes a unit of work as plain synchronous
code. On SQLite it runs on the event loop itself, on one connection kept open for that: a
refresh's statements cost ~40 µs in SQLite, less than the hop to a worker thread and back, and
a transaction that runs without yielding cannot be interleaved with another in this process.
That connection never waits for SQLite's lock (``busy_timeout=0``): when another process holds
the write lock (another worker, a CLI command), ``BEGIN IMMEDIATE`` fails at once and the unit
runs in a worker thread instead, where waiting does not stall the loop. The loop connection
does not checkpoint the WAL itself (a checkpoint may wait for the disk); a background thread
does, every :data:`CHECKPOINT_EVERY` commits. :class:`Prepared` statements are SQLAlchemy Core
compiled once for the database's dialect and executed on the driver's cursor, without
building, compiling and wrapping a statement per call (~60 µs each through SQLAlchemy).

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
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler

from jwtwarden.errors import TemporarilyUnavailable

__all__ = ["Database", "Prepared", "UnsafeFileError", "database_url", "private_directory"]

log = logging.getLogger("jwtwarden.storage")

T = TypeVar("T")

_READ_OPTION = "jwtwarden_read"
CHECKPOINT_EVERY = 500  # commits on the loop connection between two background WAL checkpoints
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """A Core statement compiled once for one dialect, run on the unit of work's DB-API cursor.

    Parameters are plain values of the columns' Python types (``float``, ``int``, ``str``,
    ``bytes``, ``None``), passed by their bind names; rows come back as dicts keyed by the
    result's column labels. Driver errors become SQLAlchemy's, as they would through
    ``Connection.execute``, so the unit of work treats them the same way.
    """

    sql: str
    names: tuple[str, ...]

    def first(self, conn: sa.Connection, /, **params: Any) -> dict[str, Any] | None:
        """The first row, or None."""
        return self._call(conn, params, fetch=True)  # type: ignore[return-value]

    def execute(self, conn: sa.Connection, /, **params: Any) -> int:
        """Run the statement; the number of rows it changed."""
        return self._call(conn, params, fetch=False)  # type: ignore[return-value]

    def _call(self, conn: sa.Connection, params: dict[str, Any], *, fetch: bool) -> dict[str, Any] | int | None:
        args = [params[name] for name in self.names]
        dbapi = conn.dialect.loaded_dbapi
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, args)
            if not fetch:
                return int(cursor.rowcount)
            row = cursor.fetchone()
            return None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))
        except dbapi.Error as error:
            raise exc.DBAPIError.instance(self.sql, args, error, dbapi.Error) from None
        finally:
            cursor.close()


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
            # No pool_pre_ping: with asyncpg it is three round trips (BEGIN, ping, ROLLBACK)
            # before every unit of work, which cost more than half of a refresh. A connection
            # the server closed (restart, pg_terminate_backend) is known to asyncpg without
            # asking; the checkout listener below discards it, and one that breaks mid-way is
            # a 503 (see _unit).
            options |= {
                "pool_size": pool_size,
                "max_overflow": max_overflow,
                "pool_timeout": pool_timeout,
                "connect_args": {"timeout": pool_timeout, "command_timeout": 30},
            }
        else:
            options["connect_args"] = {"timeout": 30}
        self.engine: AsyncEngine = create_async_engine(parsed, **options)
        if backend == "postgresql":
            event.listen(self.engine.sync_engine, "checkout", _discard_closed)
        self._write_lock: asyncio.Lock | None = None
        self._sync_engine: sa.Engine | None = None
        self._loop_engine: sa.Engine | None = None
        self._loop_conn: sa.Connection | None = None
        self._commits = 0
        self.checkpoint_every = CHECKPOINT_EVERY
        self._checkpoint: asyncio.Future[None] | None = None
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
                _private_sqlite_file(parsed.database)
            self._write_lock = asyncio.Lock()
            _sqlite_discipline(self.engine.sync_engine)
            sync_url = parsed.set(drivername="sqlite+pysqlite")
            # units of work that must wait for another process's lock: a worker thread each
            self._sync_engine = sa.create_engine(
                sync_url, connect_args={"timeout": 30, "check_same_thread": False})
            _sqlite_discipline(self._sync_engine)
            # units of work on the event loop: one connection that never waits (see above)
            self._loop_engine = sa.create_engine(
                sync_url, poolclass=sa.pool.StaticPool,
                connect_args={"timeout": 0, "check_same_thread": False})
            _sqlite_discipline(self._loop_engine, on_loop=True)  # its units begin themselves

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def prepare(self, statement: sa.ClauseElement) -> Prepared:
        """``statement`` compiled for this database, to run with :class:`Prepared`'s methods."""
        engine = self._loop_engine or self.engine.sync_engine
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)  # noqa: S101 - a statement, not DDL
        assert compiled.positional  # noqa: S101 - qmark (SQLite), $n (asyncpg)
        return Prepared(str(compiled), tuple(compiled.positiontup or ()))

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

        ``work`` is plain synchronous code: on SQLite it runs on the event loop (in a worker
        thread when another process holds the write lock; see the module's docstring), on
        PostgreSQL through the async driver (``run_sync``).
        Failures of the connection become :class:`TemporarilyUnavailable`.
        """
        if self._sync_engine is None:
            async with self._unit(read=not write) as conn:
                return await conn.run_sync(work)
        if not write:
            try:
                return self._on_loop(work, write=False)
            except _Busy:  # a read that met a lock (WAL recovery, a truncating checkpoint)
                return await asyncio.to_thread(self._sync_unit, work, write)
        assert self._write_lock is not None  # noqa: S101 - SQLite has one
        async with self._write_lock:
            try:
                return self._on_loop(work, write=True)
            except _Busy:  # another process writes: wait for it in a thread, not on the loop
                return await asyncio.to_thread(self._sync_unit, work, write)
            finally:
                self._maybe_checkpoint()

    def _on_loop(self, work: Callable[[sa.Connection], T], *, write: bool) -> T:
        """One unit of work on the loop connection, which never waits for a lock: ``_Busy``
        when ``BEGIN IMMEDIATE`` finds another process writing (nothing has run then).

        The transaction is begun and ended on the driver's connection: SQLAlchemy's begin and
        commit cost more than the statements of a refresh. Work that runs SQLAlchemy
        statements on ``conn`` joins it (SQLAlchemy's autobegin emits nothing on this engine).
        """
        assert self._loop_engine is not None  # noqa: S101 - only called for SQLite
        conn = self._loop_conn
        try:
            if conn is None or conn.invalidated or conn.closed:
                conn = self._loop_conn = self._loop_engine.connect()
            raw = conn.connection.dbapi_connection
            assert raw is not None  # noqa: S101 - a live connection
            try:
                raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except self._loop_engine.dialect.loaded_dbapi.OperationalError as error:
                if write and _locked(error):
                    raise _Busy from None
                raise exc.DBAPIError.instance("BEGIN", (), error, sqlite3.Error) from None
            try:
                result = work(conn)
            except BaseException:
                if conn.in_transaction():
                    conn.rollback()
                else:
                    raw.rollback()
                raise
            if conn.in_transaction():
                conn.commit()
            else:
                raw.commit()
        except _Busy:
            raise
        except sqlite3.Error as error:
            self._drop_loop_connection()
            raise _unavailable(error) from None
        except _CONNECTION_ERRORS as error:
            if _statement_error(error):
                raise
            if not write and _locked(error):  # a read that met a checkpoint's lock: in a thread
                raise _Busy from None
            self._drop_loop_connection()
            raise _unavailable(error) from None
        if write:
            self._commits += 1
        return result

    def _drop_loop_connection(self) -> None:
        conn, self._loop_conn = self._loop_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def _maybe_checkpoint(self) -> None:
        """Every CHECKPOINT_EVERY commits on the loop, a passive WAL checkpoint in a thread
        (it never blocks writers; the loop connection does not checkpoint on commit)."""
        if self._commits < self.checkpoint_every or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        self._commits = 0
        assert self._sync_engine is not None  # noqa: S101 - SQLite
        engine = self._sync_engine

        def checkpoint() -> None:
            try:  # on the driver's connection: in a transaction, SQLite refuses to checkpoint
                raw = engine.raw_connection()
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
                finally:
                    raw.close()
            except Exception as error:  # noqa: BLE001 - logged; the next checkpoint tries again
                log.warning("WAL checkpoint failed (%s: %s)", type(error).__name__, error)

        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(checkpoint))

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
        await self.run(lambda conn: conn.exec_driver_sql("SELECT 1").all(), write=False)

    async def dispose(self) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        self._drop_loop_connection()
        await self.engine.dispose()
        for engine in (self._sync_engine, self._loop_engine):
            if engine is not None:
                engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _discard_closed(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A pooled asyncpg connection that the server closed is replaced, not handed out."""
    driver = getattr(record, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("the server closed this connection")


class _Busy(Exception):
    """The loop connection met another process's lock before doing anything."""


def _locked(error: BaseException) -> bool:
    text = str(getattr(error, "orig", error)).lower()
    return "locked" in text or "busy" in text


def _unavailable(error: BaseException) -> TemporarilyUnavailable:
    # The driver's message may contain host names or SQL; the log gets the class only.
    return TemporarilyUnavailable(f"the database is unavailable ({type(error).__name__})")


def _sqlite_discipline(engine: sa.Engine, *, on_loop: bool = False) -> None:
    """WAL, foreign keys, a busy timeout, and explicit BEGIN IMMEDIATE for writers.

    ``on_loop``: the event loop's connection, which never waits for a lock and leaves WAL
    checkpoints to a thread."""

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
            if on_loop:
                cursor.execute("PRAGMA busy_timeout=0")
                cursor.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            cursor.close()

    if on_loop:
        return  # Database._on_loop begins and ends its transactions on the driver's connection

    @event.listens_for(engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
