"""The debugger's JavaScript engine (audit.js) costs time linear in the token (issue #16 F1).

The page audits whatever is pasted into it, in the user's tab: a hostile token must not
freeze it. Each worst input of F1 (and an ordinary token of the same size) is audited under
node at two sizes 8x apart: a linear engine costs ~8x more on the larger, a quadratic one
~64x. Without node (20 or later) these skip, except with ``JWTWARDEN_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from jwtwarden.audit.debugger import ASSET_DIR
from jwtwarden.jose.b64 import b64url_encode
from tests.test_client_browser_node import node

# Loads audit.js (it sets globalThis.JwtwardenAudit), then times audit() on each token:
# CPU time of this process for each token of a group, best of the group after its first
# (warm-up) token. The tokens of a group differ (the engine caches claim names).
TIMER = """
require(process.argv[1]);
const tokens = JSON.parse(require("fs").readFileSync(0, "utf8"));
const cost = (t) => {
  const u = process.cpuUsage();
  globalThis.JwtwardenAudit.audit(t, {now: 0});
  const d = process.cpuUsage(u);
  return d.user + d.system;
};
console.log(JSON.stringify(tokens.map((group) => group.map(cost).slice(1).reduce((a, b) => Math.min(a, b)))));
"""

HEADER = '{"alg":"HS256"}'


def token(header: str, payload: str) -> str:
    return ".".join(b64url_encode(part.encode()) for part in (header, payload, "sig"))


def value(text: str) -> str:
    return json.dumps({"v": text})


# name -> (token number i of size n, n of the larger size); the smaller sizes of the header,
# the larger sizes of the others are F1's inputs
WORST: dict[str, tuple[Callable[[int, int], str], int]] = {
    "unclosed string in the header":
        (lambda n, i: token('{"a":' + "[" * 17 + '"' + f"{i}" + '\\"' * n, "{}"), 8 * 2900),
    "eyeyey... value": (lambda n, i: token(HEADER, value(f"{i} " + "ey" * n + ".")), 32768),
    "e-mails after a URL": (lambda n, i: token(HEADER, value(f"{i} https://" + "a@bb.io," * n)), 8192),
    "long neutralised claim name":
        (lambda n, i: token(HEADER, json.dumps({f"x{i}_" + "password_" * n + "id": 1})), 7281),
}  # fmt: skip
RUNS = 4


def ordinary(size: int, i: int) -> str:
    words = ("the quick brown fox jumps over the lazy dog " * (size // 44 + 1))[: size * 3 // 4]
    return token(HEADER, json.dumps({"sub": f"u{i}", "note": words, "name": "x" * 40}))


def costs(tokens: list[list[str]]) -> list[int]:
    run = subprocess.run([node(), "-e", TIMER, str(ASSET_DIR / "audit.js")], input=json.dumps(tokens),
                         capture_output=True, text=True, check=True, timeout=600)  # fmt: skip
    result: list[int] = json.loads(run.stdout)
    return result


@pytest.mark.parametrize("name", list(WORST))
def test_the_debugger_audits_a_hostile_token_in_linear_time(name: str) -> None:
    build, large = WORST[name]
    size = len(build(large, 0))
    small, big, usual = costs([[build(large // 8, i) for i in range(RUNS)], [build(large, i) for i in range(RUNS)],
                               [ordinary(size, i) for i in range(RUNS)]])  # fmt: skip
    ratio = big / max(small, 1)
    print(f"{name}: {size} chars, {small} us -> {big} us (x{ratio:.1f}); ordinary: {usual} us")
    # linear ~8, quadratic ~64; the ordinary token of the same size is there for scale
    assert ratio < 20, (name, f"{small} us -> {big} us (x{ratio:.1f}); ordinary token: {usual} us")
