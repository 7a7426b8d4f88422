"""Issue #11 items 13 and 14: the README's pip lines give a working ``jwtwarden``.

A fresh virtual environment, the project installed from a copy of its source by plain
``pip install`` (no constraints file: what a user types), then:

- library only (``pip install jwtwarden``): the token-service commands say in one line
  which ``pip install`` brings them, and exit non-zero;
- ``pip install 'jwtwarden[server]'``: ``jwtwarden serve`` starts and ``/healthz`` answers.

This needs the package index (PyPI); pip's cache keeps re-runs quick. Without the index the
test is skipped, or fails with ``JWTWARDEN_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import require_service
from tests.servicekit import free_port

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def _index_url() -> str:
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True, text=True, check=False).stdout.strip()
    return (os.environ.get("PIP_INDEX_URL") or configured or "https://pypi.org/simple").rstrip("/")


def _index_reachable() -> bool:
    try:
        return httpx.get(_index_url() + "/pip/", timeout=15, follow_redirects=True).status_code == 200
    except httpx.HTTPError:
        return False


def _clean_env(tmp: Path) -> dict[str, str]:
    """The user's environment: no JWTWARDEN_* settings, no constraints, nothing of ours on
    the path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JWTWARDEN_", "PYTHON", "VIRTUAL_ENV")) and k != "PIP_CONSTRAINT"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["HOME"] = os.environ.get("HOME", str(tmp))  # pip's cache lives there
    return env


def _copy_source(into: Path) -> None:
    """The project as a user downloads it (a copy, so no build files land in the worktree)."""
    for name in SOURCE_FILES:
        shutil.copy2(ROOT / name, into / name)
    shutil.copytree(ROOT / "src", into / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))


def _pip(venv: Path, env: dict[str, str], *args: str) -> None:
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]


def test_pip_install_then_serve_works_without_the_constraints_file(tmp_path: Path) -> None:
    require_service(_index_reachable(), f"the package index at {_index_url()}")
    source = tmp_path / "source"
    source.mkdir()
    _copy_source(source)
    venv = tmp_path / "venv"
    env = _clean_env(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], env=env, check=True, timeout=300)
    jwtwarden = str(venv / "bin" / "jwtwarden")
    work = tmp_path / "work"
    work.mkdir()

    # item 14: the library alone; the service's commands say what to install
    _pip(venv, env, str(source))
    for command in (["serve"], ["users", "list"], ["keys", "list"]):
        result = subprocess.run([jwtwarden, *command], env=env, cwd=work, capture_output=True,
                                text=True, timeout=120, check=False)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, (command, result.stderr)
        assert len(lines) == 1 and "pip install 'jwtwarden[server]'" in lines[0], (command, result.stderr)
    assert list(work.iterdir()) == []  # and nothing was created
    verify_help = subprocess.run([jwtwarden, "verify", "--help"], env=env, capture_output=True,
                                 text=True, timeout=120, check=False)
    assert verify_help.returncode == 0  # the library's own commands work

    # item 13: the server extra, as the README says, starts and serves
    _pip(venv, env, f"{source}[server]")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([jwtwarden, "serve", "--port", str(port)], env=env, cwd=work,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        health = _wait_for_health(proc, f"http://127.0.0.1:{port}/healthz", log)
    finally:
        proc.terminate()
        proc.wait(30)
    assert health == {"status": "ok", "version": health["version"]}


def _wait_for_health(proc: subprocess.Popen[bytes], url: str, log: Path) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jwtwarden serve exited:\n{log.read_text()[-4000:]}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                data: dict[str, str] = response.json()
                return data
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # waiting for a process to listen, not for the clock
    raise AssertionError(f"jwtwarden serve did not answer:\n{log.read_text()[-4000:]}")
