"""The weak HMAC secret search and its built-in list."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from jwtwarden.audit import _weak_secrets
from jwtwarden.audit.crack import (
    BUILTIN_LIST,
    Target,
    builtin_secrets,
    count_candidates,
    crack_hmac,
    search_chunk,
)
from jwtwarden.errors import AlgorithmNotAllowed, MalformedToken
from tests.debugger.tokens import good_claims, hs_token, token


def wordlist(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "words.txt"
    path.write_bytes(content)
    return path


# ----------------------------------------------------------------------------- the built-in list


def test_the_builtin_list_file_is_exactly_the_generator_output() -> None:
    expected = "".join(f"{secret}\n" for secret in _weak_secrets.generate())
    assert BUILTIN_LIST.read_text(encoding="utf-8") == expected


def test_the_builtin_list_has_thousands_of_distinct_non_empty_secrets() -> None:
    secrets = builtin_secrets()
    assert len(secrets) >= 3000
    assert len(set(secrets)) == len(secrets) and b"" not in secrets


@pytest.mark.parametrize(
    "secret",
    ["secret", "your-256-bit-secret", "changeme", "supersecret", "jwt_secret", "keyboard cat",
     "qwerty123", "Password1", "1q2w3e4r", "myapp-secret", "NEXTAUTH_SECRET", "x" * 32],
)  # fmt: skip
def test_the_builtin_list_has_documentation_and_framework_defaults(secret: str) -> None:
    assert secret.encode() in builtin_secrets()


def test_the_most_likely_secrets_come_first() -> None:
    assert builtin_secrets()[:2] == (b"secret", b"your-256-bit-secret")


# ----------------------------------------------------------------------------- finding secrets


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_a_builtin_secret_is_found_for_each_hmac_algorithm(alg: str) -> None:
    result = crack_hmac(hs_token(b"changeme", alg))
    assert (result.secret, result.source) == (b"changeme", "the built-in list")


def test_the_empty_secret_is_tried_first() -> None:
    result = crack_hmac(hs_token(b""))
    assert (result.secret, result.source, result.tried) == (b"", "the empty secret", 1)


def test_a_strong_secret_is_not_found() -> None:
    result = crack_hmac(hs_token(b"v3ry-l0ng-r4nd0m-s3cr3t-n0b0dy-gu3ss3s"))
    assert result.secret is None and not result.found


def test_not_found_counts_every_candidate_tried() -> None:
    result = crack_hmac(hs_token(b"not-in-any-list-at-all"))
    assert result.tried == len(builtin_secrets()) + 1


def test_a_wordlist_secret_is_found_with_its_source(tmp_path: Path) -> None:
    path = wordlist(tmp_path, b"alpha\nbravo\ncharlie\n")
    result = crack_hmac(hs_token(b"bravo"), wordlists=[path], builtin=False)
    assert (result.secret, result.source) == (b"bravo", "word list words.txt")


def test_wordlists_accept_crlf_lines_and_a_last_line_without_newline(tmp_path: Path) -> None:
    path = wordlist(tmp_path, b"alpha\r\nbravo\r\ncharlie")
    assert crack_hmac(hs_token(b"charlie"), wordlists=[path], builtin=False).found


def test_wordlist_lines_keep_their_spaces_and_bytes(tmp_path: Path) -> None:
    path = wordlist(tmp_path, b" padded secret \n\xff\xfebinary\n")
    assert crack_hmac(hs_token(b"\xff\xfebinary"), wordlists=[path], builtin=False).found


def test_empty_wordlist_lines_are_skipped(tmp_path: Path) -> None:
    path = wordlist(tmp_path, b"\n\nalpha\n\n")
    assert crack_hmac(hs_token(b"zulu"), wordlists=[path], builtin=False).tried == 2


def test_word_lists_cut_in_small_ranges_try_every_line_exactly_once(tmp_path: Path) -> None:
    lines = [b"a", b"x" * 40, b"", b"bb\r", b"c" * 11, b"d" * 12, b"e" * 13, b"last-without-newline"]
    path = wordlist(tmp_path, b"\n".join(lines))
    result = crack_hmac(hs_token(b"nope"), wordlists=[path], builtin=False, chunk_size=1)
    assert result.tried == 1 + sum(1 for line in lines if line.rstrip(b"\r"))


def test_the_parallel_search_finds_a_secret_in_a_later_chunk(tmp_path: Path) -> None:
    words = b"".join(b"candidate-%d\n" % i for i in range(5000)) + b"the-one\n"
    path = wordlist(tmp_path, words)
    result = crack_hmac(
        hs_token(b"the-one"), wordlists=[path], builtin=False, jobs=2, parallel_min=0,
        chunk_size=500,
    )  # fmt: skip
    assert (result.secret, result.source) == (b"the-one", "word list words.txt")


def test_progress_reports_add_up_to_the_candidates_tried(tmp_path: Path) -> None:
    seen: list[int] = []
    path = wordlist(tmp_path, b"a\nb\nc\n")
    result = crack_hmac(hs_token(b"nope"), wordlists=[path], progress=seen.append, chunk_size=1000)
    assert sum(seen) == result.tried


def test_the_result_repr_never_shows_the_secret() -> None:
    result = crack_hmac(hs_token(b"supersecret"))
    assert "supersecret" not in repr(result)


def test_search_chunk_agrees_with_the_stdlib_hmac() -> None:
    message, key = b"header.payload", b"k" * 100  # longer than a block: hashed first
    signature = hmac.digest(key, message, "sha512")
    assert search_chunk("HS512", message, signature, [b"x", b"", key]) == 2


def test_count_candidates_includes_the_empty_secret_and_a_last_line_without_newline(tmp_path: Path) -> None:
    path = wordlist(tmp_path, b"a\nb")
    assert count_candidates([path], builtin=False) == 3


# ----------------------------------------------------------------------------- refusals


def test_a_token_that_is_not_hmac_is_refused() -> None:
    with pytest.raises(AlgorithmNotAllowed):
        crack_hmac(token({"alg": "ES256", "typ": "JWT"}, good_claims()))


def test_alg_none_is_refused() -> None:
    with pytest.raises(AlgorithmNotAllowed):
        Target.from_token(token({"alg": "none"}, good_claims(), b""))


def test_a_malformed_token_is_refused() -> None:
    with pytest.raises(MalformedToken):
        crack_hmac("not.a-token")


def test_an_hmac_token_without_signature_is_refused() -> None:
    with pytest.raises(MalformedToken):
        crack_hmac(token({"alg": "HS256"}, good_claims(), b""))


def test_zero_jobs_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="jobs"):
        crack_hmac(hs_token(b"x"), jobs=0)


def test_a_missing_wordlist_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        crack_hmac(hs_token(b"x"), wordlists=[tmp_path / "missing.txt"])
