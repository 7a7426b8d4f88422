"""Interactive API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``), off by default.

The token service's origin holds the CSRF cookie and answers refreshes, so no script from
anywhere else may run there: with ``JWTWARDEN_DOCS=1`` both pages load only files this
installation ships (the ``docs`` extra: ``fastapi-offline``, pinned, whose wheel carries the
Swagger UI and ReDoc bundles), their start-up code is a file served here too (no inline
script), and a Content-Security-Policy allows nothing but this origin. They work with no
network. ``/openapi.json`` is served whether the pages are on or not.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from jwtwarden.service.config import ConfigError

__all__ = ["DOCS_CSP", "DocsUnavailable", "docs_routes"]

ASSETS_PACKAGE = "fastapi_offline"
"""The wheel (the ``docs`` extra) whose ``static/`` folder holds Swagger UI and ReDoc."""

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Scripts and connections from this origin only. ReDoc writes its styles into ``<style>``
elements (so inline styles are allowed; inline scripts never are) and runs its search in a
``blob:`` worker."""

_HEADERS: Mapping[str, str] = MappingProxyType({
    "Content-Security-Policy": DOCS_CSP,
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
})

_SWAGGER_INIT = """\
"use strict";
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

_REDOC_INIT = """\
"use strict";
Redoc.init("openapi.json", {}, document.getElementById("redoc"));
"""

_SWAGGER_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" href="docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/swagger-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - ReDoc</title>
<link rel="icon" href="docs/assets/favicon.png">
</head>
<body>
<div id="redoc"></div>
<script src="docs/assets/redoc.standalone.js"></script>
<script src="docs/assets/redoc-init.js"></script>
</body>
</html>
"""

_SHIPPED = {  # file of the assets wheel -> its media type
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_OURS = {"swagger-init.js": _SWAGGER_INIT, "redoc-init.js": _REDOC_INIT}


class DocsUnavailable(ConfigError):
    """JWTWARDEN_DOCS=1, but the assets wheel is not installed."""


def _asset_dir() -> Path:
    try:
        static = Path(str(importlib.resources.files(ASSETS_PACKAGE).joinpath("static")))
    except ModuleNotFoundError:
        raise DocsUnavailable(
            "JWTWARDEN_DOCS=1 needs the documentation assets: pip install 'jwtwarden[docs]'"
        ) from None
    missing = [name for name in _SHIPPED if not (static / name).is_file()]
    if missing:
        raise DocsUnavailable(f"the documentation assets lack {', '.join(missing)}: "
                              "reinstall with pip install 'jwtwarden[docs]'")
    return static


def docs_routes(title: str) -> list[Route]:
    """``/docs``, ``/redoc`` and ``/docs/assets/<file>``; :class:`DocsUnavailable` without
    the assets. Every page and file is this installation's own."""
    static = _asset_dir()
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    pages = {"/docs": _SWAGGER_PAGE.format(title=escaped),
             "/redoc": _REDOC_PAGE.format(title=escaped)}

    def page(path: str) -> Any:
        body = pages[path]

        async def endpoint(_request: Request) -> Response:
            return HTMLResponse(body, headers=dict(_HEADERS))

        return endpoint

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        headers = {"Cache-Control": "public, max-age=3600",
                   "Cross-Origin-Resource-Policy": "same-origin"}
        if name in _OURS:
            return Response(_OURS[name], media_type="text/javascript; charset=utf-8",
                            headers=headers)
        if name in _SHIPPED:  # a fixed list: no path from the request reaches the file system
            return FileResponse(static / name, media_type=_SHIPPED[name], headers=headers)
        raise HTTPException(404, "Not Found")

    return [
        Route("/docs", page("/docs"), methods=["GET"], include_in_schema=False),
        Route("/redoc", page("/redoc"), methods=["GET"], include_in_schema=False),
        Route("/docs/assets/{name}", asset, methods=["GET"], include_in_schema=False),
    ]
