"""Issue #11 item 6 at the core: whatever ``Issuer`` signs, ``Verifier`` accepts.

The service gets this from the library, so library users get it too: claims the strict
parser would refuse (too deep, lone surrogates, member names that are not strings) and
tokens over the verifier's size limit are refused at issuance with a ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from jwtwarden import Issuer, Verifier
from jwtwarden.errors import JWTError, SensitiveClaim
from jwtwarden.jose.strict_json import MAX_DEPTH
from tests.conftest import AUD, ISS, keyset_for

KEYS = keyset_for("ES256")
ISSUER = Issuer(KEYS, issuer=ISS, audience=AUD)
VERIFIER = Verifier(KEYS.public(), issuer=ISS, audience=AUD, algorithms=["ES256"])


def nested(depth: int, leaf: Any = 1) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def test_claims_nested_to_the_limit_verify_and_one_more_level_is_refused() -> None:
    deepest = nested(MAX_DEPTH - 1)  # the payload object is level 1
    assert VERIFIER.verify(ISSUER.issue("u", {"c": deepest}))["c"] == deepest
    with pytest.raises(ValueError, match="nested deeper than 15 levels"):
        ISSUER.issue("u", {"c": nested(MAX_DEPTH)})


@pytest.mark.parametrize("claims", [
    {"c": "\ud800"}, {"\udc00": 1}, {"c": {"k\ud800": 1}}, {"c": ["x", ["\udfff"]]},
], ids=["value", "name", "nested-name", "nested-value"])
def test_a_lone_surrogate_anywhere_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        ISSUER.issue("u", claims)


@pytest.mark.parametrize("claims", [{1: "a", "1": "b"}, {"c": {True: 1, "true": 2}}, {"c": {None: 1}}])
def test_member_names_that_are_not_strings_are_refused(claims: dict[Any, Any]) -> None:
    # json.dumps would write 1 and "1" both as "1": a duplicate member no verifier accepts
    with pytest.raises(ValueError, match="must be strings"):
        ISSUER.issue("u", claims)


def test_a_subject_or_audience_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        ISSUER.issue("\ud800")
    with pytest.raises(ValueError, match="UTF-8"):
        ISSUER.issue("u", audience="api\udfff")


def test_the_token_size_limit_is_the_verifiers() -> None:
    big = {"c": "x" * 5800}
    token = ISSUER.issue("u", big)
    assert len(token) <= 8192 and VERIFIER.verify(token)["c"] == big["c"]
    with pytest.raises(ValueError, match="over the 8192 a verifier accepts"):
        ISSUER.issue("u", {"c": "x" * 6200})
    small = Issuer(KEYS, issuer=ISS, audience=AUD, max_token_size=1024)
    with pytest.raises(ValueError, match="over the 1024"):
        small.issue("u", {"c": "x" * 800})


def test_a_self_referencing_claim_is_refused_not_a_crash() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested deeper"):
        ISSUER.issue("u", {"c": loop})


_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=10)  # surrogates too
_names = st.one_of(_text, st.integers(0, 3), st.booleans(), st.none())
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text,
              st.text(st.sampled_from("xyz "), min_size=1000, max_size=4000)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(_names, inner, max_size=3)),
    max_leaves=20)


@hypothesis_settings(max_examples=400, deadline=None)
@given(claims=st.one_of(st.dictionaries(_names, _json, max_size=5),
                        st.integers(0, 20).map(lambda d: {"deep": nested(d)})))
def test_whatever_the_issuer_signs_the_verifier_accepts(claims: dict[Any, Any]) -> None:
    try:
        token = ISSUER.issue("subject", claims, allow_sensitive=[k for k in claims if isinstance(k, str)])
    except (ValueError, SensitiveClaim):
        return  # refused at issuance: fine, nothing was signed
    try:
        VERIFIER.verify(token)
    except JWTError as error:  # pragma: no cover - the failure this test exists to catch
        pytest.fail(f"issued a token the verifier refuses: {error.code}: {error.message}")
