"""Nothing an attacker sends costs more than a small constant times an ordinary input (#16, F1).

Every parser and pattern that reads untrusted bytes must run in time linear in their size:
the strict JSON parser (JOSE headers, JWT payloads, JWKS and revocation-feed documents),
the payload linter (values and claim names, what the issuer runs on every request body of
``POST /v1/sessions``). A quadratic scan there is a denial of service: an 8 KiB header
held a verifier ~100-190 ms, a 64 KiB request body held the service's event loop seconds.

How cost is measured, on shared, noisy machines, without any absolute time (all times are
CPU time of the test thread, ``time.thread_time``: being descheduled is not billed):

- **worst vs ordinary**: for each input kind and size class, the worst inputs known (one
  per shape) and an ordinary input of the same size are timed in the same test, rounds
  interleaved, each keeping its best (minimum) time; ``best(worst) <= K * best(ordinary)``
  with a generous K. Linear code stays within a few times; the quadratic scans this file
  was written against were 100-100 000 times slower at these sizes.
- **scaling**: the same shape at sizes 8 times apart; linear code costs ~8 times more,
  quadratic code ~64 times: the ratio must stay under 20 (cache effects push linear code
  on a loaded machine to ~12).

A bound that fails is measured again, longer, before the test fails: noise makes a linear
input look slow once, a quadratic one is slow every time; an input far over its bound on a
single call fails at once. Tests never sleep.

``lint_claims`` itself is held to linear time plus the size of its result: every finding
carries the JSON Pointer of its value, so many findings under a long name make a large
result. The issuer, which only needs the first finding, is held to linear time on that
input too (``test_the_issuer_stops_at_the_first_finding``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jwtwarden import HMACKey, Issuer, KeySet, Verifier, decode_unverified, lint, lint_claims
from jwtwarden.errors import JWTError, MalformedToken
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.jose.strict_json import MAX_DEPTH, parse_object
from jwtwarden.lint import _analyse_name
from tests.conftest import AUD, ISS, NOW

# --------------------------------------------------------------------------- measuring

K_WORST = 30.0  # best(worst) <= K_WORST * best(ordinary)
SCALE = 8  # the sizes of a scaling check are this far apart...
MAX_SCALE_RATIO = 20.0  # ...and the cost may grow at most this much (linear ~8, quadratic ~64)
MIN_SAMPLE = 2e-4  # seconds: calls are repeated until one sample takes at least this long


def _swallow(call: Callable[[Any], object]) -> Callable[[Any], None]:
    """``call`` with the library's refusals (what an attacker's input usually gets) ignored."""

    def run(arg: Any) -> None:
        with contextlib.suppress(JWTError, ValueError):
            call(arg)

    return run


def _number(call: Callable[[Any], None], arg: Any) -> int:
    """How many calls make one sample of at least MIN_SAMPLE (timer resolution, noise)."""
    start = time.thread_time()
    call(arg)
    once = time.thread_time() - start
    return max(1, min(1000, math.ceil(MIN_SAMPLE / max(once, 1e-7))))


def best_costs(
    call: Callable[[Any], None], args: Mapping[Any, Any], rounds: int
) -> dict[Any, float]:
    """The best time per call of ``call`` on each argument, rounds interleaved."""
    numbers = {name: _number(call, arg) for name, arg in args.items()}
    best = dict.fromkeys(args, math.inf)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection triggered by one input must not be billed to another
    try:
        for _ in range(rounds):
            for name, arg in args.items():
                number = numbers[name]
                start = time.thread_time()
                for _ in range(number):
                    call(arg)
                best[name] = min(best[name], (time.thread_time() - start) / number)
    finally:
        if enabled:
            gc.enable()
    return best


def _once(call: Callable[[Any], None], arg: Any) -> float:
    start = time.thread_time()
    call(arg)
    return time.thread_time() - start


def _fail_fast(
    call: Callable[[Any], None], args: Mapping[Any, Any], limits: Mapping[Any, float]
) -> None:
    """Fail at once on an input whose single call is far over its limit (quadratic code on
    a large input takes seconds a call: measuring it round after round would take minutes)."""
    for name, arg in args.items():
        if name in limits and min(_once(call, arg), _once(call, arg)) > limits[name]:
            pytest.fail(
                f"{name!r}: one call costs more than {limits[name] * 1e3:.1f} ms of CPU, "
                "far above the bound"
            )


def assert_bounded(
    call: Callable[[Any], object],
    worst: Mapping[str, Any],
    ordinary: Any,
    k: float = K_WORST,
    rounds: int = 5,
) -> None:
    """Each worst input costs at most ``k`` times the ordinary input of the same size."""
    run = _swallow(call)
    reference = min(_once(run, ordinary) for _ in range(5))
    _fail_fast(run, worst, dict.fromkeys(worst, 10 * k * reference))
    args = {"ordinary": ordinary, **worst}
    ratios: dict[str, float] = {}
    for attempt in range(3):  # a failure is measured again, longer, before it counts
        costs = best_costs(run, args, rounds * (attempt + 1))
        for name in worst:
            ratio = costs[name] / costs["ordinary"]
            ratios[name] = min(ratios.get(name, math.inf), ratio)
        if all(ratios[name] <= k for name in worst):
            return
    slow = {name: round(ratio, 1) for name, ratio in ratios.items() if ratio > k}
    pytest.fail(
        f"cost(worst) / cost(ordinary) above {k}: {slow} (all: "
        f"{ {name: round(ratio, 1) for name, ratio in ratios.items()} })"
    )


def assert_linear(
    call: Callable[[Any], object],
    make: Mapping[str, Callable[[int], Any]],
    size: int,
    rounds: int = 5,
) -> None:
    """Each shape costs less than MAX_SCALE_RATIO times more at SCALE times the size."""
    run = _swallow(call)
    args = {(name, n): build(n) for name, build in make.items() for n in (size, size * SCALE)}
    small = {name: min(_once(run, args[name, size]) for _ in range(3)) for name in make}
    _fail_fast(
        run, args, {(name, size * SCALE): 4 * MAX_SCALE_RATIO * small[name] for name in make}
    )
    ratios: dict[str, float] = {}
    for attempt in range(3):  # a failure is measured again, longer, before it counts
        costs = best_costs(run, args, rounds * (attempt + 1))
        for name in make:
            ratio = costs[name, size * SCALE] / costs[name, size]
            ratios[name] = min(ratios.get(name, math.inf), ratio)
        if all(ratio < MAX_SCALE_RATIO for ratio in ratios.values()):
            return
    slow = {name: round(ratio, 1) for name, ratio in ratios.items() if ratio >= MAX_SCALE_RATIO}
    pytest.fail(f"cost grows more than {MAX_SCALE_RATIO}x for {SCALE}x the size: {slow}")


def _builder(shapes: Callable[[int], Mapping[str, Any]], name: str) -> Callable[[int], Any]:
    """Builds the shape ``name`` of ``shapes`` at a given size."""
    return lambda size: shapes(size)[name]


def fill(prefix: str, unit: str, suffix: str, size: int) -> str:
    """``prefix + unit * k + suffix`` of about ``size`` characters."""
    count = max(1, (size - len(prefix) - len(suffix)) // len(unit))
    return prefix + unit * count + suffix


# --------------------------------------------------------------------------- JSON shapes

# A prefix that makes the parser check the nesting depth (more than MAX_DEPTH brackets).
DEEPISH = '{"a":' + "[" * (MAX_DEPTH + 1)

# (prefix, unit, suffix): each repeated to the size under test. The first is the reported
# F1 header: an array 17 deep, then a string of escaped quotes that never closes.
JSON_SHAPES: dict[str, tuple[str, str, str]] = {
    "unclosed escaped quotes (F1)": (DEEPISH + '"', '\\"', ""),
    "unclosed escaped backslashes": (DEEPISH + '"', "\\\\", ""),
    "unclosed quote pairs": (DEEPISH + '"', '\\"\\\\', ""),
    "unclosed string of brackets": (DEEPISH + '"', "[{", ""),
    "closed escape run, deep": (DEEPISH + '"', '\\"', '"' + "]" * (MAX_DEPTH + 1) + "}"),
    "many short strings": ('{"a":' + "[" * (MAX_DEPTH - 1), '"\\"",', '""' + "]" * 15 + "}"),
    "quotes and brackets": (DEEPISH, '"[",', ""),
    "deep arrays": ('{"a":', "[", ""),
    "deep objects": ("{", '"a":{', ""),
    "brackets in a string": ('{"a":"', "[[{{", '"}'),
    "many empty arrays": ('{"a":[', "[],", "[]]}"),
    "many empty objects": ('{"a":[', "{},", "{}]}"),
    "unicode escapes": ('{"a":"', "\\u00e9", '"}'),
    "lone surrogates": ('{"a":"', "\\ud800", '"}'),
    "surrogate pairs": ('{"a":"', "\\ud83d\\ude00", '"}'),
    "many members": ("{", '"a":0,"b":1,"c":2,"d":3,', '"z":0}'),
    "long numbers": ('{"a":', "1", "}"),
    "whitespace": ("{", " ", '"a":1}'),
    "trailing garbage": ('{"a":1}', " x", ""),
}


def json_shape(name: str, size: int) -> bytes:
    prefix, unit, suffix = JSON_SHAPES[name]
    text = fill(prefix, unit, suffix, size)
    if name == "long numbers":  # Python refuses integers of more than 4300 digits
        text = fill('{"a":[', "1" * 400 + ",", "1]}", size)
    return text.encode("utf-8")


def ordinary_object(size: int, **fixed: Any) -> dict[str, Any]:
    """A plain JSON object of at most ``size`` bytes: short names, short strings, numbers."""
    obj: dict[str, Any] = dict(fixed)
    length = len(json.dumps(obj, separators=(",", ":")))
    for i in range(size):
        name, value = f"claim{i}", f"value number {i}, nothing special" if i % 3 else i * 7919
        member = len(json.dumps({name: value}, separators=(",", ":"))) - 1
        if length + member > size:
            break
        obj[name] = value
        length += member
    return obj


# --------------------------------------------------------------------------- tokens

SECRET = HMACKey(b"k" * 32, "HS256", kid="k1")
KEYS = KeySet([SECRET])
HEADER_SIZE = 5_900  # bytes of header JSON: its segment and a short payload fill 8 KiB
PAYLOAD_SIZE = 5_900


def _verifier() -> Verifier:
    return Verifier(KEYS, issuer=ISS, audience=AUD, algorithms=["HS256"], clock=lambda: NOW)


def _token(header: bytes, payload: bytes) -> str:
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(SECRET.sign(signing_input.encode('ascii')))}"


def _header_token(header: bytes) -> str:
    return _token(header, b'{"iss":"x"}')


def _payload_token(payload: bytes) -> str:
    return _token(b'{"alg":"HS256","kid":"k1","typ":"JWT"}', payload)


def _claims(size: int) -> bytes:
    claims = ordinary_object(size, iss=ISS, aud=AUD, sub="u1", exp=NOW + 600)
    return json.dumps(claims, separators=(",", ":")).encode()


def test_token_sizes_fit_the_default_limit() -> None:
    for name in JSON_SHAPES:
        assert len(_header_token(json_shape(name, HEADER_SIZE))) <= 8192, name
        assert len(_payload_token(json_shape(name, PAYLOAD_SIZE))) <= 8192, name
    # the ordinary tokens really are ordinary: a header with an unknown kid; a valid token
    ordinary_header = json.dumps({"alg": "HS256", "kid": "x" * (HEADER_SIZE - 40)}).encode()
    with pytest.raises(JWTError, match="kid"):
        _verifier().verify(_header_token(ordinary_header))
    assert _verifier().verify(_payload_token(_claims(PAYLOAD_SIZE)))["sub"] == "u1"


def test_a_hostile_header_costs_what_an_ordinary_token_costs() -> None:
    """The F1 report: before any signature check, for every verification of such a token.

    The ordinary input is a valid token of the same size: its header is parsed once and
    cached, the failures are not, so this is what every request costs in steady state.
    """
    verifier = _verifier()
    ordinary = _payload_token(_claims(PAYLOAD_SIZE))
    worst = {name: _header_token(json_shape(name, HEADER_SIZE)) for name in JSON_SHAPES}
    assert_bounded(verifier.verify, worst, ordinary)
    assert_bounded(decode_unverified, worst, ordinary)


def test_a_hostile_signed_payload_costs_what_an_ordinary_token_costs() -> None:
    verifier = _verifier()
    ordinary = _payload_token(_claims(PAYLOAD_SIZE))
    worst = {name: _payload_token(json_shape(name, PAYLOAD_SIZE)) for name in JSON_SHAPES}
    assert_bounded(verifier.verify, worst, ordinary)
    assert_bounded(decode_unverified, worst, ordinary)


def test_strict_json_scales_linearly_with_every_shape() -> None:
    make = {name: (lambda size, name=name: json_shape(name, size)) for name in JSON_SHAPES}
    assert_linear(parse_object, make, 2_000)


# --------------------------------------------------------------------------- JWKS, feed

JWKS_SIZE = 64 * 1024


def _jwks_loader() -> Callable[[bytes], object]:
    # imported here: the resource-server modules may move; only these tests would follow
    from jwtwarden.resource.jwks_client import load_public_jwks

    return lambda document: load_public_jwks(document, ["ES256", "RS256", "EdDSA"])


def ordinary_jwks(size: int) -> bytes:
    """A JWKS of real public keys (ES256, RS256, EdDSA in turn) of about ``size`` bytes."""
    templates = [
        KeySet.generate(alg).public().to_jwks()["keys"][0] for alg in ("ES256", "RS256", "EdDSA")
    ]
    keys: list[dict[str, Any]] = []
    while len(json.dumps({"keys": keys})) < size:
        key = dict(templates[len(keys) % 3])
        key["kid"] = f"key-{len(keys)}"
        keys.append(key)
    return json.dumps({"keys": keys}).encode()


def jwks_shapes(size: int) -> dict[str, bytes]:
    shapes = {
        name: json_shape(name, size).replace(b'{"a":', b'{"keys":', 1) for name in JSON_SHAPES
    }
    shapes |= {
        "empty keys": fill('{"keys":[', "{},", "{}]}", size).encode(),
        "half keys": fill('{"keys":[', '{"kty":"EC","crv":"P-256"},', "{}]}", size).encode(),
        "unknown kty": fill('{"keys":[', '{"kty":"XX"},', "{}]}", size).encode(),
        "long key_ops": fill(
            '{"keys":[{"kty":"EC","key_ops":["', 'verify","', 'x"]}]}', size
        ).encode(),
    }
    return shapes


def test_a_hostile_jwks_costs_what_an_ordinary_jwks_costs() -> None:
    load = _jwks_loader()
    assert_bounded(load, jwks_shapes(JWKS_SIZE), ordinary_jwks(JWKS_SIZE), rounds=3)


def test_jwks_loading_scales_linearly() -> None:
    load = _jwks_loader()
    make = {name: _builder(jwks_shapes, name) for name in jwks_shapes(100)}
    assert_linear(load, make, 4_000, rounds=3)


FEED_SIZE = 64 * 1024


def _feed_applier() -> Callable[[bytes], object]:
    from jwtwarden.resource.feed_client import RevocationFeed

    def apply(body: bytes) -> object:
        feed = RevocationFeed("https://auth.example.com/v1/revocations")
        return feed._apply(body)

    return apply


def ordinary_feed(size: int) -> bytes:
    entries: list[dict[str, Any]] = []
    while len(json.dumps(entries)) < size:
        i = len(entries)
        entries.append(
            {"kind": "jti", "value": f"jti-{i:08d}-abcdefgh", "exp": NOW + i}
            if i % 4
            else {"kind": "sub", "value": f"user-{i}", "exp": NOW + i, "cutoff": NOW}
        )
    return json.dumps({"cursor": "c1", "reset": True, "revocations": entries}).encode()


def feed_shapes(size: int) -> dict[str, bytes]:
    head = '{"cursor":"c1","reset":true,"revocations":'
    shapes = {
        name: json_shape(name, size).replace(b'{"a":', head.encode(), 1) for name in JSON_SHAPES
    }
    shapes |= {
        "empty entries": fill(head + "[", "{},", "{}]}", size).encode(),
        "bad kinds": fill(head + "[", '{"kind":"x","value":"v","exp":1},', "{}]}", size).encode(),
        "long cursor": fill('{"cursor":"', "c", '","reset":true,"revocations":[]}', size).encode(),
    }
    return shapes


def test_a_hostile_feed_document_costs_what_an_ordinary_one_costs() -> None:
    assert_bounded(_feed_applier(), feed_shapes(FEED_SIZE), ordinary_feed(FEED_SIZE), rounds=3)


def test_feed_parsing_scales_linearly() -> None:
    make = {name: _builder(feed_shapes, name) for name in feed_shapes(100)}
    assert_linear(_feed_applier(), make, 4_000, rounds=3)


# --------------------------------------------------------------------------- the linter

BODY_SIZE = 64 * 1024  # the token service's default request body limit


def ordinary_claims(size: int) -> dict[str, Any]:
    """Claims a backend could send: names, sentences, ids, URLs, nested objects, lists."""
    claims: dict[str, Any] = {}
    i = 0
    while len(json.dumps(claims)) < size:
        claims[f"preferenceGroup{i}"] = {
            "displayTitle": f"Settings group number {i} of the account",
            "updatedBy": f"user-{i:06d}",
            "link": f"https://app.example.com/settings/groups/{i}?tab=general",
            "tags": ["alpha", "beta", f"tag-{i}"],
            "order": i,
            "enabled": i % 2 == 0,
        }
        i += 1
    return claims


# Values: (prefix, unit, suffix), each one claim value of the body's size.
VALUE_SHAPES: dict[str, tuple[str, str, str]] = {
    "embedded JWT starts (_JWT)": ("", "ey", "."),
    "embedded JWT, second dot missing": ("", "eyJ", ".eyJ"),
    "JWT-like segments": ("", "eyJhbGciOiJIUzI1NiJ9.", ""),
    "URL user parts (_EMAIL)": ("https://", "a@bb.io,", ""),
    "addresses in a path": ("https://h/", "x@y.png,", ""),
    "e-mail domain labels": ("x@", "a1.", "1"),
    "e-mail local parts": ("", "a.", "@"),
    "entropy runs of 31": ("", "A" * 31 + " ", ""),
    "one long random-ish run": ("", "aZ3kQ9xR", ""),
    "digit-ish runs": ("1111111", ".", " x"),
    "card-ish groups": ("", "1234 ", "x"),
    "phone-ish": ("+", "1 ", "x"),
    "SSN-ish": ("", "123-45-", "x"),
    "AWS-ish": ("", "AKIA", ""),
    "GitHub-ish": ("", "ghp_", "x"),
    "OpenAI-ish": ("", "sk-proj-", ""),
    "Anthropic-ish": ("", "sk-ant-api01-", ""),
    "Azure-ish": ("", "abc1Q~", ""),
    "PEM words": ("-----BEGIN ", "A ", "PRIVATE KE"),
    "PEM headers": ("PRIVATE KEY", "-----BEGIN A ", ""),
    "UUID-ish": ("", "0123abcd-", ""),
}

# Names: one long adversarial claim name (names over 64 characters are never cached).
NAME_SHAPES: dict[str, tuple[str, str, str]] = {
    "sensitive words then metadata": ("", "password_", "id"),
    "flag after many sensitive words": ("", "api_key_", "is"),
    "metadata words": ("", "id_", "x"),
    "camel case": ("", "ApiKey", ""),
    "upper-case run": ("", "A", "b"),
    "letters and digits": ("", "A9", ""),
    "long compound words": ("", "clientsecretx_", ""),
    "digest words": ("", "access_token_hash_", "x"),
}


def value_claims(name: str, size: int) -> dict[str, Any]:
    return {"v": fill(*VALUE_SHAPES[name], size)}


def name_claims(name: str, size: int) -> dict[str, Any]:
    return {fill(*NAME_SHAPES[name], size): 1}


def container_claims(name: str, size: int) -> dict[str, Any]:
    """A long claim name above many small containers, or above many findings."""
    count = size // 9
    if name == "containers under a long name":
        return {"x" * (size // 2): [[]] * (count // 2)}
    return {"x" * (size // 2): ["a@b.co"] * (count // 2)}


def body_shapes(size: int) -> dict[str, dict[str, Any]]:
    shapes = {f"value: {name}": value_claims(name, size) for name in VALUE_SHAPES}
    shapes |= {f"name: {name}": name_claims(name, size) for name in NAME_SHAPES}
    shapes |= {
        f"names: {name}": {fill(*NAME_SHAPES[name], 200) + str(i): 1 for i in range(size // 200)}
        for name in NAME_SHAPES
    }
    shapes["containers under a long name"] = container_claims("containers under a long name", size)
    return shapes


def _issuer() -> Issuer:
    return Issuer(KEYS, issuer=ISS, audience=AUD, clock=lambda: NOW)


def test_shapes_are_what_they_claim() -> None:
    """The worst inputs exercise the detectors they target (and the ordinary one is clean)."""
    assert lint_claims(ordinary_claims(BODY_SIZE)) == []
    assert [f.code for f in lint_claims(name_claims("sensitive words then metadata", 500))] == []
    assert [f.code for f in lint_claims(name_claims("camel case", 500))] == ["sensitive_name"]
    assert lint_claims(value_claims("URL user parts (_EMAIL)", 500)) == []
    assert [f.code for f in lint_claims({"v": "https://a@b.io, x@y.io"})] == ["email"]


def test_a_hostile_request_body_costs_what_an_ordinary_body_costs() -> None:
    """What POST /v1/sessions does with a body: the issuer lints the claims before signing."""
    issue = _issuer().issue
    shapes = body_shapes(BODY_SIZE)
    shapes["findings under a long name"] = container_claims("findings under a long name", BODY_SIZE)
    assert_bounded(lambda claims: issue("u1", claims), shapes, ordinary_claims(BODY_SIZE), rounds=3)


def test_the_linter_costs_what_an_ordinary_body_costs() -> None:
    assert_bounded(lint_claims, body_shapes(BODY_SIZE), ordinary_claims(BODY_SIZE), rounds=3)


def test_the_linter_scales_linearly() -> None:
    make = {name: _builder(body_shapes, name) for name in body_shapes(1000)}
    assert_linear(lint_claims, make, 4_000, rounds=3)


def test_claim_name_analysis_scales_linearly() -> None:
    """The word splitting and the sequence lookup, uncached, on one long name."""
    make = {name: (lambda size, name=name: fill(*NAME_SHAPES[name], size)) for name in NAME_SHAPES}
    assert_linear(_analyse_name, make, 4_000)


def test_the_issuer_stops_at_the_first_finding() -> None:
    """Findings carry pointers that repeat the names above them; the issuer needs one."""
    issue = _issuer().issue
    make = {"findings under a long name": lambda size: container_claims("findings", size)}
    assert_linear(lambda claims: issue("u1", claims), make, 8_000, rounds=3)


# --------------------------------------------------------------------------- fuzzing

PROFILE = settings(derandomize=True, deadline=None)

ATOMS = [
    "{", "}", "[", "]", '"', "\\", '\\"', "\\\\", ":", ",", " ", "1", "-", "0.5e3", "true",
    "null", '"a"', '"k":', '{"a":', "[]", "{}", "\\u", "\\ud800", "\\udc00", "\\u00e9",
    "\\n", "é", "\x00", "NaN", "1e999",
]  # fmt: skip


def _reference(data: bytes) -> dict[str, Any] | None:
    """What parse_object must answer, from json.loads with the strict rules applied apart."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate")
        return dict(items)

    def parse_float(text: str) -> float:
        if math.isinf(float(text)):
            raise ValueError("inf")
        return float(text)

    def constant(name: str) -> Any:
        raise ValueError(name)

    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max(map(depth, value.values()), default=0)
        if isinstance(value, list):
            return 1 + max(map(depth, value), default=0)
        return 0

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=pairs,
            parse_float=parse_float,
            parse_constant=constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if type(obj) is not dict or depth(obj) > MAX_DEPTH:
        return None
    for text in strings(obj):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return obj


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        return parse_object(data)
    except MalformedToken:
        return None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def adversarial_json(draw: st.DrawFn) -> bytes:
    """Valid objects, their truncations and spliced quotes, deep nesting, escape runs..."""
    kind = draw(st.sampled_from(["valid", "cut", "atoms", "shape", "deep"]))
    if kind in ("valid", "cut"):
        text = json.dumps(draw(st.dictionaries(st.text(max_size=4), json_values, max_size=5)))
        if kind == "cut":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(ATOMS)) + text[at:]
    elif kind == "atoms":
        text = "{" + "".join(draw(st.lists(st.sampled_from(ATOMS), max_size=60)))
    elif kind == "shape":
        prefix, unit, suffix = JSON_SHAPES[draw(st.sampled_from(sorted(JSON_SHAPES)))]
        text = prefix + unit * draw(st.integers(0, 40)) + suffix
    else:
        opener = draw(st.sampled_from(["[", '{"a":']))
        closer = "]" if opener == "[" else "}"
        levels = draw(st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2))
        text = "{" + '"a":' + opener * (levels - 1) + "1" + closer * (levels - 1) + "}"
    return text.encode("utf-8", errors="surrogatepass")


@PROFILE
@given(adversarial_json())
def test_strict_json_agrees_with_the_reference(data: bytes) -> None:
    assert _parse(data) == _reference(data)


@st.composite
def adversarial_shape(draw: st.DrawFn) -> tuple[str, str, str]:
    prefix = draw(st.sampled_from(["{", '{"a":', DEEPISH, DEEPISH + '"', '{"a":"', "{" + "[" * 15]))
    unit = "".join(draw(st.lists(st.sampled_from(ATOMS), min_size=1, max_size=4)))
    suffix = draw(st.sampled_from(["", "}", '"}', "]}", '"', "\\"]))
    return prefix, unit, suffix


@settings(derandomize=True, deadline=None, max_examples=15)
@given(adversarial_shape())
def test_strict_json_cost_per_call_is_bounded(shape: tuple[str, str, str]) -> None:
    """Any repeated adversarial unit: linear growth, and within K of an ordinary object."""
    prefix, unit, suffix = shape
    size = 2_000

    def build(n: int) -> bytes:
        return fill(prefix, unit, suffix, n).encode("utf-8", errors="surrogatepass")

    assert_linear(parse_object, {"shape": build}, size, rounds=3)
    ordinary = json.dumps(ordinary_object(size), separators=(",", ":")).encode()
    assert_bounded(parse_object, {"shape": build(size)}, ordinary, rounds=3)


# The linear scanners answer exactly what the straightforward (quadratic) code answered:
# these references are that code, run on short inputs.

LINT_ATOMS = [
    "e", "y", "w", "ey", "ew", "eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxIn0", ".", "@", "a", "A",
    "1", "/", "//", "https://", " ", "\n", "-", "_", "+", "x@y.io", "a@b.png", ":", "Ab1Cd2",
    "zQ9", "0123456789",
]  # fmt: skip
WORDS = [
    "password", "pass", "word", "is", "has", "id", "hash", "api", "key", "secret", "token",
    "access", "clientsecret", "dbpassword", "digest", "pin", "length", "card", "number", "x",
]  # fmt: skip


def _has_jwt_reference(text: str) -> bool:
    for match in lint._JWT.finditer(text):
        start = match.start()
        if start and text[start - 1] in lint._B64URL:
            continue
        candidate = match.group()
        if lint._is_jose_header(candidate[: candidate.index(".")]):
            return True
    return False


def _has_email_reference(text: str) -> bool:
    for match in lint._EMAIL.finditer(text):
        if match.group(1).lower() in lint._FILE_EXTENSIONS:
            continue
        start = match.start()
        authority = text.rfind("//", 0, start)
        if authority >= 0 and not any(c in "/ \t\r\n" for c in text[authority + 2 : start]):
            continue
        return True
    return False


def _has_high_entropy_reference(text: str) -> bool:
    if "-----BEGIN CERTIFICATE-----" in text or "PUBLIC KEY-----" in text:
        return False
    return any(lint._looks_random(match.group()) for match in lint._ENTROPY_RUN.finditer(text))


def _words_reference(words: list[str]) -> bool:
    count = len(words)
    for start in range(count):
        for size in range(min(lint._MAX_SEQUENCE, count - start), 0, -1):
            end = start + size
            kind = lint._SENSITIVE_WORDS.get(tuple(words[start:end]))
            if kind is None and size == 1:
                kind = lint._suffix_kind(words[start])
            if kind is None:
                continue
            if any(word in lint._FLAG_WORDS for word in words[:start]):
                continue
            after = words[end:]
            if any(word in lint._META_WORDS for word in after):
                continue
            if kind == lint._RANDOM and any(word in lint._DIGEST_WORDS for word in after):
                continue
            return True
    return False


@PROFILE
@given(st.lists(st.sampled_from(LINT_ATOMS), max_size=30).map("".join))
def test_value_scanners_agree_with_the_reference(text: str) -> None:
    assert lint._has_jwt(text) == _has_jwt_reference(text)
    assert lint._has_email(text) == _has_email_reference(text)
    assert lint._has_high_entropy(text) == _has_high_entropy_reference(text)


@PROFILE
@given(st.lists(st.sampled_from(WORDS), max_size=10))
def test_word_sequences_agree_with_the_reference(words: list[str]) -> None:
    assert lint._words_are_sensitive(words) == _words_reference(words)


@PROFILE
@given(
    st.dictionaries(
        st.sampled_from(["a", "b~/c", "password", "x" * 70]),
        st.recursive(
            st.sampled_from(["x@y.io", "secret", 1, None]),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["k", "pwd", "i/d"]), inner, max_size=3)
            ),
            max_leaves=12,
        ),
        max_size=4,
    ),
)
def test_first_finding_is_the_first_of_all_findings(claims: dict[str, Any]) -> None:
    assert lint.first_finding(claims) == next(iter(lint_claims(claims)), None)
    assert lint.first_finding(claims, skip={"a"}) == next(
        iter(lint_claims(claims, skip={"a"})), None
    )
