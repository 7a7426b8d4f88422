"""Issue #11 item 9: the interactive API docs are off by default, and when on they load only
files this installation ships, under a CSP that allows no other origin, and render in a
browser that cannot reach the network."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from jwtwarden.service.app import create_app
from jwtwarden.service.config import ConfigError
from tests.debugger.browser import chromium, require_chromium
from tests.servicekit import make_settings, running_server, server_env

TITLE = "jwtwarden token service"


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(server_env(tmp_path_factory.mktemp("docs"), JWTWARDEN_DOCS="1")) as server:
        yield server.url


def test_docs_are_off_by_default_and_the_openapi_document_stays(tmp_path: Path) -> None:
    with running_server(server_env(tmp_path)) as server:
        pages = {path: httpx.get(server.url + path) for path in ("/docs", "/redoc", "/docs/assets/swagger-ui.css")}
        spec = httpx.get(server.url + "/openapi.json")
    assert {path: r.status_code for path, r in pages.items()} == dict.fromkeys(pages, 404)
    assert spec.status_code == 200 and spec.json()["info"]["title"] == TITLE


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_only_files_served_here_under_a_strict_csp(docs_url: str, page: str) -> None:
    response = httpx.get(docs_url + page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert not any(("http" in v or "*" in v or "unsafe-eval" in v) for v in directives.values())
    assert "<script>" not in response.text  # no inline script: every one is a file
    references = _references(response.text)
    assert references and all(not urlsplit(ref).scheme and not ref.startswith("//") for ref in references)
    for ref in references:
        asset = httpx.get(f"{docs_url}/{ref}")
        assert asset.status_code == 200, ref
        expected = "text/css" if ref.endswith(".css") else "image/png" if ref.endswith(".png") \
            else "text/javascript"
        assert asset.headers["content-type"].startswith(expected), ref
        assert asset.headers["x-content-type-options"] == "nosniff"


def test_only_the_shipped_files_are_served_under_docs_assets(docs_url: str) -> None:
    for name in ("core.py", "..%2F__init__.py", "swagger-ui-bundle.js.map", "%2e%2e/consts.py"):
        assert httpx.get(f"{docs_url}/docs/assets/{name}").status_code == 404, name


def test_docs_on_without_the_assets_is_a_config_error_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi_offline", None)  # as if not installed
    with pytest.raises(ConfigError, match=re.escape("pip install 'jwtwarden[docs]'")):
        create_app(make_settings(tmp_path, docs=True))


def _render(docs_url: str, page: str, selector: str, tmp_path: Path) -> tuple[str, list[str], list[str]]:
    """Open ``page`` in Chromium with every request off this server refused; the text of
    ``selector`` once rendered, the requests that tried to leave, and console errors."""
    origin = urlsplit(docs_url).netloc
    left: list[str] = []
    errors: list[str] = []

    def only_here(route: Any) -> None:
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    with chromium(tmp_path / "profile") as context:
        context.route("**/*", only_here)
        browser_page = context.new_page()
        browser_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        browser_page.on("pageerror", lambda e: errors.append(str(e)))
        browser_page.goto(docs_url + page)
        browser_page.wait_for_selector(selector, timeout=30_000)
        text = browser_page.inner_text(selector)
    return text, left, errors


def test_swagger_ui_renders_with_no_network_and_no_csp_violation(docs_url: str, tmp_path: Path) -> None:
    require_chromium()
    text, left, errors = _render(docs_url, "/docs", ".swagger-ui .info .title", tmp_path)
    assert TITLE in text
    assert left == [] and errors == []


def test_redoc_renders_with_no_network_and_the_csp_keeps_its_logo_home(
        docs_url: str, tmp_path: Path) -> None:
    require_chromium()
    text, left, errors = _render(docs_url, "/redoc", "h1", tmp_path)
    assert TITLE in text
    assert left == []
    # ReDoc's sidebar always asks for its maker's logo from a CDN (and hides it when that
    # fails): the CSP refuses it before any request is made. Nothing else is refused.
    assert errors == ["Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates the "
                      "following Content Security Policy directive: \"img-src 'self' data:\". "
                      "The action has been blocked."]
