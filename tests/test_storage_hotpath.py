"""The SQLite unit of work on the event loop (issue #12): all or nothing, never blocking the loop
on another process's lock, and the WAL kept short by background checkpoints."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from jwtwarden.service.storage.db import Database

pytestmark = pytest.mark.anyio

items = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.Text, nullable=False))


async def _database(tmp_path: Path) -> tuple[Database, Path]:
    path = tmp_path / "hot.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.run(lambda conn: items.create(conn))
    return db, path


def _names(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM items ORDER BY id")]


async def test_work_that_raises_leaves_nothing_behind_through_either_kind_of_statement(tmp_path: Path) -> None:
    db, path = await _database(tmp_path)
    insert = db.prepare(items.insert().values(name=sa.bindparam("name")))
    try:
        def half_done(conn: sa.Connection) -> None:
            insert.execute(conn, name="prepared")
            conn.execute(items.insert().values(name="core"))
            raise RuntimeError("signing failed")

        with pytest.raises(RuntimeError):
            await db.run(half_done)
        assert _names(path) == []
        await db.run(lambda conn: insert.execute(conn, name="after"))  # the connection is usable
        await db.run(lambda conn: conn.execute(items.insert().values(name="core after")))
        assert _names(path) == ["after", "core after"]
    finally:
        await db.dispose()


async def test_a_write_waits_for_another_process_in_a_thread_and_the_loop_keeps_running(tmp_path: Path) -> None:
    db, path = await _database(tmp_path)
    insert = db.prepare(items.insert().values(name=sa.bindparam("name")))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process (a CLI command, a worker) is writing
        other.execute("INSERT INTO items (name) VALUES ('other')")
        write = asyncio.ensure_future(db.run(lambda conn: insert.execute(conn, name="ours")))
        ticks = 0
        while ticks < 20:  # the loop is free while the write waits for the lock
            await asyncio.sleep(0)
            ticks += 1
        assert not write.done()
        threading.Timer(0.05, lambda: other.execute("COMMIT")).start()
        await asyncio.wait_for(write, 30)
        assert _names(path) == ["other", "ours"]
        # reads never wait for a writer (WAL)
        other.execute("BEGIN IMMEDIATE")
        rows = await db.run(lambda conn: conn.execute(sa.select(items.c.name)).scalars().all(), write=False)
        assert rows == ["other", "ours"]
        other.execute("ROLLBACK")
    finally:
        other.close()
        await db.dispose()


async def test_background_checkpoints_keep_the_wal_from_growing(tmp_path: Path) -> None:
    db, path = await _database(tmp_path)
    db.checkpoint_every = 50
    insert = db.prepare(items.insert().values(name=sa.bindparam("name")))
    wal = path.with_name(path.name + "-wal")
    try:
        sizes = []
        for batch in range(8):
            for i in range(100):
                await db.run(functools.partial(insert.execute, name=f"{batch}-{i}-" + "x" * 2000))
            await asyncio.sleep(0.2)  # let the checkpoint thread finish (not a clock: a yield)
            sizes.append(wal.stat().st_size)
        assert len(_names(path)) == 800
        # 800 commits of ~2 KiB rows: without checkpoints the WAL holds every frame (>3 MiB);
        # with them it is reused from the start and stays near what 50 commits write
        assert max(sizes[2:]) < 1_500_000, sizes
    finally:
        await db.dispose()



async def test_a_read_that_meets_a_lock_on_the_loop_is_done_again_in_a_thread(tmp_path: Path) -> None:
    """SQLite answers a reader "locked" only in rare states (WAL recovery, a truncating
    checkpoint of another process); the lock is injected here, on the loop's thread only."""
    db, _ = await _database(tmp_path)
    await db.run(lambda conn: conn.execute(items.insert().values(name="one")))
    loop_thread = threading.get_ident()
    try:
        def read(conn: sa.Connection) -> list[str]:
            if threading.get_ident() == loop_thread:
                raise sa.exc.OperationalError("SELECT", (), sqlite3.OperationalError("database is locked"))
            return list(conn.execute(sa.select(items.c.name)).scalars().all())

        assert await db.run(read, write=False) == ["one"]
    finally:
        await db.dispose()
