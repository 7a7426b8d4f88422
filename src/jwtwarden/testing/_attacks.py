"""The scanner's attack cases, in-process: prove in a test that your API rejects forged tokens.

::

    from jwtwarden.testing import assert_rejects_jwt_attacks

    def test_the_api_rejects_forged_tokens():
        token = issuer.issue("user-1")
        assert_rejects_jwt_attacks(token, app=app, path="/me", public_key=keys.public(),
                                   signing_key=keys)

The target is either ``verify=`` (a function taking the token: returning accepts it, raising
rejects it) or ``app=`` (an ASGI application, driven through httpx's ``ASGITransport``,
where a 2xx answer accepts). Giving the signing key (``signing_key=``) adds the attacks that
need a valid signature (expired, no ``exp``, foreign ``iss``/``aud``, ``crit``, ``zip``...).
No pytest is needed: failures are plain :class:`AssertionError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from jwtwarden.scan.attacks import AttackCase, derive_attacks
from jwtwarden.scan.keys import PublicKeySource, SigningKeySource
from jwtwarden.scan.report import AttackResult, ScanReport
from jwtwarden.scan.runner import ScanLimits, scan_asgi, scan_verify

__all__ = [
    "assert_rejects_jwt_attacks",
    "jwt_attack_cases",
    "run_jwt_attacks",
    "run_jwt_attacks_async",
]


def jwt_attack_cases(
    token: str,
    *,
    public_key: PublicKeySource | None = None,
    signing_key: SigningKeySource | None = None,
    other_token: str | None = None,
    now: float | None = None,
) -> list[AttackCase]:
    """Every attack case derived from the valid ``token`` (see
    :func:`jwtwarden.scan.derive_attacks`): each holds one forged ``token`` and says why
    acceptance matters (``why``), how to fix it (``fix``) and whether acceptance is a
    vulnerability (``vulnerable_if_accepted``)."""
    return derive_attacks(token, public_key=public_key, signing_key=signing_key,
                          other_token=other_token, now=now)


async def run_jwt_attacks_async(
    token: str,
    *,
    verify: Callable[[str], Any] | None = None,
    app: Any = None,
    path: str = "/",
    method: str = "GET",
    header: str = "Authorization",
    scheme: str | None = None,
    cookie: str | None = None,
    public_key: PublicKeySource | None = None,
    signing_key: SigningKeySource | None = None,
    other_token: str | None = None,
    only: Iterable[str] = (),
    timeout: float = 5.0,
    now: float | None = None,
) -> list[AttackResult]:
    """:func:`run_jwt_attacks` for code already running in an event loop."""
    if (verify is None) == (app is None):
        raise TypeError("give exactly one target: verify=<function> or app=<ASGI app>")
    limits = ScanLimits(concurrency=1 if verify is not None else 4, rate=1000, timeout=timeout,
                        deadline=600)
    report: ScanReport
    if verify is not None:
        report = await scan_verify(verify, token, public_key=public_key, signing_key=signing_key,
                                   other_token=other_token, only=only, limits=limits, now=now)
    else:
        report = await scan_asgi(app, token, path=path, method=method, header=header,
                                 scheme=scheme, cookie=cookie, public_key=public_key,
                                 signing_key=signing_key, other_token=other_token, only=only,
                                 limits=limits, now=now)
    if report.error is not None:
        raise report.error
    return list(report.results)


def run_jwt_attacks(
    token: str,
    *,
    verify: Callable[[str], Any] | None = None,
    app: Any = None,
    path: str = "/",
    method: str = "GET",
    header: str = "Authorization",
    scheme: str | None = None,
    cookie: str | None = None,
    public_key: PublicKeySource | None = None,
    signing_key: SigningKeySource | None = None,
    other_token: str | None = None,
    only: Iterable[str] = (),
    timeout: float = 5.0,
    now: float | None = None,
) -> list[AttackResult]:
    """Calibrate the target with ``token``, send every attack case once, return the results.

    Raises a :class:`~jwtwarden.scan.errors.CalibrationFailed` subclass when the valid
    ``token`` is rejected or garbage is accepted (the test setup is wrong), and a
    :class:`~jwtwarden.scan.errors.TargetError` when the target hangs past ``timeout``.
    ``only`` keeps the cases whose id or category matches a shell pattern. From inside a
    running event loop use :func:`run_jwt_attacks_async`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("an event loop is running: use 'await run_jwt_attacks_async(...)'")
    return asyncio.run(run_jwt_attacks_async(
        token, verify=verify, app=app, path=path, method=method, header=header, scheme=scheme,
        cookie=cookie, public_key=public_key, signing_key=signing_key, other_token=other_token,
        only=only, timeout=timeout, now=now,
    ))


def _failure_message(accepted: list[AttackResult]) -> str:
    lines = [f"{len(accepted)} JWT attack(s) accepted:"]
    for result in accepted:
        case = result.case
        lines.append(f"  - {case.id} [{case.impact}] {case.title} -> {result.answer}")
        lines.append(f"      fix: {case.fix}")
    return "\n".join(lines)


def assert_rejects_jwt_attacks(
    token: str,
    *,
    verify: Callable[[str], Any] | None = None,
    app: Any = None,
    path: str = "/",
    method: str = "GET",
    header: str = "Authorization",
    scheme: str | None = None,
    cookie: str | None = None,
    public_key: PublicKeySource | None = None,
    signing_key: SigningKeySource | None = None,
    other_token: str | None = None,
    only: Iterable[str] = (),
    timeout: float = 5.0,
    now: float | None = None,
) -> list[AttackResult]:
    """Raise :class:`AssertionError` listing every attack the target accepted as a
    vulnerability (id, impact, answer, fix); return all results when there is none.

    Lenient acceptances (impact ``info``: padded base64, duplicate members, oversized
    signed tokens) do not fail; look for ``result.lenient`` to be stricter. Takes the
    arguments of :func:`run_jwt_attacks`, and raises what it raises.
    """
    results = run_jwt_attacks(
        token, verify=verify, app=app, path=path, method=method, header=header, scheme=scheme,
        cookie=cookie, public_key=public_key, signing_key=signing_key, other_token=other_token,
        only=only, timeout=timeout, now=now,
    )
    accepted = [r for r in results if r.vulnerable]
    if accepted:
        raise AssertionError(_failure_message(accepted))
    return results
