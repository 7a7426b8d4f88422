"""Verifier: configuration is explicit, claims are checked exactly, the clock is injected."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from jwtwarden import CachingVerifier, Claims, Issuer, Key, KeySet, Verifier, errors
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.testing import FakeClock
from tests.conftest import AUD, ISS, NOW, keyset_for

Pair = Callable[..., tuple[Issuer, Verifier]]


def signed(payload: dict[str, Any], header: dict[str, Any] | None = None, alg: str = "ES256") -> str:
    key = next(iter(keyset_for(alg)))
    head = b64url_encode(json.dumps(header or {"alg": alg, "kid": key.kid}).encode())
    body = b64url_encode(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url_encode(key.sign(f'{head}.{body}'.encode()))}"


def base_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "u1", "exp": NOW + 600, "iat": NOW}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def verifier(clock: FakeClock) -> Verifier:
    return Verifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD, algorithms=["ES256"], clock=clock)


def code_of(verifier: Verifier, token: str) -> str:
    with pytest.raises(errors.JWTError) as info:
        verifier.verify(token)
    return info.value.code


# ---- configuration -------------------------------------------------------------------------


def test_the_algorithm_allowlist_has_no_default() -> None:
    with pytest.raises(TypeError):
        Verifier(keyset_for("ES256"), issuer=ISS, audience=AUD)  # type: ignore[call-arg]
    empties: list[Any] = [[], ()]
    for empty in empties:
        with pytest.raises(ValueError, match="allowlist"):
            Verifier(keyset_for("ES256"), issuer=ISS, audience=AUD, algorithms=empty)


def test_a_bare_string_is_not_an_allowlist() -> None:
    with pytest.raises(ValueError, match="list"):
        Verifier(keyset_for("ES256"), issuer=ISS, audience=AUD, algorithms="ES256")


def test_issuer_and_audience_are_required() -> None:
    with pytest.raises(TypeError):
        Verifier(keyset_for("ES256"), algorithms=["ES256"])  # type: ignore[call-arg]
    bad_values: list[Any] = ["", [], [""], [1]]
    for bad in bad_values:
        with pytest.raises(ValueError, match="issuer"):
            Verifier(keyset_for("ES256"), issuer=bad, audience=AUD, algorithms=["ES256"])
        with pytest.raises(ValueError, match="audience"):
            Verifier(keyset_for("ES256"), issuer=ISS, audience=bad, algorithms=["ES256"])


def test_a_key_set_without_a_key_for_the_allowlist_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no key"):
        Verifier(keyset_for("ES256"), issuer=ISS, audience=AUD, algorithms=["RS256"])


@pytest.mark.parametrize("leeway", [-1, 301, 3600])
def test_leeway_is_bounded(leeway: float) -> None:
    with pytest.raises(ValueError, match="leeway"):
        Verifier(keyset_for("ES256"), issuer=ISS, audience=AUD, algorithms=["ES256"], leeway=leeway)


def test_the_default_leeway_is_thirty_seconds(verifier: Verifier) -> None:
    assert verifier.leeway == 30.0


# ---- claims ----------------------------------------------------------------------------------


def test_a_valid_token_gives_immutable_claims(make_pair: Pair) -> None:
    issuer, verifier = make_pair("ES256")
    claims = verifier.verify(issuer.issue("u1", {"role": "user", "scope": "read write"}))
    assert isinstance(claims, Claims)
    assert claims.sub == "u1" and claims.iss == ISS and claims.aud == (AUD,)
    assert claims["role"] == "user" and claims.scopes == {"read", "write"}
    assert claims.exp - claims.iat == 900  # type: ignore[operator]
    with pytest.raises(TypeError):
        claims["role"] = "admin"  # type: ignore[index]
    with pytest.raises(AttributeError):
        claims.sub = "u2"  # type: ignore[misc]
    copy = claims.to_dict()
    copy["role"] = "admin"
    assert claims["role"] == "user"


def test_bytes_tokens_are_accepted(make_pair: Pair) -> None:
    issuer, verifier = make_pair("ES256")
    assert verifier.verify(issuer.issue("u1").encode()).sub == "u1"


def test_token_expires_at_exp_plus_leeway(make_pair: Pair, clock: FakeClock) -> None:
    issuer, verifier = make_pair("HS256")
    token = issuer.issue("u1")
    clock.advance(900 + 29)
    assert verifier.verify(token).sub == "u1"
    clock.advance(1)
    assert code_of(verifier, token) == "expired"


def test_expired_error_names_the_claim(make_pair: Pair, clock: FakeClock) -> None:
    issuer, verifier = make_pair("HS256")
    token = issuer.issue("u1")
    clock.advance(3600)
    with pytest.raises(errors.Expired) as info:
        verifier.verify(token)
    assert info.value.claim == "exp"
    assert isinstance(info.value, errors.ClaimError)


def test_zero_leeway_is_exact(clock: FakeClock) -> None:
    verifier = Verifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                        clock=clock, leeway=0)
    token = signed(base_claims(exp=NOW + 10))
    clock.set(NOW + 9.5)
    verifier.verify(token)
    clock.set(NOW + 10)
    assert code_of(verifier, token) == "expired"


def test_not_before_is_honoured_with_leeway(verifier: Verifier, clock: FakeClock) -> None:
    token = signed(base_claims(nbf=NOW + 100))
    assert code_of(verifier, token) == "not_yet_valid"
    clock.advance(70)
    assert verifier.verify(token).nbf == NOW + 100


def test_issued_in_the_future_beyond_leeway_is_refused(verifier: Verifier) -> None:
    assert code_of(verifier, signed(base_claims(iat=NOW + 31))) == "issued_in_future"
    assert verifier.verify(signed(base_claims(iat=NOW + 30))).iat == NOW + 30


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "1"), ("exp", True), ("exp", None), ("nbf", "0"), ("nbf", False), ("iat", [NOW]),
     ("iss", 1), ("iss", None), ("iss", [ISS]), ("aud", 1), ("aud", {"a": AUD}), ("aud", [AUD, 1]),
     ("aud", None), ("sub", 1), ("sub", None), ("jti", 5), ("jti", ["a"])],
)
def test_registered_claims_of_the_wrong_type_are_malformed(verifier: Verifier, claim: str, value: Any) -> None:
    payload = base_claims()
    payload[claim] = value  # explicit JSON null counts as the wrong type, not as absent
    with pytest.raises(errors.MalformedClaim) as info:
        verifier.verify(signed(payload))
    assert info.value.code == "malformed" and info.value.claim == claim


@pytest.mark.parametrize("claim", ["exp", "iss", "aud"])
def test_exp_iss_and_aud_are_always_required(verifier: Verifier, claim: str) -> None:
    payload = base_claims()
    del payload[claim]
    with pytest.raises(errors.MissingClaim) as info:
        verifier.verify(signed(payload))
    assert info.value.claim == claim


def test_more_claims_can_be_required(clock: FakeClock) -> None:
    verifier = Verifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                        clock=clock, required_claims=["jti", "sid"])
    assert code_of(verifier, signed(base_claims())) == "missing_claim"
    assert verifier.verify(signed(base_claims(jti="j", sid="s"))).sid == "s"


def test_huge_numbers_are_handled_without_overflow(verifier: Verifier) -> None:
    assert verifier.verify(signed(base_claims(exp=10**300))).exp == 10**300
    assert code_of(verifier, signed(base_claims(exp=-(10**300)))) == "expired"
    assert code_of(verifier, signed(base_claims(nbf=10**300))) == "not_yet_valid"


def test_issuer_must_match_exactly_one_of_several(clock: FakeClock) -> None:
    verifier = Verifier(keyset_for("ES256").public(), issuer=[ISS, "https://old.example.com"],
                        audience=AUD, algorithms=["ES256"], clock=clock)
    assert verifier.verify(signed(base_claims(iss="https://old.example.com"))).iss == "https://old.example.com"
    assert code_of(verifier, signed(base_claims(iss="https://old.example.co"))) == "bad_issuer"


def test_audience_may_be_a_list_containing_ours(verifier: Verifier) -> None:
    assert verifier.verify(signed(base_claims(aud=["other", AUD]))).aud == ("other", AUD)
    assert code_of(verifier, signed(base_claims(aud=["other"]))) == "bad_audience"
    assert code_of(verifier, signed(base_claims(aud=[]))) == "bad_audience"


def test_typ_is_compared_as_a_media_type(clock: FakeClock) -> None:
    verifier = Verifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                        clock=clock, typ="at+jwt")
    kid = next(iter(keyset_for("ES256"))).kid
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt"):
        verifier.verify(signed(base_claims(), {"alg": "ES256", "kid": kid, "typ": typ}))
    for header in ({"alg": "ES256", "kid": kid, "typ": "JWT"}, {"alg": "ES256", "kid": kid}):
        assert code_of(verifier, signed(base_claims(), header)) == "bad_type"


# ---- key selection -------------------------------------------------------------------------


def test_unknown_kid_is_refused(verifier: Verifier) -> None:
    assert code_of(verifier, signed(base_claims(), {"alg": "ES256", "kid": "nope"})) == "unknown_key"


def test_token_without_kid_is_accepted_when_exactly_one_key_fits(verifier: Verifier) -> None:
    assert verifier.verify(signed(base_claims(), {"alg": "ES256"})).sub == "u1"


def test_token_without_kid_is_refused_when_several_keys_fit(clock: FakeClock) -> None:
    keys = keyset_for("ES256").public() + KeySet([Key.generate("ES256").public()])
    verifier = Verifier(keys, issuer=ISS, audience=AUD, algorithms=["ES256"], clock=clock)
    assert code_of(verifier, signed(base_claims(), {"alg": "ES256"})) == "unknown_key"


def test_keys_outside_the_allowlist_are_never_used(clock: FakeClock) -> None:
    keys = keyset_for("ES256").public() + keyset_for("ES384").public()
    verifier = Verifier(keys, issuer=ISS, audience=AUD, algorithms=["ES256"], clock=clock)
    token = signed(base_claims(), alg="ES384")
    assert code_of(verifier, token) == "alg_not_allowed"


def test_header_cache_does_not_outlive_a_verifier_and_stays_bounded(clock: FakeClock) -> None:
    verifier = Verifier(keyset_for("HS256"), issuer=ISS, audience=AUD, algorithms=["HS256"], clock=clock)
    kid = next(iter(keyset_for("HS256"))).kid
    for i in range(600):
        verifier.verify(signed(base_claims(), {"alg": "HS256", "kid": kid, "n": i}, alg="HS256"))
    assert len(verifier._header_cache) <= 256


def test_a_cached_header_still_gets_its_signature_checked(verifier: Verifier) -> None:
    good = signed(base_claims())
    verifier.verify(good)
    head, _, signature = good.split(".")
    forged_body = b64url_encode(json.dumps(base_claims(sub="admin")).encode())
    assert code_of(verifier, f"{head}.{forged_body}.{signature}") == "bad_signature"


def test_verify_signature_returns_header_payload_and_key(verifier: Verifier) -> None:
    result = verifier.verify_signature(signed(base_claims()))
    assert result.header["alg"] == "ES256"
    assert json.loads(result.payload)["sub"] == "u1"
    assert result.key.kid == next(iter(keyset_for("ES256"))).kid


# ---- the algorithm is the key's, never the token's (issue #17) --------------------------------


@pytest.mark.parametrize(("signed_with", "header_says"), [("ES384", "ES256"), ("RS256", "PS256"),
                                                          ("PS256", "RS256"), ("ES256", "ES384")])
def test_a_token_whose_header_names_another_allowed_alg_than_its_keys_is_refused(
    clock: FakeClock, signed_with: str, header_says: str,
) -> None:
    """Both algorithms allowed, both keys in the set: the header's ``alg`` names the wrong
    one for the key its ``kid`` selects. The signature itself is good for that key, so only
    the binding of the algorithm to the key refuses it (no vectors needed)."""
    key = next(iter(keyset_for(signed_with)))
    other = next(iter(keyset_for(header_says)))
    keys = KeySet([key.public(), other.public()])
    verifier = Verifier(keys, issuer=ISS, audience=AUD, algorithms=[signed_with, header_says],
                        clock=clock)
    token = signed(base_claims(), {"alg": header_says, "kid": key.kid}, alg=signed_with)
    with pytest.raises(errors.AlgorithmNotAllowed) as refused:
        verifier.verify(token)
    assert refused.value.code == "alg_not_allowed"
    with pytest.raises(errors.AlgorithmNotAllowed):
        verifier.verify_signature(token)
    honest = signed(base_claims(), {"alg": signed_with, "kid": key.kid}, alg=signed_with)
    assert verifier.verify(honest)["sub"] == "u1"


# ---- configuration edges and the caching verifier (issue #17: survivors of scripts/mutate) ----


def test_configuration_edges_are_exact(clock: FakeClock) -> None:
    keys = keyset_for("ES256").public()
    options: dict[str, Any] = {"issuer": ISS, "audience": AUD, "algorithms": ["ES256"], "clock": clock}
    Verifier(keys, max_token_size=64, leeway=300, **options)  # the smallest size, the largest leeway
    for bad in ({"max_token_size": 63}, {"typ": ""}, {"typ": 7}, {"required_claims": [1]},
                {"required_claims": "sub"}):
        with pytest.raises(ValueError):  # noqa: PT011 - each is its own configuration error
            Verifier(keys, **bad, **options)


def test_max_token_size_applies_to_every_entry_point(clock: FakeClock) -> None:
    token = signed(base_claims(pad="x" * 300))
    verifier = Verifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                        clock=clock, max_token_size=len(token) - 1)
    for form in (token, token.encode()):
        with pytest.raises(errors.TokenTooLarge):
            verifier.verify(form)
        with pytest.raises(errors.TokenTooLarge):
            verifier.verify_signature(form)
    exact = Verifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                     clock=clock, max_token_size=len(token))
    assert exact.verify(token)["pad"] == "x" * 300


def test_an_allowed_alg_without_a_key_and_without_kid_is_an_unknown_key(clock: FakeClock) -> None:
    verifier = Verifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD,
                        algorithms=["ES256", "ES384"], clock=clock)
    token = signed(base_claims(), {"alg": "ES384"}, alg="ES384")
    assert code_of(verifier, token) == "unknown_key"


def caching(clock: FakeClock, **options: Any) -> CachingVerifier:
    return CachingVerifier(keyset_for("ES256").public(), issuer=ISS, audience=AUD,
                           algorithms=["ES256"], clock=clock, **options)


def test_the_caching_verifier_checks_every_claim_again_on_every_call(clock: FakeClock) -> None:
    verifier = caching(clock)
    token = signed(base_claims(exp=NOW + 100, nbf=NOW - 10))
    assert verifier.verify(token)["sub"] == "u1"
    assert verifier.verify(token)["sub"] == "u1"  # from the cache
    clock.advance(100 + 30)  # exp plus the default leeway
    with pytest.raises(errors.Expired):
        verifier.verify(token)


def test_the_caching_verifier_matches_only_the_same_bytes(clock: FakeClock) -> None:
    verifier = caching(clock)
    token = signed(base_claims())
    verifier.verify(token)
    head, _, sig = token.split(".")
    forged = f"{head}.{b64url_encode(json.dumps(base_claims(sub='admin')).encode())}.{sig}"
    with pytest.raises(errors.BadSignature):
        verifier.verify(forged)
    with pytest.raises(errors.MalformedToken):
        verifier.verify(token + "\u00e9")
    assert verifier.verify(token.encode())["sub"] == "u1"


def test_each_caller_of_the_caching_verifier_gets_its_own_claims(clock: FakeClock) -> None:
    verifier = caching(clock)
    for claims in (base_claims(roles=["a"]), base_claims(role="a")):
        token = signed(claims)
        first = verifier.verify(token)
        if "roles" in first:
            first["roles"].append("admin")  # a caller changing a list it was given
        copied = first.to_dict()
        copied["sub"] = "changed"
        again = verifier.verify(token)
        assert again["sub"] == "u1" and again.to_dict() == claims


@pytest.mark.parametrize("size", [0, 1, 2])
def test_the_caching_verifier_is_correct_at_any_cache_size(clock: FakeClock, size: int) -> None:
    verifier = caching(clock, cache_size=size)
    tokens = [signed(base_claims(sub=f"u{i}", exp=NOW + 60 * (i + 1))) for i in range(3)]
    for _ in range(2):
        assert [verifier.verify(t)["sub"] for t in tokens] == ["u0", "u1", "u2"]
    clock.advance(60 + 31)
    with pytest.raises(errors.Expired):
        verifier.verify(tokens[0])
    assert verifier.verify(tokens[1])["sub"] == "u1"


@pytest.mark.parametrize("size", [-1, True, 1.5, "8"])
def test_the_caching_verifier_refuses_a_cache_size_that_is_not_a_count(clock: FakeClock, size: Any) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        caching(clock, cache_size=size)
