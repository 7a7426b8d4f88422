"""DPoP proofs (RFC 9449) in the core: known answers, every check, replay stores, nonces,
and the plain Verifier's refusal of bound tokens."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from jwtwarden import Issuer, Key, KeySet, Verifier
from jwtwarden.dpop import (
    DPoPNonces,
    DPoPVerifier,
    MemoryReplayStore,
    access_token_hash,
    create_proof,
    decode_proof,
    normalize_htu,
    replay_key,
)
from jwtwarden.errors import (
    DPoPReplayUnavailable,
    InvalidDPoPProof,
    MissingClaim,
    SenderConstrained,
    UseDPoPNonce,
)
from jwtwarden.jose.jwk import thumbprint
from jwtwarden.testing import FakeClock
from tests.conftest import AUD, ISS, NOW
from tests.dpop_corpus import PROOF_CASES, RESOURCE_PROOF_CASES, Ctx, ProofCase

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc9449_dpop.json").read_text())
URL = "https://api.example.com/items"
KEY = Key.generate("ES256")
OTHER = Key.generate("ES256")


def verifier(clock: FakeClock, **options: Any) -> DPoPVerifier:
    return DPoPVerifier(clock=clock, **options)


# ---- known answers (RFC 9449's examples) -------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["proofs"], ids=lambda v: v["section"])
def test_rfc9449_example_proofs_verify(vector: dict[str, Any]) -> None:
    clock = FakeClock(vector["iat"])
    proof = verifier(clock).verify(vector["proof"], method=vector["method"], url=vector["url"],
                                   access_token=vector.get("access_token"), jkt=VECTORS["jkt"])
    assert proof.jkt == VECTORS["jkt"]
    assert proof.jti == vector["jti"]
    assert proof.ath == vector.get("ath")


def test_rfc9449_thumbprint_and_ath() -> None:
    assert thumbprint(VECTORS["jwk"]) == VECTORS["jkt"]
    resource = VECTORS["proofs"][2]
    assert access_token_hash(resource["access_token"]) == resource["ath"]


def test_rfc9449_example_is_refused_out_of_its_window_and_on_another_url() -> None:
    vector = VECTORS["proofs"][0]
    with pytest.raises(InvalidDPoPProof) as stale:
        verifier(FakeClock(vector["iat"] + 61)).verify(vector["proof"], method="POST", url=vector["url"])
    assert stale.value.reason == "stale"
    with pytest.raises(InvalidDPoPProof) as other:
        verifier(FakeClock(vector["iat"])).verify(vector["proof"], method="POST",
                                                  url="https://server.example.com/token2")
    assert other.value.reason == "bad_htu"


# ---- the negative corpus, against the core verifier ---------------------------------------------


def _ctx(clock: FakeClock) -> Ctx:
    return Ctx(key=KEY, other=OTHER, token="header.payload.signature", method="GET", url=URL, now=clock())


@pytest.mark.parametrize("case", PROOF_CASES + RESOURCE_PROOF_CASES, ids=lambda c: c.name)
def test_corpus_proof_is_refused(case: ProofCase) -> None:
    clock = FakeClock(NOW)
    ctx = _ctx(clock)
    with pytest.raises(InvalidDPoPProof) as refused:
        verifier(clock).verify(case.build(ctx), method="GET", url=URL, access_token=ctx.token,
                               jkt=KEY.thumbprint())
    assert refused.value.reason == case.reason, case.cite
    assert refused.value.code == "invalid_dpop_proof"


def test_corpus_is_large_enough_and_cited() -> None:
    cases = PROOF_CASES + RESOURCE_PROOF_CASES
    assert len(cases) >= 40
    assert all(case.cite for case in cases)
    assert len({case.name for case in cases}) == len(cases)


def test_a_good_proof_passes_and_names_its_key() -> None:
    clock = FakeClock(NOW)
    token = "header.payload.signature"
    proof = create_proof(KEY, "GET", URL + "?page=2#top", access_token=token, clock=clock)
    result = verifier(clock).verify([proof], method="GET", url=URL, access_token=token,
                                    jkt=KEY.thumbprint())
    assert result.jkt == KEY.thumbprint()
    assert result.htm == "GET"
    assert result.ath == access_token_hash(token)
    header, claims = decode_proof(proof)
    assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
    assert claims["htu"] == URL  # query and fragment are never in a proof


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_both_default_algorithms_verify(alg: str) -> None:
    clock = FakeClock(NOW)
    key = Key.generate(alg)
    assert verifier(clock).verify(create_proof(key, "POST", URL, clock=clock), method="POST",
                                  url=URL).alg == alg


def test_the_allowlist_can_be_widened_to_rsa_but_never_to_hmac_or_none() -> None:
    clock = FakeClock(NOW)
    rsa = Key.generate("PS256")
    wide = verifier(clock, algorithms=["ES256", "PS256"])
    assert wide.verify(create_proof(rsa, "GET", URL, clock=clock), method="GET", url=URL).alg == "PS256"
    for bad in (["HS256"], ["none"], [], "ES256"):
        with pytest.raises(ValueError, match=r"algorithm|list"):
            DPoPVerifier(algorithms=bad)


def test_the_iat_window_is_60_s_past_and_5_s_future_by_default() -> None:
    clock = FakeClock(NOW)
    dpop = verifier(clock, replay=None)
    for iat in (NOW - 60, NOW + 5):
        dpop.verify(create_proof(KEY, "GET", URL, iat=iat), method="GET", url=URL)
    for iat, reason in ((NOW - 61, "stale"), (NOW + 6, "future")):
        with pytest.raises(InvalidDPoPProof) as refused:
            dpop.verify(create_proof(KEY, "GET", URL, iat=iat), method="GET", url=URL)
        assert refused.value.reason == reason


@pytest.mark.parametrize(("htu", "request_url"), [
    ("HTTPS://API.Example.COM/items", URL),
    ("https://api.example.com:443/items", URL),
    ("https://api.example.com/%7Eme/a%2fb", "https://api.example.com/~me/a%2Fb"),
    ("https://api.example.com/a/./b/../items", "https://api.example.com/a/items"),
    ("https://api.example.com", "https://api.example.com/"),
    ("http://127.0.0.1:80/x?y=1#z", "http://127.0.0.1/x"),
    ("http://[::1]:8080/x", "http://[0:0::1]:8080/x".replace("[0:0::1]", "[::1]")),
])
def test_htu_is_compared_after_rfc3986_normalisation(htu: str, request_url: str) -> None:
    assert normalize_htu(htu) == normalize_htu(request_url)


@pytest.mark.parametrize("bad", ["/items", "ftp://x/y", "https://u@x/y", "https://x/%zz",
                                 "https://x:99999/", "https://x/ y", "https://\u00e9.example/",
                                 "https:///path", "x" * 3000])
def test_normalize_htu_refuses_what_is_no_absolute_http_url(bad: str) -> None:
    with pytest.raises(ValueError, match=r"URL|host|hex|range|[Pp]ort"):
        normalize_htu(bad)


def test_normalize_htu_is_linear_on_long_paths() -> None:
    path = "/" + "./../a/%41" * 180
    assert normalize_htu("https://x" + path).startswith("https://x/")


# ---- replay -------------------------------------------------------------------------------------


def test_a_replayed_proof_is_refused_and_the_store_keeps_only_hashes() -> None:
    clock = FakeClock(NOW)
    store = MemoryReplayStore(clock=clock)
    dpop = verifier(clock, replay=store)
    proof = create_proof(KEY, "GET", URL, clock=clock)
    result = dpop.verify(proof, method="GET", url=URL)
    with pytest.raises(InvalidDPoPProof) as replayed:
        dpop.verify(proof, method="GET", url=URL)
    assert replayed.value.reason == "replayed"
    assert list(store._entries) == [replay_key(result.jkt, result.jti)]


def test_the_same_jti_from_another_key_is_no_replay() -> None:
    clock = FakeClock(NOW)
    dpop = verifier(clock)
    dpop.verify(create_proof(KEY, "GET", URL, jti="same", clock=clock), method="GET", url=URL)
    dpop.verify(create_proof(OTHER, "GET", URL, jti="same", clock=clock), method="GET", url=URL)


def test_a_full_memory_store_fails_closed_until_entries_expire() -> None:
    clock = FakeClock(NOW)
    store = MemoryReplayStore(2, clock=clock)
    dpop = verifier(clock, replay=store)
    for _ in range(2):
        dpop.verify(create_proof(KEY, "GET", URL, clock=clock), method="GET", url=URL)
    with pytest.raises(DPoPReplayUnavailable):
        dpop.verify(create_proof(KEY, "GET", URL, clock=clock), method="GET", url=URL)
    clock.advance(67)  # the window (60 + 5 + 1 s) has passed: the old proofs are stale anyway
    dpop.verify(create_proof(KEY, "GET", URL, clock=clock), method="GET", url=URL)
    assert len(store) == 1


def test_averify_uses_an_asynchronous_store() -> None:
    class Store:
        def __init__(self) -> None:
            self.keys: set[bytes] = set()

        async def aadd(self, key: bytes, ttl: float) -> bool:
            assert ttl == 66.0
            fresh = key not in self.keys
            self.keys.add(key)
            return fresh

    clock = FakeClock(NOW)
    dpop = verifier(clock, replay=Store())
    proof = create_proof(KEY, "GET", URL, clock=clock)
    asyncio.run(dpop.averify(proof, method="GET", url=URL))
    with pytest.raises(InvalidDPoPProof, match="already used"):
        asyncio.run(dpop.averify(proof, method="GET", url=URL))
    with pytest.raises(TypeError, match="averify"):
        dpop.verify(create_proof(KEY, "GET", URL, clock=clock), method="GET", url=URL)


# ---- nonces -------------------------------------------------------------------------------------


def test_nonces_rotate_and_are_accepted_for_two_to_three_steps() -> None:
    clock = FakeClock(NOW - NOW % 60)
    nonces = DPoPNonces(b"s" * 32, clock=clock)
    first = nonces.current()
    assert nonces.check(first)
    clock.advance(60)
    assert nonces.current() != first and nonces.check(first)
    clock.advance(60)
    assert nonces.check(first)
    clock.advance(60)
    assert not nonces.check(first)
    assert not DPoPNonces(b"t" * 32, clock=clock).check(nonces.current())
    with pytest.raises(ValueError, match="32"):
        DPoPNonces(b"short")


def test_a_required_nonce_is_asked_for_then_accepted() -> None:
    clock = FakeClock(NOW)
    nonces = DPoPNonces(b"s" * 32, clock=clock)
    dpop = verifier(clock, nonces=nonces, require_nonce=True)
    with pytest.raises(UseDPoPNonce) as asked:
        dpop.verify(create_proof(KEY, "GET", URL, clock=clock), method="GET", url=URL)
    assert asked.value.code == "use_dpop_nonce" and asked.value.nonce == nonces.current()
    result = dpop.verify(create_proof(KEY, "GET", URL, nonce=asked.value.nonce, clock=clock),
                         method="GET", url=URL)
    assert result.nonce == nonces.current() and result.next_nonce is None
    with pytest.raises(UseDPoPNonce):
        dpop.verify(create_proof(KEY, "GET", URL, nonce="made-up", clock=clock), method="GET", url=URL)


def test_an_old_but_valid_nonce_passes_with_a_fresh_one_to_send_back() -> None:
    clock = FakeClock(NOW)
    nonces = DPoPNonces(b"s" * 32, clock=clock)
    old = nonces.current()
    clock.advance(60)
    result = verifier(clock, nonces=nonces).verify(
        create_proof(KEY, "GET", URL, nonce=old, clock=clock), method="GET", url=URL)
    assert result.next_nonce == nonces.current() != old


# ---- the plain Verifier and bound tokens ---------------------------------------------------------


@pytest.fixture
def bound() -> tuple[Issuer, Verifier, str]:
    keys = KeySet.generate("ES256")
    clock = FakeClock(NOW)
    issuer = Issuer(keys, issuer=ISS, audience=AUD, clock=clock)
    token = issuer.issue(subject="u1", claims={"cnf": {"jkt": KEY.thumbprint()}})
    return issuer, Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"],
                            clock=clock), token


def test_the_plain_verifier_refuses_a_bound_token(bound: tuple[Issuer, Verifier, str]) -> None:
    _, plain, token = bound
    with pytest.raises(SenderConstrained) as refused:
        plain.verify(token)
    assert refused.value.code == "sender_constrained" and refused.value.claim == "cnf"


def test_unsafe_allow_cnf_is_the_explicit_escape_hatch(bound: tuple[Issuer, Verifier, str]) -> None:
    _, plain, token = bound
    lax = Verifier(plain.keys, issuer=ISS, audience=AUD, algorithms=["ES256"],
                   clock=FakeClock(NOW), unsafe_allow_cnf=True)
    assert lax.verify(token)["cnf"] == {"jkt": KEY.thumbprint()}


def test_verify_bound_needs_the_proof_of_the_bound_key_for_this_token(
    bound: tuple[Issuer, Verifier, str],
) -> None:
    issuer, plain, token = bound
    clock = FakeClock(NOW)
    dpop = verifier(clock)
    proof = dpop.verify(create_proof(KEY, "GET", URL, access_token=token, clock=clock),
                        method="GET", url=URL, access_token=token)
    assert plain.verify_bound(token, proof).sub == "u1"
    other = dpop.verify(create_proof(OTHER, "GET", URL, access_token=token, clock=clock),
                        method="GET", url=URL, access_token=token)
    with pytest.raises(InvalidDPoPProof) as mismatch:
        plain.verify_bound(token, other)
    assert mismatch.value.reason == "key_mismatch"
    unbound_proof = dpop.verify(create_proof(KEY, "GET", URL, clock=clock), method="GET", url=URL)
    with pytest.raises(InvalidDPoPProof) as no_ath:
        plain.verify_bound(token, unbound_proof)
    assert no_ath.value.reason == "bad_ath"
    bearer = issuer.issue(subject="u1")
    proof_for_bearer = dpop.verify(create_proof(KEY, "GET", URL, access_token=bearer, clock=clock),
                                   method="GET", url=URL, access_token=bearer)
    with pytest.raises(MissingClaim):
        plain.verify_bound(bearer, proof_for_bearer)


def test_the_caching_verifier_still_refuses_a_bound_token_it_verified_bound() -> None:
    from jwtwarden import CachingVerifier

    keys = KeySet.generate("ES256")
    clock = FakeClock(NOW)
    token = Issuer(keys, issuer=ISS, audience=AUD, clock=clock).issue(
        subject="u1", claims={"cnf": {"jkt": KEY.thumbprint()}})
    caching = CachingVerifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"], clock=clock)
    proof = verifier(clock).verify(create_proof(KEY, "GET", URL, access_token=token, clock=clock),
                                   method="GET", url=URL, access_token=token)
    caching.verify_bound(token, proof)
    caching.verify_bound(token, proof)  # from the cache
    with pytest.raises(SenderConstrained):
        caching.verify(token)
