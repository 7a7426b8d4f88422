"""The in-process helpers of jwtwarden.testing: the scanner's cases against a verify function or
an ASGI app, and ``assert_rejects_jwt_attacks`` failing with the list of accepted attacks."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jwtwarden import Issuer, KeySet, Verifier, errors
from jwtwarden.cli.scan import (
    EXIT_CALIBRATION_FAILED,
    EXIT_CLEAN,
    EXIT_TARGET_ERRORS,
    EXIT_VULNERABLE,
    exit_status,
)
from jwtwarden.scan import Outcome, ScanLimits, scan_asgi, scan_verify
from jwtwarden.scan.errors import (
    GarbageAccepted,
    MissingTokenAccepted,
    TargetTimeout,
    UnexpectedCalibrationAnswer,
    ValidTokenRejected,
)
from jwtwarden.testing import (
    assert_rejects_jwt_attacks,
    jwt_attack_cases,
    run_jwt_attacks,
    run_jwt_attacks_async,
)
from tests import scan_targets
from tests.conftest import keyset_for
from tests.scan_targets import AUD, ISS, ScanTarget

VULNERABLE: dict[str, Callable[[], ScanTarget]] = {
    "alg-from-header": scan_targets.alg_from_header,
    "no-verify": scan_targets.no_verify,
    "weak-secret": scan_targets.weak_secret,
    "embedded-jwk": scan_targets.embedded_jwk,
    "accepts-expired": scan_targets.accepts_expired,
}
SAFE: dict[str, Callable[[], ScanTarget]] = {
    "es256": scan_targets.jwtwarden_verifier,
    "hs256": functools.partial(scan_targets.jwtwarden_verifier, "HS256"),
    "eddsa": functools.partial(scan_targets.jwtwarden_verifier, "EdDSA"),
}
SAFE_APPS: dict[str, Callable[[], ScanTarget]] = SAFE | {
    "middleware": scan_targets.jwtwarden_middleware,
}


def keys_of(target: ScanTarget) -> dict[str, Any]:
    return {"public_key": target.public_key, "signing_key": target.private_key or target.secret}


# ---- verify functions ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SAFE)
def test_jwtwarden_verifier_rejects_every_attack(name: str) -> None:
    target = SAFE[name]()
    results = assert_rejects_jwt_attacks(target.token, verify=target.verify, **keys_of(target))
    assert results and all(r.outcome is Outcome.REJECTED for r in results)


@pytest.mark.parametrize("name", VULNERABLE)
def test_assert_rejects_fails_with_each_accepted_attack_of_a_vulnerable_function(name: str) -> None:
    target = VULNERABLE[name]()
    with pytest.raises(AssertionError) as info:
        assert_rejects_jwt_attacks(target.token, verify=target.verify, **keys_of(target))
    listed = {line.split()[1] for line in str(info.value).splitlines() if line.startswith("  - ")}
    if target.at_least:
        assert target.expected <= listed
    else:
        assert listed == target.expected


def test_the_failure_message_says_how_to_fix_each_attack() -> None:
    target = scan_targets.embedded_jwk()
    with pytest.raises(AssertionError) as info:
        assert_rejects_jwt_attacks(target.token, verify=target.verify)
    assert "fix: Verify only with keys configured on the server" in str(info.value)


def test_run_jwt_attacks_returns_one_result_per_case() -> None:
    target = scan_targets.jwtwarden_verifier()
    cases = jwt_attack_cases(target.token, public_key=target.public_key)
    results = run_jwt_attacks(target.token, verify=target.verify, public_key=target.public_key)
    assert [r.id for r in results] == [c.id for c in cases]


def test_a_verifier_error_code_is_the_answer() -> None:
    target = scan_targets.jwtwarden_verifier()
    results = run_jwt_attacks(target.token, verify=target.verify, only=["alg-none-lowercase-unsigned"])
    assert [r.answer for r in results] == ["AlgorithmNotAllowed (alg_not_allowed)"]


def test_a_verify_function_returning_false_rejects() -> None:
    target = scan_targets.no_verify()
    assert target.verify is not None
    check = target.verify

    def verify(token: str) -> bool:
        try:
            check(token)
        except scan_targets.vulnerable.Rejected:
            return False
        return token == target.token

    assert_rejects_jwt_attacks(target.token, verify=verify)


def test_an_async_verify_function_is_awaited() -> None:
    target = scan_targets.no_verify()
    assert target.verify is not None
    check = target.verify

    async def verify(token: str) -> Any:
        return check(token)

    with pytest.raises(AssertionError):
        assert_rejects_jwt_attacks(target.token, verify=verify)


def test_a_hanging_async_verify_function_times_out() -> None:
    target = scan_targets.no_verify()

    async def verify(token: str) -> Any:
        await asyncio.Event().wait()  # never set: the scanner's timeout must end this

    with pytest.raises(TargetTimeout) as info:
        run_jwt_attacks(target.token, verify=verify, timeout=0.05)
    assert info.value.code == "target_timeout"


# ---- calibration ------------------------------------------------------------------------


def test_a_rejected_valid_token_raises_valid_token_rejected() -> None:
    target = scan_targets.jwtwarden_verifier()
    stranger = scan_targets.embedded_jwk().token
    with pytest.raises(ValidTokenRejected) as info:
        run_jwt_attacks(stranger, verify=target.verify)
    assert info.value.code == "valid_token_rejected"


def test_a_function_accepting_anything_raises_garbage_accepted() -> None:
    with pytest.raises(GarbageAccepted) as info:
        run_jwt_attacks(scan_targets.no_verify().token, verify=lambda token: True)
    assert info.value.code == "garbage_accepted"


def test_exactly_one_target_is_required() -> None:
    target = scan_targets.no_verify()
    with pytest.raises(TypeError):
        run_jwt_attacks(target.token)
    with pytest.raises(TypeError):
        run_jwt_attacks(target.token, verify=target.verify, app=target.app)


def test_the_sync_helper_refuses_to_run_inside_an_event_loop() -> None:
    target = scan_targets.no_verify()

    async def inside() -> None:
        run_jwt_attacks(target.token, verify=target.verify)

    with pytest.raises(RuntimeError, match="run_jwt_attacks_async"):
        asyncio.run(inside())


def test_the_async_helper_runs_inside_an_event_loop() -> None:
    target = scan_targets.jwtwarden_verifier()
    results = asyncio.run(run_jwt_attacks_async(target.token, verify=target.verify))
    assert results and not [r for r in results if r.accepted]


# ---- ASGI apps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAFE_APPS)
def test_an_asgi_app_on_jwtwarden_passes(name: str) -> None:
    target = SAFE_APPS[name]()
    assert_rejects_jwt_attacks(target.token, app=target.app, path=target.path, **keys_of(target))


@pytest.mark.parametrize("name", VULNERABLE)
def test_an_asgi_app_with_a_flaw_fails_with_its_attacks(name: str) -> None:
    target = VULNERABLE[name]()
    with pytest.raises(AssertionError) as info:
        assert_rejects_jwt_attacks(target.token, app=target.app, path=target.path, **keys_of(target))
    listed = {line.split()[1] for line in str(info.value).splitlines() if line.startswith("  - ")}
    assert target.expected <= listed


def test_an_asgi_app_reading_a_cookie_is_attacked_through_it() -> None:
    target = scan_targets.no_verify()
    assert target.verify is not None
    app = scan_targets.protected_app(target.verify, cookie="session")
    results = run_jwt_attacks(target.token, app=app, path="/me", cookie="session",
                              only=["signature-removed"])
    assert [(r.id, r.status) for r in results] == [("signature-removed", 200)]


def _app(handler: Callable[[Request], Response]) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return handler(request)

    return Starlette(routes=[Route("/me", endpoint)])


def _verifier_handler(on_error: Callable[[errors.JWTError], Response], *,
                      open_without_token: bool = False) -> Callable[[Request], Response]:
    keys = keyset_for("ES256")
    verifier = Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"])

    def handler(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return JSONResponse({}, status_code=200 if open_without_token and not auth else 401)
        try:
            verifier.verify(auth[7:])
        except errors.JWTError as exc:
            return on_error(exc)
        return JSONResponse({})

    return handler


def _es256_token() -> str:
    return Issuer(keyset_for("ES256"), issuer=ISS, audience=AUD).issue("u1")


def test_an_endpoint_open_without_a_token_fails_calibration() -> None:
    app = _app(_verifier_handler(lambda exc: JSONResponse({}, status_code=401),
                                 open_without_token=True))
    report = asyncio.run(scan_asgi(app, _es256_token(), path="/me"))
    assert isinstance(report.error, MissingTokenAccepted)
    assert exit_status(report) == EXIT_CALIBRATION_FAILED


def test_garbage_answered_400_fails_calibration_as_unexpected() -> None:
    app = _app(_verifier_handler(lambda exc: JSONResponse({}, status_code=400)))
    report = asyncio.run(scan_asgi(app, _es256_token(), path="/me"))
    assert isinstance(report.error, UnexpectedCalibrationAnswer)
    assert report.error.code == "calibration_unexpected_answer"


def test_attacks_answered_500_are_errors_with_exit_status_5() -> None:
    def answer(exc: errors.JWTError) -> Response:
        return JSONResponse({}, status_code=401 if exc.code == "malformed" else 500)

    report = asyncio.run(scan_asgi(_app(_verifier_handler(answer)), _es256_token(), path="/me",
                                   limits=ScanLimits(rate=1000)))
    assert report.errors and not report.accepted
    assert exit_status(report) == EXIT_TARGET_ERRORS


def test_exit_status_is_1_with_a_vulnerability_and_0_without() -> None:
    vulnerable, safe = scan_targets.no_verify(), scan_targets.jwtwarden_verifier()
    assert vulnerable.verify is not None and safe.verify is not None
    found = asyncio.run(scan_verify(vulnerable.verify, vulnerable.token))
    clean = asyncio.run(scan_verify(safe.verify, safe.token))
    assert (exit_status(found), exit_status(clean)) == (EXIT_VULNERABLE, EXIT_CLEAN)


def test_only_lenient_acceptance_exits_0() -> None:
    target = scan_targets.embedded_jwk()
    assert target.verify is not None
    report = asyncio.run(scan_verify(target.verify, target.token, only=["padded-base64-*"]))
    assert [r.id for r in report.lenient] == ["padded-base64-signature"]
    assert exit_status(report) == EXIT_CLEAN


def test_a_key_set_is_accepted_as_public_and_signing_key() -> None:
    keys = KeySet.generate("ES256")
    token = Issuer(keys, issuer=ISS, audience=AUD).issue("u1")
    verifier = Verifier(keys.public(), issuer=ISS, audience=AUD, algorithms=["ES256"])
    results = assert_rejects_jwt_attacks(token, verify=verifier.verify, public_key=keys.public(),
                                         signing_key=keys)
    assert {"hmac-public-key-pem", "exp-in-past"} <= {r.id for r in results}
