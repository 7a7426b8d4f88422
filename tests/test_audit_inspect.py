"""The inspect engine: every finding code, malformed input, masking, times, verification."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwtwarden import Issuer, KeySet
from jwtwarden.audit import inspect as inspect_module
from jwtwarden.audit.inspect import (
    CATALOG,
    INSPECT_MAX_SIZE,
    LINT_CODES,
    Report,
    Severity,
    audit_token,
    format_duration,
)
from jwtwarden.audit.render import render_plain
from jwtwarden.keys import HMACKey
from jwtwarden.lint import Severity as LintSeverity
from jwtwarden.testing import FakeClock
from tests.conftest import keyset_for
from tests.debugger.corpus import inspect_corpus
from tests.debugger.tokens import AUD, ISS, NOW, b64, good_claims, segment, tamper, token

ROOT = Path(__file__).resolve().parents[1]
ES = {"alg": "ES256", "typ": "at+jwt", "kid": "k1"}


def audit(text: str | bytes, **options: Any) -> Report:
    return audit_token(text, now=NOW, **options)


def codes(text: str, **options: Any) -> list[str]:
    return [f.code for f in audit(text, **options).findings]


def finding(text: str, code: str) -> inspect_module.Finding:
    [match] = [f for f in audit(text).findings if f.code == code]
    return match


def issued(alg: str = "ES256", **claims: Any) -> str:
    issuer = Issuer(keyset_for(alg), issuer=ISS, audience=AUD, clock=FakeClock(NOW))
    return issuer.issue("user-42", claims)


# ----------------------------------------------------------------------------- catalog


def test_a_token_issued_by_jwtwarden_has_no_findings() -> None:
    assert codes(issued()) == []


def test_the_hand_made_good_token_has_no_findings() -> None:
    assert codes(token(ES, good_claims())) == []


def test_every_finding_has_its_catalog_severity_and_fix() -> None:
    for text in inspect_corpus()[:300]:
        for f in audit(text).findings:
            assert f.severity == CATALOG[f.code].severity, f.code
            assert f.fix == CATALOG[f.code].fix


def test_every_code_is_in_the_module_docstring_table() -> None:
    table = inspect_module.__doc__ or ""
    assert [c for c in CATALOG if not re.search(rf"\b{c}\b", table)] == []


def test_every_code_is_in_the_docs_table_with_its_severity() -> None:
    docs = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    missing = [
        code
        for code, spec in CATALOG.items()
        if not re.search(rf"^\| `{code}` \| {spec.severity.name} \|", docs, re.MULTILINE)
    ]
    assert missing == []


def test_lint_codes_keep_the_linter_severity() -> None:
    report = audit(token(ES, good_claims(note="alice@example.com", password="x")))
    by_code = {f.code: f.severity for f in report.findings}
    assert by_code == {"email": Severity.MEDIUM, "sensitive_name": Severity.HIGH}
    assert int(Severity.MEDIUM) == int(LintSeverity.MEDIUM)


def test_every_lint_code_is_in_the_catalog() -> None:
    assert set(CATALOG) >= LINT_CODES


def test_severities_are_ordered_info_to_critical() -> None:
    assert [s.label for s in sorted(Severity)] == ["info", "low", "medium", "high", "critical"]


# ----------------------------------------------------------------------------- header


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_critical_in_any_letter_case(alg: str) -> None:
    f = finding(token({"alg": alg, "typ": "JWT"}, good_claims(), b""), "alg_none")
    assert (f.severity, f.part, f.path) == (Severity.CRITICAL, "header", "/alg")


def test_alg_none_with_empty_signature_is_not_also_signature_missing() -> None:
    assert "signature_missing" not in codes(token({"alg": "none", "typ": "JWT"}, good_claims(), b""))


@pytest.mark.parametrize("header", [{"typ": "JWT"}, {"alg": None}, {"alg": 256}, {"alg": ["HS256"]}])
def test_missing_or_non_string_alg_is_reported(header: dict[str, Any]) -> None:
    assert "alg_missing" in codes(token(header, good_claims()))


@pytest.mark.parametrize("alg", ["HS1", "RS1", "ES256K", "es256", "RSA-OAEP", ""])
def test_alg_outside_the_safe_set_is_reported(alg: str) -> None:
    assert finding(token({"alg": alg, "typ": "JWT"}, good_claims()), "alg_unsupported").path == "/alg"


def test_hmac_with_several_audiences_is_reported() -> None:
    text = token({"alg": "HS256", "typ": "JWT"}, good_claims(aud=["orders", "billing"]))
    assert finding(text, "hmac_multi_service").severity == Severity.MEDIUM


def test_hmac_with_issuer_and_audience_on_different_hosts_is_reported() -> None:
    text = token({"alg": "HS384", "typ": "JWT"}, good_claims(aud="https://api.example.com/v1"))
    assert "hmac_multi_service" in codes(text)


@pytest.mark.parametrize(
    ("iss", "aud"),
    [
        ("https://api.example.com", "https://api.example.com:8443/x"),
        ("https://API.example.com", "api.example.com"),
        ("https://api.example.com", "orders"),
        ("https://api.example.com", ["https://user@api.example.com/"]),
    ],
)
def test_hmac_within_one_host_is_not_reported(iss: str, aud: str | list[str]) -> None:
    text = token({"alg": "HS256", "typ": "JWT"}, good_claims(iss=iss, aud=aud))
    assert "hmac_multi_service" not in codes(text)


def test_duplicate_audiences_count_once() -> None:
    text = token({"alg": "HS256", "typ": "JWT"}, good_claims(iss="x", aud=["a", "a"]))
    assert "hmac_multi_service" not in codes(text)


def test_asymmetric_tokens_for_several_audiences_are_fine() -> None:
    assert codes(token(ES, good_claims(aud=["orders", "billing"]))) == []


@pytest.mark.parametrize("kid", ["../../etc/passwd", "a/b", "a\\b", "x' OR '1'='1", 'k"', "`id`"])
def test_kid_with_path_or_quote_characters_is_unsafe(kid: str) -> None:
    assert finding(token({**ES, "kid": kid}, good_claims()), "kid_unsafe").path == "/kid"


@pytest.mark.parametrize("kid", ["k\x00", "k\n", "k\x7f", "k\x9b"])
def test_kid_with_control_characters_is_unsafe(kid: str) -> None:
    assert "kid_unsafe" in codes(token({**ES, "kid": kid}, good_claims()))


@pytest.mark.parametrize("kid", [5, None, ["k"], {"k": 1}])
def test_kid_that_is_not_a_string_is_unsafe(kid: object) -> None:
    assert "kid_unsafe" in codes(token({**ES, "kid": kid}, good_claims()))


@pytest.mark.parametrize("kid", ["k1", "2024-01.rotated_key", "nIcOmYA9lfavQlQ_hX4yJZEe4FEP-VKHEm0W7kXDBkA"])
def test_ordinary_kid_is_fine(kid: str) -> None:
    assert codes(token({**ES, "kid": kid}, good_claims())) == []


@pytest.mark.parametrize(
    ("name", "value", "severity"),
    [
        ("jku", "https://attacker.example/jwks.json", Severity.HIGH),
        ("x5u", "https://attacker.example/cert.pem", Severity.HIGH),
        ("jwk", {"kty": "EC", "crv": "P-256"}, Severity.HIGH),
        ("x5c", ["MIIBIjANBg"], Severity.HIGH),
        ("crit", ["exp"], Severity.MEDIUM),
        ("zip", "DEF", Severity.MEDIUM),
        ("b64", False, Severity.MEDIUM),
    ],
)
def test_key_bearing_and_refused_headers_are_reported(name: str, value: object, severity: Severity) -> None:
    f = finding(token({**ES, name: value}, good_claims()), f"{name}_header")
    assert (f.severity, f.part, f.path) == (severity, "header", f"/{name}")


def test_missing_typ_is_low() -> None:
    header = {"alg": "ES256", "kid": "k1"}
    assert finding(token(header, good_claims()), "typ_missing").severity == Severity.LOW


@pytest.mark.parametrize("typ", ["JOSE", "json", "application/json", 1, None])
def test_typ_that_is_not_a_jwt_type_is_reported(typ: object) -> None:
    assert "typ_unexpected" in codes(token({**ES, "typ": typ}, good_claims()))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "application/at+jwt", "dpop+JWT"])
def test_explicit_jwt_types_are_fine(typ: str) -> None:
    assert codes(token({**ES, "typ": typ}, good_claims())) == []


# ----------------------------------------------------------------------------- signature


def test_empty_signature_is_reported() -> None:
    assert finding(token(ES, good_claims(), b""), "signature_missing").part == "signature"


def test_der_encoded_ecdsa_signature_has_the_wrong_size() -> None:
    der = b"\x30\x44" + b"\x02\x20" + b"\x11" * 32 + b"\x02\x20" + b"\x22" * 32
    assert finding(token(ES, good_claims(), der), "signature_size").part == "signature"


def test_rsa_signature_of_a_key_under_2048_bits_is_reported() -> None:
    text = token({"alg": "RS256", "typ": "JWT"}, good_claims(), b"\x01" * 128)
    assert "signature_size" in codes(text)


def test_rsa_signature_of_2048_bits_is_fine() -> None:
    assert codes(token({"alg": "PS256", "typ": "JWT"}, good_claims(), b"\x01" * 256)) == []


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64), ("EdDSA", 64)])
def test_signatures_of_the_algorithms_size_are_fine(alg: str, size: int) -> None:
    assert "signature_size" not in codes(token({"alg": alg, "typ": "JWT"}, good_claims(), b"\x01" * size))


# ----------------------------------------------------------------------------- payload


def test_missing_exp_is_high() -> None:
    assert finding(token(ES, good_claims(exp=None)), "exp_missing").severity == Severity.HIGH


def test_lifetime_over_15_minutes_is_reported() -> None:
    text = token(ES, good_claims(exp=int(NOW) + 901))
    assert finding(text, "lifetime_too_long").path == "/exp"


def test_lifetime_of_exactly_15_minutes_is_fine() -> None:
    assert codes(token(ES, good_claims(exp=int(NOW) + 900))) == []


def test_lifetime_counts_from_nbf_without_iat() -> None:
    text = token(ES, good_claims(iat=None, nbf=int(NOW) - 3000, exp=int(NOW) + 60))
    assert "lifetime_too_long" in codes(text)


def test_lifetime_without_iat_or_nbf_is_the_time_left() -> None:
    assert "lifetime_too_long" in codes(token(ES, good_claims(iat=None, exp=int(NOW) + 3600)))
    assert "lifetime_too_long" not in codes(token(ES, good_claims(iat=None, exp=int(NOW) + 600)))


def test_expired_token_is_info() -> None:
    text = token(ES, good_claims(iat=int(NOW) - 1000, exp=int(NOW) - 100))
    assert finding(text, "expired").severity == Severity.INFO


def test_token_expiring_exactly_now_is_expired() -> None:
    assert "expired" in codes(token(ES, good_claims(iat=int(NOW) - 60, exp=int(NOW))))


def test_nbf_in_the_future_is_reported() -> None:
    assert finding(token(ES, good_claims(nbf=int(NOW) + 60)), "not_yet_valid").path == "/nbf"


def test_iat_in_the_future_is_reported() -> None:
    text = token(ES, good_claims(iat=int(NOW) + 60, exp=int(NOW) + 600))
    assert finding(text, "iat_in_future").severity == Severity.LOW


@pytest.mark.parametrize(("claim", "severity"), [("iss", Severity.MEDIUM), ("aud", Severity.MEDIUM), ("jti", Severity.LOW)])
def test_missing_registered_claims_are_reported(claim: str, severity: Severity) -> None:
    f = finding(token(ES, good_claims(**{claim: None})), f"{claim}_missing")
    assert (f.severity, f.path) == (severity, f"/{claim}")


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "tomorrow"), ("exp", True), ("nbf", "x"), ("iat", None), ("iss", ["x"]),
     ("sub", 5), ("jti", 7), ("aud", 5), ("aud", ["a", 1])],
)  # fmt: skip
def test_registered_claims_of_the_wrong_type_are_reported(claim: str, value: object) -> None:
    claims = {**good_claims(), claim: value}
    assert finding(token(ES, claims), "claim_type").path == f"/{claim}"


def test_sensitive_data_comes_from_the_payload_linter_with_its_path() -> None:
    f = finding(token(ES, good_claims(billing={"card": "4111 1111 1111 1111"})), "card_number")
    assert (f.part, f.path, f.severity) == ("payload", "/billing/card", Severity.HIGH)


def test_a_jwt_nested_in_a_claim_is_reported() -> None:
    inner = token({"alg": "HS256", "typ": "JWT"}, {"sub": "x"})
    assert finding(token(ES, good_claims(upstream=inner)), "embedded_jwt").path == "/upstream"


# ----------------------------------------------------------------------------- size and malformed input


def test_oversized_token_is_reported_and_still_inspected() -> None:
    text = token(ES, good_claims(pad="x" * 9000))
    report = audit(text)
    assert [f.code for f in report.findings] == ["oversized_token"]
    assert report.payload is not None and report.payload["pad"] == "x" * 9000


def test_token_over_the_inspect_limit_is_not_decoded() -> None:
    report = audit("e" * (INSPECT_MAX_SIZE + 1))
    assert [f.code for f in report.findings] == ["oversized_token", "malformed"]
    assert report.header is None


@pytest.mark.parametrize(
    "text",
    ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e", "é.b.c", "a .b.c", "a.b.c\n", "a\t.b.c"],
)
def test_a_token_without_three_clean_segments_is_malformed_as_a_whole(text: str) -> None:
    assert [(f.code, f.part) for f in audit(text).findings] == [("malformed", "token")]


GOOD_HEADER, GOOD_PAYLOAD = segment(ES), segment(good_claims())


@pytest.mark.parametrize(
    ("part", "text"),
    [
        ("header", f"{GOOD_HEADER}=.{GOOD_PAYLOAD}.AAAA"),
        ("header", ".".join([segment(b'{"alg":"ES256","alg":"none"}'), GOOD_PAYLOAD, "AAAA"])),
        ("header", ".".join([segment(b"[1]"), GOOD_PAYLOAD, "AAAA"])),
        ("payload", ".".join([GOOD_HEADER, segment(b'{"a":1} x'), "AAAA"])),
        ("payload", ".".join([GOOD_HEADER, segment(b'{"a":"\\ud800"}'), "AAAA"])),
        ("payload", ".".join([GOOD_HEADER, segment(b"\xff"), "AAAA"])),
        ("payload", f"{GOOD_HEADER}..AAAA"),
        ("signature", f"{GOOD_HEADER}.{GOOD_PAYLOAD}.a+b/"),
        ("signature", f"{GOOD_HEADER}.{GOOD_PAYLOAD}.QR"),
    ],
)
def test_each_undecodable_part_is_a_malformed_finding_for_that_part(part: str, text: str) -> None:
    assert ("malformed", part) in [(f.code, f.part) for f in audit(text).findings]


def test_a_malformed_payload_still_gets_header_findings() -> None:
    report = audit(".".join([segment({"alg": "none"}), segment(b"garbage"), ""]))
    assert [f.code for f in report.findings] == ["malformed", "alg_none", "typ_missing"]


def test_five_segments_are_reported_as_an_encrypted_jwe() -> None:
    f = finding("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "malformed")
    assert "JWE" in f.message


def test_bytes_tokens_are_inspected_like_text() -> None:
    text = token(ES, good_claims(exp=None))
    assert codes(text) == [f.code for f in audit(text.encode()).findings]


@given(st.text(max_size=200))
def test_any_text_gives_a_report_never_an_exception(text: str) -> None:
    assert isinstance(audit(text), Report)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=10,
        ),
        max_size=6,
    )
)
def test_any_json_header_and_payload_give_a_report_never_an_exception(value: dict[str, Any]) -> None:
    assert isinstance(audit(token(value, value)), Report)


# ----------------------------------------------------------------------------- the report


def test_flagged_values_are_masked_in_the_displayed_payload() -> None:
    report = audit(token(ES, good_claims(card="4111 1111 1111 1111", password="hunter2")))
    shown = report.display_payload()
    assert shown is not None
    assert (shown["card"], shown["password"]) == ("<masked: card_number>", "<masked: sensitive_name>")


def test_show_secrets_displays_the_payload_as_it_is() -> None:
    report = audit(token(ES, good_claims(card="4111 1111 1111 1111")))
    assert report.display_payload(show_secrets=True) == report.payload


def test_masking_follows_pointers_into_arrays_and_escaped_names() -> None:
    claims = good_claims(cards=["x", "4111 1111 1111 1111"], **{"a/b": {"password": "p"}})
    shown = audit(token(ES, claims)).display_payload()
    assert shown is not None
    assert shown["cards"] == ["x", "<masked: card_number>"]
    assert shown["a/b"] == {"password": "<masked: sensitive_name>"}


def test_masking_does_not_change_the_report_payload() -> None:
    report = audit(token(ES, good_claims(card="4111 1111 1111 1111")))
    report.display_payload()
    assert report.payload is not None and report.payload["card"] == "4111 1111 1111 1111"


def test_json_view_masks_by_default_and_lists_the_masked_paths() -> None:
    view = audit(token(ES, good_claims(card="4111 1111 1111 1111"))).to_dict()
    assert (view["payload"]["card"], view["masked"]) == ("<masked: card_number>", ["/card"])


def test_report_repr_shows_codes_not_claim_values() -> None:
    text = repr(audit(token(ES, good_claims(password="hunter2"))))
    assert "hunter2" not in text and "sensitive_name" in text


def test_times_are_dates_and_seconds_relative_to_now() -> None:
    report = audit(token(ES, good_claims(iat=int(NOW) - 60, exp=int(NOW) + 840)))
    assert [(t.name, t.iso, t.relative) for t in report.times] == [
        ("iat", "2023-11-14T22:12:20Z", -60.0),
        ("exp", "2023-11-14T22:27:20Z", 840.0),
    ]


def test_a_time_beyond_the_calendar_has_no_date() -> None:
    [exp] = [t for t in audit(token(ES, good_claims(exp=10**30))).times if t.name == "exp"]
    assert exp.iso is None


def test_worst_is_the_highest_severity() -> None:
    assert audit(token({"alg": "none"}, good_claims(), b"")).worst == Severity.CRITICAL
    assert audit(token(ES, good_claims())).worst is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (901, "15 min 1 s"), (3600, "1 h"),
     (90061, "1 d 1 h"), (10 * 365 * 86400, "more than 10 years"), (float("inf"), "more than 10 years")],
)  # fmt: skip
def test_durations_show_the_two_largest_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# ----------------------------------------------------------------------------- verification


def es256_public() -> KeySet:
    return keyset_for("ES256").public()


def test_no_key_means_no_verification() -> None:
    report = audit(issued())
    assert report.verification is None and not report.verified


def test_the_right_key_verifies_and_names_the_key_used() -> None:
    report = audit(issued(), keys=es256_public())
    assert report.verified and report.findings == ()
    assert report.verification is not None
    assert report.verification.kid == next(iter(es256_public())).kid


def test_without_expected_values_iss_and_aud_are_reported_unpinned() -> None:
    verification = audit(issued(), keys=es256_public()).verification
    assert verification is not None
    assert (verification.issuer_pinned, verification.audience_pinned) == (False, False)


def test_a_tampered_token_fails_at_the_signature() -> None:
    verification = audit(tamper(issued()), keys=es256_public()).verification
    assert verification is not None
    assert (verification.code, verification.error, verification.part) == ("bad_signature", "BadSignature", "signature")


def test_a_failed_verification_is_a_high_finding_at_the_failed_check() -> None:
    report = audit(tamper(issued()), keys=es256_public())
    f = report.findings[-1]
    assert (f.code, f.severity, f.part) == ("verification_failed", Severity.HIGH, "signature")


def test_an_expired_token_fails_at_exp_with_its_path() -> None:
    report = audit_token(issued(), now=NOW + 3600, keys=es256_public())
    assert report.verification is not None
    assert (report.verification.code, report.verification.path) == ("expired", "/exp")


def test_an_expected_issuer_that_differs_fails_at_iss() -> None:
    verification = audit(issued(), keys=es256_public(), issuer="https://other.example.com").verification
    assert verification is not None and verification.code == "bad_issuer"


def test_an_expected_audience_that_matches_is_pinned() -> None:
    verification = audit(issued(), keys=es256_public(), audience=AUD).verification
    assert verification is not None and verification.verified and verification.audience_pinned


def test_a_token_with_an_unknown_kid_fails_at_the_key() -> None:
    verification = audit(issued(), keys=KeySet.generate("ES256").public()).verification
    assert verification is not None
    assert (verification.code, verification.path) == ("unknown_key", "/kid")


def test_a_token_whose_alg_is_not_the_keys_fails_before_any_crypto() -> None:
    text = token({"alg": "HS256", "typ": "JWT"}, good_claims())
    verification = audit(text, keys=es256_public()).verification
    assert verification is not None and verification.code == "alg_not_allowed"


def test_alg_none_fails_verification() -> None:
    verification = audit(token({"alg": "none"}, good_claims(), b""), keys=es256_public()).verification
    assert verification is not None and verification.code == "alg_not_allowed"


def test_a_jku_header_fails_verification_at_that_header() -> None:
    key = next(iter(keyset_for("ES256")))
    header = {"alg": "ES256", "kid": key.kid, "jku": "https://attacker.example/jwks"}
    verification = audit(token(header, good_claims()), keys=es256_public()).verification
    assert verification is not None
    assert (verification.code, verification.path) == ("unsupported_header", "/jku")


def test_a_malformed_token_fails_verification_as_malformed() -> None:
    verification = audit("not-a-token", keys=es256_public()).verification
    assert verification is not None and (verification.code, verification.part) == ("malformed", "token")


def test_an_hmac_secret_verifies_an_hmac_token() -> None:
    secret_keys = keyset_for("HS256")
    assert audit(issued("HS256"), keys=secret_keys).verified


def test_a_required_typ_that_differs_fails_at_typ() -> None:
    verification = audit(issued(), keys=es256_public(), typ="dpop+jwt").verification
    assert verification is not None and (verification.code, verification.path) == ("bad_type", "/typ")


def test_algorithms_without_a_key_raise_value_error() -> None:
    with pytest.raises(ValueError, match="no key"):
        audit(issued(), keys=es256_public(), algorithms=["RS256"])


def test_an_hmac_token_with_a_wrong_signature_fails_at_the_signature() -> None:
    keys = KeySet([HMACKey(b"s" * 32, "HS256", kid="k")])
    text = token({"alg": "HS256", "kid": "k", "typ": "JWT"}, good_claims(), b"\x00" * 32)
    verification = audit(text, keys=keys).verification
    assert verification is not None and verification.code == "bad_signature"


def test_verification_uses_the_given_now_as_its_clock() -> None:
    verification = audit_token(issued(), now=NOW + 900, keys=es256_public(), leeway=0).verification
    assert verification is not None and verification.code == "expired"


def test_signature_bytes_are_kept_for_the_report() -> None:
    report = audit(token(ES, good_claims(), b"\x07" * 64))
    assert report.signature == b"\x07" * 64 and report.alg == "ES256"


def test_unpadded_standard_segments_are_decoded_like_the_verifier_does() -> None:
    text = f"{segment(ES)}.{b64(b'{}')}.{b64(b'x' * 64)}"
    assert audit(text).payload == {}


# ----------------------------------------------------------------------------- DPoP-bound tokens


JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"


def test_a_short_lived_dpop_bound_token_has_no_findings_and_shows_its_jkt() -> None:
    text = issued(cnf={"jkt": JKT})
    report = audit(text)
    assert codes(text) == [] and report.jkt == JKT
    assert report.to_dict()["cnf"] == {"jkt": JKT}
    assert f"DPoP-bound to the key with thumbprint {JKT}" in render_plain(report)
    assert audit(issued()).to_dict()["cnf"] is None and "DPoP-bound" not in render_plain(audit(issued()))


@pytest.mark.parametrize("claims", [
    {"exp": int(NOW) + 3600},
    {"iat": None, "nbf": int(NOW), "exp": int(NOW) + 901},
    {"iat": None, "exp": int(NOW) + 86400},  # neither iat nor nbf: the time left
])
def test_a_long_lived_dpop_bound_token_gets_the_stable_dpop_finding(claims: dict[str, Any]) -> None:
    text = token(ES, good_claims(cnf={"jkt": JKT}, **claims))
    found = finding(text, "dpop_long_lived")
    assert found.severity is Severity.LOW and found.part == "payload" and found.path == "/cnf/jkt"
    assert "RFC 9449" in found.message and "nonce" in CATALOG["dpop_long_lived"].fix
    assert "lifetime_too_long" in codes(text)  # the general finding stays
    assert format_duration(_lifetime(claims)) in found.message


def _lifetime(claims: dict[str, Any]) -> float:
    start = claims.get("nbf", int(NOW)) if claims.get("iat", 0) is None else int(NOW)
    return float(claims["exp"] - start)


@pytest.mark.parametrize("cnf", [{"jkt": 5}, "jkt", {"jwk": {"kty": "EC"}}, {}])
def test_no_dpop_finding_without_a_string_jkt(cnf: Any) -> None:
    text = token(ES, good_claims(cnf=cnf, exp=int(NOW) + 86400))
    assert "dpop_long_lived" not in codes(text) and audit(text).jkt is None


def test_inspect_verifies_a_dpop_bound_token_with_its_keys() -> None:
    report = audit(issued(cnf={"jkt": JKT}), keys=keyset_for("ES256").public())
    assert report.verified, report.verification
