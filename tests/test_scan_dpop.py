"""``jwtwarden scan`` with DPoP (RFC 9449): a bound token and its key make every request carry
a fresh proof, and the ``dpop`` attacks are sent. A lenient target shows each attack is
detected; jwtwarden's ResourceServer (in process, with and without server nonces), the token
service and both example resource servers (as processes) refuse every one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from jwtwarden import Key
from jwtwarden.cli import main
from jwtwarden.dpop import create_proof
from jwtwarden.keys import AsymmetricKey
from jwtwarden.scan import Outcome, ScanError, ScanReport, scan_asgi
from jwtwarden.scan.attacks import CATALOGUE
from jwtwarden.scan.runner import ScanLimits
from tests.scan_targets import dpop as targets
from tests.servicekit import PASSWORD, add_user, running_server, server_env
from tests.test_dpop_e2e import Example

DPOP_IDS = frozenset(i for i, spec in CATALOGUE.items() if spec.category == "dpop")
FAST = ScanLimits(rate=1000, concurrency=4, deadline=60)


def scan(target: targets.DPoPTarget, **options: Any) -> ScanReport:
    return asyncio.run(scan_asgi(target.app, target.token, path=targets.PATH, dpop_key=target.key,
                                 limits=FAST, **options))


def accepted(report: ScanReport) -> set[str]:
    return {r.case.id for r in report.results if r.outcome is Outcome.ACCEPTED}


def test_the_catalogue_has_the_dpop_attacks_of_the_issue() -> None:
    assert {
        "dpop-bound-token-as-bearer", "dpop-proof-missing", "dpop-proof-replayed", "dpop-wrong-htm",
        "dpop-wrong-htu", "dpop-missing-ath", "dpop-wrong-ath", "dpop-other-key", "dpop-stale-iat",
        "dpop-alg-none", "dpop-hmac-proof", "dpop-private-key-in-jwk",
    } == DPOP_IDS
    for attack_id in DPOP_IDS:
        spec = CATALOGUE[attack_id]
        assert spec.vulnerable_if_accepted and spec.requires == "dpop-key" and "RFC 9449" in spec.fix


def test_a_lenient_dpop_target_is_reported_attack_by_attack() -> None:
    target = targets.lenient()
    report = scan(target)
    assert report.error is None, report.error
    assert report.calibration.valid is not None and report.calibration.valid.status == 200
    assert accepted(report) & DPOP_IDS == target.expected
    assert {r.case.id for r in report.vulnerabilities} == target.expected  # and no token attack
    sent = {r.case.id for r in report.results}
    assert sent >= DPOP_IDS


@pytest.mark.parametrize("nonces", [False, True], ids=["no-nonce", "nonces"])
def test_jwtwarden_resource_server_refuses_every_dpop_attack(nonces: bool) -> None:
    report = scan(targets.resource_server(nonces=nonces))
    assert report.error is None, report.error
    assert report.calibration.valid is not None and report.calibration.valid.status == 200
    assert accepted(report) == set()
    dpop = [r for r in report.results if r.case.id in DPOP_IDS]
    assert len(dpop) == len(DPOP_IDS)
    assert all(r.outcome is Outcome.REJECTED and r.status == 401 for r in dpop), [
        (r.case.id, r.answer) for r in dpop if r.status != 401]
    # refused for what each attack is, never for want of a nonce (the probe follows them)
    assert not [r.case.id for r in report.results if "use_dpop_nonce" in r.answer]
    errors = {r.case.id: r.answer.split()[-1] for r in dpop}
    assert errors["dpop-proof-replayed"] == errors["dpop-wrong-htu"] == "invalid_dpop_proof"


def test_an_eddsa_bound_token_is_scanned_too() -> None:
    report = scan(targets.resource_server(alg="EdDSA"))
    assert report.error is None and accepted(report) == set()


def test_a_bound_token_needs_its_key_and_the_right_one() -> None:
    target = targets.resource_server()
    with pytest.raises(ScanError, match="DPoP-bound"):
        asyncio.run(scan_asgi(target.app, target.token, path=targets.PATH))
    with pytest.raises(ScanError, match="not the one the token is bound to"):
        asyncio.run(scan_asgi(target.app, target.token, path=targets.PATH, dpop_key=Key.generate("ES256")))
    public = Key.from_jwk(target.key.to_jwk(), alg="ES256")
    with pytest.raises(ScanError, match="private"):
        asyncio.run(scan_asgi(target.app, target.token, path=targets.PATH, dpop_key=public))


# ---- over HTTP: the token service and the example resource servers as processes ---------------


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class Live:
    def __init__(self, service: Any, examples: dict[str, Example], key_file: Path) -> None:
        self.service = service
        self.examples = examples
        self.key_file = key_file


KEY = Key.generate("ES256")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("scan-dpop")
    env = server_env(tmp)
    add_user(env)
    key_file = tmp / "dpop.pem"
    assert isinstance(KEY, AsymmetricKey)
    key_file.write_bytes(KEY.to_pem(private=True))
    with running_server(env) as service:
        examples: dict[str, Example] = {}
        try:
            for name in ("fastapi", "flask"):
                examples[name] = Example(name, service, tmp)
            yield Live(service, examples, key_file)
        finally:
            for example in examples.values():
                example.stop()


def login(live: Live) -> str:
    url = live.service.url + "/v1/auth/login"
    answer = httpx.post(url, json={"username": "alice", "password": PASSWORD},
                        headers={"DPoP": create_proof(KEY, "POST", url)})
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP", answer.text
    return str(answer.json()["access_token"])


@pytest.mark.parametrize("target", ["service", "fastapi", "flask"])
def test_the_service_and_the_example_resource_servers_refuse_every_attack(live: Live, target: str) -> None:
    url = (live.service.url + "/v1/auth/userinfo" if target == "service"
           else live.examples[target].url + "/hello")
    result = run("scan", url, "--token", login(live), "--dpop-key", str(live.key_file), "--json",
                 "--rate", "1000", "--concurrency", "4", "--deadline", "60")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, (result.stderr, [r for r in report["results"] if r["outcome"] != "rejected"])
    outcomes = {r["id"]: r["outcome"] for r in report["results"]}
    assert {i: outcomes[i] for i in DPOP_IDS} == dict.fromkeys(DPOP_IDS, "rejected")
    assert set(outcomes.values()) == {"rejected"}
    assert KEY.to_jwk(private=True)["d"] not in result.stdout + result.stderr  # the key never shows


def test_the_cli_refuses_a_bound_token_without_its_key(live: Live) -> None:
    result = run("scan", live.examples["fastapi"].url + "/hello", "--token", login(live))
    assert result.exit_code == 2 and "--dpop-key" in result.stderr


def test_the_cli_dry_run_lists_the_dpop_attacks(live: Live) -> None:
    result = run("scan", "http://127.0.0.1:9/x", "--token", login(live), "--dpop-key", str(live.key_file),
                 "--dry-run", "--json")
    listed = {c["id"] for c in json.loads(result.stdout)}
    assert listed >= DPOP_IDS
