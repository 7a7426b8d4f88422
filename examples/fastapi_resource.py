"""A FastAPI resource server: GET /hello answers the token's subject.

    pip install jwtwarden fastapi uvicorn
    JWTWARDEN_JWKS_URL=https://auth.example.com/.well-known/jwks.json \\
    JWTWARDEN_ISSUER=https://auth.example.com JWTWARDEN_AUDIENCE=api.example.com \\
    uvicorn --app-dir examples fastapi_resource:app
"""

from typing import Annotated

from fastapi import Depends, FastAPI

from jwtwarden import Claims
from jwtwarden.resource.fastapi import require_token
from jwtwarden.resource.server import ResourceServer

server = ResourceServer.from_env()  # keys, issuer, audience, revocation feed
app = FastAPI(lifespan=server.lifespan)


@app.get("/hello")
async def hello(claims: Annotated[Claims, Depends(require_token(server))]) -> dict[str, str | None]:
    return {"sub": claims.sub}
