"""Every operation of the service's own OpenAPI document, fuzzed by schemathesis against
``jwtwarden serve`` on loopback: whatever arrives, the answer is never a server error, and it is
the answer the document promises.

Bodies, parameters and headers come from the schema (valid and invalid on purpose); a signed-in
user's bearer token is sent with half the cases so the authenticated paths are reached too.
A second run fuzzes the headers the service reads (``Authorization``, ``Cookie``,
``X-CSRF-Token``, ``Origin``, ``Sec-Fetch-Site``, ``Content-Type``) on every operation of a
cookie-mode service, with any byte a header may carry, around a signed-in browser's real cookies
and CSRF token (issue #16 F6: a non-ASCII ``X-CSRF-Token`` was a 500).
Hypothesis runs derandomized, so a failure reproduces.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance

from jwtwarden.service.app import create_app
from tests.servicekit import PASSWORD, add_user, make_settings, running_server, server_env, tokens


class Target(NamedTuple):
    url: str
    bearer: str  # a signed-in user's access token


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    env = server_env(tmp)
    add_user(env, "alice", PASSWORD, scope="read")
    with running_server(env) as server:
        pair = tokens(httpx.post(server.url + "/v1/auth/login",
                                 json={"username": "alice", "password": PASSWORD}))
        yield Target(server.url, pair["access_token"])


def _openapi() -> dict[str, Any]:
    # Built from the app without starting it; test_the_server_serves_the_fuzzed_document
    # checks that the running server serves the same document.
    with tempfile.TemporaryDirectory() as tmp:
        return create_app(make_settings(Path(tmp))).openapi()


OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_server_serves_the_fuzzed_document(target: Target) -> None:
    assert httpx.get(target.url + "/openapi.json").json()["paths"] == OPENAPI["paths"]


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_every_answer_is_documented_and_none_is_a_server_error(case: Any, target: Target) -> None:
    headers = {"authorization": f"Bearer {target.bearer}"} if zlib.crc32(repr(case.body).encode()) % 2 else None
    # Every check schemathesis has (no 5xx; status codes, content types, headers and bodies as
    # documented; schema-invalid input refused; 405 with Allow) except one: a schema-valid
    # request may still be refused (a wrong password is valid JSON).
    case.call_and_validate(base_url=target.url, headers=headers,
                           excluded_checks=[positive_data_acceptance])


# ---- header fuzzing, cookie mode (issue #16 F6) ---------------------------------------------------


class BrowserTarget(NamedTuple):
    url: str
    headers: dict[str, str]  # what a signed-in page sends: cookies, CSRF token, origin


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserTarget]:
    env = server_env(tmp_path_factory.mktemp("fuzz-cookies"), JWTWARDEN_COOKIE_MODE="1")
    add_user(env, "alice", PASSWORD, scope="read")
    with running_server(env) as server:
        origin = {"origin": server.url, "sec-fetch-site": "same-origin"}
        response = httpx.post(server.url + "/v1/auth/login", headers=origin,
                              json={"username": "alice", "password": PASSWORD})
        jar = "; ".join(h.split(";")[0] for h in response.headers.get_list("set-cookie"))
        yield BrowserTarget(server.url, {**origin, "cookie": jar,
                                         "x-csrf-token": tokens(response)["csrf_token"]})


# any byte an HTTP/1.1 header value may carry (no CR, LF, NUL or other controls), as latin-1 text
HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                       max_size=80).map(str.strip)
# the CSRF token always; the others now and then, so the CSRF check is still reached often
FUZZED_HEADERS = st.fixed_dictionaries(
    {"x-csrf-token": HEADER_VALUE},
    optional=dict.fromkeys(("authorization", "cookie", "origin", "sec-fetch-site", "content-type"), HEADER_VALUE))


@schema.parametrize()
@schema.given(fuzzed=FUZZED_HEADERS)
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_fuzzed_headers_never_cause_a_server_error(case: Any, fuzzed: dict[str, str],
                                                   browser: BrowserTarget) -> None:
    case.call_and_validate(base_url=browser.url, headers={**browser.headers, **fuzzed},
                           excluded_checks=[positive_data_acceptance])
