"""Helpers for testing code that uses jwtwarden.

::

    from jwtwarden.testing import FakeClock

    clock = FakeClock(1_700_000_000)
    verifier = Verifier(keys, issuer=ISS, audience=AUD, algorithms=["ES256"], clock=clock)
    clock.advance(901)   # the token has now expired; no sleeping
"""

from __future__ import annotations

from jwtwarden.testing._attacks import (
    assert_rejects_jwt_attacks,
    jwt_attack_cases,
    run_jwt_attacks,
    run_jwt_attacks_async,
)
from jwtwarden.testing._clock import FakeClock
from jwtwarden.testing._jwks import MockJWKS, MockRevocationFeed

__all__ = [
    "FakeClock",
    "MockJWKS",
    "MockRevocationFeed",
    "assert_rejects_jwt_attacks",
    "jwt_attack_cases",
    "run_jwt_attacks",
    "run_jwt_attacks_async",
]
