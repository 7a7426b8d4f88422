"""The data the web debugger's JavaScript engine shares with Python, generated from Python.

The page must report the same findings as ``jwtwarden inspect``. Its engine
(``audit/debugger/audit.js``) is JavaScript, but every table it needs — the finding catalog
(severities, fixes), the algorithm table, the header messages, and the payload linter's
word lists, thresholds, messages and regular expressions — is written by this module into
the block between the ``BEGIN GENERATED TABLES`` and ``END GENERATED TABLES`` markers of
``audit.js``, so the two engines cannot drift apart on data. A test checks that the block
is up to date; regenerate it with::

    python -m jwtwarden.audit._jstables

The linter's tables are private to :mod:`jwtwarden.lint`; reading them here keeps one
source of truth (the parity test over a token corpus guards the code that uses them).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from jwtwarden import lint
from jwtwarden.audit import inspect
from jwtwarden.jose import jws
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.jose.strict_json import MAX_DEPTH
from jwtwarden.policy import DEFAULT_LEEWAY, MAX_LIFETIME

__all__ = ["AUDIT_JS", "BEGIN", "END", "render_block", "tables", "update_file"]

AUDIT_JS = Path(__file__).resolve().parent / "debugger" / "audit.js"
BEGIN = "/* BEGIN GENERATED TABLES (python -m jwtwarden.audit._jstables) */"
END = "/* END GENERATED TABLES */"


def _pattern(pattern: re.Pattern[str]) -> str:
    """The source of a regular expression that means the same in JavaScript."""
    if pattern.flags & ~(re.UNICODE | re.ASCII):
        raise ValueError(f"flags of {pattern.pattern!r} have no JavaScript equivalent")
    if "\\w" in pattern.pattern and not pattern.flags & re.ASCII:
        raise ValueError(f"\\w in {pattern.pattern!r} is Unicode-aware in Python, not in JavaScript")
    return pattern.pattern


def _hit(hit: tuple[str, lint.Severity, str]) -> list[Any]:
    return [hit[0], hit[1].name.lower(), hit[2]]


def _lint_tables() -> dict[str, Any]:
    # fmt: off
    return {
        "registeredNames": sorted(lint._REGISTERED_NAMES),
        "randomByDesign": sorted(lint._RANDOM_BY_DESIGN),
        "digestWords": sorted(lint._DIGEST_WORDS),
        "sensitiveWords": [[" ".join(words), kind] for words, kind in lint._SENSITIVE_WORDS.items()],
        "sensitiveSuffixes": [[suffix, kind] for suffix, kind in lint._SENSITIVE_SUFFIXES.items()],
        "random": lint._RANDOM,
        "suffixMinWord": lint._SUFFIX_MIN_WORD,
        "maxSequence": lint._MAX_SEQUENCE,
        "plurals": sorted(lint._PLURALS),
        "metaWords": sorted(lint._META_WORDS),
        "flagWords": sorted(lint._FLAG_WORDS),
        "prefixedSpecs": [list(spec) for spec in lint._PREFIXED_SPECS],
        "prefixedMinLen": lint._PREFIXED_MIN_LEN,
        "fileExtensions": sorted(lint._FILE_EXTENSIONS),
        "jwkPrivateMembers": sorted(lint._JWK_PRIVATE_MEMBERS),
        "maxDepth": lint._MAX_DEPTH,
        "jwtHeaderMax": lint._JWT_HEADER_MAX,
        "cardFirstDigits": "".join(sorted(lint._CARD_FIRST_DIGITS)),
        "cardIntMin": str(lint._CARD_INT_MIN),
        "cardIntMax": str(lint._CARD_INT_MAX),
        "entropyMinLen": lint._ENTROPY_MIN_LEN,
        "entropyLenCap": lint._ENTROPY_LEN_CAP,
        "minClassSwitchRate": lint._MIN_CLASS_SWITCH_RATE,
        "minEntropyRatio": lint._MIN_ENTROPY_RATIO,
        "patterns": {
            name: _pattern(getattr(lint, f"_{name.upper()}"))
            for name in (
                "uuid", "pem_private", "jwt", "digitish", "card", "ssn", "e164", "nanp", "email",
                "entropy_run", "class_runs", "words",
            )
        },
        "hits": {
            name: _hit(getattr(lint, f"_HIT_{name.upper()}"))
            for name in ("name", "too_deep", "pem", "jwk", "jwt", "card", "ssn", "phone", "email",
                         "entropy")
        },
    }
    # fmt: on


def tables() -> dict[str, Any]:
    """Everything ``audit.js`` takes from Python, as JSON-ready data."""
    return {
        "catalog": {
            code: {"severity": spec.severity.label, "fix": spec.fix}
            for code, spec in inspect.CATALOG.items()
        },
        "severities": [s.label for s in inspect.Severity],
        "algorithms": {
            name: {
                "kty": alg.kty,
                "family": alg.family,
                "hash": None if alg.hash is None else f"SHA-{alg.hash.digest_size * 8}",
                "hashBytes": 0 if alg.hash is None else alg.hash.digest_size,
                "curve": alg.curve,
                "minKeyBits": alg.min_key_bits,
                "coordinateSize": alg.coordinate_size,
            }
            for name, alg in ALGORITHMS.items()
        },
        "signatureBytes": dict(inspect._SIGNATURE_BYTES),
        "rsaMinBytes": inspect._RSA_MIN_BYTES,
        "headerFindings": [list(item) for item in inspect._KEY_HEADERS],
        "claimTypes": [list(item) for item in inspect._CLAIM_TYPES],
        "refusedHeaders": dict(jws.REFUSED_HEADERS),
        "keyHeaders": sorted(jws.KEY_HEADERS),
        "maxTokenSize": jws.DEFAULT_MAX_TOKEN_SIZE,
        "inspectMaxSize": inspect.INSPECT_MAX_SIZE,
        "maxLifetime": MAX_LIFETIME,
        "defaultLeeway": DEFAULT_LEEWAY,
        "jsonMaxDepth": MAX_DEPTH,
        "mask": inspect.MASK,
        "lint": _lint_tables(),
    }


def render_block() -> str:
    """The generated block, markers included."""
    return f"{BEGIN}\nconst T = {_compact(tables(), '  ')};\n{END}"


def _compact(value: Any, indent: str) -> str:
    """JSON with one line per member of the top two levels (readable diffs), compact below."""
    if not isinstance(value, dict) or len(indent) > 4:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    inner = indent + "  "
    members = ",\n".join(
        f"{inner}{json.dumps(k)}: {_compact(v, inner)}" for k, v in value.items()
    )
    return f"{{\n{members}\n{indent}}}"


def update_file(path: Path = AUDIT_JS) -> bool:
    """Rewrite the block in ``path``; return whether it changed."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + render_block() + text[end:]
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


def main() -> int:
    changed = update_file()
    sys.stderr.write(f"{AUDIT_JS}: {'updated' if changed else 'up to date'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
