"""The attack corpus: each case is forged the way its catalogue entry says, from one token."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from jwtwarden import Issuer, Key, KeySet
from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.jose.jws import DEFAULT_MAX_TOKEN_SIZE
from jwtwarden.keys import AsymmetricKey, HMACKey
from jwtwarden.scan import CATALOGUE, AttackCase, Impact, derive_attacks, select, weak_secrets
from jwtwarden.scan import errors as scan_errors
from jwtwarden.scan.attacks import ATTACKER_URL, parse_token
from jwtwarden.scan.errors import BadScanKey, BadScanToken
from jwtwarden.scan.keys import ATTACKER_KID, load_public_keys, load_signing_key
from jwtwarden.scan.weak_secrets import crack_hmac_secret
from tests.conftest import AUD, ISS, NOW, keyset_for
from tests.scan_targets import WEAK_SECRET, sign


def issue(alg: str) -> str:
    return Issuer(keyset_for(alg), issuer=ISS, audience=AUD).issue("u1", {"role": "user"})


def by_id(cases: list[AttackCase]) -> dict[str, AttackCase]:
    return {case.id: case for case in cases}


def header(token: str) -> dict[str, Any]:
    return dict(json.loads(b64url_decode(token.split(".")[0])))


def payload(token: str) -> dict[str, Any]:
    return dict(json.loads(b64url_decode(token.split(".")[1])))


def signature(token: str) -> bytes:
    return b64url_decode(token.split(".")[2])


def hs256(secret: bytes, token: str) -> bytes:
    head, body, _ = token.split(".")
    return hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()


@pytest.fixture(scope="module")
def es256_cases() -> dict[str, AttackCase]:
    keys = keyset_for("ES256")
    return by_id(derive_attacks(issue("ES256"), public_key=keys.public(), signing_key=keys, now=NOW))


# ---- the catalogue ----------------------------------------------------------------------------


def test_catalogue_ids_are_lowercase_words_joined_by_dashes() -> None:
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", attack_id) for attack_id in CATALOGUE)


def test_every_catalogue_entry_says_why_it_matters_and_how_to_fix_it() -> None:
    assert all(spec.title and spec.why.endswith(".") and spec.fix for spec in CATALOGUE.values())


def test_only_info_attacks_are_not_vulnerabilities_when_accepted() -> None:
    lenient = {s.id for s in CATALOGUE.values() if not s.vulnerable_if_accepted}
    assert lenient == {s.id for s in CATALOGUE.values() if s.impact is Impact.INFO}
    assert "padded-base64-signature" in lenient and "alg-none-lowercase-unsigned" not in lenient


def test_a_full_derivation_covers_the_whole_catalogue() -> None:
    keys = keyset_for("ES256")
    ids = {c.id for c in derive_attacks(issue("ES256"), public_key=keys.public(), signing_key=keys,
                                        other_token=issue("ES256"))}
    rsa_only = {"hmac-public-key-pkcs1-pem"}
    hmac_only = {"weak-secret-forged-token"}
    dpop = {i for i, spec in CATALOGUE.items() if spec.category == "dpop"}  # jwtwarden.scan.dpop
    assert set(CATALOGUE) - ids == rsa_only | hmac_only | dpop


def test_cases_come_in_catalogue_order_each_id_once(es256_cases: dict[str, AttackCase]) -> None:
    order = list(CATALOGUE)
    ids = list(es256_cases)
    assert ids == sorted(ids, key=order.index)
    assert len(ids) <= 60


# ---- alg none ------------------------------------------------------------------------------


def test_alg_none_comes_in_seven_spellings(es256_cases: dict[str, AttackCase]) -> None:
    algs = {header(c.token)["alg"] for c in es256_cases.values() if c.category == "alg-none"}
    assert algs == {"none", "None", "NONE", "nOnE", "none ", " none", "none\x00"}


def test_alg_none_unsigned_cases_have_an_empty_signature(es256_cases: dict[str, AttackCase]) -> None:
    unsigned = [c for c in es256_cases.values() if c.id.startswith("alg-none-") and c.id.endswith("-unsigned")]
    assert len(unsigned) == 7
    assert all(c.token.endswith(".") for c in unsigned)


def test_alg_none_signed_cases_keep_the_original_signature() -> None:
    token = issue("ES256")
    cases = [c for c in derive_attacks(token) if c.id.startswith("alg-none-") and c.id.endswith("-signed")]
    assert {c.token.split(".")[2] for c in cases} == {token.split(".")[2]}


def test_alg_none_keeps_the_original_payload_segment() -> None:
    token = issue("ES256")
    case = by_id(derive_attacks(token))["alg-none-lowercase-unsigned"]
    assert case.token.split(".")[1] == token.split(".")[1]


# ---- key confusion -------------------------------------------------------------------------


def rsa_encodings(key: AsymmetricKey) -> dict[str, bytes]:
    pub = key.public_key
    pem = key.to_pem()
    return {
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "pkcs1-pem": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "der": pub.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk-json": json.dumps(key.to_jwk()).encode(),
        "jwk-json-compact": json.dumps(key.to_jwk(), separators=(",", ":")).encode(),
    }


@pytest.mark.parametrize("encoding", ["pem", "pem-no-newline", "pkcs1-pem", "der", "jwk-json",
                                      "jwk-json-compact"])
def test_key_confusion_is_hs256_signed_with_the_public_key_encoding(encoding: str) -> None:
    keys = keyset_for("RS256")
    key = next(iter(keys.public()))
    assert isinstance(key, AsymmetricKey)
    case = by_id(derive_attacks(issue("RS256"), public_key=keys.public()))[f"hmac-public-key-{encoding}"]
    assert header(case.token)["alg"] == "HS256"
    assert signature(case.token) == hs256(rsa_encodings(key)[encoding], case.token)


def test_key_confusion_needs_the_public_key() -> None:
    assert not [c for c in derive_attacks(issue("RS256")) if c.category == "key-confusion"]


def test_the_public_key_is_read_from_pem_jwk_and_jwks_alike() -> None:
    key = next(iter(keyset_for("ES256").public()))
    assert isinstance(key, AsymmetricKey)
    jwk = key.to_jwk()
    sources: list[Any] = [key.to_pem(), key.to_pem().decode(), jwk, {"keys": [jwk]},
                          json.dumps({"keys": [jwk]}), key, keyset_for("ES256")]
    numbers = {load_public_keys(s)[0].key.public_numbers() for s in sources}  # type: ignore[union-attr]
    assert numbers == {key.public_key.public_numbers()}  # type: ignore[union-attr]


def test_a_private_pem_given_as_public_key_is_refused() -> None:
    key = next(iter(keyset_for("ES256")))
    assert isinstance(key, AsymmetricKey)
    with pytest.raises(BadScanKey) as info:
        load_public_keys(key.to_pem(private=True))
    assert info.value.code == "bad_key"


def test_the_key_named_by_kid_is_chosen_from_a_jwks() -> None:
    keys = keyset_for("RS256")
    decoy = KeySet([Key.generate("RS256", kid="decoy")]).public()
    jwks = {"keys": decoy.to_jwks()["keys"] + keys.public().to_jwks()["keys"]}
    key = next(iter(keys.public()))
    assert isinstance(key, AsymmetricKey)
    case = by_id(derive_attacks(issue("RS256"), public_key=jwks))["hmac-public-key-pem"]
    assert signature(case.token) == hs256(key.to_pem(), case.token)


# ---- signatures and claims -----------------------------------------------------------------


def test_signature_cases_change_only_the_signature(es256_cases: dict[str, AttackCase]) -> None:
    token = issue("ES256")
    head_body = token.rsplit(".", 1)[0]
    for attack_id in ("signature-removed", "signature-truncated", "signature-zeroed",
                      "signature-bit-flipped", "signature-wrong-key"):
        forged = by_id(derive_attacks(token))[attack_id].token
        assert forged.rsplit(".", 1)[0] == head_body, attack_id
        assert forged != token, attack_id


def test_signature_from_other_token_uses_the_other_token_given() -> None:
    token, other = issue("ES256"), issue("ES256")
    case = by_id(derive_attacks(token, other_token=other))["signature-from-other-token"]
    assert case.token == f"{token.rsplit('.', 1)[0]}.{other.split('.')[2]}"


def test_claims_tampering_keeps_header_and_signature(es256_cases: dict[str, AttackCase]) -> None:
    token = issue("ES256")
    cases = by_id(derive_attacks(token))
    role = cases["claims-tampered-role"].token
    assert role.split(".")[0::2] == token.split(".")[0::2]
    assert payload(role)["role"] == "admin"
    assert payload(cases["claims-tampered-sub"].token)["sub"] != "u1"


# ---- kid injection, key headers, ECDSA ---------------------------------------------------


@pytest.mark.parametrize(("attack_id", "secret"), [
    ("kid-path-traversal-dev-null", b""),
    ("kid-path-traversal-dev-null-nul-byte", b"\x00"),
    ("kid-absolute-path-dev-null", b""),
    ("kid-sql-injection-union", b"jwtwarden-scan-key"),
])
def test_kid_injection_is_signed_with_the_key_the_injection_loads(
    es256_cases: dict[str, AttackCase], attack_id: str, secret: bytes
) -> None:
    case = es256_cases[attack_id]
    kid = header(case.token)["kid"]
    assert "/dev/null" in kid or "UNION SELECT" in kid
    assert signature(case.token) == hs256(secret, case.token)


def test_embedded_jwk_verifies_the_token_it_sits_in(es256_cases: dict[str, AttackCase]) -> None:
    token = es256_cases["embedded-jwk-attacker-key"].token
    embedded = Key.from_jwk(header(token)["jwk"])
    head, body, _ = token.split(".")
    embedded.verify_signature(f"{head}.{body}".encode(), signature(token))
    assert header(token)["kid"] == ATTACKER_KID


def test_jku_and_x5u_point_at_an_unresolvable_attacker_url(es256_cases: dict[str, AttackCase]) -> None:
    assert header(es256_cases["jku-attacker-url"].token)["jku"].startswith(ATTACKER_URL)
    assert header(es256_cases["x5u-attacker-url"].token)["x5u"].startswith("https://attacker.invalid/")


def test_jku_points_at_the_callback_url_when_one_is_given() -> None:
    url = "https://callback.example/hook"
    case = by_id(derive_attacks(issue("ES256"), callback_url=url))["jku-attacker-url"]
    assert header(case.token)["jku"] == url


def test_ecdsa_zero_signature_is_64_zero_bytes_for_es256(es256_cases: dict[str, AttackCase]) -> None:
    assert signature(es256_cases["ecdsa-zero-signature"].token) == bytes(64)
    assert decode_dss_signature(signature(es256_cases["ecdsa-zero-signature-der"].token)) == (0, 0)


@pytest.mark.parametrize("alg", ["RS256", "EdDSA", "HS256"])
def test_ecdsa_cases_only_for_ecdsa_tokens(alg: str) -> None:
    assert not [c for c in derive_attacks(issue(alg)) if c.category == "ecdsa"]


# ---- weak secrets ----------------------------------------------------------------------------


def test_a_weak_hmac_secret_is_cracked_and_a_new_token_forged_with_it() -> None:
    case = by_id(derive_attacks(sign("HS256", WEAK_SECRET)))["weak-secret-forged-token"]
    assert signature(case.token) == hs256(WEAK_SECRET, case.token)
    assert payload(case.token)["jwtwarden_scan"] == "weak-secret-forged-token"


def test_a_cracked_secret_unlocks_the_signed_attacks() -> None:
    ids = {c.id for c in derive_attacks(sign("HS256", WEAK_SECRET))}
    assert {"exp-in-past", "exp-missing", "crit-unknown-extension"} <= ids


def test_a_strong_hmac_secret_is_not_cracked() -> None:
    ids = {c.id for c in derive_attacks(issue("HS256"))}
    assert "weak-secret-forged-token" not in ids and "exp-in-past" not in ids


def test_the_weak_secret_is_never_in_a_case_note() -> None:
    cases = derive_attacks(sign("HS256", WEAK_SECRET))
    assert all(WEAK_SECRET.decode() not in case.note for case in cases)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_weak_secrets_are_cracked_for_every_hmac_size(alg: str) -> None:
    token = sign(alg, b"changeme")
    parsed = parse_token(token)
    assert crack_hmac_secret(parsed.signing_input, parsed.signature, alg) == b"changeme"


def test_the_weak_secret_list_holds_the_classic_examples() -> None:
    assert {b"secret", b"your-256-bit-secret", b"changeme", b""} <= set(weak_secrets())


# ---- attacks that need the signing key ---------------------------------------------------


def test_signed_attacks_need_a_signing_key() -> None:
    needing = {s.id for s in CATALOGUE.values() if s.requires == "signing-key"}
    assert not needing & {c.id for c in derive_attacks(issue("ES256"))}


def test_signed_attacks_verify_with_the_signing_key(es256_cases: dict[str, AttackCase]) -> None:
    key = next(iter(keyset_for("ES256")))
    for case in es256_cases.values():
        if case.spec.requires == "signing-key" and case.id != "zip-deflate-payload":
            head, body, _ = case.token.split(".")
            key.verify_signature(f"{head}.{body}".encode(), signature(case.token))


def test_expired_case_expired_an_hour_before_now(es256_cases: dict[str, AttackCase]) -> None:
    assert payload(es256_cases["exp-in-past"].token)["exp"] == int(NOW) - 3600


def test_missing_exp_case_has_no_exp(es256_cases: dict[str, AttackCase]) -> None:
    assert "exp" not in payload(es256_cases["exp-missing"].token)


def test_not_yet_valid_case_starts_an_hour_after_now(es256_cases: dict[str, AttackCase]) -> None:
    assert payload(es256_cases["nbf-in-future"].token)["nbf"] == int(NOW) + 3600


def test_a_signing_key_that_did_not_sign_the_token_is_refused() -> None:
    with pytest.raises(BadScanKey) as info:
        derive_attacks(issue("ES256"), signing_key=KeySet.generate("ES256"))
    assert info.value.code == "bad_key"


def test_a_raw_secret_is_a_signing_key() -> None:
    signing = load_signing_key(WEAK_SECRET)
    assert signing.is_hmac and "your" not in repr(signing)


def test_an_hmac_key_object_is_a_signing_key() -> None:
    key = next(iter(keyset_for("HS256")))
    assert isinstance(key, HMACKey)
    ids = {c.id for c in derive_attacks(issue("HS256"), signing_key=key)}
    assert "exp-in-past" in ids


# ---- parsing ---------------------------------------------------------------------------------


def test_duplicate_alg_header_names_alg_twice_the_last_none(es256_cases: dict[str, AttackCase]) -> None:
    text = b64url_decode(es256_cases["duplicate-member-alg-none"].token.split(".")[0]).decode()
    assert text.count('"alg"') == 2 and text.endswith('"alg":"none"}')


def test_padded_signature_decodes_to_the_same_bytes() -> None:
    token = issue("ES256")
    padded = by_id(derive_attacks(token))["padded-base64-signature"].token
    assert padded.endswith("=") and padded.rstrip("=") == token


def test_oversized_tokens_exceed_the_default_limit(es256_cases: dict[str, AttackCase]) -> None:
    assert len(es256_cases["oversized-token"].token) > DEFAULT_MAX_TOKEN_SIZE
    assert len(es256_cases["oversized-token-signed"].token) > DEFAULT_MAX_TOKEN_SIZE


# ---- input and output ------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "e30.e30.", "eyJ4IjoxfQ.e30.AAAA",
                                   "e30=.e30.AAAA"])
def test_a_token_that_is_not_a_signed_jwt_is_refused(token: str) -> None:
    with pytest.raises(BadScanToken) as info:
        derive_attacks(token)
    assert info.value.code == "bad_token"


def test_a_case_repr_never_shows_the_token(es256_cases: dict[str, AttackCase]) -> None:
    case = es256_cases["alg-none-lowercase-signed"]
    assert case.token not in repr(case) and case.token.split(".")[2] not in repr(case)


def test_select_matches_ids_and_categories_by_pattern(es256_cases: dict[str, AttackCase]) -> None:
    cases = list(es256_cases.values())
    chosen = {c.id for c in select(cases, ["ecdsa", "signature-removed", "kid-sql-*"])}
    assert chosen == {"ecdsa-zero-signature", "ecdsa-zero-signature-der", "signature-removed",
                      "kid-sql-injection-union"}


# ---- the documentation ---------------------------------------------------------------------

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "scan.md").read_text(encoding="utf-8")


def test_every_attack_id_is_in_the_documented_catalogue() -> None:
    assert [attack_id for attack_id in CATALOGUE if f"| `{attack_id}` |" not in DOCS] == []


def test_every_scan_error_code_is_documented() -> None:
    codes = {getattr(scan_errors, name).code for name in scan_errors.__all__}
    abstract = {"scan_error", "calibration_failed", "target_error"}
    assert [code for code in codes - abstract if f"`{code}`" not in DOCS] == []
