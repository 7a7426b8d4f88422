"""``jwtwarden inspect``, ``crack`` and ``debugger`` driven in-process, and the key sources."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from jwtwarden import Issuer
from jwtwarden.audit import audit_token
from jwtwarden.audit.keysource import (
    JWKSUnavailable,
    JWKSURLRefused,
    check_jwks_url,
    fetch_jwks,
    load_key_file,
)
from jwtwarden.audit.render import safe
from jwtwarden.cli import main
from jwtwarden.errors import InvalidKey, WeakKey
from jwtwarden.keys import AsymmetricKey
from jwtwarden.testing import FakeClock
from tests.conftest import keyset_for
from tests.debugger.tokens import AUD, ISS, NOW, good_claims, hs_token, tamper, token

ES = {"alg": "ES256", "typ": "at+jwt", "kid": "k1"}
NOW_ARG = ["--now", str(NOW)]


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def inspect_json(*args: str, input: str | None = None) -> tuple[int, dict[str, Any]]:
    result = run("inspect", "--json", *NOW_ARG, *args, input=input)
    return result.exit_code, json.loads(result.stdout)


def issued(alg: str = "ES256") -> str:
    return Issuer(keyset_for(alg), issuer=ISS, audience=AUD, clock=FakeClock(NOW)).issue("u1")


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keyset_for("ES256").public().to_jwks()))
    return path


@pytest.fixture
def pem_file(tmp_path: Path) -> Path:
    key = next(iter(keyset_for("ES256")))
    assert isinstance(key, AsymmetricKey)
    path = tmp_path / "key.pem"
    path.write_bytes(key.to_pem())
    return path


# ----------------------------------------------------------------------------- a loopback JWKS server


class _JWKSHandler(BaseHTTPRequestHandler):
    server: _JWKSServer

    def do_GET(self) -> None:
        status, headers, body = self.server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _JWKSServer(ThreadingHTTPServer):
    answer: tuple[int, dict[str, str], bytes] = (200, {}, b"")


@pytest.fixture
def jwks_server() -> Iterator[_JWKSServer]:
    server = _JWKSServer(("127.0.0.1", 0), _JWKSHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def url_of(server: _JWKSServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"


# ----------------------------------------------------------------------------- inspect: output


def test_inspect_reads_the_token_from_stdin() -> None:
    status, report = inspect_json(input=issued() + "\n")
    assert (status, report["header"]["alg"], report["findings"]) == (0, "ES256", [])


def test_inspect_lists_the_finding_codes_in_json() -> None:
    _, report = inspect_json(token({"alg": "none"}, good_claims(), b""))
    assert [f["code"] for f in report["findings"]] == ["alg_none", "typ_missing"]


def test_inspect_prints_an_unverified_banner_without_a_key() -> None:
    result = run("inspect", *NOW_ARG, issued())
    assert result.stdout.startswith("UNVERIFIED")


def test_inspect_plain_output_has_no_terminal_escapes() -> None:
    result = run("inspect", *NOW_ARG, token({**ES, "kid": "k\x1b[2J"}, good_claims()))
    assert "\x1b" not in result.stdout and "\\u001b" in result.stdout


@pytest.mark.parametrize(
    ("text", "shown"),
    [("a\x1b[2Jb", "a\\u001b[2Jb"), ("x\u202ey", "x\\u202ey"), ("\x9b31m", "\\u009b31m"), ("\u200b", "\\u200b")],
)
def test_safe_writes_control_and_format_characters_as_escapes(text: str, shown: str) -> None:
    assert safe(text) == shown


def test_safe_keeps_ordinary_unicode_and_line_breaks() -> None:
    assert safe("Zoë 漢字\nnext") == "Zoë 漢字\nnext"


def test_inspect_color_always_uses_rich_layout_and_colour() -> None:
    result = run("inspect", *NOW_ARG, "--color", "always", issued())
    assert "\x1b[" in result.stdout and "╭" in result.stdout


def test_inspect_rich_output_does_not_interpret_markup_from_the_token() -> None:
    result = run("inspect", *NOW_ARG, "--color", "always", token(ES, good_claims(note="[blink]x[/blink]")))
    assert "[blink]x[/blink]" in result.stdout


def test_inspect_masks_flagged_values_by_default() -> None:
    result = run("inspect", *NOW_ARG, token(ES, good_claims(password="hunter2-secret")))
    assert "hunter2-secret" not in result.stdout and "<masked: sensitive_name>" in result.stdout


def test_inspect_show_secrets_prints_flagged_values() -> None:
    result = run("inspect", *NOW_ARG, "--show-secrets", token(ES, good_claims(password="hunter2-secret")))
    assert "hunter2-secret" in result.stdout


def test_inspect_json_masks_flagged_values_by_default() -> None:
    _, report = inspect_json(token(ES, good_claims(password="hunter2-secret")))
    assert report["payload"]["password"] == "<masked: sensitive_name>"


def test_inspect_now_decides_which_tokens_are_expired() -> None:
    _, report = inspect_json("--now", str(NOW + 3600), issued())
    assert [f["code"] for f in report["findings"]] == ["expired"]


def test_inspect_of_garbage_reports_malformed_without_a_traceback() -> None:
    result = run("inspect", "--json", "this is not a token")
    assert result.exit_code == 1
    assert [f["code"] for f in json.loads(result.stdout)["findings"]] == ["malformed"]


def test_inspect_without_a_token_on_a_terminal_is_a_usage_error() -> None:
    assert run("inspect", input="").exit_code == 2


# ----------------------------------------------------------------------------- inspect: exit status


def test_inspect_exits_1_when_a_finding_reaches_fail_on() -> None:
    assert run("inspect", *NOW_ARG, token({"alg": "none"}, good_claims(), b"")).exit_code == 1


def test_inspect_exits_0_when_findings_are_below_the_default_medium() -> None:
    header = {"alg": "ES256", "kid": "k1"}  # typ_missing: LOW
    assert run("inspect", *NOW_ARG, token(header, good_claims())).exit_code == 0


def test_inspect_fail_on_low_counts_low_findings() -> None:
    header = {"alg": "ES256", "kid": "k1"}
    assert run("inspect", *NOW_ARG, "--fail-on", "low", token(header, good_claims())).exit_code == 1


def test_inspect_fail_on_critical_ignores_high_findings() -> None:
    text = token(ES, good_claims(exp=None))  # exp_missing: HIGH
    assert run("inspect", *NOW_ARG, "--fail-on", "critical", text).exit_code == 0


def test_inspect_fail_on_never_exits_0_even_for_alg_none() -> None:
    text = token({"alg": "none"}, good_claims(), b"")
    assert run("inspect", *NOW_ARG, "--fail-on", "never", text).exit_code == 0


def test_inspect_exits_0_for_a_clean_token() -> None:
    assert run("inspect", *NOW_ARG, issued()).exit_code == 0


# ----------------------------------------------------------------------------- inspect: keys


def test_inspect_with_a_jwks_file_verifies(jwks_file: Path) -> None:
    status, report = inspect_json("--jwks", str(jwks_file), issued())
    assert (status, report["verified"]) == (0, True)


def test_inspect_with_a_jwks_file_prints_the_verified_banner(jwks_file: Path) -> None:
    result = run("inspect", *NOW_ARG, "--jwks", str(jwks_file), issued())
    assert result.stdout.startswith("VERIFIED")


def test_inspect_names_the_check_that_failed(jwks_file: Path) -> None:
    status, report = inspect_json("--jwks", str(jwks_file), tamper(issued()))
    assert status == 1
    assert (report["verification"]["code"], report["verification"]["error"]) == ("bad_signature", "BadSignature")


def test_inspect_pins_issuer_and_audience_when_given(jwks_file: Path) -> None:
    _, report = inspect_json("--jwks", str(jwks_file), "--iss", ISS, "--aud", "other", issued())
    assert report["verification"]["code"] == "bad_audience"


def test_inspect_with_a_pem_key_needs_alg(pem_file: Path) -> None:
    assert run("inspect", *NOW_ARG, "--key", str(pem_file), issued()).exit_code == 2


def test_inspect_with_a_pem_key_and_alg_verifies_the_token_whatever_its_kid(pem_file: Path) -> None:
    status, report = inspect_json("--key", str(pem_file), "--alg", "ES256", issued())
    assert (status, report["verified"]) == (0, True)


def test_inspect_with_a_jwk_key_file_verifies(tmp_path: Path) -> None:
    path = tmp_path / "key.jwk"
    path.write_text(json.dumps(keyset_for("ES256").public().to_jwks()["keys"][0]))
    assert inspect_json("--key", str(path), issued())[1]["verified"]


def test_inspect_with_a_raw_hmac_secret_file_verifies(tmp_path: Path) -> None:
    secret = b"s" * 32
    path = tmp_path / "secret.txt"
    path.write_bytes(secret + b"\n")
    status, report = inspect_json("--key", str(path), "--alg", "HS256", hs_token(secret, payload=good_claims()))
    assert (status, report["verified"]) == (1, True)  # verified, with hmac_multi_service (MEDIUM)


def test_inspect_with_a_weak_hmac_secret_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_bytes(b"secret")
    result = run("inspect", *NOW_ARG, "--key", str(path), "--alg", "HS256", hs_token(b"secret"))
    assert result.exit_code == 2 and "weak_key" in result.output


def test_inspect_with_two_key_sources_is_a_usage_error(jwks_file: Path, pem_file: Path) -> None:
    result = run("inspect", "--jwks", str(jwks_file), "--key", str(pem_file), issued())
    assert result.exit_code == 2


def test_inspect_with_an_alg_no_key_has_is_a_usage_error(jwks_file: Path) -> None:
    assert run("inspect", "--jwks", str(jwks_file), "--alg", "RS256", issued()).exit_code == 2


def test_inspect_with_a_jwks_url_on_loopback_verifies(jwks_server: _JWKSServer) -> None:
    jwks_server.answer = (200, {}, json.dumps(keyset_for("ES256").public().to_jwks()).encode())
    status, report = inspect_json("--jwks-url", url_of(jwks_server), issued())
    assert (status, report["verified"]) == (0, True)


def test_inspect_refuses_a_plain_http_jwks_url_to_another_host() -> None:
    result = run("inspect", "--jwks-url", "http://auth.example.com/jwks.json", issued())
    assert result.exit_code == 2 and "jwks_url_refused" in result.output


def test_inspect_exits_3_when_the_jwks_url_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("inspect", "--jwks-url", f"http://127.0.0.1:{port}/jwks.json", issued())
    assert result.exit_code == 3 and "jwks_unavailable" in result.output


def test_inspect_does_not_follow_a_jwks_redirect(jwks_server: _JWKSServer) -> None:
    jwks_server.answer = (302, {"Location": "https://attacker.example/jwks.json"}, b"")
    assert run("inspect", "--jwks-url", url_of(jwks_server), issued()).exit_code == 3


def test_inspect_refuses_private_keys_from_a_jwks_url(jwks_server: _JWKSServer) -> None:
    jwks_server.answer = (200, {}, json.dumps(keyset_for("ES256").to_jwks(private=True)).encode())
    result = run("inspect", "--jwks-url", url_of(jwks_server), issued())
    assert result.exit_code == 2 and "invalid_key" in result.output


# ----------------------------------------------------------------------------- key sources


@pytest.mark.parametrize(
    "url",
    ["https://auth.example.com/jwks.json", "http://127.0.0.1:8080/jwks", "http://localhost/jwks",
     "http://[::1]:9000/jwks", "http://127.1.2.3/jwks"],
)  # fmt: skip
def test_https_and_loopback_jwks_urls_are_accepted(url: str) -> None:
    assert check_jwks_url(url).scheme in ("http", "https")


@pytest.mark.parametrize(
    "url",
    ["http://auth.example.com/jwks", "http://10.0.0.1/jwks", "ftp://example.com/jwks",
     "file:///etc/passwd", "not a url", "https://", "javascript:alert(1)"],
)  # fmt: skip
def test_other_jwks_urls_are_refused(url: str) -> None:
    with pytest.raises(JWKSURLRefused):
        check_jwks_url(url)


def mock_transport(status: int, body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


def test_a_jwks_answer_other_than_200_is_unavailable() -> None:
    with pytest.raises(JWKSUnavailable):
        fetch_jwks("https://auth.example.com/jwks", transport=mock_transport(503, b"{}"))


def test_a_jwks_larger_than_the_cap_is_unavailable() -> None:
    body = json.dumps({"keys": [], "pad": "x" * 5000}).encode()
    with pytest.raises(JWKSUnavailable):
        fetch_jwks("https://auth.example.com/jwks", transport=mock_transport(200, body), max_bytes=4096)


def test_a_jwks_that_is_not_json_is_unavailable() -> None:
    with pytest.raises(JWKSUnavailable):
        fetch_jwks("https://auth.example.com/jwks", transport=mock_transport(200, b"<html>"))


def test_a_fetched_jwks_loads_its_public_keys() -> None:
    body = json.dumps(keyset_for("ES256").public().to_jwks()).encode()
    keys = fetch_jwks("https://auth.example.com/jwks", transport=mock_transport(200, body))
    assert [k.alg for k in keys] == ["ES256"]


def test_a_private_key_file_is_reduced_to_its_public_half(tmp_path: Path) -> None:
    key = next(iter(keyset_for("ES256")))
    assert isinstance(key, AsymmetricKey)
    path = tmp_path / "private.pem"
    path.write_bytes(key.to_pem(private=True))
    assert not next(iter(load_key_file(path, "ES256"))).is_private


def test_a_key_file_without_kid_takes_the_given_kid(pem_file: Path) -> None:
    assert next(iter(load_key_file(pem_file, "ES256", kid="token-kid"))).kid == "token-kid"


def test_a_jwk_disagreeing_with_alg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.jwk"
    path.write_text(json.dumps(keyset_for("ES256").public().to_jwks()["keys"][0]))
    with pytest.raises(InvalidKey):
        load_key_file(path, "ES384")


def test_a_raw_secret_loses_one_trailing_line_break(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_bytes(b"s" * 32 + b"\r\n")
    keys = load_key_file(path, "HS256")
    assert audit_token(hs_token(b"s" * 32, payload=good_claims()), now=NOW, keys=keys).verified


def test_a_raw_secret_shorter_than_the_hash_is_weak(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_bytes(b"s" * 31 + b"\n")
    with pytest.raises(WeakKey):
        load_key_file(path, "HS256")


def test_a_file_that_is_no_key_is_invalid_without_an_hmac_alg(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello")
    with pytest.raises(InvalidKey):
        load_key_file(path, None)


# ----------------------------------------------------------------------------- crack


def test_crack_finds_a_builtin_secret_exits_1_and_hides_it() -> None:
    result = run("crack", hs_token(b"supersecret"))
    assert result.exit_code == 1 and "FOUND" in result.stdout and "supersecret" not in result.stdout


def test_crack_show_prints_the_secret() -> None:
    result = run("crack", "--show", hs_token(b"supersecret"))
    assert "supersecret" in result.stdout


def test_crack_exits_0_when_no_candidate_matches() -> None:
    assert run("crack", hs_token(b"a-long-random-secret-nobody-would-guess")).exit_code == 0


def test_crack_uses_the_given_wordlist(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_bytes(b"one\ntwo\nthree-is-the-secret\n")
    result = run("crack", "--json", "--no-builtin", "--wordlist", str(path), hs_token(b"three-is-the-secret"))
    assert json.loads(result.stdout)["source"] == "word list words.txt"


def test_crack_json_hides_the_secret_without_show() -> None:
    report = json.loads(run("crack", "--json", hs_token(b"changeme")).stdout)
    assert (report["found"], report["secret"], report["secret_bytes"]) == (True, None, 8)


def test_crack_refuses_a_token_that_is_not_hmac_with_exit_2() -> None:
    result = run("crack", issued())
    assert result.exit_code == 2 and "alg_not_allowed" in result.output


def test_crack_refuses_a_malformed_token_with_exit_2() -> None:
    assert run("crack", "nope").exit_code == 2


def test_crack_reads_the_token_from_stdin() -> None:
    assert run("crack", input=hs_token(b"changeme") + "\n").exit_code == 1


# ----------------------------------------------------------------------------- debugger


def test_debugger_refuses_a_non_loopback_host() -> None:
    result = run("debugger", "--host", "192.0.2.1")  # TEST-NET-1: never bound
    assert result.exit_code == 2 and "--allow-remote" in result.output


def test_debugger_refuses_a_jwks_file_with_private_keys(tmp_path: Path) -> None:
    path = tmp_path / "private.json"
    path.write_text(json.dumps(keyset_for("ES256").to_jwks(private=True)))
    result = run("debugger", "--port", "0", "--jwks", str(path))
    assert result.exit_code == 2 and "invalid_key" in result.output


def test_debugger_reports_a_port_in_use_as_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run("debugger", "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 2


def test_a_jwks_with_no_key_for_inspect_is_a_key_set_error(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": "nope"}))
    assert run("inspect", "--jwks", str(path), issued()).exit_code == 2


def test_keys_loaded_for_inspect_are_the_public_half(jwks_file: Path) -> None:
    private = jwks_file.with_name("private.json")
    private.write_text(json.dumps(keyset_for("ES256").to_jwks(private=True)))
    assert inspect_json("--jwks", str(private), issued())[1]["verified"]
