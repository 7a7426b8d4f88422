"""Tests for the payload linter (jwtwarden.lint).

All test data is fake: the Visa test card 4111 1111 1111 1111, AWS's documented example key
AKIAIOSFODNN7EXAMPLE, and token-shaped strings assembled from pieces at run time (so that
this file itself never contains a complete token for a secret scanner to trip over).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwtwarden.lint import Finding, Severity, lint_claims

CARD = "4111 1111 1111 1111"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SSN = "123-45-6789"
EMAIL = "alice@example.com"
PHONE = "+1 (555) 123-4567"
# A hand-typed 32-character base62 string: looks random, is not anyone's secret.
RANDOM_32 = "Zx8kQ2pL9vN4mR7tW1yB6cF3hJ5gK0sD"
UUID = "3f2b8c1e-9d4a-4e6b-a1c7-5e8f0b2d4c69"
B62 = string.ascii_letters + string.digits
BODY_36 = "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2"  # 36 base62 characters

ALL_CODES = {
    "sensitive_name",
    "card_number",
    "ssn",
    "email",
    "phone",
    "cloud_key",
    "access_token",
    "private_key",
    "embedded_jwt",
    "high_entropy",
    "too_deep",
}


def b64url_json(obj: object) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(header: dict[str, object] | None = None) -> str:
    head = b64url_json(header if header is not None else {"alg": "HS256", "typ": "JWT"})
    return f"{head}.{b64url_json({'sub': 'user-1'})}.c2lnbmF0dXJl"


def pem(label: str) -> str:
    dashes = "-" * 5
    return f"{dashes}BEGIN {label}{dashes}\nMIIEfakefakefake\n{dashes}END {label}{dashes}\n"


def codes_for_value(value: object) -> list[str]:
    """The codes reported for ``value`` under a harmless claim name."""
    return [f.code for f in lint_claims({"data": value})]


def codes_for_name(name: str, value: object = "x") -> list[str]:
    return [f.code for f in lint_claims({name: value})]


def nest(value: object, levels: int) -> dict[str, object]:
    """``value`` wrapped in ``levels`` objects: its pointer has ``levels`` segments."""
    for _ in range(levels):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


# ----------------------------------------------------------------------------- API shape


def test_severity_is_ordered_low_medium_high() -> None:
    assert Severity.LOW < Severity.MEDIUM < Severity.HIGH
    assert [int(s) for s in Severity] == [1, 2, 3]


def test_finding_is_frozen() -> None:
    finding = Finding("email", Severity.MEDIUM, "/a", "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.code = "other"  # type: ignore[misc]


def test_finding_uses_slots() -> None:
    assert not hasattr(Finding("email", Severity.MEDIUM, "/a", "m"), "__dict__")


def test_clean_payload_has_no_findings() -> None:
    claims = {
        "iss": "https://auth.example.com",
        "sub": UUID,
        "aud": ["api://orders", "https://api.example.com"],
        "exp": 1700003600,
        "iat": 1700000000,
        "jti": "q3JHf0xk2Yp9dLwZ1mN8rA",
        "scope": "orders:read orders:write",
        "roles": ["admin", "dev"],
        "name": "Alice Example",
        "locale": "en-US",
        "acr": "urn:mace:incommon:iap:silver",
        "features": {"beta": True, "max_seats": 250, "ratio": 0.5, "note": None},
    }
    assert lint_claims(claims) == []


def test_empty_claims_have_no_findings() -> None:
    assert lint_claims({}) == []


@pytest.mark.parametrize(
    ("claims", "code", "severity"),
    [
        ({"password": "x"}, "sensitive_name", Severity.HIGH),
        ({"data": CARD}, "card_number", Severity.HIGH),
        ({"data": SSN}, "ssn", Severity.HIGH),
        ({"data": AWS_KEY_ID}, "cloud_key", Severity.HIGH),
        ({"data": "ghp_" + BODY_36}, "access_token", Severity.HIGH),
        ({"data": pem("PRIVATE KEY")}, "private_key", Severity.HIGH),
        ({"data": make_jwt()}, "embedded_jwt", Severity.HIGH),
        ({"data": EMAIL}, "email", Severity.MEDIUM),
        ({"data": PHONE}, "phone", Severity.MEDIUM),
        ({"data": RANDOM_32}, "high_entropy", Severity.MEDIUM),
        (nest("x", 40), "too_deep", Severity.LOW),
    ],
)
def test_each_code_has_its_documented_severity(
    claims: dict[str, object], code: str, severity: Severity
) -> None:
    [finding] = lint_claims(claims)
    assert (finding.code, finding.severity) == (code, severity)


# ----------------------------------------------------------------------------- sensitive_name


@pytest.mark.parametrize(
    "name",
    [
        "password", "Password", "PASSWORD", "passwd", "pwd", "user_password", "dbPassword",
        "pass_hash", "password_hash", "passwordHash", "secret", "client_secret",
        "clientSecret", "clientsecret", "CLIENT_SECRET", "api_key", "apiKey", "api-key",
        "API_KEY", "apikey", "APIKey", "x-api-key", "private_key", "privateKey",
        "access_token", "accessToken", "refresh_token", "id_token", "IDToken",
        "credit_card", "creditCard", "card_number", "cardNumber", "cvv", "CVV2", "cvc",
        "ssn", "SSN", "social_security", "social_security_number", "pin", "PIN", "pin_code",
        "secrets", "passwords", "api_keys", "aws_secret_access_key", "auth_token",
        "passphrase", "reset_password_token", "dbpassword_hash",
    ],
)  # fmt: skip
def test_sensitive_name_fires(name: str) -> None:
    assert codes_for_name(name) == ["sensitive_name"]


@pytest.mark.parametrize(
    "name",
    [
        "passenger", "compass", "pinned", "spinner", "pineapple", "secretary", "Secretary",
        "passport", "keyboard", "token", "token_type", "kid", "key_id", "public_key",
        "publicKey", "pass", "boarding_pass", "passwordless",
        # metadata about a secret, not the secret
        "password_expires_at", "passwordChangedAt", "password_policy", "pin_length",
        "api_key_id", "client_secret_expires_at", "has_password", "hasPassword", "is_secret",
        # a hash of a random secret is fine
        "access_token_hash", "accessTokenHash", "clientsecret_hash",
    ],
)  # fmt: skip
def test_sensitive_name_does_not_fire_on_near_miss(name: str) -> None:
    assert codes_for_name(name) == []


@pytest.mark.parametrize(
    "name",
    [
        "sub", "iss", "aud", "exp", "nbf", "iat", "jti", "sid", "scope", "scp", "roles",
        "azp", "client_id", "typ", "nonce", "auth_time", "acr", "amr", "at_hash", "c_hash",
        "cnf",
    ],
)  # fmt: skip
def test_sensitive_name_never_fires_on_registered_claims(name: str) -> None:
    assert "sensitive_name" not in codes_for_name(name, "some value")


def test_sensitive_name_fires_at_any_depth() -> None:
    [finding] = lint_claims({"config": {"db": [{"dbPassword": "x"}]}})
    assert (finding.code, finding.path) == ("sensitive_name", "/config/db/0/dbPassword")


def test_sensitive_name_fires_on_container_values() -> None:
    assert codes_for_name("credentials_secret", {"value": "x"}) == ["sensitive_name"]


def test_sensitive_name_fires_on_numbers_and_empty_strings() -> None:
    assert codes_for_name("pin", 1234) == ["sensitive_name"]
    assert codes_for_name("password", "") == ["sensitive_name"]


@pytest.mark.parametrize("value", [None, True, False])
def test_sensitive_name_ignores_null_and_boolean_values(value: object) -> None:
    assert codes_for_name("password", value) == []


def test_password_hash_fires_because_guessable_secrets_can_be_cracked() -> None:
    assert codes_for_name("pin_hash") == ["sensitive_name"]


# ----------------------------------------------------------------------------- card_number


@pytest.mark.parametrize(
    "value",
    [
        CARD,
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555555555554444",
        "378282246310005",  # Amex test number, 15 digits
        "2223003122003222",  # Mastercard 2-series test number
        "3782 822463 10005",  # Amex grouping 4-6-5
        "card: 4111 1111 1111 1111, exp 12/30",
        4111111111111111,
    ],
)
def test_card_number_fires(value: object) -> None:
    assert codes_for_value(value) == ["card_number"]


@pytest.mark.parametrize(
    "value",
    [
        "4111 1111 1111 1112",  # fails the Luhn check
        4111111111111112,
        "4111111111111111111111",  # 22 digits: too long
        1700000000,  # a unix timestamp
        "1700000000",
        1700000000004,  # a millisecond timestamp that passes the Luhn check
        1700000000000001,  # a microsecond timestamp that passes the Luhn check
        UUID,
        "0.4111111111111111",  # a decimal fraction
        4.111111111111111e15,
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14",
    ],
)
def test_card_number_does_not_fire_on_near_miss(value: object) -> None:
    assert "card_number" not in codes_for_value(value)


# ----------------------------------------------------------------------------- ssn


@pytest.mark.parametrize("value", [SSN, "123 45 6789", "ssn 078-05-1120 on file"])
def test_ssn_fires(value: str) -> None:
    assert codes_for_value(value) == ["ssn"]


@pytest.mark.parametrize(
    "value",
    [
        "000-12-3456",  # area 000
        "666-12-3456",  # area 666
        "900-12-3456",  # area 9xx
        "123-00-4567",  # group 00
        "123-45-0000",  # serial 0000
        "123-45 6789",  # mixed separators
        "123456789",  # undashed: indistinguishable from any 9-digit id
        "2024-01-15",  # a date
        "555-123-4567",  # a phone number
        "1123-45-6789",
    ],
)
def test_ssn_does_not_fire_on_near_miss(value: str) -> None:
    assert "ssn" not in codes_for_value(value)


# ----------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    "value",
    [
        EMAIL,
        "Bob.Smith+tag@mail.example.co.uk",
        "mailto:alice@example.com",
        "contact alice@example.com for access",
        "https://example.com/users/alice@example.com",
    ],
)
def test_email_fires(value: str) -> None:
    assert codes_for_value(value) == ["email"]


@pytest.mark.parametrize(
    "value",
    [
        "@handle",
        "user@localhost",  # no dotted domain: a local mailbox, not an address that leaks
        "root@127.0.0.1",
        "https://example.com/@user",
        "https://user@example.com/path",  # the user part of a URL
        "lodash@4.17.21",
        "icon@2x.png",
        "a@b.c",
        "not an email at all",
    ],
)
def test_email_does_not_fire_on_near_miss(value: str) -> None:
    assert "email" not in codes_for_value(value)


def test_oidc_email_claim_fires_because_it_is_personal_data() -> None:
    assert codes_for_name("email", EMAIL) == ["email"]


# ----------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    "value",
    [
        "+14155552671",
        "+44 20 7946 0958",
        PHONE,
        "(555) 123-4567",
        "555-123-4567",
        "call 555.123.4567 today",
        "1-555-123-4567",
    ],
)
def test_phone_fires(value: str) -> None:
    assert codes_for_value(value) == ["phone"]


@pytest.mark.parametrize(
    "value",
    [
        1700000000,
        "1700000000",  # a unix timestamp, as a string
        "1.2.3",
        "v10.200.3000",
        "2024-01-15",
        "2024-01-15T10:00:00+01:00",
        "+1234",
        "192.168.100.200",
        "5551234567",  # ten bare digits: as likely an id as a phone number
    ],
)
def test_phone_does_not_fire_on_near_miss(value: object) -> None:
    assert "phone" not in codes_for_value(value)


# ----------------------------------------------------------------------------- cloud_key


CLOUD_KEYS = {
    "aws access key id": AWS_KEY_ID,
    "aws temporary key id": "AS" + "IAIOSFODNN7EXAMPLE",
    "aws key in text": f"aws_access_key_id={AWS_KEY_ID}",
    "google api key": "AI" + "za" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "google oauth client secret": "GOC" + "SPX-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4",
    "stripe live secret key": "sk_" + "live_" + "0" * 24,
    "stripe restricted key": "rk_" + "live_" + "0" * 24,
    "stripe test secret key": "sk_" + "test_" + "0" * 24,
    "stripe webhook secret": "wh" + "sec_" + "0" * 32,
    "slack bot token": "xo" + "xb-" + "123456789012-1234567890123-" + "a" * 24,
    "slack user token": "xo" + "xp-" + "123456789012-1234567890123-" + "a" * 24,
    "slack webhook": "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "X" * 24,
    "sendgrid": "SG." + "a" * 22 + "." + "b" * 43,
    "openai": "sk-" + "A" * 20 + "T3Blbk" + "FJ" + "B" * 20,
    "anthropic": "sk-" + "ant-api03-" + "a" * 95,
    "azure storage": "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + "A" * 86 + "==",
    "azure ad client secret": "abc" + "8Q~" + "a" * 34,
    "digitalocean": "do" + "p_v1_" + "0" * 64,
}


@pytest.mark.parametrize("value", CLOUD_KEYS.values(), ids=CLOUD_KEYS.keys())
def test_cloud_key_fires(value: str) -> None:
    assert codes_for_value(value) == ["cloud_key"]


@pytest.mark.parametrize(
    "value",
    [
        AWS_KEY_ID[:-1],  # 15 characters after the prefix
        AWS_KEY_ID.lower(),
        "x" + AWS_KEY_ID,  # not at a word boundary
        "AKIA is the AWS access key prefix",
        "pk_" + "live_" + "0" * 24,  # Stripe publishable keys are public
        "sk_" + "live_" + "0" * 5,
        "xo" + "xb-" + "short",
        "AI" + "za" + "tooShort",
        "GOC" + "SPX-" + "short",
    ],
)
def test_cloud_key_does_not_fire_on_near_miss(value: str) -> None:
    assert "cloud_key" not in codes_for_value(value)


# ----------------------------------------------------------------------------- access_token


ACCESS_TOKENS = {
    "github classic pat": "gh" + "p_" + BODY_36,
    "github oauth": "gh" + "o_" + BODY_36,
    "github user-to-server": "gh" + "u_" + BODY_36,
    "github server-to-server": "gh" + "s_" + BODY_36,
    "github refresh": "gh" + "r_" + BODY_36,
    "github fine-grained pat": "github" + "_pat_" + "a" * 22 + "_" + "b" * 59,
    "gitlab pat": "gl" + "pat-" + "a1B2c3D4e5F6g7H8i9J0",
    "npm": "np" + "m_" + BODY_36,
    "pypi": "pypi-" + "AgEIcHlwaS5vcmc" + "x" * 60,
    "jwtwarden refresh": "jw" + "r_" + "Ab1-Cd2_" * 11,
    "bearer header": "Bearer " + "gh" + "p_" + BODY_36,
}


@pytest.mark.parametrize("value", ACCESS_TOKENS.values(), ids=ACCESS_TOKENS.keys())
def test_access_token_fires(value: str) -> None:
    assert codes_for_value(value) == ["access_token"]


@pytest.mark.parametrize(
    "value",
    [
        "gh" + "p_" + BODY_36[:-1],  # 35 characters
        "gh" + "x_" + BODY_36,  # no such GitHub prefix
        "xgh" + "p_" + BODY_36,  # not at a word boundary
        "github" + "_pat_" + "a" * 40,
        "gl" + "pat-" + "a" * 19,
        "np" + "m_" + BODY_36[:-1],
        "jw" + "r_" + "a" * 79,
        "jw" + "r_too_short",
    ],
)
def test_access_token_does_not_fire_on_near_miss(value: str) -> None:
    assert "access_token" not in codes_for_value(value)


# ----------------------------------------------------------------------------- private_key


@pytest.mark.parametrize(
    "label",
    [
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ],
)
def test_private_key_fires_on_pem_block(label: str) -> None:
    assert codes_for_value(pem(label)) == ["private_key"]


def test_private_key_fires_on_pem_block_inside_text() -> None:
    assert codes_for_value("here is my key: " + pem("RSA PRIVATE KEY")) == ["private_key"]


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "P-256", "x": "eHg", "y": "eXk", "d": "ZGQ"},
        {"kty": "RSA", "n": "bm4", "e": "AQAB", "d": "ZGQ", "p": "cHA", "q": "cXE"},
        {"kty": "RSA", "n": "bm4", "e": "AQAB", "p": "cHA", "q": "cXE"},
        {"kty": "OKP", "crv": "Ed25519", "x": "eHg", "d": "ZGQ"},
        {"kty": "oct", "k": "c2VjcmV0"},
    ],
)
def test_private_key_fires_on_private_jwk(jwk: dict[str, object]) -> None:
    [finding] = lint_claims({"cnf": {"jwk": jwk}})
    assert (finding.code, finding.path) == ("private_key", "/cnf/jwk")


def test_private_jwk_is_reported_once_not_per_member() -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": RANDOM_32, "y": RANDOM_32, "d": RANDOM_32}
    assert codes_for_value(jwk) == ["private_key"]


@pytest.mark.parametrize(
    "value",
    [
        pem("PUBLIC KEY"),
        pem("RSA PUBLIC KEY"),
        pem("CERTIFICATE"),
        "never put a private key in a token",
        {"kty": "EC", "crv": "P-256", "x": "eHg", "y": "eXk"},  # a public JWK
        {"kty": "oct", "kid": "k1"},
        {"d": "a claim that happens to be called d"},  # no kty: not a JWK
        {"kty": 3, "d": "x"},
    ],
)
def test_private_key_does_not_fire_on_near_miss(value: object) -> None:
    assert "private_key" not in codes_for_value(value)


# ----------------------------------------------------------------------------- embedded_jwt


def test_embedded_jwt_fires_on_compact_jws() -> None:
    assert codes_for_value(make_jwt()) == ["embedded_jwt"]


def test_embedded_jwt_fires_inside_text() -> None:
    assert codes_for_value("Authorization: Bearer " + make_jwt()) == ["embedded_jwt"]


def test_embedded_jwt_fires_on_unsecured_jwt() -> None:
    token = f"{b64url_json({'alg': 'none'})}.{b64url_json({'sub': 'x'})}."
    assert codes_for_value(token) == ["embedded_jwt"]


def test_embedded_jwt_fires_on_compact_jwe() -> None:
    head = b64url_json({"alg": "RSA-OAEP-256", "enc": "A256GCM"})
    assert codes_for_value(f"{head}.a2V5.aXY.Y2lwaGVydGV4dA.dGFn") == ["embedded_jwt"]


@pytest.mark.parametrize(
    "value",
    [
        "1.2.3",
        "a.b.c",
        "api.example.com",
        "www.eyeglasses-shop.example.com",
        f"{b64url_json({'typ': 'JWT'})}.e30.c2ln",  # JSON header without alg
        f"{b64url_json(['alg'])}.e30.c2ln",  # JSON, but not an object
        make_jwt().replace(".", ""),  # no dots
        make_jwt().split(".", 1)[1],  # header missing
    ],
)
def test_embedded_jwt_does_not_fire_on_near_miss(value: str) -> None:
    assert "embedded_jwt" not in codes_for_value(value)


# ----------------------------------------------------------------------------- high_entropy


@pytest.mark.parametrize(
    "value",
    [
        RANDOM_32,
        "Bearer " + RANDOM_32,
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",  # 32 bytes, base64url
        "k8Jd/Qw3+Lm9Zx2Vb7Nc4Hf6Tg1Ry5Ue0Ia3Po8Sd2A=",  # 32 bytes, standard base64
    ],
)
def test_high_entropy_fires(value: str) -> None:
    assert codes_for_value(value) == ["high_entropy"]


def test_high_entropy_fires_on_nearly_all_random_base64url_strings() -> None:
    rng = random.Random(20240115)
    alphabet = B62 + "-_"
    samples = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(32, 64))) for _ in range(500)
    ]
    fired = sum(codes_for_value(s) == ["high_entropy"] for s in samples)
    assert fired >= 0.97 * len(samples)


@pytest.mark.parametrize(
    "value",
    [
        UUID,
        UUID.upper(),
        "q3JHf0xk2Yp9dLwZ1mN8rA",  # a 22-character jti (16 random bytes)
        "https://auth.example.com/realms/acme-production/protocol/openid-connect/token",
        "https://example.com/callback?state=af0ifjsldkj&code=SplxlOBeZQQYbYS6WxSbIA",
        "The quick brown fox jumps over the lazy dog, again and again and again.",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # hex SHA-256
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "ThisIsAVeryLongCamelCaseIdentifier",
        "MyApplicationName2024ProductionEnvironment",
        "AbstractSingletonProxyFactoryBean2",
        "organization_administrator_readonly_2024",
        "/usr/local/lib/python3.11/site-packages/jwtwarden",
        "projects/my-project-123/locations/us-central1/keyRings/my-ring",
        "arn:aws:iam::123456789012:role/MyRole-Name",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "a" * 64,
        "ABABABABABABABABABABABABABABABABABAB1",
        pem("CERTIFICATE").replace("fakefakefake", RANDOM_32 * 2),
    ],
)
def test_high_entropy_does_not_fire_on_near_miss(value: str) -> None:
    assert "high_entropy" not in codes_for_value(value)


def test_high_entropy_does_not_fire_on_camel_case_identifiers_with_numbers() -> None:
    words = [
        "account", "admin", "archive", "billing", "build", "cache", "client", "cluster",
        "config", "customer", "data", "default", "deploy", "device", "event", "export",
        "feature", "gateway", "group", "handler", "import", "invoice", "limit", "local",
        "manager", "metric", "mobile", "network", "order", "owner", "partner", "payment",
        "policy", "primary", "product", "profile", "project", "region", "report", "request",
        "resource", "service", "session", "settings", "storage", "stream", "tenant", "upload",
        "usage", "version", "webhook", "worker",
    ]  # fmt: skip
    rng = random.Random(7)
    samples = []
    for _ in range(500):
        parts = [rng.choice(words).capitalize() for _ in range(rng.randint(4, 7))]
        parts.insert(rng.randrange(len(parts)), str(rng.choice([1, 2, 42, 443, 2024, 8080])))
        samples.append("".join(parts))
    assert [s for s in samples if len(s) >= 32 and "high_entropy" in codes_for_value(s)] == []


@pytest.mark.parametrize(
    "claims",
    [
        {"nonce": RANDOM_32},
        {"jti": RANDOM_32},
        {"sub": RANDOM_32},
        {"at_hash": RANDOM_32},
        {"cnf": {"jkt": RANDOM_32}},
        {"cnf": {"x5t#S256": RANDOM_32}},
        {"x5c": [RANDOM_32 * 4]},
        {"payload_digest": RANDOM_32},
        {"fileHash": RANDOM_32},
        {"cnf": {"jwk": {"kty": "RSA", "n": RANDOM_32 * 8, "e": "AQAB"}}},
    ],
)
def test_high_entropy_does_not_fire_on_values_random_by_design(claims: dict[str, object]) -> None:
    assert lint_claims(claims) == []


def test_specific_detectors_still_fire_on_claims_random_by_design() -> None:
    assert codes_for_name("sub", EMAIL) == ["email"]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (make_jwt(), "embedded_jwt"),
        ("jw" + "r_" + RANDOM_32 * 3, "access_token"),
        ("gh" + "p_" + RANDOM_32 + "Ab1x", "access_token"),
        (pem("RSA PRIVATE KEY").replace("fakefakefake", RANDOM_32 * 2), "private_key"),
        (f"{RANDOM_32} {CARD}", "card_number"),
    ],
)
def test_value_flagged_by_specific_detector_is_not_also_high_entropy(value: str, code: str) -> None:
    assert codes_for_value(value) == [code]


# ----------------------------------------------------------------------------- paths and order


def test_path_of_nested_object_member() -> None:
    [finding] = lint_claims({"user": {"card": CARD}})
    assert finding.path == "/user/card"


def test_path_of_array_item() -> None:
    [finding] = lint_claims({"cards": ["none", CARD]})
    assert finding.path == "/cards/1"


def test_path_of_nested_arrays_and_objects() -> None:
    [finding] = lint_claims({"a": [[0, {"b": [EMAIL]}]]})
    assert finding.path == "/a/0/1/b/0"


def test_path_escapes_tilde_and_slash_per_rfc_6901() -> None:
    [finding] = lint_claims({"a/b": {"c~d": {"~1": CARD}}})
    assert finding.path == "/a~1b/c~0d/~01"


def test_path_of_empty_name() -> None:
    [finding] = lint_claims({"": CARD})
    assert finding.path == "/"


def test_path_of_non_string_key_is_its_text() -> None:
    claims: dict[str, object] = {"by_id": {7: CARD}}
    [finding] = lint_claims(claims)
    assert finding.path == "/by_id/7"


def test_path_is_never_empty() -> None:
    claims = {"a": CARD, "b": [EMAIL], "password": "x", "c": {"d": SSN}}
    assert all(f.path.startswith("/") for f in lint_claims(claims))


def test_findings_come_in_document_order_depth_first() -> None:
    claims = {
        "a": CARD,
        "b": {"password": "x", "c": [EMAIL, {"d": SSN}]},
        "e": AWS_KEY_ID,
    }
    assert [(f.code, f.path) for f in lint_claims(claims)] == [
        ("card_number", "/a"),
        ("sensitive_name", "/b/password"),
        ("email", "/b/c/0"),
        ("ssn", "/b/c/1/d"),
        ("cloud_key", "/e"),
    ]


def test_name_finding_comes_before_value_finding_at_same_path() -> None:
    assert [(f.code, f.path) for f in lint_claims({"card_number": CARD})] == [
        ("sensitive_name", "/card_number"),
        ("card_number", "/card_number"),
    ]


def test_name_finding_comes_before_findings_inside_its_value() -> None:
    findings = lint_claims({"secrets": [AWS_KEY_ID]})
    assert [(f.code, f.path) for f in findings] == [
        ("sensitive_name", "/secrets"),
        ("cloud_key", "/secrets/0"),
    ]


def test_results_are_deterministic() -> None:
    claims = {"x": [EMAIL, CARD, {"apiKey": RANDOM_32}], "y": PHONE, "z": make_jwt()}
    assert lint_claims(claims) == lint_claims(dict(claims)) == lint_claims(claims)


def test_tuples_are_scanned_like_arrays() -> None:
    [finding] = lint_claims({"t": ("ok", CARD)})
    assert finding.path == "/t/1"


def test_str_subclass_values_are_scanned() -> None:
    class Text(str):
        pass

    assert codes_for_value(Text(EMAIL)) == ["email"]


# ----------------------------------------------------------------------------- skip


def test_skip_suppresses_a_top_level_claim() -> None:
    assert lint_claims({"email": EMAIL, "other": "x"}, skip={"email"}) == []


def test_skip_suppresses_name_and_value_and_nested_findings() -> None:
    claims = {"password": {"card": CARD}}
    assert lint_claims(claims, skip=["password"]) == []


def test_skip_applies_to_top_level_names_only() -> None:
    [finding] = lint_claims({"user": {"email": EMAIL}}, skip=("email",))
    assert finding.path == "/user/email"


def test_skip_leaves_other_claims_scanned() -> None:
    [finding] = lint_claims({"email": EMAIL, "phone": PHONE}, skip=frozenset({"email"}))
    assert finding.code == "phone"


# ----------------------------------------------------------------------------- depth bound


def test_value_33_levels_deep_is_scanned() -> None:
    [finding] = lint_claims(nest(CARD, 33))
    assert (finding.code, finding.path) == ("card_number", "/a" * 33)


def test_container_beyond_32_levels_is_reported_too_deep_and_not_scanned() -> None:
    [finding] = lint_claims(nest(CARD, 34))
    assert (finding.code, finding.severity, finding.path) == ("too_deep", Severity.LOW, "/a" * 33)


def test_deeply_nested_arrays_are_bounded() -> None:
    value: object = CARD
    for _ in range(100):
        value = [value]
    [finding] = lint_claims({"x": value})
    assert (finding.code, finding.path) == ("too_deep", "/x" + "/0" * 32)


def test_very_deep_nesting_does_not_raise_recursion_error() -> None:
    assert [f.code for f in lint_claims(nest("x", 100_000))] == ["too_deep"]


def test_self_referencing_object_terminates() -> None:
    claims: dict[str, object] = {"name": "loop"}
    claims["self"] = claims
    assert [f.code for f in lint_claims(claims)] == ["too_deep"]


# ----------------------------------------------------------------------------- messages


SECRET_SAMPLES: dict[str, tuple[dict[str, object], str]] = {
    "sensitive_name": ({"password": "hunter2-hunter2"}, "hunter2-hunter2"),
    "card_number": ({"data": CARD}, CARD),
    "card_number_int": ({"data": 4111111111111111}, "4111111111111111"),
    "ssn": ({"data": SSN}, SSN),
    "email": ({"data": EMAIL}, EMAIL),
    "phone": ({"data": PHONE}, PHONE),
    "cloud_key": ({"data": AWS_KEY_ID}, AWS_KEY_ID),
    "slack_webhook": ({"data": CLOUD_KEYS["slack webhook"]}, CLOUD_KEYS["slack webhook"]),
    "access_token": (
        {"data": ACCESS_TOKENS["github classic pat"]},
        ACCESS_TOKENS["github classic pat"],
    ),
    "private_key": ({"data": pem("RSA PRIVATE KEY")}, pem("RSA PRIVATE KEY")),
    "private_jwk": ({"data": {"kty": "oct", "k": "c2VjcmV0a2V5"}}, "c2VjcmV0a2V5"),
    "embedded_jwt": ({"data": make_jwt()}, make_jwt()),
    "high_entropy": ({"data": RANDOM_32}, RANDOM_32),
    "too_deep": (nest("deep-secret-value", 40), "deep-secret-value"),
}


@pytest.mark.parametrize(("claims", "value"), SECRET_SAMPLES.values(), ids=SECRET_SAMPLES.keys())
def test_message_never_contains_the_value_or_part_of_it(
    claims: dict[str, object], value: str
) -> None:
    findings = lint_claims(claims)
    assert findings
    windows = {value[i : i + 6] for i in range(len(value) - 5)} | {value}
    for finding in findings:
        assert finding.message
        assert not [w for w in windows if w in finding.message], finding


# ----------------------------------------------------------------------------- robustness

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=40,
)
# Text made of the characters the detectors care about, to reach the slow paths.
SHAPED_TEXT = st.text(alphabet="0123456789 -+().@_~/=:AKIaeyJkstxogh", max_size=80)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=8))
def test_never_raises_and_returns_only_findings(claims: dict[str, object]) -> None:
    findings = lint_claims(claims)
    assert all(isinstance(f, Finding) for f in findings)
    assert all(f.code in ALL_CODES and isinstance(f.severity, Severity) for f in findings)
    assert all(f.path.startswith("/") for f in findings)


@given(
    st.dictionaries(SHAPED_TEXT, st.lists(SHAPED_TEXT | st.integers(), max_size=4) | SHAPED_TEXT)
)
def test_never_raises_on_detector_shaped_text(claims: dict[str, object]) -> None:
    assert all(isinstance(f, Finding) for f in lint_claims(claims))


def test_long_adversarial_values_do_not_raise() -> None:
    claims = {
        "a": "sk-" * 5000,
        "b": "1-" * 10000,
        "c": "a@" * 10000,
        "d": "ey" + "A" * 20000 + "..",
        "e": "x" * 100_000,
    }
    assert all(isinstance(f, Finding) for f in lint_claims(claims))


def test_deeply_nested_json_in_a_token_header_does_not_raise() -> None:
    header = b'{"alg":"none","x":' + b"[" * 1400 + b"]" * 1400 + b"}"
    value = base64.urlsafe_b64encode(header).rstrip(b"=").decode() + ".e30.x"
    assert all(isinstance(f, Finding) for f in lint_claims({"v": value}))
