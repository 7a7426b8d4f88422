"""RevocationSet: jti, session and subject-cutoff revocations, expiring by themselves."""

from __future__ import annotations

import pytest

from jwtwarden import errors
from jwtwarden.revocation import Revocation, RevocationSet, subject_key
from jwtwarden.testing import FakeClock
from tests.conftest import NOW

CLAIMS = {"jti": "j1", "sid": "s1", "sub": "u1", "iat": NOW, "exp": NOW + 900}


def test_an_empty_set_revokes_nothing() -> None:
    RevocationSet().check(CLAIMS)


@pytest.mark.parametrize(("kind", "value"), [("jti", "j1"), ("sid", "s1")])
def test_a_jti_or_session_entry_revokes_the_token(kind: str, value: str) -> None:
    revoked = RevocationSet([Revocation(kind, value, NOW + 900)], clock=FakeClock(NOW))  # type: ignore[arg-type]
    with pytest.raises(errors.Revoked) as info:
        revoked.check(CLAIMS)
    assert info.value.code == "revoked"
    revoked.check(CLAIMS | {"jti": "j2", "sid": "s2"})


def test_a_subject_cutoff_revokes_tokens_issued_before_it_only() -> None:
    revoked = RevocationSet([Revocation("sub", subject_key("u1"), NOW + 900, cutoff=NOW + 10)],
                            clock=FakeClock(NOW))
    assert revoked.is_revoked(CLAIMS)
    assert not revoked.is_revoked(CLAIMS | {"iat": NOW + 10})
    assert not revoked.is_revoked(CLAIMS | {"sub": "u2"})
    assert revoked.is_revoked({k: v for k, v in CLAIMS.items() if k != "iat"})


def test_the_subject_is_stored_hashed() -> None:
    revoked = RevocationSet([Revocation("sub", subject_key("alice@example.com"), NOW + 9, cutoff=NOW)])
    assert "alice" not in repr(revoked.entries())


def test_entries_expire_and_are_pruned() -> None:
    clock = FakeClock(NOW)
    revoked = RevocationSet([Revocation("jti", "j1", NOW + 60)], clock=clock)
    assert revoked.is_revoked(CLAIMS)
    clock.advance(61)
    assert revoked.prune() == 1
    assert len(revoked) == 0


def test_later_entries_extend_but_never_shorten() -> None:
    revoked = RevocationSet(clock=FakeClock(NOW))
    revoked.add(Revocation("sub", "k", NOW + 100, cutoff=NOW + 5))
    revoked.add(Revocation("sub", "k", NOW + 50, cutoff=NOW + 1))
    [entry] = revoked.entries()
    assert (entry.cutoff, entry.expires_at) == (NOW + 5, NOW + 100)


@pytest.mark.parametrize(
    "data",
    [{}, {"kind": "jti", "value": "x"}, {"kind": "nope", "value": "x", "exp": 1},
     {"kind": "jti", "value": "", "exp": 1}, {"kind": "sub", "value": "x", "exp": 1},
     {"kind": "jti", "value": "x", "exp": "1"}, {"kind": "jti", "value": "x", "exp": 1, "cutoff": 1}, []],
)
def test_malformed_feed_entries_are_refused(data: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Revocation.from_json(data)  # type: ignore[arg-type]


def test_feed_entries_round_trip() -> None:
    for entry in (Revocation("jti", "j", 5.0), Revocation("sub", "k", 9.0, cutoff=3.0)):
        assert Revocation.from_json(entry.to_json()) == entry
