"""``jwtwarden backup``: a consistent, private copy of a live SQLite database that restores."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from jwtwarden.service.storage.backup import BackupError, backup_sqlite, sqlite_path
from tests.servicekit import (
    TEST_KEK,
    add_client,
    read_families,
    running_server,
    server_env,
    token_hash,
    tokens,
)

CHAINS = 8


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jwtwarden", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def _follow_chain(client: httpx.AsyncClient, first: str, seen: list[str],
                        stop: threading.Event) -> None:
    token = first
    while not stop.is_set():
        answer = await client.post("/v1/auth/refresh", json={"refresh_token": token})
        token = tokens(answer)["refresh_token"]
        seen.append(token)


def test_a_backup_taken_under_refresh_load_restores_every_session_consistently(
    tmp_path: Path,
) -> None:
    env = server_env(tmp_path, JWTWARDEN_KEK=TEST_KEK)
    backup_file = tmp_path / "backups" / "jw.db"
    backup_file.parent.mkdir()
    chains: list[list[str]] = [[] for _ in range(CHAINS)]
    with running_server(env) as server:
        client_id, secret = add_client(env, "backend", "sessions")
        for chain in chains:
            pair = tokens(httpx.post(server.url + "/v1/sessions", auth=(client_id, secret),
                                     json={"subject": "user-1"}))
            chain.append(pair["refresh_token"])

        stop = threading.Event()
        backup_result: list[subprocess.CompletedProcess[str]] = []

        async def load() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                followers = [asyncio.create_task(_follow_chain(client, c[0], c, stop))
                             for c in chains]

                def take_backup() -> None:
                    backup_result.append(_cli(env, "backup", str(backup_file)))
                    stop.set()

                # the backup runs in the middle of the load: refreshes before, during, after
                while sum(len(c) for c in chains) < CHAINS * 5:
                    await asyncio.sleep(0.01)  # yield to the followers, not waiting for time
                await asyncio.to_thread(take_backup)
                await asyncio.gather(*followers)

        asyncio.run(load())
        assert backup_result[0].returncode == 0, backup_result[0].stderr
        assert "backup written to" in backup_result[0].stdout
        live = read_families(Path(env["JWTWARDEN_DATA_DIR"]) / "jwtwarden.db")

    # the copy is private and self-contained
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert not Path(str(backup_file) + "-wal").exists()
    assert sqlite3.connect(backup_file).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not list(backup_file.parent.glob(".*partial*"))

    # every session in the copy is consistent: one usable refresh token, one the client holds
    saved = read_families(backup_file)
    assert len(saved) == CHAINS == len(live)
    restorable: list[str] = []
    newer: list[str] = []  # tokens issued after the snapshot: the copy never heard of them
    for family in saved.values():
        assert family.revoked_reason is None
        assert len(family.usable) == 1
        holders = [(c, t) for c in chains for t in c if token_hash(t) in family.usable]
        assert len(holders) == 1  # a token the client really received
        chain, token = holders[0]
        restorable.append(token)
        if chain[-1] != token:
            newer.append(chain[-1])
    assert newer  # the load went on after the snapshot

    # restored into a fresh data directory with the same KEK, the service serves every session
    restored = server_env(tmp_path / "restored", JWTWARDEN_KEK=TEST_KEK)
    data = Path(restored["JWTWARDEN_DATA_DIR"])
    data.mkdir(parents=True)
    (data / "jwtwarden.db").write_bytes(backup_file.read_bytes())
    with running_server(restored) as server:
        for token in restorable:
            pair = tokens(httpx.post(server.url + "/v1/auth/refresh", json={"refresh_token": token}))
            info = httpx.get(server.url + "/v1/auth/userinfo",
                             headers={"authorization": f"Bearer {pair['access_token']}"})
            assert info.status_code == 200, info.text
            assert info.json()["sub"] == "user-1"
        for token in newer:
            refused = httpx.post(server.url + "/v1/auth/refresh", json={"refresh_token": token})
            assert refused.status_code in (400, 401)
            assert refused.json()["error"] == "invalid_grant"


def test_backup_refuses_to_overwrite_and_leaves_nothing_behind(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE users (id TEXT)")
    target = tmp_path / "out.db"
    target.write_text("precious")
    with pytest.raises(BackupError, match="exists"):
        backup_sqlite(source, target)
    assert target.read_text() == "precious"
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(BackupError, match="exists"):
        backup_sqlite(source, link)
    assert not (tmp_path / "elsewhere.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.db", "out.db", "src.db"]


def test_backup_counts_rows_and_creates_the_file_private_whatever_the_umask(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE users (id TEXT)")
        conn.executemany("INSERT INTO users VALUES (?)", [("a",), ("b",)])
    old = os.umask(0)
    try:
        summary = backup_sqlite(source, tmp_path / "copy.db")
    finally:
        os.umask(old)
    assert summary.rows == {"users": 2}
    assert stat.S_IMODE((tmp_path / "copy.db").stat().st_mode) == 0o600


def test_backup_of_postgresql_points_to_pg_dump(tmp_path: Path) -> None:
    assert sqlite_path("postgresql://app@db/jw", tmp_path) is None
    assert sqlite_path(None, tmp_path) == (tmp_path / "jwtwarden.db").resolve()
    env = server_env(tmp_path, JWTWARDEN_DATABASE_URL="postgresql://app@db.invalid/jw")
    result = _cli(env, "backup", str(tmp_path / "x.db"))
    assert result.returncode != 0
    assert "pg_dump" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_backup_of_a_missing_database_says_so(tmp_path: Path) -> None:
    result = _cli(server_env(tmp_path), "backup", str(tmp_path / "x.db"))
    assert result.returncode != 0
    assert "no database" in result.stderr
    assert not (tmp_path / "data").exists()
