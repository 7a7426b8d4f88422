"""What a scan found, and its three renderings: a table for people, JSON and JUnit XML for CI.

An attack is **accepted** when the target answered it the way it answered the valid token
(HTTP 2xx; a verify function returning), **rejected** for any other 3xx/4xx (a verify
function raising), an **error** for a 5xx, a timeout or a connection failure, and
**skipped** when it was never sent (over the attack limit, or the scan stopped early).
An accepted attack is a **vulnerability** unless its impact is ``info`` (lenient parsing).

Renderings never contain the valid token, a forged token or a secret unless asked for with
``show_tokens=True``; answers are the HTTP status only, never a response body.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET  # builds XML only, never parses any
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from jwtwarden import __version__
from jwtwarden.scan.attacks import AttackCase, Impact, ParsedToken
from jwtwarden.scan.errors import CalibrationFailed, ScanError

__all__ = [
    "Answer",
    "AttackResult",
    "Calibration",
    "Outcome",
    "ScanReport",
    "TokenSummary",
    "redact",
    "render_text",
    "to_dict",
    "to_junit_xml",
]

JSON_FORMAT_VERSION = 1


class Outcome(enum.StrEnum):
    """How the target answered one request."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer of the target: the outcome, the HTTP status if any, and a short description
    (``401 Unauthorized``, ``BadSignature (bad_signature)``, ``timeout after 5 s``)."""

    outcome: Outcome
    status: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class AttackResult:
    """One attack case and how the target answered it."""

    case: AttackCase
    outcome: Outcome
    status: int | None = None
    answer: str = ""
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED

    @property
    def vulnerable(self) -> bool:
        """Accepted, and acceptance of this attack is a vulnerability."""
        return self.accepted and self.case.vulnerable_if_accepted

    @property
    def lenient(self) -> bool:
        """Accepted, but only a hardening finding (impact ``info``)."""
        return self.accepted and not self.case.vulnerable_if_accepted


@dataclass(frozen=True, slots=True)
class Calibration:
    """The target's answers to the valid token, to garbage and to no token at all."""

    valid: Answer | None = None
    garbage: Answer | None = None
    missing: Answer | None = None


def redact(text: str, keep: int = 4) -> str:
    """The first characters and the length: enough to recognise a token, not to use it."""
    if len(text) <= keep * 2:
        return "…"
    return f"{text[:keep]}…({len(text)} chars)"


@dataclass(frozen=True, slots=True)
class TokenSummary:
    """What a report says about the valid token: its header basics and claim names only."""

    alg: str | None
    kid: str | None
    typ: str | None
    claims: tuple[str, ...]
    length: int
    text: str = field(repr=False)

    @classmethod
    def of(cls, token: ParsedToken) -> TokenSummary:
        typ = token.header.get("typ")
        return cls(token.alg, token.kid, typ if isinstance(typ, str) else None,
                   tuple(sorted(token.payload)), len(token.text), token.text)

    def shown(self, show_tokens: bool) -> str:
        return self.text if show_tokens else redact(self.text)


@dataclass(frozen=True, slots=True)
class ScanReport:
    """Everything one scan did: calibration, each attack's result, and why it stopped early.

    ``error`` is ``None`` for a scan that ran to the end; otherwise the
    :class:`~jwtwarden.scan.errors.ScanError` that stopped it (calibration failed, target
    unreachable or failing, deadline) and the attacks not sent are ``skipped``.
    """

    target: str
    token: TokenSummary | None
    calibration: Calibration
    results: tuple[AttackResult, ...]
    requests: int = 0
    seconds: float = 0.0
    error: ScanError | None = None

    def _with(self, outcome: Outcome) -> tuple[AttackResult, ...]:
        return tuple(r for r in self.results if r.outcome is outcome)

    @property
    def accepted(self) -> tuple[AttackResult, ...]:
        return self._with(Outcome.ACCEPTED)

    @property
    def vulnerabilities(self) -> tuple[AttackResult, ...]:
        """Accepted attacks whose acceptance is a vulnerability."""
        return tuple(r for r in self.results if r.vulnerable)

    @property
    def lenient(self) -> tuple[AttackResult, ...]:
        """Accepted attacks that only show lenient parsing (impact ``info``)."""
        return tuple(r for r in self.results if r.lenient)

    @property
    def rejected(self) -> tuple[AttackResult, ...]:
        return self._with(Outcome.REJECTED)

    @property
    def errors(self) -> tuple[AttackResult, ...]:
        return self._with(Outcome.ERROR)

    @property
    def skipped(self) -> tuple[AttackResult, ...]:
        return self._with(Outcome.SKIPPED)

    @property
    def calibrated(self) -> bool:
        """False when calibration failed (then nothing was attacked)."""
        return self.calibration.valid is not None and not isinstance(self.error, CalibrationFailed)

    @property
    def complete(self) -> bool:
        return self.error is None and not self.skipped

    def summary(self) -> dict[str, Any]:
        return {
            "attacks": len(self.results),
            "sent": len(self.results) - len(self.skipped),
            "accepted": len(self.accepted),
            "vulnerabilities": len(self.vulnerabilities),
            "lenient": len(self.lenient),
            "rejected": len(self.rejected),
            "errors": len(self.errors),
            "skipped": len(self.skipped),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "vulnerabilities_by_impact": {
                str(i): sum(1 for r in self.vulnerabilities if r.case.impact is i)
                for i in sorted(Impact, reverse=True) if i is not Impact.INFO
            },
        }


# ---- JSON -----------------------------------------------------------------------------------


def _answer_dict(answer: Answer | None) -> dict[str, Any] | None:
    if answer is None:
        return None
    return {"outcome": str(answer.outcome), "status": answer.status, "answer": answer.detail}


def _result_dict(result: AttackResult, show_tokens: bool) -> dict[str, Any]:
    case = result.case
    out: dict[str, Any] = {
        "id": case.id,
        "category": case.category,
        "impact": str(case.impact),
        "title": case.title,
        "outcome": str(result.outcome),
        "vulnerable": result.vulnerable,
        "status": result.status,
        "answer": result.answer,
        "seconds": round(result.seconds, 4),
        "why": case.why,
        "fix": case.fix,
        "cve": case.cve,
        "note": case.note or None,
    }
    if show_tokens:
        out["token"] = case.token
    return out


def to_dict(report: ScanReport, *, show_tokens: bool = False) -> dict[str, Any]:
    """The report as JSON-ready data (the ``--json`` output); see docs/scan.md for the format."""
    token: Mapping[str, Any] | None = None
    if report.token is not None:
        token = {
            "alg": report.token.alg, "kid": report.token.kid, "typ": report.token.typ,
            "claims": list(report.token.claims), "length": report.token.length,
            "text": report.token.shown(show_tokens),
        }
    cal = report.calibration
    return {
        "format": JSON_FORMAT_VERSION,
        "tool": f"jwtwarden scan {__version__}",
        "target": report.target,
        "token": token,
        "calibration": {
            "valid_token": _answer_dict(cal.valid),
            "garbage": _answer_dict(cal.garbage),
            "missing_token": _answer_dict(cal.missing),
        },
        "summary": report.summary(),
        "error": None if report.error is None else {
            "code": report.error.code, "message": report.error.message,
        },
        "results": [_result_dict(r, show_tokens) for r in report.results],
    }


# ---- JUnit XML ------------------------------------------------------------------------------


def to_junit_xml(report: ScanReport) -> str:
    """JUnit XML: one testcase per attack, a failure for each vulnerability, an error for each
    5xx/timeout, skipped for attacks not sent, plus an error testcase when the scan stopped."""
    suite = ET.Element("testsuite", {"name": f"jwtwarden scan {report.target}"})
    failures = errors = skipped = 0
    if report.error is not None:
        errors += 1
        case = ET.SubElement(suite, "testcase", {
            "classname": "jwtwarden.scan",
            "name": "calibration" if isinstance(report.error, CalibrationFailed) else "scan",
            "time": "0",
        })
        ET.SubElement(case, "error", {"type": report.error.code, "message": report.error.message})
    for result in report.results:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"jwtwarden.scan.{result.case.category}",
            "name": result.id,
            "time": f"{result.seconds:.4f}",
        })
        if result.vulnerable:
            failures += 1
            failure = ET.SubElement(case, "failure", {
                "type": "accepted",
                "message": f"accepted ({result.answer}): {result.case.title}",
            })
            failure.text = f"Why: {result.case.why}\nFix: {result.case.fix}"
        elif result.lenient:
            ET.SubElement(case, "system-out").text = (
                f"accepted ({result.answer}), lenient but not a vulnerability: {result.case.why}"
            )
        elif result.outcome is Outcome.ERROR:
            errors += 1
            ET.SubElement(case, "error", {"type": "error", "message": result.answer})
        elif result.outcome is Outcome.SKIPPED:
            skipped += 1
            ET.SubElement(case, "skipped", {"message": result.answer or "not sent"})
    tests = len(report.results) + (1 if report.error is not None else 0)
    counts = {"tests": str(tests), "failures": str(failures), "errors": str(errors),
              "skipped": str(skipped), "time": f"{report.seconds:.3f}"}
    suite.attrib.update(counts)
    root = ET.Element("testsuites", {"name": "jwtwarden scan", **counts})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---- the table for people -------------------------------------------------------------------

_STYLES = {
    "VULNERABLE": "bold red", "lenient": "yellow", "rejected": "green", "error": "magenta",
    "skipped": "dim",
}


def _label(result: AttackResult) -> str:
    if result.vulnerable:
        return "VULNERABLE"
    if result.lenient:
        return "lenient"
    return str(result.outcome)


def _calibration_line(report: ScanReport) -> str:
    cal = report.calibration
    parts = []
    for name, answer in (("valid token", cal.valid), ("garbage", cal.garbage),
                         ("no token", cal.missing)):
        if answer is not None:
            parts.append(f"{name} → {answer.detail}")
    return "; ".join(parts) or "not run"


def _hints(report: ScanReport) -> list[str]:
    """What the scan could not try, and which option would let it."""
    if not report.results:
        return []
    requires = {r.case.spec.requires for r in report.results}
    hints = []
    asymmetric = report.token is not None and not (report.token.alg or "").startswith("HS")
    if asymmetric and "public-key" not in requires:
        hints.append("Key-confusion attacks were not tried: give the target's public key "
                     "(--jwks-url or --public-key).")
    if "signing-key" not in requires:
        hints.append("Attacks that need a valid signature (expired, no exp, foreign iss/aud, "
                     "crit, zip...) were not tried: to test your own API, give its signing key "
                     "(--private-key or --secret-file).")
    return hints


def render_text(report: ScanReport, file: IO[str] | None = None, *, show_tokens: bool = False
                ) -> None:
    """Print the report for people: calibration, one row per attack, then each finding with
    why it matters and how to fix it, then the summary."""
    # rich is imported here, not at the top: only people's reports need it
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=file, highlight=False)
    if not console.is_terminal:
        console.width = 120  # files and pipes: wide enough for the table, no colour
    token = report.token
    console.print(f"[bold]jwtwarden scan[/bold] of {escape(report.target)}")
    if token is not None:
        console.print(f"token: alg {escape(str(token.alg))}, kid {escape(token.kid or '-')}, "
                      f"claims {escape(', '.join(token.claims))} "
                      f"({escape(token.shown(show_tokens))})")
    console.print(f"calibration: {escape(_calibration_line(report))}")
    if report.results and report.calibrated:
        table = Table(show_edge=False, pad_edge=False, expand=False)
        table.add_column("result")
        table.add_column("attack")
        table.add_column("impact")
        table.add_column("answer")
        for result in report.results:
            label = _label(result)
            table.add_row(f"[{_STYLES.get(label, '')}]{label}[/]", escape(result.id),
                          str(result.case.impact), escape(result.answer))
        console.print(table)
    for result in report.vulnerabilities:
        case = result.case
        cve = f" ({case.cve})" if case.cve else ""
        console.print(f"\n[bold red]VULNERABLE[/] {escape(case.id)}{escape(cve)}: "
                      f"{escape(case.title)} — the target answered {escape(result.answer)}")
        if case.note:
            console.print(f"  Note: {escape(case.note)}")
        console.print(f"  Why: {escape(case.why)}")
        console.print(f"  Fix: {escape(case.fix)}")
        if show_tokens:
            console.print(f"  Token: {escape(case.token)}", soft_wrap=True)
    for hint in _hints(report):
        console.print(f"\n[dim]{escape(hint)}[/]")
    if report.lenient:
        names = ", ".join(r.id for r in report.lenient)
        console.print(f"\n[yellow]lenient[/] (accepted, not a vulnerability): {escape(names)}")
    s = report.summary()
    console.print(
        f"\n{s['sent']} attacks sent ({s['requests']} requests, {s['seconds']:.2f} s): "
        f"{s['vulnerabilities']} vulnerable, {s['lenient']} lenient, {s['rejected']} rejected, "
        f"{s['errors']} errors, {s['skipped']} skipped"
    )
    if report.error is not None:
        console.print(f"[bold]scan stopped[/]: {escape(report.error.code)}: "
                      f"{escape(report.error.message)}")

