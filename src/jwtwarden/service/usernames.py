"""Usernames: one canonical form per name, and no look-alikes of another name.

:func:`username_key` is the form that decides identity (at ``users add``, at login, in the
unique index). It follows RFC 8265's UsernameCaseMapped profile (section 3.3: width mapping,
case mapping, normalisation), made stricter where look-alikes are concerned: the width
mapping is NFKC, which also folds other compatibility forms (ligatures, superscripts,
mathematical letters), and the case mapping is full Unicode case folding. ``Alice``,
``ALICE`` and ``alice`` in full-width letters (U+FF41...) are all ``alice``.

:func:`check_new_username` refuses, at ``users add``, names whose letters mix scripts outside
the combinations Unicode's UTS #39 "highly restrictive" level allows (Latin with Han and
Japanese kana, with Han and Bopomofo, or with Han and Hangul), so ``alice`` spelt with a
Cyrillic a (U+0430) cannot sit beside ``alice``, and names written wholly in Cyrillic or Greek
letters that all look like Latin ones (``paypa`` in Cyrillic) are refused too. The Python standard library has no Unicode script property; the
table below covers every script whose letters are confused with Latin (Greek, Cyrillic,
Armenian, Cherokee, Coptic, Georgian) and the common others. A letter outside the table
counts as a script of its own, so mixing it with anything is refused too.
"""

from __future__ import annotations

import bisect
import itertools
import unicodedata

__all__ = ["check_new_username", "letter_scripts", "username_key"]

MAX_LENGTH = 128

# (first, last, script): letters only; sorted, non-overlapping (checked at import).
_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x005A, "Latin"), (0x0061, 0x007A, "Latin"), (0x00AA, 0x00AA, "Latin"),
    (0x00BA, 0x00BA, "Latin"), (0x00C0, 0x024F, "Latin"), (0x0250, 0x02AF, "Latin"),
    (0x0370, 0x03E1, "Greek"), (0x03E2, 0x03EF, "Coptic"), (0x03F0, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"), (0x0531, 0x058F, "Armenian"), (0x0591, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"), (0x0700, 0x074F, "Syriac"), (0x0750, 0x077F, "Arabic"),
    (0x0780, 0x07BF, "Thaana"), (0x08A0, 0x08FF, "Arabic"), (0x0900, 0x097F, "Devanagari"),
    (0x0980, 0x09FF, "Bengali"), (0x0A00, 0x0A7F, "Gurmukhi"), (0x0A80, 0x0AFF, "Gujarati"),
    (0x0B00, 0x0B7F, "Oriya"), (0x0B80, 0x0BFF, "Tamil"), (0x0C00, 0x0C7F, "Telugu"),
    (0x0C80, 0x0CFF, "Kannada"), (0x0D00, 0x0D7F, "Malayalam"), (0x0D80, 0x0DFF, "Sinhala"),
    (0x0E00, 0x0E7F, "Thai"), (0x0E80, 0x0EFF, "Lao"), (0x0F00, 0x0FFF, "Tibetan"),
    (0x1000, 0x109F, "Myanmar"), (0x10A0, 0x10FF, "Georgian"), (0x1100, 0x11FF, "Hangul"),
    (0x1200, 0x139F, "Ethiopic"), (0x13A0, 0x13FF, "Cherokee"),
    (0x1400, 0x167F, "Canadian_Aboriginal"), (0x1780, 0x17FF, "Khmer"),
    (0x1800, 0x18AF, "Mongolian"), (0x1C80, 0x1C8F, "Cyrillic"), (0x1C90, 0x1CBF, "Georgian"),
    (0x1D00, 0x1D25, "Latin"), (0x1D26, 0x1D2A, "Greek"), (0x1D2B, 0x1D2B, "Cyrillic"),
    (0x1D2C, 0x1D5C, "Latin"), (0x1D5D, 0x1D61, "Greek"), (0x1D62, 0x1D65, "Latin"),
    (0x1D66, 0x1D6A, "Greek"), (0x1D6B, 0x1D77, "Latin"), (0x1D78, 0x1D78, "Cyrillic"),
    (0x1D79, 0x1DBE, "Latin"), (0x1DBF, 0x1DBF, "Greek"), (0x1E00, 0x1EFF, "Latin"),
    (0x1F00, 0x1FFF, "Greek"), (0x2C60, 0x2C7F, "Latin"), (0x2C80, 0x2CFF, "Coptic"),
    (0x2D00, 0x2D2F, "Georgian"), (0x2DE0, 0x2DFF, "Cyrillic"), (0x2E80, 0x2FDF, "Han"),
    (0x3005, 0x3007, "Han"), (0x3021, 0x3029, "Han"), (0x3038, 0x303B, "Han"),
    (0x3041, 0x309F, "Hiragana"), (0x30A0, 0x30FF, "Katakana"), (0x3100, 0x312F, "Bopomofo"),
    (0x3130, 0x318F, "Hangul"), (0x31A0, 0x31BF, "Bopomofo"), (0x31F0, 0x31FF, "Katakana"),
    (0x3400, 0x4DBF, "Han"), (0x4E00, 0x9FFF, "Han"), (0xA640, 0xA69F, "Cyrillic"),
    (0xA720, 0xA7FF, "Latin"), (0xA960, 0xA97F, "Hangul"), (0xAB30, 0xAB64, "Latin"),
    (0xAB65, 0xAB65, "Greek"), (0xAB70, 0xABBF, "Cherokee"), (0xAC00, 0xD7FF, "Hangul"),
    (0xF900, 0xFAFF, "Han"), (0xFB00, 0xFB06, "Latin"), (0xFB13, 0xFB17, "Armenian"),
    (0xFB1D, 0xFB4F, "Hebrew"), (0xFB50, 0xFDFF, "Arabic"), (0xFE70, 0xFEFF, "Arabic"),
    (0xFF21, 0xFF3A, "Latin"), (0xFF41, 0xFF5A, "Latin"), (0xFF66, 0xFF9F, "Katakana"),
    (0x20000, 0x323AF, "Han"),
)
_STARTS = [first for first, _, _ in _RANGES]
if any(a[1] >= b[0] for a, b in itertools.pairwise(_RANGES)):  # pragma: no cover
    raise RuntimeError("script ranges overlap or are unsorted")

# UTS #39 section 5.2, "highly restrictive": one script, or one of these combinations.
_ALLOWED_MIXES = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)

# Lower-case Cyrillic and Greek letters that look like a Latin letter (from Unicode's
# confusables.txt): a name made of these alone is a whole-script look-alike of a Latin name.
_LATIN_LOOKALIKES = frozenset(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04bb\u0501\u051b\u051d\u04cf\u0475\u04af"  # Cyrillic: a e o p c y x i j s h d q w l v y
    "\u03b1\u03bf\u03bd\u03b9\u03c1\u03c5\u03c7\u03f2\u03f3"  # Greek: a o v i p u x c j
)


def username_key(name: str) -> str:
    """The canonical form of ``name``: NFKC, full case folding, NFKC, to a fixed point."""
    current = name
    for _ in range(4):  # one round is enough for all but a handful of combining sequences
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", current).casefold())
        if folded == current:
            break
        current = folded
    return current


def _script(char: str) -> str:
    code = ord(char)
    i = bisect.bisect_right(_STARTS, code) - 1
    if i >= 0 and code <= _RANGES[i][1]:
        return _RANGES[i][2]
    return f"U+{code:04X}"  # an unlisted script: its own, so any mix with it is refused


def letter_scripts(name: str) -> list[str]:
    """The scripts of the letters of ``name``, in order of first appearance (digits,
    punctuation and combining marks belong to every script and are not counted)."""
    seen: list[str] = []
    for char in name:
        if unicodedata.category(char).startswith("L"):
            script = _script(char)
            if script not in seen:
                seen.append(script)
    return seen


def check_new_username(name: str) -> str:
    """The canonical form of a name being registered; ``ValueError`` (with a message an
    operator can act on) when it is malformed, mixes scripts, or imitates a Latin name."""
    if not isinstance(name, str) or not name or name != name.strip() or not name.isprintable():
        raise ValueError("names are 1-128 printable characters without surrounding spaces")
    key = username_key(name)
    if not 1 <= len(key) <= MAX_LENGTH or key != key.strip() or not key.isprintable():
        raise ValueError("names are 1-128 printable characters without surrounding spaces")
    scripts = set(letter_scripts(key))
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        listed = " and ".join(letter_scripts(key))
        raise ValueError(
            f"the name {name!r} mixes {listed} letters; such names can imitate another "
            "user's name (a Cyrillic a, U+0430, looks like a Latin a): use letters of one script")
    if scripts & {"Cyrillic", "Greek"} and all(
        c in _LATIN_LOOKALIKES for c in key if unicodedata.category(c).startswith("L")
    ):
        raise ValueError(
            f"the name {name!r} is written in {'/'.join(sorted(scripts))} letters that all look "
            "like Latin ones, so it imitates a Latin name: choose another name")
    return key
