"""Settings of the example: the jwtwarden middleware in front of everything, DRF behind it."""

import os

from django.core.management.utils import get_random_secret_key

# Nothing of this example is signed with it (no sessions, no cookies): random unless given.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or get_random_secret_key()
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
INSTALLED_APPS = ["rest_framework"]
MIDDLEWARE = ["jwtwarden.resource.django.BearerAuthMiddleware"]
ROOT_URLCONF = "hello_site.urls"
DATABASES: dict[str, dict[str, str]] = {}

# Empty: the JWTWARDEN_* environment says everything (JWKS URL, issuer, audience...).
JWTWARDEN: dict[str, object] = {}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["jwtwarden.resource.drf.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "jwtwarden.resource.drf.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
