"""File modes and ownership of the service's secrets (issue #16 F7).

The attacker here is another local user: one who can write the directory the service keeps
its files in (a shared parent, ``/tmp``), plants files or symlinks there before the service
starts, or reads whatever the service leaves readable. Tests that need "another user" run
as root and hand files to ``nobody``; elsewhere they skip.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.service.sessions.kek import KEKError, generate_kek_text, load_kek
from tests.servicekit import PASSWORD, add_user, running_server, server_env

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def can_chown() -> bool:
    return os.geteuid() == 0


needs_another_user = pytest.mark.skipif(not can_chown(), reason="needs root to play another user")


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, so that only the service's own choices make a file private."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ---- the development KEK ---------------------------------------------------------------------------


def test_the_development_kek_is_created_0600_next_to_the_data_directory(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "data"
    kek = load_kek(None, data)
    path = tmp_path / "data.kek"
    assert mode(path) == 0o600 and path.stat().st_uid == os.geteuid()
    assert not (data / "kek").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert load_kek(None, data).derive("x") == kek.derive("x")


def test_a_symlink_planted_at_a_predictable_temporary_name_is_not_followed(tmp_path: Path) -> None:
    """The old code wrote the new KEK through ``<data_dir>/.kek.<pid>.tmp`` with O_TRUNC."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    for directory in (data, tmp_path):
        (directory / f".kek.{os.getpid()}.tmp").symlink_to(victim)
        (directory / f".data.kek.{os.getpid()}.tmp").symlink_to(victim)
    load_kek(None, data)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("where", ["data/kek", "data.kek"])
def test_a_kek_path_that_is_a_symlink_is_refused(tmp_path: Path, where: str) -> None:
    """Another user points the KEK path at a key they know (or at a file of ours)."""
    (tmp_path / "data").mkdir(mode=0o700)
    theirs = tmp_path / "theirs"
    fd = os.open(theirs, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (generate_kek_text() + "\n").encode())
    os.close(fd)
    (tmp_path / where).symlink_to(theirs)
    with pytest.raises(KEKError, match=r"symbolic link|not a regular file"):
        load_kek(None, tmp_path / "data")


@pytest.mark.parametrize("where", ["data/kek", "data.kek"])
@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o666])
def test_a_kek_file_others_can_read_is_refused(tmp_path: Path, where: str, bits: int) -> None:
    (tmp_path / "data").mkdir(mode=0o700)
    path = tmp_path / where
    path.write_text(generate_kek_text() + "\n")
    path.chmod(bits)
    with pytest.raises(KEKError, match="0600"):
        load_kek(None, tmp_path / "data")
    assert path.exists()  # refused, left as found for the operator to look at


@needs_another_user
@pytest.mark.parametrize("where", ["data/kek", "data.kek"])
def test_a_kek_planted_by_another_user_in_a_shared_directory_is_refused(tmp_path: Path, where: str) -> None:
    """The report's case: a directory anyone can write, and a 0666 ``kek`` owned by someone else."""
    tmp_path.chmod(0o1777)
    (tmp_path / "data").mkdir(mode=0o777)
    path = tmp_path / where
    path.write_text(generate_kek_text() + "\n")
    for bits in (0o666, 0o600):
        path.chmod(bits)
        os.chown(path, NOBODY, NOBODY)
        with pytest.raises(KEKError, match="owned by"):
            load_kek(None, tmp_path / "data")


def test_starters_racing_on_a_new_data_directory_share_one_kek(tmp_path: Path) -> None:
    data = tmp_path / "data"
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def start() -> None:
        barrier.wait()
        keys.append(load_kek(None, data).derive("x"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["data.kek"]  # and no temporary file left


def test_a_kek_left_inside_the_data_directory_by_an_older_version_is_moved_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    text = generate_kek_text()
    fd = os.open(data / "kek", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (text + "\n").encode())
    os.close(fd)
    kek = load_kek(None, data)
    assert not (data / "kek").exists()
    assert (tmp_path / "data.kek").read_text().strip() == text
    assert mode(tmp_path / "data.kek") == 0o600
    assert kek.derive("x") == load_kek(text, data).derive("x")


def test_a_configured_kek_writes_no_file(tmp_path: Path) -> None:
    load_kek(generate_kek_text(), tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


# ---- the database files ----------------------------------------------------------------------------


def db_files(data: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in data.iterdir()}


@pytest.mark.parametrize("first", ["users add", "serve"])
def test_every_file_of_the_default_layout_is_private_whoever_creates_it(
    tmp_path: Path, umask_022: None, first: str,
) -> None:
    env = server_env(tmp_path)
    data = tmp_path / "data"
    if first == "users add":
        add_user(env)
        assert mode(data) == 0o700
        assert db_files(data) == {"jwtwarden.db": 0o600}
    with running_server(env) as server:
        if first == "serve":
            add_user(env)  # while it serves
        answer = httpx.post(server.url + "/v1/auth/login", timeout=30,
                            json={"username": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        assert mode(data) == 0o700
        assert db_files(data) == {"jwtwarden.db": 0o600, "jwtwarden.db-wal": 0o600,
                                  "jwtwarden.db-shm": 0o600}
    assert mode(tmp_path / "data.kek") == 0o600


def test_files_an_older_version_left_readable_are_made_private(tmp_path: Path, umask_022: None) -> None:
    env = server_env(tmp_path)
    data = tmp_path / "data"
    add_user(env)
    data.chmod(0o755)
    (data / "jwtwarden.db").chmod(0o644)
    for name in ("jwtwarden.db-wal", "jwtwarden.db-shm"):  # as a crashed old service leaves them
        (data / name).touch(mode=0o644)
    with running_server(env) as server:
        answer = httpx.post(server.url + "/v1/auth/login", timeout=30,
                            json={"username": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        assert mode(data) == 0o700
        assert db_files(data) == {"jwtwarden.db": 0o600, "jwtwarden.db-wal": 0o600,
                                  "jwtwarden.db-shm": 0o600}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jwtwarden", *args], env=env, input=PASSWORD + "\n",
                          capture_output=True, text=True, check=False)


@needs_another_user
def test_a_data_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    result = cli(env, "users", "add", "alice")
    assert result.returncode != 0
    assert "owned by" in result.stderr and "Traceback" not in result.stderr
    assert list(data.iterdir()) == []


@needs_another_user
def test_a_database_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    add_user(env)
    os.chown(tmp_path / "data" / "jwtwarden.db", NOBODY, NOBODY)
    result = cli(env, "users", "add", "bob")
    assert result.returncode != 0
    assert "owned by" in result.stderr and "Traceback" not in result.stderr


def test_the_kek_text_is_what_the_service_uses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kek = load_kek(None, data)
    text = (tmp_path / "data.kek").read_text().strip()
    assert kek.derive("x") == load_kek(text, data).derive("x")
    assert len(b64url_decode(text)) == 32
