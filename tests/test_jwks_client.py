"""RemoteJWKS and RemoteVerifier against a real HTTP server on loopback.

Cache ages and cooldowns run on an injected clock; real time is spent only where the network
is the subject (a server slower than the client's timeout, a response streamed without end).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from jwtwarden import Issuer, Key, KeySet, errors
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.resource.jwks_client import (
    JWKSInvalid,
    JWKSTooLarge,
    JWKSUnavailable,
    RemoteJWKS,
    RemoteVerifier,
    _Flight,
    load_public_jwks,
)
from jwtwarden.testing import FakeClock, MockJWKS
from tests.conftest import AUD, ISS, NOW, keyset_for
from tests.helpers_http import serve_asgi

BURST = 1000


class Endpoint:
    """A JWKS endpoint whose answers a test controls; counts the requests it receives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.status = 200
        self.body = b'{"keys": []}'
        self.headers: dict[str, str] = {"cache-control": "max-age=600"}
        self.delay = 0.0
        self.endless = False

    def publish(self, keys: KeySet | dict[str, Any], cache_control: str | None = "max-age=600") -> None:
        document = keys.public().to_jwks() if isinstance(keys, KeySet) else keys
        self.body = json.dumps(document).encode()
        self.headers = {} if cache_control is None else {"cache-control": cache_control}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        with self._lock:
            self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.endless:
            await self._stream_without_end(receive, send)
            return
        headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})

    @staticmethod
    async def _stream_without_end(receive: Any, send: Any) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        chunk = b" " * 65536
        for _ in range(16384):  # 1 GiB at most, should the client never hang up
            if gone.is_set():
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        watcher.cancel()


_ENDPOINT = Endpoint()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_asgi(_ENDPOINT, lifespan="off", timeout_graceful=0.5) as url:
        yield url


@pytest.fixture
def endpoint(base_url: str) -> Endpoint:
    _ENDPOINT.reset()
    _ENDPOINT.publish(keyset_for("ES256"))
    return _ENDPOINT


@pytest.fixture
def url(base_url: str) -> str:
    return base_url + "/.well-known/jwks.json"


def remote(url: str, clock: FakeClock, **options: Any) -> RemoteJWKS:
    options.setdefault("algorithms", ["ES256"])
    return RemoteJWKS(url, clock=clock, **options)


def verifier_for(jwks: RemoteJWKS, clock: FakeClock) -> RemoteVerifier:
    return jwks.verifier(issuer=ISS, audience=AUD, clock=clock)


def issue(keys: KeySet, clock: FakeClock, subject: str = "u1") -> str:
    return Issuer(keys, issuer=ISS, audience=AUD, clock=clock).issue(subject=subject)


_STRANGER = Key.generate("ES256")


def token_with_kid(kid: str, clock: FakeClock) -> str:
    """A token naming ``kid``, signed by a key nobody publishes."""
    head = b64url_encode(json.dumps({"alg": "ES256", "kid": kid, "typ": "at+jwt"}).encode())
    body = b64url_encode(json.dumps({"iss": ISS, "aud": AUD, "sub": "x", "exp": clock() + 600}).encode())
    return f"{head}.{body}.{b64url_encode(_STRANGER.sign(f'{head}.{body}'.encode()))}"


def code_of(call: Any, *args: Any) -> str:
    with pytest.raises(errors.JWTError) as info:
        call(*args)
    return info.value.code


# ---- fetching and caching --------------------------------------------------------------------


def test_a_fetched_key_set_verifies_the_services_tokens(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    assert verifier.verify(issue(keyset_for("ES256"), clock)).sub == "u1"
    assert endpoint.requests == 1


def test_the_async_api_verifies_the_services_tokens(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    claims = asyncio.run(verifier.averify(issue(keyset_for("ES256"), clock)))
    assert claims.sub == "u1"


def test_the_key_set_is_reused_until_its_max_age(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256"), "public, max-age=120")
    jwks = remote(url, clock)
    jwks.key_set()
    clock.advance(119)
    jwks.key_set()
    assert endpoint.requests == 1
    clock.advance(2)
    jwks.key_set()
    assert endpoint.requests == 2


def test_a_max_age_below_the_minimum_is_raised_to_it(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256"), "max-age=5")
    jwks = remote(url, clock, min_age=30)
    jwks.key_set()
    clock.advance(29)
    jwks.key_set()
    assert endpoint.requests == 1
    clock.advance(2)
    jwks.key_set()
    assert endpoint.requests == 2


def test_a_max_age_above_the_maximum_is_capped(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256"), "max-age=86400")
    jwks = remote(url, clock, max_age=600)
    jwks.key_set()
    clock.advance(601)
    jwks.key_set()
    assert endpoint.requests == 2


def test_without_cache_control_the_maximum_age_applies(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256"), None)
    jwks = remote(url, clock, max_age=300)
    jwks.key_set()
    clock.advance(299)
    jwks.key_set()
    assert endpoint.requests == 1
    clock.advance(2)
    jwks.key_set()
    assert endpoint.requests == 2


def test_no_cache_means_the_minimum_age(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256"), "no-cache, max-age=600")
    jwks = remote(url, clock, min_age=30)
    jwks.key_set()
    clock.advance(31)
    jwks.key_set()
    assert endpoint.requests == 2


def test_the_age_header_shortens_the_freshness(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256"), "max-age=300")
    endpoint.headers["age"] = "200"
    jwks = remote(url, clock)
    jwks.key_set()
    clock.advance(101)
    jwks.key_set()
    assert endpoint.requests == 2


def test_a_non_ascii_digit_in_the_age_header_is_ignored(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256"), "max-age=300")
    endpoint.headers["age"] = "\u00b2"  # '²': str.isdigit() says yes, int() says no
    jwks = remote(url, clock)
    assert len(jwks.key_set()) == 1
    clock.advance(299)
    jwks.key_set()
    assert endpoint.requests == 1


def test_an_unchanged_key_set_keeps_the_same_object(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock)
    first = jwks.key_set()
    clock.advance(601)
    assert jwks.key_set() is first
    assert endpoint.requests == 2


# ---- unknown kid, cooldown, single flight -------------------------------------------------------


def test_an_unknown_kid_within_the_cooldown_does_not_refetch(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    assert code_of(verifier.verify, token_with_kid("nope", clock)) == "unknown_key"
    assert endpoint.requests == 1


def test_an_unknown_kid_after_the_cooldown_refetches_once(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock, cooldown=30), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    clock.advance(31)
    assert code_of(verifier.verify, token_with_kid("nope-1", clock)) == "unknown_key"
    assert code_of(verifier.verify, token_with_kid("nope-2", clock)) == "unknown_key"
    assert endpoint.requests == 2


def test_a_newly_published_key_is_picked_up_by_its_first_token(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    rotated = KeySet.generate("ES256")
    endpoint.publish(keyset_for("ES256").public() + rotated.public())
    clock.advance(31)
    assert verifier.verify(issue(rotated, clock, "u2")).sub == "u2"
    assert endpoint.requests == 2


def test_a_burst_of_bogus_kids_costs_one_request_async(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    clock.advance(31)
    endpoint.delay = 0.05  # the refetch is in flight while the burst arrives
    tokens = [token_with_kid(f"bogus-{i}", clock) for i in range(BURST)]

    async def burst() -> list[Any]:
        return await asyncio.gather(*(verifier.averify(t) for t in tokens), return_exceptions=True)

    outcomes = asyncio.run(burst())
    assert {getattr(o, "code", None) for o in outcomes} == {"unknown_key"}
    assert endpoint.requests == 2


def test_a_burst_of_bogus_kids_costs_one_request_in_threads(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    clock.advance(31)
    endpoint.delay = 0.05
    tokens = [token_with_kid(f"bogus-{i}", clock) for i in range(BURST)]

    def attempt(token: str) -> str:
        try:
            verifier.verify(token)
        except errors.JWTError as error:
            return error.code
        return "accepted"

    with ThreadPoolExecutor(32) as pool:
        codes = set(pool.map(attempt, tokens))
    assert codes == {"unknown_key"}
    assert endpoint.requests == 2


def test_a_burst_signed_by_a_new_key_waits_for_one_request_async(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    rotated = KeySet.generate("ES256")
    endpoint.publish(rotated)
    clock.advance(31)
    endpoint.delay = 0.05
    issuer = Issuer(rotated, issuer=ISS, audience=AUD, clock=clock)
    tokens = [issuer.issue(subject=f"u{i}") for i in range(BURST)]

    async def burst() -> list[Any]:
        return await asyncio.gather(*(verifier.averify(t) for t in tokens), return_exceptions=True)

    outcomes = asyncio.run(burst())
    assert [getattr(o, "sub", o) for o in outcomes] == [f"u{i}" for i in range(BURST)]
    assert endpoint.requests == 2


def test_a_burst_signed_by_a_new_key_waits_for_one_request_in_threads(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    rotated = KeySet.generate("ES256")
    endpoint.publish(rotated)
    clock.advance(31)
    endpoint.delay = 0.05
    issuer = Issuer(rotated, issuer=ISS, audience=AUD, clock=clock)
    tokens = [issuer.issue(subject=f"u{i}") for i in range(BURST)]
    with ThreadPoolExecutor(32) as pool:
        subjects = list(pool.map(lambda t: verifier.verify(t).sub, tokens))
    assert subjects == [f"u{i}" for i in range(BURST)]
    assert endpoint.requests == 2


def test_the_first_requests_share_one_initial_fetch(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    endpoint.delay = 0.05
    token = issue(keyset_for("ES256"), clock)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(verifier.averify(token) for _ in range(100)))

    assert {c.sub for c in asyncio.run(burst())} == {"u1"}
    assert endpoint.requests == 1


def test_a_flight_abandoned_by_its_event_loop_does_not_block_later_fetches(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock, timeout=1)
    abandoned = _Flight()
    abandoned.started -= 60  # its loop ended without finishing it, a minute ago
    jwks._flight = abandoned
    assert len(jwks.key_set()) == 1 and endpoint.requests == 1


# ---- failures ------------------------------------------------------------------------------------


def test_stale_keys_are_served_while_the_endpoint_fails(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    token = issue(keyset_for("ES256"), clock)
    verifier.verify(token)
    endpoint.status = 503
    clock.advance(601)
    assert verifier.verify(token).sub == "u1"
    assert endpoint.requests == 2


def test_a_failed_fetch_is_not_retried_within_the_cooldown(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock, cooldown=30)
    jwks.key_set()
    endpoint.status = 500
    clock.advance(601)
    for _ in range(10):
        jwks.key_set()
        clock.advance(2)
    assert endpoint.requests == 2


def test_stale_keys_expire_after_max_stale(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock, max_stale=3600), clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    endpoint.status = 503
    clock.advance(600 + 3601)
    assert code_of(verifier.verify, issue(keyset_for("ES256"), clock)) == "jwks_unavailable"


def test_the_key_set_recovers_after_an_outage(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock, max_stale=0)
    jwks.key_set()
    endpoint.status = 503
    clock.advance(601)
    assert code_of(jwks.key_set) == "jwks_unavailable"
    endpoint.status = 200
    clock.advance(31)
    assert len(jwks.key_set()) == 1


def test_no_key_set_at_all_is_unavailable(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.status = 404
    assert code_of(remote(url, clock).key_set) == "jwks_unavailable"


def test_an_unreachable_endpoint_is_unavailable(clock: FakeClock) -> None:
    # a port nothing listens on (bound, then closed)
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    jwks = RemoteJWKS(f"http://127.0.0.1:{port}/jwks", algorithms=["ES256"], clock=clock)
    assert code_of(jwks.key_set) == "jwks_unavailable"


def test_a_redirect_is_not_followed(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.status = 302
    endpoint.headers = {"location": "http://example.com/jwks"}
    assert code_of(remote(url, clock).key_set) == "jwks_unavailable"


def test_a_slow_endpoint_times_out(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.delay = 2.0
    jwks = remote(url, clock, timeout=0.2)
    started = time.monotonic()
    assert code_of(jwks.key_set) == "jwks_unavailable"
    assert time.monotonic() - started < 1.5


def test_a_slow_endpoint_times_out_async(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.delay = 2.0
    jwks = remote(url, clock, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(JWKSUnavailable) as info:
        asyncio.run(jwks.akey_set())
    assert info.value.code == "jwks_unavailable"
    assert time.monotonic() - started < 1.5


def test_an_endless_response_is_cut_at_the_size_cap(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.endless = True
    jwks = remote(url, clock, max_size=512 * 1024, timeout=5)
    assert code_of(jwks.key_set) == "jwks_too_large"


def test_an_endless_response_is_cut_at_the_size_cap_async(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.endless = True
    jwks = remote(url, clock, max_size=512 * 1024, timeout=5)
    with pytest.raises(JWKSTooLarge) as info:
        asyncio.run(jwks.akey_set())
    assert info.value.code == "jwks_too_large"


def test_a_document_just_over_the_cap_is_refused(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    document = keyset_for("ES256").public().to_jwks()
    document["padding"] = "x" * 2048
    endpoint.publish(document)
    assert code_of(remote(url, clock, max_size=2048).key_set) == "jwks_too_large"


def test_a_compressed_response_is_refused(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.headers["content-encoding"] = "gzip"
    assert code_of(remote(url, clock).key_set) == "jwks_invalid"


def test_invalid_json_is_refused(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.body = b'{"keys": [}'
    assert code_of(remote(url, clock).key_set) == "jwks_invalid"


def test_an_invalid_answer_keeps_the_previous_keys(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock)
    first = jwks.key_set()
    endpoint.publish(keyset_for("ES256").to_jwks(private=True))
    clock.advance(601)
    assert jwks.key_set() is first
    assert jwks.last_error is not None and jwks.last_error.code == "jwks_invalid"


# ---- what the JWKS may contain -------------------------------------------------------------------


def test_a_jwks_with_private_members_is_refused(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(keyset_for("ES256").to_jwks(private=True))
    assert code_of(remote(url, clock).key_set) == "jwks_invalid"


def test_a_jwks_with_a_symmetric_secret_is_refused() -> None:
    with pytest.raises(JWKSInvalid):
        load_public_jwks(json.dumps(keyset_for("HS256").to_jwks(private=True)), ["HS256"])


def _without_alg(keys: KeySet) -> dict[str, Any]:
    document = keys.public().to_jwks()
    for jwk in document["keys"]:
        del jwk["alg"]
    return document


def test_a_key_without_alg_is_bound_to_the_only_fitting_algorithm(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish(_without_alg(keyset_for("ES256")))
    verifier = verifier_for(remote(url, clock, algorithms=["ES256", "ES384", "RS256"]), clock)
    assert verifier.verify(issue(keyset_for("ES256"), clock)).sub == "u1"


def test_a_key_without_alg_is_skipped_when_several_algorithms_fit() -> None:
    document = _without_alg(keyset_for("RS256"))
    assert len(load_public_jwks(json.dumps(document), ["RS256", "PS256"])) == 0
    assert len(load_public_jwks(json.dumps(document), ["RS256"])) == 1


def test_a_key_without_alg_never_fits_another_curve() -> None:
    document = _without_alg(keyset_for("ES384"))
    assert len(load_public_jwks(json.dumps(document), ["ES256"])) == 0


def test_keys_of_other_algorithms_are_skipped() -> None:
    document = (keyset_for("ES256").public() + keyset_for("EdDSA").public()).to_jwks()
    assert [k.alg for k in load_public_jwks(json.dumps(document), ["EdDSA"])] == ["EdDSA"]


def test_an_encryption_key_is_skipped() -> None:
    document = keyset_for("ES256").public().to_jwks()
    document["keys"][0]["use"] = "enc"
    assert len(load_public_jwks(json.dumps(document), ["ES256"])) == 0


def test_an_unloadable_key_is_skipped_and_the_others_kept() -> None:
    document = keyset_for("ES256").public().to_jwks()
    document["keys"].append({"kty": "EC", "crv": "P-256", "alg": "ES256", "x": "AA", "y": "AA"})
    document["keys"].append({"kty": "ML-DSA", "alg": "ES256"})
    assert len(load_public_jwks(json.dumps(document), ["ES256"])) == 1


def test_two_usable_keys_with_one_kid_make_the_jwks_invalid() -> None:
    first, second = Key.generate("ES256", kid="same"), Key.generate("ES256", kid="same")
    document = {"keys": [first.public().to_jwk(), second.public().to_jwk()]}
    with pytest.raises(JWKSInvalid):
        load_public_jwks(json.dumps(document), ["ES256"])


def test_a_jwks_without_keys_array_is_invalid() -> None:
    with pytest.raises(JWKSInvalid):
        load_public_jwks(b'{"keys": {}}', ["ES256"])


def test_an_empty_key_set_makes_every_token_unknown(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    endpoint.publish({"keys": []})
    verifier = verifier_for(remote(url, clock), clock)
    assert code_of(verifier.verify, issue(keyset_for("ES256"), clock)) == "unknown_key"


# ---- the verifier on top ---------------------------------------------------------------------------


def test_a_token_seen_before_is_still_checked_for_expiry(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock, max_age=3600), clock)
    token = issue(keyset_for("ES256"), clock)
    verifier.verify(token)
    clock.advance(901 + 30)
    assert code_of(verifier.verify, token) == "expired"


def test_a_removed_key_stops_verifying_tokens_seen_before(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock, max_age=60), clock)
    token = issue(keyset_for("ES256"), clock)
    verifier.verify(token)
    endpoint.publish(KeySet.generate("ES256"))
    clock.advance(61)
    assert code_of(verifier.verify, token) == "unknown_key"


def test_a_tampered_copy_of_a_verified_token_is_refused(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    token = issue(keyset_for("ES256"), clock)
    verifier.verify(token)
    head, _, sig = token.split(".")
    forged_body = b64url_encode(json.dumps(
        {"iss": ISS, "aud": AUD, "sub": "admin", "exp": clock() + 600}).encode())
    assert code_of(verifier.verify, f"{head}.{forged_body}.{sig}") == "bad_signature"


def test_changing_a_nested_claim_does_not_change_the_next_verification(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    token = Issuer(keyset_for("ES256"), issuer=ISS, audience=AUD, clock=clock).issue(
        subject="u1", claims={"roles": ["user"]})
    verifier.verify(token)["roles"].append("admin")
    verifier.verify(token)["roles"].append("admin")
    assert verifier.verify(token)["roles"] == ["user"]


def test_every_verification_of_a_seen_token_returns_its_own_claims(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    token = issue(keyset_for("ES256"), clock)
    verifier.verify(token)
    second, third = verifier.verify(token), verifier.verify(token)
    assert second == third and second._data is not third._data


def test_the_verifier_keeps_its_inner_verifier_while_keys_are_unchanged(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    verifier = verifier_for(remote(url, clock), clock)
    token = issue(keyset_for("ES256"), clock)
    verifier.verify(token)
    inner = verifier._state[1]
    clock.advance(601)
    verifier.verify(token)
    assert endpoint.requests == 2 and verifier._state[1] is inner


def test_a_revoked_kid_stops_verifying_at_once(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock)
    verifier = verifier_for(jwks, clock)
    token = issue(keyset_for("ES256"), clock)
    verifier.verify(token)
    jwks.set_revoked_kids({next(iter(keyset_for("ES256"))).kid})
    assert code_of(verifier.verify, token) == "unknown_key"


def test_a_revoked_kid_stays_out_of_later_fetches(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock)
    jwks.key_set()
    jwks.set_revoked_kids({next(iter(keyset_for("ES256"))).kid})
    clock.advance(601)
    assert len(jwks.key_set()) == 0 and endpoint.requests == 2


def test_a_key_revocation_lets_the_next_refetch_skip_the_cooldown(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock)
    verifier = verifier_for(jwks, clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    replacement = KeySet.generate("ES256")
    endpoint.publish(replacement)
    jwks.set_revoked_kids({next(iter(keyset_for("ES256"))).kid})
    assert verifier.verify(issue(replacement, clock, "u2")).sub == "u2"
    assert endpoint.requests == 2


def test_after_a_key_revocation_a_late_replacement_is_found_within_seconds_not_a_cooldown(
    endpoint: Endpoint, url: str, clock: FakeClock,
) -> None:
    """The revocation may arrive before the issuer's JWKS shows the replacement key: the
    refetch it triggers finds nothing new, and for one cooldown an unknown kid may refetch
    once a second instead of once per cooldown; after that, the cooldown holds again."""
    jwks = remote(url, clock)
    verifier = verifier_for(jwks, clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    jwks.set_revoked_kids({next(iter(keyset_for("ES256"))).kid})
    jwks.key_set()
    assert jwks.reload() is not None and endpoint.requests == 2  # the replacement is not out yet
    replacement = KeySet.generate("ES256")
    endpoint.publish(replacement)
    late = issue(replacement, clock, "u2")
    assert code_of(verifier.verify, late) == "unknown_key"  # within a second: no request
    assert endpoint.requests == 2
    clock.advance(1.5)
    assert verifier.verify(late).sub == "u2"
    assert endpoint.requests == 3
    clock.advance(31)  # the window is over: unknown kids wait for the cooldown again
    stranger = issue(KeySet.generate("ES256"), clock, "u3")
    verifier.verify(issue(replacement, clock, "u2"))
    requests = endpoint.requests
    assert code_of(verifier.verify, stranger) == "unknown_key"
    clock.advance(1.5)
    assert code_of(verifier.verify, stranger) == "unknown_key"
    assert endpoint.requests <= requests + 1


def test_the_verifier_options_are_checked_when_it_is_built(clock: FakeClock) -> None:
    jwks = RemoteJWKS("https://auth.example.com/jwks", algorithms=["ES256"], clock=clock)
    with pytest.raises(ValueError, match="leeway"):
        jwks.verifier(issuer=ISS, audience=AUD, leeway=1000)
    with pytest.raises(ValueError, match="among"):
        jwks.verifier(issuer=ISS, audience=AUD, algorithms=["RS256"])


# ---- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://auth.example.com/jwks", "http://10.0.0.1/jwks", "http://127.0.0.1.example.com/jwks",
    "ftp://127.0.0.1/jwks", "https://user:pw@auth.example.com/jwks", "/jwks", "",
])
def test_anything_but_https_or_loopback_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        RemoteJWKS(url, algorithms=["ES256"])


@pytest.mark.parametrize("url", [
    "https://auth.example.com/jwks", "http://127.0.0.1:8000/jwks", "http://127.8.9.10/jwks",
    "http://localhost:8000/jwks", "http://[::1]:8000/jwks",
])
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert RemoteJWKS(url, algorithms=["ES256"]).url.startswith(url.split(":")[0])


def test_the_algorithm_allowlist_is_required() -> None:
    with pytest.raises(TypeError):
        RemoteJWKS("https://auth.example.com/jwks")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="allowlist"):
        RemoteJWKS("https://auth.example.com/jwks", algorithms=[])


def test_the_repr_shows_no_key_material(endpoint: Endpoint, url: str, clock: FakeClock) -> None:
    jwks = remote(url, clock)
    jwks.key_set()
    key = next(iter(keyset_for("ES256").public()))
    assert key.to_jwk()["x"] not in repr(jwks) + repr(verifier_for(jwks, clock))


# ---- jwtwarden.testing.MockJWKS ---------------------------------------------------------------------


def test_the_mock_jwks_serves_a_key_set_and_counts_requests(clock: FakeClock) -> None:
    mock = MockJWKS(keyset_for("ES256"))
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], clock=clock,
                      transport=mock.transport)
    verifier = verifier_for(jwks, clock)
    verifier.verify(issue(keyset_for("ES256"), clock))
    assert asyncio.run(verifier.averify(issue(keyset_for("ES256"), clock))).sub == "u1"
    assert mock.requests == 1


def test_the_mock_jwks_can_fail_and_rotate(clock: FakeClock) -> None:
    mock = MockJWKS(keyset_for("ES256"), max_age=60)
    jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], clock=clock,
                      transport=mock.transport, max_stale=0)
    mock.fail(503)
    assert code_of(jwks.key_set) == "jwks_unavailable"
    rotated = KeySet.generate("ES256")
    mock.fail(None)
    mock.rotate(rotated)
    clock.advance(31)
    assert next(iter(jwks.key_set())).kid == next(iter(rotated)).kid
    assert mock.requests == 2


def test_an_injected_async_client_is_used_and_left_open(clock: FakeClock) -> None:
    mock = MockJWKS(keyset_for("ES256"))

    async def run() -> bool:
        async with httpx.AsyncClient(transport=mock.transport) as client:
            jwks = RemoteJWKS("https://auth.test/jwks", algorithms=["ES256"], clock=clock,
                              async_client=client)
            await jwks.akey_set()
            return client.is_closed

    assert asyncio.run(run()) is False
    assert mock.requests == 1


def test_now_is_the_fixture_time(clock: FakeClock) -> None:
    assert clock() == NOW
