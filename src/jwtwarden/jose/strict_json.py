"""Strict JSON for JOSE headers and JWT claim sets (RFC 7515 section 4, RFC 7519 section 7.2).

``parse_object`` accepts exactly one JSON object encoded as UTF-8 and rejects:
duplicate member names at any depth, ``NaN``/``Infinity``, numbers that overflow to
infinity, lone UTF-16 surrogates, nesting deeper than ``MAX_DEPTH``, a byte-order mark and
anything after the object but whitespace. Every rejection is
:class:`~jwtwarden.errors.MalformedToken`.

``dumps`` is the compact, ASCII-only serialisation used for everything jwtwarden signs.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from jwtwarden.errors import MalformedToken

__all__ = ["MAX_DEPTH", "dumps", "parse_object"]

MAX_DEPTH = 16
"""Deepest allowed nesting of objects and arrays (the top-level object counts as 1)."""


class _Duplicate(ValueError):
    pass


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Duplicate
    return obj


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs_hook, parse_float=_parse_float, parse_constant=_parse_constant
)
_raw_decode = _decoder.raw_decode
_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

# A string literal, or — when the quote at hand never closes — that quote and everything
# after it. Possessive loops over disjoint alternatives never backtrack, and an unclosed
# string swallows the rest of the text instead of being retried from every later quote
# (``"\"\"\"...`` was quadratic): each character is visited at most twice. Brackets after
# an unclosed string cannot nest anything in valid JSON; the decoder refuses the text.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"|".*', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_WHITESPACE = " \t\n\r"


def _too_deep(text: str) -> bool:
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_object(data: bytes, what: str = "JSON") -> dict[str, Any]:
    """Parse ``data`` as one strict JSON object; ``what`` names it in error messages."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedToken(f"{what} is not UTF-8") from None
    # Bound nesting before the recursive C scanner sees the text. The count is an upper
    # bound of the depth, so the exact check runs only for texts with many brackets.
    if text.count("{") + text.count("[") > MAX_DEPTH and _too_deep(text):
        raise MalformedToken(f"{what} is nested deeper than {MAX_DEPTH}")
    try:
        if text[:1] == "{":
            obj, end = _raw_decode(text)
            if end != len(text) and text[end:].strip(_WHITESPACE):
                raise ValueError("data after the object")
        else:
            obj = _decoder.decode(text)
    except _Duplicate:
        raise MalformedToken(f"{what} has duplicate member names") from None
    except (ValueError, RecursionError):
        raise MalformedToken(f"{what} is not valid JSON") from None
    if type(obj) is not dict:
        raise MalformedToken(f"{what} is not a JSON object")
    if "\\u" in text and _ESCAPED_SURROGATE.search(text) and _has_lone_surrogate(obj):
        raise MalformedToken(f"{what} contains a lone surrogate")
    return obj


def dumps(obj: Any) -> bytes:
    """Compact ASCII JSON (no whitespace, no NaN), as bytes."""
    return _encoder.encode(obj).encode("ascii")
