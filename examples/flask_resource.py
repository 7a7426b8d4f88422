"""A Flask resource server: GET /hello answers the token's subject.

    pip install jwtwarden flask
    JWTWARDEN_JWKS_URL=https://auth.example.com/.well-known/jwks.json \\
    JWTWARDEN_ISSUER=https://auth.example.com JWTWARDEN_AUDIENCE=api.example.com \\
    flask --app examples/flask_resource.py run

``flask run`` is Flask's development server; in production put ``app`` behind any WSGI
server you install (gunicorn, uWSGI, waitress...).
"""

from flask import Flask

from jwtwarden.resource.server import ResourceServer
from jwtwarden.resource.wsgi import WSGIBearerAuthMiddleware, claims_of

server = ResourceServer.from_env()  # keys, issuer, audience, revocation feed
app = Flask(__name__)
app.wsgi_app = WSGIBearerAuthMiddleware(app.wsgi_app, server)  # type: ignore[method-assign]


@app.get("/hello")
def hello() -> dict[str, str | None]:
    return {"sub": claims_of().sub}
