"""The wire format: strict base64url, strict JSON, compact JWS, the algorithm table."""

from __future__ import annotations

import json

import pytest

from jwtwarden.errors import MalformedToken, TokenTooLarge, UnsupportedHeader
from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.jose.b64 import b64url_decode, b64url_encode
from jwtwarden.jose.jws import as_text, check_header, decode_segments, media_type, serialize, split
from jwtwarden.jose.strict_json import MAX_DEPTH, dumps, parse_object
from jwtwarden.keys import KeySet
from jwtwarden.verify import JWSVerifier
from tests.conftest import keyset_for

# ---- base64url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"", ""), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v"), (b"\xfb\xff", "-_8"), (b"\xff\xfe", "__4")],
)
def test_base64url_round_trips_rfc4648_examples(raw: bytes, encoded: str) -> None:
    assert b64url_encode(raw) == encoded
    assert b64url_decode(encoded) == raw
    assert b64url_decode(encoded.encode()) == raw


@pytest.mark.parametrize(
    "bad",
    ["Zg==", "Zm8=", "Zg=", "Z", "Zm9vY", "+_8", "/_8", "Zm 9v", "Zm9v\n", "\tZm9v", "Zm9v!", "Zé", "Zh", "Zm9"],
)
def test_base64url_refuses_padding_other_alphabets_whitespace_and_non_canonical_bits(bad: str) -> None:
    with pytest.raises(MalformedToken):
        b64url_decode(bad)


def test_base64url_refuses_non_ascii_bytes() -> None:
    with pytest.raises(MalformedToken):
        b64url_decode(b"Zm\xff9")


# ---- strict JSON --------------------------------------------------------------------------


def test_json_object_with_surrounding_whitespace_parses() -> None:
    assert parse_object(b' \r\n{"a": 1}\t\n') == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1,"a":2}',
        b'{"a":{"b":1,"b":1}}',
        b'{"a":[{"x":1,"x":2}]}',
        b"[1,2]",
        b'"str"',
        b"1",
        b"null",
        b"",
        b'{"a":1} x',
        b'{"a":1}{"b":2}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":-Infinity}',
        b'{"a":1e999}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\udc00x"}',
        b'\xef\xbb\xbf{"a":1}',
        b'{"a":"\xff"}',
        b"{'a':1}",
        b'{"a":1,}',
    ],
)
def test_json_refuses_duplicates_non_objects_constants_and_bad_text(text: bytes) -> None:
    with pytest.raises(MalformedToken):
        parse_object(text)


def test_json_accepts_a_proper_surrogate_pair() -> None:
    assert parse_object(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_json_nesting_up_to_the_limit_parses_and_one_more_level_does_not() -> None:
    def nested(depth: int) -> bytes:  # the top-level object is depth 1
        return ('{"a":' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}").encode()

    assert parse_object(nested(MAX_DEPTH))
    with pytest.raises(MalformedToken, match="deeper"):
        parse_object(nested(MAX_DEPTH + 1))


def test_json_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{"}).encode()
    assert parse_object(text)["a"].startswith("[[[")


def test_json_dumps_is_compact_ascii() -> None:
    assert dumps({"a": "é", "b": [1, 2]}) == b'{"a":"\\u00e9","b":[1,2]}'


# ---- compact JWS ---------------------------------------------------------------------------


def test_split_checks_size_before_anything_else() -> None:
    with pytest.raises(TokenTooLarge):
        split("\xff" * 9000)
    with pytest.raises(TokenTooLarge):
        split(b"\xff" * 9000)


@pytest.mark.parametrize("token", ["a.b", "a.b.c.d", "abc", "a.b.c\u00e9", b"a.b.\xff", 12])
def test_split_refuses_wrong_shapes_and_characters(token: object) -> None:
    with pytest.raises(MalformedToken):
        split(token)  # type: ignore[arg-type]


def test_as_text_accepts_bytes() -> None:
    assert as_text(b"a.b.c") == "a.b.c"


@pytest.mark.parametrize("header", [{}, {"alg": 1}, {"alg": None}, {"alg": "ES256", "kid": 5},
                                    {"alg": "ES256", "typ": ["JWT"]}, {"alg": "ES256", "cty": {}}])
def test_header_without_string_alg_or_with_non_string_members_is_malformed(header: dict[str, object]) -> None:
    with pytest.raises(MalformedToken):
        check_header(header)


@pytest.mark.parametrize("name", ["crit", "b64", "zip", "enc", "jku", "jwk", "x5u", "x5c"])
def test_refused_header_parameters(name: str) -> None:
    with pytest.raises(UnsupportedHeader) as info:
        check_header({"alg": "ES256", name: "x"})
    assert info.value.header == name


def test_key_headers_can_be_tolerated_but_processing_headers_cannot() -> None:
    assert check_header({"alg": "ES256", "jku": "https://x"}, allow_key_headers=True) == "ES256"
    with pytest.raises(UnsupportedHeader):
        check_header({"alg": "ES256", "crit": ["x"]}, allow_key_headers=True)


@pytest.mark.parametrize(("value", "normal"), [("at+jwt", "at+jwt"), ("AT+JWT", "at+jwt"),
                                              ("application/at+jwt", "at+jwt"), ("Application/JWT", "jwt")])
def test_media_types_compare_case_insensitively_without_the_application_prefix(value: str, normal: str) -> None:
    assert media_type(value) == normal


# ---- the algorithm table -------------------------------------------------------------------


def test_the_algorithm_table_is_exactly_the_supported_set_and_has_no_none() -> None:
    assert set(ALGORITHMS) == {
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "EdDSA",
    }
    assert "none" not in ALGORITHMS


def test_the_algorithm_table_is_immutable() -> None:
    with pytest.raises(TypeError):
        ALGORITHMS["none"] = ALGORITHMS["HS256"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        ALGORITHMS["HS256"].min_key_bits = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("alg", "kty", "curve", "bits"),
    [("HS256", "oct", None, 256), ("HS512", "oct", None, 512), ("RS256", "RSA", None, 2048),
     ("PS384", "RSA", None, 2048), ("ES256", "EC", "P-256", 256), ("ES512", "EC", "P-521", 521),
     ("EdDSA", "OKP", "Ed25519", 256)],
)
def test_each_algorithm_names_its_key_type_curve_and_minimum_size(
    alg: str, kty: str, curve: str | None, bits: int
) -> None:
    entry = ALGORITHMS[alg]
    assert (entry.kty, entry.curve, entry.min_key_bits) == (kty, curve, bits)


# ---- edges scripts/mutate found untested (issue #17) -------------------------------------------


def _nested(depth: int) -> bytes:
    return ('{"a":' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}").encode()


def test_nesting_is_allowed_to_exactly_max_depth_and_siblings_do_not_add_up() -> None:
    assert parse_object(_nested(MAX_DEPTH))["a"]
    with pytest.raises(MalformedToken, match="deeper"):
        parse_object(_nested(MAX_DEPTH + 1))
    deep = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    siblings = ("{" + ",".join(f'"k{i}":{deep}' for i in range(4)) + "}").encode()
    assert len(parse_object(siblings)) == 4  # closing brackets end a level
    in_strings = ('{"s":"' + "[{" * 40 + '","t":1}').encode()
    assert parse_object(in_strings)["t"] == 1  # brackets inside strings are not nesting


def test_only_json_whitespace_may_follow_the_object() -> None:
    assert parse_object(b'{"a":1} \t\r\n') == {"a": 1}
    for tail in (b"\x0b", b"\x0c", "\u00a0".encode(), b" x"):
        with pytest.raises(MalformedToken):
            parse_object(b'{"a":1}' + tail)


def test_a_lone_surrogate_inside_a_list_is_found() -> None:
    with pytest.raises(MalformedToken, match="surrogate"):
        parse_object(b'{"a":[1,{"b":["x","\\ud800"]}]}')
    assert parse_object(b'{"a":["\\ud83d\\ude00"]}')["a"] == ["\U0001f600"]


def test_a_token_of_exactly_the_size_limit_passes_in_both_forms() -> None:
    token = "a" * 20 + "." + "b" * 20 + "." + "c" * 20
    assert as_text(token, len(token)) == token
    assert as_text(token.encode(), len(token)) == token
    for form in (token, token.encode()):
        with pytest.raises(TokenTooLarge):
            as_text(form, len(token) - 1)
        with pytest.raises(TokenTooLarge):
            split(form, len(token) - 1)
        with pytest.raises(TokenTooLarge):
            decode_segments(form, len(token) - 1)


def test_serialize_gives_a_jws_the_verifier_accepts() -> None:
    key = next(iter(keyset_for("ES256")))
    header = b64url_encode(json.dumps({"alg": "ES256", "kid": key.kid}).encode())
    token = serialize(header, b"any payload", key.sign)
    verified = JWSVerifier(KeySet([key.public()]), algorithms=["ES256"]).verify_signature(token)
    assert verified.payload == b"any payload"


def test_depth_is_counted_back_down_exactly_when_a_level_closes() -> None:
    # 17 levels, reached only after a shorter sibling closed: a count that does not go back
    # down by exactly one per closing bracket misses it
    too_deep = ('{"a":[[1],' + "[" * 15 + "1" + "]" * 15 + "]}").encode()
    with pytest.raises(MalformedToken, match="deeper"):
        parse_object(too_deep)


def test_base64url_keeps_a_trailing_x() -> None:
    assert b64url_encode(b"\x00\x00\x17") == "AAAX"
    assert b64url_decode("AAAX") == b"\x00\x00\x17"
