"""DPoP end to end, every piece a real process on loopback: ``jwtwarden serve`` and both example
resource servers (FastAPI under uvicorn, Flask under its server) configured by environment
only, with the negative corpus of :mod:`tests.dpop_corpus` fired at each, stolen tokens
replayed everywhere, and the Python clients with ``dpop=True``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwtwarden import Key
from jwtwarden.client import AsyncUserSession, ClientCredentials, UserSession
from jwtwarden.dpop import create_proof
from tests.dpop_corpus import (
    PROOF_CASES,
    REQUEST_CASES,
    RESOURCE_PROOF_CASES,
    Ctx,
    ProofCase,
    RequestCase,
)
from tests.servicekit import (
    PASSWORD,
    ServerProcess,
    add_user,
    free_port,
    running_server,
    server_env,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KEY = Key.generate("ES256")
THIEF = Key.generate("ES256")


class Example:
    """An example resource server as a process, configured as its docstring says."""

    def __init__(self, name: str, service: ServerProcess, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in service.env.items() if not k.startswith("JWTWARDEN_")}
        env |= {"JWTWARDEN_JWKS_URL": f"{service.url}/.well-known/jwks.json",
                "JWTWARDEN_ISSUER": service.url, "JWTWARDEN_AUDIENCE": "api",
                "JWTWARDEN_PUBLIC_URL": self.url}
        if name == "fastapi":
            args = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), "fastapi_resource:app",
                    "--port", str(self.port), "--log-level", "warning"]
        else:
            args = [sys.executable, "-m", "flask", "--app", str(EXAMPLES / "flask_resource.py"), "run",
                    "--port", str(self.port)]
        self.log = tmp / f"{name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-2000:])
            try:
                httpx.get(self.url + "/hello", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)  # waiting for a process to listen, not for the clock
        raise TimeoutError(name)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Stack:
    def __init__(self, service: ServerProcess, examples: dict[str, Example]) -> None:
        self.service = service
        self.examples = examples

    def login(self, key: Key = KEY) -> dict[str, Any]:
        url = self.service.url + "/v1/auth/login"
        response = httpx.post(url, json={"username": "alice", "password": PASSWORD},
                              headers={"DPoP": create_proof(key, "POST", url)})
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "DPoP"
        return response.json()  # type: ignore[no-any-return]

    def base(self, target: str) -> str:
        return self.service.url if target == "service" else self.examples[target].url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dpop-e2e")
    env = server_env(tmp)
    add_user(env)
    with running_server(env) as service:
        subprocess.run([sys.executable, "-m", "jwtwarden", "clients", "add", "svc", "--grant",
                        "client_credentials", "--dpop-bound"], env=service.env, check=True,
                       capture_output=True)
        examples: dict[str, Example] = {}
        try:
            for name in ("fastapi", "flask"):
                examples[name] = Example(name, service, tmp)
            yield Stack(service, examples)
        finally:
            for example in examples.values():
                example.stop()


RESOURCES = ("fastapi", "flask")
PATHS = {"fastapi": "/hello", "flask": "/hello", "service": "/v1/auth/userinfo"}


def _ctx(stack: Stack, target: str, token: str, method: str = "GET") -> Ctx:
    return Ctx(key=KEY, other=THIEF, token=token, method=method,
               url=stack.base(target) + PATHS[target], now=time.time())


# ---- the corpus, at every server ---------------------------------------------------------------


@pytest.mark.parametrize("target", [*RESOURCES, "service"])
def test_corpus_proofs_are_refused_at_resource_servers_and_userinfo(
    stack: Stack, target: str,
) -> None:
    token = stack.login()["access_token"]
    refused: list[str] = []
    with httpx.Client() as http:
        ok = http.get(stack.base(target) + PATHS[target], headers={
            "Authorization": f"DPoP {token}",
            "DPoP": create_proof(KEY, "GET", stack.base(target) + PATHS[target], access_token=token)})
        assert ok.status_code == 200, ok.text
        case: ProofCase
        for case in PROOF_CASES + RESOURCE_PROOF_CASES:
            ctx = _ctx(stack, target, token)
            headers = [("Authorization", f"DPoP {token}")] + [("DPoP", v) for v in case.build(ctx)]
            response = http.get(stack.base(target) + PATHS[target], headers=headers)
            if response.status_code != 401 or response.json().get("error") != "invalid_dpop_proof" \
                    or not response.headers.get("www-authenticate", "").startswith("DPoP "):
                refused.append(f"{case.name} ({case.cite}): {response.status_code} {response.text}")
    assert not refused, refused


@pytest.mark.parametrize("target", RESOURCES)
def test_corpus_requests_are_refused_at_the_example_resource_servers(stack: Stack, target: str) -> None:
    token = stack.login()["access_token"]
    bearer = httpx.post(stack.service.url + "/v1/auth/login",
                        json={"username": "alice", "password": PASSWORD}).json()["access_token"]
    wrong: list[str] = []
    case: RequestCase
    for case in REQUEST_CASES:
        ctx = _ctx(stack, target, token)
        ctx.extra["bearer"] = bearer
        query = case.query(ctx)
        url = stack.base(target) + PATHS[target] + (f"?{query}" if query else "")
        response = httpx.get(url, headers=case.headers(ctx))
        if response.status_code != case.status or response.json()["error"] != case.error:
            wrong.append(f"{case.name} ({case.cite}): {response.status_code} {response.text}")
    assert not wrong, wrong


def test_corpus_proofs_are_refused_at_the_token_endpoints(stack: Stack) -> None:
    url = stack.service.url + "/v1/auth/login"
    wrong = []
    for case in PROOF_CASES:
        ctx = Ctx(key=KEY, other=THIEF, token="-", method="POST", url=url, now=time.time())
        headers = [("DPoP", v) for v in case.build(ctx)] or [("DPoP", "")]
        response = httpx.post(url, json={"username": "alice", "password": PASSWORD}, headers=headers)
        if response.status_code != 400 or response.json()["error"] != "invalid_dpop_proof":
            wrong.append(f"{case.name}: {response.status_code} {response.text}")
    assert not wrong, wrong


# ---- stolen tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [*RESOURCES, "service"])
def test_a_stolen_dpop_access_token_is_refused_everywhere(stack: Stack, target: str) -> None:
    token = stack.login()["access_token"]
    url = stack.base(target) + PATHS[target]
    own_proof = httpx.get(url, headers={"Authorization": f"DPoP {token}",
                                        "DPoP": create_proof(THIEF, "GET", url, access_token=token)})
    as_bearer = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    alone = httpx.get(url, headers={"Authorization": f"DPoP {token}"})
    assert own_proof.status_code == as_bearer.status_code == alone.status_code == 401
    assert own_proof.json()["error"] == "invalid_dpop_proof"
    assert as_bearer.json()["error"] == "invalid_token"
    assert alone.json()["error"] == "invalid_dpop_proof"
    legit = httpx.get(url, headers={"Authorization": f"DPoP {token}",
                                    "DPoP": create_proof(KEY, "GET", url, access_token=token)})
    assert legit.status_code == 200


def test_a_stolen_refresh_token_cannot_refresh_without_the_key(stack: Stack) -> None:
    pair = stack.login()
    service = stack.service.url
    refresh = service + "/v1/auth/refresh"
    token_url = service + "/v1/auth/token"
    body = {"refresh_token": pair["refresh_token"]}
    form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    attempts = [
        httpx.post(refresh, json=body),
        httpx.post(refresh, json=body, headers={"DPoP": create_proof(THIEF, "POST", refresh)}),
        httpx.post(token_url, data=form),
        httpx.post(token_url, data=form, headers={"DPoP": create_proof(THIEF, "POST", token_url)}),
    ]
    assert [a.status_code for a in attempts] == [400] * 4
    assert [a.json().get("reason") for a in attempts] == [
        "missing", "refresh_key_mismatch", "missing", "refresh_key_mismatch"]
    # nothing was rotated or revoked: the owner refreshes with the same token
    owner = httpx.post(refresh, json=body, headers={"DPoP": create_proof(KEY, "POST", refresh)})
    assert owner.status_code == 200 and owner.json()["token_type"] == "DPoP"


# ---- the Python clients -------------------------------------------------------------------------


def test_user_session_with_dpop_calls_both_resource_servers(stack: Stack) -> None:
    with UserSession(stack.service.url, dpop=True) as session:
        session.login("alice", PASSWORD)
        with httpx.Client(auth=session) as http:
            for target in RESOURCES:
                response = http.get(stack.base(target) + "/hello")
                assert response.status_code == 200, response.text
                assert response.request.headers["authorization"].startswith("DPoP ")
            info = http.get(stack.service.url + "/v1/auth/userinfo")
            assert info.status_code == 200 and "jkt" in info.json()["cnf"]
        session.refresh()
        with httpx.Client(auth=session) as http:
            assert http.get(stack.base("flask") + "/hello").status_code == 200
        session.logout()


def test_async_user_session_with_dpop(stack: Stack) -> None:
    async def run() -> None:
        async with AsyncUserSession(stack.service.url, dpop=True) as session:
            await session.login("alice", PASSWORD)
            async with httpx.AsyncClient(auth=session) as http:
                for _ in range(3):  # a fresh proof for every request
                    response = await http.get(stack.base("fastapi") + "/hello")
                    assert response.status_code == 200, response.text

    asyncio.run(run())


def test_client_credentials_with_dpop_for_a_dpop_bound_client(stack: Stack, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "jwtwarden", "clients", "add", "svc2", "--grant",
                          "client_credentials", "--dpop-bound"], env=stack.service.env, check=True,
                         capture_output=True, text=True).stdout
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    token_url = stack.service.url + "/v1/auth/token"
    plain = ClientCredentials(token_url, fields["client_id"], client_secret=fields["client_secret"])
    with pytest.raises(Exception, match="DPoP"):
        plain.token()  # the client is registered as dpop_bound_access_tokens
    bound = ClientCredentials(token_url, fields["client_id"], client_secret=fields["client_secret"],
                              dpop=True)
    with httpx.Client(auth=bound) as http:
        for target in RESOURCES:
            response = http.get(stack.base(target) + "/hello")
            assert response.status_code == 200, response.text
            assert response.request.headers["authorization"].startswith("DPoP ")


def test_clients_follow_the_services_nonces(tmp_path: Path) -> None:
    env = server_env(tmp_path, JWTWARDEN_DPOP="required", JWTWARDEN_DPOP_NONCE="1")
    add_user(env)
    with running_server(env) as service:
        with UserSession(service.url, dpop=True) as session:
            session.login("alice", PASSWORD)  # answered use_dpop_nonce first, then retried
            session.refresh()
            with httpx.Client(auth=session) as http:
                assert http.get(service.url + "/v1/auth/userinfo").status_code == 200
        with UserSession(service.url) as without, pytest.raises(Exception, match="DPoP"):
            without.login("alice", PASSWORD)
