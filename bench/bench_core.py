"""Sign and verify cost per algorithm: jwtwarden vs PyJWT vs the floor, in one run.

The floor is a minimal complete implementation written as tightly as plain Python allows:
base64url + ``json`` + the same ``cryptography`` primitive call + the ``exp``/``iss``/``aud``
checks (verify), or the same claims + ``json`` + base64url + the primitive (sign). It does
none of jwtwarden's strictness checks, so ``jwtwarden / floor`` is the price of them.

Every implementation runs in the same process, interleaved round by round in a shuffled
order, because the machines are shared and noisy; the table shows medians and ratios.

    python bench/bench_core.py [--rounds 15] [--time 0.05] [--alg ES256 ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from jwtwarden import Issuer, KeySet, Verifier
from jwtwarden.keys import AsymmetricKey, HMACKey

ALGS = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
]
ISS = "https://auth.example.com"
AUD = "api.example.com"
CLAIMS = {"role": "user", "tenant": "acme"}

_decode_json = json.JSONDecoder().decode
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


def b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


Op = Callable[[], Any]


def floor_ops(alg: str, key: Any, token: str) -> tuple[Op, Op]:
    """(sign, verify) closures for the floor implementation of ``alg``."""
    spec_hash = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
    h = spec_hash.get(alg[2:], hashes.SHA256())
    sign_raw: Callable[[bytes], bytes]
    verify_raw: Callable[[bytes, bytes], None]
    if alg.startswith("HS"):
        base = hmac.HMAC(key._secret, h)

        def sign_raw(data: bytes) -> bytes:
            c = base.copy()
            c.update(data)
            return c.finalize()

        def verify_raw(data: bytes, sig: bytes) -> None:
            c = base.copy()
            c.update(data)
            c.verify(sig)

    elif alg.startswith(("RS", "PS")):
        pad = (
            padding.PSS(padding.MGF1(h), h.digest_size) if alg.startswith("PS") else padding.PKCS1v15()
        )
        priv: rsa.RSAPrivateKey = key._private_key
        pub = priv.public_key()

        def sign_raw(data: bytes) -> bytes:
            return priv.sign(data, pad, h)

        def verify_raw(data: bytes, sig: bytes) -> None:
            pub.verify(sig, data, pad, h)

    elif alg.startswith("ES"):
        size = {"256": 32, "384": 48, "512": 66}[alg[2:]]
        ecdsa = ec.ECDSA(h)
        epriv: ec.EllipticCurvePrivateKey = key._private_key
        epub = epriv.public_key()

        def sign_raw(data: bytes) -> bytes:
            r, s = decode_dss_signature(epriv.sign(data, ecdsa))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        def verify_raw(data: bytes, sig: bytes) -> None:
            r = int.from_bytes(sig[:size], "big")
            s = int.from_bytes(sig[size:], "big")
            epub.verify(encode_dss_signature(r, s), data, ecdsa)

    else:
        dpriv: ed25519.Ed25519PrivateKey = key._private_key
        dpub = dpriv.public_key()
        sign_raw = dpriv.sign

        def verify_raw(data: bytes, sig: bytes) -> None:
            dpub.verify(sig, data)

    header = b64e(_encode_json({"alg": alg, "kid": key.kid, "typ": "at+jwt"}).encode())

    def sign() -> str:
        now = int(time.time())
        payload = {
            "iss": ISS, "sub": "u1", "aud": AUD, "iat": now, "exp": now + 900,
            "jti": secrets.token_urlsafe(16), **CLAIMS,
        }
        signing_input = f"{header}.{b64e(_encode_json(payload).encode())}"
        return f"{signing_input}.{b64e(sign_raw(signing_input.encode()))}"

    def verify() -> dict[str, Any]:
        h_seg, p_seg, s_seg = token.split(".")
        if _decode_json(b64d(h_seg).decode()).get("alg") != alg:
            raise ValueError("alg")
        try:
            verify_raw(f"{h_seg}.{p_seg}".encode(), b64d(s_seg))
        except InvalidSignature:
            raise ValueError("signature") from None
        claims: dict[str, Any] = _decode_json(b64d(p_seg).decode())
        if claims["exp"] <= time.time():
            raise ValueError("expired")
        if claims["iss"] != ISS:
            raise ValueError("iss")
        aud = claims["aud"]
        if aud != AUD and (not isinstance(aud, list) or AUD not in aud):
            raise ValueError("aud")
        return claims

    return sign, verify


def pyjwt_key(alg: str, key: Any) -> tuple[Any, Any]:
    if isinstance(key, HMACKey):
        return key._secret, key._secret
    assert isinstance(key, AsymmetricKey)
    return key._private_key, key.public_key


def calibrate(op: Op, budget: float) -> int:
    """How many calls of ``op`` fill about ``budget`` seconds."""
    number = 1
    while timeit.timeit(op, number=number) < budget and number < 1 << 20:
        number *= 2
    return number


def measure(ops: dict[str, Op], rounds: int, budget: float) -> dict[str, float]:
    """Median µs per call of each op over ``rounds`` shuffled, interleaved rounds."""
    numbers = {}
    for name, op in ops.items():
        op()  # warm up, and prove it works before timing it
        numbers[name] = calibrate(op, budget)
    samples: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            n = numbers[name]
            samples[name].append(timeit.timeit(ops[name], number=n) / n * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def ops_for(alg: str) -> dict[str, Op]:
    """The six measured operations for one algorithm, all on the same key and token."""
    keys = KeySet.generate(alg)
    key = keys.signing_key()
    issuer = Issuer(keys, issuer=ISS, audience=AUD)
    verify_keys = keys if alg.startswith("HS") else keys.public()
    verifier = Verifier(verify_keys, issuer=ISS, audience=AUD, algorithms=[alg])
    token = issuer.issue("u1", CLAIMS)
    sign_key, verify_key = pyjwt_key(alg, key)
    floor_sign, floor_verify = floor_ops(alg, key, token)
    pj_headers = {"kid": key.kid, "typ": "at+jwt"}

    def pj_sign() -> str:
        now = int(time.time())
        payload = {
            "iss": ISS, "sub": "u1", "aud": AUD, "iat": now, "exp": now + 900,
            "jti": secrets.token_urlsafe(16), **CLAIMS,
        }
        return pyjwt.encode(payload, sign_key, algorithm=alg, headers=pj_headers)

    def pj_verify() -> Any:
        return pyjwt.decode(
            token, verify_key, algorithms=[alg], issuer=ISS, audience=AUD,
            options={"require": ["exp", "iss", "aud"]},
        )

    return {
        "jwtwarden sign": lambda: issuer.issue("u1", CLAIMS),
        "pyjwt sign": pj_sign,
        "floor sign": floor_sign,
        "jwtwarden verify": lambda: verifier.verify(token),
        "pyjwt verify": pj_verify,
        "floor verify": floor_verify,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--time", type=float, default=0.05, help="seconds per sample")
    parser.add_argument("--alg", action="append", choices=ALGS)
    args = parser.parse_args(argv)
    rows = []
    for alg in args.alg or ALGS:
        m = measure(ops_for(alg), args.rounds, args.time)
        rows.append((alg, m))
        print(
            f"{alg:6s} verify: jwtwarden {m['jwtwarden verify']:7.2f} µs  pyjwt "
            f"{m['pyjwt verify']:7.2f}  floor {m['floor verify']:7.2f}  | sign: jwtwarden "
            f"{m['jwtwarden sign']:7.2f}  pyjwt {m['pyjwt sign']:7.2f}  floor {m['floor sign']:7.2f}",
            file=sys.stderr,
            flush=True,
        )
    print()
    print("| alg | verify µs | ÷ floor | PyJWT ÷ jwtwarden | sign µs | ÷ floor | PyJWT ÷ jwtwarden |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    worst_verify = worst_sign = 0.0
    for alg, m in rows:
        v, vf, vp = m["jwtwarden verify"], m["floor verify"], m["pyjwt verify"]
        s, sf, sp = m["jwtwarden sign"], m["floor sign"], m["pyjwt sign"]
        worst_verify = max(worst_verify, v / vf)
        worst_sign = max(worst_sign, s / sf)
        print(
            f"| {alg} | {v:.2f} | {v / vf:.2f}× | {vp / v:.1f}× | {s:.2f} | {s / sf:.2f}× | {sp / s:.1f}× |"
        )
    print()
    print(f"worst verify ratio to the floor: {worst_verify:.2f}× (target ≤ 1.10×)")
    print(f"worst sign ratio to the floor: {worst_sign:.2f}× (target ≤ 1.10×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
