"""Issue #12, deployment: the systemd unit of ``examples/deploy/jwtwarden.service`` is one systemd
accepts without a warning, scores well in ``systemd-analyze security``, names only variables
the configuration reads, and serves exactly as written (its environment, its credentials, its
ExecStart) on this machine; docs/deployment.md covers what it must and the README links it."""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from jwtwarden.service.config import ENV_PREFIX, FILE_SUFFIX, Settings, load_settings
from tests.conftest import require_service
from tests.servicekit import TEST_KEK, ServerProcess, free_port, server_env

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "examples" / "deploy" / "jwtwarden.service"
GUIDE = ROOT / "docs" / "deployment.md"
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes",
    "MemoryDenyWriteExecute": "yes", "UMask": "0077", "StateDirectoryMode": "0700",
}


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file, each key with every value it is given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNIT_TEXT = UNIT.read_text(encoding="utf-8")
SERVICE = directives(UNIT_TEXT)["Service"]


def unit_environment(state: Path, credentials: Path) -> dict[str, str]:
    """The unit's Environment= lines with the specifiers systemd would expand (%S, %d)."""
    env = {}
    for assignment in SERVICE["Environment"]:
        name, _, value = assignment.partition("=")
        env[name] = value.replace("%S", str(state)).replace("%d", str(credentials))
    return env


def credentials_dir(tmp_path: Path) -> Path:
    """What LoadCredential= makes: a directory only the service reads, a file per credential."""
    directory = tmp_path / "credentials"
    directory.mkdir(mode=0o700)
    for line in SERVICE["LoadCredential"]:
        name, _, source = line.partition(":")
        assert source.startswith("/etc/jwtwarden/"), source
        path = directory / name
        path.write_text({"kek": TEST_KEK, "metrics-token": "unit-metrics-token-0123456789"}[name] + "\n")
        path.chmod(0o400)
    directory.chmod(0o500)
    return directory


def test_the_unit_runs_as_a_dynamic_user_with_a_state_directory_and_hardening() -> None:
    assert SERVICE["DynamicUser"] == ["yes"] and SERVICE["StateDirectory"] == ["jwtwarden"]
    for key, expected in HARDENING.items():
        assert SERVICE.get(key) == [expected], key
    assert "AF_INET AF_INET6 AF_UNIX" in SERVICE["RestrictAddressFamilies"]
    # the KEK reaches the service as a credential file, never as an Environment= value
    assert "kek:/etc/jwtwarden/kek" in SERVICE["LoadCredential"]
    assert not any(line.startswith(f"{ENV_PREFIX}KEK=") for line in SERVICE["Environment"])


def test_every_variable_the_unit_sets_is_one_the_configuration_reads(tmp_path: Path) -> None:
    fields = {f.name.upper(): f for f in dataclasses.fields(Settings)}
    readable = set(fields) | {name + FILE_SUFFIX for name, f in fields.items() if f.metadata["secret"]}
    named = {line.partition("=")[0] for line in SERVICE["Environment"]}
    named |= set(re.findall(r"^#?Environment=(JWTWARDEN_\w+)=", UNIT_TEXT, re.MULTILINE))
    assert named and {n.removeprefix(ENV_PREFIX) for n in named} <= readable
    credentials = credentials_dir(tmp_path)
    settings = load_settings(unit_environment(tmp_path / "state", credentials))
    assert settings.kek == TEST_KEK and settings.metrics_token == "unit-metrics-token-0123456789"
    assert settings.data_dir == tmp_path / "state" / "jwtwarden"  # %S/jwtwarden = StateDirectory
    assert settings.issuer.startswith("https://") and settings.trust_proxy_headers
    assert settings.host == "127.0.0.1" and settings.log_format == "json"


def _executable_unit(tmp_path: Path) -> Path:
    """The unit with this checkout's jwtwarden and credential sources that exist here."""
    jwtwarden = Path(sys.executable).parent / "jwtwarden"
    text = UNIT_TEXT.replace("/opt/jwtwarden/bin/jwtwarden", str(jwtwarden))
    text = text.replace("/etc/jwtwarden/", f"{tmp_path}/etc/")
    (tmp_path / "etc").mkdir()
    for name in ("kek", "metrics-token"):
        (tmp_path / "etc" / name).write_text("x\n")
    unit = tmp_path / "jwtwarden.service"
    unit.write_text(text)
    return unit


def test_systemd_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    require_service(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian: systemd)")
    unit = _executable_unit(tmp_path)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    # the check can fail: a misspelt directive is a warning systemd prints
    bad = tmp_path / "bad" / "jwtwarden.service"
    bad.parent.mkdir()
    bad.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilegez="))
    assert "Unknown key" in subprocess.run(["systemd-analyze", "verify", str(bad)],
                                           capture_output=True, text=True).stderr


def test_systemd_rates_the_unit_exposure_low(tmp_path: Path) -> None:
    require_service(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian: systemd)")
    report = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(_executable_unit(tmp_path))],
                            capture_output=True, text=True).stdout
    exposure = re.search(r"Overall exposure level for jwtwarden\.service: ([0-9.]+)", report)
    assert exposure is not None, report[-2000:]
    assert float(exposure.group(1)) <= 2.0  # systemd's scale: 0 best, 10 worst; "OK" up to 2.9


def test_the_unit_serves_as_written(tmp_path: Path) -> None:
    """ExecStart with the unit's environment and credentials: two workers, the KEK read from
    the credential file (no development KEK appears), metrics behind the credential's token."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "jwtwarden").mkdir(mode=0o700)  # StateDirectory=, made by systemd
    env = server_env(tmp_path)
    env.update(unit_environment(state, credentials_dir(tmp_path)))
    port = free_port()
    env["JWTWARDEN_PORT"] = str(port)  # the unit's 8000 may be taken on a shared machine
    args = shlex.split(SERVICE["ExecStart"][0])
    assert args[1:] == ["serve", "--workers", "auto"]
    server = ServerProcess(env, port, tuple(args[2:]))
    server.start(timeout=90)
    try:
        ready = httpx.get(server.url + "/readyz")
        metadata = httpx.get(server.url + "/.well-known/oauth-authorization-server").json()
        scraped = httpx.get(server.url + "/metrics",
                            headers={"authorization": "Bearer unit-metrics-token-0123456789"})
    finally:
        server.stop()
    assert ready.status_code == 200
    assert metadata["issuer"] == "https://auth.example.com"
    assert scraped.status_code == 200 and "jwtwarden_workers" in scraped.text
    assert not (state / "jwtwarden.kek").exists()  # the credential's KEK, not a development one
    assert (state / "jwtwarden" / "jwtwarden.db").exists()


@pytest.mark.parametrize("topic", [
    "examples/deploy/jwtwarden.service", "DynamicUser", "StateDirectory", "LoadCredential",
    "JWTWARDEN_KEK_FILE", "JWTWARDEN_TRUST_PROXY_HEADERS", "X-Forwarded-For", "X-Forwarded-Proto",
    "FORWARDED_ALLOW_IPS", "jwtwarden backup", "pg_dump", "without the KEK", "KEK rotation",
    "lose the KEK", "migrations", "rolling upgrade", "--workers", "/metrics", "/readyz",
    "JWTWARDEN_METRICS_TOKEN", "JWTWARDEN_LOG_FORMAT", "--access-log", "Sizing",
])
def test_the_deployment_guide_covers(topic: str) -> None:
    assert topic in GUIDE.read_text(encoding="utf-8")


def test_the_readme_links_the_deployment_guide() -> None:
    assert "(docs/deployment.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
