"""Offline cracking of HMAC-signed tokens against a list of well-known weak secrets.

Nothing here touches the network: a token signed with HS256/384/512 is checked against each
candidate locally. If one matches, anyone who guesses the same word can sign any token.

:func:`weak_secrets` is the single place the candidate list comes from: the empty secret
and the audit tools' built-in list (``jwtwarden/audit/data/weak_secrets.txt``, the same one
``jwtwarden crack`` uses), so the scanner and the auditors always agree on what is weak.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

__all__ = ["crack_hmac_secret", "weak_secrets"]

_HMAC_ALGS = {"HS256": 32, "HS384": 48, "HS512": 64}


@functools.cache
def weak_secrets() -> tuple[bytes, ...]:
    """The candidate secrets the scanner tries offline against HS* tokens (the empty secret
    first, then the audit tools' built-in list, about 12 000 entries)."""
    # Imported here: only HS* tokens need the list, and the scanner must not fail to load
    # because of the audit tools.
    from jwtwarden.audit.crack import builtin_secrets

    return tuple(dict.fromkeys((b"", *builtin_secrets())))


def crack_hmac_secret(
    signing_input: bytes, signature: bytes, alg: str, candidates: Iterable[bytes] | None = None
) -> bytes | None:
    """The candidate secret whose HMAC of ``signing_input`` is ``signature``, or ``None``.

    ``alg`` is the token's ``HS256``/``HS384``/``HS512``; any other algorithm gives ``None``
    (only HMAC secrets can be guessed offline). ``candidates`` defaults to
    :func:`weak_secrets`. The search is the audit tools' (``jwtwarden.audit.crack``).
    """
    from jwtwarden.audit.crack import search_chunk

    if _HMAC_ALGS.get(alg) != len(signature):
        return None
    chunk = weak_secrets() if candidates is None else tuple(candidates)
    index = search_chunk(alg, signing_input, signature, chunk)
    return chunk[index] if index >= 0 else None
