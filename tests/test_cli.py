"""The command line, driven in-process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from jwtwarden.cli import main
from tests.conftest import AUD, ISS


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    result = run("keys", "generate", "--alg", "ES256", "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


def issue(keyfile: Path, *extra: str) -> str:
    result = run("issue", "--keys", str(keyfile), "--iss", ISS, "--aud", AUD, "--sub", "u1", *extra)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def verify_args(keyfile: Path) -> list[str]:
    return ["verify", "--keys", str(keyfile), "--iss", ISS, "--aud", AUD, "--alg", "ES256"]


def test_keys_generate_writes_a_private_jwks_readable_only_by_the_owner(keyfile: Path) -> None:
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    jwks = json.loads(keyfile.read_text())
    assert jwks["keys"][0]["alg"] == "ES256" and "d" in jwks["keys"][0]


def test_keys_generate_never_overwrites(keyfile: Path) -> None:
    before = keyfile.read_text()
    result = run("keys", "generate", "--out", str(keyfile))
    assert result.exit_code == 1 and "refusing to overwrite" in result.output
    assert keyfile.read_text() == before


def test_keys_public_prints_no_private_member(keyfile: Path) -> None:
    result = run("keys", "public", str(keyfile))
    jwks = json.loads(result.stdout)
    assert result.exit_code == 0
    assert set(jwks["keys"][0]) == {"kty", "crv", "x", "y", "kid", "alg", "use"}


def test_keys_public_of_an_hmac_secret_explains_why_not(tmp_path: Path) -> None:
    path = tmp_path / "hs.json"
    run("keys", "generate", "--alg", "HS256", "--out", str(path))
    result = run("keys", "public", str(path))
    assert result.exit_code == 1 and "no public part" in result.output


def test_issue_then_verify_prints_the_claims(keyfile: Path) -> None:
    token = issue(keyfile, "--claim", "role=admin", "--claim", 'tags=["a","b"]')
    result = run(*verify_args(keyfile), token)
    assert result.exit_code == 0, result.output
    claims = json.loads(result.stdout)
    assert claims["sub"] == "u1" and claims["role"] == "admin" and claims["tags"] == ["a", "b"]


def test_verify_reads_the_token_from_stdin(keyfile: Path) -> None:
    token = issue(keyfile)
    assert run(*verify_args(keyfile), input=token + "\n").exit_code == 0
    assert run(*verify_args(keyfile), "-", input=token).exit_code == 0


def test_verify_of_a_forgery_exits_1_with_the_error_code(keyfile: Path) -> None:
    head, body, sig = issue(keyfile).split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    result = run(*verify_args(keyfile), forged)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: bad_signature:")
    assert result.stdout == ""


def test_verify_with_the_wrong_audience_names_the_check(keyfile: Path) -> None:
    token = issue(keyfile)
    args = verify_args(keyfile)
    args[args.index(AUD)] = "other-api"
    result = run(*args, token)
    assert result.exit_code == 1 and "bad_audience" in result.stderr


def test_verify_needs_an_explicit_algorithm(keyfile: Path) -> None:
    token = issue(keyfile)
    result = CliRunner().invoke(main, ["verify", "--keys", str(keyfile), "--iss", ISS, "--aud", AUD, token])
    assert result.exit_code == 2 and "--alg" in result.output


def test_issue_refuses_sensitive_claims_unless_allowed(keyfile: Path) -> None:
    args = ["issue", "--keys", str(keyfile), "--iss", ISS, "--aud", AUD, "--sub", "u1",
            "--claim", "password=hunter2"]
    refused = run(*args)
    assert refused.exit_code == 1 and "sensitive_claim" in refused.stderr
    assert "hunter2" not in refused.output
    assert run(*args, "--allow-sensitive", "password").exit_code == 0


def test_issue_refuses_long_lifetimes_without_the_unsafe_flag(keyfile: Path) -> None:
    args = ["issue", "--keys", str(keyfile), "--iss", ISS, "--aud", AUD, "--sub", "u1", "--lifetime", "3600"]
    assert run(*args).exit_code == 1
    assert run(*args, "--unsafe-long-lifetime").exit_code == 0


def test_a_key_file_that_is_not_a_jwks_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [{"kty": "EC"}]}')
    result = CliRunner().invoke(main, ["issue", "--keys", str(bad), "--iss", ISS, "--aud", AUD, "--sub", "u"])
    assert result.exit_code == 2


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
        else:
            found.append(path)
    return found


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "jwtwarden" in result.output
