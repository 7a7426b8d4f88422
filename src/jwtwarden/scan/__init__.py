"""``jwtwarden scan``: fire the known JWT attacks at an API and report what it accepted.

::

    import asyncio
    from jwtwarden.scan import scan_url, to_dict

    report = asyncio.run(scan_url("https://api.example.com/me", token, jwks_url=JWKS_URL))
    for result in report.vulnerabilities:
        print(result.id, result.answer, result.case.fix)

- :mod:`~jwtwarden.scan.attacks`: the catalogue (:data:`CATALOGUE`) and
  :func:`derive_attacks`, which forges every :class:`AttackCase` from one valid token;
- :mod:`~jwtwarden.scan.runner`: calibration and sending (:func:`scan_url`,
  :func:`scan_asgi`, :func:`scan_verify`, bounded by :class:`ScanLimits`);
- :mod:`~jwtwarden.scan.report`: :class:`ScanReport` and its renderings (:func:`render_text`,
  :func:`to_dict`, :func:`to_junit_xml`);
- :mod:`~jwtwarden.scan.errors`: why a scan could not run or finish, with stable codes;
- :mod:`~jwtwarden.scan.weak_secrets`: the offline HMAC secret check.

For tests, :mod:`jwtwarden.testing` wraps all of this as ``assert_rejects_jwt_attacks``.
Only scan what you are allowed to test.
"""

from __future__ import annotations

from jwtwarden.scan.attacks import (
    CATALOGUE,
    AttackCase,
    AttackSpec,
    Category,
    Impact,
    derive_attacks,
    select,
)
from jwtwarden.scan.errors import ScanError
from jwtwarden.scan.keys import SigningKey
from jwtwarden.scan.report import (
    AttackResult,
    Outcome,
    ScanReport,
    render_text,
    to_dict,
    to_junit_xml,
)
from jwtwarden.scan.runner import ScanLimits, scan_asgi, scan_url, scan_verify
from jwtwarden.scan.weak_secrets import weak_secrets

__all__ = [
    "CATALOGUE",
    "AttackCase",
    "AttackResult",
    "AttackSpec",
    "Category",
    "Impact",
    "Outcome",
    "ScanError",
    "ScanLimits",
    "ScanReport",
    "SigningKey",
    "derive_attacks",
    "render_text",
    "scan_asgi",
    "scan_url",
    "scan_verify",
    "select",
    "to_dict",
    "to_junit_xml",
    "weak_secrets",
]
