"""The layout is the architecture: an API server imports jwtwarden without the token service.

import-linter (run by scripts/test) checks the import graph statically; these tests check the
same promise at run time, in a fresh interpreter where the token service's dependencies cannot
be imported at all, as on a machine with only ``pip install jwtwarden``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jwtwarden

PACKAGE = Path(jwtwarden.__file__).resolve().parent

# What the `server`, `postgres` and `redis` extras bring: none of it may be needed by an API.
SERVICE_ONLY = ("sqlalchemy", "aiosqlite", "asyncpg", "argon2", "redis", "uvicorn")

RESOURCE_MODULES = sorted(
    f"jwtwarden.resource.{p.stem}" for p in (PACKAGE / "resource").glob("*.py") if p.stem != "__init__"
)
CLIENT_MODULES = sorted(
    f"jwtwarden.client.{p.stem}" for p in (PACKAGE / "client").glob("*.py") if p.stem != "__init__"
)


# What `jwtwarden[django]` brings: only jwtwarden.resource.django and .drf may need it.
DJANGO_ONLY = ("django", "rest_framework", "asgiref")
DJANGO_MODULES = ("jwtwarden.resource.django", "jwtwarden.resource.drf")
# DRF reads Django's settings while its modules load, as in any project that uses it
_CONFIGURE_DJANGO = ("\n        import django; from django.conf import settings; settings.configure();"
                     " django.setup()")


def _import_without_service(code: str, blocked: tuple[str, ...] = SERVICE_ONLY) -> subprocess.CompletedProcess[str]:
    blocker = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {blocked!r} + ("jwtwarden.service",)
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ModuleNotFoundError(f"blocked: {{name}}")
                return None
        sys.meta_path.insert(0, Blocker())
        """
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_blocker_really_blocks_the_service() -> None:
    result = _import_without_service("import jwtwarden.service.app")
    assert result.returncode != 0
    assert "blocked: " in result.stderr


@pytest.mark.parametrize("module", RESOURCE_MODULES + CLIENT_MODULES)
def test_resource_and_client_modules_import_without_the_service_dependencies(module: str) -> None:
    setup = _CONFIGURE_DJANGO if module in DJANGO_MODULES else ""
    result = _import_without_service(
        setup + f"""
        import {module}
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {SERVICE_ONLY!r}
                        or m.startswith("jwtwarden.service"))
        assert not leaked, leaked
        """
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", ["jwtwarden"] + [
    m for m in RESOURCE_MODULES + CLIENT_MODULES if m not in DJANGO_MODULES])
def test_everything_but_the_django_integration_imports_without_django(module: str) -> None:
    result = _import_without_service(
        f"""
        import {module}
        import jwtwarden.resource.server, jwtwarden.resource.legacy
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {DJANGO_ONLY!r})
        assert not leaked, leaked
        """,
        blocked=SERVICE_ONLY + DJANGO_ONLY,
    )
    assert result.returncode == 0, result.stderr


def test_the_django_blocker_really_blocks_django() -> None:
    result = _import_without_service("import jwtwarden.resource.django",
                                     blocked=SERVICE_ONLY + DJANGO_ONLY)
    assert result.returncode != 0 and "ModuleNotFoundError: blocked: " in result.stderr


def test_the_public_resource_names_import_from_the_top_level_without_the_service() -> None:
    result = _import_without_service(
        """
        from jwtwarden import RemoteJWKS, RemoteVerifier, ResourceServer, RevocationSet
        from jwtwarden.resource.server import ResourceServer as Direct
        assert ResourceServer is Direct
        """
    )
    assert result.returncode == 0, result.stderr


def test_the_three_audiences_are_top_level_packages() -> None:
    for audience in ("service", "resource", "client", "audit"):
        assert (PACKAGE / audience / "__init__.py").is_file(), audience
    assert not (PACKAGE / "web").exists()
