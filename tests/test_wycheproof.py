"""Project Wycheproof JSON Web Signature vectors (C2SP/wycheproof, Apache-2.0).

The vectors are read from ``<workspace>/shared/vectors/wycheproof_jws.json``, outside this
repository, and are never copied into it; the module is skipped when the file is absent, and
fails instead under ``JWTWARDEN_REQUIRE_SERVICES=1`` (CI, where ``../shared`` is always there).

For each group the key is loaded with :meth:`Key.from_jwk`. Keys that jwtwarden refuses by
design (an encryption key, a too-small RSA key) must raise the expected
:class:`~jwtwarden.errors.BadKey`, and then every test of the group counts as invalid:
nothing can be verified with a key that cannot be loaded. Every verifier allows all 13
algorithms, so that algorithm confusion is stopped by the key binding, not by a narrow
allowlist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jwtwarden import JWSVerifier, Key, KeySet
from jwtwarden.errors import BadKey, InvalidKey, JWTError, WeakKey
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.jose.b64 import b64url_decode
from tests.conftest import REQUIRE_SERVICES

WYCHEPROOF = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "wycheproof_jws.json"

if not WYCHEPROOF.is_file():
    if REQUIRE_SERVICES:  # CI has ../shared: missing vectors there are a failure, not a skip
        pytest.fail(f"Wycheproof vectors not found at {WYCHEPROOF}", pytrace=False)
    pytest.skip(f"Wycheproof vectors not found at {WYCHEPROOF}", allow_module_level=True)

DATA: dict[str, Any] = json.loads(WYCHEPROOF.read_text(encoding="utf-8"))

# Expectations that differ from the upstream "result" label, per the file's "notes".
LABEL_OVERRIDES: dict[int, str] = {
    # Upstream labels these "invalid" ("padding lost"), but their jws is byte for byte the
    # jws of valid tcId 357: once padding is stripped there is nothing left to reject.
    367: "valid",
    370: "valid",
    # Upstream labels these "valid", but they insert '?' into the header or payload segment.
    # RFC 7515 section 5.2 requires the segments to be base64url, and section 7.1 computes
    # the signature over the segments as sent; a conforming verifier rejects them.
    372: "invalid",
    373: "invalid",
}

# Tests whose reason for rejection jwtwarden names with a specific code.
EXPECTED_CODES: dict[int, str] = {
    16: "alg_not_allowed",  # alg "none"
    31: "alg_not_allowed",  # HS256 token against an EC key (symmetric/asymmetric confusion)
    32: "unsupported_header",  # attacker's key embedded in the "jwk" header
    341: "alg_not_allowed",  # alg "none"
    342: "alg_not_allowed",  # alg "NONE"
    343: "alg_not_allowed",  # alg "none" with kid "none"
    344: "alg_not_allowed",  # alg "none" with the genuine key's kid
    372: "malformed",  # '?' in the header segment
}

ALL_ALGS = list(ALGORITHMS)
RSA_MIN_BITS = 2048


def _header_alg(jws: str) -> str | None:
    """The ``alg`` named by a compact JWS header, or ``None`` if there is none to read."""
    try:
        header = json.loads(b64url_decode(jws.split(".")[0]))
    except (ValueError, JWTError):
        return None
    alg = header.get("alg") if isinstance(header, dict) else None
    return alg if isinstance(alg, str) else None


def expected_key_error(jwk: dict[str, Any]) -> type[BadKey] | None:
    """The error jwtwarden must raise for a group key it refuses by design, else ``None``."""
    if jwk.get("use", "sig") != "sig":
        return InvalidKey  # an encryption key is never a verification key
    if "key_ops" in jwk and not {"sign", "verify"} & set(jwk["key_ops"]):
        return InvalidKey  # its key_ops allow neither signing nor verification
    if jwk.get("kty") == "RSA" and len(b64url_decode(jwk["n"]).lstrip(b"\0")) * 8 < RSA_MIN_BITS:
        return WeakKey
    return None


def load_key(jwk: dict[str, Any], test: dict[str, Any]) -> Key:
    # The encryption-key groups carry no "alg"; bind them to the algorithm their token
    # names, so that what refuses them is their "use"/"key_ops", not the missing "alg".
    alg = None if "alg" in jwk else _header_alg(test["jws"])
    return Key.from_jwk(jwk, alg=alg)


def expected_result(test: dict[str, Any]) -> str:
    return str(LABEL_OVERRIDES.get(test["tcId"], test["result"]))


def _cases(kind: str) -> list[Any]:
    """Parameters for one kind of case: ``refused_key``, ``valid`` or ``invalid``."""
    params = []
    for group in DATA["groups"]:
        for test in group["tests"]:
            if expected_key_error(group["key"]) is not None:
                case_kind = "refused_key"
            else:
                case_kind = expected_result(test)
            if case_kind == kind:
                params.append(
                    pytest.param(group["key"], test, id=f"tc{test['tcId']}-{test['comment']}")
                )
    return params


def test_the_notes_name_the_overridden_cases() -> None:
    # The overrides above restate the file's notes; a new file with other notes needs review.
    notes = " ".join(DATA["notes"])
    for tc_id in LABEL_OVERRIDES:
        assert f"{tc_id}" in notes
    labels = {t["tcId"]: t["result"] for g in DATA["groups"] for t in g["tests"]}
    assert {tc: labels[tc] for tc in LABEL_OVERRIDES} == {
        367: "invalid", 370: "invalid", 372: "valid", 373: "valid",
    }


def test_the_valid_labelled_invalid_cases_repeat_tc357() -> None:
    jws = {t["tcId"]: t["jws"] for g in DATA["groups"] for t in g["tests"]}
    assert jws[367] == jws[357]
    assert jws[370] == jws[357]


def test_every_case_is_collected_once() -> None:
    total = sum(len(g["tests"]) for g in DATA["groups"])
    kinds = [_cases(kind) for kind in ("refused_key", "valid", "invalid")]
    assert all(kinds)
    assert sum(map(len, kinds)) == total


@pytest.mark.parametrize(("jwk", "test"), _cases("valid"))
def test_valid_case_verifies(jwk: dict[str, Any], test: dict[str, Any]) -> None:
    verifier = JWSVerifier(KeySet([load_key(jwk, test)]), algorithms=ALL_ALGS)
    verified = verifier.verify_signature(test["jws"])
    assert verified.payload == b64url_decode(test["jws"].split(".")[1])


@pytest.mark.parametrize(("jwk", "test"), _cases("invalid"))
def test_invalid_case_is_rejected_with_a_jwt_error(
    jwk: dict[str, Any], test: dict[str, Any]
) -> None:
    verifier = JWSVerifier(KeySet([load_key(jwk, test)]), algorithms=ALL_ALGS)
    # pytest.raises(JWTError) lets any other exception escape and fail the test.
    with pytest.raises(JWTError) as caught:
        verifier.verify_signature(test["jws"])
    if test["tcId"] in EXPECTED_CODES:
        assert caught.value.code == EXPECTED_CODES[test["tcId"]]


@pytest.mark.parametrize(("jwk", "test"), _cases("refused_key"))
def test_group_key_refused_by_design_cannot_be_loaded(
    jwk: dict[str, Any], test: dict[str, Any]
) -> None:
    # Without a key nothing verifies: every test of such a group must be an invalid one.
    assert expected_result(test) == "invalid"
    key_error = expected_key_error(jwk)
    assert key_error is not None
    with pytest.raises(key_error):
        load_key(jwk, test)
