"""Tools for people who audit tokens: ``inspect``, the weak-secret check and their key sources.

- :mod:`jwtwarden.audit.inspect`: :func:`audit_token`, the findings and their codes;
- :mod:`jwtwarden.audit.crack`: :func:`crack_hmac`, a weak HMAC secret search;
- :mod:`jwtwarden.audit.keysource`: verification keys from files and JWKS URLs;
- :mod:`jwtwarden.audit.render`: the report as plain text or with rich, for people.

Nothing here prints; the ``jwtwarden inspect``/``crack``/``debugger`` commands do.
"""

from __future__ import annotations

from jwtwarden.audit.inspect import (
    CATALOG,
    Finding,
    Report,
    Severity,
    Verification,
    audit_token,
)

__all__ = ["CATALOG", "Finding", "Report", "Severity", "Verification", "audit_token"]
