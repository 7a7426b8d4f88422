"""DPoP (RFC 9449) in ``jwtwarden scan``: present a DPoP-bound token the way its client does,
and attack the requests.

Given a token that carries ``cnf.jkt`` and the private key it is bound to, the scan sends
every request as ``Authorization: DPoP <token>`` with a fresh proof of that key for the
request's method and URL, following the target's ``DPoP-Nonce`` (one retry on
``use_dpop_nonce``, as clients do). Every token attack of the catalogue then goes with a
valid proof, so it tests the token checks of a DPoP endpoint; and the ``dpop`` category
attacks the proof itself (:func:`dpop_cases`, built per request by :class:`DPoPHTTPProbe`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx

from jwtwarden.dpop import DPOP_TYP, access_token_hash, create_proof, thumbprint_of
from jwtwarden.errors import JWTError
from jwtwarden.jose.b64 import b64url_encode
from jwtwarden.jose.strict_json import dumps, parse_object
from jwtwarden.keys import AsymmetricKey, Key
from jwtwarden.scan.attacks import CATALOGUE, AttackCase, ParsedToken
from jwtwarden.scan.errors import ScanInputError
from jwtwarden.scan.report import Answer

if TYPE_CHECKING:
    from jwtwarden.scan.runner import HTTPProbe

__all__ = [
    "ATTACKER_HTU",
    "DPoPHTTPProbe",
    "check_dpop_binding",
    "dpop_cases",
    "load_dpop_key",
]

ATTACKER_HTU = "https://attacker.invalid/jwtwarden-scan"
"""The ``htu`` of the wrong-URL proof: a name that never resolves (RFC 2606)."""



def load_dpop_key(source: Key | bytes | str) -> AsymmetricKey:
    """The private key a token is bound to: a :class:`~jwtwarden.Key`, a PEM private key
    (P-256 for ES256, Ed25519 for EdDSA) or a private JWK as JSON text."""
    key: Key | None = None
    if isinstance(source, Key):
        key = source
    else:
        data = source.encode() if isinstance(source, str) else bytes(source)
        try:
            if data.lstrip().startswith(b"{"):
                jwk = json.loads(data)
                if not isinstance(jwk, dict):
                    raise ScanInputError("the DPoP key is not a JWK object")
                alg = jwk.get("alg") or ("EdDSA" if jwk.get("kty") == "OKP" else "ES256")
                key = Key.from_jwk(jwk, alg=alg)
            else:
                for alg in ("ES256", "EdDSA"):
                    try:
                        key = Key.from_pem(data, alg)
                        break
                    except JWTError:
                        continue
        except (JWTError, ValueError, UnicodeDecodeError):
            raise ScanInputError("the DPoP key is not a private ES256 or EdDSA key "
                                 "(PEM or JWK)") from None
    if not isinstance(key, AsymmetricKey) or not key.is_private:
        raise ScanInputError("the DPoP key must be the private ES256 or EdDSA key the token "
                             "is bound to")
    return key


def check_dpop_binding(token: ParsedToken, key: AsymmetricKey | None) -> None:
    """A bound token needs its key, and the key must be the one ``cnf.jkt`` names."""
    cnf = token.payload.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if key is None:
        if jkt is not None:
            raise ScanInputError("the token is DPoP-bound (cnf.jkt): give the private key it is "
                                 "bound to (--dpop-key), or every request would be refused")
        return
    if not isinstance(jkt, str):
        raise ScanInputError("a DPoP key was given but the token is not DPoP-bound (no cnf.jkt)")
    if not hmac.compare_digest(thumbprint_of(_public_jwk(key)), jkt):
        raise ScanInputError("the DPoP key is not the one the token is bound to (cnf.jkt)")


def dpop_cases(token: str) -> list[AttackCase]:
    """One case per ``dpop`` attack of the catalogue, each holding the genuine token."""
    return [AttackCase(spec, token) for spec in CATALOGUE.values() if spec.category == "dpop"]


def _public_jwk(key: AsymmetricKey) -> dict[str, Any]:
    jwk = key.to_jwk()
    for member in ("kid", "use", "alg", "key_ops"):
        jwk.pop(member, None)
    return jwk


def _htu(url: str) -> str:
    return str(httpx.URL(url).copy_with(query=None, fragment=None))


class DPoPHTTPProbe:
    """Presents a DPoP-bound token over HTTP with a fresh proof for every request; sends the
    ``dpop`` attack cases as their ids say. Nonces (``DPoP-Nonce``) are followed."""

    def __init__(self, client: httpx.AsyncClient, url: str, key: AsymmetricKey, *,
                 method: str = "GET", timeout: float = 5.0) -> None:
        from jwtwarden.scan.runner import HTTPProbe  # here: the runner imports this module

        self._http: HTTPProbe = HTTPProbe(client, url, method=method, timeout=timeout)
        self._url = url
        self._htu = _htu(url)
        self._method = method.upper()
        self._key = key
        self._jwk = _public_jwk(key)
        self._nonce: str | None = None

    @property
    def supports_missing_token(self) -> bool:
        return True

    # ---- proofs -------------------------------------------------------------------------

    def _claims(self, token: str | None, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": self._method,
                                  "htu": self._htu, "iat": int(time.time())}
        if token is not None:
            claims["ath"] = access_token_hash(token)
        if self._nonce is not None:
            claims["nonce"] = self._nonce
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def _signed(self, header: dict[str, Any], claims: dict[str, Any],
                sign: Callable[[bytes], bytes]) -> str:
        signing_input = f"{b64url_encode(dumps(header))}.{b64url_encode(dumps(claims))}"
        return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"

    def valid_proof(self, token: str | None) -> str:
        return create_proof(self._key, self._method, self._url, access_token=token, nonce=self._nonce)

    def _attack_headers(self, attack_id: str, token: str) -> dict[str, str]:
        """The ``Authorization`` and ``DPoP`` headers of one ``dpop`` attack."""
        key, header = self._key, {"typ": DPOP_TYP, "alg": self._key.alg, "jwk": self._jwk}
        auth = {"Authorization": f"DPoP {token}"}
        if attack_id == "dpop-bound-token-as-bearer":
            return {"Authorization": f"Bearer {token}"}
        if attack_id == "dpop-proof-missing":
            return auth
        if attack_id == "dpop-other-key":
            other = Key.generate(key.alg)
            if not isinstance(other, AsymmetricKey):  # pragma: no cover - ES256/EdDSA are
                raise TypeError("not an asymmetric key")
            return auth | {"DPoP": create_proof(other, self._method, self._url, access_token=token,
                                                nonce=self._nonce)}
        if attack_id == "dpop-alg-none":
            none_header = header | {"alg": "none"}
            signing_input = (f"{b64url_encode(dumps(none_header))}."
                             f"{b64url_encode(dumps(self._claims(token)))}")
            return auth | {"DPoP": signing_input + "."}
        if attack_id == "dpop-hmac-proof":
            canonical = json.dumps({k: self._jwk[k] for k in sorted(self._jwk)},
                                   separators=(",", ":")).encode()
            proof = self._signed(header | {"alg": "HS256"}, self._claims(token),
                                 lambda data: hmac.new(canonical, data, hashlib.sha256).digest())
            return auth | {"DPoP": proof}
        if attack_id == "dpop-private-key-in-jwk":
            private = key.to_jwk(private=True)
            for member in ("kid", "use", "alg", "key_ops"):
                private.pop(member, None)
            return auth | {"DPoP": self._signed(header | {"jwk": private}, self._claims(token), key.sign)}
        changes: dict[str, dict[str, Any]] = {
            "dpop-wrong-htm": {"htm": "POST" if self._method != "POST" else "GET"},
            "dpop-wrong-htu": {"htu": ATTACKER_HTU},
            "dpop-missing-ath": {"ath": None},
            "dpop-wrong-ath": {"ath": access_token_hash(token + "x")},
            "dpop-stale-iat": {"iat": int(time.time()) - 3600},
        }
        return auth | {"DPoP": self._signed(header, self._claims(token, **changes[attack_id]), key.sign)}

    # ---- sending --------------------------------------------------------------------------

    async def _send(self, headers: Callable[[], dict[str, str]]) -> tuple[Answer, dict[str, str]]:
        """Send, and once more with new headers when the target asks for a (new) nonce."""
        sent = headers()
        answer, response_headers, body = await self._http.exchange(sent)
        nonce = response_headers.get("dpop-nonce")
        if nonce:
            self._nonce = nonce
            if _nonce_requested(answer, response_headers, body):
                sent = headers()
                answer, response_headers, _ = await self._http.exchange(sent)
                self._nonce = response_headers.get("dpop-nonce") or self._nonce
        return _with_error(answer, response_headers), sent

    async def send(self, token: str | None) -> Answer:
        if token is None:
            return (await self._send(dict))[0]
        return (await self._send(lambda: {"Authorization": f"DPoP {token}",
                                          "DPoP": self.valid_proof(token)}))[0]

    async def send_case(self, case: AttackCase) -> Answer:
        if case.category != "dpop":
            return await self.send(case.token)
        if case.id == "dpop-proof-replayed":
            first, sent = await self._send(lambda: {"Authorization": f"DPoP {case.token}",
                                                    "DPoP": self.valid_proof(case.token)})
            answer, response_headers, _ = await self._http.exchange(sent)  # the same again
            answer = _with_error(answer, response_headers)
            if first.status is not None and not 200 <= first.status < 300:
                return Answer(answer.outcome, answer.status,
                              f"{answer.detail} (the first use got {first.detail})")
            return answer
        return (await self._send(lambda: self._attack_headers(case.id, case.token)))[0]


_ERROR = re.compile(r'error="([a-z_]{1,64})"')


def _with_error(answer: Answer, headers: dict[str, str]) -> Answer:
    """The answer's detail with the ``error`` of its ``WWW-Authenticate``, if any."""
    found = _ERROR.search(headers.get("www-authenticate", ""))
    return replace(answer, detail=f"{answer.detail} {found[1]}") if found else answer


def _nonce_requested(answer: Answer, headers: dict[str, str], body: bytes) -> bool:
    """``use_dpop_nonce``: 401 with it in ``WWW-Authenticate`` (a resource server) or 400
    with it as the JSON ``error`` (a token endpoint), RFC 9449 sections 8 and 9."""
    if answer.status == 401:
        return 'error="use_dpop_nonce"' in headers.get("www-authenticate", "")
    if answer.status == 400:
        try:
            return parse_object(body, "answer").get("error") == "use_dpop_nonce"
        except JWTError:
            return False
    return False
