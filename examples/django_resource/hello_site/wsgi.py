"""WSGI entry point: ``gunicorn hello_site.wsgi:application`` (the revocation feed in a thread)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello_site.settings")
application = get_wsgi_application()
