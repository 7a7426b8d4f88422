"""A negative corpus of DPoP proofs and requests, each citing where it comes from.

``PROOF_CASES`` are proofs a server must refuse whatever the endpoint (RFC 9449 section 4.3):
each builds the ``DPoP`` header values for a request and names the ``reason`` of the
:class:`~jwtwarden.errors.InvalidDPoPProof` it must cause. ``REQUEST_CASES`` are whole
resource requests (headers and query) with the HTTP status and RFC 6750/9449 ``error`` a
resource server must answer. "node-oidc-provider" cites panva/node-oidc-provider's
``test/dpop/dpop.test.js``, where the case is tested as an implementation bug class.

The corpus is data: :mod:`tests.test_dpop` runs the proof cases against the core verifier,
:mod:`tests.test_dpop_e2e` against the token service and both example resource servers as
processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from jwtwarden import Key
from jwtwarden.dpop import access_token_hash
from jwtwarden.keys import AsymmetricKey

_DROP = object()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_members(key: Key) -> dict[str, Any]:
    jwk = key.to_jwk()
    for name in ("kid", "alg", "use"):
        jwk.pop(name, None)
    return jwk


@dataclass
class Ctx:
    """What a case builds its request from: the client's key, the bound token, the request."""

    key: Key  # the key the token is bound to (the legitimate client's)
    other: Key  # another client's key (an attacker's)
    token: str  # an access token bound to ``key``
    method: str
    url: str
    now: float
    extra: dict[str, Any] = field(default_factory=dict)

    def proof(
        self,
        *,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        key: Key | None = None,
        sign_with: Key | None = None,
        raw_header: bytes | None = None,
        raw_claims: bytes | None = None,
        signature: Callable[[bytes], bytes] | None = None,
    ) -> str:
        """A proof for this request; ``header``/``claims`` override members (``_DROP`` removes)."""
        key = key or self.key
        h: dict[str, Any] = {"typ": "dpop+jwt", "alg": key.alg, "jwk": public_members(key)}
        c: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": self.method, "htu": self.url,
                             "iat": int(self.now), "ath": access_token_hash(self.token)}
        for target, changes in ((h, header), (c, claims)):
            for name, value in (changes or {}).items():
                if value is _DROP:
                    target.pop(name, None)
                else:
                    target[name] = value
        head = b64(raw_header if raw_header is not None else json.dumps(h).encode())
        body = b64(raw_claims if raw_claims is not None else json.dumps(c).encode())
        signing_input = f"{head}.{body}".encode("ascii")
        sig = signature(signing_input) if signature else (sign_with or key).sign(signing_input)
        return f"{head}.{body}.{b64(sig)}"


@dataclass(frozen=True)
class ProofCase:
    name: str
    cite: str
    reason: str  # the InvalidDPoPProof reason (use_dpop_nonce: UseDPoPNonce)
    build: Callable[[Ctx], list[str]]  # the DPoP header values


def _one(make: Callable[[Ctx], str]) -> Callable[[Ctx], list[str]]:
    return lambda ctx: [make(ctx)]


def _hmac_with(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.digest(secret, data, "sha256")


def _der_signature(ctx: Ctx) -> str:
    key = ctx.key
    assert isinstance(key, AsymmetricKey)
    raw = ctx.proof()
    head, body, sig = raw.split(".")
    sig_bytes = base64.urlsafe_b64decode(sig + "==")
    der = encode_dss_signature(int.from_bytes(sig_bytes[:32], "big"), int.from_bytes(sig_bytes[32:], "big"))
    return f"{head}.{body}.{b64(der)}"


def _tampered(ctx: Ctx) -> str:
    head, body, sig = ctx.proof().split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[5] ^= 1
    return f"{head}.{body}.{b64(bytes(raw))}"


def _swapped_claims(ctx: Ctx) -> str:
    head, _, sig = ctx.proof().split(".")
    other = ctx.proof(claims={"htm": "DELETE"}).split(".")[1]
    return f"{head}.{other}.{sig}"


def _off_curve_jwk(ctx: Ctx) -> dict[str, Any]:
    jwk = public_members(ctx.key)
    y = bytearray(base64.urlsafe_b64decode(jwk["y"] + "=="))
    y[-1] ^= 1
    jwk["y"] = b64(bytes(y))
    return jwk


def _p384_jwk(_ctx: Ctx) -> dict[str, Any]:
    return public_members(Key.generate("ES384"))


def _hs256_public_key_confusion(ctx: Ctx) -> str:
    secret = json.dumps(public_members(ctx.key)).encode()
    return ctx.proof(header={"alg": "HS256"}, signature=_hmac_with(secret))


def _rs256(ctx: Ctx) -> str:
    rsa = ctx.extra.setdefault("rsa", Key.generate("RS256"))
    return ctx.proof(key=rsa)


def _eddsa_header_ec_key(ctx: Ctx) -> str:
    return ctx.proof(header={"alg": "EdDSA"})


def _es256_header_ed_key(ctx: Ctx) -> str:
    ed = ctx.extra.setdefault("ed", Key.generate("EdDSA"))
    return ctx.proof(key=ed, header={"alg": "ES256"},
                     signature=lambda data: ed.sign(data))


def _private_jwk(ctx: Ctx) -> dict[str, Any]:
    jwk = ctx.key.to_jwk(private=True)
    for name in ("kid", "alg", "use"):
        jwk.pop(name, None)
    return jwk


PROOF_CASES: tuple[ProofCase, ...] = (
    # section 4.3 check 1 and 2: one header, one well-formed JWT
    ProofCase("no DPoP header", "RFC 9449 4.3 (1); node-oidc-provider '`DPoP` header not provided'",
              "missing", lambda ctx: []),
    ProofCase("two DPoP headers", "RFC 9449 4.3 (1): not more than one DPoP header", "multiple",
              lambda ctx: [ctx.proof(), ctx.proof()]),
    ProofCase("two proofs joined in one header", "RFC 9449 4.3 (2): a single JWT", "malformed",
              _one(lambda ctx: ctx.proof() + "," + ctx.proof())),
    ProofCase("not a JWT", "RFC 9449 4.3 (2): well-formed JWT", "malformed", _one(lambda ctx: "hello")),
    ProofCase("five segments (JWE shape)", "RFC 9449 4.3 (2); RFC 7516 compact JWE", "malformed",
              _one(lambda ctx: ctx.proof() + ".AAAA.BBBB")),
    ProofCase("larger than 8 KiB", "implementation: size limit before parsing (RFC 8725 3.x DoS)",
              "malformed", _one(lambda ctx: ctx.proof(claims={"pad": "x" * 9000}))),
    ProofCase("duplicate header member names", "RFC 7515 4 (unique names); parser differentials",
              "malformed", _one(lambda ctx: ctx.proof(raw_header=(
                  b'{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":'
                  + json.dumps(public_members(ctx.key)).encode() + b"}")))),
    ProofCase("claims not an object", "RFC 9449 4.2: a JWT (claims are a JSON object)", "malformed",
              _one(lambda ctx: ctx.proof(raw_claims=b"[1,2]"))),
    # check 4: typ
    ProofCase("typ missing", "RFC 9449 4.3 (4)", "bad_typ",
              _one(lambda ctx: ctx.proof(header={"typ": _DROP}))),
    ProofCase("typ JWT", "RFC 9449 4.3 (4); node-oidc-provider 'invalid typ'", "bad_typ",
              _one(lambda ctx: ctx.proof(header={"typ": "JWT"}))),
    ProofCase("typ at+jwt (an access token as proof)", "RFC 9449 4.3 (4); RFC 8725 3.11 (token "
              "substitution)", "bad_typ", _one(lambda ctx: ctx.proof(header={"typ": "at+jwt"}))),
    ProofCase("typ secevent+jwt", "node-oidc-provider 'invalid typ'", "bad_typ",
              _one(lambda ctx: ctx.proof(header={"typ": "secevent+jwt"}))),
    # check 5: alg
    ProofCase("alg none, no signature", "RFC 9449 4.3 (5): not none; CVE-2015-9235 class", "alg_not_allowed",
              _one(lambda ctx: ctx.proof(header={"alg": "none"}, signature=lambda _d: b""))),
    ProofCase("alg HS256 keyed with a jwk 'k'", "RFC 9449 4.3 (5): asymmetric only; node-oidc-provider "
              "'no symmetric key in header'", "alg_not_allowed",
              _one(lambda ctx: ctx.proof(header={"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"k" * 32)}},
                                         signature=_hmac_with(b"k" * 32)))),
    ProofCase("alg HS256 keyed with the public key (confusion)", "RFC 8725 2.1 / 3.1 (algorithm "
              "confusion)", "alg_not_allowed", _one(_hs256_public_key_confusion)),
    ProofCase("alg RS256 outside the allowlist", "RFC 9449 4.3 (5): acceptable per local policy",
              "alg_not_allowed", _one(_rs256)),
    ProofCase("alg EdDSA over an EC key", "node-oidc-provider 'alg mismatch'; RFC 8725 3.1", "bad_key",
              _one(_eddsa_header_ec_key)),
    ProofCase("alg ES256 over an Ed25519 key", "node-oidc-provider 'alg mismatch'", "bad_key",
              _one(_es256_header_ed_key)),
    # jwk
    ProofCase("jwk missing", "RFC 9449 4.2 (jwk REQUIRED)", "bad_key",
              _one(lambda ctx: ctx.proof(header={"jwk": _DROP}))),
    ProofCase("jwk a string", "node-oidc-provider 'embedded jwk header' ('foo')", "bad_key",
              _one(lambda ctx: ctx.proof(header={"jwk": "foo"}))),
    ProofCase("jwk a list", "node-oidc-provider 'embedded jwk header' ([])", "bad_key",
              _one(lambda ctx: ctx.proof(header={"jwk": []}))),
    ProofCase("jwk null", "node-oidc-provider 'embedded jwk header' (null)", "bad_key",
              _one(lambda ctx: ctx.proof(header={"jwk": None}))),
    ProofCase("jwk with the private key", "RFC 9449 4.3 (7); node-oidc-provider 'no private key in "
              "header'", "bad_key", _one(lambda ctx: ctx.proof(header={"jwk": _private_jwk(ctx)}))),
    ProofCase("jwk an oct secret under ES256", "node-oidc-provider 'no symmetric key in header'",
              "bad_key", _one(lambda ctx: ctx.proof(header={"jwk": {"kty": "oct", "k": b64(b"s" * 32)}}))),
    ProofCase("jwk point not on the curve", "invalid-curve attacks (Jager et al. 2015)", "bad_key",
              _one(lambda ctx: ctx.proof(header={"jwk": _off_curve_jwk(ctx)}))),
    ProofCase("jwk on P-384 under ES256", "RFC 7518 3.4: ES256 is P-256 only", "bad_key",
              _one(lambda ctx: ctx.proof(header={"jwk": _p384_jwk(ctx)}))),
    ProofCase("jwk with alg RS256 under ES256", "RFC 7517 4.4: the key's alg must match", "bad_key",
              _one(lambda ctx: ctx.proof(header={"jwk": public_members(ctx.key) | {"alg": "RS256"}}))),
    ProofCase("jku header", "RFC 8725 3.10: no key URLs; only jwk is honoured", "unsupported_header",
              _one(lambda ctx: ctx.proof(header={"jku": "https://evil.example/jwks"}))),
    ProofCase("x5c header", "RFC 8725 3.10", "unsupported_header",
              _one(lambda ctx: ctx.proof(header={"x5c": ["MIIB"]}))),
    ProofCase("crit header", "RFC 7515 4.1.11: unknown critical extension", "unsupported_header",
              _one(lambda ctx: ctx.proof(header={"crit": ["exp"], "exp": 1}))),
    # check 6: signature
    ProofCase("signed by another key than its jwk", "RFC 9449 4.3 (6)", "bad_signature",
              _one(lambda ctx: ctx.proof(sign_with=ctx.other))),
    ProofCase("one signature bit flipped", "RFC 9449 4.3 (6)", "bad_signature", _one(_tampered)),
    ProofCase("DER signature instead of raw r||s", "RFC 7518 3.4; CVE-2022-21449 class (signature "
              "encodings)", "bad_signature", _one(_der_signature)),
    ProofCase("claims swapped after signing", "RFC 9449 4.3 (6)", "bad_signature", _one(_swapped_claims)),
    # section 4.2 required claims
    ProofCase("jti missing", "RFC 9449 4.2; node-oidc-provider 'missing jti'", "missing_claim",
              _one(lambda ctx: ctx.proof(claims={"jti": _DROP}))),
    ProofCase("htm missing", "RFC 9449 4.2", "missing_claim", _one(lambda ctx: ctx.proof(claims={"htm": _DROP}))),
    ProofCase("htu missing", "RFC 9449 4.2", "missing_claim", _one(lambda ctx: ctx.proof(claims={"htu": _DROP}))),
    ProofCase("iat missing", "RFC 9449 4.2", "missing_claim", _one(lambda ctx: ctx.proof(claims={"iat": _DROP}))),
    ProofCase("iat a string", "RFC 7519 2 (NumericDate)", "malformed",
              _one(lambda ctx: ctx.proof(claims={"iat": str(int(ctx.now))}))),
    ProofCase("htu a number", "node-oidc-provider 'rejects an htu claim that is not a string'", "malformed",
              _one(lambda ctx: ctx.proof(claims={"htu": 42}))),
    ProofCase("jti empty", "RFC 9449 4.2 (unique identifier)", "malformed",
              _one(lambda ctx: ctx.proof(claims={"jti": ""}))),
    # checks 8 and 9: htm and htu
    ProofCase("htm of another method", "RFC 9449 4.3 (8); node-oidc-provider 'htm mismatch'", "bad_htm",
              _one(lambda ctx: ctx.proof(claims={"htm": "DELETE"}))),
    ProofCase("htm in lower case", "RFC 9110 9.1: methods are case-sensitive", "bad_htm",
              _one(lambda ctx: ctx.proof(claims={"htm": ctx.method.lower()}))),
    ProofCase("htu of another host", "RFC 9449 4.3 (9); 11.3 (pre-generated for another server)", "bad_htu",
              _one(lambda ctx: ctx.proof(claims={"htu": "https://evil.example/hello"}))),
    ProofCase("htu of another path", "RFC 9449 4.3 (9); node-oidc-provider 'htu mismatch'", "bad_htu",
              _one(lambda ctx: ctx.proof(claims={"htu": ctx.url.rstrip("/") + "/other"}))),
    ProofCase("htu with another scheme", "RFC 3986 6.2.3: the scheme is compared", "bad_htu",
              _one(lambda ctx: ctx.proof(claims={"htu": ctx.url.replace("http", "ftp", 1)}))),
    ProofCase("htu with user information", "RFC 3986 3.2.1; URL-parser differentials", "bad_htu",
              _one(lambda ctx: ctx.proof(claims={"htu": ctx.url.replace("://", "://user@", 1)}))),
    ProofCase("htu relative", "RFC 9449 4.2: the target URI (absolute)", "bad_htu",
              _one(lambda ctx: ctx.proof(claims={"htu": "/" + ctx.url.split("/", 3)[3]}))),
    ProofCase("htu path with a different case", "RFC 3986 6.2.2.1: paths are case-sensitive", "bad_htu",
              _one(lambda ctx: ctx.proof(claims={"htu": ctx.url[:-1] + ctx.url[-1].upper()}))),
    # check 11: iat window
    ProofCase("iat 61 s old", "RFC 9449 4.3 (11), 11.1 (replay window)", "stale",
              _one(lambda ctx: ctx.proof(claims={"iat": int(ctx.now) - 61}))),
    ProofCase("iat 301 s old", "node-oidc-provider 'iat too old'", "stale",
              _one(lambda ctx: ctx.proof(claims={"iat": int(ctx.now) - 301}))),
    ProofCase("iat 30 s ahead", "RFC 9449 11.2 (pre-generated proofs); node-oidc-provider 'iat too "
              "far in the future'", "future", _one(lambda ctx: ctx.proof(claims={"iat": int(ctx.now) + 30}))),
)

RESOURCE_PROOF_CASES: tuple[ProofCase, ...] = (
    # check 12: with an access token
    ProofCase("ath missing", "RFC 9449 4.3 (12), 7", "bad_ath",
              _one(lambda ctx: ctx.proof(claims={"ath": _DROP}))),
    ProofCase("ath of another token", "RFC 9449 4.3 (12); 11.7 (token swapping)", "bad_ath",
              _one(lambda ctx: ctx.proof(claims={"ath": access_token_hash(ctx.token + "x")}))),
    ProofCase("ath in standard base64", "RFC 9449 4.2: base64url", "bad_ath",
              _one(lambda ctx: ctx.proof(claims={"ath": base64.b64encode(
                  hashlib.sha256(ctx.token.encode()).digest()).decode()}))),
    ProofCase("another client's own valid proof (stolen token)", "RFC 9449 4.3 (12): the bound key; "
              "node-oidc-provider 'failed jkt verification'", "key_mismatch",
              _one(lambda ctx: ctx.proof(key=ctx.other))),
)


@dataclass(frozen=True)
class RequestCase:
    """A resource request: ``headers(ctx)`` (name, value) pairs, a query; the answer."""

    name: str
    cite: str
    status: int
    error: str | None  # the body's "error" (None: a bare 401 challenge)
    headers: Callable[[Ctx], list[tuple[str, str]]]
    query: Callable[[Ctx], str] = lambda ctx: ""


REQUEST_CASES: tuple[RequestCase, ...] = (
    RequestCase("bound token as Bearer, no proof", "RFC 9449 7.2: downgrade to Bearer refused", 401,
                "invalid_token", lambda ctx: [("Authorization", f"Bearer {ctx.token}")]),
    RequestCase("bound token as Bearer with a valid proof", "RFC 9449 7.2; node-oidc-provider "
                "'authorization header scheme must be DPoP'", 401, "invalid_token",
                lambda ctx: [("Authorization", f"Bearer {ctx.token}"), ("DPoP", ctx.proof())]),
    RequestCase("both schemes at once", "RFC 6750 2 / RFC 9449 7.1: one method per request", 400,
                "invalid_request", lambda ctx: [("Authorization", f"DPoP {ctx.token}"),
                                                ("Authorization", f"Bearer {ctx.token}"),
                                                ("DPoP", ctx.proof())]),
    RequestCase("token in the query, proof in the header", "RFC 9449 7.1: the Authorization header "
                "only; node-oidc-provider '`DPoP` tokens must be provided via an authorization header'",
                400, "invalid_request", lambda ctx: [("DPoP", ctx.proof())],
                lambda ctx: f"access_token={ctx.token}"),
    RequestCase("DPoP scheme without a token", "RFC 9449 7.1 (token68 required)", 400, "invalid_request",
                lambda ctx: [("Authorization", "DPoP"), ("DPoP", ctx.proof())]),
    RequestCase("bearer (unbound) token with the DPoP scheme", "node-oidc-provider 'doesn't allow "
                "Bearer tokens to be passed with DPoP scheme'", 401, "invalid_token",
                lambda ctx: [("Authorization", f"DPoP {ctx.extra['bearer']}"),
                             ("DPoP", ctx.proof(claims={"ath": access_token_hash(ctx.extra['bearer'])}))]),
    RequestCase("proof for a forged Host header", "RFC 9449 4.3 (9): htu from the configured public "
                "URL, never from an unchecked Host", 401, "invalid_dpop_proof",
                lambda ctx: [("Authorization", f"DPoP {ctx.token}"), ("Host", "evil.example"),
                             ("DPoP", ctx.proof(claims={"htu": "http://evil.example/" + ctx.url.split("/", 3)[3]}))]),
)
