"""The payload linter: find secrets and personal data in JWT claims before they are signed.

A JWT payload is only base64url-encoded, never encrypted: anyone holding the token (the
browser, a proxy log, a crash report) can read every claim. :func:`lint_claims` walks a
claims object (nested objects and arrays included) and reports every value or claim name
that looks like something that must not travel in a token. The audit tool prints the
findings; the token issuer refuses to sign a payload that has any.

Codes (stable, machine-readable) and severities::

    sensitive_name   HIGH    a claim NAME (at any depth) that says "secret": password,
                             passwd, pwd, secret, client_secret, api_key, private_key,
                             access/refresh/id tokens, credit_card, card_number, cvv/cvc,
                             ssn, social_security, pin, ...
    card_number      HIGH    13-19 digits (single spaces or dashes between groups, or an
                             integer) that pass the Luhn check and start like a card (2-6)
    ssn              HIGH    a US Social Security number AAA-GG-SSSS (valid ranges only)
    cloud_key        HIGH    a cloud or SaaS secret key in its published shape: AWS access
                             key ID, Google API key / OAuth client secret, Stripe secret and
                             webhook keys, Slack tokens and webhooks, SendGrid, OpenAI,
                             Anthropic, Azure storage keys and AD client secrets, DigitalOcean
    access_token     HIGH    a code-host or registry token: GitHub (ghp_ gho_ ghu_ ghs_ ghr_,
                             github_pat_), GitLab (glpat- ...), npm, PyPI, and jwtwarden
                             refresh tokens (jwr_)
    private_key      HIGH    a PEM private key block, or a JWK object with private members
    embedded_jwt     HIGH    a compact JWS/JWE (a token inside a token)
    email            MEDIUM  an e-mail address
    phone            MEDIUM  an E.164 (+ and 8-15 digits) or NANP phone number
    high_entropy     MEDIUM  a long random-looking string that may be a secret
    too_deep         LOW     content nested more than 32 levels deep, which was not scanned

Decisions worth knowing (each is pinned by a test):

* Names are split into words (``apiKey``, ``api-key``, ``API_KEY`` and ``apikey`` are all
  ``api key``); a sensitive word must be a whole word, so ``passenger``, ``compass``,
  ``pinned``, ``spinner`` and ``secretary`` do not fire (a secretary is a person, not a
  secret) while ``clientSecret`` and ``db_password`` do. A bare ``pass`` does not fire
  (boarding passes, pass/fail). Metadata about a secret does not fire: ``password_expires_at``,
  ``pin_length``, ``api_key_id``, ``has_password``; a hash of a random secret
  (``access_token_hash``) does not fire either, but a hash of a guessable one
  (``password_hash``, ``pin_hash``) does. A name on a ``None`` or boolean value does not
  fire: there is nothing to leak. The registered JWT/OIDC claim names never fire.
* OIDC's own ``email`` and ``phone_number`` claims *do* fire (``email``/``phone``): they
  are personal data; an issuer that means to put them in an ID token passes them in
  ``skip``. ``user@localhost`` and other addresses without a dotted domain do not fire,
  nor do ``@handle``, ``https://host/@user``, ``pkg@1.2.3`` or ``icon@2x.png``, nor the
  user part of a URL (``https://user@host``).
* Card numbers must start with 2-6 (Visa, Mastercard, Amex, Discover, JCB, Diners,
  UnionPay): millisecond, microsecond and nanosecond timestamps and snowflake IDs start with
  1 and would otherwise pass the Luhn check one time in ten.
* ``high_entropy`` needs a run of at least 32 characters of the base64/base64url alphabet
  that mixes upper case, lower case and digits, switches character class often (random
  text does; ``camelCaseIdentifiers2024`` do not) and has a Shannon entropy of at least
  85% of what a random string of that length is expected to have. So hex strings never
  fire: a hex SHA-256 digest, a commit id or a UUID is an identifier, not a secret. Nor do
  values of claims that are random or hashed by design (``jti``, ``nonce``, ``sub``,
  ``sid``, ``state``, ``at_hash``, ``c_hash``, ``kid``, ``jkt``, ``x5t#S256``, ``x5c``,
  any name ending in hash/digest/thumbprint/fingerprint/checksum), nor the members of a
  public JWK (``cnf.jwk``), nor PEM public keys and certificates.
* Each value gets at most one value finding, from the first detector that fires in the
  order private_key, embedded_jwt, cloud_key/access_token, card_number, ssn, phone, email,
  high_entropy: a value flagged by a specific detector is not reported again as
  high_entropy. A sensitive name and its value are separate findings at the same path.
* Only claim values and names are scanned; a secret used as an object *key* is only seen
  by the name check.

Messages never contain the value or any part of it: they are fixed sentences per shape.
"""

from __future__ import annotations

import base64
import enum
import json
import math
import re
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

__all__ = ["Finding", "Severity", "first_finding", "lint_claims"]


class Severity(enum.IntEnum):
    """How bad a finding is; ordered, so ``finding.severity >= Severity.MEDIUM`` works."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the linter found.

    ``path`` is the RFC 6901 JSON Pointer of the claim value (``/user/card``,
    ``/cards/0``); ``message`` is a sentence for people and never quotes the value.
    """

    code: str
    severity: Severity
    path: str
    message: str


# A detector's verdict before it has a path: (code, severity, message).
_Hit = tuple[str, Severity, str]

_MAX_DEPTH = 32
_HIGH = Severity.HIGH
_MEDIUM = Severity.MEDIUM

_HIT_NAME: _Hit = (
    "sensitive_name",
    _HIGH,
    "the claim name suggests a secret, a credential or sensitive personal data",
)
_HIT_TOO_DEEP: _Hit = (
    "too_deep",
    Severity.LOW,
    f"claims nest more than {_MAX_DEPTH} levels deep; the content below was not scanned",
)
_HIT_PEM: _Hit = ("private_key", _HIGH, "the value contains a PEM private key block")
_HIT_JWK: _Hit = ("private_key", _HIGH, "the object is a JWK with private key members")
_HIT_JWT: _Hit = (
    "embedded_jwt",
    _HIGH,
    "the value contains a compact JWS/JWE token (a token inside a token)",
)
_HIT_CARD: _Hit = (
    "card_number",
    _HIGH,
    "the value looks like a payment card number (it passes the Luhn check)",
)
_HIT_SSN: _Hit = ("ssn", _HIGH, "the value looks like a US Social Security number")
_HIT_PHONE: _Hit = ("phone", _MEDIUM, "the value contains a phone number (personal data)")
_HIT_EMAIL: _Hit = ("email", _MEDIUM, "the value contains an e-mail address (personal data)")
_HIT_ENTROPY: _Hit = (
    "high_entropy",
    _MEDIUM,
    "the value contains a long random-looking string that may be a secret",
)


# --------------------------------------------------------------------------- claim names

# fmt: off
# Registered JWT (RFC 7519), OIDC Core, RFC 7800, RFC 8693, RFC 9449 and common vendor
# claims: checked first, they never fire.
_REGISTERED_NAMES = frozenset(
    {
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "scope", "scp", "roles",
        "groups", "entitlements", "azp", "client_id", "typ", "cty", "alg", "kid", "nonce",
        "auth_time", "acr", "amr", "at_hash", "c_hash", "s_hash", "cnf", "act", "may_act",
        "name", "given_name", "family_name", "middle_name", "nickname",
        "preferred_username", "profile", "picture", "website", "email", "email_verified",
        "gender", "birthdate", "zoneinfo", "locale", "phone_number",
        "phone_number_verified", "address", "updated_at", "events", "txn", "htm", "htu",
        "ath", "jkt", "x5t#S256", "tid", "oid", "uti", "session_state", "token_type",
        "token_use", "state",
    }
)

# Values of these names are random or hashed on purpose and public: never high_entropy.
_RANDOM_BY_DESIGN = frozenset(
    {
        "jti", "nonce", "sub", "sid", "state", "session_state", "at_hash", "c_hash",
        "s_hash", "ath", "kid", "jkt", "x5t", "x5t#S256", "x5c", "uti", "code_challenge",
    }
)
_DIGEST_WORDS = frozenset({"hash", "digest", "thumbprint", "fingerprint", "checksum"})

# Word sequences that name a secret. "Guessable" secrets stay sensitive when hashed (a
# password hash can be cracked offline); random ones do not (access_token_hash is fine).
_GUESSABLE = 1
_RANDOM = 2
_SENSITIVE_WORDS: dict[tuple[str, ...], int] = {
    ("password",): _GUESSABLE,
    ("passwd",): _GUESSABLE,
    ("pwd",): _GUESSABLE,
    ("pw",): _GUESSABLE,
    ("pass", "word"): _GUESSABLE,
    ("pass", "hash"): _GUESSABLE,
    ("pw", "hash"): _GUESSABLE,
    ("passphrase",): _GUESSABLE,
    ("passcode",): _GUESSABLE,
    ("pin",): _GUESSABLE,
    ("ssn",): _GUESSABLE,
    ("social", "security"): _GUESSABLE,
    ("credit", "card"): _GUESSABLE,
    ("card", "number"): _GUESSABLE,
    ("card", "num"): _GUESSABLE,
    ("card", "no"): _GUESSABLE,
    ("cc", "number"): _GUESSABLE,
    ("cc", "num"): _GUESSABLE,
    ("cvv",): _GUESSABLE,
    ("cvc",): _GUESSABLE,
    ("cvn",): _GUESSABLE,
    ("secret",): _RANDOM,
    ("api", "key"): _RANDOM,
    ("private", "key"): _RANDOM,
    ("priv", "key"): _RANDOM,
    ("signing", "key"): _RANDOM,
    ("encryption", "key"): _RANDOM,
    ("access", "token"): _RANDOM,
    ("refresh", "token"): _RANDOM,
    ("id", "token"): _RANDOM,
    ("auth", "token"): _RANDOM,
    ("bearer", "token"): _RANDOM,
    ("session", "token"): _RANDOM,
    ("api", "token"): _RANDOM,
}
# "apikey", "APIKEY", "accesstoken": the same sequences written as one word.
_SENSITIVE_WORDS.update({("".join(k),): v for k, v in list(_SENSITIVE_WORDS.items()) if len(k) > 1})
_SENSITIVE_WORDS[("ccnum",)] = _GUESSABLE
# One-word compounds ending in these are sensitive too ("clientsecret", "dbpassword");
# only long words, so that "spin" or "compass" stay harmless.
_SENSITIVE_SUFFIXES: dict[str, int] = {
    "password": _GUESSABLE, "passwd": _GUESSABLE, "passphrase": _GUESSABLE,
    "secret": _RANDOM, "apikey": _RANDOM, "privatekey": _RANDOM, "accesstoken": _RANDOM,
    "refreshtoken": _RANDOM,
}
_SUFFIX_MIN_WORD = 9
_PLURALS = frozenset(
    {"passwords", "secrets", "keys", "tokens", "pins", "ssns", "cards", "numbers", "apikeys",
     "passphrases", "passcodes"}
)
# A word AFTER the secret that turns the name into metadata about it.
_META_WORDS = frozenset(
    {
        "id", "ids", "type", "kind", "name", "ref", "uri", "url", "path", "file", "endpoint",
        "exp", "expires", "expiry", "expiration", "expired", "expire", "issued", "created",
        "updated", "changed", "change", "rotated", "rotation", "age", "set", "reset",
        "required", "policy", "rule", "rules", "length", "len", "size", "min", "max",
        "strength", "version", "enabled", "disabled", "status", "state", "count", "attempts",
        "retries", "present", "exists", "configured", "format", "pattern", "regex", "label",
        "prompt", "field", "alg", "algorithm", "method", "scheme", "brand", "network",
        "issuer", "country", "location", "provider",
    }
)
# A word BEFORE the secret that turns the name into a flag ("has_password", "is_secret").
_FLAG_WORDS = frozenset(
    {"is", "has", "have", "needs", "need", "requires", "require", "must", "should", "can",
     "use", "uses", "allow", "allows", "supports", "no", "enable", "disable"}
)

# fmt: on

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_NAME_SENSITIVE = 1
_NAME_RANDOM_VALUE = 2
_NAME_CACHE: dict[str, int] = {}
_NAME_CACHE_MAX = 4096
_NAME_CACHE_KEY_MAX = 64


_MAX_SEQUENCE = max(len(sequence) for sequence in _SENSITIVE_WORDS)
_FIRST_WORDS = frozenset(sequence[0] for sequence in _SENSITIVE_WORDS)


def _suffix_kind(word: str) -> int | None:
    if len(word) >= _SUFFIX_MIN_WORD:
        for suffix, kind in _SENSITIVE_SUFFIXES.items():
            if word.endswith(suffix):
                return kind
    return None


def _last_index(words: list[str], vocabulary: frozenset[str]) -> int:
    """The index of the last word of ``words`` in ``vocabulary``, or -1."""
    if vocabulary.isdisjoint(words):
        return -1
    return next(i for i in range(len(words) - 1, -1, -1) if words[i] in vocabulary)


def _words_are_sensitive(words: list[str]) -> bool:
    """Whether a sensitive word sequence occurs that no flag or metadata word neutralises.

    A flag word anywhere before a sequence, or a metadata (or, for a random secret, a
    digest) word anywhere after it, neutralises it. The first flag word and the last
    metadata and digest words answer that for every candidate at once, so the words are
    read a bounded number of times (looking before and after each candidate was quadratic
    in the number of words of a long name).
    """
    count = len(words)
    first_flag = count
    if not _FLAG_WORDS.isdisjoint(words):
        first_flag = next(i for i, word in enumerate(words) if word in _FLAG_WORDS)
    last_meta = _last_index(words, _META_WORDS)
    last_digest = _last_index(words, _DIGEST_WORDS)
    # A sequence starting after the first flag word is neutralised, whatever it is.
    for start in range(min(count, first_flag + 1)):
        word = words[start]
        if word not in _FIRST_WORDS and len(word) < _SUFFIX_MIN_WORD:
            continue  # no sequence starts with it and no suffix can end it
        for size in range(min(_MAX_SEQUENCE, count - start), 0, -1):
            end = start + size
            kind = _SENSITIVE_WORDS.get(tuple(words[start:end]))
            if kind is None and size == 1:
                kind = _suffix_kind(word)
            if kind is None or last_meta >= end:
                continue
            if kind == _RANDOM and last_digest >= end:
                continue
            return True
    return False


def _analyse_name(name: str) -> int:
    flags = _NAME_RANDOM_VALUE if name in _RANDOM_BY_DESIGN else 0
    if name in _REGISTERED_NAMES:
        return flags
    # lower case, plurals made singular
    words = [w[:-1] if w in _PLURALS else w for w in map(str.lower, _WORDS.findall(name))]
    if words and words[-1] in _DIGEST_WORDS:
        flags |= _NAME_RANDOM_VALUE
    if _words_are_sensitive(words):
        flags |= _NAME_SENSITIVE
    return flags


def _name_flags(name: str) -> int:
    flags = _analyse_name(name)
    if len(name) <= _NAME_CACHE_KEY_MAX:
        if len(_NAME_CACHE) >= _NAME_CACHE_MAX:
            _NAME_CACHE.clear()
        _NAME_CACHE[name] = flags
    return flags


# --------------------------------------------------------------------------- value shapes

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_B64URL = _ALNUM | {"-", "_"}

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_PEM_PRIVATE = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

# A JOSE header is a JSON object: '{"' encodes to "eyJ", '{ ' to "eyA", '{\n' to "ewo".
_JWT = re.compile(r"e[wy][A-Za-z0-9_-]{13,}\.[A-Za-z0-9_-]*\.")
_JWT_HEADER_MAX = 4096
# What Python searches with: the same matches as _JWT (which the debugger's JavaScript
# engine uses, and which stays the specification), found in one pass. _JWT, tried from
# every "ey"/"ew" of a long base64url run, rescans the rest of the run each time
# ("eyeyey..." was quadratic). Whether any start in a run can match depends only on the
# run (the dots after it) and on the room after the start, which the leftmost "ey"/"ew"
# has most of: so this pattern is tried at run starts only, commits to the leftmost
# "ey"/"ew" of the run (the atomic group) and never backtracks (possessive loops). Group 1
# is where _JWT's match starts; the matches end at the same place.
_JWT_RUN = re.compile(
    r"(?<![A-Za-z0-9_-])(?>[A-Za-z0-9_-]*?(e)[wy])[A-Za-z0-9_-]{13,}+\.[A-Za-z0-9_-]*+\."
)

# fmt: off
# (gate, code, what it is, pattern). A pattern is only searched for when its gate occurs
# in the value, and patterns that share a gate are searched for in one alternation (no
# capture groups: they would defeat the regex engine's first-character scan). The left
# boundary (no letter or digit before the match) is checked in code.
_PREFIXED_SPECS: tuple[tuple[str, str, str, str], ...] = (
    ("A", "cloud_key", "an AWS access key ID",
     r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("A", "cloud_key", "a Google API key", r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("-", "cloud_key", "a Google OAuth client secret",
     r"GOCSPX-[0-9A-Za-z_-]{28}(?![0-9A-Za-z_-])"),
    ("_", "cloud_key", "a Stripe secret or restricted key",
     r"[rs]k_(?:live|test)_[0-9A-Za-z]{10,}"),
    ("_", "cloud_key", "a Stripe webhook signing secret", r"whsec_[0-9A-Za-z+/]{24,}"),
    ("-", "cloud_key", "a Slack token", r"xox[abeoprs]-[0-9A-Za-z-]{10,}"),
    ("hooks.slack.com/", "cloud_key", "a Slack incoming-webhook address",
     r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"),
    ("SG.", "cloud_key", "a SendGrid API key",
     r"SG\.[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43}(?![0-9A-Za-z_-])"),
    ("-", "cloud_key", "an OpenAI API key",
     r"sk-(?:(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ"
     r"(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})"),
    ("-", "cloud_key", "an Anthropic API key", r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}"),
    ("Key=", "cloud_key", "an Azure storage or service bus key",
     r"(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{40,}"),
    ("Q~", "cloud_key", "an Azure AD client secret",
     r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])"),
    ("_", "cloud_key", "a DigitalOcean token", r"do[opr]_v1_[a-f0-9]{64}"),
    ("_", "access_token", "a GitHub token", r"gh[oprsu]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9])"),
    ("_", "access_token", "a GitHub fine-grained token", r"github_pat_[A-Za-z0-9_]{82,}"),
    ("-", "access_token", "a GitLab token", r"gl(?:pat|ptt|rt|dt|oas|soat|cbt)-[A-Za-z0-9_-]{20,}"),
    ("_", "access_token", "an npm access token", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("-", "access_token", "a PyPI API token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    ("_", "access_token", "a jwtwarden refresh token", r"jwr_[A-Za-z0-9_-]{80,}"),
)
# fmt: on


# (gate, the family's patterns in one alternation, each pattern with its verdict)
_Family = tuple[str, re.Pattern[str], tuple[tuple[re.Pattern[str], _Hit], ...]]


def _families() -> tuple[_Family, ...]:
    gates = dict.fromkeys(gate for gate, _, _, _ in _PREFIXED_SPECS)
    families: list[_Family] = []
    for gate in gates:
        specs = [(code, what, rx) for g, code, what, rx in _PREFIXED_SPECS if g == gate]
        combined = re.compile("|".join(f"(?:{rx})" for _, _, rx in specs))
        members = tuple(
            (re.compile(rx), (code, _HIGH, f"the value looks like {what}"))
            for code, what, rx in specs
        )
        families.append((gate, combined, members))
    return tuple(families)


_PREFIXED_FAMILIES = _families()
_PREFIXED_MIN_LEN = 15

# Anything card-, SSN- or phone-shaped contains this.
_DIGITISH = re.compile(r"[0-9][-0-9 ().]{6,}[0-9]")
_CARD = re.compile(
    r"(?<![\w.-])(?:[0-9]{13,19}|[0-9]{3,6}(?:[ -][0-9]{3,6}){1,5})(?![\w-]|\.[0-9])", re.ASCII
)
_CARD_FIRST_DIGITS = frozenset("23456")
_CARD_INT_MIN = 10**12
_CARD_INT_MAX = 10**19
_SSN = re.compile(
    r"(?<![\w.-])(?!000|666|9)[0-9]{3}([- ])(?!00)[0-9]{2}\1(?!0000)[0-9]{4}(?![\w-]|\.[0-9])",
    re.ASCII,
)
_E164 = re.compile(r"(?<![\w+])\+\(?[0-9](?:[ ()-]{0,2}[0-9]){7,14}(?![0-9])", re.ASCII)
_NANP = re.compile(
    r"(?<![\w.-])(?:1[-. ])?(?:\([0-9]{3}\) ?|[0-9]{3}[-. ])[0-9]{3}[-. ][0-9]{4}"
    r"(?![\w-]|\.[0-9])",
    re.ASCII,
)

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63})(?![A-Za-z0-9-])"
)
_URL_SEPARATORS = ("/", " ", "\t", "\r", "\n")
# "icon@2x.png" is a file name, not an address.
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "pdf"})

_ENTROPY_MIN_LEN = 32
_ENTROPY_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}")
# What Python searches with: _ENTROPY_RUN's matches (maximal runs of 32 or more), tried at
# run starts only. _ENTROPY_RUN (kept for the debugger's JavaScript engine) retries every
# run shorter than 32 from each of its characters.
_ENTROPY_RUN_AT_START = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{32,}+")
_CLASS_RUNS = re.compile(r"[a-z]+|[A-Z]+|[0-9]+|[^A-Za-z0-9]+")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_SYMBOLS = frozenset("+/_-")
_MIN_CLASS_SWITCH_RATE = 0.45  # random base62: ~0.62; camelCase identifiers: ~0.2-0.35
_MIN_ENTROPY_RATIO = 0.85  # of the entropy a random string of that length is expected to have
_ENTROPY_LEN_CAP = 256


def _luhn(digits: str) -> bool:
    total = 0
    double = False
    for char in reversed(digits):
        value = ord(char) - 48
        if double:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
        double = not double
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in _CARD_FIRST_DIGITS and _luhn(digits)


def _has_card(text: str) -> bool:
    return any(
        _is_card(match.group().replace(" ", "").replace("-", "")) for match in _CARD.finditer(text)
    )


def _is_jose_header(segment: str) -> bool:
    if len(segment) > _JWT_HEADER_MAX or len(segment) % 4 == 1:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error, JSON and UTF-8 errors
        return False
    return isinstance(header, dict) and "alg" in header


def _has_jwt(text: str) -> bool:
    for match in _JWT_RUN.finditer(text):
        start = match.start(1)
        if start != match.start():
            continue  # _JWT matches inside a run, after a base64url character: not a token
        candidate = match.group()
        if _is_jose_header(candidate[: candidate.index(".")]):
            return True
    return False


def _prefixed_hit(text: str) -> _Hit | None:
    for gate, combined, members in _PREFIXED_FAMILIES:
        if gate not in text:
            continue
        for match in combined.finditer(text):
            start = match.start()
            if start and text[start - 1] in _ALNUM:
                continue
            for pattern, hit in members:
                if pattern.match(text, start):
                    return hit
    return None


def _has_email(text: str) -> bool:
    # The user part of a URL ("https://user@host") is not an address: the last "//" before
    # the match is followed by no "/" or whitespace up to it. Equivalently, the last of
    # those separators before the match is the second "/" of a "//". The matches come in
    # order, so that separator is tracked as they go and the text is read once (looking
    # back from every match to the last "//" was quadratic: "https://a@b.io,a@b.io,...").
    last_separator = -1
    scanned = 0
    for match in _EMAIL.finditer(text):
        if match.group(1).lower() in _FILE_EXTENSIONS:
            continue
        start = match.start()
        for separator in _URL_SEPARATORS:
            found = text.rfind(separator, scanned, start)
            if found > last_separator:
                last_separator = found
        scanned = start
        if last_separator > 0 and text[last_separator] == "/" and text[last_separator - 1] == "/":
            continue
        return True
    return False


@lru_cache(maxsize=1024)
def _expected_entropy(alphabet: int, length: int) -> float:
    """The expected Shannon entropy (bits per char) of ``length`` uniform random draws."""
    p = 1.0 / alphabet
    expected_sum = 0.0  # E[sum over symbols of c * log2(c)], c ~ Binomial(length, p)
    for k in range(2, length + 1):
        expected_sum += math.comb(length, k) * p**k * (1.0 - p) ** (length - k) * k * math.log2(k)
    return math.log2(length) - alphabet * expected_sum / length


def _looks_random(run: str) -> bool:
    counts = Counter(run)
    if _LOWER.isdisjoint(counts) or _UPPER.isdisjoint(counts) or _DIGITS.isdisjoint(counts):
        return False
    length = len(run)
    switches = len(_CLASS_RUNS.findall(run)) - 1
    if switches < _MIN_CLASS_SWITCH_RATE * (length - 1):
        return False
    entropy = -sum(c / length * math.log2(c / length) for c in counts.values())
    alphabet = 62 if _SYMBOLS.isdisjoint(counts) else 64
    expected = _expected_entropy(alphabet, min(length, _ENTROPY_LEN_CAP))
    return entropy >= _MIN_ENTROPY_RATIO * expected


def _has_high_entropy(text: str) -> bool:
    if "-----BEGIN CERTIFICATE-----" in text or "PUBLIC KEY-----" in text:
        return False  # public PEM material is base64 by nature and not a secret
    return any(_looks_random(match.group()) for match in _ENTROPY_RUN_AT_START.finditer(text))


def _scan_str(text: str, random_expected: bool) -> _Hit | None:
    """The first detector that fires on a string of at least 6 characters, or ``None``.

    ``random_expected`` is true where random values are normal (``jti``, ``nonce``, a
    public JWK...): there, high_entropy is not checked.
    """
    length = len(text)
    if length >= _PREFIXED_MIN_LEN:
        if length == 36 and _UUID.fullmatch(text):
            return None
        if "PRIVATE KEY" in text and _PEM_PRIVATE.search(text):
            return _HIT_PEM
        if "." in text and ("ey" in text or "ew" in text) and _has_jwt(text):
            return _HIT_JWT
        hit = _prefixed_hit(text)
        if hit is not None:
            return hit
    if length >= 9 and _DIGITISH.search(text):
        if length >= 13 and _has_card(text):
            return _HIT_CARD
        if length >= 11 and _SSN.search(text):
            return _HIT_SSN
        if ("+" in text and _E164.search(text)) or (length >= 12 and _NANP.search(text)):
            return _HIT_PHONE
    if "@" in text and _has_email(text):
        return _HIT_EMAIL
    if not random_expected and length >= _ENTROPY_MIN_LEN and _has_high_entropy(text):
        return _HIT_ENTROPY
    return None


def _int_hit(value: int) -> _Hit | None:
    if _CARD_INT_MIN <= value < _CARD_INT_MAX and _is_card(str(int(value))):
        return _HIT_CARD
    return None


# --------------------------------------------------------------------------- the walk

_JWK_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


def _is_private_jwk(obj: Mapping[Any, object]) -> bool:
    kty = obj.get("kty")
    if not isinstance(kty, str):
        return False
    return not _JWK_PRIVATE_MEMBERS.isdisjoint(obj.keys()) or (kty == "oct" and "k" in obj)


# Where a value sits: None for the claims object itself, else (where its container sits,
# its escaped reference token). The JSON Pointer text is written only for a finding:
# writing it for every container visited copied the names above that container each
# time, quadratic under a long name ({"<32 KiB name>": [[], [], ...]}).
_Path: TypeAlias = "tuple[_Path, str] | None"


def _pointer(path: _Path, token: str) -> str:
    """The JSON Pointer of the member or item ``token`` of the container at ``path``."""
    if path is None:
        return "/" + token
    tokens = [token]
    while path is not None:
        path, parent = path
        tokens.append(parent)
    tokens.append("")
    return "/".join(reversed(tokens))


def _finding(hit: _Hit, path: _Path, token: str) -> Finding:
    return Finding(hit[0], hit[1], _pointer(path, token), hit[2])


def _token(name: str) -> str:
    """Escape one JSON Pointer reference token (RFC 6901 section 3)."""
    if "~" in name or "/" in name:
        return name.replace("~", "~0").replace("/", "~1")
    return name


def _visit(
    value: object, path: _Path, token: str, depth: int, random_expected: bool, out: list[Finding]
) -> None:
    """Scan the value ``token`` of the container at ``path``, ``depth`` levels down.

    The walkers below inline the common cases (short strings, small ints, dicts, lists)
    and only call this for the rest; it handles every type.
    """
    hit: _Hit | None = None
    if isinstance(value, (list, tuple)):
        if depth > _MAX_DEPTH:
            hit = _HIT_TOO_DEEP
        else:
            _walk_array(value, (path, token), depth, random_expected, out)
    elif isinstance(value, dict) or (
        not isinstance(value, (str, int, float)) and isinstance(value, Mapping)
    ):
        if depth > _MAX_DEPTH:
            hit = _HIT_TOO_DEEP
        elif "kty" in value and _is_private_jwk(value):
            hit = _HIT_JWK
        else:
            # A public JWK (cnf.jwk) is random by design: its members are not high_entropy.
            _walk_object(value, (path, token), depth, random_expected or "kty" in value, (), out)
    elif isinstance(value, str):
        if len(value) >= 6:
            hit = _scan_str(value, random_expected)
    elif isinstance(value, int) and not isinstance(value, bool):
        hit = _int_hit(value)
    if hit is not None:
        out.append(_finding(hit, path, token))


def _walk_array(
    seq: list[object] | tuple[object, ...],
    path: _Path,
    depth: int,
    random_expected: bool,
    out: list[Finding],
) -> None:
    """Scan the items of the array at ``path``."""
    for index, item in enumerate(seq):
        # The common cases inline, the path built only when needed. Bools are ints
        # below the card range.
        if isinstance(item, str):
            if len(item) >= 6:
                hit = _scan_str(item, random_expected)
                if hit is not None:
                    out.append(_finding(hit, path, str(index)))
        elif isinstance(item, int):
            if item >= _CARD_INT_MIN:
                hit = _int_hit(item)
                if hit is not None:
                    out.append(_finding(hit, path, str(index)))
        elif item is not None and not isinstance(item, float):
            _visit(item, path, str(index), depth + 1, random_expected, out)


def _walk_object(
    obj: Mapping[Any, object],
    path: _Path,
    depth: int,
    random_expected: bool,
    skip: Collection[str],
    out: list[Finding],
) -> None:
    """Scan the members of the object at ``path``."""
    for key, value in obj.items():
        name = key if type(key) is str else str(key)
        if skip and name in skip:
            continue
        flags = _NAME_CACHE.get(name)
        if flags is None:
            flags = _name_flags(name)
        if flags:
            if flags & _NAME_SENSITIVE and value is not None and not isinstance(value, bool):
                out.append(_finding(_HIT_NAME, path, _token(name)))
            value_random_expected = random_expected or bool(flags & _NAME_RANDOM_VALUE)
        else:
            value_random_expected = random_expected
        if isinstance(value, str):
            if len(value) >= 6:
                hit = _scan_str(value, value_random_expected)
                if hit is not None:
                    out.append(_finding(hit, path, _token(name)))
        elif isinstance(value, int):
            if value >= _CARD_INT_MIN:
                hit = _int_hit(value)
                if hit is not None:
                    out.append(_finding(hit, path, _token(name)))
        elif value is not None and not isinstance(value, float):
            _visit(value, path, _token(name), depth + 1, value_random_expected, out)


class _Enough(Exception):
    pass


class _First(list[Finding]):
    """A findings list that stops the walk at its first finding."""

    __slots__ = ()

    def append(self, finding: Finding) -> None:
        super().append(finding)
        raise _Enough


def lint_claims(claims: Mapping[str, object], *, skip: Collection[str] = ()) -> list[Finding]:
    """Scan ``claims`` for secrets and personal data; return the findings.

    Objects and arrays are scanned recursively; a container nested more than 32 levels
    below ``claims`` is reported as ``too_deep`` and not entered. ``skip`` holds top-level
    claim names not to scan at all (the issuer passes the registered claims it set itself).
    Findings come in document order, depth first: for each member, its name finding, then
    its value finding, then the findings inside it.

    The scan takes time linear in the size of ``claims``, plus the size of what it
    returns: each finding carries the pointer of its value, which repeats the names of the
    objects above it. A caller that only needs to know whether anything fires should use
    :func:`first_finding`.
    """
    if skip and not isinstance(skip, (frozenset, set)):
        skip = frozenset(skip)
    out: list[Finding] = []
    _walk_object(claims, None, 0, False, skip, out)
    return out


def first_finding(claims: Mapping[str, object], *, skip: Collection[str] = ()) -> Finding | None:
    """The first finding :func:`lint_claims` would return, or ``None``; the scan stops there.

    What the issuer runs on every payload it signs: its cost is linear in the size of
    ``claims`` whatever they hold.
    """
    if skip and not isinstance(skip, (frozenset, set)):
        skip = frozenset(skip)
    out = _First()
    try:
        _walk_object(claims, None, 0, False, skip, out)
    except _Enough:
        return out[0]
    return None
