"""Shared fixtures: one key set per algorithm (generated once per session), a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jwtwarden import Issuer, KeySet, Verifier
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.testing import FakeClock

ISS = "https://auth.example.com"
AUD = "api.example.com"
NOW = 1_700_000_000.0
ALL_ALGS = tuple(ALGORITHMS)

_KEYSETS: dict[str, KeySet] = {}


def keyset_for(alg: str) -> KeySet:
    """A private key set for ``alg``, generated once per test session (RSA is slow)."""
    if alg not in _KEYSETS:
        _KEYSETS[alg] = KeySet.generate(alg)
    return _KEYSETS[alg]


def verify_keys(keys: KeySet) -> KeySet:
    """What a verifier holds: the public half, or the secret itself for HMAC."""
    return keys if next(iter(keys)).alg.startswith("HS") else keys.public()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(params=ALL_ALGS)
def alg(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def es256() -> KeySet:
    return keyset_for("ES256")


@pytest.fixture
def make_pair(clock: FakeClock) -> Callable[..., tuple[Issuer, Verifier]]:
    """Build an issuer and a verifier for one algorithm sharing the fake clock."""

    def make(alg: str = "ES256", **verifier_options: Any) -> tuple[Issuer, Verifier]:
        keys = keyset_for(alg)
        issuer = Issuer(keys, issuer=ISS, audience=AUD, clock=clock)
        options: dict[str, Any] = {"issuer": ISS, "audience": AUD, "algorithms": [alg]}
        options.update(verifier_options)
        return issuer, Verifier(verify_keys(keys), clock=clock, **options)

    return make
