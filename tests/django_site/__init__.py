"""A Django project for the tests of jwtwarden.resource.django and .drf (configured once per
pytest process: Django has one settings object; tests change it with override_settings)."""

from __future__ import annotations

import os


def setup() -> None:
    """Configure Django with this project's settings and create its database (idempotent)."""
    import django
    from django.apps import apps

    if apps.ready:
        return
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_site.settings"
    try:
        django.setup()
    finally:  # configured now; processes the tests start must not inherit this project
        del os.environ["DJANGO_SETTINGS_MODULE"]
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
