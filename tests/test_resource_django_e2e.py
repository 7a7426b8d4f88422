"""The Django example (examples/django_resource) as a real process, under ASGI (uvicorn) and
WSGI (Django's runserver, threaded), against a real ``jwtwarden serve``.

The service signs with a key the test imported first (``jwtwarden keys import``), so the test
can also mint expired and wrong-audience tokens that are validly signed. Revocation is a real
logout reaching the example through the service's feed; ``jwtwarden scan``, given that private
key, must find no attack accepted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from jwtwarden import Issuer, Key, KeySet
from jwtwarden.cli import main
from jwtwarden.keys import AsymmetricKey
from tests.servicekit import PASSWORD, TEST_KEK, ServerProcess, add_user, free_port, server_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "django_resource"
KEY = Key.generate("ES256")
FAST = ["--rate", "1000", "--concurrency", "8", "--timeout", "5", "--deadline", "60"]
COMMANDS = {  # as examples/django_resource/manage.py documents them, on a free port
    "asgi": [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLE),
             "hello_site.asgi:application", "--log-level", "warning", "--port", "{port}"],
    "wsgi": [sys.executable, str(EXAMPLE / "manage.py"), "runserver", "127.0.0.1:{port}",
             "--noreload"],
}


@dataclass
class Service:
    server: ServerProcess
    subjects: dict[str, str]  # username -> subject

    def login(self, username: str) -> dict[str, str]:
        r = httpx.post(self.server.url + "/v1/auth/login",
                       json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        pair: dict[str, str] = r.json()
        return pair

    def mint(self, subject: str, *, audience: str = "api", issued: float | None = None) -> str:
        clock = (lambda: issued) if issued is not None else time.time
        return Issuer(KeySet([KEY]), issuer=self.server.url, audience=audience,
                      clock=clock).issue(subject)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("django-e2e")
    env = server_env(tmp, JWTWARDEN_KEK=TEST_KEK)
    server = ServerProcess(env, free_port())
    env["JWTWARDEN_ISSUER"] = server.url
    key_file = tmp / "signing.jwk"
    key_file.write_text(json.dumps(KEY.to_jwk(private=True)))
    subprocess.run([sys.executable, "-m", "jwtwarden", "keys", "import", str(key_file)],
                   env=env, check=True, capture_output=True)
    subjects = {"alice": add_user(env, "alice", scope="items:read"), "bob": add_user(env, "bob")}
    server.start()
    try:
        yield Service(server, subjects)
    finally:
        server.stop()


@pytest.fixture(scope="module", params=list(COMMANDS))
def resource(request: pytest.FixtureRequest, service: Service,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {k: v for k, v in service.server.env.items()
           if not k.startswith("JWTWARDEN_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update({"JWTWARDEN_JWKS_URL": service.server.url + "/.well-known/jwks.json",
                "JWTWARDEN_ISSUER": service.server.url, "JWTWARDEN_AUDIENCE": "api"})
    port = free_port()
    log = tmp_path_factory.mktemp(request.param) / "example.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([c.replace("{port}", str(port)) for c in COMMANDS[request.param]],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/hello", timeout=2).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the example did not start: {log.read_text()}"
            time.sleep(0.05)  # waiting for a process to listen, not for the clock
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def hello(url: str, token: str, path: str = "/hello") -> httpx.Response:
    return httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def description(response: httpx.Response) -> str:
    assert response.headers["www-authenticate"].startswith('Bearer realm="api", error=')
    text: str = response.json()["error_description"]
    assert f'error_description="{text}"' in response.headers["www-authenticate"]
    return text


def test_a_valid_token_is_greeted_by_its_subject(service: Service, resource: str) -> None:
    response = hello(resource, service.login("alice")["access_token"])
    assert response.status_code == 200 and response.json() == {"sub": service.subjects["alice"]}


def test_without_a_token_the_answer_is_401_with_the_bearer_and_dpop_challenges(resource: str) -> None:
    response = httpx.get(resource + "/hello")
    # both schemes are offered without credentials (RFC 9449 section 7.1)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"'


def test_an_expired_token_is_refused(service: Service, resource: str) -> None:
    token = service.mint(service.subjects["alice"], issued=time.time() - 3600)
    response = hello(resource, token)
    assert response.status_code == 401 and description(response) == "The access token expired"


def test_a_token_for_another_audience_is_refused(service: Service, resource: str) -> None:
    response = hello(resource, service.mint(service.subjects["alice"], audience="other-api"))
    assert response.status_code == 401
    assert description(response) == "The access token is not meant for this audience"


def test_a_logged_out_token_is_refused_within_a_second(service: Service, resource: str) -> None:
    token = service.login("alice")["access_token"]
    assert hello(resource, token).status_code == 200
    out = httpx.post(service.server.url + "/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204
    deadline = time.monotonic() + 1.0
    while (response := hello(resource, token)).status_code == 200:
        assert time.monotonic() < deadline, "still accepted a second after the logout"
    assert response.status_code == 401 and description(response) == "The access token has been revoked"


def test_a_token_without_the_scope_is_403_insufficient_scope(service: Service, resource: str) -> None:
    denied = hello(resource, service.login("bob")["access_token"], "/items")
    allowed = hello(resource, service.login("alice")["access_token"], "/items")
    assert denied.status_code == 403
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert 'scope="items:read"' in denied.headers["www-authenticate"]
    assert denied.headers["cache-control"] == "no-store"
    assert allowed.status_code == 200 and allowed.json()["sub"] == service.subjects["alice"]


def test_jwtwarden_scan_finds_nothing_accepted(service: Service, resource: str, tmp_path: Path) -> None:
    assert isinstance(KEY, AsymmetricKey)
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    private.write_bytes(KEY.to_pem(private=True))
    public.write_bytes(KEY.to_pem())
    token = service.login("alice")["access_token"]
    result = CliRunner().invoke(main, ["scan", resource + "/hello", "--token", token, "--json",
                                       "--private-key", str(private), "--public-key", str(public),
                                       *FAST], catch_exceptions=False)
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in report["results"] if r["outcome"] != "rejected"] == []
    assert len(report["results"]) > 40


def test_the_example_without_its_environment_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JWTWARDEN_") and k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", "import hello_site.asgi"], cwd=EXAMPLE, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "JWTWARDEN_JWKS_URL" in result.stderr
