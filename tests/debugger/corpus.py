"""Tokens both audit engines (Python and the page's JavaScript) must agree on.

Hand-written tokens for every finding code and every way a token can be malformed, every
value the payload linter's own tests use (harvested from ``tests/test_lint.py``), and
seeded random payloads: strings that look random or not, numbers of every JSON kind,
nested objects and arrays.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from typing import Any

import pytest

from tests import test_lint
from tests.debugger.tokens import NOW, b64, good_claims, segment, token

ES = {"alg": "ES256", "typ": "at+jwt", "kid": "k1"}
HS = {"alg": "HS256", "typ": "JWT"}
B62 = string.ascii_letters + string.digits


def _hand_written() -> Iterator[str]:
    yield token(ES, good_claims())
    for alg in ("none", "None", "NONE", "nOnE", "HS1", "RS1", "ES256K", "es256", "", "EdDSA"):
        yield token({"alg": alg, "typ": "JWT"}, good_claims(), b"" if "one" in alg.lower() else b"s" * 64)
    yield token({"alg": None}, good_claims())
    yield token({"alg": ["HS256"]}, good_claims())
    yield token({"typ": "JWT"}, good_claims())
    for kid in ("../../etc/passwd", "a/b", "a\\b", "x' OR '1'='1", 'q"', "`id`", "k\x00", "k\x7f",
                "k\x85", "k\n", 5, None, ["k"], "ok-kid_1.2", "k..", "é"):  # fmt: skip
        yield token({**ES, "kid": kid}, good_claims())
    for name, value in (("jku", "https://evil.example/jwks"), ("x5u", "https://evil.example/c"),
                        ("jwk", {"kty": "EC"}), ("x5c", ["MIIB"]), ("crit", ["exp"]),
                        ("zip", "DEF"), ("b64", False), ("b64", True)):  # fmt: skip
        yield token({**ES, name: value}, good_claims())
    for typ in ("JWT", "jwt", "at+jwt", "application/at+jwt", "dpop+JWT", "JOSE", "json", 1, None,
                "application/json", "+jwt"):  # fmt: skip
        yield token({**ES, "typ": typ}, good_claims())
    for aud, iss in ((["a", "b"], "x"), (["a", "a"], "x"), (["a"], "https://a.example.com"),
                     ("https://api.example.com", "https://auth.example.com"),
                     ("api.example.com", "https://api.example.com:8443/x"),
                     ("api://orders", "https://auth.example.com"), ("orders", "https://auth.x.com"),
                     ("https://user@API.example.com/", "https://api.example.com"),
                     ("http://[::1]:80/", "http://[::1]/"), (5, "x"), ([1, "a", "b"], "x")):  # fmt: skip
        for alg in ("HS256", "HS512", "ES256"):
            yield token({"alg": alg, "typ": "JWT"}, good_claims(aud=aud, iss=iss))
    for alg, size in (("ES256", 70), ("ES256", 0), ("ES384", 96), ("ES512", 132), ("EdDSA", 63),
                      ("HS256", 31), ("HS384", 48), ("RS256", 128), ("RS256", 256), ("PS512", 384),
                      ("HS256", 32)):  # fmt: skip
        yield token({"alg": alg, "typ": "JWT"}, good_claims(), b"\x30" * size)
    now = int(NOW)
    changes_list: tuple[dict[str, Any], ...] = (
        {"exp": None}, {"exp": now + 901}, {"exp": now + 900}, {"exp": now - 1}, {"exp": now},
        {"exp": now + 10**6}, {"exp": 10**30}, {"exp": -(10**30)}, {"exp": now + 0.5},
        {"exp": "tomorrow"}, {"exp": True}, {"exp": [1]}, {"iat": None, "nbf": now},
        {"iat": None, "exp": now + 3600}, {"iat": None, "nbf": now + 60, "exp": now + 7200},
        {"iat": now + 3600, "exp": now + 4000}, {"nbf": now + 5}, {"nbf": "x"}, {"iat": 1.5},
        {"iss": None}, {"aud": None}, {"jti": None}, {"sub": 5}, {"jti": 7}, {"iss": ["x"]},
        {"aud": ["a", 1]}, {"aud": []}, {"iss": None, "aud": None, "jti": None, "exp": None},
        {"exp": 1.7e9 + 1e7 + 0.25}, {"exp": now + 86400 * 400}, {"exp": now + 86400 * 365 * 11},
    )  # fmt: skip
    for changes in changes_list:
        yield token(ES, good_claims(**changes))
    jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    for cnf, lifetime in (({"jkt": jkt}, 900), ({"jkt": jkt}, 901), ({"jkt": jkt}, 86400),
                          ({"jkt": 5}, 86400), ("jkt", 86400), ({"jwk": {"kty": "EC"}}, 86400),
                          ({"jkt": ""}, 3600)):  # fmt: skip  (DPoP-bound tokens, RFC 9449)
        yield token(ES, good_claims(cnf=cnf, exp=now + lifetime))
    yield token(ES, good_claims(cnf={"jkt": jkt}, iat=None, exp=now + 7200))
    yield token(ES, good_claims(cnf={"jkt": jkt}, iat=None, nbf=now, exp=now + 1000))
    yield token(ES, good_claims(cnf={"jkt": jkt}, exp=None))
    yield token(ES, good_claims(), b"")
    yield token({"alg": "none"}, {"sub": "x"}, b"")
    # malformed, every way
    valid_head, valid_body = segment(ES), segment(good_claims())
    yield from (
        "", "a", "a.b", "a.b.c.d", "a.b.c.d.e", "....", f"{valid_head}.{valid_body}",
        f"{valid_head}.{valid_body}.", f"{valid_head}.{valid_body}.sig=", f"{valid_head}=.{valid_body}.x",
        f"{valid_head}.{valid_body}.a+b", f"{valid_head}.{valid_body}.a/b", f"{valid_head}.{valid_body}.QR",
        f"{valid_head}.{valid_body}.Q", f"{valid_head} .{valid_body}.x", f"{valid_head}.{valid_body}.x\n",
        f"{valid_head}\t.{valid_body}.x", f"{valid_head}.{valid_body}.é", f"{valid_head}.{valid_body}.😀",
        f".{valid_body}.x", f"{valid_head}..x", "x" * 9000, f"{valid_head}.{valid_body}.{'A' * 9000}",
        "eyJ" * 100_000, f"{segment(ES)}.{segment(good_claims())}.{segment(ES)}.{segment(ES)}.x",
    )  # fmt: skip
    for raw in (
        b'{"alg":"ES256","alg":"HS256"}', b'\xef\xbb\xbf{"alg":"ES256"}', b'{"alg":"ES256"} x',
        b'["ES256"]', b'"ES256"', b"", b"{", b'{"alg":NaN}', b'{"alg":"\\ud800"}', b'{"a":"\xff"}',
        b'{"a":"\xed\xa0\x80"}', b'{"alg":"ES256",}', b'{"a":01}', b'{"a":1.}', b'{"a":"\x01"}',
        b'{"a":"\\x"}', b'{"a":"\\u12"}', b' {"alg":"ES256"} ', b'{"a":' + b"[" * 15 + b"]" * 15 + b"}",
        b'{"a":' + b"[" * 16 + b"]" * 16 + b"}", b'{"a":"' + b"[" * 40 + b'"}', b'{"a":1e999}',
        b'{"a":' + b"9" * 4301 + b"}", b'{"a":' + b"9" * 4300 + b"}", b'{"alg":"ES256","x":{"k":1,"k":2}}',
        b'{"alg":"ES256","a":"\\ud83d\\ude00"}', b'{"alg":"ES256","a":"\\udc00\\ud83d"}',
        b'{"alg":"ES256","__proto__":{"x":1},"constructor":1}', b'{"alg":"ES256","2":1,"1":2}',
    ):  # fmt: skip
        yield token(raw, good_claims())
        yield token(ES, raw)


def _harvest_lint_vectors() -> Iterator[Any]:
    """Every parametrized value of the payload linter's own tests."""
    for name, function in sorted(vars(test_lint).items()):
        if not name.startswith("test_"):
            continue
        for mark in getattr(function, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            for case in mark.args[1]:
                values = case.values if isinstance(case, type(pytest.param(None))) else case
                yield from values if isinstance(values, tuple) else (values,)
    for name in ("CARD", "AWS_KEY_ID", "SSN", "EMAIL", "PHONE", "RANDOM_32", "UUID", "BODY_36"):
        yield getattr(test_lint, name)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _lint_payloads() -> Iterator[dict[str, Any]]:
    for value in _harvest_lint_vectors():
        if not _jsonable(value) or isinstance(value, bool):
            continue
        yield {"data": value}
        if isinstance(value, str):
            yield {value: "x"}
            yield {value: value}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            yield value
            yield {"wrap": [value, {"inner": value}]}


def _random_string(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return "".join(rng.choice(B62 + "-_") for _ in range(rng.randint(20, 80)))
    if kind == 1:
        return "".join(rng.choice(B62 + "+/") for _ in range(rng.randint(30, 70))) + "=="
    if kind == 2:
        words = ["Account", "Admin", "Billing", "Cache", "Tenant", "Order", "Stream", "Worker"]
        return "".join(rng.choice(words) for _ in range(rng.randint(3, 8))) + str(rng.randint(0, 9999))
    if kind == 3:
        return f"user{rng.randint(1, 999)}@{rng.choice(['example.com', 'mail.example.org', 'x'])}"
    if kind == 4:
        return " ".join(str(rng.randint(1000, 9999)) for _ in range(4))
    if kind == 5:
        return f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}"
    if kind == 6:
        return "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([32, 40, 64])))
    return "".join(rng.choice(string.printable[:94] + " éü漢") for _ in range(rng.randint(0, 40)))


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind < 3:
        return _random_string(rng)
    if kind == 3:
        return rng.choice([rng.randint(-5, 5), rng.randint(10**12, 10**17), 4111111111111111,
                           2 ** 53 + 1, 10**20, rng.random() * 1e13, 1.0, 4111111111111111.0])  # fmt: skip
    if kind == 4:
        return rng.choice([True, False, None])
    if kind in (5, 6):
        return rng.choice(["password", "api_key", "clientSecret", "pin_length", "has_password",
                           "access_token_hash", "secretary", "ssn", "dbPassword", "x5c"])  # fmt: skip
    if kind in (7, 8):
        return {_random_name(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _random_name(rng: random.Random) -> str:
    return rng.choice(["data", "password", "apiKey", "API_KEY", "card_number", "email", "note",
                       "user", "cnf", "jwk", "kty", "d", "k", "sub", "nonce", "fileHash", "x/y",
                       "a~b", "", "1", "__proto__", "passwordExpiresAt", "is_secret", "tokens"])  # fmt: skip


def _random_payloads(count: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield {_random_name(rng): _random_value(rng, 1) for _ in range(rng.randint(1, 6))}


def inspect_corpus() -> list[str]:
    """Every token the two engines are compared on."""
    tokens = list(_hand_written())
    payloads = [*_lint_payloads(), *_random_payloads(300, seed=20241130)]
    tokens += [token(ES, {**good_claims(), **p}) for p in payloads]
    tokens += [token(HS, p) for p in payloads[:50]]
    tokens.append(f"{segment(ES)}.{b64(json.dumps(good_claims()).encode())}.{b64(b'x' * 64)}")
    return tokens
