"""Keys: one algorithm per key, minimum strength, JWK import/export, key sets."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from jwtwarden import AsymmetricKey, HMACKey, Key, KeySet, errors
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from tests.conftest import keyset_for

# ---- minimum strength ----------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secret_shorter_than_the_hash_is_weak(alg: str, size: int) -> None:
    HMACKey(b"k" * size, alg)
    with pytest.raises(errors.WeakKey) as info:
        HMACKey(b"k" * (size - 1), alg)
    assert info.value.code == "weak_key"
    assert isinstance(info.value, ValueError)


def test_rsa_key_under_2048_bits_is_weak() -> None:
    small = rsa.generate_private_key(65537, 1024)
    for alg in ("RS256", "PS256"):
        with pytest.raises(errors.WeakKey):
            AsymmetricKey(small, alg)
        with pytest.raises(errors.WeakKey):
            AsymmetricKey(small.public_key(), alg)


@pytest.mark.parametrize(
    ("alg", "curve"),
    [("ES256", ec.SECP384R1()), ("ES384", ec.SECP256R1()), ("ES512", ec.SECP256K1()), ("ES256", ec.SECP256K1())],
)
def test_ec_key_on_another_curve_than_its_algorithm_is_refused(alg: str, curve: ec.EllipticCurve) -> None:
    with pytest.raises(errors.WeakKey):
        AsymmetricKey(ec.generate_private_key(curve), alg)


@pytest.mark.parametrize(
    ("alg", "key"),
    [("ES256", ed25519.Ed25519PrivateKey.generate()), ("EdDSA", ec.generate_private_key(ec.SECP256R1())),
     ("HS256", ec.generate_private_key(ec.SECP256R1()))],
)
def test_key_of_another_type_than_its_algorithm_is_refused(alg: str, key: Any) -> None:
    with pytest.raises(errors.InvalidKey):
        AsymmetricKey(key, alg)


def test_hmac_key_cannot_be_bound_to_an_asymmetric_algorithm() -> None:
    with pytest.raises(errors.InvalidKey):
        HMACKey(b"k" * 64, "RS256")


def test_ec_jwk_for_the_wrong_curve_is_weak() -> None:
    jwk = Key.generate("ES384").to_jwk(private=True) | {"alg": "ES256"}
    with pytest.raises(errors.WeakKey):
        Key.from_jwk(jwk)


@pytest.mark.parametrize("alg", ["none", "HS1", "RS1", "ES256K", "", None])
def test_unknown_algorithm_is_refused(alg: Any) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Key.generate(alg)


# ---- JWK import / export ---------------------------------------------------------------------


def test_public_export_contains_no_private_member(alg: str) -> None:
    keys = keyset_for(alg)
    if alg.startswith("HS"):
        with pytest.raises(ValueError, match="no public part"):
            keys.public()
        return
    for jwk in keys.public().to_jwks()["keys"] + keys.to_jwks()["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)
        assert jwk["alg"] == alg and jwk["use"] == "sig" and jwk["kid"]


def test_private_jwk_round_trip_keeps_the_key(alg: str) -> None:
    key = next(iter(keyset_for(alg)))
    again = Key.from_jwk(json.loads(json.dumps(key.to_jwk(private=True))))
    assert again.is_private and again.alg == alg and again.kid == key.kid
    data = b"signing input"
    key.verify_signature(data, again.sign(data))


def test_kid_defaults_to_the_rfc7638_thumbprint(alg: str) -> None:
    key = Key.generate(alg) if not alg.startswith("RS") else next(iter(keyset_for(alg)))
    assert key.kid == key.thumbprint()


def test_public_key_cannot_sign() -> None:
    public = next(iter(keyset_for("ES256").public()))
    assert not public.is_private
    with pytest.raises(TypeError):
        public.sign(b"x")


def test_jwks_for_verification_refuses_private_members() -> None:
    private = keyset_for("ES256").to_jwks(private=True)
    with pytest.raises(errors.InvalidKey, match="private"):
        KeySet.from_public_jwks(private)
    with pytest.raises(errors.InvalidKey):
        KeySet.from_public_jwks(keyset_for("HS256").to_jwks(private=True))
    assert len(KeySet.from_public_jwks(keyset_for("ES256").public().to_jwks())) == 1


def test_jwk_without_alg_needs_one_given() -> None:
    jwk = keyset_for("ES256").public().to_jwks()["keys"][0]
    del jwk["alg"]
    with pytest.raises(errors.InvalidKey, match="alg"):
        Key.from_jwk(jwk)
    assert Key.from_jwk(jwk, alg="ES256").alg == "ES256"
    with pytest.raises(errors.InvalidKey):
        Key.from_jwk(jwk | {"alg": "ES256"}, alg="ES384")


def test_encryption_keys_in_a_jwks_are_skipped() -> None:
    jwks = keyset_for("ES256").public().to_jwks()
    enc = copy.deepcopy(jwks["keys"][0]) | {"use": "enc", "kid": "enc-1", "alg": "ECDH-ES"}
    loaded = KeySet.from_jwks({"keys": [*jwks["keys"], enc]})
    assert [k.kid for k in loaded] == [jwks["keys"][0]["kid"]]


def _es256_public() -> dict[str, Any]:
    return dict(keyset_for("ES256").public().to_jwks()["keys"][0])


@pytest.mark.parametrize(
    "change",
    [
        {"kty": "XYZ"},
        {"kty": None},
        {"crv": "P-384"},
        {"crv": "secp256k1"},
        {"x": "AAAA"},
        {"x": 12},
        {"y": b64url_encode(b"\x01" * 32)},  # not on the curve
        {"x": "not base64url!"},
        {"use": "enc"},
        {"key_ops": ["encrypt"]},
        {"key_ops": "verify"},
        {"kid": ""},
        {"kid": 7},
    ],
)
def test_malformed_jwks_are_invalid_keys(change: dict[str, Any]) -> None:
    jwk = _es256_public() | change
    with pytest.raises(errors.InvalidKey):
        Key.from_jwk(jwk)


def test_ec_private_key_must_match_its_public_point() -> None:
    one = Key.generate("ES256").to_jwk(private=True)
    other = Key.generate("ES256").to_jwk(private=True)
    with pytest.raises(errors.InvalidKey, match="match"):
        Key.from_jwk(one | {"d": other["d"]})


def test_rsa_private_jwk_without_crt_members_loads() -> None:
    jwk = keyset_for("RS256").to_jwks(private=True)["keys"][0]
    minimal = {k: v for k, v in jwk.items() if k not in ("p", "q", "dp", "dq", "qi")}
    key = Key.from_jwk(minimal)
    next(iter(keyset_for("RS256"))).verify_signature(b"x", key.sign(b"x"))


def test_jwks_must_be_an_object_with_a_keys_array() -> None:
    bad_values: list[Any] = [[], {"key": []}, {"keys": {}}, "not json", b"[1]"]
    for bad in bad_values:
        with pytest.raises(errors.InvalidKey):
            KeySet.from_jwks(bad)


def test_pem_import_of_private_and_public_keys() -> None:
    key = next(iter(keyset_for("ES256")))
    assert isinstance(key, AsymmetricKey)
    private = Key.from_pem(key.to_pem(private=True), "ES256")
    public = Key.from_pem(key.to_pem().decode(), "ES256")
    assert private.is_private and not public.is_private
    assert private.kid == public.kid == key.kid
    with pytest.raises(errors.InvalidKey):
        Key.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "ES256")


# ---- key sets ------------------------------------------------------------------------------


def test_duplicate_kids_are_refused() -> None:
    key = Key.generate("ES256", kid="same")
    with pytest.raises(errors.InvalidKey, match="duplicate"):
        KeySet([key, Key.generate("ES256", kid="same")])


def test_signing_key_is_the_only_private_key_or_the_named_one() -> None:
    a, b = Key.generate("ES256", kid="a"), Key.generate("ES256", kid="b")
    both = KeySet([a, b])
    with pytest.raises(ValueError, match="2 private keys"):
        both.signing_key()
    assert both.signing_key("b") is b
    assert KeySet([a, b.public()]).signing_key() is a
    with pytest.raises(ValueError, match="no private key"):
        KeySet([a, b.public()]).signing_key("b")


def test_keys_and_key_sets_are_immutable() -> None:
    key = Key.generate("ES256")
    with pytest.raises(AttributeError):
        key._kid = "x"
    keys = KeySet([key])
    with pytest.raises(AttributeError):
        keys._keys = ()


def test_repr_never_shows_key_material(alg: str) -> None:
    keys = keyset_for(alg)
    text = repr(keys) + repr(next(iter(keys)))
    for jwk in keys.to_jwks(private=True)["keys"]:
        for name in ("k", "d", "p", "q"):
            if name in jwk:
                assert jwk[name] not in text
                assert jwk[name][:12] not in text


# ---- JWK edges scripts/mutate found untested (issue #17) ---------------------------------------


def test_a_multi_prime_rsa_jwk_is_refused() -> None:
    jwk = next(iter(keyset_for("RS256"))).to_jwk(private=True)
    with pytest.raises(errors.InvalidKey, match="oth"):
        Key.from_jwk({**jwk, "oth": [{"r": "AQ", "d": "AQ", "t": "AQ"}]})


@pytest.mark.parametrize("key_ops", ["sign", ["sign", 1], ["sign", "sign"], ["encrypt"], []])
def test_key_ops_must_be_distinct_strings_naming_a_signature_use(key_ops: Any) -> None:
    jwk = next(iter(keyset_for("HS256"))).to_jwk(private=True)
    with pytest.raises(errors.InvalidKey):
        Key.from_jwk({**jwk, "key_ops": key_ops})
    assert Key.from_jwk({**jwk, "key_ops": ["sign", "verify"]}).alg == "HS256"


@pytest.mark.parametrize("alg", ["HS256", "ES256"])
def test_a_jwk_for_encryption_is_refused(alg: str) -> None:
    jwk = next(iter(keyset_for(alg))).to_jwk(private=True)
    with pytest.raises(errors.InvalidKey):
        Key.from_jwk({**jwk, "use": "enc"})
    assert Key.from_jwk({**jwk, "use": "sig"}).alg == alg


def test_an_ec_jwk_without_its_curve_is_refused() -> None:
    jwk = next(iter(keyset_for("ES256"))).public().to_jwk()
    del jwk["crv"]
    with pytest.raises(errors.InvalidKey):
        Key.from_jwk(jwk)


def test_ec_coordinates_and_private_values_are_exported_at_full_length() -> None:
    """RFC 7518 6.2.1.2: x, y and d are exactly the curve's size, leading zeros included."""
    for coordinate in ("x", "y"):
        d = 1  # small: d itself starts with zero bytes
        while getattr(ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers(),
                      coordinate) >> 248:
            d += 1  # the first private value whose public coordinate starts with a zero byte
        key = AsymmetricKey(ec.derive_private_key(d, ec.SECP256R1()), "ES256")
        jwk = key.to_jwk(private=True)
        for member in ("x", "y", "d"):
            assert len(b64url_decode(jwk[member])) == 32, (coordinate, member)
        assert Key.from_jwk(jwk).public().to_jwk() == key.public().to_jwk()


def test_rsa_integers_are_exported_in_their_fewest_octets() -> None:
    """RFC 7518 6.3.1.2: e = 3 is the one octet "Aw", not zero-padded."""
    key = AsymmetricKey(rsa.generate_private_key(3, 2048).public_key(), "RS256")
    assert key.to_jwk()["e"] == "Aw"
    assert Key.from_jwk(key.to_jwk()).to_jwk() == key.to_jwk()


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA", "HS256"])
def test_a_jwk_is_public_unless_asked_and_keeps_the_kid_everywhere(alg: str) -> None:
    key = Key.generate(alg, kid="k-1")
    assert key.kid == "k-1" and KeySet.generate(alg, kid="k-2").signing_key().alg == alg
    if alg == "HS256":
        with pytest.raises(ValueError, match="private=True"):  # a secret is never exported unasked
            HMACKey(b"s" * 32, kid="h").to_jwk()
        assert HMACKey(b"s" * 32).alg == "HS256"
        return
    assert "d" not in key.to_jwk()  # public by default: no private member unless asked
    assert "d" in key.to_jwk(private=True)
    assert key.public().kid == "k-1" and key.public().to_jwk()["kid"] == "k-1"
    assert repr(key).endswith("private)") and repr(key.public()).endswith("public)")
    assert repr(key).startswith("AsymmetricKey(")


def test_defaults_are_es256() -> None:
    assert Key.generate().alg == "ES256" and KeySet.generate().signing_key().alg == "ES256"


@pytest.mark.parametrize("ops", [["sign"], ["verify"]])
def test_key_ops_naming_either_signature_use_is_enough(ops: list[str]) -> None:
    jwk = next(iter(keyset_for("ES256"))).public().to_jwk()
    assert Key.from_jwk({**jwk, "key_ops": ops}).alg == "ES256"


def test_a_key_set_loads_from_json_text_and_answers_membership() -> None:
    keys = keyset_for("ES256").public()
    kid = next(iter(keys)).kid
    for text in (json.dumps(keys.to_jwks()), json.dumps(keys.to_jwks()).encode()):
        loaded = KeySet.from_public_jwks(text)
        assert kid in loaded and "no-such-kid" not in loaded


def test_an_encrypted_pem_loads_with_its_password_and_keeps_the_kid() -> None:
    from cryptography.hazmat.primitives import serialization

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(b"pass phrase"))
    key = Key.from_pem(pem, "ES256", kid="pem-1", password=b"pass phrase")
    assert key.kid == "pem-1" and key.is_private
    with pytest.raises(errors.InvalidKey):
        Key.from_pem(pem, "ES256")


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_a_generated_hmac_key_has_the_asked_algorithm_and_kid(alg: str) -> None:
    key = Key.generate(alg, kid="h-1")
    assert key.alg == alg and key.kid == "h-1"
    assert repr(key).startswith("HMACKey(") and "private" in repr(key)
