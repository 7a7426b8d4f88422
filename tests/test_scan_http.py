"""``jwtwarden scan`` over real HTTP on loopback, against vulnerable and safe apps.

Every target runs under uvicorn on an ephemeral port of 127.0.0.1 (tests/helpers_http.py);
the CLI is driven in-process. Each target is scanned once per module and several tests read
that one scan. Slow targets sleep inside the app; the tests never sleep.
"""

from __future__ import annotations

import functools
import json
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jwtwarden.cli import main
from jwtwarden.scan.attacks import CATALOGUE
from tests import scan_targets
from tests.helpers_http import serve_asgi
from tests.scan_targets import ScanTarget

# One line per target; names starting with "jwtwarden-" must show no accepted attack at all.
# The token service (GET /v1/auth/userinfo) joins them once it is stable.
TARGETS: dict[str, Callable[[], ScanTarget]] = {
    "alg-from-header": scan_targets.alg_from_header,
    "no-verify": scan_targets.no_verify,
    "weak-secret": scan_targets.weak_secret,
    "embedded-jwk": scan_targets.embedded_jwk,
    "accepts-expired": scan_targets.accepts_expired,
    "jwtwarden-verifier-es256": scan_targets.jwtwarden_verifier,
    "jwtwarden-verifier-hs256": functools.partial(scan_targets.jwtwarden_verifier, "HS256"),
    "jwtwarden-verifier-rs256": functools.partial(scan_targets.jwtwarden_verifier, "RS256"),
    "jwtwarden-middleware-es256": scan_targets.jwtwarden_middleware,
    "jwtwarden-service": scan_targets.jwtwarden_service,
}
VULNERABLE = [name for name in TARGETS if not name.startswith("jwtwarden-")]
SAFE = [name for name in TARGETS if name.startswith("jwtwarden-")]

FAST = ["--rate", "1000", "--concurrency", "8", "--timeout", "5", "--deadline", "60"]


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def error_code(result: Result) -> str:
    """The code of the ``error: CODE: message`` line the CLI ends with on stderr."""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    return last.split(":")[1].strip()


def key_args(target: ScanTarget, directory: Path) -> list[str]:
    """--public-key / --private-key / --secret-file for the keys the target gives the scan."""
    args: list[str] = []
    for option, data in (("--public-key", target.public_key),
                         ("--private-key", target.private_key),
                         ("--secret-file", target.secret)):
        if data is not None:
            path = directory / option.strip("-")
            path.write_bytes(data)
            args += [option, str(path)]
    return args


@dataclass(frozen=True)
class Scan:
    target: ScanTarget
    result: Result
    report: dict[str, Any]
    junit: ET.Element
    seconds: float

    def ids(self, *, vulnerable: bool = True) -> set[str]:
        return {r["id"] for r in self.report["results"] if r["vulnerable"] is vulnerable
                and r["outcome"] == "accepted"}


def scan_target(target: ScanTarget, directory: Path, *extra: str) -> Scan:
    junit = directory / "scan.xml"
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        started = time.monotonic()
        result = run("scan", base + target.path, "--token", target.token, "--json",
                     "--junit", str(junit), *FAST, *key_args(target, directory), *extra)
        seconds = time.monotonic() - started
    root = ET.parse(junit).getroot()  # noqa: S314 - the XML the scan under test just wrote
    return Scan(target, result, json.loads(result.stdout), root, seconds)


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Scan]:
    """Each target scanned once per module, on first use."""
    done: dict[str, Scan] = {}

    def get(name: str) -> Scan:
        if name not in done:
            done[name] = scan_target(TARGETS[name](), tmp_path_factory.mktemp(name))
        return done[name]

    return get


# ---- each flaw found, no false positive ------------------------------------------------------


@pytest.mark.parametrize("name", VULNERABLE)
def test_scan_reports_the_flaw_of_each_vulnerable_app(scans: Callable[[str], Scan], name: str) -> None:
    scan = scans(name)
    found = scan.ids()
    if scan.target.at_least:
        assert scan.target.expected <= found
    else:
        assert found == scan.target.expected


@pytest.mark.parametrize("name", VULNERABLE)
def test_scan_of_a_vulnerable_app_exits_1(scans: Callable[[str], Scan], name: str) -> None:
    assert scans(name).result.exit_code == 1


@pytest.mark.parametrize("name", SAFE)
def test_scan_of_jwtwarden_finds_nothing_accepted(scans: Callable[[str], Scan], name: str) -> None:
    scan = scans(name)
    assert scan.result.exit_code == 0
    assert [r["id"] for r in scan.report["results"] if r["outcome"] != "rejected"] == []


@pytest.mark.parametrize("name", SAFE)
def test_scan_of_jwtwarden_runs_every_signed_attack(scans: Callable[[str], Scan], name: str) -> None:
    ids = {r["id"] for r in scans(name).report["results"]}
    signed = {s.id for s in CATALOGUE.values() if s.requires == "signing-key"}
    assert signed <= ids


@pytest.mark.parametrize("name", list(TARGETS))
def test_scan_output_never_contains_the_valid_token(scans: Callable[[str], Scan], name: str) -> None:
    scan = scans(name)
    assert scan.target.token not in scan.result.output
    assert scan.report["token"]["text"].endswith(f"({len(scan.target.token)} chars)")


def test_a_finding_says_what_the_api_answered_why_it_matters_and_how_to_fix_it(
    scans: Callable[[str], Scan],
) -> None:
    [finding] = [r for r in scans("embedded-jwk").report["results"] if r["vulnerable"]]
    assert finding["status"] == 200
    assert finding["cve"] == "CVE-2018-0114"
    assert finding["why"] and finding["fix"]
    assert "token" not in finding


def test_cracked_weak_secret_is_never_printed(scans: Callable[[str], Scan]) -> None:
    scan = scans("weak-secret")
    assert scan_targets.WEAK_SECRET.decode() not in scan.result.output
    [forged] = [r for r in scan.report["results"] if r["id"] == "weak-secret-forged-token"]
    assert "19 bytes" in forged["note"]


def test_junit_has_one_testcase_per_attack_and_a_failure_per_vulnerability(
    scans: Callable[[str], Scan],
) -> None:
    scan = scans("alg-from-header")
    cases = scan.junit.findall("./testsuite/testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert len(cases) == len(scan.report["results"])
    assert failed == ["hmac-public-key-pem"]
    assert scan.junit.get("failures") == "1"


def test_junit_of_a_safe_app_has_no_failure(scans: Callable[[str], Scan]) -> None:
    junit = scans("jwtwarden-verifier-es256").junit
    assert junit.get("failures") == "0" and junit.get("errors") == "0"
    assert int(junit.get("tests", "0")) > 40


def test_each_attack_is_sent_once_after_three_calibration_requests(scans: Callable[[str], Scan]) -> None:
    summary = scans("jwtwarden-verifier-es256").report["summary"]
    assert summary["requests"] == summary["sent"] + 3
    assert summary["sent"] == summary["attacks"]


# ---- the table for people ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_scan(tmp_path_factory: pytest.TempPathFactory) -> Result:
    target = scan_targets.weak_secret()
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        return run("scan", base + target.path, *FAST, input=target.token + "\n")


def test_table_reads_the_token_from_stdin_and_names_each_vulnerability(table_scan: Result) -> None:
    assert table_scan.exit_code == 1
    assert "VULNERABLE weak-secret-forged-token" in table_scan.stdout


def test_table_gives_why_and_fix_under_each_vulnerability(table_scan: Result) -> None:
    section = table_scan.stdout.split("VULNERABLE weak-secret-forged-token", 1)[1]
    assert "Why:" in section and "Fix:" in section


def test_table_never_prints_the_secret_or_the_token(table_scan: Result) -> None:
    assert scan_targets.WEAK_SECRET.decode() not in table_scan.output
    assert scan_targets.weak_secret().token.split(".")[2] not in table_scan.output


# ---- how the token is presented, and where keys come from ------------------------------------


def test_scan_presents_the_token_in_a_cookie(tmp_path: Path) -> None:
    target = scan_targets.no_verify()
    app = scan_targets.protected_app(target.verify or (lambda t: {}), cookie="session")
    with serve_asgi(app, lifespan="off") as base:
        result = run("scan", base + target.path, "--token", target.token, "--cookie", "session",
                     "--only", "alg-none*", "--json", *FAST)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"]["vulnerabilities"] == 14


def test_scan_fetches_the_public_key_from_the_jwks_url() -> None:
    target = scan_targets.alg_from_header()
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        result = run("scan", base + target.path, "--token", target.token, "--json",
                     "--jwks-url", base + "/jwks.json", "--only", "key-confusion", *FAST)
    found = [r["id"] for r in json.loads(result.stdout)["results"] if r["vulnerable"]]
    assert found == ["hmac-public-key-pem"]


def test_an_unavailable_jwks_url_stops_the_scan_with_status_4() -> None:
    target = scan_targets.alg_from_header()
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        result = run("scan", base + target.path, "--token", target.token,
                     "--jwks-url", base + "/missing.json", *FAST)
    assert result.exit_code == 4
    assert error_code(result) == "jwks_unavailable"


def test_show_tokens_includes_the_forged_tokens() -> None:
    target = scan_targets.embedded_jwk()
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        result = run("scan", base + target.path, "--token", target.token, "--json",
                     "--show-tokens", "--only", "embedded-jwk*", *FAST)
    report = json.loads(result.stdout)
    assert report["token"]["text"] == target.token
    assert report["results"][0]["token"].count(".") == 2


# ---- calibration ---------------------------------------------------------------------------------


def test_a_rejected_valid_token_stops_before_any_attack_with_status_3() -> None:
    target = scan_targets.jwtwarden_verifier()
    stranger = scan_targets.embedded_jwk().token  # signed by another key
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        result = run("scan", base + target.path, "--token", stranger, "--json", *FAST)
    report = json.loads(result.stdout)
    assert result.exit_code == 3
    assert report["error"]["code"] == "valid_token_rejected"
    assert (report["summary"]["requests"], report["summary"]["sent"]) == (1, 0)


def test_an_endpoint_accepting_garbage_stops_with_status_3() -> None:
    app = scan_targets.protected_app(lambda token: {"sub": "anyone"})
    with serve_asgi(app, lifespan="off") as base:
        result = run("scan", base + "/me", "--token", scan_targets.no_verify().token, *FAST)
    assert result.exit_code == 3
    assert error_code(result) == "garbage_accepted"


# ---- slow, dead and failing targets end with a clear error -------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_target_ends_the_scan_with_status_4() -> None:
    started = time.monotonic()
    result = run("scan", f"http://127.0.0.1:{closed_port()}/me", "--token",
                 scan_targets.no_verify().token, "--timeout", "2", "--rate", "1000")
    assert result.exit_code == 4
    assert error_code(result) == "target_unreachable"
    assert time.monotonic() - started < 5


@pytest.fixture
def slow_target() -> Iterator[str]:
    """A target that never answers (its handler sleeps a minute)."""
    with serve_asgi(scan_targets.slow_app(), lifespan="off", timeout_graceful=0.1) as base:
        yield base + "/me"


def test_a_target_that_never_answers_ends_the_scan_after_one_timeout(slow_target: str) -> None:
    started = time.monotonic()
    result = run("scan", slow_target, "--token", scan_targets.no_verify().token,
                 "--timeout", "0.3", "--rate", "1000")
    assert result.exit_code == 4
    assert error_code(result) == "target_timeout"
    assert time.monotonic() - started < 5


@pytest.fixture
def hangs_after_calibration() -> Iterator[str]:
    """Answers the three calibration requests, then hangs every request."""
    app = scan_targets.slow_app(answer_first=3)
    with serve_asgi(app, lifespan="off", timeout_graceful=0.1) as base:
        yield base + "/me"


def test_a_target_that_stops_answering_ends_the_scan_after_three_failures(
    hangs_after_calibration: str,
) -> None:
    started = time.monotonic()
    result = run("scan", hangs_after_calibration, "--token", scan_targets.no_verify().token,
                 "--timeout", "0.3", "--rate", "1000", "--concurrency", "1", "--json")
    summary = json.loads(result.stdout)["summary"]
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"]["code"] == "target_failing"
    assert (summary["errors"], summary["skipped"]) == (3, summary["attacks"] - 3)
    assert time.monotonic() - started < 5


def test_the_deadline_bounds_a_scan_of_a_hanging_target(hangs_after_calibration: str) -> None:
    started = time.monotonic()
    result = run("scan", hangs_after_calibration, "--token", scan_targets.no_verify().token,
                 "--timeout", "30", "--deadline", "1", "--rate", "1000")
    assert result.exit_code == 4
    assert error_code(result) == "deadline_exceeded"
    assert time.monotonic() - started < 5


def test_the_rate_limit_spaces_requests() -> None:
    target = scan_targets.jwtwarden_verifier()
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        result = run("scan", base + target.path, "--token", target.token, "--json",
                     "--rate", "100", "--only", "alg-none*")
    summary = json.loads(result.stdout)["summary"]
    assert summary["requests"] == 17
    assert summary["seconds"] >= 16 / 100


# ---- usage -----------------------------------------------------------------------------------------


def test_dry_run_lists_the_attacks_and_sends_nothing() -> None:
    result = run("scan", f"http://127.0.0.1:{closed_port()}/me", "--dry-run", "--json",
                 "--token", scan_targets.no_verify().token)
    ids = [case["id"] for case in json.loads(result.stdout)]
    assert result.exit_code == 0
    assert "alg-none-lowercase-unsigned" in ids and "ecdsa-zero-signature" in ids


def test_max_attacks_skips_the_rest() -> None:
    target = scan_targets.jwtwarden_verifier()
    with serve_asgi(target.app, lifespan=target.lifespan) as base:
        result = run("scan", base + target.path, "--token", target.token, "--json",
                     "--max-attacks", "5", *FAST)
    summary = json.loads(result.stdout)["summary"]
    assert (summary["sent"], summary["skipped"]) == (5, summary["attacks"] - 5)
    assert result.exit_code == 0


def test_a_malformed_token_is_a_usage_error() -> None:
    result = run("scan", "http://127.0.0.1:9/me", "--token", "not.a-jwt")
    assert result.exit_code == 2
    assert error_code(result) == "bad_token"


def test_a_signing_key_that_did_not_sign_the_token_is_a_usage_error(tmp_path: Path) -> None:
    target = scan_targets.accepts_expired()
    other = scan_targets.alg_from_header()
    assert target.private_key is not None
    key = tmp_path / "key.pem"
    key.write_bytes(target.private_key)
    result = run("scan", "http://127.0.0.1:9/me", "--token", other.token, "--private-key", str(key))
    assert result.exit_code == 2
    assert error_code(result) == "bad_key"


def test_a_public_key_and_a_jwks_url_together_are_a_usage_error(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(b"x")
    result = run("scan", "http://127.0.0.1:9/me", "--token", scan_targets.no_verify().token,
                 "--public-key", str(key), "--jwks-url", "http://127.0.0.1:9/jwks.json")
    assert result.exit_code == 2


def test_a_url_that_is_not_http_is_a_usage_error() -> None:
    result = run("scan", "ftp://example.com/me", "--token", scan_targets.no_verify().token)
    assert result.exit_code == 2
    assert error_code(result) == "bad_input"


def test_only_matching_no_attack_is_a_usage_error() -> None:
    result = run("scan", "http://127.0.0.1:9/me", "--token", scan_targets.no_verify().token,
                 "--only", "no-such-attack")
    assert result.exit_code == 2
    assert error_code(result) == "bad_input"


def test_a_header_name_that_is_not_an_http_token_is_a_usage_error() -> None:
    result = run("scan", "http://127.0.0.1:9/me", "--token", scan_targets.no_verify().token,
                 "--header", "X Token")
    assert result.exit_code == 2
    assert error_code(result) == "bad_input"
