"""Issue #11 items 13 and 18, the repository's side: one bootstrap at a time, examples whose
documented command runs, a README that documents every option and every extra, a LICENSE
and a SECURITY.md."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jwtwarden.service.config import ENV_PREFIX, Settings
from tests.conftest import AUD, ISS
from tests.helpers_http import serve_asgi
from tests.servicekit import free_port
from tests.test_resource_examples import ISSUER, AuthEndpoints

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# ---- scripts/bootstrap takes a lock ------------------------------------------------------

FAKE_PYTHON = """#!/usr/bin/env bash
# stands in for python3 and the venv's python in scripts/bootstrap
case "$1 $2" in
  "-c "*) exit 0 ;;
  "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0 ;;
  "-m pip") echo "pip $WHO" >> "$LOG"
            while [ ! -e "$RELEASE" ]; do sleep 0.02; done  # held until the test lets go
            exit 0 ;;
esac
exit 1
"""


def _until(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # waiting for another process to get somewhere, not for the clock


def test_two_bootstraps_at_once_install_once(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "constraints.txt").write_text("")
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log, release = tmp_path / "pip.log", tmp_path / "release"
    env = {**os.environ, "PYTHON": str(fake), "LOG": str(log), "RELEASE": str(release)}

    def start(who: str) -> tuple[subprocess.Popen[bytes], Path]:
        err = tmp_path / f"{who}.err"
        with err.open("wb") as out:
            proc = subprocess.Popen(["bash", str(tmp_path / "scripts" / "bootstrap")],
                                    env={**env, "WHO": who}, stdout=subprocess.DEVNULL, stderr=out)
        return proc, err

    def pip_runs() -> list[str]:
        return log.read_text().split() if log.exists() else []

    first, _ = start("first")
    _until(lambda: "first" in pip_runs(), "the first bootstrap never reached pip")
    second, second_err = start("second")
    _until(lambda: "waiting for another" in second_err.read_text() or "second" in pip_runs(),
           "the second bootstrap neither waited nor ran pip")
    release.touch()
    assert first.wait(60) == 0 and second.wait(60) == 0
    assert "second" not in pip_runs()  # it waited, then found the stamp written
    assert pip_runs() == ["pip", "first", "pip", "first"]  # upgrade pip, install: once
    assert "waiting for another scripts/bootstrap to finish" in second_err.read_text()


# ---- the examples run as their docstrings say ---------------------------------------------


def _documented_commands(example: Path) -> list[list[str]]:
    """The shell commands of an example's docstring (indented block, ``\\`` continuations)."""
    doc = ast.get_docstring(ast.parse(example.read_text(encoding="utf-8")), clean=False) or ""
    block = "\n".join(line[4:] for line in doc.splitlines() if line.startswith("    "))
    return [shlex.split(command) for command in block.replace("\\\n", " ").splitlines() if command]


@pytest.fixture(scope="module")
def auth_url() -> Iterator[str]:
    with serve_asgi(AuthEndpoints(), lifespan="off", timeout_graceful=0.2) as url:
        yield url


@pytest.mark.parametrize("example", ["flask_resource", "fastapi_resource"])
def test_an_example_runs_exactly_as_its_docstring_says(auth_url: str, example: str,
                                                       tmp_path: Path) -> None:
    install, run = _documented_commands(ROOT / "examples" / f"{example}.py")
    assert install[:2] == ["pip", "install"]
    for package in install[2:]:  # everything it runs is what that line installs
        assert shutil.which(package) or __import__(package.replace("-", "_")), package
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWTWARDEN_")}
    while "=" in run[0]:  # the variables, pointed at this test's token service
        name, _ = run.pop(0).split("=", 1)
        env[name] = {"JWTWARDEN_JWKS_URL": f"{auth_url}/.well-known/jwks.json",
                     "JWTWARDEN_ISSUER": ISS, "JWTWARDEN_AUDIENCE": AUD}[name]
    program = shutil.which(run[0], path=str(Path(sys.executable).parent))
    assert program is not None, f"{run[0]} is not installed next to this Python"
    port = free_port()
    log = tmp_path / "example.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([program, *run[1:], "--port", str(port)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        url = f"http://127.0.0.1:{port}/hello"

        def answering() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(url, timeout=2).status_code == 401
            except httpx.TransportError:
                return False

        _until(answering, f"{example} did not start")
        hello = httpx.get(url, headers={"authorization": f"Bearer {ISSUER.issue('carol')}"})
    finally:
        proc.terminate()
        proc.wait(30)
    assert hello.status_code == 200 and hello.json() == {"sub": "carol"}


# ---- README, LICENSE, SECURITY.md ---------------------------------------------------------


def _config_table() -> str:
    section = README.split("**Configuration**", 1)[1]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `JWTWARDEN_"))


def test_the_readme_config_table_lists_every_option() -> None:
    table = _config_table()
    missing = [f.name for f in dataclasses.fields(Settings)
               if f"`{ENV_PREFIX}{f.name.upper()}`" not in table and f"`_{f.name.upper()}`" not in table]
    assert missing == []


def test_the_readme_install_section_names_every_extra_and_the_docs_switch() -> None:
    install = README.split("## Install", 1)[1].split("\n## ", 1)[0]
    extras = set(PYPROJECT["project"]["optional-dependencies"]) - {"test"}
    rows = set(re.findall(r"^\| `(\w+)` \|", install, re.MULTILINE))
    assert rows == extras - {"all"}
    for extra in ("server", "all"):
        assert f"pip install 'jwtwarden[{extra}]'" in install
    assert "JWTWARDEN_DOCS=1" in install and "JWTWARDEN_DOCS" in _config_table()
    assert "sqlalchemy[asyncio]>=2.0" in PYPROJECT["project"]["optional-dependencies"]["server"]


def test_the_license_file_is_the_license_pyproject_names() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_security_md_says_how_to_report_and_what_is_in_scope() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    assert {"## Reporting a vulnerability", "## In scope", "## Out of scope"} <= {
        line.strip() for line in text.splitlines()}
    assert "not in a public issue" in text
