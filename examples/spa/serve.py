"""The single-page app example, on its own origin, and the resource server it calls.

    .venv/bin/python examples/spa/serve.py

serves, in one process:

- the page on http://localhost:5173 (``index.html``, ``app.js``, the SDK from ``clients/js/``
  at ``/sdk/index.js``, and ``/config.json`` telling the page where the service and the API
  are), under a strict Content-Security-Policy;
- a resource server on http://localhost:8001 with ``GET /hello`` (``jwtwarden.resource``:
  keys from the service's JWKS, revocations from its feed) answering the token's ``sub``,
  with CORS for the page's origin (the bearer token is the credential; no cookies). It
  accepts DPoP-bound tokens (RFC 9449) with proofs for its URL.

``--dpop`` makes the page's SDK bind the tokens to a key it keeps in IndexedDB (``dpop: true``);
``--dpop-nonce`` makes the resource server require its own DPoP nonces.

The token service is ``jwtwarden serve`` on http://localhost:8000 in cookie mode; see
``examples/spa/README.md``. ``--help`` lists the options.
"""

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import uvicorn
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from jwtwarden import Claims
from jwtwarden.dpop import DPoPNonces, DPoPVerifier
from jwtwarden.resource.fastapi import require_token
from jwtwarden.resource.server import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, ResourceServer

HERE = Path(__file__).resolve().parent
SDK = HERE.parents[1] / "clients" / "js" / "src" / "index.js"
FILES = {
    "/": (HERE / "index.html", "text/html; charset=utf-8"),
    "/app.js": (HERE / "app.js", "text/javascript; charset=utf-8"),
    "/style.css": (HERE / "style.css", "text/css; charset=utf-8"),
    "/sdk/index.js": (SDK, "text/javascript; charset=utf-8"),
}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_app(service: str, api: str, dpop: bool = False) -> Starlette:
    """The static page. Its CSP allows scripts from itself and connections to the service and
    the API only: an injected script could not send a token anywhere else."""
    headers = {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            f"connect-src 'self' {origin(service)} {origin(api)}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }

    async def static(request: Request) -> Response:
        path, media_type = FILES[request.url.path]
        return FileResponse(path, media_type=media_type, headers=headers)

    async def config(_request: Request) -> Response:
        return JSONResponse({"serviceUrl": service, "apiUrl": api, "dpop": dpop}, headers=headers)

    routes = [Route(path, static) for path in FILES] + [Route("/config.json", config)]
    return Starlette(routes=routes)


def api_app(issuer: str, service: str, audience: str, page_origin: str, api: str,
            dpop_nonce: bool = False) -> FastAPI:
    """The resource server: examples/fastapi_resource.py, with CORS for the page. DPoP proofs
    are checked against ``api`` (where the browser reaches it), with nonces if asked."""
    verifier = (DPoPVerifier(nonces=DPoPNonces(secrets.token_bytes(32)), require_nonce=True)
                if dpop_nonce else None)
    server = ResourceServer(f"{service}/.well-known/jwks.json", issuer=issuer, audience=audience,
                            public_url=api, dpop_verifier=verifier)
    app = FastAPI(lifespan=server.lifespan)

    # (no `from __future__ import annotations` in this file: FastAPI reads this signature's
    # annotations at run time, and `server` is a local name)
    @app.get("/hello")
    async def hello(claims: Annotated[Claims, Depends(require_token(server))]) -> dict[str, str | None]:
        return {"sub": claims.sub}

    app.add_middleware(
        CORSMiddleware, allow_origins=[page_origin], allow_methods=["GET"],
        allow_headers=list(CORS_ALLOW_HEADERS), expose_headers=list(CORS_EXPOSE_HEADERS),
    )
    return app


class _Server(uvicorn.Server):
    """Two servers share one process: signals are handled once, below."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(args: argparse.Namespace) -> None:
    page = f"http://{args.public_host}:{args.port}"
    api = f"http://{args.public_host}:{args.api_port}"
    servers = [
        _Server(uvicorn.Config(page_app(args.service, api, args.dpop), host=args.host, port=args.port,
                               lifespan="off", log_level=args.log_level)),
        _Server(uvicorn.Config(api_app(args.issuer or args.service, args.service, args.audience, page, api,
                                       args.dpop_nonce),
                               host=args.host, port=args.api_port, log_level=args.log_level)),
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s in servers])
    sys.stderr.write(f"the page: {page}   the API: {api}/hello   the service: {args.service}\n")
    await asyncio.gather(*(s.serve() for s in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", default="http://localhost:8000",
                        help="the token service as the browser reaches it (same site as the page)")
    parser.add_argument("--issuer", help="the service's JWTWARDEN_ISSUER (default: --service)")
    parser.add_argument("--audience", default="api", help="the service's JWTWARDEN_AUDIENCE")
    parser.add_argument("--public-host", default="localhost", help="the host name the browser uses")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=5173, help="the page's port")
    parser.add_argument("--api-port", type=int, default=8001, help="the resource server's port")
    parser.add_argument("--dpop", action="store_true",
                        help="the page binds its tokens to a DPoP key (RFC 9449) kept in IndexedDB")
    parser.add_argument("--dpop-nonce", action="store_true",
                        help="the resource server requires DPoP nonces of its own")
    parser.add_argument("--log-level", default="warning")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
