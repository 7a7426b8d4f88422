"""Auditing one token: decode it, check it against RFC 8725 and the JWT checklist, verify it.

:func:`audit_token` never raises for a bad token: whatever it is given (garbage included)
comes back as a :class:`Report` whose :attr:`Report.findings` say what is wrong, each with a
stable ``code``, a :class:`Severity`, the part of the token it is about, a JSON Pointer into
that part, a sentence and a fix. Given keys, it also runs the strict
:class:`~jwtwarden.Verifier` and says which check failed (the error's ``code`` and class).
Nothing here prints; ``jwtwarden inspect`` renders the report.

Finding codes (stable; the same table is in ``docs/audit.md``, and the web debugger's
JavaScript engine reports exactly the same codes, paths and messages)::

    code                 severity  part       when
    malformed            HIGH      any        not a compact JWS: segments, base64url, JSON
    oversized_token      MEDIUM    token      longer than 8192 characters (8 KiB)
    alg_none             CRITICAL  header     alg is "none" (any letter case)
    alg_missing          HIGH      header     no alg, or not a string
    alg_unsupported      HIGH      header     alg outside HS/RS/PS 256-512, ES256-512, EdDSA
    kid_unsafe           HIGH      header     kid not a string, or with / \\ .. quotes, controls
    jku_header           HIGH      header     a URL to fetch the key from
    x5u_header           HIGH      header     a URL to fetch a certificate from
    jwk_header           HIGH      header     an embedded key
    x5c_header           HIGH      header     an embedded certificate chain
    crit_header          MEDIUM    header     critical extensions
    zip_header           MEDIUM    header     compressed payload
    b64_header           MEDIUM    header     unencoded payload (RFC 7797)
    typ_missing          LOW       header     no typ
    typ_unexpected       LOW       header     typ not JWT nor application/<kind>+jwt
    hmac_multi_service   MEDIUM    header     HMAC while aud/iss suggest several services
    signature_missing    HIGH      signature  empty signature (and alg is not none)
    signature_size       MEDIUM    signature  wrong length for alg (DER ECDSA, RSA < 2048)
    claim_type           MEDIUM    payload    a registered claim of the wrong JSON type
    exp_missing          HIGH      payload    no exp
    lifetime_too_long    MEDIUM    payload    valid for more than 15 minutes
    dpop_long_lived      LOW       payload    DPoP-bound (cnf.jkt) and valid for more than 15
                                              minutes: pre-generated proofs (RFC 9449 11.2)
    expired              INFO      payload    exp is in the past
    not_yet_valid        INFO      payload    nbf is in the future
    iat_in_future        LOW       payload    iat is in the future
    iss_missing          MEDIUM    payload    no iss
    aud_missing          MEDIUM    payload    no aud
    jti_missing          LOW       payload    no jti
    sensitive_name ...   (lint)    payload    every code of jwtwarden.lint_claims, with its
                                              severity: sensitive_name, card_number, ssn,
                                              cloud_key, access_token, private_key,
                                              embedded_jwt (a JWT nested in a claim), email,
                                              phone, high_entropy, too_deep
    verification_failed  HIGH      varies     a key was given and the strict verifier refused

``hmac_multi_service`` heuristics (HS256/384/512 only): ``aud`` is an array of two or more
distinct strings (every audience holds the secret and can forge tokens for the others), or
``iss`` and the single ``aud`` name different hosts (the host of a URL, or a bare dotted
host name such as ``api.example.com``): the verifying service holds the issuer's secret.

Lifetime is ``exp - iat`` (or ``exp - nbf`` without ``iat``); with neither, the time left
(``exp - now``) is judged instead. Time findings compare with ``now`` exactly, no leeway.
"""

from __future__ import annotations

import copy
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TypeGuard

from jwtwarden.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    BadType,
    ClaimError,
    JWTError,
    MalformedToken,
    UnknownKey,
    UnsupportedHeader,
)
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.jose.b64 import b64url_decode
from jwtwarden.jose.jws import DEFAULT_MAX_TOKEN_SIZE, media_type
from jwtwarden.jose.strict_json import parse_object
from jwtwarden.keys import KeySet
from jwtwarden.lint import lint_claims
from jwtwarden.policy import DEFAULT_LEEWAY, MAX_LIFETIME
from jwtwarden.verify import Verifier

__all__ = [
    "CATALOG",
    "INSPECT_MAX_SIZE",
    "LINT_CODES",
    "CodeSpec",
    "Finding",
    "Part",
    "Report",
    "Severity",
    "TimeClaim",
    "Verification",
    "audit_token",
    "dpop_jkt",
    "format_duration",
]

INSPECT_MAX_SIZE = 262_144
"""Tokens longer than this are not decoded at all (verifiers stop at 8192)."""

Part = Literal["token", "header", "signature", "payload"]


class Severity(enum.IntEnum):
    """How bad a finding is. LOW, MEDIUM and HIGH have the values of :class:`jwtwarden.Severity`."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name used in JSON and on the command line (``high``)."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class CodeSpec:
    """What a finding code means: its fixed severity and how to fix it."""

    severity: Severity
    fix: str


_FIX_EXPOSED_DATA = (
    "Remove it from the token: a JWT payload is only encoded, anyone holding the token can "
    "read it. Keep the data on the server and put an opaque identifier in the token."
)
_FIX_ROTATE = "Remove it from the token and rotate it now: every holder of the token has seen it."
_FIX_PERSONAL = (
    "Remove personal data unless this is an ID token meant to carry it; identify the user with "
    "an opaque sub instead."
)
_FIX_KEY_URL = (
    "Do not send it: verifiers must take keys only from their own configuration (a pinned JWKS "
    "URL), never from the token."
)

# fmt: off
CATALOG: Mapping[str, CodeSpec] = MappingProxyType({
    "malformed": CodeSpec(Severity.HIGH,
        "Produce tokens with a JOSE library: three base64url segments without padding, a "
        "header and a payload that are JSON objects with unique member names."),
    "oversized_token": CodeSpec(Severity.MEDIUM,
        "Keep tokens small: put bulky data (permission lists, profiles) behind an API and keep "
        "identifiers in the token."),
    "alg_none": CodeSpec(Severity.CRITICAL,
        "Sign every token (ES256 recommended) and verify with an explicit algorithm allowlist "
        "bound to the key, which can never contain none."),
    "alg_missing": CodeSpec(Severity.HIGH,
        "Set alg in the protected header; verifiers must still take the algorithm from their "
        "key, never from the token."),
    "alg_unsupported": CodeSpec(Severity.HIGH,
        "Use ES256 (or EdDSA, PS256, RS256; HS256 only within one service); verifiers refuse "
        "algorithms outside their allowlist."),
    "kid_unsafe": CodeSpec(Severity.HIGH,
        "Use short opaque kid strings (such as the RFC 7638 thumbprint) and only ever look kid "
        "up in a key set, never in a path, a query, a URL or a command."),
    "jku_header": CodeSpec(Severity.HIGH, _FIX_KEY_URL),
    "x5u_header": CodeSpec(Severity.HIGH, _FIX_KEY_URL),
    "jwk_header": CodeSpec(Severity.HIGH,
        "Do not embed keys in tokens: a verifier that uses the embedded key accepts tokens "
        "signed by anyone. Configure the verification key on the verifier."),
    "x5c_header": CodeSpec(Severity.HIGH,
        "Do not rely on certificates carried by the token: configure the verification key (or "
        "validate the chain against pinned trust anchors) on the verifier."),
    "crit_header": CodeSpec(Severity.MEDIUM,
        "Remove crit unless every verifier implements the extensions it lists; verifiers must "
        "refuse unknown critical headers."),
    "zip_header": CodeSpec(Severity.MEDIUM,
        "Do not compress JWS payloads (zip is defined for JWE only, and compression before "
        "encryption leaks data, RFC 8725 section 3.6)."),
    "b64_header": CodeSpec(Severity.MEDIUM,
        "Use the normal base64url-encoded payload; unencoded payloads (RFC 7797) are not for "
        "JWTs."),
    "typ_missing": CodeSpec(Severity.LOW,
        "Set an explicit typ (at+jwt for access tokens, RFC 9068) so one kind of token cannot "
        "be passed off as another (RFC 8725 section 3.11)."),
    "typ_unexpected": CodeSpec(Severity.LOW,
        "Use typ JWT or an explicit type of the form application/<kind>+jwt, such as at+jwt."),
    "hmac_multi_service": CodeSpec(Severity.MEDIUM,
        "Sign with an asymmetric algorithm (ES256): services verify with the public key and "
        "only the issuer can sign. With HMAC every verifier can also forge tokens."),
    "signature_missing": CodeSpec(Severity.HIGH,
        "Sign the token; verifiers must refuse tokens whose signature is empty."),
    "signature_size": CodeSpec(Severity.MEDIUM,
        "Produce signatures in the JWS format of the algorithm: raw r||s for ECDSA (not DER), "
        "RSA keys of at least 2048 bits."),
    "claim_type": CodeSpec(Severity.MEDIUM,
        "Use the JSON types of RFC 7519: numbers (NumericDate) for exp, nbf and iat, strings "
        "for iss, sub and jti, a string or an array of strings for aud."),
    "exp_missing": CodeSpec(Severity.HIGH,
        "Always set exp: access tokens should live 5 to 15 minutes, with rotated refresh "
        "tokens for longer sessions."),
    "lifetime_too_long": CodeSpec(Severity.MEDIUM,
        "Issue access tokens for 15 minutes at most and keep sessions alive with rotated "
        "refresh tokens."),
    "dpop_long_lived": CodeSpec(Severity.LOW,
        "Keep DPoP-bound tokens short-lived too (15 minutes at most), and require server "
        "nonces in proofs (JWTWARDEN_DPOP_NONCE=1) so that proofs cannot be made in advance "
        "by a script that briefly ran in the client (RFC 9449 sections 8 and 11.2)."),
    "expired": CodeSpec(Severity.INFO,
        "Nothing to fix in the token: get a fresh one (refresh)."),
    "not_yet_valid": CodeSpec(Severity.INFO,
        "Check the issuer's clock: the token cannot be used before nbf."),
    "iat_in_future": CodeSpec(Severity.LOW,
        "Check the clocks of the issuer and of this machine (NTP)."),
    "iss_missing": CodeSpec(Severity.MEDIUM,
        "Set iss, and have every verifier compare it with the expected issuer exactly."),
    "aud_missing": CodeSpec(Severity.MEDIUM,
        "Set aud to the service(s) the token is for; each verifier must check that aud "
        "contains its own identifier."),
    "jti_missing": CodeSpec(Severity.LOW,
        "Set a unique jti so that one token can be revoked (deny list) and replays detected."),
    "sensitive_name": CodeSpec(Severity.HIGH, _FIX_EXPOSED_DATA),
    "card_number": CodeSpec(Severity.HIGH, _FIX_EXPOSED_DATA),
    "ssn": CodeSpec(Severity.HIGH, _FIX_EXPOSED_DATA),
    "cloud_key": CodeSpec(Severity.HIGH, _FIX_ROTATE),
    "access_token": CodeSpec(Severity.HIGH, _FIX_ROTATE),
    "private_key": CodeSpec(Severity.HIGH, _FIX_ROTATE),
    "embedded_jwt": CodeSpec(Severity.HIGH,
        "Do not nest tokens: send the inner token separately and verify each token on its "
        "own; a token inside a token is readable by every holder."),
    "email": CodeSpec(Severity.MEDIUM, _FIX_PERSONAL),
    "phone": CodeSpec(Severity.MEDIUM, _FIX_PERSONAL),
    "high_entropy": CodeSpec(Severity.MEDIUM,
        "If this is a secret, remove it from the token and rotate it; if it is a public "
        "identifier, nothing to do."),
    "too_deep": CodeSpec(Severity.LOW,
        "Flatten the claims: deeply nested payloads were not fully checked."),
    "verification_failed": CodeSpec(Severity.HIGH,
        "The strict verifier refused the token at the check its code names (see the "
        "verification codes in docs/audit.md); fix the token or the key given."),
})
# fmt: on

LINT_CODES = frozenset(
    {
        "sensitive_name", "card_number", "ssn", "cloud_key", "access_token", "private_key",
        "embedded_jwt", "email", "phone", "high_entropy", "too_deep",
    }
)  # fmt: skip
"""The codes that come from :func:`jwtwarden.lint_claims`; their values are masked."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a token.

    ``path`` is an RFC 6901 JSON Pointer into ``part`` (``/alg`` in the header, ``/user/card``
    in the payload; empty for the whole part). ``message`` never quotes a claim value.
    """

    code: str
    severity: Severity
    part: Part
    path: str
    message: str

    @property
    def fix(self) -> str:
        """How to fix it: the catalog's fix for this code."""
        return CATALOG[self.code].fix

    def to_dict(self) -> dict[str, str]:
        """JSON-ready, severity as its lower-case label, fix included."""
        return {
            "code": self.code,
            "severity": self.severity.label,
            "part": self.part,
            "path": self.path,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class TimeClaim:
    """A NumericDate claim: its value, as a UTC date, and seconds from ``now`` (negative: past)."""

    name: str
    value: float
    iso: str | None
    relative: float


@dataclass(frozen=True, slots=True)
class Verification:
    """The strict verifier's verdict. ``code``/``error`` name the check that failed.

    ``issuer_pinned``/``audience_pinned`` say whether ``iss``/``aud`` were compared with
    values given by the caller; when not, the token's own values were accepted as found.
    """

    verified: bool
    code: str | None
    error: str | None
    message: str | None
    part: Part | None
    path: str | None
    kid: str | None
    alg: str | None
    issuer_pinned: bool
    audience_pinned: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the same member names."""
        return {
            "verified": self.verified,
            "code": self.code,
            "error": self.error,
            "message": self.message,
            "part": self.part,
            "path": self.path,
            "kid": self.kid,
            "alg": self.alg,
            "issuer_pinned": self.issuer_pinned,
            "audience_pinned": self.audience_pinned,
        }


MASK = "<masked: {code}>"
"""What a masked claim value is replaced with in output."""


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``inspect`` knows about a token. ``header``/``payload`` are ``None`` when
    they could not be decoded; ``verification`` is ``None`` when no key was given."""

    now: float
    size: int
    header: dict[str, Any] | None
    payload: dict[str, Any] | None
    signature: bytes | None
    findings: tuple[Finding, ...]
    times: tuple[TimeClaim, ...]
    verification: Verification | None

    @property
    def worst(self) -> Severity | None:
        """The highest severity among the findings, ``None`` without findings."""
        return max((f.severity for f in self.findings), default=None)

    @property
    def verified(self) -> bool:
        """True only when keys were given and the strict verifier accepted the token."""
        return self.verification is not None and self.verification.verified

    @property
    def jkt(self) -> str | None:
        """The DPoP key thumbprint the token is bound to (``cnf.jkt``), as written."""
        return dpop_jkt(self.payload)

    @property
    def alg(self) -> str | None:
        """The header's ``alg`` when it is a string (as written: nothing is trusted)."""
        alg = self.header.get("alg") if self.header is not None else None
        return alg if isinstance(alg, str) else None

    def masked_paths(self) -> dict[str, str]:
        """Payload pointers whose values the linter flagged, with the finding code."""
        paths: dict[str, str] = {}
        for finding in self.findings:
            if finding.part == "payload" and finding.code in LINT_CODES - {"too_deep"}:
                paths.setdefault(finding.path, finding.code)
        return paths

    def display_payload(self, *, show_secrets: bool = False) -> dict[str, Any] | None:
        """The payload with flagged values replaced by ``<masked: CODE>`` unless asked."""
        if self.payload is None or show_secrets:
            return self.payload
        masked = copy.deepcopy(self.payload)
        for path, code in self.masked_paths().items():
            _replace(masked, path, MASK.format(code=code))
        return masked

    def to_dict(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """A JSON-serialisable view (what ``inspect --json`` prints)."""
        worst = self.worst
        return {
            "verified": self.verified,
            "now": self.now,
            "size": self.size,
            "header": self.header,
            "payload": self.display_payload(show_secrets=show_secrets),
            "masked": [] if show_secrets else sorted(self.masked_paths()),
            "signature": None
            if self.signature is None
            else {"alg": self.alg, "bytes": len(self.signature)},
            "times": {
                t.name: {"value": t.value, "date": t.iso, "relative_seconds": t.relative}
                for t in self.times
            },
            "cnf": {"jkt": self.jkt} if self.jkt is not None else None,
            "findings": [f.to_dict() for f in self.findings],
            "worst": worst.label if worst is not None else None,
            "verification": self.verification.to_dict() if self.verification else None,
        }

    def __repr__(self) -> str:
        codes = [f.code for f in self.findings]
        return f"Report(size={self.size}, verified={self.verified}, findings={codes!r})"


# --------------------------------------------------------------------------- helpers


def _pointer_tokens(path: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]


def _replace(document: Any, path: str, value: Any) -> None:
    """Set the value at ``path`` (RFC 6901) in ``document`` if it exists."""
    tokens = _pointer_tokens(path)
    if not tokens:
        return
    node = document
    for token in tokens[:-1]:
        node = _child(node, token)
        if node is None:
            return
    last = tokens[-1]
    if isinstance(node, dict) and last in node:
        node[last] = value
    elif isinstance(node, list) and _is_index(last) and int(last) < len(node):
        node[int(last)] = value


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and _is_index(token) and int(token) < len(node):
        return node[int(token)]
    return None


def _is_index(token: str) -> bool:
    return token.isascii() and token.isdigit()


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(value: int | float) -> float:
    """As a float (the JavaScript engine's arithmetic); huge integers become infinite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


_TEN_YEARS = 10 * 365 * 86400
_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def format_duration(seconds: float) -> str:
    """A duration for people: the two largest units of whole seconds (``2 d 3 h``,
    ``15 min 1 s``, ``0 s``); ``more than 10 years`` beyond that (infinity included)."""
    if not seconds < _TEN_YEARS:  # also catches inf and nan
        return "more than 10 years"
    rest = int(seconds)
    parts = []
    for size, label in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {label}")
    return " ".join(parts[:2]) or "0 s"


def _host(value: str) -> str | None:
    """The host named by a URL or a bare dotted host name, lower-cased; else ``None``."""
    scheme_end = value.find("://")
    if scheme_end > 0:
        rest = value[scheme_end + 3 :]
        end = len(rest)
        for char in "/?#":
            index = rest.find(char)
            if 0 <= index < end:
                end = index
        authority = rest[:end]
        authority = authority[authority.rfind("@") + 1 :]
        if authority.startswith("["):
            close = authority.find("]")
            host = authority[: close + 1] if close > 0 else authority
        else:
            colon = authority.rfind(":")
            host = authority[:colon] if colon >= 0 else authority
        return host.lower() or None
    if "." in value and all(c.isascii() and (c.isalnum() or c in ".-") for c in value):
        return value.lower()
    return None


_KID_PATH = ("/", "\\", "..")
_KID_QUOTES = frozenset("\"'`")


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


_KEY_HEADERS: tuple[tuple[str, str], ...] = (
    ("jku", "the header names a URL to fetch the verification key from (jku); a verifier "
            "that follows it accepts tokens signed by anyone"),
    ("x5u", "the header names a URL to fetch a certificate from (x5u); a verifier that "
            "follows it accepts tokens signed by anyone"),
    ("jwk", "the header embeds a key (jwk); a verifier that uses it accepts tokens signed by "
            "anyone"),
    ("x5c", "the header embeds a certificate chain (x5c); a verifier that trusts it without "
            "validating the chain accepts tokens signed by anyone"),
    ("crit", "the header declares critical extensions (crit); a verifier that does not "
             "implement them must refuse the token"),
    ("zip", "the header asks for a compressed payload (zip), which is defined only for JWE"),
    ("b64", "the header has b64 (RFC 7797 unencoded payload), which JWTs must not use"),
)  # fmt: skip

_SIGNATURE_BYTES = {
    "HS256": 32, "HS384": 48, "HS512": 64, "ES256": 64, "ES384": 96, "ES512": 132, "EdDSA": 64,
}  # fmt: skip
_RSA_MIN_BYTES = 256
_HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})

_CLAIM_TYPES: tuple[tuple[str, str], ...] = (
    ("iss", "a string"),
    ("sub", "a string"),
    ("aud", "a string or an array of strings"),
    ("exp", "a number"),
    ("nbf", "a number"),
    ("iat", "a number"),
    ("jti", "a string"),
)


def _type_ok(name: str, value: object) -> bool:
    if name in ("exp", "nbf", "iat"):
        return _is_number(value)
    if name == "aud":
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(a, str) for a in value)
        )
    return isinstance(value, str)


def _iso(value: float) -> str | None:
    try:
        return datetime.fromtimestamp(value, tz=UTC).isoformat(timespec="seconds").replace(
            "+00:00", "Z"
        )
    except (OverflowError, ValueError, OSError):
        return None


# --------------------------------------------------------------------------- the checks


class _Collector:
    __slots__ = ("findings",)

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, code: str, part: Part, path: str, message: str) -> None:
        self.findings.append(Finding(code, CATALOG[code].severity, part, path, message))


def _split(token: str, out: _Collector) -> list[str] | None:
    """Token-level checks; the three segments, or ``None`` when nothing more can be read."""
    size = len(token)
    if size > INSPECT_MAX_SIZE:
        out.add("oversized_token", "token", "", _oversized_message(size))
        out.add(
            "malformed", "token", "",
            f"the token is over {INSPECT_MAX_SIZE} characters; it was not inspected",
        )  # fmt: skip
        return None
    if size > DEFAULT_MAX_TOKEN_SIZE:
        out.add("oversized_token", "token", "", _oversized_message(size))
    if not token.isascii():
        out.add("malformed", "token", "", "the token contains non-ASCII characters")
        return None
    if any(char in token for char in " \t\r\n\f\v"):
        out.add(
            "malformed", "token", "",
            "the token contains whitespace (a line break or space pasted inside it?)",
        )  # fmt: skip
        return None
    segments = token.split(".")
    if len(segments) == 5:
        out.add(
            "malformed", "token", "",
            "the token has five segments: it is an encrypted JWE, which cannot be read "
            "without its decryption key; inspect reads signed JWTs (JWS)",
        )  # fmt: skip
        return None
    if len(segments) != 3:
        out.add(
            "malformed", "token", "",
            f"a signed JWT has three dot-separated segments; this token has {len(segments)}",
        )  # fmt: skip
        return None
    return segments


def _oversized_message(size: int) -> str:
    return (
        f"the token is {size} characters long; verifiers refuse tokens over "
        f"{DEFAULT_MAX_TOKEN_SIZE} characters (8 KiB) before decoding them"
    )


def _decode_bytes(segment: str, part: Part, out: _Collector) -> bytes | None:
    try:
        return b64url_decode(segment)
    except MalformedToken as exc:
        out.add("malformed", part, "", f"the {part} segment is not strict base64url: {exc.message}")
        return None


def _decode_object(segment: str, part: Part, out: _Collector) -> dict[str, Any] | None:
    raw = _decode_bytes(segment, part, out)
    if raw is None:
        return None
    try:
        return parse_object(raw, part)
    except MalformedToken as exc:
        out.add("malformed", part, "", exc.message)
        return None


def _check_header(header: dict[str, Any], out: _Collector) -> None:
    alg = header.get("alg")
    if "alg" not in header:
        out.add("alg_missing", "header", "/alg", "the header has no alg")
    elif not isinstance(alg, str):
        out.add("alg_missing", "header", "/alg", "alg is not a string")
    elif alg.lower() == "none":
        out.add(
            "alg_none", "header", "/alg",
            "alg is none: the token is not signed and anyone can write one",
        )  # fmt: skip
    elif alg not in ALGORITHMS:
        out.add(
            "alg_unsupported", "header", "/alg",
            "alg is not one of the algorithms jwtwarden accepts ("
            + ", ".join(ALGORITHMS) + ")",
        )  # fmt: skip
    if "kid" in header:
        _check_kid(header["kid"], out)
    for name, message in _KEY_HEADERS:
        if name in header:
            out.add(f"{name}_header", "header", f"/{name}", message)
    if "typ" not in header:
        out.add(
            "typ_missing", "header", "/typ",
            "the header has no typ, so this token can be passed off as another kind of JWT",
        )  # fmt: skip
    else:
        typ = header["typ"]
        if not isinstance(typ, str):
            out.add("typ_unexpected", "header", "/typ", "typ is not a string")
        else:
            kind = media_type(typ)
            if kind != "jwt" and not kind.endswith("+jwt"):
                out.add(
                    "typ_unexpected", "header", "/typ",
                    "typ does not name a JWT type (JWT or application/<kind>+jwt)",
                )  # fmt: skip


def _check_kid(kid: object, out: _Collector) -> None:
    if not isinstance(kid, str):
        out.add("kid_unsafe", "header", "/kid", "kid is not a string")
        return
    reasons = []
    if any(part in kid for part in _KID_PATH):
        reasons.append("a path separator or '..'")
    if any(char in _KID_QUOTES for char in kid):
        reasons.append("a quote")
    if any(_is_control(char) for char in kid):
        reasons.append("a control character")
    if reasons:
        out.add("kid_unsafe", "header", "/kid", "kid contains " + " and ".join(reasons))


def _check_hmac_audience(header: dict[str, Any], payload: dict[str, Any], out: _Collector) -> None:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _HMAC_ALGS:
        return
    aud = payload.get("aud")
    if isinstance(aud, list):
        audiences = list(dict.fromkeys(a for a in aud if isinstance(a, str)))
    elif isinstance(aud, str):
        audiences = [aud]
    else:
        audiences = []
    if len(audiences) > 1:
        out.add(
            "hmac_multi_service", "header", "/alg",
            f"alg is HMAC and aud names {len(audiences)} audiences: every service that "
            "verifies holds the secret and can forge tokens for the others",
        )  # fmt: skip
        return
    iss = payload.get("iss")
    if len(audiences) == 1 and isinstance(iss, str):
        iss_host, aud_host = _host(iss), _host(audiences[0])
        if iss_host is not None and aud_host is not None and iss_host != aud_host:
            out.add(
                "hmac_multi_service", "header", "/alg",
                "alg is HMAC and iss and aud are different hosts: the audience holds the "
                "issuer's secret and can forge tokens",
            )  # fmt: skip


def _check_signature(
    header: dict[str, Any] | None, signature: bytes, alg_none: bool, out: _Collector
) -> None:
    if not signature:
        if not alg_none:
            out.add("signature_missing", "signature", "", "the signature is empty: the token is not signed")
        return
    alg = header.get("alg") if header is not None else None
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        return
    size = len(signature)
    expected = _SIGNATURE_BYTES.get(alg)
    if expected is None:  # RSA: the size of the modulus
        if size < _RSA_MIN_BYTES:
            out.add(
                "signature_size", "signature", "",
                f"the signature is {size} bytes: the RSA key has fewer than 2048 bits",
            )  # fmt: skip
    elif size != expected:
        message = f"the signature is {size} bytes; {alg} signatures are {expected} bytes"
        if alg.startswith("ES") and signature[0] == 0x30:
            message += " (it looks DER-encoded; JWS needs raw r||s)"
        out.add("signature_size", "signature", "", message)


def _check_payload(payload: dict[str, Any], now: float, out: _Collector) -> None:
    for name, wanted in _CLAIM_TYPES:
        if name in payload and not _type_ok(name, payload[name]):
            out.add(
                "claim_type", "payload", f"/{name}",
                f"{name} has the wrong JSON type (RFC 7519 wants {wanted})",
            )  # fmt: skip
    exp, nbf, iat = payload.get("exp"), payload.get("nbf"), payload.get("iat")
    if "exp" not in payload:
        out.add("exp_missing", "payload", "/exp", "the token has no exp: it never expires")
    elif _is_number(exp):
        expires = _num(exp)
        start_name = "iat" if _is_number(iat) else "nbf" if _is_number(nbf) else None
        lifetime = expires - _num(payload[start_name]) if start_name is not None else expires - now
        if start_name is not None:
            if lifetime > MAX_LIFETIME:
                out.add(
                    "lifetime_too_long", "payload", "/exp",
                    f"the token is valid for {format_duration(lifetime)} (from {start_name} to exp), "
                    "more than 15 minutes",
                )  # fmt: skip
        elif expires - now > MAX_LIFETIME:
            out.add(
                "lifetime_too_long", "payload", "/exp",
                f"the token has no iat or nbf and is valid for {format_duration(expires - now)} "
                "more, more than 15 minutes",
            )  # fmt: skip
        if dpop_jkt(payload) is not None and lifetime > MAX_LIFETIME:
            out.add(
                "dpop_long_lived", "payload", "/cnf/jkt",
                f"the token is DPoP-bound and valid for {format_duration(lifetime)}: proofs made "
                "in advance by a script that briefly ran in the client work as long, unless the "
                "servers require nonces (RFC 9449 section 11.2)",
            )  # fmt: skip
        if expires <= now:
            out.add("expired", "payload", "/exp", f"the token expired {format_duration(now - expires)} ago")
    if _is_number(nbf) and _num(nbf) > now:
        out.add(
            "not_yet_valid", "payload", "/nbf",
            f"the token is not valid for another {format_duration(_num(nbf) - now)} (nbf)",
        )  # fmt: skip
    if _is_number(iat) and _num(iat) > now:
        out.add("iat_in_future", "payload", "/iat", f"iat is {format_duration(_num(iat) - now)} in the future")
    if "iss" not in payload:
        out.add("iss_missing", "payload", "/iss", "the token has no iss: verifiers cannot check who issued it")
    if "aud" not in payload:
        out.add("aud_missing", "payload", "/aud", "the token has no aud: any service that trusts the issuer accepts it")
    if "jti" not in payload:
        out.add("jti_missing", "payload", "/jti", "the token has no jti: it cannot be revoked on its own")
    for lint in lint_claims(payload):
        out.findings.append(Finding(lint.code, Severity(int(lint.severity)), "payload", lint.path, lint.message))


def dpop_jkt(payload: Mapping[str, Any] | None) -> str | None:
    """The ``cnf.jkt`` of a DPoP-bound token (RFC 9449 section 6), if it has one."""
    cnf = payload.get("cnf") if payload is not None else None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None


def _times(payload: dict[str, Any] | None, now: float) -> tuple[TimeClaim, ...]:
    if payload is None:
        return ()
    times = []
    for name in ("iat", "nbf", "exp"):
        value = payload.get(name)
        if _is_number(value):
            number = _num(value)
            times.append(TimeClaim(name, number, _iso(number), number - now))
    return tuple(times)


# --------------------------------------------------------------------------- verification

_UNPINNED = "\x00jwtwarden: no value to compare with"


def _failure_location(exc: JWTError) -> tuple[Part, str]:
    if isinstance(exc, ClaimError) and not isinstance(exc, BadType):
        return "payload", f"/{exc.claim}"
    if isinstance(exc, BadType):
        return "header", "/typ"
    if isinstance(exc, UnsupportedHeader):
        return "header", f"/{exc.header}"
    if isinstance(exc, AlgorithmNotAllowed):
        return "header", "/alg"
    if isinstance(exc, UnknownKey):
        return "header", "/kid"
    if isinstance(exc, BadSignature):
        return "signature", ""
    return "token", ""


def _expected_issuer(payload: dict[str, Any] | None) -> str:
    iss = payload.get("iss") if payload is not None else None
    return iss if isinstance(iss, str) and iss else _UNPINNED


def _expected_audience(payload: dict[str, Any] | None) -> str | list[str]:
    aud = payload.get("aud") if payload is not None else None
    if isinstance(aud, str) and aud:
        return aud
    if isinstance(aud, list) and aud and all(isinstance(a, str) and a for a in aud):
        return aud
    return _UNPINNED


def _verify(
    token: str,
    now: float,
    keys: KeySet,
    payload: dict[str, Any] | None,
    *,
    issuer: str | Iterable[str] | None,
    audience: str | Iterable[str] | None,
    algorithms: Iterable[str] | None,
    typ: str | None,
    leeway: float,
) -> Verification:
    algs = sorted(set(algorithms)) if algorithms is not None else sorted({k.alg for k in keys})
    verifier = Verifier(
        keys,
        issuer=issuer if issuer is not None else _expected_issuer(payload),
        audience=audience if audience is not None else _expected_audience(payload),
        algorithms=algs,
        typ=typ,
        leeway=leeway,
        clock=lambda: now,
        # inspecting grants nothing: a bound token's signature and claims are checked here;
        # whether a proof of its key came with it is the resource server's business
        unsafe_allow_cnf=True,
    )
    kid = alg = None
    try:
        key = verifier.verify_signature(token).key
        kid, alg = key.kid, key.alg
        verifier.verify(token)
    except JWTError as exc:
        part, path = _failure_location(exc)
        return Verification(
            False, exc.code, type(exc).__name__, exc.message, part, path, kid, alg,
            issuer is not None, audience is not None,
        )  # fmt: skip
    return Verification(
        True, None, None, None, None, None, kid, alg, issuer is not None, audience is not None
    )


# --------------------------------------------------------------------------- entry point


def audit_token(
    token: str | bytes,
    *,
    now: float,
    keys: KeySet | None = None,
    issuer: str | Iterable[str] | None = None,
    audience: str | Iterable[str] | None = None,
    algorithms: Iterable[str] | None = None,
    typ: str | None = None,
    leeway: float = DEFAULT_LEEWAY,
) -> Report:
    """Decode ``token`` without trusting it, list every finding, and verify it if given keys.

    Checks, in this order (the findings come in this order): the token's size, characters
    and segments; the header (``alg``, ``kid``, key-bearing and refused parameters, ``typ``,
    HMAC across services); the signature's presence and size; the payload (claim types,
    ``exp`` and lifetime, time claims against ``now``, ``iss``/``aud``/``jti``, then every
    finding of :func:`jwtwarden.lint_claims`); last, with ``keys``, the strict
    :class:`~jwtwarden.Verifier` (``verification_failed`` and :attr:`Report.verification`).

    Verification uses ``algorithms`` (default: the algorithms of ``keys``; the algorithm
    always comes from the key), ``issuer``/``audience`` (default: the token's own values,
    reported as not pinned), ``typ``, ``leeway`` and ``now`` as the clock. ``keys`` should
    hold public keys (or HMAC secrets).

    A bad token never raises: it is a ``malformed`` finding. Raises :class:`ValueError` only
    for verifier options that cannot work (no key for the given algorithms, an empty
    issuer...), as :class:`~jwtwarden.Verifier` does.
    """
    out = _Collector()
    header = payload = None
    signature: bytes | None = None
    if isinstance(token, bytes | bytearray):
        try:
            text = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            text = bytes(token).decode("utf-8", errors="replace")
    else:
        text = token
    segments = _split(text, out)
    if segments is not None:
        header = _decode_object(segments[0], "header", out)
        payload = _decode_object(segments[1], "payload", out)
        signature = _decode_bytes(segments[2], "signature", out)
        if header is not None:
            _check_header(header, out)
            if payload is not None:
                _check_hmac_audience(header, payload, out)
        if signature is not None:
            alg_none = any(f.code == "alg_none" for f in out.findings)
            _check_signature(header, signature, alg_none, out)
        if payload is not None:
            _check_payload(payload, now, out)
    verification = None
    if keys is not None:
        verification = _verify(
            text, now, keys, payload, issuer=issuer, audience=audience,
            algorithms=algorithms, typ=typ, leeway=leeway,
        )  # fmt: skip
        if not verification.verified:
            assert verification.part is not None  # noqa: S101 - set on every failure
            out.add(
                "verification_failed", verification.part, verification.path or "",
                f"the strict verifier refused the token: {verification.code} "
                f"({verification.error}): {verification.message}",
            )  # fmt: skip
    return Report(
        now=now,
        size=len(text),
        header=header,
        payload=payload,
        signature=signature,
        findings=tuple(out.findings),
        times=_times(payload, now),
        verification=verification,
    )
