"""The resource-server core: reading the bearer token, and RFC 6750 answers for every failure."""

from __future__ import annotations

from typing import Any

import pytest

from jwtwarden import Claims, errors
from jwtwarden.resource.feed_client import RevocationFeed
from jwtwarden.resource.jwks_client import JWKSInvalid, JWKSUnavailable, RemoteJWKS
from jwtwarden.resource.server import (
    Guard,
    InsufficientScope,
    InvalidRequest,
    MissingToken,
    ResourceServer,
    bearer_token,
    requirements,
)
from jwtwarden.revocation import RevocationSet

JWKS_URL = "https://auth.example.com/.well-known/jwks.json"
ISS = "https://auth.example.com"
AUD = "api.example.com"


@pytest.fixture
def server() -> ResourceServer:
    return ResourceServer(JWKS_URL, issuer=ISS, audience=AUD, revocations=RevocationSet(),
                          realm="example")


def header(denial: Any) -> str:
    return dict(denial.headers)["www-authenticate"]  # type: ignore[no-any-return]


# ---- the bearer token ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_scheme_is_case_insensitive(scheme: str) -> None:
    assert bearer_token(f"{scheme} abc.def.ghi") == "abc.def.ghi"


def test_no_header_is_a_missing_token() -> None:
    with pytest.raises(MissingToken):
        bearer_token(None)
    with pytest.raises(MissingToken):
        bearer_token([])


def test_another_scheme_is_a_missing_token() -> None:
    with pytest.raises(MissingToken):
        bearer_token("Basic dXNlcjpwYXNz")


@pytest.mark.parametrize("value", [
    "Bearer", "Bearer ", "Bearer  abc", "Bearer abc def", "Bearer abc,", "Bearer a\tb",
    "Bearer abc ", "Bearer a, Bearer b",
])
def test_a_malformed_bearer_header_is_an_invalid_request(value: str) -> None:
    with pytest.raises(InvalidRequest):
        bearer_token(value)


def test_several_authorization_headers_are_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        bearer_token(["Bearer abc", "Bearer def"])


@pytest.mark.parametrize("query", ["access_token=abc", b"x=1&access_token=abc", "a=1;access_token"])
def test_a_token_in_the_query_string_is_an_invalid_request(query: str | bytes) -> None:
    with pytest.raises(InvalidRequest):
        bearer_token("Bearer abc", query)


def test_a_query_that_only_mentions_access_token_is_fine() -> None:
    assert bearer_token("Bearer abc", "q=access_token&my_access_token=1") == "abc"


# ---- answers ---------------------------------------------------------------------------------------


def test_a_missing_token_is_401_without_an_error_code(server: ResourceServer) -> None:
    denial = server.denial(MissingToken())
    assert denial.status == 401
    # RFC 9449 section 7.1: both schemes this server accepts are offered
    assert header(denial) == 'Bearer realm="example", DPoP realm="example", algs="ES256 EdDSA"'



def test_an_invalid_request_is_400(server: ResourceServer) -> None:
    denial = server.denial(InvalidRequest())
    assert (denial.status, denial.error) == (400, "invalid_request")
    assert 'error="invalid_request"' in header(denial)


@pytest.mark.parametrize("error", [
    errors.MalformedToken("m"), errors.BadSignature(), errors.UnknownKey(),
    errors.BadAudience("aud", "detail"), errors.BadIssuer("iss"), errors.AlgorithmNotAllowed(),
    errors.Expired("exp"), errors.Revoked(), errors.BadType("typ"), errors.TokenTooLarge(),
])
def test_a_rejected_token_is_401_invalid_token(server: ResourceServer, error: errors.JWTError) -> None:
    denial = server.denial(error)
    assert denial.status == 401
    assert header(denial).startswith('Bearer realm="example", error="invalid_token", error_description="')


def test_the_description_never_carries_the_internal_message(server: ResourceServer) -> None:
    denial = server.denial(errors.BadAudience("aud", "internal detail 42"))
    assert "internal detail 42" not in header(denial) + denial.body.decode()


def test_an_expired_token_says_so(server: ResourceServer) -> None:
    assert 'error_description="The access token expired"' in header(server.denial(errors.Expired("exp")))


def test_a_missing_scope_is_403_naming_the_required_scopes(server: ResourceServer) -> None:
    denial = server.denial(InsufficientScope(frozenset({"write", "read"}), frozenset()))
    assert denial.status == 403
    assert header(denial).endswith('error="insufficient_scope", '
                                   'error_description="The access token lacks a scope", scope="read write"')


def test_a_missing_role_is_403_insufficient_scope(server: ResourceServer) -> None:
    denial = server.denial(InsufficientScope(frozenset(), frozenset({"admin"})))
    assert denial.status == 403 and 'error="insufficient_scope"' in header(denial)


@pytest.mark.parametrize("error", [JWKSUnavailable(), JWKSInvalid(), errors.RevocationUnavailable()])
def test_unavailable_keys_or_revocations_are_503_with_retry_after(server: ResourceServer, error: errors.JWTError) -> None:
    denial = server.denial(error)
    assert denial.status == 503
    assert int(dict(denial.headers)["retry-after"]) >= 1


def test_an_unexpected_exception_fails_closed_with_503(server: ResourceServer) -> None:
    assert server.denial(RuntimeError("bug")).status == 503


def test_every_answer_forbids_caching(server: ResourceServer) -> None:
    for error in (MissingToken(), errors.Expired("exp"), JWKSUnavailable()):
        assert dict(server.denial(error).headers)["cache-control"] == "no-store"


# ---- authorization ---------------------------------------------------------------------------------


def test_every_required_scope_must_be_granted() -> None:
    claims = Claims({"scope": "read write"})
    ResourceServer.authorize(claims, frozenset({"read"}))
    with pytest.raises(InsufficientScope):
        ResourceServer.authorize(claims, frozenset({"read", "admin"}))


def test_roles_are_read_from_roles_or_role() -> None:
    ResourceServer.authorize(Claims({"roles": ["a", "b"]}), roles=frozenset({"a", "b"}))
    ResourceServer.authorize(Claims({"role": "admin"}), roles=frozenset({"admin"}))
    with pytest.raises(InsufficientScope):
        ResourceServer.authorize(Claims({"roles": ["a"]}), roles=frozenset({"admin"}))


@pytest.mark.parametrize("bad", ['a"b', "a\\b", ""])
def test_scope_names_that_cannot_be_quoted_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="scopes"):
        requirements([bad], "scopes")


# ---- configuration ----------------------------------------------------------------------------------


def test_the_default_revocation_source_is_the_services_feed() -> None:
    server = ResourceServer(JWKS_URL, issuer=ISS, audience=AUD)
    assert isinstance(server.revocations, RevocationFeed)
    assert server.revocations.url == "https://auth.example.com/v1/revocations"


def test_revocation_checks_can_be_turned_off_explicitly() -> None:
    assert ResourceServer(JWKS_URL, issuer=ISS, audience=AUD, revocations=None).revocations is None


def test_from_env_reads_the_three_variables() -> None:
    server = ResourceServer.from_env({"JWTWARDEN_JWKS_URL": JWKS_URL, "JWTWARDEN_ISSUER": ISS,
                                      "JWTWARDEN_AUDIENCE": AUD})
    assert server.jwks.url == JWKS_URL and server.jwks.algorithms == {"ES256"}


def test_from_env_reads_the_optional_variables() -> None:
    server = ResourceServer.from_env({
        "JWTWARDEN_JWKS_URL": JWKS_URL, "JWTWARDEN_ISSUER": ISS, "JWTWARDEN_AUDIENCE": AUD,
        "JWTWARDEN_ALGORITHMS": "ES256, EdDSA", "JWTWARDEN_REVOCATION_URL": "off",
        "JWTWARDEN_REALM": "shop",
    })
    assert server.jwks.algorithms == {"ES256", "EdDSA"}
    assert server.revocations is None and server.realm == "shop"


@pytest.mark.parametrize("missing", ["JWTWARDEN_JWKS_URL", "JWTWARDEN_ISSUER", "JWTWARDEN_AUDIENCE"])
def test_from_env_names_a_missing_variable(missing: str) -> None:
    env = {"JWTWARDEN_JWKS_URL": JWKS_URL, "JWTWARDEN_ISSUER": ISS, "JWTWARDEN_AUDIENCE": AUD}
    del env[missing]
    with pytest.raises(ValueError, match=missing):
        ResourceServer.from_env(env)


def test_a_realm_that_cannot_be_quoted_is_refused() -> None:
    with pytest.raises(ValueError, match="realm"):
        ResourceServer(JWKS_URL, issuer=ISS, audience=AUD, realm='a"b', revocations=None)


def test_a_ready_remote_jwks_is_used_with_its_own_algorithms() -> None:
    jwks = RemoteJWKS(JWKS_URL, algorithms=["EdDSA", "ES256"])
    server = ResourceServer(jwks, issuer=ISS, audience=AUD, revocations=None)
    assert server.jwks is jwks
    assert server.verifier._options["algorithms"] == ["ES256", "EdDSA"]


def test_algorithms_can_only_narrow_a_ready_remote_jwks() -> None:
    jwks = RemoteJWKS(JWKS_URL, algorithms=["EdDSA"])
    with pytest.raises(ValueError, match="among"):
        ResourceServer(jwks, issuer=ISS, audience=AUD, algorithms=["ES256"], revocations=None)


# ---- survivors of scripts/mutate (issue #17) ------------------------------------------------------


def test_a_public_prefix_makes_only_its_own_paths_public(server: ResourceServer) -> None:
    guard = Guard(server, public_paths=["/healthz", "/static/", "/"])
    assert guard.is_public("/static/app.js") and guard.is_public("/healthz") and guard.is_public("/")
    for private in ("/api/orders", "/static", "/healthz/x", "/staticx/app.js"):
        assert not guard.is_public(private), private
    assert not Guard(server).is_public("/anything")
    with pytest.raises(ValueError, match="start with"):
        Guard(server, public_paths=["api/"])


def test_claims_granting_exactly_the_required_scopes_are_authorized() -> None:
    claims = Claims({"scope": "read write"})
    ResourceServer.authorize(claims, scopes=frozenset({"read", "write"}))
    with pytest.raises(errors.InsufficientScope):
        ResourceServer.authorize(claims, scopes=frozenset({"read", "admin"}))
