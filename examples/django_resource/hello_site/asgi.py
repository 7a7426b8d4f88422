"""ASGI entry point: ``uvicorn hello_site.asgi:application`` (async middleware, no thread hop)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hello_site.settings")
application = get_asgi_application()
