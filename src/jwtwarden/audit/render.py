"""An inspect :class:`~jwtwarden.audit.inspect.Report` for people: plain text, or rich.

Everything that comes from the token goes through :func:`safe` (control and format
characters, bidi overrides included, become ``\\uXXXX``) and is handed to rich as
:class:`rich.text.Text`, never as markup: a token cannot move the cursor, recolour the
terminal or inject rich markup. Values the payload linter flags are masked unless
``show_secrets``.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.highlighter import JSONHighlighter
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from jwtwarden.audit.inspect import Report, Severity, TimeClaim, format_duration

__all__ = ["banner", "relative", "render_plain", "render_rich", "safe"]

_JSON_HIGHLIGHTER = JSONHighlighter()
_SEVERITY_STYLE = {
    Severity.INFO: "cyan",
    Severity.LOW: "blue",
    Severity.MEDIUM: "yellow",
    Severity.HIGH: "bold red",
    Severity.CRITICAL: "bold white on red",
}


def safe(text: str) -> str:
    """``text`` with control (Cc) and format (Cf) characters written as ``\\uXXXX``."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") and c != "\n" else c
        for c in text
    )


def _json(obj: Any) -> str:
    return safe(json.dumps(obj, indent=2, ensure_ascii=False))


def relative(seconds: float) -> str:
    """``in 14 min 59 s``, ``3 h ago`` or ``now``."""
    if abs(seconds) < 1:
        return "now"
    return f"in {format_duration(seconds)}" if seconds > 0 else f"{format_duration(-seconds)} ago"


def banner(report: Report) -> tuple[str, str]:
    """(kind, sentence): kind is ``unverified``, ``verified`` or ``failed``."""
    verification = report.verification
    if verification is None:
        return (
            "unverified",
            "UNVERIFIED: no key was given. Anyone can write this header and payload; "
            "nothing below is trusted.",
        )
    if not verification.verified:
        return (
            "failed",
            f"VERIFICATION FAILED: {verification.code} ({verification.error}): "
            f"{safe(verification.message or '')}",
        )
    pinned = []
    if not verification.issuer_pinned:
        pinned.append("iss")
    if not verification.audience_pinned:
        pinned.append("aud")
    note = (
        f" {' and '.join(pinned)} accepted as found in the token (give --iss/--aud to check them)."
        if pinned
        else ""
    )
    return (
        "verified",
        f"VERIFIED by the strict verifier with key {safe(verification.kid or '?')} "
        f"({verification.alg}).{note}",
    )


def _time_line(claim: TimeClaim) -> tuple[str, str, str]:
    return claim.name, claim.iso or "out of range", relative(claim.relative)


def binding(report: Report) -> str | None:
    """What a DPoP-bound token (``cnf.jkt``) is bound to, in one sentence."""
    if report.jkt is None:
        return None
    return (f"DPoP-bound to the key with thumbprint {safe(report.jkt)} (cnf.jkt, RFC 9449): only "
            "valid with a fresh proof signed by that key, as Authorization: DPoP")


def render_plain(report: Report, *, show_secrets: bool = False) -> str:
    """The report as plain text (no colour, no box drawing), for pipes and logs."""
    lines = [banner(report)[1], ""]
    if report.header is not None:
        lines += ["Header:", _json(report.header), ""]
    if report.payload is not None:
        lines += ["Payload:", _json(report.display_payload(show_secrets=show_secrets))]
        masked = report.masked_paths()
        if masked and not show_secrets:
            lines.append(f"({len(masked)} flagged value(s) masked; --show-secrets prints them)")
        lines.append("")
    if report.signature is not None:
        lines += [f"Signature: {safe(report.alg or '?')}, {len(report.signature)} bytes", ""]
    bound = binding(report)
    if bound is not None:
        lines += [f"Bound: {bound}", ""]
    if report.times:
        lines.append("Times (UTC):")
        lines += [f"  {n:<4} {d:<21} ({r})" for n, d, r in map(_time_line, report.times)]
        lines.append("")
    worst = report.worst
    if not report.findings:
        lines.append("Findings: none")
    else:
        assert worst is not None  # noqa: S101 - there are findings
        lines.append(f"Findings: {len(report.findings)} (worst: {worst.name})")
        for f in report.findings:
            where = f"{f.part} {safe(f.path)}".rstrip()
            lines.append(f"  {f.severity.name:<9}{f.code:<20}{where}")
            lines.append(f"           {safe(f.message)}")
            lines.append(f"           fix: {f.fix}")
    return "\n".join(lines) + "\n"


def render_rich(report: Report, console: Console, *, show_secrets: bool = False) -> None:
    """Print the report on ``console`` with colour and layout."""
    kind, sentence = banner(report)
    style = {"unverified": "bold yellow", "failed": "bold red", "verified": "bold green"}[kind]
    console.print(Panel(Text(sentence, style=style), border_style=style, box=box.HEAVY))
    parts: list[Any] = []
    if report.header is not None:
        parts.append(_json_panel("Header", report.header, "red"))
    if report.payload is not None:
        title = "Payload"
        masked = report.masked_paths()
        if masked and not show_secrets:
            title += f" ({len(masked)} flagged value(s) masked; --show-secrets prints them)"
        parts.append(_json_panel(title, report.display_payload(show_secrets=show_secrets), "magenta"))
    if report.signature is not None:
        parts.append(
            Panel(
                Text(f"{safe(report.alg or '?')}, {len(report.signature)} bytes"),
                title="Signature",
                title_align="left",
                border_style="cyan",
            )
        )
    bound = binding(report)
    if bound is not None:
        parts.append(Panel(Text(bound), title="Bound (cnf)", title_align="left", border_style="green"))
    if parts:
        console.print(Group(*parts))
    if report.times:
        table = Table(title="Times (UTC)", title_justify="left", box=box.SIMPLE)
        for column in ("claim", "date", "relative to now"):
            table.add_column(column)
        for name, date, rel in map(_time_line, report.times):
            table.add_row(name, date, rel)
        console.print(table)
    if not report.findings:
        console.print(Text("No findings.", style="bold green"))
        return
    worst = report.worst
    assert worst is not None  # noqa: S101 - there are findings
    table = Table(
        title=f"Findings: {len(report.findings)} (worst: {worst.name})",
        title_justify="left",
        box=box.ROUNDED,
        show_lines=True,
    )
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("where", no_wrap=True)
    table.add_column("what and how to fix it")
    for f in report.findings:
        body = Text(safe(f.message))
        body.append("\nfix: ", style="bold")
        body.append(f.fix)
        table.add_row(
            Text(f.severity.name, style=_SEVERITY_STYLE[f.severity]),
            Text(f.code),
            Text(f"{f.part} {safe(f.path)}".rstrip()),
            body,
        )
    console.print(table)


def _json_panel(title: str, obj: Any, colour: str) -> Panel:
    # Highlighting only (terminal-theme colours): the text is already escaped by safe().
    body = _JSON_HIGHLIGHTER(Text(_json(obj)))
    return Panel(body, title=Text(title), title_align="left", border_style=colour)
