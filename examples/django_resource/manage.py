"""A Django resource server: GET /hello answers the token's subject, GET /items needs a scope.

    pip install 'jwtwarden[django]' uvicorn
    JWTWARDEN_JWKS_URL=https://auth.example.com/.well-known/jwks.json \\
    JWTWARDEN_ISSUER=https://auth.example.com JWTWARDEN_AUDIENCE=api.example.com \\
    uvicorn --app-dir examples/django_resource hello_site.asgi:application

The same project under WSGI: ``python examples/django_resource/manage.py runserver`` (Django's
development server, with the same variables), or ``hello_site.wsgi:application`` behind any
WSGI server. Everything is configured by the environment: ``settings.JWTWARDEN`` is empty.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
