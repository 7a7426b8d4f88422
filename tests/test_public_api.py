"""The public surface: what __all__ exports is what the README documents, and it is typed."""

from __future__ import annotations

import re
from pathlib import Path

import jwtwarden
from jwtwarden import errors

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_exported_name_is_documented_in_the_readme() -> None:
    undocumented = [n for n in jwtwarden.__all__ if n != "__version__" and f"{n}" not in README]
    assert undocumented == []


def test_every_name_the_readme_imports_from_jwtwarden_exists() -> None:
    for names in re.findall(r"from jwtwarden import ([\w, ]+)", README):
        for name in (n.strip() for n in names.split(",")):
            assert name in jwtwarden.__all__, name


def test_every_error_class_has_a_code_drawn_in_the_module_docstring() -> None:
    classes = [getattr(errors, n) for n in errors.__all__]
    for cls in classes:
        assert issubclass(cls, errors.JWTError)
        assert cls.__name__ in (errors.__doc__ or ""), cls
    leaves = [c for c in classes if not any(o is not c and issubclass(o, c) for o in classes)]
    for cls in leaves:
        assert f"{cls.code}" in (errors.__doc__ or ""), cls


def test_the_package_ships_type_information() -> None:
    assert (Path(jwtwarden.__file__).parent / "py.typed").exists()
