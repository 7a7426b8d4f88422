"""Sending the attack cases to a target: calibrate, then each case once, within bounds.

A scan first **calibrates**: the valid token must be accepted (HTTP 2xx; a verify function
returns), and a string that is not a JWT at all, and (over HTTP) a request without a token,
must be refused with 401 or 403 (a verify function raises). Otherwise the scan stops with a
:class:`~jwtwarden.scan.errors.CalibrationFailed` subclass saying why, and sends no attack:
an endpoint that refuses the valid token or accepts anything cannot tell a forgery apart.

Then each case is sent exactly once, with at most ``concurrency`` requests in flight and at
most ``rate`` requests per second, each bounded by ``timeout``, the whole scan by
``deadline``. ``max_failures`` timeouts or connection failures in a row stop the scan with
:class:`~jwtwarden.scan.errors.TargetFailing`; a dead or hanging target never makes the scan
hang. Every bound is in :class:`ScanLimits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from jwtwarden.errors import JWTError
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.keys import Key
from jwtwarden.scan.attacks import AttackCase, ParsedToken, derive_attacks, parse_token, select
from jwtwarden.scan.dpop import DPoPHTTPProbe, check_dpop_binding, dpop_cases, load_dpop_key
from jwtwarden.scan.errors import (
    BadScanToken,
    DeadlineExceeded,
    GarbageAccepted,
    JWKSUnavailable,
    MissingTokenAccepted,
    ScanError,
    ScanInputError,
    TargetError,
    TargetFailing,
    TargetTimeout,
    TargetUnreachable,
    UnexpectedCalibrationAnswer,
    ValidTokenRejected,
)
from jwtwarden.scan.keys import PublicKeySource, SigningKeySource
from jwtwarden.scan.report import (
    Answer,
    AttackResult,
    Calibration,
    Outcome,
    ScanReport,
    TokenSummary,
)

__all__ = [
    "GARBAGE_TOKEN",
    "HTTPProbe",
    "Probe",
    "ScanLimits",
    "VerifyProbe",
    "classify_status",
    "display_url",
    "fetch_jwks",
    "run_scan",
    "scan_asgi",
    "scan_url",
    "scan_verify",
]

GARBAGE_TOKEN = "jwtwarden-scan-calibration-not-a-jwt"  # noqa: S105 - not a secret
"""What calibration sends as a token that every endpoint must refuse."""

MAX_JWKS_BYTES = 1024 * 1024
_MAX_BODY_READ = 64 * 1024
_USER_AGENT = "jwtwarden-scan"
_BASE_HEADERS = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}  # bodies read as sent


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Every bound of a scan. Invalid values raise :class:`ValueError` when built.

    - ``concurrency``: requests in flight at once (1-32, default 4);
    - ``rate``: requests per second at most (default 20, at most 1000);
    - ``timeout``: seconds for one request, connect to last byte (default 5);
    - ``deadline``: seconds for the whole scan, JWKS fetch and calibration included
      (default 120);
    - ``max_attacks``: cases sent at most; the rest are reported as skipped (default 200);
    - ``max_failures``: timeouts or connection failures in a row that end the scan (default 3).
    """

    concurrency: int = 4
    rate: float = 20.0
    timeout: float = 5.0
    deadline: float = 120.0
    max_attacks: int = 200
    max_failures: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 32:
            raise ValueError("concurrency must be between 1 and 32")
        if not 0 < self.rate <= 1000:
            raise ValueError("rate must be above 0 and at most 1000 requests per second")
        if not 0 < self.timeout <= 300:
            raise ValueError("timeout must be above 0 and at most 300 seconds")
        if not 0 < self.deadline <= 3600:
            raise ValueError("deadline must be above 0 and at most 3600 seconds")
        if not 0 <= self.max_attacks <= 10_000:
            raise ValueError("max_attacks must be between 0 and 10000")
        if not 1 <= self.max_failures <= 100:
            raise ValueError("max_failures must be between 1 and 100")


class Probe(Protocol):
    """Something a token can be presented to. ``send(None)`` presents no token at all."""

    @property
    def supports_missing_token(self) -> bool: ...

    async def send(self, token: str | None) -> Answer:
        """The target's answer; raises :class:`TargetError` when there is none."""
        ...

    async def send_case(self, case: AttackCase) -> Answer:
        """The answer to one attack case (``send(case.token)`` for a token attack)."""
        ...


def classify_status(status: int, reason: str = "") -> Answer:
    """2xx accepted, 5xx error, anything else (3xx, 4xx) rejected."""
    detail = f"{status} {reason}".strip()
    if 200 <= status < 300:
        return Answer(Outcome.ACCEPTED, status, detail)
    if status >= 500:
        return Answer(Outcome.ERROR, status, detail)
    return Answer(Outcome.REJECTED, status, detail)


def display_url(url: str | httpx.URL) -> str:
    """``url`` without user info and with the query elided: safe to print and store."""
    parsed = httpx.URL(url)
    shown = parsed.copy_with(username=None, password=None, query=None, fragment=None)
    return str(shown) + ("?…" if parsed.query else "")


_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCHEME_CHARS = re.compile(r"[\x21-\x7e]*")


def _check_request_shape(method: str, header: str, scheme: str | None, cookie: str | None) -> None:
    for what, value in (("method", method), ("header name", header), ("cookie name", cookie)):
        if value is not None and not _TOKEN_CHARS.fullmatch(value):
            raise ScanInputError(f"the {what} is not a valid HTTP token")
    if scheme is not None and not _SCHEME_CHARS.fullmatch(scheme):
        raise ScanInputError("the scheme must be printable ASCII without spaces")


def _check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ScanInputError("the URL is not valid") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ScanInputError("the URL must be an absolute http:// or https:// URL")
    return parsed


class HTTPProbe:
    """Presents tokens over HTTP: ``Authorization: Bearer <token>`` by default, another
    header (``header``, with an optional ``scheme`` prefix), or a cookie (``cookie``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        method: str = "GET",
        header: str = "Authorization",
        scheme: str | None = None,
        cookie: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._url = url
        self._method = method.upper()
        self._header = header
        if scheme is None:
            scheme = "Bearer" if header.lower() == "authorization" else ""
        self._scheme = scheme
        self._cookie = cookie
        self._timeout = timeout

    @property
    def supports_missing_token(self) -> bool:
        return True

    def _headers(self, token: str | None) -> dict[str, str]:
        headers = {"User-Agent": _USER_AGENT}
        if token is None:
            return headers
        if self._cookie:
            headers["Cookie"] = f"{self._cookie}={token}"
        else:
            headers[self._header] = f"{self._scheme} {token}" if self._scheme else token
        return headers

    async def send(self, token: str | None) -> Answer:
        return (await self.exchange(self._headers(token)))[0]

    async def send_case(self, case: AttackCase) -> Answer:
        return await self.send(case.token)

    async def exchange(self, headers: dict[str, str]) -> tuple[Answer, dict[str, str], bytes]:
        """One request with ``headers`` (and the User-Agent): the answer, the response's
        headers (names in lower case) and the start of its body (at most 64 KiB)."""
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.stream(self._method, self._url,
                                               headers=_BASE_HEADERS | headers) as response:
                    body = bytearray()
                    async for chunk in response.aiter_raw():  # drained for keep-alive, bounded
                        body += chunk
                        if len(body) > _MAX_BODY_READ:
                            break
                    return (classify_status(response.status_code, response.reason_phrase),
                            {k.lower(): v for k, v in response.headers.items()}, bytes(body))
        except (TimeoutError, httpx.TimeoutException):
            raise TargetTimeout(f"no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise TargetUnreachable(f"request failed: {type(exc).__name__}") from None


def _describe_exception(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    return f"{name} ({code})" if isinstance(code, str) else name


class VerifyProbe:
    """Presents tokens to a verify function: returning means accepted (except a return value
    of exactly ``False``), raising any :class:`Exception` means rejected. Async functions are
    awaited, within the timeout; a blocking synchronous function cannot be interrupted."""

    def __init__(self, verify: Callable[[str], Any], *, timeout: float = 5.0) -> None:
        if not callable(verify):
            raise TypeError("verify must be a callable taking the token")
        self._verify = verify
        self._timeout = timeout

    @property
    def supports_missing_token(self) -> bool:
        return False

    async def send(self, token: str | None) -> Answer:
        if token is None:
            raise ValueError("a verify function needs a token")
        try:
            result = self._verify(token)
            if inspect.isawaitable(result):
                async with asyncio.timeout(self._timeout):
                    result = await result
        except TimeoutError:
            raise TargetTimeout(f"the verify function took longer than {self._timeout:g} s") from None
        except Exception as exc:  # noqa: BLE001 - any exception is the verifier refusing the token
            return Answer(Outcome.REJECTED, None, _describe_exception(exc))
        if result is False:
            return Answer(Outcome.REJECTED, None, "returned False")
        return Answer(Outcome.ACCEPTED, None, "returned")

    async def send_case(self, case: AttackCase) -> Answer:
        return await self.send(case.token)


class _Pacer:
    """At most ``rate`` starts per second, spread evenly."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()
        self.count = 0

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._next
            self._next = now + self._interval
            self.count += 1


async def _calibrate(probe: Probe, token: ParsedToken, pacer: _Pacer,
                     record: Callable[[Calibration], None]) -> None:
    await pacer.wait()
    valid = await probe.send(token.text)
    record(Calibration(valid=valid))
    if valid.outcome is not Outcome.ACCEPTED:
        exp = token.payload.get("exp")
        expired = (f"the token expired {int(time.time() - exp)} s ago; "
                   if isinstance(exp, int | float) and exp < time.time() else "")
        raise ValidTokenRejected(
            f"the target answered {valid.detail} to the valid token, so an accepted attack "
            f"could not be told apart; {expired}check that the token is fresh, the URL, "
            "the method and where the token goes (--header/--scheme/--cookie)"
        )
    await pacer.wait()
    garbage = await probe.send(GARBAGE_TOKEN)
    record(Calibration(valid=valid, garbage=garbage))
    if garbage.outcome is Outcome.ACCEPTED:
        raise GarbageAccepted(
            f"the target answered {garbage.detail} to a string that is not a JWT at all: it "
            "does not check tokens on this endpoint, so every attack would look accepted"
        )
    if garbage.status is not None and garbage.status not in (401, 403):
        raise UnexpectedCalibrationAnswer(
            f"the target answered {garbage.detail} to a string that is not a JWT; a protected "
            "endpoint answers 401 or 403"
        )
    if not probe.supports_missing_token:
        return
    await pacer.wait()
    missing = await probe.send(None)
    record(Calibration(valid=valid, garbage=garbage, missing=missing))
    if missing.outcome is Outcome.ACCEPTED:
        raise MissingTokenAccepted(
            f"the target answered {missing.detail} to a request without any token: the "
            "endpoint is not protected; scan one that requires a token"
        )
    if missing.status not in (401, 403):
        raise UnexpectedCalibrationAnswer(
            f"the target answered {missing.detail} to a request without a token; a protected "
            "endpoint answers 401 or 403"
        )


async def _attack(probe: Probe, cases: Sequence[AttackCase], limits: ScanLimits, pacer: _Pacer,
                  results: list[AttackResult | None]) -> None:
    pending = iter(enumerate(cases))
    failures = 0
    stop: list[TargetFailing] = []

    async def worker() -> None:
        nonlocal failures
        for index, case in pending:  # one shared iterator: every case is taken exactly once
            if stop:
                return
            await pacer.wait()
            started = time.monotonic()
            try:
                answer = await probe.send_case(case)
            except TargetError as exc:
                results[index] = AttackResult(case, Outcome.ERROR, None,
                                              f"{exc.code}: {exc.message}",
                                              time.monotonic() - started)
                failures += 1
                if failures >= limits.max_failures and not stop:
                    stop.append(TargetFailing(
                        f"{failures} attack requests in a row got no answer (last: {exc.message}); "
                        "the target is down or too slow"
                    ))
                continue
            failures = 0
            results[index] = AttackResult(case, answer.outcome, answer.status, answer.detail,
                                          time.monotonic() - started)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(limits.concurrency, max(1, len(cases)))):
            group.create_task(worker())
    if stop:
        raise stop[0]


async def run_scan(
    probe: Probe,
    token: str,
    cases: Sequence[AttackCase],
    *,
    limits: ScanLimits | None = None,
    target: str = "target",
    before: Callable[[], Awaitable[Sequence[AttackCase]]] | None = None,
) -> ScanReport:
    """Calibrate ``probe`` with ``token``, then send each case once; return the report.

    Never raises for the target's behaviour: calibration failures, a dead or slow target
    and the deadline end up in ``ScanReport.error``, with the attacks not sent ``skipped``.
    ``before``, if given, runs first under the same deadline and returns the cases to use
    (it fetches a JWKS and derives the cases from it).
    """
    limits = limits or ScanLimits()
    parsed = parse_token(token)
    pacer = _Pacer(limits.rate)
    started = time.monotonic()
    calibration = Calibration()
    error: ScanError | None = None
    results: list[AttackResult | None] = []
    to_send: Sequence[AttackCase] = ()
    over: Sequence[AttackCase] = ()

    def record(value: Calibration) -> None:
        nonlocal calibration
        calibration = value

    def split(all_cases: Sequence[AttackCase]) -> None:
        nonlocal to_send, over, results
        to_send, over = all_cases[: limits.max_attacks], all_cases[limits.max_attacks:]
        results = [None] * len(to_send)

    split(cases)
    try:
        async with asyncio.timeout(limits.deadline):
            if before is not None:
                split(await before())
            await _calibrate(probe, parsed, pacer, record)
            await _attack(probe, to_send, limits, pacer, results)
    except TimeoutError:
        error = DeadlineExceeded(f"the scan ran over its {limits.deadline:g} s deadline")
    except ScanError as exc:
        error = exc
    reason = f"not sent: {error.code}" if error is not None else "not sent"
    final = [r if r is not None else AttackResult(c, Outcome.SKIPPED, None, reason)
             for r, c in zip(results, to_send, strict=True)]
    final += [AttackResult(c, Outcome.SKIPPED, None, f"not sent: over the limit of "
                           f"{limits.max_attacks} attacks") for c in over]
    return ScanReport(target, TokenSummary.of(parsed), calibration, tuple(final),
                      requests=pacer.count, seconds=time.monotonic() - started, error=error)


async def fetch_jwks(client: httpx.AsyncClient, url: str, timeout: float) -> dict[str, Any]:
    """GET a JWKS (JSON object with ``keys``), at most 1 MiB, within ``timeout`` seconds;
    :class:`JWKSUnavailable` otherwise."""
    shown = display_url(url)
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url, headers={"User-Agent": _USER_AGENT}) as response:
                if response.status_code != 200:
                    raise JWKSUnavailable(f"{shown} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JWKSUnavailable(f"{shown} sent more than {MAX_JWKS_BYTES} bytes")
    except (TimeoutError, httpx.TimeoutException):
        raise JWKSUnavailable(f"{shown} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise JWKSUnavailable(f"{shown} could not be fetched: {type(exc).__name__}") from None
    try:
        jwks = parse_object(bytes(body), "JWKS")
    except JWTError:
        raise JWKSUnavailable(f"{shown} is not a JSON object") from None
    if not isinstance(jwks.get("keys"), list):
        raise JWKSUnavailable(f"{shown} has no 'keys' array")
    return jwks


@dataclass(frozen=True, slots=True)
class _Derive:
    """The arguments of :func:`derive_attacks`, kept until the public key is known."""

    token: str
    public_key: PublicKeySource | None
    signing_key: SigningKeySource | None
    other_token: str | None
    callback_url: str | None
    only: tuple[str, ...]
    now: float | None
    dpop: bool = False

    def cases(self, public_key: PublicKeySource | None = None, *, final: bool = True
              ) -> list[AttackCase]:
        """The selected cases; with ``final``, :class:`ScanInputError` when ``only`` matches none."""
        cases = select(derive_attacks(
            self.token, public_key=public_key if public_key is not None else self.public_key,
            signing_key=self.signing_key, other_token=self.other_token,
            callback_url=self.callback_url, now=self.now,
        ) + (dpop_cases(self.token) if self.dpop else []), self.only)
        if final and self.only and not cases:
            raise ScanInputError(f"no attack matches {', '.join(self.only)}")
        return cases


async def scan_url(
    url: str,
    token: str,
    *,
    method: str = "GET",
    header: str = "Authorization",
    scheme: str | None = None,
    cookie: str | None = None,
    public_key: PublicKeySource | None = None,
    jwks_url: str | None = None,
    signing_key: SigningKeySource | None = None,
    other_token: str | None = None,
    callback_url: str | None = None,
    only: Iterable[str] = (),
    limits: ScanLimits | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    verify_tls: bool = True,
    now: float | None = None,
    dpop_key: Key | bytes | str | None = None,
) -> ScanReport:
    """Scan the endpoint at ``url`` with attacks derived from the valid ``token``.

    The token goes in ``header`` (``Authorization`` with scheme ``Bearer`` by default) or,
    with ``cookie``, in that cookie. ``public_key`` or ``jwks_url`` (fetched first) enable
    key confusion; ``signing_key`` the validly-signed attacks; ``only`` keeps the cases whose
    id or category matches a shell pattern. Raises :class:`ScanInputError` for unusable
    input (before any request); everything the target does ends up in the report.

    ``dpop_key``: the private key a DPoP-bound ``token`` (``cnf.jkt``) is bound to. Every
    request then goes as ``Authorization: DPoP`` with a fresh proof (nonces followed), and the
    ``dpop`` attacks (RFC 9449) are added; see :mod:`jwtwarden.scan.dpop`. A bound token
    without its key is a :class:`ScanInputError`.
    """
    limits = limits or ScanLimits()
    _check_url(url)
    _check_request_shape(method, header, scheme, cookie)
    bound_key = load_dpop_key(dpop_key) if dpop_key is not None else None
    with contextlib.suppress(BadScanToken):  # derive_attacks says what is wrong with the token
        check_dpop_binding(parse_token(token), bound_key)
    if bound_key is not None and (cookie is not None or header.lower() != "authorization"
                                  or scheme is not None):
        raise ScanInputError("a DPoP-bound token goes in Authorization with the DPoP scheme; "
                             "drop --header, --scheme and --cookie")
    if jwks_url is not None:
        _check_url(jwks_url)
        if public_key is not None:
            raise ScanInputError("give either a public key or a JWKS URL, not both")
    derive = _Derive(token, public_key, signing_key, other_token, callback_url, tuple(only), now,
                     dpop=bound_key is not None)
    cases = derive.cases(final=jwks_url is None)  # input errors surface before any request
    timeout = httpx.Timeout(limits.timeout)
    pool = httpx.Limits(max_connections=limits.concurrency,
                        max_keepalive_connections=limits.concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=pool, follow_redirects=False,
                                 transport=transport, verify=verify_tls,
                                 trust_env=False) as client:
        probe: Probe
        if bound_key is not None:
            probe = DPoPHTTPProbe(client, url, bound_key, method=method, timeout=limits.timeout)
        else:
            probe = HTTPProbe(client, url, method=method, header=header, scheme=scheme,
                              cookie=cookie, timeout=limits.timeout)
        before = None
        if jwks_url is not None:
            address = jwks_url

            async def before() -> Sequence[AttackCase]:
                return derive.cases(await fetch_jwks(client, address, limits.timeout))

        return await run_scan(probe, token, cases, limits=limits, target=display_url(url),
                              before=before)


async def scan_asgi(
    app: Any,
    token: str,
    *,
    path: str = "/",
    **options: Any,
) -> ScanReport:
    """Scan an ASGI application in-process (httpx's ``ASGITransport``), ``path`` on it.

    Takes the options of :func:`scan_url`. An exception escaping the app counts as a 500.
    """
    if not path.startswith("/"):
        raise ScanInputError("path must start with '/'")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return await scan_url(f"http://testserver{path}", token, transport=transport, **options)


async def scan_verify(
    verify: Callable[[str], Any],
    token: str,
    *,
    public_key: PublicKeySource | None = None,
    signing_key: SigningKeySource | None = None,
    other_token: str | None = None,
    only: Iterable[str] = (),
    limits: ScanLimits | None = None,
    now: float | None = None,
) -> ScanReport:
    """Scan a verify function in-process: it accepts by returning, rejects by raising."""
    limits = limits or ScanLimits(rate=1000, concurrency=1)
    derive = _Derive(token, public_key, signing_key, other_token, None, tuple(only), now)
    name = getattr(verify, "__qualname__", None) or type(verify).__name__
    return await run_scan(VerifyProbe(verify, timeout=limits.timeout), token, derive.cases(),
                          limits=limits, target=f"verify function {name}")
